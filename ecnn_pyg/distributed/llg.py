r"""LLG across ranks: the lattice split into slabs (domain decomposition), or the runs of a sweep.

Under ``torchrun --nproc-per-node N -m ecnn_pyg.cli simulate --config F.yaml``
(any launcher that sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``) :func:`ecnn_pyg.simulate.simulate` hands its runs to a
:class:`ParallelPlan` of this module. Rank 0 is the only writer: it owns the
output file, its lock and the resume state; the other ranks never open it and
leave no file behind. The file is the one the single-process run writes.

**Domain decomposition** (``parallel: domain``; the default for a model source
with a single run): each rank owns a slab of consecutive cells along the
first axis of the periodic supercell (:class:`SlabDecomposition`). At every
field evaluation it sends the ``h`` cell rows next to each of its borders to
the neighbouring ranks and receives theirs (point-to-point, with a timeout),
evaluates the model on its slab plus that halo as a small periodic supercell
(the halo :func:`~ecnn_pyg.distributed.tiling.halo_width` makes the slab's
field exact), and advances only its own spins. The thermal noise is drawn
for the whole lattice from the run's generator on every rank, as the single
process draws it, and each rank keeps its own rows: the trajectory does not
depend on the split, at T = 0 and at T > 0. Rank 0 hands the state to the
ranks at the start of every ``save_every`` chunk and gathers the spins at its
end to write the snapshot; the observables (magnetization, charge, energies)
are then computed by rank 0 on the gathered snapshot with the single-process
code.

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
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.distributed as tdist

from . import comm
from .tiling import (TilingError, bravais_info, halo_width, patch_graph, receptive_hops,
                     split_axis, cell_reach)

__all__ = ["PARALLEL_MODES", "SlabDecomposition", "ParallelPlan", "plan_for",
           "halo_bytes_per_exchange"]

#: ``parallel`` options of the simulate config.
PARALLEL_MODES = ("auto", "domain", "runs")


# ----------------------------------------------------------------- slabs
class SlabDecomposition:
    r"""The slabs of a periodic supercell over ``world`` ranks and the halo exchange between them.

    Rank ``r`` owns the cells ``a_r <= i_1 < b_r`` along the first axis (all of
    the other axes), i.e. the consecutive sites ``a_r M .. b_r M - 1`` with
    ``M`` sites per cell row. Its evaluation graph is the periodic supercell of
    ``b_r - a_r + 2h`` rows, ``h`` the halo of :func:`halo_width`.

    Args:
        model: a strictly local model (:class:`~ecnn_pyg.nn.ECNN`).
        graph: a periodic supercell of :func:`~ecnn_pyg.lattice_graph`.
        rank, world: this rank and the number of ranks.

    Raises:
        TilingError: if the graph is not a periodic supercell, there are more
            ranks than cell rows, or a slab is thinner than the halo (the
            message names the minimum slab and the largest rank count).
    """

    def __init__(self, model, graph, rank: int, world: int):
        info = bravais_info(graph)
        if info is None:
            raise TilingError("domain decomposition needs a periodic supercell of lattice_graph "
                              "(the lattice of a simulate config); run this graph with "
                              "parallel: runs or in one process")
        L0 = info.size[0]
        self.halo = halo_width(model, graph)[0]
        self.hops, self.reach = receptive_hops(model), cell_reach(model, graph)[0]
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
        a, b = self.ranges[rank]
        self.lo, self.hi = a * self.row_sites, b * self.row_sites
        self.graph = patch_graph(info, (b - a + 2 * self.halo,) + tuple(info.size[1:]))
        self.prev, self.next = (rank - 1) % world, (rank + 1) % world
        self.exchanges = 0

    @property
    def num_own(self) -> int:
        """Sites this rank owns."""
        return self.hi - self.lo

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
        wait = datetime.timedelta(seconds=float(timeout or comm._timeout))
        with comm.guard("exchanging halo spins with the neighbouring ranks"):
            works = tdist.batch_isend_irecv(ops)
            for w in works:
                if own.device.type == "cpu":
                    w.wait(wait)
                else:
                    w.wait()
        self.exchanges += 1
        return torch.cat([from_prev, own, from_next], 0)

    def field_source(self, model, max_sites: Optional[int] = None
                     ) -> Callable[[torch.Tensor], torch.Tensor]:
        """A field source on the own spins ``(num_own, 3)``: halo exchange, then the model.

        Args:
            model: the model.
            max_sites: evaluate the slab plus halo tile by tile, at most this
                many sites at once (:class:`~ecnn_pyg.distributed.tiling.TiledEvaluator`;
                a slab larger than one rank's memory).
        """
        from .. import keys as K
        from .tiling import TiledEvaluator
        params = list(model.parameters())
        p_dtype, p_device = params[0].dtype, params[0].device
        graph = self.graph.to(p_device)
        n = self.halo * self.row_sites
        tiled = TiledEvaluator(model, self.graph, max_sites=max_sites) \
            if max_sites is not None else None

        def source(own: torch.Tensor) -> torch.Tensor:
            patch = self.exchange(own)
            x = patch.detach().to(device=p_device, dtype=p_dtype)
            with torch.enable_grad():
                out = model(graph, x) if tiled is None else tiled(x)
            return out[K.FIELD].detach()[n:n + own.shape[0]].to(device=own.device,
                                                                  dtype=own.dtype)

        source.__name__ = f"slab_field_source(rank {self.rank} of {self.world})"
        return source


def halo_bytes_per_exchange(model, graph, world: int, itemsize: int = 8) -> int:
    """Bytes one rank sends per field evaluation (its two halo strips) for ``world`` slabs."""
    info = bravais_info(graph)
    if info is None or world < 2:
        return 0
    h = halo_width(model, graph)[0]
    return 2 * h * int(np.prod(info.size[1:])) * info.n_basis * 3 * itemsize


# ----------------------------------------------------------------- noise independent of the split
def _slice_noise(integ, full_shape, lo: int, hi: int) -> None:
    """Make ``integ`` draw the noise of the whole lattice and keep the rows ``lo:hi``.

    The generator then advances exactly as in one process, so the noise of
    every site is the one the single-process run gives it.
    """
    base = type(integ).noise

    def noise(spins):
        full = base(integ, spins.new_empty(full_shape))
        return None if full is None else full[lo:hi]

    integ.noise = noise


# ----------------------------------------------------------------- the plan
class ParallelPlan:
    """How the runs of a simulate config use the ranks (see the module docstring).

    Built by :func:`plan_for` on every rank; rank 0 drives (:meth:`lead`,
    :meth:`advance`, :meth:`run_all`), the others follow (:meth:`follow`).
    """

    def __init__(self, mode: str, cfg, graph, model=None):
        self.mode, self.cfg, self.graph = mode, cfg, graph
        self.rank, self.world = comm.rank(), comm.world_size()
        self.writer = self.rank == 0
        self.slabs = SlabDecomposition(model, graph, self.rank, self.world) \
            if mode == "domain" else None
        self.model = model
        self._source = None
        self.wait = comm.waiting_group()        # waits as long as another rank's work

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

        Same arguments and result as ``integ.run(spins, system, k)``.
        """
        zeeman = system.zeeman
        cmd = {"op": "step", "k": int(k), "zeeman": float(zeeman), "dt": integ.dt,
               "alpha": float(integ.alpha), "temperature": float(integ.temperature),
               "integrator": integ.name,
               "rng": None if integ.generator is None else integ.generator.get_state()}
        comm.broadcast_object(cmd, what="sending the next chunk of steps", group=self.wait)
        full = spins.contiguous()
        comm.broadcast_tensor(full, what="sending the spins to the ranks")
        own = self._steps(full, cmd, integ.generator, system)
        return self._gather(own, full)

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
    def follow(self, run_one: Callable) -> None:
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
            if op == "step":
                full = torch.empty((self.graph.num_nodes, 3), dtype=getattr(
                    torch, self.cfg["dtype"]), device=torch.device(self.cfg["device"]))
                comm.broadcast_tensor(full, what="receiving the spins from rank 0")
                gen = None
                if cmd["rng"] is not None:
                    gen = torch.Generator(device=full.device)
                    gen.set_state(cmd["rng"])
                own = self._steps(full, cmd, gen, None)
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
    def _steps(self, full: torch.Tensor, cmd: Dict, gen, system) -> torch.Tensor:
        from ..dynamics import SpinSystem, make_integrator
        s = self.slabs
        own = full[s.lo:s.hi].clone()
        if self._source is None:
            from .tiling import tile_options
            self._source = s.field_source(self.model, **tile_options(self.cfg, self.model))
        local = SpinSystem(self._source, zeeman=cmd["zeeman"])
        integ = make_integrator(cmd["integrator"], cmd["dt"], alpha=cmd["alpha"],
                                temperature=cmd["temperature"], generator=gen)
        _slice_noise(integ, tuple(full.shape), s.lo, s.hi)
        return integ.run(own, local, cmd["k"])

    def _gather(self, own: torch.Tensor, full: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        s = self.slabs
        rows = max(b - a for a, b in s.ranges) * s.row_sites
        buf = torch.zeros((rows, 3), dtype=own.dtype, device=own.device)
        buf[:own.shape[0]] = own
        parts = [torch.empty_like(buf) for _ in range(self.world)] if self.writer else None
        with comm.guard("gathering the spins on rank 0"):
            tdist.gather(buf, parts, dst=0)
        if not self.writer:
            return None
        out = torch.empty_like(full)
        for r, (a, b) in enumerate(s.ranges):
            out[a * s.row_sites:b * s.row_sites] = parts[r][:(b - a) * s.row_sites]
        return out


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


def plan_for(cfg, graph, n_runs: int, model=None) -> Optional[ParallelPlan]:
    """The :class:`ParallelPlan` of a simulate config, ``None`` in a single process.

    ``parallel: auto`` splits the lattice (domain) for a single run of a model
    source and spreads the runs otherwise; the exact-diagonalization source is
    not local, so it can only spread runs.

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
    if mode == "auto":
        mode = "domain" if cfg["source"] == "model" and n_runs == 1 else "runs"
    if mode == "domain":
        if cfg["source"] != "model":
            raise ValueError("parallel: domain needs a model source: exact diagonalization is "
                             "not local (every field depends on every spin), so its lattice "
                             "cannot be split; use parallel: runs to spread a sweep's runs")
        if model is None:
            raise ValueError("parallel: domain needs the model of the source")
    return ParallelPlan(mode, cfg, graph, model)
