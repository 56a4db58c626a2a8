r"""Exact energies and fields of large lattices, computed region by region with halos.

The model is strictly local: after ``n`` convolutions (``num_blocks`` interaction
blocks and the output block) the local energy :math:`\epsilon_r` depends on the
spins within ``n`` convolution hops of ``r``, and the field
:math:`\mathbf B_r = -\partial E/\partial\mathbf S_r = -\sum_{r'}\partial\epsilon_{r'}/\partial\mathbf S_r`
on the spins within ``2 n`` hops. A region of the lattice plus a halo of that
width (:func:`halo_width`) therefore gives the exact field on the region, and
the local energies of the region sum to its exact share of the energy.

Two ways to cut a lattice:

* **periodic Bravais supercells** (:func:`~ecnn_pyg.lattice_graph`, every
  direction periodic): a tile is a block of unit cells; it is evaluated as a
  small *periodic* supercell (the fast grid path of the model) of the tile
  plus its halo. Only the halo feels the artificial wrap-around of that small
  supercell, so the tile's energies and fields are exact. A direction that is
  not split needs no halo at all (the tile spans it and its own wrap-around is
  the lattice's). The halo in unit cells along each axis is the number of
  convolutions times the longest cell offset of one convolution hop along that
  axis (the graph's bonds, or the published model's fixed neighbourhood),
  doubled for the field;
* **any other graph** (open boundaries, :func:`~ecnn_pyg.from_networkx`
  graphs): the sites are cut into parts of consecutive position along the
  graph's longest extent; each part is evaluated on the subgraph induced by
  the part and its ``2 n``-hop neighbourhood (the model's gather path).

:class:`TiledEvaluator` does either, for a tile size or a budget of sites per
evaluation (:func:`sites_for_memory` turns a memory budget into one), and
:func:`tiled_field_source` makes it an LLG field source.

Example::

    model = load_model("triangular-paper").eval()
    graph = lattice_graph("triangular", 1152, {"t1": 1.0, "t3": -0.85})
    tiled = TiledEvaluator(model, graph, max_sites=sites_for_memory("6GB", model))
    out = tiled(spins)            # {"energy": (1,), "local_energy": (N,), "field": (N, 3)}
"""
from __future__ import annotations

import math
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .. import keys as K

__all__ = ["TilingError", "tile_options", "evaluate_tiled", "receptive_hops", "cell_reach", "halo_width", "bravais_info",
           "BravaisInfo", "patch_graph", "TiledEvaluator", "tiled_field_source",
           "parse_bytes", "bytes_per_site", "sites_for_memory", "split_axis"]


class TilingError(ValueError):
    """A lattice, model or tile size that tiled evaluation cannot handle."""


# ----------------------------------------------------------------- model and graph reach
def receptive_hops(model) -> int:
    """Convolutions of the model: the local energy depends on spins this many hops away.

    Args:
        model: a strictly local model (an :class:`ecnn_pyg.nn.ECNN`).

    Returns:
        The number of :class:`~ecnn_pyg.nn.SpinConv` layers (``num_blocks + 1``).

    Raises:
        TilingError: if the model has no such layers (not a local message-passing model).
    """
    from ..nn import SpinConv
    members = getattr(model, "members", None)      # a committee: its widest member
    if isinstance(members, torch.nn.ModuleList) and len(members):
        return max(receptive_hops(m) for m in members)
    n = sum(1 for m in model.modules() if isinstance(m, SpinConv))
    if n == 0:
        raise TilingError(f"tiled evaluation needs a strictly local model (ecnn_pyg.nn.ECNN, "
                          f"whose convolutions bound its range); {type(model).__name__} has none")
    return n


def _bond_offsets(graph) -> np.ndarray:
    """``(E, dim)`` cell offsets ``source -> target`` of the edges of a lattice graph."""
    cell = graph[K.CELL].cpu().numpy()
    size = graph[K.SIZE].view(-1).cpu().numpy()
    src, dst = graph.edge_index.cpu().numpy()
    return cell[dst] + graph[K.CELL_SHIFT].cpu().numpy() * size - cell[src]


def cell_reach(model, graph) -> Tuple[int, ...]:
    """Longest cell offset of one convolution hop, per axis of a lattice graph.

    Args:
        model: an :class:`~ecnn_pyg.nn.ECNN` (``neighborhood="paper"``: its
            fixed slots; otherwise the graph's bonds are the hops).
        graph: a graph of :func:`~ecnn_pyg.lattice_graph`.

    Returns:
        One integer per axis.
    """
    dim = int(graph[K.SIZE].numel())
    slots = getattr(model, "slot_offsets", None)
    if getattr(model, "neighborhood", "bonds") == "paper" and slots is not None:
        off = np.abs(np.asarray(slots, dtype=np.int64)).reshape(-1, dim)
    else:
        off = np.abs(_bond_offsets(graph)).reshape(-1, dim)
    return tuple(int(x) for x in (off.max(0) if off.size else np.zeros(dim, np.int64)))


def halo_width(model, graph, field: bool = True) -> Tuple[int, ...]:
    """Halo in unit cells per axis that makes a tile's energy (and field) exact.

    ``receptive_hops(model) * cell_reach(model, graph)``, twice that with the field.

    Args:
        model: an :class:`~ecnn_pyg.nn.ECNN`.
        graph: a graph of :func:`~ecnn_pyg.lattice_graph`.
        field: whether the field is wanted (else the energy only).

    Returns:
        One integer per axis.
    """
    n = receptive_hops(model) * (2 if field else 1)
    return tuple(n * r for r in cell_reach(model, graph))


# ----------------------------------------------------------------- Bravais supercells
class BravaisInfo:
    """What rebuilds a periodic supercell of a lattice graph at another size.

    Attributes:
        lattice: the lattice name; ``size``: cells per axis; ``n_basis``: sites per
        cell; ``hoppings``: amplitude of every shell (0 for dropped shells).
    """

    def __init__(self, lattice: str, size: Tuple[int, ...], n_basis: int,
                 hoppings: Dict[str, float]):
        self.lattice, self.size, self.n_basis, self.hoppings = lattice, size, n_basis, hoppings

    @property
    def dim(self) -> int:
        """Number of axes."""
        return len(self.size)

    def __repr__(self):
        return (f"BravaisInfo({self.lattice!r}, size={self.size}, n_basis={self.n_basis}, "
                f"hoppings={self.hoppings})")


def bravais_info(graph) -> Optional[BravaisInfo]:
    """The :class:`BravaisInfo` of a periodic :func:`~ecnn_pyg.lattice_graph`, else ``None``.

    ``None`` for graphs that are not a full periodic supercell of a loadable
    lattice in the site order of :func:`~ecnn_pyg.lattice_graph` (custom
    graphs, open boundaries, batches).
    """
    from ..graph import lattice_graph
    from ..lattice import LatticeError, load_lattice
    needed = (K.CELL, K.SIZE, K.LATTICE, K.CELL_SHIFT, K.BOND_SHELL, K.HOPPING, K.SUBLATTICE)
    if any(k not in graph for k in needed) or getattr(graph, "num_graphs", 1) not in (1, None):
        return None
    name = graph[K.LATTICE]
    if not isinstance(name, str):
        return None
    try:
        lat = load_lattice(name)
    except (LatticeError, OSError, ValueError):
        return None
    size = tuple(int(x) for x in graph[K.SIZE].view(-1))
    nb = lat.n_basis
    if len(size) != lat.dim or graph.num_nodes != nb * int(np.prod(size)):
        return None
    shells = graph[K.BOND_SHELL].cpu().numpy()
    hop = graph[K.HOPPING].cpu().numpy()
    hoppings = {}
    for i, s in enumerate(lat.shells):
        vals = hop[shells == i]
        if vals.size and not np.all(vals == vals[0]):
            return None
        hoppings[s] = float(vals[0]) if vals.size else 0.0
    info = BravaisInfo(lat.name, size, nb, hoppings)
    # the graph must be the full periodic supercell, in lattice_graph's order: compare
    # with a rebuilt one (cheap next to a model evaluation; cached on the graph object)
    cached = getattr(graph, "_ecnn_bravais", None)
    if cached is not None:
        return cached if cached is not False else None
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = lattice_graph(lat, size, hoppings)
    except (LatticeError, ValueError):
        return None
    same = (ref.edge_index.shape == graph.edge_index.shape
            and torch.equal(ref.edge_index, graph.edge_index.cpu())
            and torch.equal(ref[K.BOND_TYPE], graph[K.BOND_TYPE].cpu())
            and torch.equal(ref[K.CELL], graph[K.CELL].cpu()))
    try:
        object.__setattr__(graph, "_ecnn_bravais", info if same else False)
    except (AttributeError, TypeError):
        pass
    return info if same else None


_PATCHES: Dict[tuple, object] = {}


def patch_graph(info: BravaisInfo, size: Sequence[int]):
    """The periodic supercell of ``info``'s lattice and hoppings at ``size`` (cached).

    Args:
        info: from :func:`bravais_info`.
        size: cells per axis.

    Returns:
        A :func:`~ecnn_pyg.lattice_graph` graph.
    """
    import warnings
    from ..graph import lattice_graph
    key = (info.lattice, tuple(int(s) for s in size), tuple(sorted(info.hoppings.items())))
    if key not in _PATCHES:
        if len(_PATCHES) > 8:
            _PATCHES.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # a thin unsplit axis wraps as the lattice does
            _PATCHES[key] = lattice_graph(info.lattice, key[1], info.hoppings)
    return _PATCHES[key]


def split_axis(length: int, parts: int) -> List[Tuple[int, int]]:
    """``parts`` contiguous ranges ``[a, b)`` covering ``0..length``, sizes differing by at most 1."""
    edges = [int(length * p // parts) for p in range(parts + 1)]
    return [(edges[p], edges[p + 1]) for p in range(parts)]


# ----------------------------------------------------------------- memory
_UNITS = {"": 1, "b": 1, "k": 2 ** 10, "kb": 2 ** 10, "kib": 2 ** 10, "m": 2 ** 20,
          "mb": 2 ** 20, "mib": 2 ** 20, "g": 2 ** 30, "gb": 2 ** 30, "gib": 2 ** 30,
          "t": 2 ** 40, "tb": 2 ** 40, "tib": 2 ** 40}


def parse_bytes(value: Union[str, int, float]) -> int:
    """Bytes of ``"8GB"``, ``"512 MiB"``, ``"6g"`` or a number (binary units).

    Raises:
        ValueError: if it is not a positive size.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        n = float(value)
    else:
        m = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value))
        if not m or m.group(2).lower() not in _UNITS:
            raise ValueError(f"a memory size must be a number of bytes or like '8GB', '512MB'; "
                             f"got {value!r}")
        n = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not (n > 0 and math.isfinite(n)):
        raise ValueError(f"a memory size must be > 0, got {value!r}")
    return int(n)


#: Peak bytes per site of one energy + field evaluation, per float of hidden feature
#: (``channels * (lmax + 1)^2``) per convolution, measured for the default architecture
#: on CPU (float32, one thread; docs/distributed.md): 12.0 kB per site at 576 x 576
#: untiled, 13.7 kB per site in tiles of 488 k sites, i.e. 9.5 x 4 bytes x 72 features
#: x 5 convolutions.
_PEAK_PER_FEATURE = 9.5


def bytes_per_site(model, dtype: Optional[torch.dtype] = None) -> float:
    """Estimated peak memory per site of one E + B evaluation of ``model``.

    Proportional to the hidden features per site (``channels * (lmax + 1)^2``),
    the convolutions and the float size; calibrated on the measured peak of the
    default architecture (docs/distributed.md).
    """
    if dtype is None:
        params = list(model.parameters())
        dtype = params[0].dtype if params else torch.float32
    item = torch.empty((), dtype=dtype).element_size()
    ch = int(getattr(model, "channels", 8))
    lmax = int(getattr(model, "lmax", 2))
    return _PEAK_PER_FEATURE * item * ch * (lmax + 1) ** 2 * receptive_hops(model)


def sites_for_memory(budget: Union[str, int, float], model,
                     dtype: Optional[torch.dtype] = None) -> int:
    """Sites per evaluation (tile plus halo) that fit ``budget`` (see :func:`bytes_per_site`)."""
    return max(1, int(parse_bytes(budget) / bytes_per_site(model, dtype)))


# ----------------------------------------------------------------- the evaluator
class _Tile:
    __slots__ = ("start", "owned", "graph", "patch_index", "owned_local", "owned_global")


class TiledEvaluator:
    r"""Energy and field of one lattice graph, computed tile by tile (exact).

    Args:
        model: a strictly local model (:class:`~ecnn_pyg.nn.ECNN`), called as
            ``model(graph, spins)``.
        graph: the lattice graph (one graph, not a batch).
        max_sites: most sites per evaluation, tile plus halo (the memory bound);
            ``None`` with ``tiles=None``: the whole lattice at once.
        tiles: periodic supercells only: parts per axis (e.g. ``(4, 1)``: four
            slabs along the first axis), instead of ``max_sites``.
        field: compute fields (the halo is twice as wide as for energies only).

    Raises:
        TilingError: if a split axis is too short for its parts and halo, or
            ``max_sites`` cannot be met (the message names the smallest tile).

    Shapes:
        - **input:** spins ``(N, 3)``
        - **output:** ``{"energy": (1,), "local_energy": (N,), "field": (N, 3)}``
    """

    def __init__(self, model, graph, max_sites: Optional[int] = None,
                 tiles: Optional[Sequence[int]] = None, field: bool = True):
        self.model, self.graph, self.field = model, graph, bool(field)
        self.num_nodes = int(graph.num_nodes)
        if max_sites is not None and (isinstance(max_sites, bool) or int(max_sites) < 1):
            raise TilingError(f"max_sites must be a positive integer, got {max_sites!r}")
        self.max_sites = None if max_sites is None else int(max_sites)
        self.info = bravais_info(graph)
        self.hops = receptive_hops(model)
        if getattr(model, "neighborhood", "bonds") == "paper" and self.info is None:
            raise TilingError("a model with the published fixed neighbourhood needs a periodic "
                              "supercell of lattice_graph to be tiled")
        if self.info is not None:
            self.halo = halo_width(model, graph, field)
            self.parts = self._plan_bravais(tiles)
            self.tiles = self._bravais_tiles()
        else:
            if tiles is not None:
                raise TilingError("tiles (parts per axis) apply to periodic supercells of "
                                  "lattice_graph; give max_sites for other graphs")
            self.halo = (self.hops * (2 if field else 1),)      # graph hops
            self.parts = None
            self.tiles = self._graph_tiles()
        params = list(model.parameters()) if hasattr(model, "parameters") else []
        if params and params[0].device.type != "cpu":
            moved: Dict[int, object] = {}       # one copy per graph: the model's adjacency cache
            for t in self.tiles:
                if id(t.graph) not in moved:
                    moved[id(t.graph)] = t.graph.to(params[0].device)
                t.graph = moved[id(t.graph)]

    # -- planning
    def _patch_extent(self, parts: Sequence[int]) -> Tuple[int, ...]:
        L = self.info.size
        return tuple(L[a] if parts[a] == 1 else -(-L[a] // parts[a]) + 2 * self.halo[a]
                     for a in range(len(L)))

    def _patch_sites(self, parts) -> int:
        return int(np.prod(self._patch_extent(parts))) * self.info.n_basis

    def _plan_bravais(self, tiles) -> Tuple[int, ...]:
        L, h = self.info.size, self.halo
        dim = len(L)
        if tiles is not None:
            parts = tuple(int(t) for t in tiles) + (1,) * (dim - len(tuple(tiles)))
            if len(parts) != dim or any(p < 1 for p in parts):
                raise TilingError(f"tiles must be {dim} positive integers (parts per axis), "
                                  f"got {tuple(tiles)}")
            for a, p in enumerate(parts):
                if p > L[a]:
                    raise TilingError(f"{p} parts along axis {a} of a lattice of {L[a]} cells: "
                                      "more parts than cells")
            return parts
        if self.max_sites is None or self.num_nodes <= self.max_sites:
            return (1,) * dim
        # fewest evaluated sites (tiles x (tile + halo)) within the budget; split the first
        # axis first (slabs need no halo along the second), the second only if slabs do not fit
        best = None
        for p0 in range(1, L[0] + 1):
            for p1 in ([1] if dim < 2 else range(1, L[1] + 1)):
                parts = (p0, p1)[:dim] + (1,) * max(0, dim - 2)
                n = self._patch_sites(parts)
                if n <= self.max_sites:
                    cost = n * int(np.prod(parts))
                    if best is None or cost < best[0]:
                        best = (cost, parts)
                    break
            if best is not None and best[1][1:2] in ((1,), ()):
                break               # more slabs only add halo
        if best is None:
            smallest = self._patch_sites(tuple(L[:2]) + (1,) * max(0, dim - 2))
            raise TilingError(f"no tiling of the {'x'.join(map(str, L))} supercell fits "
                              f"{self.max_sites} sites per evaluation: the halo is "
                              f"{'x'.join(map(str, h))} cells, so even a tile of one cell "
                              f"needs {smallest} sites with its halo; raise the budget")
        return best[1]

    def _bravais_tiles(self) -> List[_Tile]:
        L, nb = self.info.size, self.info.n_basis
        ext = self._patch_extent(self.parts)
        pg = patch_graph(self.info, ext)
        ranges = [split_axis(L[a], self.parts[a]) for a in range(len(L))]
        tiles = []
        for idx in np.ndindex(*self.parts):
            t = _Tile()
            t.graph = pg
            t.start = tuple(ranges[a][idx[a]][0] - (self.halo[a] if self.parts[a] > 1 else 0)
                            for a in range(len(L)))
            t.owned = tuple(ranges[a][idx[a]] for a in range(len(L)))
            # site indices of the patch in the lattice (row-major cells, then basis)
            glob = np.zeros((), np.int64)
            loc_mask = np.ones((), bool)
            for a in range(len(L)):
                c = (t.start[a] + np.arange(ext[a])) % L[a]
                glob = glob[..., None] * L[a] + c
                off = (ranges[a][idx[a]][0] - t.start[a])
                w = ranges[a][idx[a]][1] - ranges[a][idx[a]][0]
                m = np.zeros(ext[a], bool)
                m[off:off + w] = True
                loc_mask = loc_mask[..., None] & m
            glob = (glob[..., None] * nb + np.arange(nb)).reshape(-1)
            loc_mask = np.repeat(loc_mask[..., None], nb, -1).reshape(-1)
            t.patch_index = torch.from_numpy(glob)
            t.owned_local = torch.from_numpy(np.nonzero(loc_mask)[0])
            t.owned_global = t.patch_index[t.owned_local]
            tiles.append(t)
        return tiles

    def _graph_tiles(self) -> List[_Tile]:
        g = self.graph
        n = self.num_nodes
        if self.max_sites is None or n <= self.max_sites:
            t = _Tile()
            t.graph, t.patch_index = g, torch.arange(n)
            t.owned_local = t.owned_global = torch.arange(n)
            t.start = t.owned = None
            return [t]
        parts = -(-n // self.max_sites)
        while True:
            tiles = graph_parts(g, parts, self.halo[0])
            worst = max(int(t.patch_index.numel()) for t in tiles)
            if worst <= self.max_sites:
                return tiles
            if parts >= n:
                raise TilingError(f"no partition of the {n}-site graph fits {self.max_sites} "
                                  f"sites per evaluation with a halo of {self.halo[0]} bond hops "
                                  f"(one site and its halo: {worst} sites); raise the budget")
            parts = min(n, parts * 2)

    # -- evaluation
    def __call__(self, spins: Tensor, compute_field: Optional[bool] = None) -> Dict[str, Tensor]:
        """``{"energy": (1,), "local_energy": (N,)[, "field": (N, 3)]}`` of ``spins`` (N, 3)."""
        with_field = self.field if compute_field is None else bool(compute_field)
        if with_field and not self.field:
            raise TilingError("this evaluator was planned for energies only (field=False)")
        if not torch.is_tensor(spins) or spins.shape != (self.num_nodes, 3):
            shape = tuple(spins.shape) if torch.is_tensor(spins) else type(spins).__name__
            raise TilingError(f"spins must have shape ({self.num_nodes}, 3), got {shape}")
        spins = spins.detach()
        local = None
        field = torch.empty_like(spins) if with_field else None
        for t in self.tiles:
            idx = t.patch_index.to(spins.device)
            out = self.model(t.graph, spins.index_select(0, idx), compute_field=with_field)
            eps = out[K.LOCAL_ENERGY].detach()
            if local is None:
                local = torch.empty(self.num_nodes, dtype=eps.dtype, device=eps.device)
            own_l, own_g = t.owned_local.to(eps.device), t.owned_global.to(eps.device)
            local[own_g] = eps.index_select(0, own_l)
            if with_field:
                field[own_g] = out[K.FIELD].detach().index_select(0, own_l).to(field.dtype)
            del out
        res = {K.ENERGY: local.sum().view(1), K.LOCAL_ENERGY: local}
        if with_field:
            res[K.FIELD] = field
        return res

    @property
    def num_tiles(self) -> int:
        """Number of evaluations per call."""
        return len(self.tiles)

    @property
    def sites_per_tile(self) -> int:
        """Sites of the largest evaluation (tile plus halo)."""
        return max(int(t.patch_index.numel()) for t in self.tiles)

    def __repr__(self):
        return (f"TiledEvaluator({self.num_nodes} sites, {self.num_tiles} tiles of at most "
                f"{self.sites_per_tile} sites, halo {self.halo} "
                f"{'cells' if self.info is not None else 'hops'})")


def _k_hop(ptr: np.ndarray, nbr: np.ndarray, seed: np.ndarray, n: int, k: int) -> np.ndarray:
    """Sorted nodes within ``k`` hops of ``seed`` (CSR adjacency ``ptr``, ``nbr``)."""
    mask = np.zeros(n, bool)
    mask[seed] = True
    frontier = seed
    for _ in range(k):
        if frontier.size == 0:
            break
        starts, ends = ptr[frontier], ptr[frontier + 1]
        lens = ends - starts
        idx = np.repeat(starts - np.cumsum(np.r_[0, lens[:-1]]), lens) + np.arange(lens.sum())
        cand = np.unique(nbr[idx])
        frontier = cand[~mask[cand]]
        mask[frontier] = True
    return np.nonzero(mask)[0]


def graph_parts(graph, parts: int, halo_hops: int) -> List[_Tile]:
    """Cut a graph into ``parts`` parts of consecutive position and add ``halo_hops`` of halo.

    Sites are ordered along the axis of the graph's largest extent in ``pos``
    (site index without positions) and cut into equal parts; each part's
    evaluation graph is the subgraph induced by the part and every site
    within ``halo_hops`` bond hops of it.

    Returns:
        A list of tiles (``graph``, ``patch_index``, ``owned_local``, ``owned_global``).
    """
    n = int(graph.num_nodes)
    src, dst = graph.edge_index.cpu().numpy()
    order = np.argsort(dst, kind="stable")
    ptr = np.r_[0, np.cumsum(np.bincount(dst, minlength=n))]
    nbr = src[order]
    if getattr(graph, "pos", None) is not None and graph.pos.numel():
        pos = graph.pos.cpu().double().numpy()
        axis = int(np.argmax(pos.max(0) - pos.min(0)))
        key = np.argsort(pos[:, axis], kind="stable")
    else:
        key = np.arange(n)
    tiles = []
    for p in range(parts):
        own = np.sort(key[n * p // parts:n * (p + 1) // parts])
        if own.size == 0:
            continue
        sub = _k_hop(ptr, nbr, own, n, halo_hops)
        t = _Tile()
        t.start = t.owned = None
        t.patch_index = torch.from_numpy(sub)
        t.owned_local = torch.from_numpy(np.searchsorted(sub, own))
        t.owned_global = torch.from_numpy(own)
        t.graph = induced_subgraph(graph, t.patch_index)
        tiles.append(t)
    return tiles


def induced_subgraph(graph, subset: Tensor):
    """The lattice graph restricted to the sites ``subset`` (sorted) and the bonds among them.

    Node keys (``pos``, ``cell``, ``sublattice``) and edge keys are sliced; the
    graph-level keys are kept, so the model sees the same lattice and bond ids.
    """
    from torch_geometric.data import Data
    n = int(graph.num_nodes)
    subset = subset.to(torch.long).cpu()
    new_id = torch.full((n,), -1, dtype=torch.long)
    new_id[subset] = torch.arange(subset.numel())
    ei = graph.edge_index.cpu()
    keep = (new_id[ei[0]] >= 0) & (new_id[ei[1]] >= 0)
    out = Data(edge_index=new_id[ei[:, keep]], num_nodes=int(subset.numel()))
    e = ei.shape[1]
    for key in graph.keys():
        if key in ("edge_index", "num_nodes"):
            continue
        v = graph[key]
        if torch.is_tensor(v) and key in (K.POS, K.CELL, K.SUBLATTICE) and v.shape[0] == n:
            out[key] = v.cpu()[subset]
        elif torch.is_tensor(v) and v.dim() >= 1 and v.shape[0] == e and key not in (K.SIZE,):
            out[key] = v.cpu()[keep]
        else:
            out[key] = v
    # the subgraph is not the full periodic supercell: no grid form for it
    out[K.SIZE] = torch.ones_like(graph[K.SIZE]) if K.SIZE in graph else None
    if out[K.SIZE] is None:
        del out[K.SIZE]
    return out


def tiled_field_source(model, graph, max_sites: Optional[int] = None,
                       tiles: Optional[Sequence[int]] = None):
    """An LLG field source (see :func:`ecnn_pyg.dynamics.model_field_source`) evaluating tile by tile.

    Args:
        model: the model (put it in ``eval()`` mode).
        graph: the lattice graph.
        max_sites: most sites per evaluation (tile plus halo).
        tiles: parts per axis instead (periodic supercells).

    Returns:
        A callable ``spins (N, 3) or (R, N, 3) -> field`` of the spins' shape,
        device and dtype; the spins are cast to the model's dtype and device.
    """
    params = list(model.parameters())
    p_dtype = params[0].dtype if params else None
    p_device = params[0].device if params else None
    ev = TiledEvaluator(model, graph, max_sites=max_sites, tiles=tiles)

    def call(s: Tensor) -> Tensor:
        x = s.detach().to(device=p_device or s.device, dtype=p_dtype or s.dtype)
        with torch.enable_grad():
            return ev(x)[K.FIELD].to(device=s.device, dtype=s.dtype)

    def source(spins: Tensor) -> Tensor:
        if spins.ndim == 3:
            return torch.stack([call(s) for s in spins])
        return call(spins)

    source.__name__ = f"tiled_field_source({type(model).__name__}, {ev.num_tiles} tiles)"
    source.evaluator = ev
    return source


def tile_options(cfg, model) -> Dict[str, int]:
    """``{"max_sites": n}`` of a config's ``memory_budget`` / ``max_tile_sites`` (``{}``: untiled).

    Args:
        cfg: a mapping with the optional keys ``memory_budget`` (bytes or a
            size like ``"8GB"``: :func:`sites_for_memory`) and ``max_tile_sites``.
        model: the model (for the memory estimate per site).

    Raises:
        ValueError: if both are given, or either is not positive.
    """
    budget, sites = cfg.get("memory_budget"), cfg.get("max_tile_sites")
    if budget is not None and sites is not None:
        raise ValueError("give memory_budget or max_tile_sites, not both")
    if sites is not None:
        if isinstance(sites, bool) or not isinstance(sites, (int, np.integer)) or sites < 1:
            raise ValueError(f"max_tile_sites must be a positive integer, got {sites!r}")
        return {"max_sites": int(sites)}
    if budget is not None:
        return {"max_sites": sites_for_memory(budget, model)}
    return {}


def evaluate_tiled(model, graph, spins: Tensor, max_sites: Optional[int] = None,
                   tiles: Optional[Sequence[int]] = None) -> Dict[str, np.ndarray]:
    """Energies and fields of configurations ``(n, N, 3)``, each evaluated tile by tile.

    Returns:
        ``{"energy": (n,), "field": (n, N, 3)}`` numpy arrays (float64 energies;
        fields in the model's dtype), as :func:`ecnn_pyg.training.evaluate_arrays`.
    """
    params = list(model.parameters())
    dtype = params[0].dtype if params else spins.dtype
    device = params[0].device if params else spins.device
    ev = TiledEvaluator(model, graph, max_sites=max_sites, tiles=tiles)
    energy, field = [], []
    for s in spins:
        with torch.enable_grad():
            out = ev(s.to(device=device, dtype=dtype))
        energy.append(float(out[K.ENERGY].double().sum()))
        field.append(out[K.FIELD].cpu().numpy())
    return {K.ENERGY: np.asarray(energy), K.FIELD: np.stack(field) if field else
            np.zeros((0, graph.num_nodes, 3))}
