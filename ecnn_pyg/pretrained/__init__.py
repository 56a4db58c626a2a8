"""Pretrained models shipped with the package, loadable by name.

``ecnn_pyg.pretrained.load("square-paper")`` returns the model (eval mode);
``ecnn-pyg evaluate --model square-paper ...`` uses the same registry. Each
entry is a checkpoint ``NAME.pt`` next to this file with a ``NAME.yaml``
stating how it was trained and the metrics it reached.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import yaml

__all__ = ["available", "path", "info", "load", "ship", "REGISTRY"]

_DIR = Path(__file__).parent

#: name -> checkpoint file name (in this directory)
REGISTRY: Dict[str, str] = {
    "square-paper": "square-paper.pt",
    "triangular-paper": "triangular-paper.pt",
}


def available() -> List[str]:
    """Names whose checkpoint file is present.

    Returns:
        Sorted names of :data:`REGISTRY` whose file is installed.
    """
    return sorted(n for n, f in REGISTRY.items() if (_DIR / f).exists())


def path(name: str) -> Path:
    """Checkpoint path of a pretrained model.

    Args:
        name: a name of :data:`REGISTRY`.

    Returns:
        Path of ``NAME.pt``.

    Raises:
        KeyError: if ``name`` is not registered.
        FileNotFoundError: if the checkpoint file is not installed.
    """
    if name not in REGISTRY:
        raise KeyError(f"no pretrained model {name!r}; known: {sorted(REGISTRY)}")
    p = _DIR / REGISTRY[name]
    if not p.exists():
        raise FileNotFoundError(f"pretrained model {name!r} is registered but its file {p} "
                                "is not installed")
    return p


def info(name: str) -> dict:
    """The model card (``NAME.yaml``: training command, data, metrics).

    Args:
        name: a name of :data:`REGISTRY`.

    Returns:
        The parsed card, or ``{}`` if there is none.

    Raises:
        KeyError: if ``name`` is not registered.
        FileNotFoundError: if the checkpoint file is not installed.
    """
    card = path(name).with_suffix(".yaml")
    return yaml.safe_load(card.read_text()) if card.exists() else {}


def load(name: str):
    """The pretrained model ``name`` (eval mode).

    Args:
        name: a name of :data:`REGISTRY`.

    Returns:
        The model (see :func:`ecnn_pyg.checkpoint.load_model`).

    Raises:
        KeyError: if ``name`` is not registered.
        FileNotFoundError: if the checkpoint file is not installed.
        CheckpointError: if the checkpoint cannot be loaded.
    """
    from ..checkpoint import load_model
    return load_model(path(name))


def ship(src, name: str, data, command: str = "", notes: str = "", dst_dir=None):
    """Make the pretrained entry ``name`` from a run's checkpoint ``src``.

    The field-only protocol (``energy_weight: 0``) leaves the energy's constant
    undetermined; it is calibrated here on the *training* split (the mean of
    ``(E_ED - E_model) / N`` is added to the model's ``energy_shift``). The
    model card ``NAME.yaml`` records the command, the epochs and the metrics
    on the train and validation splits of ``data``, measured after calibration.

    Args:
        src: checkpoint of a training run.
        name: name of the entry (files ``NAME.pt`` and ``NAME.yaml``).
        data: the data file (or list of files, as the training config's
            ``data``) the model was trained on; its training and validation
            splits as named in the run's training config.
        command: the training command, recorded in the card.
        notes: free text recorded in the card.
        dst_dir: output folder (default: this package folder).

    Returns:
        Path of the exported ``NAME.pt``.

    Raises:
        CheckpointError: if ``src`` cannot be loaded.
        DataFileError: if ``data`` cannot be read or lacks a split.
    """
    import numpy as np
    from .. import keys as K
    from ..checkpoint import export_model, load_checkpoint, model_from_checkpoint, save_checkpoint
    from ..train import evaluate_parts, load_training_parts
    ckpt = load_checkpoint(src)
    tcfg = ckpt.get("train_config", {})
    _, parts = load_training_parts(data, tcfg.get("train_split", "train"),
                                   tcfg.get("val_split", "val"))
    model = model_from_checkpoint(ckpt)
    res = evaluate_parts(model, parts, "train")
    de = [(p.train[K.ENERGY] - r[K.ENERGY]) / p.n_sites
          for p, r in zip(parts, res["parts"]) if r is not None]
    delta = float(np.concatenate(de).mean())
    mc = dict(ckpt["model_config"])
    mc["energy_shift"] = float(mc.get("energy_shift", 0.0)) + delta   # eps -> a eps + shift
    ckpt["model_config"] = mc
    dst_dir = _DIR if dst_dir is None else dst_dir
    from pathlib import Path as _P
    tmp = _P(dst_dir) / f".{name}.calibrated.pt"
    save_checkpoint(tmp, {k: v for k, v in ckpt.items()
                          if k not in ("format", "format_version", "package_version")})
    model = model_from_checkpoint(load_checkpoint(tmp))
    metrics = {}
    for split in ("train", "val"):
        m = evaluate_parts(model, parts, split)["metrics"]
        metrics[split] = {"samples": int(sum(len(getattr(p, split)[K.ENERGY]) for p in parts)),
                          **{k: float(v) for k, v in m.items() if k != "loss"}}
    card = {"name": name, "model_type": ckpt["model_type"], "model_config": mc,
            "dtype": ckpt.get("dtype"), "trained_on": ckpt.get("data"),
            "epoch": int(ckpt["epoch"]), "training_wall_time_s": float(ckpt.get("wall_time", 0)),
            "command": command, "train_config": ckpt.get("train_config"),
            "energy_calibration": f"energy_shift += {delta:.6g} (mean (E_ED - E_model)/N on the "
                                  "training split; a field-only loss leaves it free)",
            "metrics": metrics, "notes": notes}
    out = export_model(tmp, _P(dst_dir) / f"{name}.pt", card)
    tmp.unlink()
    return out
