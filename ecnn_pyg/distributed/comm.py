r"""Process groups of :mod:`torch.distributed`: start-up from ``torchrun``, guarded collectives.

Every multi-process feature of the package (domain-decomposed LLG, sweeps
across ranks, data-parallel training, sharded generation) starts its ranks
with the launcher PyTorch users already run, ``torchrun`` (or SLURM, or any
launcher that sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``), and talks through :mod:`torch.distributed`: gloo on CPU,
NCCL on GPUs. This module is the small layer they share:

* :func:`init` starts the default process group from those environment
  variables (nothing happens in a single process), with a timeout on every
  collective (``timeout``, or the environment variable
  ``ECNN_PYG_DIST_TIMEOUT`` in seconds; default 300 s);
* :func:`rank`, :func:`world_size`, :func:`is_main`, :func:`is_active` and
  :func:`local_device` answer "who am I" in one process as well as in many;
* :func:`guard` turns the backend's errors (a peer rank that died, a
  collective that timed out) into one :class:`DistributedError` that says
  which rank saw it, during what, and what to do; the wrappers below
  (:func:`barrier`, :func:`broadcast_object`, :func:`all_gather_object`, ...)
  use it;
* :func:`session` is the context manager of a command: it starts the group
  if the launcher asked for one and shuts it down at the end.

Example (``torchrun --nproc-per-node 2 script.py``)::

    from ecnn_pyg import distributed as dist
    with dist.session():
        print(dist.rank(), dist.world_size())
        total = dist.all_reduce_sum(torch.tensor([1.0]))
"""
from __future__ import annotations

import contextlib
import datetime
import os
from typing import Any, Iterator, List, Optional

import torch
import torch.distributed as tdist

__all__ = ["DistributedError", "DEFAULT_TIMEOUT", "launched", "env_rank_world", "init",
           "shutdown", "session", "is_active", "rank", "world_size", "local_rank", "is_main",
           "backend_for", "local_device", "timeout_seconds", "guard", "barrier",
           "broadcast_object", "all_gather_object", "gather_object", "all_reduce_sum",
           "broadcast_tensor", "scatter_object", "waiting_group", "WAIT_TIMEOUT", "BACKENDS"]

#: Seconds a collective waits for the other ranks before it fails.
DEFAULT_TIMEOUT = 300.0

_owned = False          # whether init() created the default group (shutdown() destroys it)
_timeout = DEFAULT_TIMEOUT


class DistributedError(RuntimeError):
    """A collective failed: a peer rank died or did not answer within the timeout."""


def env_rank_world() -> tuple:
    """``(rank, world_size, local_rank)`` as the launcher's environment variables give them.

    Returns:
        ``(0, 1, 0)`` when the variables are absent (a plain single process).

    Raises:
        ValueError: if the variables are not integers or contradict each other.
    """
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rk = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rk)))
    except ValueError as err:
        raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers: {err}") from None
    if world < 1 or not 0 <= rk < world or local < 0:
        raise ValueError(f"bad launcher environment: RANK={rk}, WORLD_SIZE={world}, "
                         f"LOCAL_RANK={local} (expected 0 <= RANK < WORLD_SIZE)")
    return rk, world, local


def launched() -> bool:
    """Whether a launcher (torchrun, SLURM, ...) asked for more than one process."""
    return env_rank_world()[1] > 1


def timeout_seconds() -> float:
    """The collective timeout in seconds (``ECNN_PYG_DIST_TIMEOUT`` or :data:`DEFAULT_TIMEOUT`)."""
    value = os.environ.get("ECNN_PYG_DIST_TIMEOUT")
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        t = float(value)
    except ValueError:
        t = -1.0
    if not t > 0:
        raise ValueError(f"ECNN_PYG_DIST_TIMEOUT must be a number of seconds > 0, got {value!r}")
    return t


#: Backends :func:`init` accepts (``ECNN_PYG_DIST_BACKEND`` or its ``backend`` argument).
BACKENDS = ("gloo", "nccl", "cpu:gloo,cuda:nccl")


def backend_for(device: Any = None) -> str:
    """The backend of the process group: the override, else NCCL for CUDA, else gloo.

    * ``ECNN_PYG_DIST_BACKEND`` (``gloo``, ``nccl`` or ``cpu:gloo,cuda:nccl``)
      wins when set;
    * otherwise ``"cpu:gloo,cuda:nccl"`` for a CUDA device when NCCL is built
      in and CUDA is available: tensors on the GPU go through NCCL, those on
      the CPU (the integrator's generator state, objects) through gloo;
    * otherwise ``"gloo"`` (CPU; a CUDA device without NCCL).

    Args:
        device: the device the computation runs on (``None``: CPU; ``"cuda"``:
            the GPUs, one per rank).

    Raises:
        ValueError: if ``ECNN_PYG_DIST_BACKEND`` names another backend.
    """
    forced = os.environ.get("ECNN_PYG_DIST_BACKEND")
    if forced:
        if forced not in BACKENDS:
            raise ValueError(f"ECNN_PYG_DIST_BACKEND must be one of {list(BACKENDS)}, "
                             f"got {forced!r}")
        return forced
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and tdist.is_nccl_available() and torch.cuda.is_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def local_device(device: Any = None) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` for a CUDA device, else ``device`` itself.

    Args:
        device: the configured device (``"cpu"``, ``"cuda"``, ``"cuda:0"``...).
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and is_active():
        return torch.device("cuda", local_rank() % max(1, torch.cuda.device_count()))
    return dev


def init(device: Any = None, timeout: Optional[float] = None,
         backend: Optional[str] = None) -> bool:
    """Start the default process group if the launcher asked for several processes.

    Args:
        device: the device the ranks compute on (chooses the backend: NCCL for
            CUDA, gloo otherwise).
        timeout: seconds every collective waits for the others (default:
            :func:`timeout_seconds`).
        backend: force a backend (one of :data:`BACKENDS`; default
            :func:`backend_for`, which ``ECNN_PYG_DIST_BACKEND`` overrides).

    Returns:
        Whether this process is now one rank of several (``False`` in a
        single process; then nothing was started).

    Raises:
        DistributedError: if the group cannot be formed within the timeout
            (another rank did not start, a wrong ``MASTER_ADDR``/``MASTER_PORT``).
        ValueError: if the launcher's environment is malformed.
    """
    global _owned, _timeout
    rk, world, local = env_rank_world()
    if tdist.is_available() and tdist.is_initialized():
        _timeout = float(timeout or _timeout)
        return tdist.get_world_size() > 1
    if world == 1:
        return False
    if not tdist.is_available():
        raise DistributedError("this PyTorch build has no torch.distributed; run one process")
    _timeout = float(timeout) if timeout is not None else timeout_seconds()
    backend = backend or backend_for(device)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if "nccl" in backend:
        torch.cuda.set_device(local % max(1, torch.cuda.device_count()))
    with guard("starting the process group"):
        tdist.init_process_group(backend=backend, rank=rk, world_size=world,
                                 timeout=datetime.timedelta(seconds=_timeout))
    _owned = True
    return True


def shutdown() -> None:
    """Destroy the default process group if :func:`init` created it."""
    global _owned
    if _owned and tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()
    _owned = False


@contextlib.contextmanager
def session(device: Any = None, timeout: Optional[float] = None) -> Iterator[bool]:
    """Context of a command: :func:`init` on entry, :func:`shutdown` on exit.

    Yields:
        Whether this process is one rank of several.
    """
    created = not (tdist.is_available() and tdist.is_initialized())
    started = init(device, timeout)
    try:
        yield started
    finally:
        if started and created:         # a group started by the caller stays up
            shutdown()


def is_active() -> bool:
    """Whether a process group of more than one rank is running."""
    return tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 in a single process)."""
    return tdist.get_rank() if tdist.is_available() and tdist.is_initialized() else 0


def world_size() -> int:
    """Number of ranks (1 in a single process)."""
    return tdist.get_world_size() if tdist.is_available() and tdist.is_initialized() else 1


def local_rank() -> int:
    """This process's rank on its node (``LOCAL_RANK``; 0 in a single process)."""
    return env_rank_world()[2] if is_active() else 0


def is_main() -> bool:
    """Whether this is rank 0 (the one that writes files and prints)."""
    return rank() == 0


@contextlib.contextmanager
def guard(what: str) -> Iterator[None]:
    """Turn a failed collective into a :class:`DistributedError` with a clear message.

    Args:
        what: what the ranks were doing (e.g. ``"exchanging halo spins"``).

    Raises:
        DistributedError: on any backend error inside the block (a peer rank
            that exited or crashed, a timeout).
    """
    try:
        yield
    except DistributedError:
        raise
    except (RuntimeError, ConnectionError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DistributedError(
            f"rank {rank()} of {world_size()}: {what} failed ({first}); another rank has "
            f"probably stopped (see its error) or did not answer within {_timeout:g} s "
            "(ECNN_PYG_DIST_TIMEOUT)") from err


def barrier(what: str = "waiting for the other ranks", group=None) -> None:
    """Wait for every rank (no-op in a single process); ``group`` as in :func:`broadcast_object`."""
    if is_active():
        with guard(what):
            tdist.barrier(group=group)


def broadcast_object(obj: Any = None, src: int = 0, what: str = "broadcasting",
                     group=None) -> Any:
    """``obj`` of rank ``src`` on every rank (picklable objects; identity in one process).

    ``group``: a process group other than the default (e.g. :func:`waiting_group`).
    """
    if not is_active():
        return obj
    box = [obj]
    with guard(what):
        tdist.broadcast_object_list(box, src=src, group=group)
    return box[0]


def all_gather_object(obj: Any, what: str = "gathering", group=None) -> List[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` in one process);
    ``group`` as in :func:`broadcast_object`."""
    if not is_active():
        return [obj]
    out: List[Any] = [None] * world_size()
    with guard(what):
        tdist.all_gather_object(out, obj, group=group)
    return out


def gather_object(obj: Any, dst: int = 0, what: str = "gathering",
                  group=None) -> Optional[List[Any]]:
    """Every rank's ``obj`` in rank order on rank ``dst`` (``None`` elsewhere)."""
    if not is_active():
        return [obj]
    out: Optional[List[Any]] = [None] * world_size() if rank() == dst else None
    with guard(what):
        tdist.gather_object(obj, out, dst=dst, group=group)
    return out


#: Seconds the waiting group (:func:`waiting_group`) waits: a week.
WAIT_TIMEOUT = 7 * 24 * 3600.0


def waiting_group():
    """A gloo group of all ranks whose collectives wait up to :data:`WAIT_TIMEOUT`.

    For waits whose length is the work of another rank (a rank waiting for
    rank 0 to finish its own run of a sweep): they must not fail after the
    default timeout. A rank that dies still fails them at once (its
    connections close); only a hung rank is waited for. Every rank must call
    this (it creates a group). ``None`` in a single process.
    """
    if not is_active():
        return None
    with guard("creating the waiting group"):
        return tdist.new_group(backend="gloo",
                               timeout=datetime.timedelta(seconds=max(_timeout, WAIT_TIMEOUT)))


def scatter_object(objs: Optional[List[Any]] = None, src: int = 0, what: str = "scattering",
                   group=None) -> Any:
    """Rank ``r`` gets ``objs[r]`` of rank ``src`` (``objs[0]`` in one process)."""
    if not is_active():
        return objs[0]
    out: List[Any] = [None]
    with guard(what):
        tdist.scatter_object_list(out, objs if rank() == src else None, src=src, group=group)
    return out[0]


def all_reduce_sum(tensor: torch.Tensor, what: str = "summing across ranks") -> torch.Tensor:
    """The sum of ``tensor`` over the ranks (a new tensor; ``tensor`` itself in one process)."""
    if not is_active():
        return tensor
    out = tensor.clone()
    with guard(what):
        tdist.all_reduce(out, op=tdist.ReduceOp.SUM)
    return out


def broadcast_tensor(tensor: torch.Tensor, src: int = 0,
                     what: str = "broadcasting") -> torch.Tensor:
    """Rank ``src``'s ``tensor`` copied into ``tensor`` on every rank (in place; returned)."""
    if is_active():
        with guard(what):
            tdist.broadcast(tensor, src=src)
    return tensor
