"""Checkpoint files: atomic writes, checked loads, validation of the checkpoint dict.

A checkpoint is a ``torch.save`` dict (loaded with ``weights_only=True``)::

    format          "ecnn_pyg-checkpoint"
    format_version  1
    package_version ecnn_pyg.__version__ of the writer
    model_type      name of the model type ("ecnn", "ifnn": see ecnn_pyg.models)
    model_config    constructor arguments of the model
    model_state     state_dict
    dtype           "float32" | "float64" (nothing else is accepted)
    data            lattice, size, hoppings and ED parameters of the training data
    epoch, metrics, best, train_config, optimizer_state, scheduler_state,
    rng_state, early_stop ...   (training state, for ``--resume``)

A committee (:mod:`ecnn_pyg.committee`) is one checkpoint of ``kind``
``"committee"`` (``model_type`` ``"committee"``, an empty ``model_state``)
whose ``members`` entry lists M >= 2 complete member checkpoints; each member
is validated (and its weights checked) as a checkpoint of its own.

Writes go to a temporary file in the same directory, then ``os.replace``: an
interrupted write never leaves a truncated checkpoint behind. Loads check the
archive's checksums (a damaged file is refused, not loaded with wrong
weights), unpickle tensors and plain containers only, and refuse weights that
are not finite (a diverged training).

This module is the bottom of the model-loading stack and knows no model: the
registry of model types (:mod:`ecnn_pyg.models`) rebuilds a model from a
checkpoint, :mod:`ecnn_pyg.pretrained` resolves the names of the shipped
models, and training (:mod:`ecnn_pyg.training`) writes checkpoints.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple, Union

import torch

from ._version import __version__

__all__ = ["CheckpointError", "COMMITTEE_KIND", "FORMAT", "FORMAT_VERSION", "REQUIRED_KEYS",
           "DTYPES", "save_checkpoint", "read_torch_file", "load_checkpoint",
           "validate_checkpoint", "check_finite_weights"]

FORMAT = "ecnn_pyg-checkpoint"
FORMAT_VERSION = 1
#: entries every checkpoint holds (besides the format fields)
REQUIRED_KEYS = ("model_type", "model_config", "model_state")
#: the floating types a model is stored and rebuilt in
DTYPES = ("float32", "float64")
#: ``kind`` of a committee checkpoint (its members are checkpoints of their own)
COMMITTEE_KIND = "committee"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupted, or of another format/package version."""


def _minor(version: str) -> Tuple[str, ...]:
    return tuple(str(version).split(".")[:2])


def _first_line(err) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def validate_checkpoint(ckpt: Any, source: str = "checkpoint",
                        strict_version: bool = True) -> Dict[str, Any]:
    """Check that ``ckpt`` is an ecnn_pyg checkpoint dict this package version can read.

    Args:
        ckpt: the object read from a checkpoint file (or about to be written).
        source: name of the checkpoint in error messages (e.g. its path).
        strict_version: refuse checkpoints written by another major.minor
            package release.

    Returns:
        ``ckpt`` itself.

    Raises:
        CheckpointError: if ``ckpt`` is not a dict with ``format`` =
            :data:`FORMAT`, has another ``format_version``, (with
            ``strict_version``) was written by another major.minor package
            release, or lacks or mistypes an entry of :data:`REQUIRED_KEYS`
            (``model_type`` a string, ``model_config`` and ``model_state``
            mappings), or has a ``dtype`` other than :data:`DTYPES`.
    """
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"'{source}' is a torch file but not an ecnn_pyg checkpoint "
                              f"(no format = '{FORMAT}')")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"'{source}' has checkpoint format version {ckpt.get('format_version')!r}; this "
            f"ecnn_pyg {__version__} reads version {FORMAT_VERSION}. Use the package version "
            f"that wrote it ({ckpt.get('package_version')!r}).")
    if strict_version and _minor(ckpt.get("package_version", "")) != _minor(__version__):
        raise CheckpointError(
            f"'{source}' was written by ecnn_pyg {ckpt.get('package_version')!r}, this is "
            f"{__version__}; models of another release may differ. Install that version, or "
            f"load with strict_version=False at your own risk.")
    for key in REQUIRED_KEYS:
        if key not in ckpt:
            raise CheckpointError(f"'{source}' lacks '{key}' (incomplete checkpoint)")
    if not isinstance(ckpt["model_type"], str):
        raise CheckpointError(f"'{source}': model_type must be a string (a model type name), "
                              f"got {type(ckpt['model_type']).__name__}")
    for key in ("model_config", "model_state"):
        if not isinstance(ckpt[key], Mapping):
            raise CheckpointError(f"'{source}': {key} must be a dict, "
                                  f"got {type(ckpt[key]).__name__}")
    if ckpt.get("dtype") is not None and ckpt["dtype"] not in DTYPES:
        raise CheckpointError(f"'{source}': dtype must be one of {list(DTYPES)}, "
                              f"got {ckpt['dtype']!r}")
    if ckpt.get("kind") == COMMITTEE_KIND:
        members = ckpt.get("members")
        if not isinstance(members, (list, tuple)) or len(members) < 2:
            raise CheckpointError(f"'{source}' is a committee checkpoint whose 'members' is not "
                                  f"a list of M >= 2 member checkpoints")
        for i, member in enumerate(members):
            if isinstance(member, Mapping) and member.get("kind") == COMMITTEE_KIND:
                raise CheckpointError(f"'{source}': member {i} is itself a committee")
            validate_checkpoint(member, source=f"{source} (member {i})",
                                strict_version=strict_version)
    return ckpt


def check_finite_weights(state: Mapping[str, Any], source: str = "checkpoint") -> None:
    """Refuse a state dict with NaN or infinite weights (a diverged training).

    Args:
        state: parameter name -> tensor.
        source: name of the checkpoint in the message.

    Raises:
        CheckpointError: naming the first parameter that is not finite and how
            many of its entries are not.
    """
    for name, value in state.items():
        if torch.is_tensor(value) and (value.is_floating_point() or value.is_complex()):
            finite = torch.isfinite(value)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                raise CheckpointError(
                    f"'{source}': the weights are not finite ({bad} of {value.numel()} entries "
                    f"of '{name}' are NaN or inf): the training diverged; use an earlier "
                    f"checkpoint (best.pt) or train again")


def save_checkpoint(path: Union[str, Path], state: Mapping[str, Any]) -> Path:
    """Write ``state`` (plus format fields) atomically: temp file, fsync, ``os.replace``.

    Args:
        path: destination file; parent folders are created.
        state: checkpoint entries (see the module docstring), at least
            :data:`REQUIRED_KEYS`; they are written after, so they may
            override, ``format``, ``format_version`` and ``package_version``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        CheckpointError: if ``state`` lacks or mistypes an entry of
            :data:`REQUIRED_KEYS` (nothing is written).
    """
    path = Path(path)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION,
               "package_version": __version__}
    payload.update(state)
    validate_checkpoint(payload, source=str(path), strict_version=False)
    path.parent.mkdir(parents=True, exist_ok=True)
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


def read_torch_file(path: Union[str, Path], what: str = "checkpoint") -> Any:
    """Load a ``torch.save`` file safely: tensors and plain containers only (``weights_only``).

    Checks, in order: the file exists and is a file, it is a zip archive, the
    checksums of its entries match (``torch.load`` does not check them, so
    damaged weights would load), and it unpickles with ``weights_only=True``.

    Args:
        path: the file.
        what: what the file should be, for the error messages.

    Returns:
        The loaded object (tensors on the CPU).

    Raises:
        CheckpointError: if the file is missing, a directory, not a
            ``torch.save`` file, truncated or corrupted, or holds Python
            objects other than tensors and plain containers.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{what} '{path}' does not exist")
    if path.is_dir():
        raise CheckpointError(f"{what} '{path}' is a directory, not a file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        raise CheckpointError(f"'{path}' is not a {what}: not a torch.save file (corrupted, "
                              f"or a file of another format)")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise CheckpointError(f"'{path}' is not a readable {what} (corrupted or truncated): "
                              f"{_first_line(err)}") from None
    if damaged is not None:
        raise CheckpointError(f"'{path}' is corrupted: the checksum of its entry '{damaged}' "
                              f"does not match its contents")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"'{path}' is not a {what}: it holds Python objects other than "
                              f"tensors and plain containers (refused, weights_only: "
                              f"{_first_line(err)})") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError, ValueError, AttributeError,
            IndexError, KeyError) as err:
        raise CheckpointError(f"'{path}' is not a readable {what} (corrupted or truncated): "
                              f"{_first_line(err)}") from None


def load_checkpoint(path: Union[str, Path], strict_version: bool = True) -> Dict[str, Any]:
    """Read and check a checkpoint (tensors and plain containers only: ``weights_only``).

    Args:
        path: checkpoint file.
        strict_version: refuse checkpoints written by another major.minor
            package release.

    Returns:
        The checkpoint dict (tensors on the CPU).

    Raises:
        CheckpointError: if the file cannot be read (see :func:`read_torch_file`),
            fails :func:`validate_checkpoint`, or its weights are not finite
            (:func:`check_finite_weights`).
    """
    ckpt = read_torch_file(path)
    validate_checkpoint(ckpt, source=str(path), strict_version=strict_version)
    check_finite_weights(ckpt["model_state"], source=str(path))
    if ckpt.get("kind") == COMMITTEE_KIND:
        for i, member in enumerate(ckpt["members"]):
            check_finite_weights(member["model_state"], source=f"{path} (member {i})")
    return ckpt
