"""Training on tiny data: the loss falls, runs resume exactly, several supercells train together,
fine-tuning, augmentation, the run directory and its learning curve, bad configs."""
import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from ecnn_pyg import __version__
from ecnn_pyg import keys as K
from ecnn_pyg.augment import RotationAugment
from ecnn_pyg.checkpoint import CheckpointError, load_checkpoint
from ecnn_pyg.config import ConfigError
from ecnn_pyg.ed import KondoED
from ecnn_pyg.generate import generate
from ecnn_pyg.graph import lattice_graph
from ecnn_pyg.nn import ModelInputError
from ecnn_pyg.pretrained import load_model
from ecnn_pyg.spins import random_spins
from ecnn_pyg.training import LOG_COLUMNS, Trainer, train

TINY_ECNN = {"channels": 2, "num_blocks": 1, "lmax": 1}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(square_data):
    return square_data


def _cfg(data, run_dir, **kw):
    cfg = {"data": str(data), "run_dir": str(run_dir), "max_epochs": 3, "batch_size": 2,
           "optimizer": "adam", "lr": 0.01, "progress": False, "plot_every": 0,
           "model_config": dict(TINY_ECNN)}
    cfg.update(kw)
    return cfg


def _log(run_dir):
    return list(csv.DictReader(open(Path(run_dir) / "log.csv")))


def test_loss_decreases(data, tmp_path):
    train(_cfg(data, tmp_path / "r", max_epochs=6, augment=True, lr=0.03))
    rows = _log(tmp_path / "r")
    assert len(rows) == 6
    assert float(rows[-1]["train_loss"]) < 0.8 * float(rows[0]["train_loss"])
    assert float(rows[-1]["val_rmse_field"]) < float(rows[0]["val_rmse_field"])


def test_run_dir_contents_and_checkpoints(data, tmp_path):
    rd = tmp_path / "r"
    train(_cfg(data, rd, plot_every=50))
    for name in ("config.yaml", "log.csv", "learning_curve.png", "best.pt", "last.pt"):
        assert (rd / name).exists(), name
    rows = _log(rd)
    assert list(rows[0]) == LOG_COLUMNS and [int(r["epoch"]) for r in rows] == [1, 2, 3]
    last, best = load_checkpoint(rd / "last.pt"), load_checkpoint(rd / "best.pt")
    for ck in (last, best):
        for key in ("model_type", "model_config", "model_state", "optimizer_state",
                    "scheduler_state", "epoch", "metrics", "rng_state", "package_version",
                    "train_config", "data", "best"):
            assert key in ck, key
        assert ck["package_version"] == __version__ and ck["model_type"] == "ecnn"
    assert last["epoch"] == 3 and best["epoch"] == best["best"]["epoch"] <= 3
    assert last["data"]["lattice"] == "square" and last["data"]["size"] == [4, 4]
    # the reloaded model predicts what the metrics say
    model = load_model(rd / "best.pt")
    assert not model.training and model.trained_on["size"] == [4, 4]
    assert best["metrics"]["val_rmse_field"] == pytest.approx(
        float(rows[best["epoch"] - 1]["val_rmse_field"]))


def test_resume_equals_uninterrupted(data, tmp_path):
    kw = dict(augment=True, batch_size=4, max_epochs=4, scheduler="plateau", lr_patience=1)
    train(_cfg(data, tmp_path / "a", **kw))
    train(_cfg(data, tmp_path / "b", **{**kw, "max_epochs": 2}))
    with pytest.raises(ConfigError, match="resume"):       # no silent overwrite
        train(_cfg(data, tmp_path / "b", **kw))
    with pytest.raises(ConfigError, match="different settings"):
        Trainer(_cfg(data, tmp_path / "b", **{**kw, "lr": 0.5}), resume=True)
    train(None, {"run_dir": str(tmp_path / "b"), "max_epochs": 4}, resume=True)
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert a["epoch"] == b["epoch"] == 4
    for k, v in a["model_state"].items():
        assert torch.equal(v, b["model_state"][k]), k
    ra, rb = _log(tmp_path / "a"), _log(tmp_path / "b")
    assert [r["val_loss"] for r in ra] == [r["val_loss"] for r in rb]


def test_ifnn_trains(data, tmp_path):
    train(_cfg(data, tmp_path / "i", model="ifnn", model_config={"hidden": [8]}, max_epochs=2))
    ck = load_checkpoint(tmp_path / "i" / "last.pt")
    assert ck["model_type"] == "ifnn" and ck["dtype"] == "float64"


def test_augmentation_preserves_ed_energies():
    g = lattice_graph("square", 4, {"t1": 1.0})
    ed = KondoED(g, J=3.0, electrons=14)
    aug = RotationAugment(g)
    assert len(aug) == 4                      # C4
    s = random_spins(16, 2, generator=np.random.default_rng(0))
    e, f = ed.energy_field(s)
    k = torch.arange(4)
    sr, fr = aug.apply(k[:2] + 1, torch.from_numpy(s), torch.from_numpy(f))
    e2, f2 = ed.energy_field(sr.numpy())
    np.testing.assert_allclose(e2, e, atol=1e-9)
    np.testing.assert_allclose(f2, fr.numpy(), atol=1e-8)
    tri = RotationAugment(lattice_graph("triangular", 6, {"t1": 1.0}))
    assert len(tri) == 6                      # C6


def test_bad_config(data, tmp_path):
    with pytest.raises(ConfigError, match="unknown config key"):
        train(_cfg(data, tmp_path / "x", learning_rate=0.1))
    with pytest.raises(ConfigError, match="must be int"):
        train(_cfg(data, tmp_path / "x", batch_size="two"))
    with pytest.raises(ConfigError, match="model_config"):
        train(_cfg(data, tmp_path / "x", model_config={"chanels": 3}))
    with pytest.raises(ConfigError, match="channels"):
        train(_cfg(data, tmp_path / "x", model_config={"channels": 2.5}))
    with pytest.raises(ConfigError, match="unknown model type 'gnn'"):
        train(_cfg(data, tmp_path / "x", model="gnn"))
    with pytest.raises(ConfigError, match="'optimizer' must be 'adagrad' or 'adam'"):
        train(_cfg(data, tmp_path / "x", optimizer="sgd"))
    with pytest.raises(ConfigError, match="'dtype' must be one of"):
        train(_cfg(data, tmp_path / "x", dtype="float16"))
    with pytest.raises(ConfigError, match="'batch_size' must be >= 1"):
        train(_cfg(data, tmp_path / "x", batch_size=0))
    with pytest.raises(CheckpointError, match="cannot resume"):
        train(_cfg(data, tmp_path / "x"), resume=True)
    assert not (tmp_path / "x").exists()


def test_trained_model_refuses_another_lattice(data, tmp_path):
    rd = tmp_path / "r"
    train(_cfg(data, rd, max_epochs=1))
    model = load_model(rd / "last.pt")
    with pytest.raises(ModelInputError, match="bond types"):
        model(lattice_graph("triangular", 6, {"t1": 1.0}), torch.randn(36, 3))


def test_learning_curve_leaves_the_pyplot_backend_alone(data, tmp_path):
    """The figure is drawn on its own Agg canvas: a notebook's backend is not switched and
    no pyplot figure is left open."""
    import matplotlib
    import matplotlib.pyplot as plt
    from ecnn_pyg.training import plot_learning_curve
    rd = tmp_path / "r"
    train(_cfg(data, rd, max_epochs=2))
    before = matplotlib.get_backend()
    plt.switch_backend("svg")
    try:
        figs = plt.get_fignums()
        png = plot_learning_curve(rd / "log.csv", tmp_path / "curve.png")
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == figs
    finally:
        plt.switch_backend(before)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []



def test_several_data_files_concatenate_splits(data, tmp_path):
    """data: [a, b] trains on a's and b's train splits and validates on every val split."""
    from ecnn_pyg.datasets import DataFileError, read_arrays
    from ecnn_pyg.training import load_training_data
    extra = tmp_path / "extra.h5"
    generate({"output": str(extra), "lattice": "square", "size": [4, 4], "hoppings": {"t1": 1.0},
              "J": 7.0, "electrons": 14, "seed": 5, "splits": {"train": 2}}, progress=False)
    _, _, tr, va = load_training_data([str(data), str(extra)], "train", "val")
    a, b = read_arrays(data, "train"), read_arrays(extra, "train")
    assert np.array_equal(tr[K.SPIN], np.concatenate([a[K.SPIN], b[K.SPIN]]))
    assert np.array_equal(va[K.FIELD], read_arrays(data, "val")[K.FIELD])
    cfg = _cfg(data, tmp_path / "r")
    cfg["data"] = [str(data), str(extra)]
    trainer = Trainer(cfg)
    (part,) = trainer.parts
    assert len(part.train[K.ENERGY]) == 8 and len(part.val[K.ENERGY]) == 3
    with pytest.raises(DataFileError, match="split 'val'"):
        load_training_data([str(extra)], "train", "val")
    other = tmp_path / "other.h5"
    generate({"output": str(other), "lattice": "square", "size": [4, 4], "hoppings": {"t1": 1.0},
              "J": 5.0, "electrons": 14, "seed": 5, "splits": {"val": 1}}, progress=False)
    with pytest.raises(ValueError, match="differ in model"):
        load_training_data([str(data), str(other)], "train", "val")


def test_data_of_several_supercells_train_together(data, tmp_path, monkeypatch):
    """4 x 4 and 8 x 8 data of one model (same electrons per site) train together: every
    batch is one supercell, an epoch visits every sample once, and the validation metrics
    pool the squared errors of both supercells (checked against evaluate_arrays per
    supercell)."""
    from ecnn_pyg.training import evaluate_arrays, load_training_data, load_training_parts
    big = tmp_path / "sq8x8.h5"
    generate({"output": str(big), "lattice": "square", "size": [8, 8], "hoppings": {"t1": 1.0},
              "J": 7.0, "electrons": 56, "seed": 2, "splits": {"train": 3, "val": 2}},
             progress=False)
    meta, parts = load_training_parts([str(data), str(big)], "train", "val")
    assert [p.size for p in parts] == [[4, 4], [8, 8]]
    assert [len(p.train[K.ENERGY]) for p in parts] == [6, 3]
    with pytest.raises(ValueError, match="2 supercells"):
        load_training_data([str(data), str(big)], "train", "val")
    # another filling is another model
    other = tmp_path / "n58.h5"
    generate({"output": str(other), "lattice": "square", "size": [8, 8], "hoppings": {"t1": 1.0},
              "J": 7.0, "electrons": 58, "seed": 2, "splits": {"val": 1}}, progress=False)
    with pytest.raises(ValueError, match="differ in model"):
        load_training_parts([str(data), str(other)], "train", "val")

    cfg = _cfg(data, tmp_path / "r", max_epochs=2, augment=True, energy_weight=10.0)
    cfg["data"] = [str(data), str(big)]
    trainer = Trainer(cfg)
    seen = []
    model_forward = trainer.model.forward

    def spy(batch, spin, **kw):
        seen.append(int(batch.num_nodes) // int(batch.num_graphs))
        assert batch.num_nodes % batch.num_graphs == 0
        return model_forward(batch, spin, **kw)
    monkeypatch.setattr(trainer.model, "forward", spy)
    trainer.train_epoch(1)
    counts = np.bincount(seen)
    assert sorted(set(seen)) == [16, 64]
    # batches of 2: 6 samples of 16 sites -> 3 batches, 3 samples of 64 sites -> 2 batches
    assert counts[16] == 3 and counts[64] == 2
    monkeypatch.undo()
    metrics = trainer.validate()
    sq, n = 0.0, 0
    for part in parts:
        t = lambda a: torch.as_tensor(a, dtype=torch.float32)
        res = evaluate_arrays(trainer.model, part.graph, t(part.val[K.SPIN]), t(part.val[K.FIELD]),
                              t(part.val[K.ENERGY]))
        sq += res["metrics"]["rmse_field"] ** 2 * part.val[K.FIELD].size
        n += part.val[K.FIELD].size
    assert metrics["rmse_field"] == pytest.approx(np.sqrt(sq / n), rel=1e-5)
    trainer.run()
    ck = load_checkpoint(tmp_path / "r" / "last.pt")
    assert ck["data"]["sizes"] == [[4, 4], [8, 8]]


def test_init_from_fine_tunes_from_a_checkpoint(data, tmp_path):
    """init_from starts from a checkpoint's weights and architecture (fine-tuning)."""
    a = train(_cfg(data, tmp_path / "a", max_epochs=2))
    ck_a = load_checkpoint(Path(a) / "best.pt")
    cfg = _cfg(data, tmp_path / "b", max_epochs=1, lr=1e-300,   # no change of the weights
               init_from=str(Path(a) / "best.pt"))
    cfg["model_config"] = {"channels": 3}            # ignored: the checkpoint fixes the model
    b = train(cfg)
    ck_b = load_checkpoint(Path(b) / "best.pt")
    # (the energy's constant is calibrated again after the epoch: equal up to rounding)
    shift_a, shift_b = ck_a["model_config"].pop("energy_shift"), ck_b["model_config"].pop("energy_shift")
    assert ck_b["model_config"] == ck_a["model_config"]
    assert shift_b == pytest.approx(shift_a, abs=1e-6)          # (float32 energies)
    for k, v in ck_a["model_state"].items():
        assert torch.equal(v, ck_b["model_state"][k]), k
    # resuming the fine-tune with its config (whose model_config is not the model's) works
    cfg["max_epochs"] = 2
    train(cfg, resume=True)
    assert len(_log(tmp_path / "b")) == 2
    with pytest.raises(ConfigError, match="holds a ecnn model"):
        train(_cfg(data, tmp_path / "c", model="ifnn", model_config={},
                   init_from=str(Path(a) / "best.pt")))


def test_short_module_name_reexports_the_training_api():
    """``ecnn_pyg.train`` (README, tutorials, benchmarks) is the same API as ecnn_pyg.training."""
    import ecnn_pyg.train as short
    import ecnn_pyg.training as training
    assert short.train is training.train and short.Trainer is training.Trainer
    assert short.evaluate_arrays is training.evaluate_arrays
    assert set(short.__all__) == set(training.__all__)
