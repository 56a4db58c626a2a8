r"""Running beyond one process: tiled fields, domain-decomposed LLG, sweeps across ranks.

* :mod:`ecnn_pyg.distributed.comm` (re-exported here): the process group of
  :mod:`torch.distributed` started from ``torchrun``'s environment variables,
  rank helpers and collectives with a timeout that fail with one clear
  :class:`DistributedError` when a peer rank dies.
* :mod:`ecnn_pyg.distributed.tiling`: the exact energy and field of a large
  lattice computed region by region with halos (one process, bounded memory).
* :mod:`ecnn_pyg.distributed.partition`: balanced, compact parts of a general
  graph (recursive coordinate bisection).
* :mod:`ecnn_pyg.distributed.llg`: LLG with the lattice split over the ranks
  (slabs of a periodic supercell, parts of any other graph; halo exchange at
  every field evaluation; observables reduced over the ranks), and the runs
  of a sweep spread over the ranks.
* :mod:`ecnn_pyg.distributed.train`: data-parallel training (DDP; every rank
  takes its share of each global batch, rank 0 writes the run directory).
* :mod:`ecnn_pyg.distributed.generate`: sharded data generation (samples
  labelled round-robin over the ranks, rank 0 writes the one data file).

See ``docs/distributed.md`` and ``docs/distributed_training.md``.
"""
from .comm import (BACKENDS, DEFAULT_TIMEOUT, WAIT_TIMEOUT, DistributedError, all_gather_object,
                   all_reduce_sum, backend_for, barrier, broadcast_object, broadcast_tensor,
                   env_rank_world, gather_object, guard, init, is_active, is_main, launched,
                   local_device, local_rank, rank, scatter_object, session, shutdown,
                   timeout_seconds, waiting_group, world_size)

__all__ = ["BACKENDS", "DEFAULT_TIMEOUT", "WAIT_TIMEOUT", "DistributedError", "all_gather_object",
           "all_reduce_sum", "backend_for", "barrier", "broadcast_object", "broadcast_tensor",
           "env_rank_world", "gather_object", "guard", "init", "is_active", "is_main",
           "launched", "local_device", "local_rank", "rank", "scatter_object", "session",
           "shutdown", "timeout_seconds", "waiting_group", "world_size"]
