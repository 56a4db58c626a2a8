"""The log of a training run (``log.csv``, one row per epoch) and its learning-curve figure.

The figure is drawn with matplotlib's object API on an Agg canvas: it never
selects or changes the global pyplot backend (a notebook keeps its own).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Dict, List, Mapping, Union

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["LOG_COLUMNS", "read_log", "write_log_row", "plot_learning_curve"]

#: columns of ``log.csv``: per epoch, the running train and the validation metrics
LOG_COLUMNS = ["epoch", "train_loss", "val_loss", "train_rmse_field", "val_rmse_field",
               "train_rmse_field_transverse", "val_rmse_field_transverse",
               "train_rmse_energy_per_site", "val_rmse_energy_per_site", "lr", "epoch_time",
               "wall_time"]


def read_log(path: Union[str, Path]) -> List[Dict[str, str]]:
    """The rows of a ``log.csv`` (values as strings), ``[]`` if the file does not exist.

    Args:
        path: the log file.

    Returns:
        One dict per epoch, keyed by :data:`LOG_COLUMNS`.
    """
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_log_row(path: Union[str, Path], row: Mapping[str, Any]) -> Path:
    """Add the row of one epoch to ``log.csv``, replacing rows of that epoch and later ones.

    A resumed run rewrites the epochs it repeats; the file is replaced
    atomically (temporary file, then ``os.replace``).

    Args:
        path: the log file (created if missing).
        row: the epoch's values; at least the keys of :data:`LOG_COLUMNS`.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        KeyError: if ``row`` lacks a column of :data:`LOG_COLUMNS`.
    """
    path = Path(path)
    new = {k: row[k] for k in LOG_COLUMNS}
    rows = [r for r in read_log(path) if int(r["epoch"]) < int(row["epoch"])]
    rows.append(new)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)
    return path


def plot_learning_curve(log_path: Union[str, Path], out_path: Union[str, Path]) -> Path:
    """Plot train/validation RMSE(B) (full and transverse) and the learning rate per epoch.

    Args:
        log_path: the run's ``log.csv``.
        out_path: the PNG to write (replaced atomically).

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.
    """
    rows = read_log(log_path)
    fig = Figure(figsize=(6, 6))
    FigureCanvasAgg(fig)
    ax, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    if rows:
        ep = [int(r["epoch"]) for r in rows]
        for key, style, name in (("rmse_field", "-", "RMSE(B)"),
                                 ("rmse_field_transverse", "--", "transverse RMSE(B)")):
            for split, color in (("train", "C0"), ("val", "C1")):
                ax.plot(ep, [float(r[f"{split}_{key}"]) for r in rows], style, color=color,
                        label=f"{split} {name}")
        ax2.plot(ep, [float(r["lr"]) for r in rows], color="C2")
        ax.legend(fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("RMSE of the field")
    ax.grid(alpha=0.3, which="both")
    ax2.set_yscale("log")
    ax2.set_ylabel("learning rate")
    ax2.set_xlabel("epoch")
    fig.tight_layout()
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(out_path)
    return out_path
