r"""Lattices as PyTorch Geometric graphs whose edges are hopping bonds.

:func:`lattice_graph` turns a :class:`~ecnn_pyg.lattice.Lattice` and a supercell
size into a :class:`torch_geometric.data.Data`. Site order: for an
``L1 x L2 [x L3]`` supercell the site of cell ``(i1, i2)`` and basis ``b`` has
index ``(i1 * L2 + i2) * n_basis + b``, so spins of shape ``(L1, L2, 3)`` are
a reshape of ``(N, 3)``.

Every bond appears in both directions. Per edge: ``hopping`` (amplitude),
``bond_shell`` (index into ``lattice.shells``), ``bond_type`` (index into
``lattice.bonds``: the offset class, reverse bonds have their own ids),
``cell_shift`` (periodic image crossed, in units of the supercell vectors) and
``edge_vec`` (Cartesian source -> target vector).

If the supercell is smaller than a bond's range, the bond meets a periodic
image of itself: two different bonds may join the same pair of sites (both
edges are kept, and the Hamiltonian sums their amplitudes) or a bond may
return to its own site (a self-loop, an on-site energy). Both are what the
periodic tight-binding model on that supercell means; a warning says so,
and ``min_image="error"`` refuses such supercells instead.
"""
from __future__ import annotations

import warnings
from typing import Mapping, Optional, Sequence, Union

import networkx as nx
import numpy as np
import torch
from torch_geometric.data import Data

from . import keys as K
from .lattice import Lattice, LatticeError, SymmetryOp, load_lattice

__all__ = ["lattice_graph", "from_networkx", "to_networkx", "site_permutation",
           "translation_permutation", "symmetry_permutation", "symmetry_permutations",
           "rotation_permutations", "PeriodicImageWarning"]


class PeriodicImageWarning(UserWarning):
    """A bond meets a periodic image of itself in a small supercell."""


def _as_size(size, dim: int) -> tuple:
    if isinstance(size, (int, np.integer)) and not isinstance(size, (bool, np.bool_)):
        size = (int(size),) * dim
    try:
        items = list(size)
    except TypeError:
        items = [size]
    if any(isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer))
           and not (isinstance(s, (float, np.floating)) and float(s).is_integer())
           for s in items):
        raise LatticeError(f"supercell size must be {dim} positive integers, got {size!r}")
    size = tuple(int(s) for s in items)
    if len(size) != dim or any(s < 1 for s in size):
        raise LatticeError(f"supercell size must be {dim} positive integers, got {size}")
    return size


def _strides(L) -> np.ndarray:
    """Row-major strides of cell coordinates: index = c @ strides."""
    return np.cumprod(np.r_[1, np.asarray(L)[::-1][:-1]])[::-1].astype(np.int64)


def lattice_graph(lattice: Union[str, Lattice], size, hoppings: Optional[Mapping] = None,
                  periodic: Union[bool, Sequence[bool]] = True, keep_zero: bool = False,
                  min_image: str = "warn") -> Data:
    r"""Graph of a supercell of ``lattice``.

    Args:
        lattice: a :class:`Lattice`, a built-in name or a lattice file path.
        size: ``L`` (all directions) or ``(L1, L2[, L3])`` unit cells.
        hoppings: amplitudes per shell, e.g. ``{"t1": 1, "t3": -0.85}``;
            shells not given take the file's defaults.
        periodic: periodic boundaries (per direction or for all); ``False`` gives
            open boundaries (bonds crossing the edge are dropped).
        keep_zero: keep bonds whose amplitude is zero (default: drop them, so
            the edges are exactly the hopping partners; ``docs/conventions.md``,
            "Lattices and site order").
        min_image: ``"warn"`` (default) or ``"error"`` when a bond meets a
            periodic image of itself (supercell too small for the bond range).

    Returns:
        :class:`~torch_geometric.data.Data` with ``pos``, ``edge_index``,
        ``hopping``, ``bond_shell``, ``bond_type``, ``cell_shift``, ``edge_vec``,
        ``sublattice``, ``cell``, ``size`` (``(1, dim)``), ``supercell``
        (``(1, dim, dim)`` supercell vectors) and the ``lattice`` name.

    Raises:
        LatticeError: if the lattice cannot be loaded, ``size`` is not ``dim``
            positive integers, ``periodic`` has the wrong length, a hopping
            override is invalid, or ``min_image="error"`` and a bond meets a
            periodic image of itself.
        ValueError: if ``min_image`` is neither ``"warn"`` nor ``"error"``.
    """
    lat = load_lattice(lattice)
    dim, nb = lat.dim, lat.n_basis
    L = np.array(_as_size(size, dim))
    if isinstance(periodic, (bool, np.bool_)):
        periodic = (bool(periodic),) * dim
    periodic = np.array([bool(p) for p in periodic])
    if len(periodic) != dim:
        raise LatticeError(f"'periodic' needs {dim} entries, got {len(periodic)}")
    if min_image not in ("warn", "error"):
        raise ValueError("min_image must be 'warn' or 'error'")
    values = lat.hopping_values(hoppings)

    cells = np.stack(np.meshgrid(*[np.arange(l) for l in L], indexing="ij"), -1).reshape(-1, dim)
    ncell = len(cells)
    strides = _strides(L)

    def site(c, b):
        return (c @ strides) * nb + b

    src, dst, shift, shell, btype, hop = [], [], [], [], [], []
    kept, counts = [], []
    for k, bond in enumerate(lat.bonds):
        t = values[bond.shell]
        if t == 0.0 and not keep_zero:
            continue
        tgt = cells + np.array(bond.offset)
        sh = np.floor_divide(tgt, L)
        keep = np.all(periodic | (sh == 0), axis=1)
        src.append(site(cells[keep], bond.source))
        dst.append(site(tgt[keep] - sh[keep] * L, bond.target))
        shift.append(sh[keep])
        shell.append(np.full(keep.sum(), lat.shells.index(bond.shell)))
        btype.append(np.full(keep.sum(), k))
        hop.append(np.full(keep.sum(), t))
        kept.append(k)
        counts.append(int(keep.sum()))
    cat = (lambda xs, w: np.concatenate(xs) if xs else np.zeros((0,) + w))
    src, dst = cat(src, ()).astype(np.int64), cat(dst, ()).astype(np.int64)
    shift, shell = cat(shift, (dim,)).astype(np.int64), cat(shell, ()).astype(np.int64)
    btype, hop = cat(btype, ()).astype(np.int64), cat(hop, ())

    # bonds meeting their periodic images, decided per bond class (no sort of all edges):
    # a class wraps onto its own site, or onto the sites another class already joins
    n_loops = n_multi = 0
    seen = set()
    for k, count in zip(kept, counts):
        bond = lat.bonds[k]
        wrapped = tuple(int(o) % int(l) if p else int(o)
                        for o, l, p in zip(bond.offset, L, periodic))
        if bond.source == bond.target and not any(wrapped):
            n_loops += count
        key = (bond.source, bond.target, wrapped)
        n_multi += count if key in seen else 0
        seen.add(key)
    if n_loops or n_multi:
        msg = (f"{lat.name} supercell {tuple(int(x) for x in L)} is too small for its bond range: "
               f"{n_loops} bonds return to their own site and {n_multi} site pairs are joined "
               "by more than one bond (periodic images); the Hamiltonian sums them")
        if min_image == "error":
            raise LatticeError(msg + ". Use a larger supercell.")
        warnings.warn(msg, PeriodicImageWarning, stacklevel=2)

    frac = (cells[:, None, :] + lat.basis[None, :, :]).reshape(-1, dim)
    pos = frac @ lat.vectors
    supercell = L[:, None] * lat.vectors
    edge_vec = pos[dst] - pos[src] + shift @ supercell
    data = Data(
        pos=torch.from_numpy(pos),
        edge_index=torch.from_numpy(np.stack([src, dst])),
        num_nodes=ncell * nb,
    )
    data[K.HOPPING] = torch.from_numpy(hop)
    data[K.BOND_SHELL] = torch.from_numpy(shell)
    data[K.BOND_TYPE] = torch.from_numpy(btype)
    data[K.CELL_SHIFT] = torch.from_numpy(shift)
    data[K.EDGE_VEC] = torch.from_numpy(edge_vec)
    data[K.SUBLATTICE] = torch.arange(nb).repeat(ncell)
    data[K.CELL] = torch.from_numpy(np.repeat(cells, nb, axis=0))
    data[K.SIZE] = torch.from_numpy(L).view(1, dim)
    data.supercell = torch.from_numpy(supercell).view(1, dim, dim)
    data[K.LATTICE] = lat.name
    return data


# --------------------------------------------------------------- networkx
def from_networkx(graph: nx.Graph, name: str = "custom", decimals: int = 6) -> Data:
    """Graph of a user lattice given as a :mod:`networkx` graph.

    Node attribute ``pos`` (optional, 2D or 3D coordinates); edge attribute
    ``hopping`` (amplitude, default 1) and optional ``shell`` (a label; default:
    bonds with the same amplitude and length form a shell). Bond types (offset
    classes) are the distinct bond vectors, rounded to ``decimals``; without
    positions each shell is one bond type. Nodes are numbered in
    ``graph.nodes`` order. Periodic lattices are encoded in the edges
    (wrap-around bonds); their ``edge_vec`` are then taken from ``pos``
    differences, so give wrap-around bonds an explicit ``vec`` attribute
    (source -> target) if the bond direction matters. The graph carries the
    keys of :func:`lattice_graph` (as one unit cell holding every site, with
    no supercell vectors), so it batches with lattice graphs of the same
    spatial dimension.

    Args:
        graph: the lattice as a :class:`networkx.Graph`; each undirected edge
            is one bond (both directions are added).
        name: lattice name stored under the ``lattice`` key.
        decimals: rounding of amplitudes, lengths and bond vectors when
            grouping bonds into shells and bond types.

    Returns:
        :class:`~torch_geometric.data.Data` with the keys of
        :func:`lattice_graph`.

    Raises:
        LatticeError: if the graph has no nodes, ``pos`` is not a 1D, 2D or 3D
            coordinate, or an edge has a non-finite hopping.
    """
    nodes = list(graph.nodes)
    if not nodes:
        raise LatticeError("the networkx graph has no nodes")
    index = {n: i for i, n in enumerate(nodes)}
    has_pos = all("pos" in graph.nodes[n] for n in nodes)
    pos = np.array([graph.nodes[n]["pos"] for n in nodes], float) if has_pos \
        else np.zeros((len(nodes), 2))
    if pos.ndim != 2 or pos.shape[1] not in (1, 2, 3):
        raise LatticeError("node attribute 'pos' must be a 1D, 2D or 3D coordinate")
    src, dst, hop, label, vec = [], [], [], [], []
    for u, v, attr in graph.edges(data=True):
        t = float(attr.get("hopping", 1.0))
        if not np.isfinite(t):
            raise LatticeError(f"edge ({u}, {v}) has a non-finite hopping {t}")
        d = np.asarray(attr["vec"], float) if "vec" in attr else pos[index[v]] - pos[index[u]]
        lab = attr.get("shell", None)
        for a, b, dv in ((u, v, d), (v, u, -d)):
            src.append(index[a])
            dst.append(index[b])
            hop.append(t)
            vec.append(dv)
            label.append(lab if lab is not None else
                         (round(t, decimals), round(float(np.linalg.norm(dv)), decimals)))
    vec = np.array(vec, float).reshape(-1, pos.shape[1])
    shells = sorted(set(label), key=str)
    shell = np.array([shells.index(lb) for lb in label], np.int64)
    if has_pos:
        types = [tuple(np.round(v, decimals) + 0.0) + (s,) for v, s in zip(vec, shell)]
    else:
        types = [(s, int(a > b)) for s, a, b in zip(shell, src, dst)]
    uniq = sorted(set(types))
    btype = np.array([uniq.index(t) for t in types], np.int64)
    data = Data(pos=torch.from_numpy(pos),
                edge_index=torch.tensor([src, dst], dtype=torch.long).view(2, -1),
                num_nodes=len(nodes))
    data[K.HOPPING] = torch.tensor(hop, dtype=torch.float64)
    data[K.BOND_SHELL] = torch.from_numpy(shell)
    data[K.BOND_TYPE] = torch.from_numpy(btype)
    data[K.EDGE_VEC] = torch.from_numpy(vec)
    # the whole graph is one unit cell whose basis is every site: the same keys
    # as lattice_graph, so custom and built-in lattices batch together
    dim = pos.shape[1]
    data[K.CELL_SHIFT] = torch.zeros(len(src), dim, dtype=torch.long)
    data[K.SUBLATTICE] = torch.arange(len(nodes))
    data[K.CELL] = torch.zeros(len(nodes), dim, dtype=torch.long)
    data[K.SIZE] = torch.ones(1, dim, dtype=torch.long)
    data.supercell = torch.zeros(1, dim, dim, dtype=torch.float64)
    data[K.LATTICE] = name
    return data


def to_networkx(data: Data) -> nx.MultiGraph:
    """Undirected :class:`networkx.MultiGraph` of a lattice graph.

    Nodes ``0..N-1`` with ``pos``; one edge per bond (the two directed edges of
    a bond are merged) with ``hopping``, ``shell`` and ``vec`` attributes. A
    multigraph because small periodic supercells can join two sites twice.

    Args:
        data: a lattice graph (from :func:`lattice_graph` or
            :func:`from_networkx`).

    Returns:
        The :class:`networkx.MultiGraph`.
    """
    g = nx.MultiGraph()
    pos = data.pos.cpu().numpy()
    for i in range(data.num_nodes):
        g.add_node(i, pos=tuple(pos[i]))
    ei = data.edge_index.cpu().numpy()
    vec = data[K.EDGE_VEC].cpu().numpy()
    hop = data[K.HOPPING].cpu().numpy()
    shell = data[K.BOND_SHELL].cpu().numpy()
    seen = {}
    for e in range(ei.shape[1]):
        a, b = int(ei[0, e]), int(ei[1, e])
        fwd = (a, b, tuple(np.round(vec[e], 8)))
        rev = (b, a, tuple(np.round(-vec[e], 8)))
        if seen.get(rev, 0) > 0:          # partner of an edge already added
            seen[rev] -= 1
            continue
        seen[fwd] = seen.get(fwd, 0) + 1
        g.add_edge(a, b, hopping=float(hop[e]), shell=int(shell[e]), vec=tuple(vec[e]))
    return g


# --------------------------------------------------------------- symmetries
def site_permutation(data: Data, matrix=None, translation=None) -> torch.Tensor:
    """Site permutation ``perm`` of a lattice symmetry ``n -> M n + t`` (cell coords).

    The spin configuration transformed by the symmetry is ``spins[perm]``:
    site ``i`` of the new configuration carries the spin of site ``perm[i]``.
    Only for periodic supercells of one-site-per-cell lattices.

    Args:
        data: a periodic lattice graph from :func:`lattice_graph`.
        matrix: ``(dim, dim)`` integer matrix ``M`` on cell coordinates
            (default: identity).
        translation: ``(dim,)`` integer translation ``t`` in unit cells
            (default: none).

    Returns:
        ``(N,)`` long tensor ``perm``.

    Raises:
        LatticeError: if the lattice has more than one site per cell, or the
            supercell is not invariant under ``matrix``.
    """
    L = data[K.SIZE].view(-1).cpu().numpy()
    cells = data[K.CELL].cpu().numpy()
    if int(data[K.SUBLATTICE].max()) != 0:
        raise LatticeError("site_permutation supports one site per unit cell")
    dim = len(L)
    M = np.eye(dim, dtype=np.int64) if matrix is None else np.asarray(matrix, np.int64)
    t = np.zeros(dim, np.int64) if translation is None else np.asarray(translation, np.int64)
    # new site at cell c holds the old spin at M^{-1}(c - t)
    Minv = np.rint(np.linalg.inv(M)).astype(np.int64)
    old = ((cells - t) @ Minv.T) % L
    if matrix is not None:
        # the supercell must be mapped onto itself
        img = (M @ np.diag(L)) % L[:, None]      # images of the supercell vectors
        if img.any():
            raise LatticeError(f"the supercell {tuple(L)} is not invariant under {M.tolist()}")
    strides = _strides(L)
    return torch.from_numpy(old @ strides)


def translation_permutation(data: Data, shift) -> torch.Tensor:
    """Site permutation of a translation by ``shift`` unit cells (see :func:`site_permutation`).

    Args:
        data: a periodic lattice graph from :func:`lattice_graph`.
        shift: ``(dim,)`` integer translation in unit cells.

    Returns:
        ``(N,)`` long tensor ``perm``: the translated spins are ``spins[perm]``.

    Raises:
        LatticeError: if the lattice has more than one site per cell.
    """
    return site_permutation(data, translation=shift)


def symmetry_permutation(data: Data, op: SymmetryOp) -> torch.Tensor:
    """Site permutation of a lattice symmetry operation on a periodic supercell.

    The transformed configuration is ``spins[perm]``: basis site ``b`` of
    cell ``n`` moves to basis site ``op.sublattice[b]`` of cell
    ``op.matrix @ n + op.shifts[b]`` (modulo the supercell), so the new site
    there carries the spin of the old one. Works for any number of sites per
    cell.

    Args:
        data: a periodic lattice graph from :func:`lattice_graph`.
        op: a :class:`~ecnn_pyg.lattice.SymmetryOp` of the graph's lattice
            (:meth:`~ecnn_pyg.lattice.Lattice.symmetries`).

    Returns:
        ``(N,)`` long tensor ``perm``.

    Raises:
        LatticeError: if the supercell is not invariant under ``op.matrix``.
    """
    L = data[K.SIZE].view(-1).cpu().numpy().astype(np.int64)
    cells = data[K.CELL].cpu().numpy().astype(np.int64)
    sub = data[K.SUBLATTICE].cpu().numpy().astype(np.int64)
    M = np.asarray(op.matrix, np.int64)
    if ((M @ np.diag(L)) % L[:, None]).any():
        raise LatticeError(f"the supercell {tuple(int(x) for x in L)} is not invariant under "
                           f"{M.tolist()}")
    nb = len(op.sublattice)
    new_cells = (cells @ M.T + np.asarray(op.shifts, np.int64)[sub]) % L
    new_sub = np.asarray(op.sublattice, np.int64)[sub]
    forward = (new_cells @ _strides(L)) * nb + new_sub
    perm = np.empty_like(forward)
    perm[forward] = np.arange(len(forward))
    return torch.from_numpy(perm)


def _graph_lattice(data: Data, lattice) -> Lattice:
    return load_lattice(lattice if lattice is not None else data[K.LATTICE])


def symmetry_permutations(data: Data, lattice: Union[str, Lattice, Mapping, None] = None,
                          proper_only: bool = False):
    """The lattice's symmetry operations that fit the supercell, with their site permutations.

    Args:
        data: a periodic lattice graph from :func:`lattice_graph`.
        lattice: the lattice (a :class:`Lattice`, name, path or definition);
            default: the graph's ``lattice`` name (a built-in lattice).
        proper_only: keep the rotations only (no reflections).

    Returns:
        List of ``(op, perm)`` (:class:`~ecnn_pyg.lattice.SymmetryOp` and
        :func:`symmetry_permutation`) for the operations of
        :meth:`Lattice.symmetries` under which the periodic supercell is
        invariant; the identity is first.

    Raises:
        LatticeError: if the lattice cannot be loaded.
    """
    lat = _graph_lattice(data, lattice)
    out = []
    for op in lat.symmetries():
        if proper_only and not op.proper:
            continue
        try:
            out.append((op, symmetry_permutation(data, op)))
        except LatticeError:
            continue
    return out


def rotation_permutations(data: Data, lattice: Union[str, Lattice, Mapping, None] = None):
    """Site permutations of the lattice point-group rotations that fit the supercell.

    Args:
        data: a periodic lattice graph from :func:`lattice_graph`.
        lattice: the lattice (a :class:`Lattice`, name, path or definition);
            default: the graph's ``lattice`` name (a built-in lattice).

    Returns:
        List of ``(matrix, perm)`` for the rotations of
        :meth:`Lattice.point_group` under which the periodic supercell is
        invariant (e.g. C4 for an L x L square supercell, C6 for an L x L
        triangular, honeycomb or kagome one); the identity is first.

    Raises:
        LatticeError: if the lattice cannot be loaded.
    """
    return [(op.matrix, perm) for op, perm in symmetry_permutations(data, lattice, True)]
