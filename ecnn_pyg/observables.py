r"""Observables of spin configurations: magnetization, topological charge, S(q).

Spins are ``(N, 3)`` or ``(R, N, 3)`` (replicas), torch tensors or numpy
arrays, finite unit vectors (to 1e-3; :class:`~ecnn_pyg.spins.SpinError`
otherwise); results come back as the same kind (a leading replica axis is
kept). For repeated measurements on one lattice, compute
``tri = triangulation(graph)`` once and pass ``tri`` in place of the graph.

**Topological charge** (Berg and Lüscher, Nucl. Phys. B 190, 412 (1981)). The
plane is triangulated (:func:`triangulation`) into triangles whose vertices
:math:`(i, j, k)` are listed **counter-clockwise seen from +z**. Each triangle
has the signed solid angle

.. math::
    \Omega_{ijk} = 2\,\mathrm{atan2}\big(\mathbf n_i\cdot(\mathbf n_j\times\mathbf n_k),\;
        1 + \mathbf n_i\cdot\mathbf n_j + \mathbf n_j\cdot\mathbf n_k + \mathbf n_k\cdot\mathbf n_i\big)
        \in (-2\pi, 2\pi],

and :math:`Q = \sum \Omega / 4\pi`, an integer on a periodic supercell.

*Sign convention*: :math:`Q` is the lattice version of
:math:`\frac{1}{4\pi}\int \mathbf n\cdot(\partial_x\mathbf n\times\partial_y\mathbf n)\,dx\,dy`
with :math:`x, y` the Cartesian axes of the positions. A skyrmion of vorticity
:math:`m` whose polar angle goes from :math:`\theta(0)` at the core to
:math:`\theta(\infty)` far away has :math:`Q = \tfrac m2[\cos\theta(0) - \cos\theta(\infty)]`:
the usual skyrmion in a field along :math:`+z` (core **down**, background up,
:math:`m = 1`, Néel or Bloch) has :math:`Q = -1`; its time-reversed partner
(core up in a down background) has :math:`Q = +1`. The paper reports :math:`|n_{sk}|`.

**Skyrmion number per magnetic unit cell**: :math:`n_{sk} = Q\,N_{mc}/N` with
:math:`N_{mc}` the number of sites of the magnetic unit cell (48 for the
triple-Q states of the triangular-lattice protocol; ``docs/conventions.md``,
"Topological charge").

**Structure factor**: :math:`S(\mathbf q) = \frac1N\sum_a|\sum_r S^a_r e^{-i\mathbf q\cdot\mathbf r}|^2`
on the grid :math:`\mathbf q = (k_1/L_1)\mathbf b_1 + (k_2/L_2)\mathbf b_2` of an
:math:`L_1\times L_2` periodic supercell (:math:`\mathbf a_i\cdot\mathbf b_j = 2\pi\delta_{ij}`),
computed by FFT. :math:`\sum_{\mathbf q} S(\mathbf q) = N` for unit spins.
"""
from __future__ import annotations

from typing import Tuple, Union

import numpy as np
import torch

from . import keys as K
from .spins import check_spins

__all__ = ["magnetization", "triangulation", "solid_angles", "topological_charge",
           "charge_density", "skyrmion_number", "scalar_chirality", "structure_factor",
           "reciprocal_vectors", "TRIPLE_Q_CELL_SITES"]

#: Sites in the magnetic unit cell of the triangular-lattice triple-Q states
#: (``docs/conventions.md``, "Topological charge").
TRIPLE_Q_CELL_SITES = 48


# ----------------------------------------------------------------- helpers
def _spins(spins, graph=None, tol: float = 1e-3) -> Tuple[torch.Tensor, bool]:
    """Validated torch spins and whether the input was numpy."""
    is_np = isinstance(spins, np.ndarray)
    n_sites = graph.num_nodes if graph is not None and hasattr(graph, "num_nodes") else None
    return check_spins(spins, tol=tol, n_sites=n_sites), is_np


def _out(x: torch.Tensor, is_np: bool):
    return x.detach().cpu().numpy() if is_np else x


def _lattice_vectors(graph) -> np.ndarray:
    """Primitive vectors (rows) of a graph made by :func:`~ecnn_pyg.graph.lattice_graph`."""
    L = graph[K.SIZE].view(-1).cpu().numpy().astype(float)
    if "supercell" in graph:
        return graph.supercell.view(len(L), len(L)).cpu().numpy() / L[:, None]
    from .lattice import load_lattice
    return load_lattice(graph[K.LATTICE]).vectors


def _is_bravais_supercell(graph) -> bool:
    return (K.SIZE in graph and K.CELL in graph and graph[K.SIZE].numel() == 2
            and (K.SUBLATTICE not in graph or int(graph[K.SUBLATTICE].max()) == 0))


def _periodic_dirs(graph) -> np.ndarray:
    """Per supercell direction: whether some bond wraps around it (periodic boundaries)."""
    dim = graph[K.SIZE].numel() if K.SIZE in graph else 2
    if K.CELL_SHIFT not in graph or graph[K.CELL_SHIFT].numel() == 0:
        return np.zeros(dim, bool)
    return (graph[K.CELL_SHIFT] != 0).any(0).cpu().numpy()


def _as_triangles(graph_or_triangles) -> torch.Tensor:
    if isinstance(graph_or_triangles, (torch.Tensor, np.ndarray)):
        tri = torch.as_tensor(graph_or_triangles)
        if tri.ndim != 2 or tri.shape[1] != 3 or tri.dtype.is_floating_point:
            raise ValueError(f"triangles must be an integer array (T, 3), got shape "
                             f"{tuple(tri.shape)} and dtype {tri.dtype}")
        return tri.long()
    return triangulation(graph_or_triangles)


# ----------------------------------------------------------------- magnetization
def magnetization(spins):
    """Mean spin per site, ``(3,)`` or ``(R, 3)``.

    Args:
        spins: ``(N, 3)`` or ``(R, N, 3)``, torch or numpy (the length is not
            checked).

    Returns:
        ``(3,)`` or ``(R, 3)``, the same kind as ``spins``.

    Raises:
        SpinError: if the spins are not a finite floating ``(N, 3)`` or
            ``(R, N, 3)`` array.
    """
    s, is_np = _spins(spins, tol=float("inf"))
    return _out(s.mean(-2), is_np)


# ----------------------------------------------------------------- triangulation
def triangulation(graph, method: str = "auto") -> torch.Tensor:
    r"""Counter-clockwise triangles covering a 2D lattice graph, ``(T, 3)`` site indices.

    Methods:

    * ``"cells"`` (the default for one-site-per-cell graphs of
      :func:`~ecnn_pyg.graph.lattice_graph`): each unit cell
      :math:`(\mathbf r, \mathbf r+\mathbf a_1, \mathbf r+\mathbf a_1+\mathbf a_2, \mathbf r+\mathbf a_2)`
      is split along :math:`\mathbf a_1+\mathbf a_2` into
      :math:`(\mathbf r, \mathbf r+\mathbf a_1, \mathbf r+\mathbf a_1+\mathbf a_2)` and
      :math:`(\mathbf r, \mathbf r+\mathbf a_1+\mathbf a_2, \mathbf r+\mathbf a_2)`: the elementary
      triangles of the triangular lattice, a diagonal split of the square
      plaquettes. Periodic directions wrap; across an open boundary the
      triangles are dropped. :math:`2N` triangles when periodic.
    * ``"delaunay"``: Delaunay triangulation of the positions (scipy). With a
      ``supercell`` and periodic boundaries (multi-site bases such as honeycomb
      or kagome) the 3 x 3 periodic images are triangulated, after a tiny
      fixed per-site jitter that breaks the ties of regular lattices
      identically in every image, and the triangles whose centroid lies in the
      home supercell are kept (:math:`2N` triangles). Otherwise (open boundaries,
      graphs from :func:`~ecnn_pyg.graph.from_networkx`) the triangulation covers
      the convex hull of the positions only: the charge is then **not**
      quantised and spins on the boundary enter fewer triangles.

    The orientation is made counter-clockwise from the positions (bond
    vectors across periodic boundaries taken as the minimum images).

    Args:
        graph: a 2D lattice graph with positions ``pos`` ``(N, 2)``.
        method: ``"auto"`` (``"cells"`` where it applies, else ``"delaunay"``),
            ``"cells"`` or ``"delaunay"``.

    Returns:
        ``(T, 3)`` long tensor of site indices.

    Raises:
        ValueError: if ``method`` is unknown, the graph has no 2D positions,
            ``"cells"`` is asked for a graph it does not apply to, the cell
            coordinates do not cover the supercell, there are fewer than 3
            sites, or a periodic Delaunay triangulation does not give ``2N``
            triangles.
    """
    if method not in ("auto", "cells", "delaunay"):
        raise ValueError(f"method must be 'auto', 'cells' or 'delaunay', got {method!r}")
    pos = graph[K.POS] if K.POS in graph else None
    if pos is None or pos.ndim != 2 or pos.shape[1] != 2:
        raise ValueError("triangulation needs a 2D lattice graph with positions 'pos' of shape "
                         f"(N, 2), got {None if pos is None else tuple(pos.shape)}")
    bravais = _is_bravais_supercell(graph)
    if method == "cells" and not bravais:
        raise ValueError("method 'cells' needs a one-site-per-cell 2D graph of lattice_graph "
                         "(with 'cell' and 'size'); use method 'delaunay'")
    if method == "cells" or (method == "auto" and bravais):
        return _cell_triangles(graph)
    return _delaunay_triangles(graph)


def _cell_triangles(graph) -> torch.Tensor:
    L = graph[K.SIZE].view(-1).cpu().numpy().astype(np.int64)
    cells = graph[K.CELL].cpu().numpy().astype(np.int64)
    lookup = -np.ones(tuple(L), np.int64)
    lookup[cells[:, 0], cells[:, 1]] = np.arange(len(cells))
    if (lookup < 0).any():
        raise ValueError("the graph's 'cell' coordinates do not cover its L1 x L2 supercell")
    periodic = _periodic_dirs(graph)
    e1, e2, e12 = np.array([1, 0]), np.array([0, 1]), np.array([1, 1])

    def site(c):
        wrapped = c % L
        inside = np.all(periodic | (c == wrapped), axis=1)
        return lookup[wrapped[:, 0], wrapped[:, 1]], inside

    i0 = np.arange(len(cells))
    tris = []
    for a, b in ((e1, e12), (e12, e2)):
        ja, oka = site(cells + a)
        jb, okb = site(cells + b)
        keep = oka & okb
        tris.append(np.stack([i0[keep], ja[keep], jb[keep]], 1))
    tri = np.concatenate(tris)
    A = _lattice_vectors(graph)
    if np.linalg.det(A) < 0:         # a1 x a2 points to -z: the listed order is clockwise
        tri = tri[:, [0, 2, 1]]
    return torch.from_numpy(tri)


def _ccw(tri: np.ndarray, xy: np.ndarray) -> np.ndarray:
    p0, p1, p2 = xy[tri[:, 0]], xy[tri[:, 1]], xy[tri[:, 2]]
    d1, d2 = p1 - p0, p2 - p0
    area = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    tri = tri.copy()
    flip = area < 0
    tri[flip] = tri[flip][:, [0, 2, 1]]
    return tri, np.abs(area)


def _delaunay_triangles(graph) -> torch.Tensor:
    from scipy.spatial import Delaunay

    pos = graph[K.POS].cpu().numpy().astype(np.float64)
    n = len(pos)
    if n < 3:
        raise ValueError(f"a triangulation needs at least 3 sites, got {n}")
    periodic = _periodic_dirs(graph) if K.SIZE in graph else np.zeros(2, bool)
    if "supercell" in graph and periodic.all():
        sc = graph.supercell.view(2, 2).cpu().numpy()
        scale = np.sqrt(abs(np.linalg.det(sc)) / n)
        jitter = np.random.default_rng(12345).uniform(-1, 1, (n, 2)) * 1e-7 * scale
        base = pos + jitter
        shifts = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)], float)
        pts = (base[None] + (shifts @ sc)[:, None]).reshape(-1, 2)
        simp = Delaunay(pts).simplices
        # keep the triangles whose centroid lies in one fundamental domain of the
        # torus: the supercell-shaped region holding the (jittered) home sites
        inv = np.linalg.inv(sc)
        origin = (base @ inv).mean(0) - 0.5
        frac = pts[simp].mean(1) @ inv - origin
        home = np.all((frac >= 0) & (frac < 1), axis=1)
        tri, area = _ccw(simp[home], pts)
        tri = tri % n
        if len(tri) != 2 * n:
            raise ValueError(f"periodic Delaunay triangulation gave {len(tri)} triangles for "
                             f"{n} sites (expected {2 * n}); the sites do not fill the supercell")
        return torch.from_numpy(tri.astype(np.int64))
    tri, area = _ccw(Delaunay(pos).simplices, pos)
    keep = area > 1e-9 * np.median(area)        # drop flat slivers on the hull
    return torch.from_numpy(tri[keep].astype(np.int64))


# ----------------------------------------------------------------- topology
def solid_angles(spins, triangles) -> Union[torch.Tensor, np.ndarray]:
    r"""Signed solid angle of every triangle (Berg-Lüscher, atan2 form), ``(T,)`` or ``(R, T)``.

    Args:
        spins: ``(N, 3)`` or ``(R, N, 3)`` unit spins, torch or numpy.
        triangles: a graph (triangulated by :func:`triangulation`) or an
            integer array ``(T, 3)`` of counter-clockwise triangles.

    Returns:
        :math:`\Omega \in (-2\pi, 2\pi]` per triangle, ``(T,)`` or ``(R, T)``,
        the same kind as ``spins``.

    Raises:
        SpinError: if the spins are not a floating ``(N, 3)`` / ``(R, N, 3)``
            array of finite unit vectors (to 1e-3), or do not match the graph's
            number of sites.
        ValueError: if ``triangles`` is not an integer ``(T, 3)`` array, has
            indices out of range, or the graph cannot be triangulated.
    """
    s, is_np = _spins(spins)
    tri = _as_triangles(triangles).to(s.device)
    if tri.numel() and (int(tri.min()) < 0 or int(tri.max()) >= s.shape[-2]):
        raise ValueError(f"triangle indices out of range for {s.shape[-2]} sites")
    n1, n2, n3 = s[..., tri[:, 0], :], s[..., tri[:, 1], :], s[..., tri[:, 2], :]
    num = (n1 * torch.cross(n2, n3, dim=-1)).sum(-1)
    den = 1 + (n1 * n2).sum(-1) + (n2 * n3).sum(-1) + (n3 * n1).sum(-1)
    return _out(2 * torch.atan2(num, den), is_np)


def topological_charge(spins, graph):
    r"""Topological charge :math:`Q = \sum\Omega/4\pi`, a number or ``(R,)``.

    Integer (to rounding) on periodic supercells; see the module docstring
    for the sign.

    Args:
        spins: ``(N, 3)`` or ``(R, N, 3)`` unit spins, torch or numpy.
        graph: a 2D lattice graph, or a precomputed ``(T, 3)`` triangle array.

    Returns:
        :math:`Q`: a 0-d value or ``(R,)``, the same kind as ``spins``.

    Raises:
        SpinError: if the spins are not a floating ``(N, 3)`` / ``(R, N, 3)``
            array of finite unit vectors (to 1e-3), or do not match the graph's
            number of sites.
        ValueError: if the triangles are invalid or the graph cannot be
            triangulated.
    """
    s, is_np = _spins(spins, graph if not isinstance(graph, (torch.Tensor, np.ndarray)) else None)
    q = solid_angles(s, graph).sum(-1) / (4 * np.pi)
    return _out(q, is_np)


def charge_density(spins, graph):
    r"""Topological-charge density per site, ``(N,)`` or ``(R, N)``; sums to :math:`Q`.

    Each triangle's :math:`\Omega/4\pi` is shared equally among its three vertices.

    Args:
        spins: ``(N, 3)`` or ``(R, N, 3)`` unit spins, torch or numpy.
        graph: a 2D lattice graph, or a precomputed ``(T, 3)`` triangle array.

    Returns:
        ``(N,)`` or ``(R, N)``, the same kind as ``spins``.

    Raises:
        SpinError: if the spins are not a floating ``(N, 3)`` / ``(R, N, 3)``
            array of finite unit vectors (to 1e-3), or do not match the graph's
            number of sites.
        ValueError: if the triangles are invalid or the graph cannot be
            triangulated.
    """
    return _per_site(spins, graph, solid_angles, scale=1 / (4 * np.pi), mean=False)


def scalar_chirality(spins, graph, per: str = "site"):
    r"""Scalar spin chirality :math:`\chi = \mathbf n_i\cdot(\mathbf n_j\times\mathbf n_k)`.

    ``per="triangle"``: one value per counter-clockwise triangle, ``(T,)`` or
    ``(R, T)``; ``per="site"`` (default): the mean over the triangles touching
    each site, ``(N,)`` or ``(R, N)`` (a map to plot).

    Args:
        spins: ``(N, 3)`` or ``(R, N, 3)`` unit spins, torch or numpy.
        graph: a 2D lattice graph, or a precomputed ``(T, 3)`` triangle array.
        per: ``"site"`` or ``"triangle"``.

    Returns:
        :math:`\chi` per triangle or per site (see above), the same kind as
        ``spins``.

    Raises:
        SpinError: if the spins are not a floating ``(N, 3)`` / ``(R, N, 3)``
            array of finite unit vectors (to 1e-3), or do not match the graph's
            number of sites.
        ValueError: if ``per`` is unknown, the triangles are invalid or the
            graph cannot be triangulated.
    """
    if per not in ("site", "triangle"):
        raise ValueError(f"per must be 'site' or 'triangle', got {per!r}")

    def chi(s, tri):
        tri = _as_triangles(tri).to(s.device)
        n1, n2, n3 = s[..., tri[:, 0], :], s[..., tri[:, 1], :], s[..., tri[:, 2], :]
        return (n1 * torch.cross(n2, n3, dim=-1)).sum(-1)

    if per == "triangle":
        s, is_np = _spins(spins)
        return _out(chi(s, graph), is_np)
    return _per_site(spins, graph, chi, scale=1.0, mean=True)


def _per_site(spins, graph, per_triangle, scale: float, mean: bool):
    is_graph = not isinstance(graph, (torch.Tensor, np.ndarray))
    s, is_np = _spins(spins, graph if is_graph else None)
    tri = _as_triangles(graph).to(s.device)
    val = per_triangle(s, tri) * scale                       # (..., T)
    flat = val.reshape(-1, val.shape[-1])
    n = s.shape[-2]
    out = torch.zeros(flat.shape[0], n, dtype=s.dtype, device=s.device)
    count = torch.zeros(n, dtype=s.dtype, device=s.device)
    for k in range(3):
        out.index_add_(1, tri[:, k], flat if mean else flat / 3)
        count.index_add_(0, tri[:, k], torch.ones(len(tri), dtype=s.dtype, device=s.device))
    if mean:
        out = out / count.clamp_min(1)
    return _out(out.reshape(val.shape[:-1] + (n,)), is_np)


def skyrmion_number(spins, graph, sites_per_magnetic_cell: int = TRIPLE_Q_CELL_SITES):
    r"""Skyrmion number per magnetic unit cell, :math:`n_{sk} = Q\,N_{mc}/N`.

    Args:
        spins: ``(N, 3)`` or ``(R, N, 3)`` unit spins, torch or numpy.
        graph: a 2D lattice graph, or a precomputed ``(T, 3)`` triangle array.
        sites_per_magnetic_cell: :math:`N_{mc}`; 48 for the triangular triple-Q
            states (magnetic cell spanned by :math:`4\mathbf a_1 + 8\mathbf a_2` and
            :math:`12\mathbf a_2`).

    Returns:
        :math:`n_{sk}`: a 0-d value or ``(R,)``, the same kind as ``spins``.

    Raises:
        ValueError: if ``sites_per_magnetic_cell`` is not a positive integer,
            the triangles are invalid or the graph cannot be triangulated.
        SpinError: if the spins are not a floating ``(N, 3)`` / ``(R, N, 3)``
            array of finite unit vectors (to 1e-3), or do not match the graph's
            number of sites.
    """
    if isinstance(sites_per_magnetic_cell, bool) or not isinstance(
            sites_per_magnetic_cell, (int, np.integer)) or sites_per_magnetic_cell < 1:
        raise ValueError("sites_per_magnetic_cell must be a positive integer, got "
                         f"{sites_per_magnetic_cell!r}")
    s, is_np = _spins(spins, graph if not isinstance(graph, (torch.Tensor, np.ndarray)) else None)
    q = topological_charge(s, graph)
    return _out(q * (sites_per_magnetic_cell / s.shape[-2]), is_np)


# ----------------------------------------------------------------- structure factor
def reciprocal_vectors(graph) -> np.ndarray:
    r"""Reciprocal primitive vectors :math:`\mathbf b_i` (rows), :math:`\mathbf a_i\cdot\mathbf b_j = 2\pi\delta_{ij}`.

    Args:
        graph: a graph of :func:`~ecnn_pyg.graph.lattice_graph` (primitive
            vectors from its ``supercell`` and ``size``, or from its lattice).

    Returns:
        ``(dim, dim)`` array, one reciprocal vector per row.
    """
    A = _lattice_vectors(graph)
    return 2 * np.pi * np.linalg.inv(A).T


def structure_factor(spins, graph, centered: bool = True, components: bool = False):
    r"""Spin structure factor on the :math:`L_1\times L_2` grid of a periodic supercell.

    Args:
        spins: ``(N, 3)`` or ``(R, N, 3)``.
        graph: a one-site-per-cell 2D graph of :func:`~ecnn_pyg.graph.lattice_graph`.
        centered: order the grid as :math:`k_i = -\lfloor L_i/2\rfloor, \dots,
            \lceil L_i/2\rceil - 1` (``fftshift``), so that :math:`\mathbf q = 0` is in
            the middle; otherwise FFT order :math:`k_i = 0, \dots, L_i - 1`.
        components: return :math:`S^{aa}(\mathbf q)` per spin component (last axis 3)
            instead of their sum.

    Returns:
        ``(sq, q)``: ``sq`` of shape ``(..., L1, L2)`` (``(..., L1, L2, 3)`` with
        ``components``), normalised by :math:`N`; ``q`` of shape ``(L1, L2, 2)``, the
        Cartesian wave vectors :math:`(k_1/L_1)\mathbf b_1 + (k_2/L_2)\mathbf b_2`.

    Raises:
        ValueError: if the graph is not a one-site-per-cell 2D graph of
            :func:`~ecnn_pyg.graph.lattice_graph`.
        SpinError: if the spins are not a finite floating ``(N, 3)`` or
            ``(R, N, 3)`` array matching the graph.
    """
    if not _is_bravais_supercell(graph):
        raise ValueError("structure_factor needs a one-site-per-cell 2D graph of lattice_graph "
                         "(with 'cell' and 'size')")
    s, is_np = _spins(spins, graph, tol=float("inf"))
    L1, L2 = (int(x) for x in graph[K.SIZE].view(-1))
    cells = graph[K.CELL].to(s.device).long()
    grid = torch.zeros(s.shape[:-2] + (L1, L2, 3), dtype=s.dtype, device=s.device)
    grid[..., cells[:, 0], cells[:, 1], :] = s
    f = torch.fft.fft2(grid, dim=(-3, -2))
    sq = (f.real ** 2 + f.imag ** 2) / s.shape[-2]
    k1 = torch.fft.fftfreq(L1, dtype=torch.float64) * L1
    k2 = torch.fft.fftfreq(L2, dtype=torch.float64) * L2
    if centered:
        sq = torch.fft.fftshift(sq, dim=(-3, -2))
        k1, k2 = torch.fft.fftshift(k1), torch.fft.fftshift(k2)
    if not components:
        sq = sq.sum(-1)
    b = torch.from_numpy(reciprocal_vectors(graph))
    kk1, kk2 = torch.meshgrid(k1 / L1, k2 / L2, indexing="ij")
    q = kk1[..., None] * b[0] + kk2[..., None] * b[1]
    return _out(sq, is_np), (q.numpy() if is_np else q.to(s.device))
