"""The files of a learning run: atomic writes (temporary file, then rename) and their names."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Callable, Union

import numpy as np

__all__ = ["ROUND0_STAGES", "STAGES", "jsonable", "replace_into", "write_json", "write_text",
           "read_json", "save_npy", "save_npz", "round_dir"]

#: the stages of round 0 and of every later round, in order
ROUND0_STAGES = ("seed", "train", "report")
STAGES = ("explore", "score", "select", "label", "train", "report")


def jsonable(obj):
    """``obj`` with numpy values, paths and tuples made JSON-ready (non-finite floats: None)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    return obj


def replace_into(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temporary file in its folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path, obj) -> None:
    """``obj`` as JSON at ``path``, atomically (non-finite numbers as null)."""
    text = json.dumps(jsonable(obj), indent=1, sort_keys=False)
    replace_into(Path(path), lambda p: p.write_text(text + "\n"))


def write_text(path: Path, text: str) -> None:
    """``text`` at ``path``, atomically."""
    replace_into(Path(path), lambda p: p.write_text(text))


def read_json(path: Union[str, Path]):
    """A JSON file of the run (a stage record, a report)."""
    return json.loads(Path(path).read_text())


def save_npy(path: Path, array: np.ndarray) -> None:
    """``array`` as a ``.npy`` file at ``path``, atomically."""
    def write(p):
        with open(p, "wb") as fh:
            np.save(fh, array)
    replace_into(path, write)


def save_npz(path: Path, **arrays) -> None:
    """``arrays`` as an ``.npz`` file at ``path``, atomically."""
    def write(p):
        with open(p, "wb") as fh:
            np.savez(fh, **arrays)
    replace_into(path, write)


def round_dir(run_dir: Path, k: int) -> Path:
    """The folder of round ``k``."""
    return Path(run_dir) / f"round_{k:03d}"
