"""HDF5 data sets: generation, resuming after a kill, reading, bad files, CLI."""
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch_geometric.loader import DataLoader

import ecnn_pyg as ep
from ecnn_pyg import keys as K
from ecnn_pyg.cli import main
from ecnn_pyg.config import ConfigError
from ecnn_pyg.datasets import DataFileError, SpinDataset, read_arrays, read_meta
from ecnn_pyg.ed import KondoED
from ecnn_pyg import generate as G
from ecnn_pyg.generate import generate
from ecnn_pyg.spins import random_spins

SMALL = {"lattice": "triangular", "size": [5, 5], "hoppings": {"t1": 1.0, "t3": -0.4},
         "J": -1.0, "mu": -1.5, "seed": 7, "splits": {"train": 4, "val": 2}}


def small(tmp_path, **kw):
    return {**SMALL, "output": str(tmp_path / "d.h5"), **kw}


def test_generate_and_read(tmp_path):
    path = generate(small(tmp_path), progress=False)
    meta = read_meta(path)
    assert meta["n_done"] == 6 and meta["splits"] == {"train": 4, "val": 2}
    assert meta["package_version"] == ep.__version__ and meta["seed"] == 7
    train, val = SpinDataset(path, "train"), SpinDataset(path, "val")
    assert len(train) == 4 and len(val) == 2 and len(SpinDataset(path, None)) == 6
    ed = KondoED(ep.lattice_graph("triangular", (5, 5), {"t3": -0.4}), J=-1.0, mu=-1.5)
    d = val[1]
    e, b = ed.energy_field(d[K.SPIN].numpy())
    assert d[K.ENERGY].item() == pytest.approx(e) and np.allclose(d[K.FIELD].numpy(), b)
    # the stored graph is the lattice graph
    assert torch.equal(d.edge_index, ed.graph.edge_index)
    assert torch.allclose(d[K.HOPPING], ed.graph[K.HOPPING])
    # batches of several configurations
    batch = next(iter(DataLoader(train, batch_size=3)))
    assert batch.num_graphs == 3 and batch[K.SPIN].shape == (75, 3)
    assert batch[K.ENERGY].shape == (3,)
    assert "SpinDataset" in repr(train)


def test_generate_with_twists_labels_the_tiled_lattice(tmp_path):
    """twists: [2, 1] labels are those of the 10 x 5 lattice with the configuration tiled."""
    path = generate(small(tmp_path, twists=[2, 1], splits={"train": 2}), progress=False)
    assert read_meta(path)["model"]["twists"] == [2, 1]
    d = read_arrays(path)
    hop = {"t3": -0.4}
    big = KondoED(ep.lattice_graph("triangular", (10, 5), hop), J=-1.0, mu=-1.5)
    s = d[K.SPIN][1].reshape(5, 5, 3)
    e, b = big.energy_field(np.concatenate([s, s]).reshape(-1, 3))
    assert d[K.ENERGY][1] == pytest.approx(e / 2, abs=1e-10)
    np.testing.assert_allclose(d[K.FIELD][1], b[:25], atol=1e-10)
    with pytest.raises(DataFileError, match="different settings.*model"):
        generate(small(tmp_path, twists=[3, 1], splits={"train": 2}), progress=False)


# a subprocess that generates slowly (a sleeping sampler), so the kill lands mid-run
SLOW = """
import sys, time
from ecnn_pyg import generate as G
from ecnn_pyg.cli import main
G.SAMPLERS["slow"] = lambda n, rng: (time.sleep(0.05), G.SAMPLERS["uniform"](n, rng))[1]
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_run_resumes_to_identical_file(tmp_path, sig, monkeypatch):
    cfg = {**SMALL, "sampler": "slow", "splits": {"train": 100}, "output": str(tmp_path / "k.h5")}
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-c", SLOW, "generate", "--config", str(cfg_path), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not os.path.exists(cfg["output"]) and time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    n_killed = read_meta(cfg["output"])["n_done"]          # the file is still readable
    assert 0 < n_killed < 100, "the run should be interrupted mid-way"
    # continue in this process (same sampler name, without the sleep)
    monkeypatch.setitem(G.SAMPLERS, "slow", G.SAMPLERS["uniform"])
    generate(cfg_path, progress=False)
    ref = generate({**cfg, "output": str(tmp_path / "ref.h5")}, progress=False)
    a, b = read_arrays(cfg["output"]), read_arrays(ref)
    assert len(a[K.ENERGY]) == 100
    for key in a:
        assert np.array_equal(a[key], b[key])


def test_resume_with_other_settings_is_refused(tmp_path):
    path = generate(small(tmp_path), progress=False)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DataFileError, match="different settings.*model"):
        generate(small(tmp_path, J=-2.0), progress=False)
    with pytest.raises(DataFileError, match="different settings.*size"):
        generate(small(tmp_path, size=[5, 6]), progress=False)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_bad_files(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n garbage" * 10)
    with pytest.raises(DataFileError, match="not a readable HDF5"):
        SpinDataset(bad)
    with pytest.raises(DataFileError, match="not a readable HDF5"):
        generate(small(tmp_path, output=str(bad)), progress=False)
    import h5py
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(DataFileError, match="not an ecnn_pyg data set"):
        SpinDataset(tmp_path / "other.h5")
    with pytest.raises(DataFileError, match="does not exist"):
        SpinDataset(tmp_path / "missing.h5")
    path = generate(small(tmp_path), progress=False)
    with pytest.raises(DataFileError, match="not 'test'"):
        SpinDataset(path, "test")


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key.*'electron'.*did you mean 'electrons'"):
        generate(small(tmp_path, electron=3), progress=False)
    with pytest.raises(ConfigError, match="'J' must be float"):
        generate(small(tmp_path, J="big"), progress=False)
    with pytest.raises(ConfigError, match="'size' .* is required"):
        generate({"output": "x.h5", "J": 1.0}, progress=False)
    with pytest.raises(ValueError, match="integer in"):
        generate(dict(small(tmp_path), mu=None, electrons=1000), progress=False)
    with pytest.raises(ValueError, match="unknown lattice"):
        generate(small(tmp_path, lattice="hexagonal"), progress=False)


def test_cli_ed_matches_solver(tmp_path, rng, capsys):
    spins = random_spins(20, rng, n=2).reshape(2, 4, 5, 3)
    np.save(tmp_path / "s.npy", spins)
    out = tmp_path / "o.npz"
    args = ["ed", "--lattice", "square", "--size", "4", "5", "--t1", "1", "--J", "7",
            "--electrons", "19", "--spins", str(tmp_path / "s.npy"), "--out", str(out)]
    assert main(args) == 0
    res = np.load(out)
    e, b = KondoED(ep.lattice_graph("square", (4, 5)), J=7.0, electrons=19).energy_field(spins)
    assert np.allclose(res["energy"], e) and np.allclose(res["field"], b)
    assert res["field"].shape == (2, 20, 3)
    # existing output is not overwritten; bad spins give a one-line error
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    np.save(tmp_path / "s.npy", spins[..., :2])
    assert main(args[:-1] + [str(tmp_path / "o2.npz")]) == 2
    assert "spins must have shape" in capsys.readouterr().err
    # a single configuration (L1, L2, 3)
    np.save(tmp_path / "s1.npy", spins[0])
    assert main(args[:-3] + [str(tmp_path / "s1.npy"), "--out", str(tmp_path / "o3.npz")]) == 0
    assert np.allclose(np.load(tmp_path / "o3.npz")["energy"], e[:1])


def test_cli_generate_and_help(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(small(tmp_path)))
    assert main(["generate", "--config", str(cfg), "--quiet", "--set", "seed=7"]) == 0
    out = capsys.readouterr().out
    assert "samples 6 of 6" in out and "d.h5" in out
    assert main(["generate", "--config", str(cfg), "--quiet", "--set", "sede=1"]) == 2
    assert "did you mean 'seed'" in capsys.readouterr().err
    for cmd in ([], ["generate"], ["ed"], ["lattices"]):
        with pytest.raises(SystemExit) as exc:
            main(cmd + ["--help"])
        assert exc.value.code == 0
    assert main(["lattices", "triangular"]) == 0
    assert "t3" in capsys.readouterr().out


def test_paper_config_is_valid():
    from ecnn_pyg.config import load_config
    from ecnn_pyg.generate import GENERATE_SCHEMA
    repo = Path(__file__).resolve().parent.parent
    cfg = load_config(repo / "experiments" / "square_fig3" / "01_generate.yaml", GENERATE_SCHEMA)
    assert cfg["electrons"] == 864 and cfg["size"] == [30, 30] and cfg["J"] == 7.0
    assert cfg["splits"] == {"train": 100, "val": 50}
