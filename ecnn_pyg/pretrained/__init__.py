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

__all__ = ["available", "path", "info", "load", "REGISTRY"]

_DIR = Path(__file__).parent

#: name -> checkpoint file name (in this directory)
REGISTRY: Dict[str, str] = {
    "square-paper": "square-paper.pt",
}


def available() -> List[str]:
    """Names whose checkpoint file is present."""
    return sorted(n for n, f in REGISTRY.items() if (_DIR / f).exists())


def path(name: str) -> Path:
    """Checkpoint path of a pretrained model."""
    if name not in REGISTRY:
        raise KeyError(f"no pretrained model {name!r}; known: {sorted(REGISTRY)}")
    p = _DIR / REGISTRY[name]
    if not p.exists():
        raise FileNotFoundError(f"pretrained model {name!r} is registered but its file {p} "
                                "is not installed")
    return p


def info(name: str) -> dict:
    """The model card (``NAME.yaml``: training command, data, metrics)."""
    card = path(name).with_suffix(".yaml")
    return yaml.safe_load(card.read_text()) if card.exists() else {}


def load(name: str):
    """The pretrained model ``name`` (eval mode)."""
    from ..checkpoint import load_model
    return load_model(path(name))[0]
