"""The training config: its schema and the checks beyond key types.

Every key is commented in ``configs/square_train.yaml``; ``model_config`` is
checked against the schema of the model type (:mod:`ecnn_pyg.models`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch

from ..config import REQUIRED, ConfigError, load_config
from ..models import check_model_config

__all__ = ["TRAIN_SCHEMA", "RANGES", "RESUME_MUTABLE", "DTYPES", "ENERGY_REFERENCES",
           "load_train_config"]

_NONE = type(None)
#: key -> (type(s), default); REQUIRED keys have no default
TRAIN_SCHEMA = {
    "model": (str, "ecnn"),
    "model_config": (dict, {}),
    "init_from": ((str, _NONE), None),  # fine-tuning: start from this checkpoint's weights
    "data": ((str, list), REQUIRED),   # one data file, or a list whose splits are concatenated
    "train_split": (str, "train"),
    "val_split": (str, "val"),
    "max_train_samples": ((int, _NONE), None),
    "run_dir": (str, REQUIRED),
    "seed": (int, 0),
    "dtype": ((str, _NONE), None),
    "num_threads": ((int, _NONE), None),
    "batch_size": (int, 1),
    "energy_weight": (float, 0.0),
    "auto_energy_shift": (bool, True),
    "weight_by_energy": ((float, _NONE), None),  # D: sample weights (D / (e - e_min + D))^2
    "weight_by_energy_above": (str, "lowest"),   # e_min: the lowest label, or "zeeman_hull"
    "data_weights": ((dict, _NONE), None),      # {data file (path or name): weight of its samples}
    "optimizer": (str, "adagrad"),
    "lr": (float, 0.01),
    "weight_decay": (float, 0.0),
    "grad_clip": ((float, _NONE), None),
    "scheduler": ((str, _NONE), "plateau"),
    "lr_factor": (float, 0.5),
    "lr_patience": (int, 20),
    "min_lr": (float, 0.0),
    "max_epochs": (int, 1000),
    "early_stopping_patience": ((int, _NONE), 100),
    "best_on": (str, "val"),           # the loss that picks best.pt, drives the scheduler, stops
    "min_delta": (float, 0.0),
    "max_time": ((float, _NONE), None),
    "augment": ((bool, str), False),   # true = "rotations"; "point_group": mirrors too
    "val_batch_size": ((int, _NONE), None),
    "plot_every": (int, 10),           # 0: no learning-curve plot
    "progress": (bool, True),
    "committee": ((int, _NONE), None),  # M >= 2: train a committee of M seeds (ecnn_pyg.committee)
}

#: the values each numeric key accepts: key -> (test, description); ``null`` passes
#: where the schema allows it
RANGES = {
    "max_train_samples": (lambda v: v >= 1, ">= 1 (or null: every sample)"),
    "seed": (lambda v: v >= 0, ">= 0"),
    "num_threads": (lambda v: v >= 1, ">= 1 (or null: torch's default)"),
    "batch_size": (lambda v: v >= 1, ">= 1"),
    "energy_weight": (lambda v: v >= 0, ">= 0 and finite (0: fields only)"),
    "weight_by_energy": (lambda v: v > 0, "> 0 and finite, an energy per site (or null: "
                                           "every sample weighs the same)"),
    "lr": (lambda v: v > 0, "> 0 and finite"),
    "weight_decay": (lambda v: v >= 0, ">= 0 and finite"),
    "grad_clip": (lambda v: v > 0, "> 0 and finite (or null: no clipping)"),
    "lr_factor": (lambda v: 0 < v < 1, "in (0, 1)"),
    "lr_patience": (lambda v: v >= 0, ">= 0"),
    "min_lr": (lambda v: v >= 0, ">= 0 and finite"),
    "max_epochs": (lambda v: v >= 1, ">= 1"),
    "early_stopping_patience": (lambda v: v >= 0, ">= 0 (0 or null: no early stopping)"),
    "min_delta": (lambda v: v >= 0, ">= 0 and finite"),
    "max_time": (lambda v: v > 0, "> 0 seconds and finite (or null: no limit)"),
    "val_batch_size": (lambda v: v >= 1, ">= 1 (or null: from batch_size)"),
    "plot_every": (lambda v: v >= 0, ">= 0 (0: no plot)"),
    "committee": (lambda v: v >= 2, "an integer >= 2 (M >= 2 members; null: one model)"),
}

#: what ``weight_by_energy`` measures a label's energy from (Trainer._set_sample_weights)
ENERGY_REFERENCES = ("lowest", "zeeman_hull")
#: the values of ``augment``: true is "rotations"
AUGMENT = ("rotations", "point_group")

#: keys that may differ when a run is resumed (they do not change the path of the run)
RESUME_MUTABLE = ("max_epochs", "max_time", "early_stopping_patience", "progress", "plot_every",
                  "num_threads", "val_batch_size", "data")

#: the ``dtype`` values and their torch dtypes
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def load_train_config(config, overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Read and check a training config; fill in the defaults of it and of its model config.

    Args:
        config: a YAML path or a mapping with keys of :data:`TRAIN_SCHEMA`
            (keys starting with ``_`` are ignored).
        overrides: ``{key: value}`` applied over ``config``; ``model_config.KEY``
            sets one key of the model config.

    Returns:
        The full config; ``model_config`` holds every key of the model type and
        ``_given_model_keys`` the model keys the config set itself.

    Raises:
        ConfigError: if a key is unknown or of the wrong type, a required key
            is missing, ``optimizer`` / ``scheduler`` / ``dtype`` has an
            unknown value, a number is out of its range (:data:`RANGES`: e.g.
            ``lr`` must be finite and > 0, ``energy_weight`` finite and >= 0),
            or the model type or its config is invalid.
    """
    overrides = dict(overrides or {})
    if isinstance(config, Mapping):
        config = {k: v for k, v in config.items() if not str(k).startswith("_")}
    nested = {k: overrides.pop(k) for k in list(overrides) if k.startswith("model_config.")}
    cfg = load_config(config, TRAIN_SCHEMA, overrides)
    cfg["model_config"] = dict(cfg["model_config"])
    for k, v in nested.items():
        cfg["model_config"][k.split(".", 1)[1]] = v
    if cfg["optimizer"] not in ("adagrad", "adam"):
        raise ConfigError(f"config key 'optimizer' must be 'adagrad' or 'adam', "
                          f"got {cfg['optimizer']!r}")
    if cfg["scheduler"] not in (None, "plateau"):
        raise ConfigError(f"config key 'scheduler' must be 'plateau' or null, "
                          f"got {cfg['scheduler']!r}")
    if cfg["weight_by_energy_above"] not in ENERGY_REFERENCES:
        raise ConfigError(f"config key 'weight_by_energy_above' must be one of "
                          f"{list(ENERGY_REFERENCES)} ('lowest': the lowest training label; "
                          f"'zeeman_hull': the best training label at the most favourable "
                          f"Zeeman field), got {cfg['weight_by_energy_above']!r}")
    if cfg["best_on"] not in ("val", "train"):
        raise ConfigError(f"config key 'best_on' must be 'val' (the validation loss) or 'train' "
                          f"(the epoch's training loss), got {cfg['best_on']!r}")
    if cfg["dtype"] is not None and cfg["dtype"] not in DTYPES:
        raise ConfigError(f"config key 'dtype' must be one of {list(DTYPES)} or null, "
                          f"got {cfg['dtype']!r}")
    _check_ranges(cfg)
    if isinstance(cfg["augment"], str) and cfg["augment"] not in AUGMENT:
        raise ConfigError(f"config key 'augment' must be true, false, 'rotations' or "
                          f"'point_group', got {cfg['augment']!r}")
    for key in ("train_split", "val_split", "run_dir"):
        if not cfg[key].strip():
            raise ConfigError(f"config key '{key}' must not be empty")
    data = cfg["data"] if isinstance(cfg["data"], list) else [cfg["data"]]
    if not data or not all(isinstance(d, str) and d.strip() for d in data):
        raise ConfigError(f"config key 'data' must be a data file path or a non-empty list of "
                          f"them, got {cfg['data']!r}")
    _check_data_weights(cfg["data_weights"], data)
    given = set(cfg["model_config"])
    cfg["model_config"] = check_model_config(cfg["model"], cfg["model_config"])
    cfg["_given_model_keys"] = sorted(given)
    return cfg


def data_file_weights(data_weights: Optional[Mapping[str, Any]], data) -> list:
    """The weight of every file of ``data`` (a list) under ``data_weights``: a file named by
    its path as written in ``data`` or by its file name; 1 for the others."""
    weights = dict(data_weights or {})
    return [float(weights.get(d, weights.get(Path(d).name, 1.0))) for d in data]


def _check_data_weights(data_weights: Optional[Mapping[str, Any]], data) -> None:
    """Refuse ``data_weights`` that name no file of ``data`` or give a weight that is not a
    finite number > 0."""
    if data_weights is None:
        return
    names = set(data) | {Path(d).name for d in data}
    for key, w in data_weights.items():
        if key not in names:
            raise ConfigError(f"config key 'data_weights' names '{key}', which is no file of "
                              f"'data' (give a path as written there, or a file name): {data}")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) \
                or w <= 0:
            raise ConfigError(f"config key 'data_weights' must give each file a finite weight "
                              f"> 0, got {w!r} for '{key}'")


def _check_ranges(cfg: Mapping[str, Any]) -> None:
    """Refuse numbers outside :data:`RANGES` (NaN and infinities included)."""
    for key, (test, desc) in RANGES.items():
        value = cfg.get(key)
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config key '{key}' must be {desc}, got {value!r}")
        if not test(value):
            raise ConfigError(f"config key '{key}' must be {desc}, got {value!r}")
