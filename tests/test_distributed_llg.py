"""LLG on several ranks (torch.distributed, gloo) against the single-process run.

The ranks are local processes with torchrun's environment
(:func:`ecnn_pyg.distributed.testing.run_ranks`); each runs the command line
``ecnn-pyg simulate`` as under ``torchrun --nproc-per-node N -m ecnn_pyg.cli``.
"""
import os

import h5py
import numpy as np
import pytest
import torch

import ecnn_pyg
from ecnn_pyg import distributed as dist
from ecnn_pyg.distributed.llg import SlabDecomposition, halo_bytes_per_exchange, plan_for
from ecnn_pyg.distributed.testing import run_ranks
from ecnn_pyg.distributed.tiling import TilingError
from ecnn_pyg.nn import ECNN
from ecnn_pyg.spins import random_spins

from _simulate_runs import simulate_cli, write_checkpoint, write_config

HOP = {"t1": 1.0}
SIZE = [12, 6]                  # square; one block: 2 convolutions, halo 4 rows -> up to 3 ranks


def _model(num_blocks=1):
    torch.manual_seed(0)
    return ECNN(lattice="square", channels=2, lmax=1, num_blocks=num_blocks,
                output_channels=[2, 1]).double().eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("model") / "model.pt", _model(), HOP, SIZE)


def _config(tmp, name, ckpt, **kw):
    return write_config(tmp, name, ckpt, {"size": SIZE, "hoppings": HOP}, **kw)


_cli = simulate_cli


def _runs(path):
    with h5py.File(path, "r") as f:
        return {name: {k: f[name][k][()] for k in f[name] if isinstance(f[name][k], h5py.Dataset)}
                for name in f if name.startswith("run_")}


def _assert_same_file(a, b, atol=1e-9):
    ra, rb = _runs(a), _runs(b)
    assert sorted(ra) == sorted(rb)
    for name in ra:
        assert sorted(ra[name]) == sorted(rb[name]), name
        for key in ra[name]:
            np.testing.assert_allclose(ra[name][key], rb[name][key], rtol=0, atol=atol,
                                       err_msg=f"{name}/{key}")
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for name in ra:       # the resume states: spins and the noise generator
            for slot in ("state_a", "state_b"):
                if slot in fa[name]:
                    np.testing.assert_allclose(fa[name][slot]["spin"][()],
                                               fb[name][slot]["spin"][()], rtol=0, atol=atol)
                    assert np.array_equal(fa[name][slot]["rng"][()], fb[name][slot]["rng"][()])


def _slab_fields(seed):
    # every rank: the field of its slab (halo exchanged) equals its rows of the whole field
    model = _model(num_blocks=1)
    graph = ecnn_pyg.lattice_graph("square", SIZE, HOP)
    spins = random_spins(graph.num_nodes, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(seed))
    ref = model(graph, spins)["field"].detach()
    slabs = SlabDecomposition(model, graph, dist.rank(), dist.world_size())
    field = slabs.field_source(model)(spins[slabs.lo:slabs.hi])
    return float((field - ref[slabs.lo:slabs.hi]).abs().max())


@pytest.mark.parametrize("world", [2, 3])
def test_slab_fields_equal_whole_lattice(world):
    errors = run_ranks(world, _slab_fields, 5)
    assert max(errors) < 1e-12, errors


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, ckpt):
    # the reference: one process, T = 0 and T > 0, 100 damped steps each
    tmp = tmp_path_factory.mktemp("one")
    cfg, out = _config(tmp, "one", ckpt, temperature=[0.0, 0.05])
    assert _cli(cfg) == 0
    return out


def test_domain_llg_equals_one_process(tmp_path, ckpt, one_process):
    # 2 ranks: the lattice in 2 slabs; the noise of the whole lattice is drawn on every rank
    cfg, out = _config(tmp_path, "ranks2", ckpt, temperature=[0.0, 0.05], parallel="domain")
    assert run_ranks(2, _cli, cfg) == [0, 0]
    _assert_same_file(one_process, out, atol=1e-9)
    assert sorted(os.listdir(tmp_path)) == ["ranks2.h5", "ranks2.yaml"]     # one writer


def test_domain_llg_resumes_on_three_ranks(tmp_path, ckpt, one_process):
    cfg, out = _config(tmp_path, "ranks3", ckpt, temperature=[0.0, 0.05], parallel="domain")
    assert run_ranks(3, _cli, cfg, "--set", "n_steps=50") == [0, 0, 0]     # stopped at 50
    assert run_ranks(3, _cli, cfg) == [0, 0, 0]                            # resumed to 100
    _assert_same_file(one_process, out, atol=1e-9)


def test_sweep_across_ranks_equals_serial(tmp_path, ckpt):
    fields = [0.0, 0.01, 0.02]
    cfg1, out1 = _config(tmp_path, "serial", ckpt, zeeman=fields, temperature=0.05, n_steps=20,
                         save_every=10)
    assert _cli(cfg1) == 0
    cfg2, out2 = _config(tmp_path, "sweep", ckpt, zeeman=fields, temperature=0.05, n_steps=20,
                         save_every=10)
    # first part of the sweep (a resumable file), then the rest on 2 ranks
    assert run_ranks(2, _cli, cfg2, "--set", "n_steps=10") == [0, 0]
    assert run_ranks(2, _cli, cfg2) == [0, 0]
    _assert_same_file(out1, out2, atol=0)
    assert not [p for p in os.listdir(tmp_path) if p.startswith("sweep")
                and p not in ("sweep.h5", "sweep.yaml")]


def test_ed_sweep_across_ranks(tmp_path):
    # exact diagonalization is not local: its runs spread over the ranks, its lattice is not split
    kw = dict(source="ed", model=None, J=1.0, filling=0.25, size=[4, 4], zeeman=[0.0, 0.02],
              n_steps=10, save_every=5, dt=0.1)
    cfg1, out1 = _config(tmp_path, "ed1", None, **kw)
    assert _cli(cfg1) == 0
    cfg2, out2 = _config(tmp_path, "ed2", None, **kw)
    assert run_ranks(2, _cli, cfg2) == [0, 0]
    _assert_same_file(out1, out2, atol=0)
    cfg3, _ = _config(tmp_path, "ed3", None, parallel="domain", **kw)
    res = run_ranks(2, _cli, cfg3, expect_failure=True)
    assert res == {0: 2, 1: 2}          # both ranks refuse with one line (not local)


def test_resume_with_other_settings_fails_on_every_rank(tmp_path, ckpt, capfd):
    cfg, out = _config(tmp_path, "run", ckpt, n_steps=10, save_every=5)
    assert _cli(cfg) == 0
    before = open(out, "rb").read()
    res = run_ranks(2, _cli, cfg, "--set", "dt=0.1", expect_failure=True)
    assert res[0] == 2                  # rank 0: the file's settings differ (one line)
    assert res[1] != 0                  # rank 1: told by rank 0, exits with an error
    err = capfd.readouterr().err
    assert "different settings" in err and "rank 0 stopped" in err
    assert open(out, "rb").read() == before


def test_thin_slabs_and_too_many_ranks_refused():
    model = _model(num_blocks=1)
    graph = ecnn_pyg.lattice_graph("square", SIZE, HOP)
    SlabDecomposition(model, graph, 0, 3)           # 4 rows each: the halo is 4 rows
    with pytest.raises(TilingError, match=r"slab of 3 cell rows is thinner than the halo of 4 "
                                          r"rows.*at least 4 rows.*at most 3 ranks"):
        SlabDecomposition(model, graph, 0, 4)
    with pytest.raises(TilingError, match="more ranks than parts"):
        SlabDecomposition(model, graph, 0, 13)
    assert halo_bytes_per_exchange(model, graph, 2) == 2 * 4 * 6 * 3 * 8


def test_plan_outside_torchrun_is_none():
    assert plan_for({"parallel": "auto", "source": "model"}, None, 1) is None
    with pytest.raises(ValueError, match="parallel must be one of"):
        plan_for({"parallel": "slabs", "source": "model"}, None, 1)


def _die_or_wait(rank_to_die):
    if dist.rank() == rank_to_die:
        os._exit(3)
    dist.barrier("waiting in the test")


def test_dead_rank_stops_the_others_with_a_clear_error():
    res = run_ranks(3, _die_or_wait, 1, timeout=60, collective_timeout=20, expect_failure=True)
    assert "exited with code 3" in res[1]
    for r in (0, 2):
        assert "DistributedError" in res[r] and "waiting in the test failed" in res[r], res[r]
        assert "another rank has probably stopped" in res[r]


@pytest.mark.slow
def test_torchrun_command_writes_the_single_process_file(tmp_path, ckpt, one_process):
    # the real launcher: torchrun --nproc-per-node 2 -m ecnn_pyg.cli simulate --config F.yaml
    import subprocess
    import sys
    from ecnn_pyg.distributed.testing import free_port
    cfg, out = _config(tmp_path, "torchrun", ckpt, temperature=[0.0, 0.05])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ECNN_PYG_DIST_TIMEOUT": "60"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
                           "2", "--master-port", str(free_port()), "-m", "ecnn_pyg.cli",
                           "simulate", "--config", cfg, "--quiet", "--set", "parallel=domain"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_same_file(one_process, out, atol=1e-9)
