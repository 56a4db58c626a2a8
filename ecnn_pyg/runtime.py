"""Process settings and guards: glibc's allocator (opt-in) and the memory guard.

Nothing here runs on ``import ecnn_pyg``: a library does not change the
process it is imported into. The ``ecnn-pyg`` command line and the benchmark
scripts call :func:`keep_freed_memory` at start-up; a script or notebook that
evaluates large supercells on CPU may call it too::

    import ecnn_pyg.runtime
    ecnn_pyg.runtime.keep_freed_memory()     # before the first large evaluation

A 576 x 576 evaluation allocates and frees tensors of tens to hundreds of MB
many times per call. glibc serves each of them with a fresh ``mmap`` and
returns it with ``munmap`` (blocks above its mmap threshold, at most 32 MB), so
every call page-faults and zeroes gigabytes of memory again: on the 2-core
development machine that was half the time of E and B at 576 x 576 (4.65 s
against 2.23 s with the setting below, ``benchmarks/bench_model.py``).

:func:`keep_freed_memory` turns that off with ``mallopt``: no ``mmap`` for
allocations (``M_MMAP_MAX = 0``), no trimming of the heap below 2 GB of free
top (``M_TRIM_THRESHOLD``), and a 256 MB growth step (``M_TOP_PAD``). Freed
tensor memory then stays in the process and is reused; the peak resident
memory is what the computation needs (+7% at 576 x 576), but it is not given
back to the system until the process ends. It applies on Linux with glibc
unless the environment sets ``ECNN_PYG_MALLOC=system``; the environment
variables of glibc (``MALLOC_MMAP_MAX_`` ...) still take precedence when set,
as they are read first.

:func:`check_memory` refuses a computation whose estimated peak memory exceeds
what the machine has available (``MemAvailable`` of ``/proc/meminfo``, and the
cgroup limit where one is set), before anything large is allocated: with the
estimate, the available figure and the option that overrides in the message::

    from ecnn_pyg.runtime import check_memory
    check_memory(ed_memory_bytes(n_sites), "ED of 20000 sites")  # InsufficientMemoryError

:func:`set_threads` sets the threads of torch and of the BLAS libraries
together. The command line uses one thread unless told otherwise (``--threads
N``, ``ECNN_PYG_NUM_THREADS``, or ``OMP_NUM_THREADS`` set by the user): on a
machine that other jobs share, torch's default (one thread per core) made 100
LLG steps several times slower than one thread, and OpenBLAS's default made
data generation 2.7 times slower (see docs/benchmarks.md).
"""
from __future__ import annotations

import ctypes
import os
import sys
from typing import Optional

__all__ = ["keep_freed_memory", "allocator_tuned", "InsufficientMemoryError",
           "available_memory", "check_memory", "format_bytes", "set_threads",
           "default_threads", "THREADS_ENV", "resolve_device"]

#: environment variable giving the command line's number of threads
THREADS_ENV = "ECNN_PYG_NUM_THREADS"
#: variables read by OpenMP, OpenBLAS and MKL when they load
_BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
_tuned = False


def keep_freed_memory() -> bool:
    """Make glibc keep and reuse freed memory for the rest of the process (opt-in).

    Call it once, early, in a program that evaluates large supercells on CPU
    (the ``ecnn-pyg`` command does); it affects the whole process, so a
    library should not call it on a user's behalf. See the module docstring
    for what it sets and what it costs.

    Returns:
        ``True`` if the settings were applied, ``False`` where they do not
        apply (not Linux, not glibc, ``ECNN_PYG_MALLOC=system``, or a glibc
        environment variable already chose the behaviour).
    """
    global _tuned
    if _tuned:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("ECNN_PYG_MALLOC") == "system":
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_",
                                     "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt     # the C library the interpreter runs on
    except (OSError, AttributeError):       # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    ok = mallopt(_M_MMAP_MAX, 0) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1 and ok
    ok = mallopt(_M_TOP_PAD, 256 * 2 ** 20) == 1 and ok
    _tuned = ok
    return ok


def allocator_tuned() -> bool:
    """Whether :func:`keep_freed_memory` is in effect in this process.

    Returns:
        ``True`` once :func:`keep_freed_memory` has applied the settings.
    """
    return _tuned


class InsufficientMemoryError(MemoryError):
    """A computation was refused because its estimated memory exceeds what is available.

    Attributes:
        needed: the estimate in bytes.
        available: the machine's available memory in bytes.
        what: what was to be computed.
    """

    def __init__(self, message: str, needed: int, available: int, what: str):
        super().__init__(message)
        self.needed, self.available, self.what = needed, available, what


def format_bytes(n: float) -> str:
    """``n`` bytes in the largest binary unit that keeps it >= 1 (``"6.4 GiB"``).

    Args:
        n: a number of bytes.

    Returns:
        The figure with one decimal and its unit.
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"     # pragma: no cover


def _meminfo_available() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024        # the figure is in kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_available() -> Optional[int]:
    """Room left under a cgroup v2 (or v1) memory limit, ``None`` without one."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as f:
                limit = f.read().strip()
            with open(usage_file) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= 2 ** 60:
            return None
        return max(int(limit) - usage, 0)
    return None


def available_memory() -> Optional[int]:
    """Memory the machine can give a new allocation now, in bytes.

    ``MemAvailable`` of ``/proc/meminfo`` (Linux), else the free physical pages
    (``os.sysconf``); the room under a cgroup memory limit when that is smaller.

    Returns:
        Bytes, or ``None`` where no figure can be read.
    """
    avail = _meminfo_available()
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    cg = _cgroup_available()
    if cg is not None:
        avail = cg if avail is None else min(avail, cg)
    return avail


def check_memory(needed_bytes: float, what: str, *, allow: bool = False,
                 override: str = "allow=True (command line: --ignore-memory-check)") -> Optional[int]:
    """Refuse a computation whose estimated peak memory exceeds the available memory.

    Call it before allocating. Nothing is checked with ``allow=True`` or where
    :func:`available_memory` has no figure.

    Args:
        needed_bytes: the estimated peak, in bytes.
        what: what is to be computed, for the message (``"ED of 10000 sites"``).
        allow: run anyway (the user's override).
        override: how the user overrides, for the message.

    Returns:
        The available memory in bytes (``None`` if unknown or not checked).

    Raises:
        InsufficientMemoryError: if ``needed_bytes`` exceeds the available
            memory; its message gives both figures and ``override``.
    """
    if allow:
        return None
    avail = available_memory()
    if avail is None or needed_bytes <= avail:
        return avail
    raise InsufficientMemoryError(
        f"{what} needs about {format_bytes(needed_bytes)} of memory, but this machine has "
        f"{format_bytes(avail)} available; use a smaller size, free memory, or pass "
        f"{override} to run anyway", int(needed_bytes), int(avail), what)


def default_threads() -> Optional[int]:
    """The command line's number of threads when ``--threads`` is not given.

    Returns:
        ``ECNN_PYG_NUM_THREADS`` if set; ``None`` (leave the libraries' own
        setting) if the user set ``OMP_NUM_THREADS`` or another BLAS variable;
        else 1.

    Raises:
        ValueError: if ``ECNN_PYG_NUM_THREADS`` is not a positive integer.
    """
    value = os.environ.get(THREADS_ENV)
    if value is not None:
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"{THREADS_ENV} must be a positive integer, got {value!r}")
        return n
    if any(var in os.environ for var in _BLAS_ENV):
        return None
    return 1


def set_threads(n: int, name: str = "the number of threads") -> None:
    """Use ``n`` threads in torch (intra-op) and in the BLAS libraries.

    Sets ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS``
    (read by libraries loaded later), torch's :func:`torch.set_num_threads` if
    torch is loaded, and the BLAS pools already loaded through ``threadpoolctl``
    where it is installed. Call it early, before numpy is imported, for the
    BLAS setting to apply without ``threadpoolctl``.

    Args:
        n: number of threads, a positive integer.
        name: what gave ``n`` (a config key, an option), for the message.

    Raises:
        ValueError: if ``n`` is not a positive integer.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    for var in _BLAS_ENV:
        os.environ[var] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        torch.set_num_threads(n)
    if "numpy" in sys.modules:
        try:
            import threadpoolctl
        except ImportError:
            return
        threadpoolctl.threadpool_limits(n, user_api="blas")


def resolve_device(spec):
    """The torch device a config or option names, checked to exist on this machine.

    Args:
        spec: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` (or a
            :class:`torch.device`).

    Returns:
        The :class:`torch.device`.

    Raises:
        ValueError: if ``spec`` is not a device name, or names a device this
            machine does not have (CUDA without a GPU or without a CUDA build
            of torch, a GPU index out of range, MPS elsewhere than on a Mac).
    """
    import torch
    if isinstance(spec, bool) or not isinstance(spec, (str, torch.device)):
        raise ValueError(f"device must be a name such as 'cpu' or 'cuda', got {spec!r}")
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {spec!r}: use 'cpu', 'cuda', 'cuda:N' or 'mps'") \
            from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch build has no CUDA support" if torch.version.cuda is None
                   else "no CUDA GPU is visible")
            raise ValueError(f"device {spec!r} asked for, but {why}; use device 'cpu'")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {spec!r} asked for, but this machine has {count} CUDA "
                             f"GPU(s) (cuda:0 .. cuda:{count - 1})")
        return dev
    if dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"device {spec!r} asked for, but MPS is not available; use 'cpu'")
        return dev
    raise ValueError(f"device {spec!r} is not supported: use 'cpu', 'cuda', 'cuda:N' or 'mps'")
