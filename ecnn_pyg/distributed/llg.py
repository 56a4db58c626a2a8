r"""LLG across ranks: the lattice split into slabs (domain decomposition), or the runs of a sweep.

Under ``torchrun --nproc-per-node N -m ecnn_pyg.cli simulate --config F.yaml``
(any launcher that sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``) :func:`ecnn_pyg.simulate.simulate` hands its runs to a
:class:`ParallelPlan` of this module. Rank 0 is the only writer: it owns the
output file, its lock and the resume state; the other ranks never open it and
leave no file behind. The file is the one the single-process run writes.

**Domain decomposition** (``parallel: domain``; the default for a model source
with a single run): each rank owns a part of the lattice: a slab of
consecutive cells along the first axis of a periodic supercell
(:class:`SlabDecomposition`; a rank > 0 builds only its slab's graph, see
:func:`follow_slab`), or a compact part of any other graph
(:class:`GraphPartition`, recursive coordinate bisection). At every field
evaluation it exchanges the halo sites with the neighbouring ranks
(point-to-point, with a timeout), evaluates the model on its part plus that
halo (the halo :func:`~ecnn_pyg.distributed.tiling.halo_width` makes the
part's field exact), and advances only its own spins. The thermal noise is
drawn for the whole lattice from the run's generator on every rank, as the
single process draws it, and each rank keeps its own sites: the trajectory
does not depend on the split, at T = 0 and at T > 0. Rank 0 hands the state
to the ranks at the start of every ``save_every`` chunk and gathers the
spins at its end to write the snapshot. The observables are reduced over the
ranks: each rank sums its own spins, the local energies of its own sites and
the solid angles of the triangles it owns (a triangle belongs to the rank
owning its first site), and ``all_reduce`` adds them (:meth:`ParallelPlan.observe`).

**Runs across ranks** (``parallel: runs``; the default for sweeps, and the
only mode for the exact-diagonalization source, which is not local): the runs
of a field/temperature sweep go to the ranks round-robin, in rounds of one
run per rank. Rank 0 sends each rank the state its run has in the file (to
resume), every rank integrates its run (the workers into an HDF5 image in
memory), and rank 0 copies the finished runs into the output file at the end
of each round. An interrupted round is redone from the file's last state.
"""
from __future__ import annotations

import contextlib
import datetime
import io
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as tdist

from . import comm
from .tiling import (BravaisInfo, TilingError, bravais_info, cell_reach, halo_width,
                     patch_graph, receptive_hops, split_axis)

__all__ = ["PARALLEL_MODES", "SlabDecomposition", "GraphPartition", "ParallelPlan", "plan_for",
           "follow_slab", "lattice_info", "lattice_reach", "runs_of", "halo_bytes_per_exchange"]

#: ``parallel`` options of the simulate config.
PARALLEL_MODES = ("auto", "domain", "runs")


# ----------------------------------------------------------------- what a rank owns
def lattice_info(cfg) -> Optional[BravaisInfo]:
    """The periodic supercell of a simulate config, without building its graph (``None``: none).

    ``None`` for a config whose lattice is not periodic in every direction
    (``periodic`` false) or cannot be loaded: its graph is then partitioned as
    a general graph (:class:`GraphPartition`).
    """
    from ..graph import _as_size
    from ..lattice import LatticeError, load_lattice
    periodic = cfg.get("periodic")
    if periodic is not None and not (periodic is True or (isinstance(periodic, list)
                                                            and all(p is True for p in periodic))):
        return None
    try:
        lat = load_lattice(cfg["lattice"])
        size = _as_size(cfg["size"], lat.dim)
    except (LatticeError, OSError, ValueError, TypeError):
        return None
    return BravaisInfo(cfg["lattice"], size, lat.n_basis, dict(cfg.get("hoppings") or {}))


def lattice_reach(model, info: BravaisInfo) -> Tuple[int, ...]:
    """:func:`~ecnn_pyg.distributed.tiling.cell_reach` from the lattice's bonds (no graph)."""
    from ..lattice import load_lattice
    lat = load_lattice(info.lattice)
    slots = getattr(model, "slot_offsets", None)
    if getattr(model, "neighborhood", "bonds") == "paper" and slots is not None:
        off = np.abs(np.asarray(slots, dtype=np.int64)).reshape(-1, lat.dim)
    else:
        values = lat.hopping_values(info.hoppings)
        off = np.abs(np.asarray([b.offset for b in lat.bonds if values[b.shell] != 0.0],
                                dtype=np.int64)).reshape(-1, lat.dim)
    return tuple(int(x) for x in (off.max(0) if off.size else np.zeros(lat.dim, np.int64)))


def _wait_all(works, device, timeout: Optional[float] = None) -> None:
    wait = datetime.timedelta(seconds=float(timeout or comm._timeout))
    for w in works:
        if device.type == "cpu":
            w.wait(wait)
        else:
            w.wait()


class _Domain:
    """What the two decompositions share: the evaluation of the own part and its observables.

    Subclasses set ``rank``, ``world``, ``num_nodes``, ``graph`` (the evaluation
    graph: own sites plus halo), ``own`` (the own sites in the lattice: a slice
    or an index tensor), ``own_local`` (the own sites in ``graph``) and
    ``triangles`` (the triangles this rank owns, in ``graph``'s indices, or
    ``None``), and define :meth:`exchange` and :meth:`owned`.
    """

    _evaluator = None

    def owned(self, r: int):
        """The sites of rank ``r`` in the lattice (a slice or an index tensor)."""
        raise NotImplementedError

    def num_owned(self, r: int) -> int:
        """How many sites rank ``r`` owns."""
        sel = self.owned(r)
        return sel.stop - sel.start if isinstance(sel, slice) else int(sel.numel())

    @property
    def num_own(self) -> int:
        """Sites this rank owns."""
        return self.num_owned(self.rank)

    def _evaluate(self, model, patch: torch.Tensor, field: bool, max_sites=None):
        from .. import keys as K
        from .tiling import TiledEvaluator
        if self._evaluator is None or self._evaluator[0] is not model:
            params = list(model.parameters())
            dev = params[0].device if params else torch.device("cpu")
            tiled = TiledEvaluator(model, self.graph, max_sites=max_sites) \
                if max_sites is not None else None
            self._evaluator = (model, tiled, self.graph.to(dev),
                               params[0].dtype if params else patch.dtype, dev)
        _, tiled, graph, p_dtype, p_device = self._evaluator
        x = patch.detach().to(device=p_device, dtype=p_dtype)
        if field:
            with torch.enable_grad():
                out = model(graph, x) if tiled is None else tiled(x)
        else:
            with torch.no_grad():
                out = model(graph, x, compute_field=False) if tiled is None else \
                    tiled(x, compute_field=False)
        return {k: v.detach() for k, v in out.items() if k in (K.FIELD, K.LOCAL_ENERGY)}

    def field_source(self, model, max_sites: Optional[int] = None
                     ) -> Callable[[torch.Tensor], torch.Tensor]:
        """A field source on the own spins ``(num_own, 3)``: halo exchange, then the model.

        Args:
            model: the model.
            max_sites: evaluate the part plus halo tile by tile, at most this
                many sites at once (:class:`~ecnn_pyg.distributed.tiling.TiledEvaluator`;
                a part larger than one rank's memory).
        """
        from .. import keys as K
        own_local = self.own_local

        def source(own: torch.Tensor) -> torch.Tensor:
            out = self._evaluate(model, self.exchange(own), True, max_sites)
            return out[K.FIELD].index_select(0, own_local.to(out[K.FIELD].device)).to(
                device=own.device, dtype=own.dtype)

        source.__name__ = f"{type(self).__name__}.field_source(rank {self.rank} of {self.world})"
        self._max_sites = max_sites
        return source

    def partial_observables(self, own: torch.Tensor, model, energy: bool = True) -> torch.Tensor:
        """This rank's share of the observables, float64 ``(5,)``: sum of S, energy, solid angle.

        The sum of the own spins, the local energies of the own sites (the
        model on the own sites plus halo) and the solid angles of the
        triangles this rank owns (:attr:`triangles`, those whose first site is
        its own); summed over the ranks they are the whole lattice's.
        """
        from .. import keys as K
        from ..observables import solid_angles
        out = torch.zeros(5, dtype=torch.float64)
        out[:3] = own.detach().double().sum(0).cpu()
        if not energy and self.triangles is None:
            return out
        patch = self.exchange(own)
        if energy:
            eps = self._evaluate(model, patch, False, getattr(self, "_max_sites", None))
            loc = eps[K.LOCAL_ENERGY].index_select(0, self.own_local.to(
                eps[K.LOCAL_ENERGY].device))
            out[3] = float(loc.double().sum())
        if self.triangles is not None and self.triangles.numel():
            out[4] = float(solid_angles(patch.detach(), self.triangles.to(patch.device))
                           .double().sum())
        return out


class SlabDecomposition(_Domain):
    r"""The slabs of a periodic supercell over ``world`` ranks and the halo exchange between them.

    Rank ``r`` owns the cells ``a_r <= i_1 < b_r`` along the first axis (all of
    the other axes), i.e. the consecutive sites ``a_r M .. b_r M - 1`` with
    ``M`` sites per cell row. Its evaluation graph is the periodic supercell of
    ``b_r - a_r + 2h`` rows, ``h`` the halo of :func:`halo_width`: a rank
    builds that graph only, never the whole lattice's.

    Args:
        model: a strictly local model (:class:`~ecnn_pyg.nn.ECNN`).
        graph: a periodic supercell of :func:`~ecnn_pyg.lattice_graph`, or
            ``None`` with ``info``.
        rank, world: this rank and the number of ranks.
        info: the supercell without its graph (:func:`lattice_info`).

    Raises:
        TilingError: if the graph is not a periodic supercell, there are more
            ranks than cell rows, or a slab is thinner than the halo (the
            message names the minimum slab and the largest rank count).
    """

    def __init__(self, model, graph, rank: int, world: int, info: Optional[BravaisInfo] = None):
        if info is None:
            info = bravais_info(graph) if graph is not None else None
            if info is None:
                raise TilingError("domain decomposition into slabs needs a periodic supercell of "
                                  "lattice_graph; other graphs are split by GraphPartition")
            reach = cell_reach(model, graph)[0]
        else:
            reach = lattice_reach(model, info)[0]
        L0 = info.size[0]
        self.hops, self.reach = receptive_hops(model), reach
        self.halo = 2 * self.hops * reach
        if world > L0:
            raise TilingError(f"{world} ranks for a lattice of {L0} cell rows along its first "
                              f"axis: more ranks than parts; use at most "
                              f"{max(1, L0 // max(1, self.halo))} ranks")
        self.ranges = split_axis(L0, world)
        thinnest = min(b - a for a, b in self.ranges)
        if thinnest < self.halo:
            raise TilingError(
                f"a slab of {thinnest} cell rows is thinner than the halo of {self.halo} rows "
                f"({self.hops} convolutions x {self.reach} cells per hop x 2 for the field): "
                f"each slab needs at least {self.halo} rows, so a lattice of {L0} rows takes at "
                f"most {max(1, L0 // self.halo)} ranks (or use a lattice of at least "
                f"{world * self.halo} rows for {world} ranks)")
        self.info, self.rank, self.world = info, rank, world
        self.row_sites = int(np.prod(info.size[1:])) * info.n_basis
        self.num_nodes = L0 * self.row_sites
        a, b = self.ranges[rank]
        self.lo, self.hi = a * self.row_sites, b * self.row_sites
        self.own = slice(self.lo, self.hi)
        self.graph = patch_graph(info, (b - a + 2 * self.halo,) + tuple(info.size[1:]))
        n = self.halo * self.row_sites
        self.own_local = torch.arange(n, n + self.hi - self.lo)
        self.prev, self.next = (rank - 1) % world, (rank + 1) % world
        self.exchanges = 0
        self.triangles = None

    def owned(self, r: int) -> slice:
        """The sites of rank ``r``: a slice of consecutive indices."""
        a, b = self.ranges[r]
        return slice(a * self.row_sites, b * self.row_sites)

    def owner_of(self, sites: np.ndarray) -> np.ndarray:
        """The rank owning each site."""
        edges = np.asarray([a for a, _ in self.ranges] + [self.info.size[0]]) * self.row_sites
        return np.searchsorted(edges, np.asarray(sites), side="right") - 1

    def set_triangles(self, tri: Optional[np.ndarray]) -> None:
        """Set :attr:`triangles` from this rank's triangles ``(T, 3)`` in lattice indices.

        Raises:
            TilingError: if a triangle reaches further than the halo.
        """
        if tri is None:
            self.triangles = None
            return
        tri = np.asarray(tri, dtype=np.int64).reshape(-1, 3)
        M, L0, a = self.row_sites, self.info.size[0], self.ranges[self.rank][0]
        rows, col = tri // M, tri % M
        d = (rows - rows[:, :1] + L0 // 2) % L0 - L0 // 2           # row offset from site 1
        if d.size and int(np.abs(d).max()) > self.halo:
            raise TilingError(f"a triangle spans {int(np.abs(d).max())} cell rows, more than the "
                              f"halo of {self.halo} rows")
        self.triangles = torch.from_numpy((rows[:, :1] - a + self.halo + d) * M + col)

    def halo_sites(self) -> int:
        """Sites received per exchange (both sides)."""
        return 2 * self.halo * self.row_sites

    def exchange(self, own: torch.Tensor, timeout: Optional[float] = None) -> torch.Tensor:
        """The slab plus its halo, ``(num_own + 2 h M, 3)``, from the own spins ``(num_own, 3)``.

        Sends the first ``h`` rows to the previous rank and the last ``h`` rows
        to the next one, receives theirs (point-to-point; every wait has the
        process group's timeout).
        """
        n = self.halo * self.row_sites
        if n == 0:
            return own
        own = own.contiguous()
        from_prev = torch.empty((n,) + own.shape[1:], dtype=own.dtype, device=own.device)
        from_next = torch.empty_like(from_prev)
        ops = [tdist.P2POp(tdist.isend, own[-n:].contiguous(), self.next, tag=1),
               tdist.P2POp(tdist.isend, own[:n].contiguous(), self.prev, tag=2),
               tdist.P2POp(tdist.irecv, from_prev, self.prev, tag=1),
               tdist.P2POp(tdist.irecv, from_next, self.next, tag=2)]
        with comm.guard("exchanging halo spins with the neighbouring ranks"):
            _wait_all(tdist.batch_isend_irecv(ops), own.device, timeout)
        self.exchanges += 1
        return torch.cat([from_prev, own, from_next], 0)


class GraphPartition(_Domain):
    r"""A general graph split over ``world`` ranks, with halo exchange between the parts.

    For graphs that are not periodic Bravais supercells (open boundaries,
    :func:`~ecnn_pyg.from_networkx` graphs). The parts are those of
    :func:`~ecnn_pyg.distributed.partition.partition_graph` (recursive
    coordinate bisection: balanced, compact, the same on every rank). Rank
    ``r``'s halo is every site within ``2 n`` bond hops of its part (``n``
    convolutions: the field's reach), plus the sites of the triangles it owns
    (those whose first site is its own) for the topological charge; its
    evaluation graph is the subgraph induced by its part and halo. At every
    exchange each rank sends every other rank the own sites in that rank's
    halo (point-to-point with the ranks it shares a boundary with; every wait
    with the timeout).

    Every rank holds the whole graph (it is given in memory), but evaluates
    only its part plus halo.

    Args:
        model: a strictly local model with bond neighbourhoods (``neighborhood:
            bonds``; the published fixed neighbourhood needs a periodic supercell).
        graph: the graph.
        rank, world: this rank and the number of ranks.
        triangles: ``(T, 3)`` triangles of the whole graph (for the charge) or ``None``.

    Raises:
        TilingError: for the published neighbourhood, or more ranks than sites.
    """

    def __init__(self, model, graph, rank: int, world: int, triangles=None):
        from .partition import partition_graph
        from .tiling import _k_hop, induced_subgraph
        if getattr(model, "neighborhood", "bonds") == "paper":
            raise TilingError("a model with the published fixed neighbourhood needs a periodic "
                              "supercell of lattice_graph to be split over ranks")
        n = int(graph.num_nodes)
        if world > n:
            raise TilingError(f"{world} ranks for a graph of {n} sites: more ranks than parts")
        self.rank, self.world, self.num_nodes = rank, world, n
        self.hops = receptive_hops(model)
        self.halo = 2 * self.hops
        self.parts = partition_graph(graph, world)
        owner = np.empty(n, np.int64)
        for r, p in enumerate(self.parts):
            owner[p] = r
        self._owner = owner
        src, dst = graph.edge_index.cpu().numpy()
        order = np.argsort(dst, kind="stable")
        ptr, nbr = np.r_[0, np.cumsum(np.bincount(dst, minlength=n))], src[order]
        tri = None if triangles is None else np.asarray(
            triangles.cpu().numpy() if torch.is_tensor(triangles) else triangles,
            dtype=np.int64).reshape(-1, 3)
        tri_owner = None if tri is None else owner[tri[:, 0]]
        need = []                                   # per rank: the other ranks' sites it needs
        for q in range(world):
            ball = _k_hop(ptr, nbr, self.parts[q], n, self.halo)
            if tri is not None:
                ball = np.union1d(ball, tri[tri_owner == q].ravel())
            need.append(ball[owner[ball] != q])
        mine = self.parts[rank]
        self.patch_index = np.union1d(mine, need[rank])
        self.own = torch.from_numpy(mine)
        self.own_local = torch.from_numpy(np.searchsorted(self.patch_index, mine))
        self.recv = {}                      # rank -> positions in the patch of what it sends us
        self.send = {}                      # rank -> positions among our own sites it needs
        for q in range(world):
            if q == rank:
                continue
            r_sites = need[rank][owner[need[rank]] == q]
            s_sites = need[q][owner[need[q]] == rank]
            if r_sites.size:
                self.recv[q] = torch.from_numpy(np.searchsorted(self.patch_index, r_sites))
            if s_sites.size:
                self.send[q] = torch.from_numpy(np.searchsorted(mine, s_sites))
        self.graph = induced_subgraph(graph, torch.from_numpy(self.patch_index))
        self.triangles = None if tri is None else torch.from_numpy(
            np.searchsorted(self.patch_index, tri[tri_owner == rank]).reshape(-1, 3))
        self.exchanges = 0

    def owned(self, r: int) -> torch.Tensor:
        """The sites of rank ``r``: a sorted index tensor."""
        return torch.from_numpy(self.parts[r])

    def owner_of(self, sites: np.ndarray) -> np.ndarray:
        """The rank owning each site."""
        return self._owner[np.asarray(sites)]

    def set_triangles(self, tri) -> None:
        """Triangles are set at construction (every rank holds the whole graph)."""

    def halo_sites(self) -> int:
        """Sites received per exchange."""
        return int(self.patch_index.size - self.parts[self.rank].size)

    def exchange(self, own: torch.Tensor, timeout: Optional[float] = None) -> torch.Tensor:
        """The part plus its halo ``(len(patch_index), 3)`` from the own spins ``(num_own, 3)``."""
        own = own.contiguous()
        patch = own.new_empty((self.patch_index.size,) + tuple(own.shape[1:]))
        patch[self.own_local.to(own.device)] = own
        bufs = {q: own.new_empty((idx.numel(),) + tuple(own.shape[1:]))
                for q, idx in self.recv.items()}
        ops = [tdist.P2POp(tdist.isend, own[idx.to(own.device)].contiguous(), q, tag=3)
               for q, idx in self.send.items()]
        ops += [tdist.P2POp(tdist.irecv, bufs[q], q, tag=3) for q in self.recv]
        if ops:
            with comm.guard("exchanging halo spins with the neighbouring parts"):
                _wait_all(tdist.batch_isend_irecv(ops), own.device, timeout)
        for q, idx in self.recv.items():
            patch[idx.to(own.device)] = bufs[q]
        self.exchanges += 1
        return patch


def halo_bytes_per_exchange(model, graph, world: int, itemsize: int = 8) -> int:
    """Bytes one rank sends per field evaluation (its two halo strips) for ``world`` slabs."""
    info = bravais_info(graph)
    if info is None or world < 2:
        return 0
    h = halo_width(model, graph)[0]
    return 2 * h * int(np.prod(info.size[1:])) * info.n_basis * 3 * itemsize


# ----------------------------------------------------------------- noise independent of the split
def _slice_noise(integ, full_shape, lo, hi=None) -> None:
    """Make ``integ`` draw the noise of the whole lattice and keep the own sites.

    ``lo``: a slice or an index tensor of the own sites (or, with ``hi``, the
    range ``lo:hi``). The generator then advances exactly as in one process,
    so the noise of every site is the one the single-process run gives it.
    """
    base = type(integ).noise
    sel = slice(lo, hi) if hi is not None else lo

    def noise(spins):
        full = base(integ, spins.new_empty(full_shape))
        if full is None:
            return None
        return full[sel] if isinstance(sel, slice) else full.index_select(0, sel.to(full.device))

    integ.noise = noise


# ----------------------------------------------------------------- the plan
_OBSERVABLES = ("magnetization", "charge", "energy", "energy_electronic", "energy_zeeman")


class ParallelPlan:
    """How the runs of a simulate config use the ranks (see the module docstring).

    Built by :func:`plan_for` (or :func:`follow_slab`) on every rank; rank 0
    drives (:meth:`lead`, :meth:`advance`, :meth:`observe`,
    :meth:`field_source`, :meth:`run_all`), the others follow (:meth:`follow`).

    Args:
        mode: ``"domain"`` or ``"runs"``.
        cfg: the simulate config.
        graph: the lattice graph (``None`` on ranks > 0 of a periodic supercell
            split into slabs: they build their slab's graph only).
        model: the model (domain decomposition).
        triangles: the whole lattice's triangles (rank 0; every rank for a
            general graph), or ``None``.
        info: the periodic supercell (:func:`lattice_info`): slabs; ``None``:
            the graph is partitioned (:class:`GraphPartition`).
    """

    def __init__(self, mode: str, cfg, graph, model=None, triangles=None,
                 info: Optional[BravaisInfo] = None):
        self.mode, self.cfg, self.graph = mode, cfg, graph
        self.rank, self.world = comm.rank(), comm.world_size()
        self.writer = self.rank == 0
        self.model = model
        self.slabs = None
        if mode == "domain":
            self.slabs = SlabDecomposition(model, None, self.rank, self.world, info=info) \
                if info is not None else \
                GraphPartition(model, graph, self.rank, self.world, triangles)
        self.num_nodes = self.slabs.num_nodes if self.slabs is not None else graph.num_nodes
        self._source = None
        self._last = None                       # (spins of the last advance, their observables)
        self.wait = comm.waiting_group()        # waits as long as another rank's work
        if isinstance(self.slabs, SlabDecomposition):
            self.slabs.set_triangles(self._share_triangles(triangles))

    def _share_triangles(self, triangles):
        """Rank 0 sends every rank the triangles it owns (first site its own); ``None``: no 2D."""
        mine = None
        if self.writer:
            if triangles is None:
                per_rank = [None] * self.world
            else:
                tri = np.asarray(triangles.cpu().numpy() if torch.is_tensor(triangles)
                                 else triangles, dtype=np.int64).reshape(-1, 3)
                owner = self.slabs.owner_of(tri[:, 0])
                per_rank = [tri[owner == r] for r in range(self.world)]
            mine = comm.scatter_object(per_rank, what="sending the ranks their triangles")
        else:
            mine = comm.scatter_object(None, what="receiving the triangles of this rank")
        return mine

    # -- rank 0
    @contextlib.contextmanager
    def lead(self):
        """Rank 0's context: tells the other ranks to stop at the end, or why it failed."""
        try:
            yield self
        except BaseException as err:
            with contextlib.suppress(Exception):
                comm.broadcast_object({"op": "abort", "error": f"{type(err).__name__}: {err}"},
                                      what="telling the other ranks rank 0 failed",
                                      group=self.wait)
            raise
        comm.broadcast_object({"op": "stop"}, what="telling the other ranks the work is done",
                              group=self.wait)

    def advance(self, integ, spins: torch.Tensor, system, k: int) -> torch.Tensor:
        """Rank 0: ``k`` steps of the run with the lattice split over the ranks.

        Same arguments and result as ``integ.run(spins, system, k)``. The
        observables of the result are reduced over the ranks on the way
        (:meth:`observe` returns them).
        """
        zeeman = system.zeeman
        cmd = {"op": "step", "k": int(k), "zeeman": float(zeeman), "dt": integ.dt,
               "alpha": float(integ.alpha), "temperature": float(integ.temperature),
               "integrator": integ.name, "energy": system.energy_source is not None,
               "rng": None if integ.generator is None else integ.generator.get_state()}
        comm.broadcast_object(cmd, what="sending the next chunk of steps", group=self.wait)
        full = spins.contiguous()
        comm.broadcast_tensor(full, what="sending the spins to the ranks")
        own = self._steps(full, cmd, integ.generator)
        sums = self._reduce(own, cmd)
        out = self._gather(own, full)
        self._last = (out, self._observables(sums, cmd))
        return out

    def observe(self, spins: torch.Tensor, graph=None, triangles=None, system=None) -> dict:
        """Rank 0: the observables of a snapshot, each rank summing over its own part.

        The signature of ``ecnn_pyg.simulate._observables``: magnetization,
        topological charge and energies (electronic: the local energies of
        every rank's own sites; Zeeman) from the ranks' partial sums, reduced
        with ``all_reduce``. For the spins :meth:`advance` returned, the sums
        made at the end of the steps; for others (the initial state) the
        ranks are asked for them.
        """
        if self._last is not None and self._last[0] is spins:
            return self._last[1]
        cmd = {"op": "observe", "zeeman": float(system.zeeman) if system is not None else 0.0,
               "energy": system is not None and system.energy_source is not None,
               "system": system is not None}
        comm.broadcast_object(cmd, what="asking the ranks for the observables", group=self.wait)
        full = spins.detach().contiguous()
        comm.broadcast_tensor(full, what="sending the spins to the ranks")
        own = self._own_of(full)
        return self._observables(self._reduce(own, cmd), cmd)

    def field_source(self, source: Callable) -> Callable:
        """Rank 0: a field source on the whole lattice's spins, evaluated part by part on the ranks.

        ``source`` itself unless the lattice is split (``parallel: runs``).
        """
        if self.mode != "domain":
            return source

        def split_source(spins: torch.Tensor) -> torch.Tensor:
            comm.broadcast_object({"op": "field"}, what="asking the ranks for the field",
                                  group=self.wait)
            full = spins.detach().contiguous()
            comm.broadcast_tensor(full, what="sending the spins to the ranks")
            return self._gather(self._field(full), full)

        split_source.__name__ = "split_field_source"
        return split_source

    def run_all(self, f, runs: Sequence, run_one: Callable) -> None:
        """Rank 0, ``parallel: runs``: every run, spread over the ranks, into the open file ``f``.

        Args:
            f: the output file (open for writing).
            runs: the runs' ``(zeeman, temperature)``.
            run_one: ``run_one(f, r)`` integrates run ``r`` into file ``f``.
        """
        todo = [r for r in range(len(runs)) if not _finished(f, r, self.cfg["n_steps"])]
        for start in range(0, len(todo), self.world):
            batch = todo[start:start + self.world]
            seeds = {}
            for j, r in enumerate(batch[1:], 1):
                seeds[j] = (r, _group_image(f, r))
            comm.broadcast_object({"op": "runs", "assign": seeds},
                                  what="assigning the runs to the ranks", group=self.wait)
            run_one(f, batch[0])
            images = comm.gather_object(None, what="collecting the finished runs",
                                        group=self.wait)
            for j, r in enumerate(batch[1:], 1):
                _merge_run(f, r, images[j])

    # -- the other ranks
    def follow(self, run_one: Optional[Callable] = None) -> None:
        """Ranks > 0: do what rank 0 asks until it says stop (or failed).

        Args:
            run_one: ``run_one(f, r)`` integrates run ``r`` into the file ``f``
                (``parallel: runs``; an HDF5 file in memory here).

        Raises:
            DistributedError: if rank 0 failed (its error is quoted) or stopped answering.
        """
        while True:
            cmd = comm.broadcast_object(None, what="waiting for rank 0", group=self.wait)
            op = cmd["op"]
            if op == "stop":
                return
            if op == "abort":
                raise comm.DistributedError(f"rank {self.rank}: rank 0 stopped with "
                                            f"{cmd['error']}")
            if op in ("step", "observe", "field"):
                full = torch.empty((self.num_nodes, 3), dtype=getattr(
                    torch, self.cfg["dtype"]), device=torch.device(self.cfg["device"]))
                comm.broadcast_tensor(full, what="receiving the spins from rank 0")
                if op == "field":
                    self._gather(self._field(full), None)
                elif op == "observe":
                    self._reduce(self._own_of(full), cmd)
                else:
                    gen = None
                    if cmd["rng"] is not None:
                        gen = torch.Generator(device=full.device)
                        gen.set_state(cmd["rng"])
                    own = self._steps(full, cmd, gen)
                    self._reduce(own, cmd)
                    self._gather(own, None)
            elif op == "runs":
                image = None
                mine = cmd["assign"].get(self.rank)
                if mine is not None:
                    r, seed = mine
                    image = _run_in_memory(r, seed, run_one)
                comm.gather_object(image, what="sending the finished run to rank 0",
                                   group=self.wait)
            else:       # pragma: no cover - a newer rank 0
                raise comm.DistributedError(f"rank {self.rank}: unknown command {op!r}")

    # -- shared
    def _own_of(self, full: torch.Tensor) -> torch.Tensor:
        sel = self.slabs.own
        return full[sel].clone() if isinstance(sel, slice) else \
            full.index_select(0, sel.to(full.device))

    def _field_source(self):
        if self._source is None:
            from .tiling import tile_options
            self._source = self.slabs.field_source(self.model,
                                                   **tile_options(self.cfg, self.model))
        return self._source

    def _field(self, full: torch.Tensor) -> torch.Tensor:
        return self._field_source()(self._own_of(full))

    def _steps(self, full: torch.Tensor, cmd: Dict, gen) -> torch.Tensor:
        from ..dynamics import SpinSystem, make_integrator
        own = self._own_of(full)
        local = SpinSystem(self._field_source(), zeeman=cmd["zeeman"])
        integ = make_integrator(cmd["integrator"], cmd["dt"], alpha=cmd["alpha"],
                                temperature=cmd["temperature"], generator=gen)
        _slice_noise(integ, tuple(full.shape), self.slabs.own)
        return integ.run(own, local, cmd["k"])

    def _reduce(self, own: torch.Tensor, cmd: Dict) -> torch.Tensor:
        """Every rank's partial sums (:meth:`_Domain.partial_observables`), summed on every rank."""
        self._field_source()                    # the evaluator's memory budget
        part = self.slabs.partial_observables(own, self.model, energy=cmd.get("energy", True))
        return comm.all_reduce_sum(part, what="summing the observables over the ranks")

    def _observables(self, sums: torch.Tensor, cmd: Dict) -> dict:
        """The snapshot's observables (as ``ecnn_pyg.simulate._observables``) from the sums."""
        n = self.num_nodes
        nan = float("nan")
        m = (sums[:3] / n).numpy()
        q = float(sums[4]) / (4 * np.pi) if self.slabs.triangles is not None else nan
        e_el = e_z = nan
        if cmd.get("system", True):
            e_z = -float(cmd["zeeman"]) * float(sums[2])
            if cmd.get("energy", True):
                e_el = float(sums[3])
        return {"magnetization": m, "charge": q, "energy": e_el + e_z,
                "energy_electronic": e_el, "energy_zeeman": e_z}

    def _gather(self, own: torch.Tensor, full: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        s = self.slabs
        rows = max(s.num_owned(r) for r in range(self.world))
        buf = torch.zeros((rows,) + tuple(own.shape[1:]), dtype=own.dtype, device=own.device)
        buf[:own.shape[0]] = own
        parts = [torch.empty_like(buf) for _ in range(self.world)] if self.writer else None
        with comm.guard("gathering the spins on rank 0"):
            tdist.gather(buf, parts, dst=0)
        if not self.writer:
            return None
        out = torch.empty((self.num_nodes,) + tuple(own.shape[1:]), dtype=own.dtype,
                          device=own.device)
        for r in range(self.world):
            sel = s.owned(r)
            out[sel] = parts[r][:s.num_owned(r)]
        return out.to(full.dtype) if full is not None else out


def _finished(f, r: int, n_steps: int) -> bool:
    name = f"run_{r:03d}"
    return name in f and int(f[name].attrs.get("step", 0)) >= n_steps


def _group_image(f, r: int) -> Optional[bytes]:
    """The run's group of the output file as an HDF5 image (``None`` if it has none)."""
    import h5py
    name = f"run_{r:03d}"
    if name not in f:
        return None
    buf = io.BytesIO()
    with h5py.File(buf, "w") as mem:
        f.copy(f[name], mem, name=name)
    return buf.getvalue()


def _run_in_memory(r: int, seed: Optional[bytes], run_one: Callable) -> bytes:
    """Integrate run ``r`` into an HDF5 file in memory (seeded with its saved group) -> image."""
    import h5py
    buf = io.BytesIO()
    with h5py.File(buf, "w") as mem:
        if seed is not None:
            with h5py.File(io.BytesIO(seed), "r") as src:
                src.copy(src[f"run_{r:03d}"], mem, name=f"run_{r:03d}")
        run_one(mem, r)
    return buf.getvalue()


def _merge_run(f, r: int, image: bytes) -> None:
    """Copy run ``r`` of a worker's image into the output (a new group, then renamed)."""
    import h5py
    name = f"run_{r:03d}"
    tmp = f"partial_{name}"
    if tmp in f:
        del f[tmp]
    with h5py.File(io.BytesIO(image), "r") as src:
        f.copy(src[name], f, name=tmp)
    f.flush()
    if name in f:
        del f[name]
    f.move(tmp, name)
    f.flush()


def _mode(cfg, n_runs: int) -> str:
    """The resolved ``parallel`` mode of a config (``auto`` decided), with its refusals."""
    mode = cfg.get("parallel", "auto") or "auto"
    if mode not in PARALLEL_MODES:
        raise ValueError(f"parallel must be one of {list(PARALLEL_MODES)}, got {mode!r}")
    if mode == "auto":
        mode = "domain" if cfg["source"] == "model" and n_runs == 1 else "runs"
    if mode == "domain" and cfg["source"] != "model":
        raise ValueError("parallel: domain needs a model source: exact diagonalization is "
                         "not local (every field depends on every spin), so its lattice "
                         "cannot be split; use parallel: runs to spread a sweep's runs")
    return mode


def plan_for(cfg, graph, n_runs: int, model=None, triangles=None) -> Optional[ParallelPlan]:
    """The :class:`ParallelPlan` of a simulate config, ``None`` in a single process.

    ``parallel: auto`` splits the lattice (domain) for a single run of a model
    source and spreads the runs otherwise; the exact-diagonalization source is
    not local, so it can only spread runs. A periodic supercell is split into
    slabs (:class:`SlabDecomposition`), any other graph into the parts of
    :class:`GraphPartition`.

    Args:
        cfg: the simulate config.
        graph: the lattice graph.
        n_runs: the runs of the config.
        model: the model of a model source.
        triangles: the lattice's triangles (``None``: no topological charge).

    Raises:
        ValueError: if ``parallel`` is unknown, ``domain`` is asked for the ED
            source, or the lattice cannot be split over the ranks (see
            :class:`SlabDecomposition`).
    """
    mode = cfg.get("parallel", "auto") or "auto"
    if mode not in PARALLEL_MODES:
        raise ValueError(f"parallel must be one of {list(PARALLEL_MODES)}, got {mode!r}")
    if not comm.is_active():
        return None
    mode = _mode(cfg, n_runs)
    if mode == "domain" and model is None:
        raise ValueError("parallel: domain needs the model of the source")
    info = lattice_info(cfg) if mode == "domain" else None
    return ParallelPlan(mode, cfg, graph, model, triangles, info=info)


def runs_of(cfg) -> int:
    """The number of runs of a simulate config (fields x temperatures x replicas)."""
    def count(v):
        return len(v) if isinstance(v, (list, tuple)) else 1
    return count(cfg["zeeman"]) * count(cfg["temperature"]) * int(cfg.get("replicas") or 1)


def follow_slab(cfg, make_source: Callable) -> bool:
    """Ranks > 0 of a periodic supercell split into slabs: follow rank 0 with the slab's graph only.

    Called by :func:`ecnn_pyg.simulate.simulate` before the lattice's graph
    is built: a rank > 0 of a domain-decomposed run of a periodic supercell
    builds only its slab plus halo (and loads the model), then follows rank 0
    (:meth:`ParallelPlan.follow`); its memory falls with the number of ranks.

    Args:
        cfg: the simulate config (lattice resolved).
        make_source: ``ecnn_pyg.simulate.field_source`` (loads the model and
            refuses it as rank 0 does, e.g. for another Hamiltonian).

    Returns:
        ``True`` if this rank followed the run (nothing else to do); ``False``
        otherwise (rank 0, one process, ``parallel: runs``, a general graph).
    """
    if not comm.is_active() or comm.rank() == 0 or _mode(cfg, runs_of(cfg)) != "domain":
        return False
    info = lattice_info(cfg)
    if info is None:
        return False
    from ..lattice import load_lattice
    lat = load_lattice(info.lattice)
    m = max([abs(int(o)) for b in lat.bonds for o in b.offset[:1]] or [0])
    probe = patch_graph(info, (min(info.size[0], 2 * m + 1),) + tuple(info.size[1:]))
    source = make_source({**cfg, "memory_budget": None, "max_tile_sites": None}, probe)
    plan = ParallelPlan("domain", cfg, None, source.model, None, info=info)
    plan.follow(None)
    return True
