"""A training run's checkpoint as a shippable model: weights without training state, and a card.

:func:`export_model` is what ``ecnn-pyg export`` runs. It writes ``NAME.pt``
(a checkpoint that :func:`ecnn_pyg.pretrained.load_model` reads, without the
optimizer, scheduler and RNG states) and ``NAME.yaml`` (the model card: the
model, its training data and config, the command, the metrics on the
training and validation splits, notes) into a folder you name, never into
the installed package. To ship the model with the package, a maintainer
copies the two files into ``ecnn_pyg/pretrained/`` and registers the name in
:data:`ecnn_pyg.pretrained.REGISTRY`.

The field-only protocol (``energy_weight: 0``) leaves the energy's constant
undetermined; it is calibrated on the *training* split: the mean of
``(E_ED - E_model) / N`` is added to the model's ``energy_shift``. The card's
metrics are measured after the calibration.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Tuple, Union

import numpy as np
import yaml

from .. import keys as K
from ..checkpoint import COMMITTEE_KIND, load_checkpoint, save_checkpoint
from ..models import model_from_checkpoint
from .data import load_training_parts
from .evaluate import evaluate_parts

__all__ = ["EXPORT_KEYS", "export_model", "calibrate_energy_shift"]

#: checkpoint entries an exported model keeps (no optimizer, scheduler or RNG state)
EXPORT_KEYS = ("model_type", "model_config", "model_state", "dtype", "data", "epoch", "metrics",
               "best", "train_config", "wall_time")

#: the folder of the installed package, which exports never write into
PACKAGE_DIR = Path(__file__).resolve().parents[1]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _check_out_dir(out_dir: Union[str, Path]) -> Path:
    out = Path(out_dir).expanduser().resolve()
    if out == PACKAGE_DIR or PACKAGE_DIR in out.parents:
        raise ValueError(f"--out '{out_dir}' is inside the installed package ({PACKAGE_DIR}); "
                         "export to a folder of your own (to ship the model with the package, "
                         "copy NAME.pt and NAME.yaml into ecnn_pyg/pretrained/ of a source "
                         "checkout and register the name there)")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out '{out_dir}' exists and is not a folder")
    return out


def calibrate_energy_shift(ckpt: Mapping[str, Any], parts) -> Tuple[Dict[str, Any], float]:
    """The checkpoint with ``energy_shift`` moved so that the mean training energy error is 0.

    Args:
        ckpt: a loaded checkpoint dict.
        parts: the :class:`~ecnn_pyg.training.data.TrainingPart` objects of its
            training data.

    Returns:
        ``(calibrated checkpoint dict, delta)``: ``delta``, the mean of
        ``(E_ED - E_model) / N`` over the training split, is added to
        ``model_config["energy_shift"]`` (the local energies become
        ``a eps + shift + delta``).

    Raises:
        ValueError: if the parts hold no training samples.
    """
    model = model_from_checkpoint(ckpt)
    res = evaluate_parts(model, parts, "train")
    de = [(np.asarray(p.train[K.ENERGY], np.float64) - r[K.ENERGY]) / p.n_sites
          for p, r in zip(parts, res["parts"]) if r is not None]
    if not de:
        raise ValueError("the data hold no training samples to calibrate the energy on")
    delta = float(np.concatenate(de).mean())
    mc = dict(ckpt["model_config"])
    mc["energy_shift"] = float(mc.get("energy_shift", 0.0)) + delta
    return {**ckpt, "model_config": mc}, delta


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def export_model(checkpoint: Union[str, Path], data: Union[str, Path, Sequence], name: str,
                 out_dir: Union[str, Path], command: str = "", notes: str = "",
                 force: bool = False) -> Tuple[Path, Path]:
    """Write ``out_dir/NAME.pt`` (calibrated model, no training state) and ``NAME.yaml`` (card).

    Args:
        checkpoint: a training run's checkpoint (``RUN/best.pt``).
        data: the data file, or list of files, the model was trained on (as
            the training config's ``data``); its training and validation splits
            are those named in the run's training config.
        name: the model's name (letters, digits, ``.``, ``_``, ``-``), the stem
            of the two files.
        out_dir: the output folder (created); never inside the installed
            ``ecnn_pyg`` package.
        command: the training command, recorded in the card.
        notes: free text recorded in the card.
        force: overwrite existing ``NAME.pt`` / ``NAME.yaml``.

    Returns:
        ``(path of NAME.pt, path of NAME.yaml)``.

    Raises:
        ValueError: if ``name`` is not a plain file stem, ``out_dir`` is inside
            the installed package or is a file, or the output files exist
            (without ``force``).
        CheckpointError: if ``checkpoint`` cannot be loaded.
        DataFileError: if ``data`` cannot be read or lacks a split.
    """
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith((".pt", ".yaml")):
        raise ValueError(f"--name must be a plain name (letters, digits, '.', '_', '-', without "
                         f"a suffix such as .pt), got {name!r}")
    out = _check_out_dir(out_dir)
    pt, card_path = out / f"{name}.pt", out / f"{name}.yaml"
    existing = [str(p) for p in (pt, card_path) if p.exists()]
    if existing and not force:
        raise ValueError(f"{' and '.join(existing)} exist(s); use --force to overwrite")
    ckpt = load_checkpoint(checkpoint)
    if ckpt.get("kind") == COMMITTEE_KIND:
        return _export_committee(ckpt, checkpoint, data, name, out, pt, card_path, command,
                                 notes)
    tcfg = ckpt.get("train_config") or {}
    _, parts = load_training_parts(data, tcfg.get("train_split", "train"),
                                   tcfg.get("val_split", "val"))
    ckpt, delta = calibrate_energy_shift(ckpt, parts)
    model = model_from_checkpoint(ckpt, source=str(checkpoint))
    metrics = _split_metrics(model, parts)
    card = {"name": name, "model_type": ckpt["model_type"], "model_config": ckpt["model_config"],
            "dtype": ckpt.get("dtype"), "trained_on": ckpt.get("data"),
            "epoch": int(ckpt.get("epoch", 0)),
            "training_wall_time_s": float(ckpt.get("wall_time", 0)),
            "command": command, "train_config": ckpt.get("train_config"),
            "energy_calibration": f"energy_shift += {delta:.6g} (mean (E_ED - E_model)/N on the "
                                  "training split; a field-only loss leaves it free)",
            "metrics": metrics, "notes": notes}
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(pt, _slim(ckpt, checkpoint))
    _write_text_atomic(card_path, yaml.safe_dump(card, sort_keys=False))
    return pt, card_path


def _slim(ckpt: Mapping[str, Any], source) -> Dict[str, Any]:
    """The entries of :data:`EXPORT_KEYS` and where they came from."""
    slim = {k: ckpt[k] for k in EXPORT_KEYS if k in ckpt}
    slim["exported_from"] = str(source)
    return slim


def _split_metrics(model, parts) -> Dict[str, Dict[str, float]]:
    """RMSEs of ``model`` on the training and validation splits, with their sample counts."""
    metrics = {}
    for split in ("train", "val"):
        m = evaluate_parts(model, parts, split)["metrics"]
        metrics[split] = {"samples": int(sum(len(getattr(p, split)[K.ENERGY]) for p in parts)),
                          **{k: float(v) for k, v in m.items() if k != "loss"}}
    return metrics


def _export_committee(ckpt, checkpoint, data, name, out, pt, card_path, command, notes):
    """:func:`export_model` of a committee file: every member calibrated and slimmed as a
    single model is, the committee's trust levels kept; the card's metrics are those of the
    members' mean, with each member's validation RMSE(B)."""
    from ..committee import committee_from_checkpoint, save_committee
    members = ckpt["members"]
    tcfg = members[0].get("train_config") or {}
    _, parts = load_training_parts(data, tcfg.get("train_split", "train"),
                                   tcfg.get("val_split", "val"))
    slim, deltas = [], []
    for i, member in enumerate(members):
        calibrated, delta = calibrate_energy_shift(member, parts)
        slim.append(_slim(calibrated, f"{checkpoint} (member {i})"))
        deltas.append(delta)
    committee = committee_from_checkpoint({**ckpt, "members": slim}, source=str(checkpoint))
    metrics = _split_metrics(committee, parts)
    per_member = [float(evaluate_parts(m, parts, "val")["metrics"].get("rmse_field", np.nan))
                  for m in committee.members]
    first = slim[0]
    card = {"name": name, "model_type": COMMITTEE_KIND, "members": len(slim),
            "member_type": first["model_type"], "model_config": first["model_config"],
            "dtype": first.get("dtype"), "trained_on": first.get("data"),
            "trust": dict(committee.trust), "command": command,
            "train_config": first.get("train_config"),
            "energy_calibration": "per member, energy_shift += "
                                  + ", ".join(f"{d:.6g}" for d in deltas)
                                  + " (mean (E_ED - E_model)/N on the training split)",
            "metrics": metrics, "member_val_rmse_field": per_member, "notes": notes}
    out.mkdir(parents=True, exist_ok=True)
    save_committee(pt, slim, trust=committee.trust, metrics=ckpt.get("metrics"))
    _write_text_atomic(card_path, yaml.safe_dump(card, sort_keys=False))
    return pt, card_path
