"""What the commands share: the one rule for output files, argument types.

An output that exists is refused unless ``--force`` is given; the folder it
goes to must be writable (probed with a temporary file in the nearest existing
folder). Commands call :func:`check_output` for every file they will write
before they compute anything, so a bad path costs nothing.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Optional


def check_output(path, *, force: bool, suffix: Optional[str] = None,
                 option: str = "--out") -> Path:
    """Check that ``path`` may be written: new (or ``force``), right suffix, writable folder.

    Args:
        path: the output file.
        force: whether an existing file may be overwritten.
        suffix: the ending the file name must have (``".npz"``), or ``None``.
        option: the command-line option that gave ``path``, for the messages.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: saying what is wrong: the suffix, the file exists (use
            ``--force``), it is a folder, or its folder cannot be written.
    """
    p = Path(path)
    if suffix is not None and not p.name.endswith(suffix):
        raise ValueError(f"{option} must end in {suffix}, got '{p}'")
    if p.is_dir():
        raise ValueError(f"{option} '{p}' is a folder; give a file name")
    if p.exists() and not force:
        raise ValueError(f"'{p}' exists; use --force to overwrite it")
    folder = p.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"cannot write {option} '{p}': '{folder}' is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".ecnn_pyg_probe_"):
            pass
    except OSError as err:
        raise ValueError(f"cannot write {option} '{p}': the folder '{folder}' is not "
                         f"writable ({err.strerror or err})") from None
    return p


def positive_int(text: str) -> int:
    """``argparse`` type of a count: an integer >= 1.

    Args:
        text: the option's value.

    Returns:
        The integer.

    Raises:
        argparse.ArgumentTypeError: if ``text`` is not an integer >= 1.
    """
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return n
