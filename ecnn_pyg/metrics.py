r"""Errors of predicted fields and energies: RMSE(B), transverse RMSE(B), RMSE(E per site).

The field's longitudinal part :math:`(\mathbf B\cdot\mathbf S)\mathbf S` is large and
does not drive the dynamics (:math:`\dot{\mathbf S}` only sees
:math:`\mathbf S\times\mathbf B`), so the transverse error
:math:`\mathbf B_\perp = \mathbf B - (\mathbf B\cdot\mathbf S)\mathbf S` is reported
beside the full one.

:class:`ErrorAccumulator` sums squared errors over batches so that the RMSEs of
a whole split equal those of one concatenated array.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch
from torch import Tensor

__all__ = ["transverse", "field_rmse", "transverse_rmse", "energy_rmse", "ErrorAccumulator",
           "parity_plot",
           "METRIC_NAMES"]

#: names of the metrics of a split, in the order of the CSV log
METRIC_NAMES = ("loss", "rmse_field", "rmse_field_transverse", "rmse_energy_per_site")


def transverse(field, spin):
    """``B - (B.S) S`` for unit spins ``S`` (torch tensors or numpy arrays, ``(..., 3)``).

    Args:
        field: fields ``B``, ``(..., 3)``.
        spin: unit spins ``S`` of the same shape.

    Returns:
        The transverse field, the same kind and shape as ``field``.
    """
    if torch.is_tensor(field):
        return field - (field * spin).sum(-1, keepdim=True) * spin
    return field - np.sum(field * spin, axis=-1, keepdims=True) * spin


def _rmse(a, b) -> float:
    if torch.is_tensor(a):
        return float(torch.sqrt(torch.mean((a.detach() - b.detach()) ** 2)))
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def field_rmse(pred, target) -> float:
    r"""RMSE over all field components.

    Args:
        pred: predicted fields (torch or numpy).
        target: exact fields of the same shape.

    Returns:
        :math:`\sqrt{\langle (B_{pred} - B)^2 \rangle}`.
    """
    return _rmse(pred, target)


def transverse_rmse(pred, target, spin) -> float:
    """RMSE over the components of the transverse field ``B - (B.S) S``.

    Args:
        pred: predicted fields ``(..., 3)`` (torch or numpy).
        target: exact fields of the same shape.
        spin: unit spins of the same shape.

    Returns:
        The RMSE of the transverse parts.
    """
    return _rmse(transverse(pred, spin), transverse(target, spin))


def energy_rmse(pred, target, n_sites) -> float:
    """RMSE of the energy per site, ``E / N`` (``n_sites`` scalar or per sample).

    Args:
        pred: predicted total energies ``(n,)`` (torch or numpy).
        target: exact total energies ``(n,)``.
        n_sites: number of sites, a scalar or one per sample.

    Returns:
        The RMSE of ``E / N``.
    """
    return _rmse(pred / n_sites, target / n_sites)


class ErrorAccumulator:
    """Running sums of squared errors over batches (one split, one epoch).

    ``update(pred_field, field, spin, pred_energy, energy, n_sites, loss)``
    with tensors of one batch; ``compute()`` returns the :data:`METRIC_NAMES`
    as floats (``loss`` is the mean of the batch losses weighted by graphs).
    """

    def __init__(self):
        self.sq_b = self.sq_bt = self.sq_e = self.sum_e = self.loss = 0.0
        self.n_b = self.n_e = 0
        self.n_loss = 0

    @torch.no_grad()
    def update(self, pred_field: Tensor, field: Tensor, spin: Tensor, pred_energy: Tensor,
               energy: Tensor, n_sites: Tensor, loss: Optional[float] = None) -> None:
        """Add the squared errors of one batch (in float64, without gradients).

        Args:
            pred_field: ``(N, 3)`` predicted fields.
            field: ``(N, 3)`` exact fields.
            spin: ``(N, 3)`` unit spins.
            pred_energy: ``(B,)`` predicted total energies.
            energy: ``(B,)`` exact total energies.
            n_sites: ``(B,)`` number of sites of each graph.
            loss: the batch loss, weighted by the ``B`` graphs (optional).
        """
        pf, f, s = pred_field.detach().double(), field.double(), spin.double()
        self.sq_b += float(((pf - f) ** 2).sum())
        self.sq_bt += float(((transverse(pf, s) - transverse(f, s)) ** 2).sum())
        self.n_b += f.numel()
        de = (pred_energy.detach().double() - energy.double()) / n_sites.double()
        self.sq_e += float((de ** 2).sum())
        self.sum_e += float(de.sum())
        self.n_e += de.numel()
        if loss is not None:
            self.loss += float(loss) * de.numel()
            self.n_loss += de.numel()

    def compute(self) -> Dict[str, float]:
        """The metrics of everything added so far.

        Returns:
            ``{name: value}`` for the :data:`METRIC_NAMES`; ``loss`` is ``nan``
            if no loss was given.
        """
        nb, ne = max(self.n_b, 1), max(self.n_e, 1)
        return {"loss": self.loss / max(self.n_loss, 1) if self.n_loss else float("nan"),
                "rmse_field": (self.sq_b / nb) ** 0.5,
                "rmse_field_transverse": (self.sq_bt / nb) ** 0.5,
                "rmse_energy_per_site": (self.sq_e / ne) ** 0.5}

    def energy_bias_per_site(self) -> float:
        """The mean of (predicted - exact) E/N over the graphs added so far.

        RMSE(E/N) squared is this bias squared plus the variance of the error
        about it. An offset shared by every state changes no force and no energy
        difference; one shared by a set of states (e.g. equilibrium snapshots)
        but not by others (e.g. the minima) is an error of their relative energies.
        """
        return self.sum_e / self.n_e if self.n_e else float("nan")


def parity_plot(pred, target, path, title: str = "", max_points: int = 400_000, bins: int = 200):
    """Predicted vs exact field components, coloured by point density (as the paper's Fig. 3).

    Each point is coloured by the count of its cell in a ``bins`` x ``bins``
    2D histogram (cheap density estimate), densest drawn last. The figure is
    drawn on its own Agg canvas (object API, as :mod:`ecnn_pyg.plot`): pyplot's
    backend and its open figures are left alone.

    Args:
        pred: predicted field components (any shape, flattened).
        target: exact field components of the same size.
        path: image file to write.
        title: plot title (default: the RMSE).
        max_points: at most this many points are drawn (a fixed random subset).
        bins: histogram bins per axis.

    Returns:
        ``path``.

    Raises:
        ValueError: if ``pred`` and ``target`` differ in size or are empty.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure
    x = np.asarray(target, dtype=float).reshape(-1)
    y = np.asarray(pred, dtype=float).reshape(-1)
    if x.size != y.size or x.size == 0:
        raise ValueError(f"parity_plot needs pred and target of the same, non-zero size; got "
                         f"{y.size} predicted and {x.size} exact components")
    rmse = float(np.sqrt(np.mean((y - x) ** 2)))
    if x.size > max_points:
        sel = np.random.default_rng(0).choice(x.size, max_points, replace=False)
        x, y = x[sel], y[sel]
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    pad = 0.02 * (hi - lo + 1e-12)
    lo, hi = lo - pad, hi + pad
    h, xe, ye = np.histogram2d(x, y, bins=bins, range=[[lo, hi], [lo, hi]])
    ix = np.clip(np.searchsorted(xe, x) - 1, 0, bins - 1)
    iy = np.clip(np.searchsorted(ye, y) - 1, 0, bins - 1)
    dens = h[ix, iy]
    order = np.argsort(dens)
    fig = Figure(figsize=(5, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    sc = ax.scatter(x[order], y[order], c=dens[order], s=2, cmap="viridis",
                    norm=LogNorm(vmin=1, vmax=max(dens.max(), 2)), rasterized=True)
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel("exact field component (ED)")
    ax.set_ylabel("predicted field component")
    ax.set_title(title or f"RMSE(B) = {rmse:.4f}", fontsize=10)
    fig.colorbar(sc, ax=ax, label="points per bin")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    return path
