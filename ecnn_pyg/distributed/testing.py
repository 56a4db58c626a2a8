"""Start a few local ranks for a test: what ``torchrun`` does, in one call, with a deadline.

:func:`run_ranks` starts ``world`` processes on this machine with the
environment ``torchrun`` gives its workers (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` of a free port) and a short
collective timeout, runs ``fn(*args)`` in each (between
:func:`~ecnn_pyg.distributed.comm.init` and ``shutdown``), and returns every
rank's result. A rank that raises, dies or outlives the deadline fails the
call with the ranks' errors; no rank is left running. Processes are forked
where the platform allows (no second import of torch: a rank starts in a
fraction of a second), else spawned (then ``fn`` must be importable).

Example::

    from ecnn_pyg.distributed.testing import run_ranks
    assert run_ranks(2, my_check, 3.0) == [result_of_rank0, result_of_rank1]
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import socket
import time
import traceback
from typing import Any, Callable, Dict, List, Optional

__all__ = ["free_port", "run_ranks", "RankFailure"]


class RankFailure(AssertionError):
    """A rank raised, died or did not finish in time; ``errors`` maps rank -> message."""

    def __init__(self, message: str, errors: Dict[int, str], results: Dict[int, Any]):
        super().__init__(message)
        self.errors, self.results = errors, results


def free_port() -> int:
    """A TCP port free on localhost right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child(rank: int, world: int, port: int, timeout: float, env: Dict[str, str],
           fn: Callable, args: tuple, out) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port), "ECNN_PYG_DIST_TIMEOUT": str(timeout), **env})
    code = 0
    try:
        import torch
        torch.set_num_threads(1)
        from . import comm
        with comm.session(timeout=timeout):
            value = fn(*args)
        out.put((rank, True, value))
    except BaseException as err:            # report everything, the parent decides
        out.put((rank, False, f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))
        code = 1
    finally:
        out.close()
        out.join_thread()   # the queue's feeder thread delivers the result first
        os._exit(code)      # no atexit handlers of the parent's copy (pytest, h5py)


def run_ranks(world: int, fn: Callable, *args, timeout: float = 120.0,
              collective_timeout: float = 30.0, env: Optional[Dict[str, str]] = None,
              expect_failure: bool = False) -> List[Any]:
    """Run ``fn(*args)`` on ``world`` local ranks (gloo) and return their results in rank order.

    Args:
        world: number of ranks.
        fn: the function every rank runs (its return value must pickle).
        *args: its arguments.
        timeout: seconds for the whole call; ranks still running then are killed.
        collective_timeout: the process group's timeout (``ECNN_PYG_DIST_TIMEOUT``).
        env: more environment variables for the ranks.
        expect_failure: return ``{rank: error or result}`` instead of raising
            when a rank fails (to test the failure itself).

    Returns:
        The ranks' results (a dict of results and error messages with
        ``expect_failure``).

    Raises:
        RankFailure: if a rank raised, died or did not finish in time.
    """
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else "spawn")
    port = free_port()
    out = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(r, world, port, collective_timeout, env or {},
                                              fn, args, out), daemon=True)
             for r in range(world)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    results: Dict[int, Any] = {}
    errors: Dict[int, str] = {}
    while len(results) + len(errors) < world and time.monotonic() < deadline:
        try:
            rank, ok, value = out.get(timeout=0.2)
        except queue.Empty:
            if all(not p.is_alive() for p in procs):
                try:            # a last message may still be in the pipe
                    rank, ok, value = out.get(timeout=1.0)
                except queue.Empty:
                    break
            else:
                continue
        (results if ok else errors)[rank] = value
    for p in procs:
        p.join(timeout=max(0.1, deadline - time.monotonic()))
    for r, p in enumerate(procs):
        if p.is_alive():
            p.kill()
            p.join()
        if r not in results and r not in errors:
            errors[r] = (f"rank {r} did not finish within {timeout:g} s" if p.exitcode is None
                         or p.exitcode < 0 else f"rank {r} exited with code {p.exitcode}")
    if expect_failure:
        return {**results, **errors}
    if errors:
        msg = "\n".join(f"--- rank {r}: {errors[r]}" for r in sorted(errors))
        raise RankFailure(f"{len(errors)} of {world} ranks failed:\n{msg}", errors, results)
    return [results[r] for r in range(world)]
