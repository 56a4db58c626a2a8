"""Generating exact data sets: labels, resuming after a kill, refused settings."""
import hashlib
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

import ecnn_pyg as ep
from ecnn_pyg import keys as K
from ecnn_pyg.config import ConfigError
from ecnn_pyg.datasets import DataFileError, SpinDataset, read_arrays, read_meta
from ecnn_pyg.ed import KondoED
from ecnn_pyg import generate as G
from ecnn_pyg.generate import generate

def small(tmp_path, **kw):
    """The conftest's small data-set config with ``kw`` changed."""
    from conftest import SMALL_DATA
    return {**SMALL_DATA, "output": str(tmp_path / "d.h5"), **kw}


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


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_run_resumes_to_identical_file(tmp_path, sig, monkeypatch):
    from conftest import HELD, start_held_generate
    cfg = small(tmp_path, sampler="held", splits={"train": 100}, output=str(tmp_path / "k.h5"))
    proc, cfg_path = start_held_generate(cfg, tmp_path, stdout=subprocess.DEVNULL)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert read_meta(cfg["output"])["n_done"] == HELD       # the file is still readable
    # continue in this process (same sampler name, without the wait)
    monkeypatch.setitem(G.SAMPLERS, "held", G.SAMPLERS["uniform"])
    if sig == signal.SIGKILL:                   # its lock file stays: taken over, with a warning
        with pytest.warns(RuntimeWarning, match="taking over the lock .* no longer runs"):
            generate(cfg_path, progress=False)
    else:                                       # SIGTERM: the run ended cleanly, lock removed
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


def test_bad_output_file_is_refused_and_kept(tmp_path):
    bad = tmp_path / "bad.h5"
    content = b"\x89HDF\r\n garbage" * 10
    bad.write_bytes(content)
    with pytest.raises(DataFileError, match="not a readable HDF5"):
        generate(small(tmp_path, output=str(bad)), progress=False)
    assert bad.read_bytes() == content          # nothing on disk is lost


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


def test_paper_config_is_valid():
    from ecnn_pyg.config import load_config
    from ecnn_pyg.generate import GENERATE_SCHEMA
    repo = Path(__file__).resolve().parent.parent
    cfg = load_config(repo / "experiments" / "square_fig3" / "01_generate.yaml", GENERATE_SCHEMA)
    assert cfg["electrons"] == 864 and cfg["size"] == [30, 30] and cfg["J"] == 7.0
    assert cfg["splits"] == {"train": 100, "val": 50}
