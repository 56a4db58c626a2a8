"""Training settings that cannot be meant are refused before any work; runs that go wrong stop.

Every key has a range (NaN and infinities refused), a model that cannot be built is
refused with the key's name, a run whose loss or weights become non-finite stops with
a clear message and keeps its last good checkpoint, a damaged ``last.pt`` is refused
on ``--resume`` with a pointer to ``best.pt``, orphans of killed checkpoint writes are
removed, and a run directory has one writer.
"""
import math
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from ecnn_pyg.checkpoint import CheckpointError, load_checkpoint
from ecnn_pyg.cli import main
from ecnn_pyg.config import ConfigError
from ecnn_pyg.datasets import DataFileError
from ecnn_pyg.locking import OutputLockedError, OutputNotWritableError, output_lock
from ecnn_pyg.training import TrainingDivergedError, train
from ecnn_pyg.training import trainer as trainer_module

TINY = {"channels": 2, "num_blocks": 1, "lmax": 1}

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(data_path, run_dir, **kw):
    cfg = {"data": str(data_path), "run_dir": str(run_dir), "max_epochs": 2, "batch_size": 3,
           "optimizer": "adam", "lr": 0.01, "progress": False, "plot_every": 0,
           "model_config": dict(TINY)}
    cfg.update(kw)
    return cfg


BAD = [  # key, value, what the message says
    ("energy_weight", -5.0, ">= 0"), ("energy_weight", math.nan, "finite"),
    ("energy_weight", math.inf, "finite"), ("grad_clip", -1.0, "> 0"),
    ("grad_clip", 0.0, "> 0"), ("max_train_samples", -2, ">= 1"),
    ("max_train_samples", 0, ">= 1"), ("max_epochs", -3, ">= 1"), ("lr", 0.0, "> 0"),
    ("lr", -0.1, "> 0"), ("lr", math.inf, "finite"), ("lr", math.nan, "finite"),
    ("weight_decay", -1.0, ">= 0"), ("lr_factor", 1.5, "in (0, 1)"), ("lr_factor", 0.0, "in (0, 1)"),
    ("lr_patience", -1, ">= 0"), ("min_lr", -1e-3, ">= 0"), ("early_stopping_patience", -1, ">= 0"),
    ("min_delta", -0.1, ">= 0"), ("max_time", 0.0, "> 0"), ("max_time", math.nan, "finite"),
    ("val_batch_size", 0, ">= 1"), ("plot_every", -1, ">= 0"), ("seed", -1, ">= 0"),
    ("num_threads", 0, ">= 1"), ("batch_size", -2, ">= 1"), ("augment", "mirrors", "augment"),
    ("train_split", "", "empty"), ("data", [], "data"),
]


@pytest.mark.parametrize("key,value,says", BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_bad_training_values_are_refused_before_any_work(tmp_path, key, value, says):
    # the data file does not exist: the settings are checked before the data are read
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError) as err:
        train(_cfg(tmp_path / "missing.h5", run_dir, **{key: value}))
    assert f"'{key}'" in str(err.value) and says in str(err.value), str(err.value)
    assert not run_dir.exists()


MODEL_BAD = [("channels", 0), ("channels", -3), ("num_blocks", 0), ("lmax", 0),
             ("lmax_filter", 2), ("output_channels", []), ("output_channels", [4, 0]),
             ("energy_shift", math.nan), ("energy_scale", math.inf), ("avg_num_neighbors", -1.0),
             ("num_bond_types", 0)]


@pytest.mark.parametrize("key,value", MODEL_BAD, ids=[f"{k}={v!r}" for k, v in MODEL_BAD])
def test_bad_model_values_are_refused_with_the_key(tmp_path, key, value):
    """``channels: 0`` used to end in a ZeroDivisionError inside the model."""
    with pytest.raises(ConfigError, match=f"model_config \\(ecnn\\): config key '{key}'"):
        train(_cfg(tmp_path / "missing.h5", tmp_path / "run", model_config={**TINY, key: value}))
    with pytest.raises(ConfigError, match="'hidden'"):
        train(_cfg(tmp_path / "missing.h5", tmp_path / "run", model="ifnn",
                   model_config={"hidden": [0]}))


def test_missing_init_from_is_refused_before_the_data_are_read(tmp_path):
    with pytest.raises(CheckpointError, match="init_from .*nowhere.pt' does not exist"):
        train(_cfg(tmp_path / "missing.h5", tmp_path / "run", init_from=str(tmp_path / "nowhere.pt")))


def test_cli_says_which_key(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_cfg(tmp_path / "missing.h5", tmp_path / "run")))
    assert main(["train", "--config", str(cfg), "--set", "energy_weight=-5"]) == 2
    err = capsys.readouterr().err
    assert "error: config key 'energy_weight' must be >= 0" in err and "Traceback" not in err
    assert main(["train", "--config", str(cfg), "--set", "model_config.channels=0"]) == 2
    assert "config key 'channels' must be >= 1" in capsys.readouterr().err


def test_nan_in_the_training_data_is_refused(square_data, tmp_path):
    bad = tmp_path / "nan.h5"
    bad.write_bytes(Path(square_data).read_bytes())
    with h5py.File(bad, "r+") as f:
        f["field"][2, 3, 1] = np.nan
    with pytest.raises(DataFileError, match="non-finite"):
        train(_cfg(bad, tmp_path / "run"))
    assert not (tmp_path / "run" / "best.pt").exists()


def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(square_data, tmp_path,
                                                                  monkeypatch):
    """The loss turns NaN in epoch 3: the run stops there, best.pt of epoch <= 2 is intact."""
    calls = {"n": 0}
    loss = trainer_module.field_energy_loss

    def poisoned(*args, **kw):
        calls["n"] += 1
        value = loss(*args, **kw)
        return value * math.nan if calls["n"] > 4 else value     # 2 batches per epoch
    monkeypatch.setattr(trainer_module, "field_energy_loss", poisoned)
    rd = tmp_path / "run"
    with pytest.raises(TrainingDivergedError, match="epoch 3.*best.pt.*is kept"):
        train(_cfg(square_data, rd, max_epochs=5))
    best, last = load_checkpoint(rd / "best.pt"), load_checkpoint(rd / "last.pt")
    assert last["epoch"] == 2 and best["epoch"] <= 2
    assert all(torch.isfinite(v).all() for v in best["model_state"].values())


def test_lr_1e6_stops_with_a_message_and_exit_1(square_data, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_cfg(square_data, tmp_path / "run", lr=1e6, max_epochs=30,
                                       optimizer="adagrad")))
    assert main(["train", "--config", str(cfg), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "non-finite" in err or "became" in err, err
    assert "Lower lr" in err and "Traceback" not in err


def test_garbage_last_pt_is_refused_on_resume_pointing_to_best(square_data, tmp_path):
    rd = tmp_path / "run"
    train(_cfg(square_data, rd, max_epochs=1))
    (rd / "last.pt").write_bytes(b"garbage, not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot resume.*best.pt"):
        train(_cfg(square_data, rd, max_epochs=2), resume=True)
    # the suggested way out works
    (rd / "last.pt").write_bytes((rd / "best.pt").read_bytes())
    train(_cfg(square_data, rd, max_epochs=2), resume=True)
    assert load_checkpoint(rd / "last.pt")["epoch"] == 2


def test_orphan_temporary_checkpoints_of_a_killed_run_are_removed(square_data, tmp_path):
    rd = tmp_path / "run"
    train(_cfg(square_data, rd, max_epochs=1))
    orphans = [rd / ".best.pt.k1ll3d.tmp", rd / ".last.pt.x7q2.tmp"]
    for p in orphans:
        p.write_bytes(b"half a checkpoint")
    train(_cfg(square_data, rd, max_epochs=2), resume=True)
    assert not any(p.exists() for p in orphans)


def test_unwritable_run_directory_is_refused_before_the_data_are_read(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(OutputNotWritableError, match="run directory"):
        train(_cfg(tmp_path / "missing.h5", blocker / "run"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_run_directory_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputNotWritableError, match="run directory"):
            train(_cfg(tmp_path / "missing.h5", ro / "run"))
    finally:
        ro.chmod(0o755)


def test_second_run_in_one_run_directory_is_refused(square_data, tmp_path, capsys):
    rd = tmp_path / "run"
    with output_lock(rd, what="run directory"):          # a first run in progress
        with pytest.raises(OutputLockedError, match=f"pid {os.getpid()}"):
            train(_cfg(square_data, rd, max_epochs=1))
        cfg = tmp_path / "c.yaml"
        cfg.write_text(yaml.safe_dump(_cfg(square_data, rd, max_epochs=1)))
        assert main(["train", "--config", str(cfg), "--quiet"]) == 1
        assert "is being written by" in capsys.readouterr().err
    assert not (rd / "log.csv").exists() and not (rd / "last.pt").exists()
    train(_cfg(square_data, rd, max_epochs=1))                # free again
    assert (rd / "last.pt").exists()
