"""Figures of spin textures, topological-charge maps, S(q), the field phase diagram, uncertainty.

Built on matplotlib's object-oriented API with the Agg canvas: importing this
module never selects or changes the global pyplot backend, and it works
without a display. Every function returns a :class:`matplotlib.figure.Figure`
(displayed inline by Jupyter) and, given ``path``, also writes a PNG there.
Pass ``ax`` to draw into an existing axes instead (the figure of ``ax`` is
returned).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.tri import Triangulation

from . import keys as K
from .observables import charge_density, structure_factor
from .spins import SpinError, check_spins

__all__ = ["spin_texture", "charge_density_map", "structure_factor_map", "phase_diagram",
           "uncertainty_plot"]

PathLike = Union[str, Path, None]


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _single(spins, name="spins") -> np.ndarray:
    """One configuration ``(N, 3)`` of finite spins (any length) as float64 numpy."""
    s = _np(spins)
    if s.ndim == 3 and s.shape[0] == 1:
        s = s[0]
    if s.ndim != 2 or s.shape[1] != 3:
        raise SpinError(f"{name} must have shape (N, 3) (one configuration), got {s.shape}")
    return check_spins(s, tol=math.inf, name=name).numpy()


def _positions(graph, n: int) -> np.ndarray:
    pos = graph[K.POS] if hasattr(graph, "keys") and K.POS in graph else graph
    pos = _np(pos)
    if pos.ndim != 2 or pos.shape[1] < 2 or len(pos) != n:
        raise ValueError(f"positions must have shape ({n}, 2), got {pos.shape}")
    return pos[:, :2]


def _figure(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _finish(fig, path: PathLike, dpi: int = 120):
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, format="png", bbox_inches="tight")
    return fig


def _site_map(ax, pos, values, cmap, vmin, vmax, label, fig):
    """Colour map of per-site values: Gouraud-shaded triangulation of the positions."""
    tri = Triangulation(pos[:, 0], pos[:, 1])
    im = ax.tripcolor(tri, values, cmap=cmap, vmin=vmin, vmax=vmax, shading="gouraud")
    fig.colorbar(im, ax=ax, label=label, shrink=0.8)
    ax.set_aspect("equal")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    return im


def spin_texture(spins, graph, path: PathLike = None, ax=None, arrows: bool = True,
                 arrow_stride: int = 1, title: Optional[str] = None, figsize=(6, 5)) -> Figure:
    r"""In-plane components :math:`(S^x, S^y)` as arrows over a colour map of :math:`S^z`.

    Args:
        spins: one configuration ``(N, 3)`` (or ``(1, N, 3)``).
        graph: a lattice graph (its ``pos``) or positions ``(N, 2)``.
        path: if given, also write a PNG there (parent folders are created).
        ax: draw into this matplotlib axes instead of a new figure.
        arrows: draw the in-plane arrows.
        arrow_stride: draw every k-th arrow (large lattices).
        title: axes title.
        figsize: size of a new figure, in inches.

    Returns:
        The :class:`~matplotlib.figure.Figure` (that of ``ax`` if given).

    Raises:
        ValueError: if the spins are not one finite ``(N, 3)`` configuration or
            the positions do not have shape ``(N, 2)``.
    """
    s = _single(spins)
    pos = _positions(graph, len(s))
    fig, ax = _figure(ax, figsize)
    _site_map(ax, pos, s[:, 2], "coolwarm", -1.0, 1.0, r"$S^z$", fig)
    if arrows:
        k = max(1, int(arrow_stride))
        ax.quiver(pos[::k, 0], pos[::k, 1], s[::k, 0], s[::k, 1], angles="xy",
                  scale_units="xy", scale=1.2 / max(1, k) ** 0.5, width=0.003, pivot="mid",
                  color="k")
    if title:
        ax.set_title(title)
    return _finish(fig, path)


def charge_density_map(spins, graph, path: PathLike = None, ax=None,
                       title: Optional[str] = None, figsize=(6, 5)) -> Figure:
    """Topological-charge density per site (:func:`~ecnn_pyg.observables.charge_density`).

    The default title is the total charge ``Q``.

    Args:
        spins: one configuration ``(N, 3)`` (or ``(1, N, 3)``) of unit spins.
        graph: a 2D lattice graph (triangulated by
            :func:`~ecnn_pyg.observables.triangulation`, positions ``pos``).
        path: if given, also write a PNG there (parent folders are created).
        ax: draw into this matplotlib axes instead of a new figure.
        title: axes title (default ``"Q = ..."``).
        figsize: size of a new figure, in inches.

    Returns:
        The :class:`~matplotlib.figure.Figure` (that of ``ax`` if given).

    Raises:
        ValueError: if the spins are not one finite ``(N, 3)`` configuration or
            the graph cannot be triangulated.
        SpinError: if the spins are not unit vectors.
    """
    s = _single(spins)
    rho = _np(charge_density(torch.from_numpy(s), graph))
    pos = _positions(graph, len(s))
    fig, ax = _figure(ax, figsize)
    vmax = max(float(np.abs(rho).max()), 1e-12)
    _site_map(ax, pos, rho, "RdBu_r", -vmax, vmax, "charge density", fig)
    ax.set_title(title if title is not None else f"Q = {rho.sum():.3f}")
    return _finish(fig, path)


def structure_factor_map(spins, graph, path: PathLike = None, ax=None, log: bool = False,
                         title: Optional[str] = None, figsize=(6, 5)) -> Figure:
    r"""Spin structure factor :math:`S(\mathbf q)` on the Cartesian :math:`\mathbf q` grid.

    Args:
        spins: ``(N, 3)``, or ``(R, N, 3)``: then the replica average is drawn.
        graph: a one-site-per-cell 2D periodic graph of
            :func:`~ecnn_pyg.graph.lattice_graph`.
        path: if given, also write a PNG there (parent folders are created).
        ax: draw into this matplotlib axes instead of a new figure.
        log: colour by :math:`\log_{10} S(\mathbf q)`.
        title: axes title.
        figsize: size of a new figure, in inches.

    Returns:
        The :class:`~matplotlib.figure.Figure` (that of ``ax`` if given).

    Raises:
        ValueError: if ``spins`` is not ``(N, 3)`` or ``(R, N, 3)``, or the
            graph does not suit :func:`~ecnn_pyg.observables.structure_factor`.
    """
    s = _np(spins)
    if s.ndim not in (2, 3):
        raise ValueError(f"spins must have shape (N, 3) or (R, N, 3), got {s.shape}")
    sq, q = structure_factor(torch.from_numpy(s), graph)
    sq = _np(sq)
    if sq.ndim == 3:
        sq = sq.mean(0)
    q = _np(q).reshape(-1, 2)
    vals = sq.reshape(-1)
    if log:
        vals = np.log10(np.maximum(vals, 1e-12))
    fig, ax = _figure(ax, figsize)
    L = sq.shape
    size = max(4.0, 2.0e4 / (L[0] * L[1]))
    sc = ax.scatter(q[:, 0], q[:, 1], c=vals, s=size, marker="h", cmap="magma",
                    edgecolors="none")
    fig.colorbar(sc, ax=ax, label=r"$\log_{10} S(q)$" if log else r"$S(q)$", shrink=0.8)
    ax.set_aspect("equal")
    ax.set_xlabel(r"$q_x$")
    ax.set_ylabel(r"$q_y$")
    if title:
        ax.set_title(title)
    return _finish(fig, path)


def phase_diagram(fields: Sequence[float], n_sk: Sequence[float], m_z: Sequence[float],
                  path: PathLike = None, ax=None, n_sk_err=None, m_z_err=None,
                  title: Optional[str] = None, figsize=(6, 4), quantity: str = "n_sk") -> Figure:
    r""":math:`|n_{sk}|` (left axis) and :math:`|M_z|` (right axis) against :math:`H_z` (paper Fig. 4a).

    Args:
        fields: :math:`H_z` values.
        n_sk: skyrmion number per magnetic cell, one per field (absolute values
            are drawn); with ``quantity="Q"`` the topological charge of the
            whole lattice (where the magnetic cell is unknown).
        m_z: magnetization per site, one per field (absolute values are drawn).
        path: if given, also write a PNG there (parent folders are created).
        ax: draw into this matplotlib axes instead of a new figure.
        n_sk_err: optional error bars of ``n_sk``.
        m_z_err: optional error bars of ``m_z``.
        title: axes title.
        figsize: size of a new figure, in inches.
        quantity: ``"n_sk"`` or ``"Q"``: what ``n_sk`` holds, for the labels.

    Returns:
        The :class:`~matplotlib.figure.Figure` (that of ``ax`` if given).

    Raises:
        ValueError: if ``fields``, ``n_sk`` and ``m_z`` are empty or of
            different lengths, or ``quantity`` is neither ``"n_sk"`` nor ``"Q"``.
    """
    labels = {"n_sk": r"$|n_{sk}|$", "Q": r"$|Q|$"}
    if quantity not in labels:
        raise ValueError(f"quantity must be 'n_sk' or 'Q', got {quantity!r}")
    label = labels[quantity]
    h, n, m = _np(fields).ravel(), _np(n_sk).ravel(), _np(m_z).ravel()
    if not (len(h) == len(n) == len(m)) or len(h) == 0:
        raise ValueError(f"fields, n_sk and m_z must be non-empty and of equal length, got "
                         f"{len(h)}, {len(n)}, {len(m)}")
    order = np.argsort(h)
    fig, ax = _figure(ax, figsize)
    ne = None if n_sk_err is None else _np(n_sk_err).ravel()[order]
    me = None if m_z_err is None else _np(m_z_err).ravel()[order]
    ax.errorbar(h[order], np.abs(n[order]), yerr=ne, marker="o", color="C0", label=label)
    ax.set_xlabel(r"$H_z$")
    ax.set_ylabel(label, color="C0")
    ax.set_ylim(-0.1, max(2.5, float(np.abs(n).max()) + 0.5))
    ax2 = ax.twinx()
    ax2.errorbar(h[order], np.abs(m[order]), yerr=me, marker="s", color="C3", label=r"$|M_z|$")
    ax2.set_ylabel(r"$|M_z|$", color="C3")
    ax2.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [label, r"$|M_z|$"], loc="upper right")
    if title:
        ax.set_title(title)
    return _finish(fig, path)


def uncertainty_plot(runs: Sequence[dict], path: PathLike = None, ax=None,
                     lower: Optional[float] = None, upper: Optional[float] = None,
                     title: Optional[str] = None, figsize=(6, 4)) -> Figure:
    r"""A committee's uncertainty against time: ``sigma_max`` (solid) and ``sigma_mean`` (dashed).

    Args:
        runs: dicts with ``time``, ``sigma_max``, ``sigma_mean`` and a ``name``
            (the runs of :func:`ecnn_pyg.simulate.read_runs` of a committee run).
        path: if given, also write a PNG there (parent folders are created).
        ax: draw into this matplotlib axes instead of a new figure.
        lower, upper: trust levels drawn as horizontal lines (``None``/NaN: none).
        title: axes title.
        figsize: size of a new figure, in inches.

    Returns:
        The :class:`~matplotlib.figure.Figure` (that of ``ax`` if given).

    Raises:
        ValueError: if no run has ``sigma_max``.
    """
    runs = [r for r in runs if "sigma_max" in r and len(r["sigma_max"])]
    if not runs:
        raise ValueError("no run holds the committee uncertainty (sigma_max)")
    fig, ax = _figure(ax, figsize)
    for i, r in enumerate(runs):
        t = _np(r["time"])
        ax.plot(t, _np(r["sigma_max"]), color=f"C{i % 10}", label=r.get("name", f"run {i}"))
        if "sigma_mean" in r:
            ax.plot(t, _np(r["sigma_mean"]), color=f"C{i % 10}", ls="--", lw=1)
    for value, name, style in ((lower, "lower", ":"), (upper, "upper", "-.")):
        if value is not None and math.isfinite(value):
            ax.axhline(value, color="k", ls=style, lw=1, label=f"trust {name} {value:.3g}")
    ax.set_xlabel(r"time ($1/t_1$)")
    ax.set_ylabel(r"$\sigma_B$: max over sites (solid), mean (dashed)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    return _finish(fig, path)
