"""Checkpoints of trained models: atomic writes, checked loads, model types by name.

A checkpoint is a ``torch.save`` dict (loaded with ``weights_only=True``)::

    format          "ecnn_pyg-checkpoint"
    format_version  1
    package_version ecnn_pyg.__version__ of the writer
    model_type      "ecnn" | "ifnn"  (key of :data:`MODEL_TYPES`)
    model_config    constructor arguments of the model
    model_state     state_dict
    dtype           "float32" | "float64"
    data            lattice, size, hoppings and ED parameters of the training data
    epoch, metrics, best, train_config, optimizer_state, scheduler_state,
    rng_state, early_stop ...   (training state, for ``--resume``)

Writes go to a temporary file in the same directory, then ``os.replace``: an
interrupted write never leaves a truncated checkpoint behind.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch

from . import __version__
from .config import ConfigError, load_config

__all__ = ["CheckpointError", "FORMAT", "FORMAT_VERSION", "MODEL_TYPES", "MODEL_SCHEMAS",
           "build_model", "check_model_config", "save_checkpoint", "load_checkpoint",
           "load_model", "load_model_and_checkpoint", "model_from_checkpoint",
           "export_model"]

FORMAT = "ecnn_pyg-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupted, or of another format/package version."""


def _ecnn():
    from .nn import ECNN
    return ECNN


def _ifnn():
    from .baseline import IFNN
    return IFNN


#: model type name -> function returning the class (``cls.from_config(cfg)``, ``.config``)
MODEL_TYPES = {"ecnn": _ecnn, "ifnn": _ifnn}

_NONE = type(None)
#: config schemas of the model types (``load_config`` checks keys and types)
MODEL_SCHEMAS: Dict[str, Dict[str, Tuple]] = {
    "ecnn": {
        "lattice": ((str, _NONE), "square"),
        "num_bond_types": ((int, _NONE), None),
        "num_shells": ((int, _NONE), None),
        "weight_sharing": (str, "type"),
        "channels": (int, 8),
        "lmax": (int, 2),
        "lmax_filter": (int, 1),
        "num_blocks": (int, 4),
        "output_channels": (list, [8, 4, 2, 1]),
        "time_reversal": (bool, False),
        "avg_num_neighbors": ((float, _NONE), None),
        "energy_scale": (float, 1.0),
        "energy_shift": (float, 0.0),
    },
    "ifnn": {
        "lattice": (str, "square"),
        "radius2": (float, 26.0),
        "pair_radius2": (float, 9.0),
        "hidden": (list, [1024, 512, 256, 128, 64]),
        "energy_scale": (float, 1.0),
        "energy_shift": (float, 0.0),
    },
}


def check_model_config(model_type: str, config: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The full, type-checked config of a model type (unknown keys/types refused).

    Args:
        model_type: a key of :data:`MODEL_TYPES` (``"ecnn"`` or ``"ifnn"``).
        config: constructor arguments; missing keys take the schema defaults.

    Returns:
        Every constructor argument of the model type, defaults filled in.

    Raises:
        ConfigError: if the model type is unknown, or a key is unknown or of
            the wrong type (see :data:`MODEL_SCHEMAS`).
    """
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"unknown model type {model_type!r}; available: {sorted(MODEL_TYPES)}")
    schema = dict(MODEL_SCHEMAS[model_type])
    if model_type == "ecnn":            # keys the model may have gained since
        from .nn import DEFAULT_CONFIG
        for k, v in DEFAULT_CONFIG.items():
            schema.setdefault(k, (object, v))
    try:
        return load_config(dict(config or {}), schema)
    except ConfigError as err:
        raise ConfigError(f"model_config ({model_type}): {err}") from None


def build_model(model_type: str, config: Optional[Mapping[str, Any]] = None) -> torch.nn.Module:
    """A new model of type ``model_type`` (``"ecnn"`` or ``"ifnn"``) from its config.

    Args:
        model_type: a key of :data:`MODEL_TYPES`.
        config: constructor arguments (checked by :func:`check_model_config`).

    Returns:
        The new, untrained model.

    Raises:
        ConfigError: if the model type or the config is invalid.
        ValueError: if the model refuses the (well-typed) arguments.
    """
    cfg = check_model_config(model_type, config)
    return MODEL_TYPES[model_type]().from_config(cfg)


def save_checkpoint(path: Union[str, Path], state: Mapping[str, Any]) -> Path:
    """Write ``state`` (plus format fields) atomically: temp file, fsync, ``os.replace``.

    Args:
        path: destination file; parent folders are created.
        state: checkpoint entries (see the module docstring); they are written
            after, so they may override, ``format``, ``format_version`` and
            ``package_version``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION,
               "package_version": __version__}
    payload.update(state)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)          # mkstemp makes 0600; give a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _first_line(err) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _minor(version: str) -> Tuple[str, ...]:
    return tuple(str(version).split(".")[:2])


def load_checkpoint(path: Union[str, Path], strict_version: bool = True) -> Dict[str, Any]:
    """Read and check a checkpoint.

    Args:
        path: checkpoint file.
        strict_version: refuse checkpoints written by another major.minor
            package release.

    Returns:
        The checkpoint dict (tensors on the CPU).

    Raises:
        CheckpointError: if the file is missing, corrupted or truncated, not an
            ecnn_pyg checkpoint, of another ``format_version``, (with
            ``strict_version``) of another major.minor package release, lacks
            the model entries, or names an unknown model type.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        raise CheckpointError(f"'{path}' is not a checkpoint: not a torch.save file (corrupted, "
                              f"or a file of another format)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"'{path}' is not an ecnn_pyg checkpoint: it holds Python objects "
                              f"other than tensors and plain containers ({_first_line(err)})"
                              ) from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError, ValueError, AttributeError,
            IndexError, KeyError) as err:
        raise CheckpointError(f"'{path}' is not a readable checkpoint (corrupted or truncated): "
                              f"{_first_line(err)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is a torch file but not an ecnn_pyg checkpoint "
                              f"(no format = '{FORMAT}')")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"'{path}' has checkpoint format version {ckpt.get('format_version')!r}; this "
            f"ecnn_pyg {__version__} reads version {FORMAT_VERSION}. Use the package version "
            f"that wrote it ({ckpt.get('package_version')!r}).")
    if strict_version and _minor(ckpt.get("package_version", "")) != _minor(__version__):
        raise CheckpointError(
            f"'{path}' was written by ecnn_pyg {ckpt.get('package_version')!r}, this is "
            f"{__version__}; models of another release may differ. Install that version, or "
            f"load with strict_version=False at your own risk.")
    for key in ("model_type", "model_config", "model_state"):
        if key not in ckpt:
            raise CheckpointError(f"'{path}' lacks '{key}' (incomplete checkpoint)")
    if ckpt["model_type"] not in MODEL_TYPES:
        raise CheckpointError(f"'{path}' holds a model of unknown type {ckpt['model_type']!r}; "
                              f"this version knows {sorted(MODEL_TYPES)}")
    return ckpt


def model_from_checkpoint(ckpt: Mapping[str, Any], source: str = "checkpoint") -> torch.nn.Module:
    """Rebuild the model of a loaded checkpoint dict (eval mode, its dtype).

    Args:
        ckpt: a checkpoint dict (from :func:`load_checkpoint`).
        source: name of the checkpoint in error messages.

    Returns:
        The model with the checkpoint's weights, in eval mode and ``dtype``.

    Raises:
        CheckpointError: if the model config does not build or the weights do
            not fit the model.
    """
    try:
        model = build_model(ckpt["model_type"], ckpt["model_config"])
    except (ConfigError, ValueError) as err:
        raise CheckpointError(f"{source}: its model config does not build: {err}") from None
    dtype = getattr(torch, ckpt.get("dtype", "float32"))
    model.to(dtype)
    try:
        model.load_state_dict(ckpt["model_state"])
    except RuntimeError as err:
        raise CheckpointError(f"{source}: weights do not fit the model "
                              f"({str(err).splitlines()[0]})") from None
    model.eval()
    return model


def load_model_and_checkpoint(name_or_path: Union[str, Path], strict_version: bool = True
                              ) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """``(model, checkpoint dict)`` from a checkpoint path or a pretrained name.

    Args:
        name_or_path: a checkpoint file, or a name of
            :func:`ecnn_pyg.pretrained.available`.
        strict_version: see :func:`load_checkpoint`.

    Returns:
        ``(model, ckpt)``: the model (eval mode, ``model.trained_on`` set to the
        checkpoint's ``data`` entry) and the checkpoint dict.

    Raises:
        CheckpointError: if ``name_or_path`` is neither an existing file nor a
            pretrained name, or the checkpoint cannot be loaded or rebuilt.
    """
    from . import pretrained
    p = Path(name_or_path)
    if not p.exists() and str(name_or_path) in pretrained.available():
        p = pretrained.path(str(name_or_path))
    elif not p.exists():
        raise CheckpointError(f"'{name_or_path}' is neither a checkpoint file nor a pretrained "
                              f"model name (available: {pretrained.available()})")
    ckpt = load_checkpoint(p, strict_version=strict_version)
    model = model_from_checkpoint(ckpt, source=str(p))
    model.trained_on = dict(ckpt.get("data") or {})     # lattice, size, hoppings, ED params
    return model, ckpt


def load_model(name_or_path: Union[str, Path], strict_version: bool = True) -> torch.nn.Module:
    """The model (eval mode) of a checkpoint path or a pretrained name (``square-paper``).

    ``model.trained_on`` holds the lattice, size, hoppings and ED parameters of
    its training data; :func:`load_model_and_checkpoint` also returns the
    whole checkpoint (metrics, epoch, training config).

    Args:
        name_or_path: a checkpoint file, or a name of
            :func:`ecnn_pyg.pretrained.available`.
        strict_version: see :func:`load_checkpoint`.

    Returns:
        The model in eval mode.

    Raises:
        CheckpointError: if ``name_or_path`` is neither an existing file nor a
            pretrained name, or the checkpoint cannot be loaded or rebuilt.
    """
    return load_model_and_checkpoint(name_or_path, strict_version)[0]


#: checkpoint entries kept by :func:`export_model` (no optimizer or RNG state)
EXPORT_KEYS = ("model_type", "model_config", "model_state", "dtype", "data", "epoch", "metrics",
               "best", "train_config", "wall_time")


def export_model(src: Union[str, Path], dst: Union[str, Path],
                 card: Optional[Mapping[str, Any]] = None) -> Path:
    """Copy the model of checkpoint ``src`` to ``dst`` without the training state.

    Writes ``dst`` (a checkpoint that :func:`load_model` reads) and, with
    ``card``, ``dst`` with suffix ``.yaml``: a model card (how it was trained,
    its metrics) in YAML.

    Args:
        src: checkpoint to export (read with ``strict_version=True``).
        dst: exported checkpoint (written atomically).
        card: optional model card, written as YAML next to ``dst``.

    Returns:
        ``dst`` as a :class:`~pathlib.Path`.

    Raises:
        CheckpointError: if the file is missing, corrupted or truncated, not an
            ecnn_pyg checkpoint, of another ``format_version``, (with
            ``strict_version``) of another major.minor package release, lacks
            the model entries, or names an unknown model type.
    """
    import yaml
    ckpt = load_checkpoint(src)
    slim = {k: ckpt[k] for k in EXPORT_KEYS if k in ckpt}
    slim["exported_from"] = str(src)
    dst = save_checkpoint(dst, slim)
    if card is not None:
        Path(dst).with_suffix(".yaml").write_text(yaml.safe_dump(dict(card), sort_keys=False))
    return dst
