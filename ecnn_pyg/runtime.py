"""Opt-in process settings that make large CPU evaluations fast: glibc's allocator.

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
"""
from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["keep_freed_memory", "allocator_tuned"]

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
