"""Sharded data generation on several ranks (torch.distributed, gloo) against the serial file.

The ranks are local processes with torchrun's environment
(:func:`ecnn_pyg.distributed.testing.run_ranks`), each running ``generate`` as
under ``torchrun --nproc-per-node N -m ecnn_pyg.cli generate``.
"""
import os

import h5py
import numpy as np
import pytest
import yaml

from ecnn_pyg.datasets import DataFileError, read_arrays, read_meta
from ecnn_pyg.distributed.testing import run_ranks
from ecnn_pyg.generate import generate

#: a 4 x 4 square set: 7 samples (5 + 2), ED in milliseconds
SETTINGS = {"lattice": "square", "size": [4, 4], "hoppings": {"t1": 1.0}, "J": 7.0,
            "electrons": 14, "seed": 5, "splits": {"train": 5, "val": 2}}


def _cfg(path, **kw):
    return {**SETTINGS, "output": str(path), **kw}


def _same_file(a, b):
    """The data sets of two files are equal (spins bit for bit, labels to ED rounding)."""
    ma, mb = read_meta(a), read_meta(b)
    for key in ("n_done", "splits", "seed", "model", "lattice", "size", "hoppings"):
        assert ma[key] == mb[key], key
    ca, cb = yaml.safe_load(ma["config"]), yaml.safe_load(mb["config"])
    assert {**ca, "output": None} == {**cb, "output": None}
    xa, xb = read_arrays(a), read_arrays(b)
    np.testing.assert_array_equal(xa["spin"], xb["spin"])
    for key in ("energy", "field"):
        np.testing.assert_allclose(xa[key], xb[key], rtol=0, atol=1e-12, err_msg=key)
    with h5py.File(a, "r", locking=False) as fa, h5py.File(b, "r", locking=False) as fb:
        assert sorted(fa["graph"]) == sorted(fb["graph"])


def _generate_two(cfg_a, cfg_b):
    # rank 0 writes, the others label: both files from one process group
    from ecnn_pyg.distributed import rank
    generate(cfg_a, progress=False)
    generate(cfg_b, progress=False)
    try:     # a rank given other settings would label other samples: every rank refuses
        generate({**cfg_b, "seed": cfg_b["seed"] + rank()}, progress=False)
        return "no error"
    except ValueError as err:
        return str(err)


def test_sharded_generation_writes_the_serial_file(tmp_path):
    serial = generate(_cfg(tmp_path / "serial.h5"), progress=False)
    small = generate(_cfg(tmp_path / "serial_small.h5", splits={"train": 2}), progress=False)
    res = run_ranks(3, _generate_two, _cfg(tmp_path / "sharded.h5"),
                    _cfg(tmp_path / "small.h5", splits={"train": 2}))
    for msg in res:
        assert "different settings (seed: rank 0 5, rank 1 6, rank 2 7)" in msg, msg
    _same_file(serial, tmp_path / "sharded.h5")
    _same_file(small, tmp_path / "small.h5")        # more ranks than samples: rank 2 idles
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "serial.h5", "serial_small.h5", "sharded.h5", "small.h5"]     # one writer, no locks left


def _killed_at_second_sample(config_path, rank_to_kill):
    from ecnn_pyg.cli import main
    from ecnn_pyg.distributed import rank
    from ecnn_pyg.ed import KondoED
    if rank() == rank_to_kill:
        calls = []
        solve = KondoED.energy_field

        def dying(self, spin):
            calls.append(1)
            if len(calls) == 2:
                os._exit(9)                  # as a killed process: no clean-up, no message
            return solve(self, spin)
        KondoED.energy_field = dying
    return main(["generate", "--config", config_path, "--quiet"])


def _rerun(config_path, bad_cfg):
    from ecnn_pyg.cli import main
    try:     # the file was made with another seed: every rank stops with rank 0's message
        generate(bad_cfg, progress=False)
        bad = "no error"
    except ValueError as err:
        bad = f"{type(err).__name__}: {err}"
    return bad, main(["generate", "--config", config_path, "--quiet"])


def test_killed_rank_loses_the_round_in_flight_and_a_rerun_completes(tmp_path, capfd):
    serial = generate(_cfg(tmp_path / "serial.h5"), progress=False)
    out = tmp_path / "d.h5"
    config = tmp_path / "gen.yaml"
    config.write_text(yaml.safe_dump(_cfg(out)))
    # 3 ranks, rounds {0,1,2} {3,4,5} {6}: rank 2 dies labelling sample 5 (its second)
    res = run_ranks(3, _killed_at_second_sample, str(config), 2, expect_failure=True,
                    timeout=120, collective_timeout=20)
    assert "exited with code 9" in res[2]
    for r in (0, 1):     # the others stop with an error (CLI exit status 1), no hang
        assert res[r] == 1 or "DistributedError" in str(res[r]), res[r]
    err = capfd.readouterr().err
    assert "rank 0 of 3: collecting ED samples 3..5 failed" in err
    assert "samples before 3 are complete; run the command again" in err
    n = read_meta(out)["n_done"]
    assert n == 3                           # the first round is complete, the second lost
    assert not (tmp_path / "d.h5.lock").exists()        # rank 0 released its lock
    np.testing.assert_array_equal(read_arrays(out)["spin"], read_arrays(serial)["spin"][:n])
    # a rerun on 2 ranks refuses other settings, then completes the file
    res = run_ranks(2, _rerun, str(config), _cfg(out, seed=6), timeout=120, collective_timeout=20)
    for bad, code in res:
        assert "different settings" in bad and "seed" in bad, bad
        assert code == 0
    assert "rank 0 stopped" in res[1][0]          # rank 1 says where the error came from
    _same_file(serial, out)


def test_one_process_is_unchanged(tmp_path):
    # no launcher: no process group, the serial path (also under a stray WORLD_SIZE=1)
    os.environ["WORLD_SIZE"] = "1"
    try:
        path = generate(_cfg(tmp_path / "one.h5", splits={"train": 1}), progress=False)
    finally:
        del os.environ["WORLD_SIZE"]
    assert read_meta(path)["n_done"] == 1
    with pytest.raises(DataFileError, match="different settings"):
        generate(_cfg(tmp_path / "one.h5", splits={"train": 1}, seed=9), progress=False)


@pytest.mark.slow
def test_torchrun_runs_the_command_line(tmp_path):
    import subprocess
    import sys
    from ecnn_pyg.distributed.testing import free_port
    config = tmp_path / "gen.yaml"
    config.write_text(yaml.safe_dump(_cfg(tmp_path / "d.h5")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ECNN_PYG_DIST_TIMEOUT": "60"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
                           "3", "--master-port", str(free_port()), "-m", "ecnn_pyg.cli",
                           "generate", "--config", str(config), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("data set:") == 1                      # rank 0 alone describes it
    _same_file(generate(_cfg(tmp_path / "serial.h5"), progress=False), tmp_path / "d.h5")


def test_killed_writer_rank_leaves_a_file_that_one_process_completes(tmp_path, capfd):
    serial = generate(_cfg(tmp_path / "serial.h5"), progress=False)
    out = tmp_path / "d.h5"
    config = tmp_path / "gen.yaml"
    config.write_text(yaml.safe_dump(_cfg(out)))
    # rank 0, the writer, dies labelling sample 3 (its second): the others lose their peer
    res = run_ranks(3, _killed_at_second_sample, str(config), 0, expect_failure=True,
                    timeout=120, collective_timeout=20)
    assert "exited with code 9" in res[0]
    assert res[1] == res[2] == 1
    assert "sending ED samples 3..5 to rank 0 failed" in capfd.readouterr().err
    assert read_meta(out)["n_done"] == 3
    with pytest.warns(RuntimeWarning, match="taking over the lock"):    # the dead writer's lock
        generate(_cfg(out), progress=False)
    _same_file(serial, out)
