"""Pretrained models shipped with the package, loadable by name.

``ecnn_pyg.pretrained.load("square-paper")`` returns the model (eval mode);
``ecnn-pyg evaluate --model square-paper ...`` uses the same registry, through
:func:`load_model`, which takes a pretrained name or a checkpoint path. Each
entry is a checkpoint ``NAME.pt`` next to this file with a ``NAME.yaml`` model
card stating how it was trained and the metrics it reached.

New entries are made by ``ecnn-pyg export`` (see
:func:`ecnn_pyg.training.export_model`), which writes ``NAME.pt`` and
``NAME.yaml`` to a folder of your choice, never into the installed package;
a maintainer copies them here and adds the name to :data:`REGISTRY`.

A committee checkpoint (kind ``"committee"``, :mod:`ecnn_pyg.committee`)
loads as a :class:`~ecnn_pyg.committee.Committee`, from its file or from the
folder holding its ``committee.pt``; every other checkpoint as its model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

import torch
import yaml

from ..checkpoint import COMMITTEE_KIND, CheckpointError, load_checkpoint
from ..models import model_from_checkpoint

__all__ = ["available", "path", "info", "load", "load_model", "load_model_and_checkpoint",
           "REGISTRY"]

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


def _model_of(ckpt: Dict[str, Any], source: str) -> torch.nn.Module:
    """The model of a loaded checkpoint: a committee for kind ``"committee"``."""
    if ckpt.get("kind") == COMMITTEE_KIND:
        from ..committee import committee_from_checkpoint
        return committee_from_checkpoint(ckpt, source=source)
    return model_from_checkpoint(ckpt, source=source)


def load_model_and_checkpoint(name_or_path: Union[str, Path], strict_version: bool = True
                              ) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """``(model, checkpoint dict)`` from a checkpoint path or a pretrained name.

    An existing file wins over a pretrained name of the same spelling; a
    folder holding a ``committee.pt`` (the run directory of a committee
    training) stands for that file, and the run directory of ``ecnn-pyg
    learn`` for its latest committee (:func:`ecnn_pyg.committee.committee_file`).

    Args:
        name_or_path: a checkpoint file, or a name of :func:`available`.
        strict_version: refuse a checkpoint written by another major.minor
            package release (see :func:`ecnn_pyg.checkpoint.load_checkpoint`).

    Returns:
        ``(model, ckpt)``: the model (eval mode, ``model.trained_on`` set to the
        checkpoint's ``data`` entry; a :class:`~ecnn_pyg.committee.Committee`
        for a committee checkpoint) and the checkpoint dict.

    Raises:
        CheckpointError: if ``name_or_path`` is neither an existing file nor a
            pretrained name, or the checkpoint cannot be loaded or rebuilt.
    """
    from ..committee import committee_file
    p = committee_file(name_or_path)
    if not p.exists():
        if str(name_or_path) not in available():
            raise CheckpointError(f"'{name_or_path}' is neither a checkpoint file nor a "
                                  f"pretrained model name (available: {available()})")
        p = path(str(name_or_path))
    ckpt = load_checkpoint(p, strict_version=strict_version)
    return _model_of(ckpt, str(p)), ckpt


def load_model(name_or_path: Union[str, Path], strict_version: bool = True) -> torch.nn.Module:
    """The model (eval mode) of a checkpoint path or a pretrained name (``square-paper``).

    ``model.trained_on`` holds the lattice, size, hoppings and ED parameters of
    its training data; :func:`load_model_and_checkpoint` also returns the
    whole checkpoint (metrics, epoch, training config).

    Args:
        name_or_path: a checkpoint file, or a name of :func:`available`.
        strict_version: see :func:`load_model_and_checkpoint`.

    Returns:
        The model in eval mode.

    Raises:
        CheckpointError: if ``name_or_path`` is neither an existing file nor a
            pretrained name, or the checkpoint cannot be loaded or rebuilt.
    """
    return load_model_and_checkpoint(name_or_path, strict_version)[0]


def load(name: str) -> torch.nn.Module:
    """The pretrained model ``name`` (eval mode).

    Args:
        name: a name of :data:`REGISTRY`.

    Returns:
        The model (see :func:`load_model`).

    Raises:
        KeyError: if ``name`` is not registered.
        FileNotFoundError: if the checkpoint file is not installed.
        CheckpointError: if the checkpoint cannot be loaded.
    """
    p = path(name)
    return _model_of(load_checkpoint(p), str(p))
