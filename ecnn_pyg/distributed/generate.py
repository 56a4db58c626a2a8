r"""Sharded data generation: the ranks label the samples round-robin, rank 0 writes.

``torchrun --nproc-per-node N -m ecnn_pyg.cli generate --config F.yaml``
runs :func:`ecnn_pyg.generate.generate` on every rank. Rank 0 opens (and
locks) the output and decides which samples are still missing; then, round
after round, it sends the next ``N`` sample indices to the ranks
(:class:`ShardedLabels`), every rank labels one of them (sample ``i`` drawn
from the random stream ``(seed, i)`` exactly as in one process) and sends
the result back, and rank 0 appends the round's samples in index order. The
file is therefore the one a single process writes (bit for bit when the ranks
and the single process use the same BLAS threads), resumable by any number
of ranks, and there is one writer.

Failures: every collective has the timeout of
:mod:`ecnn_pyg.distributed.comm` (``ECNN_PYG_DIST_TIMEOUT``). A rank that
dies costs the samples of the round in flight (at most ``N``); rank 0 closes
the file with every earlier sample complete and the other ranks stop with a
:class:`~ecnn_pyg.distributed.comm.DistributedError`. When rank 0 stops (bad
input, a locked or unwritable output, an interrupt) it tells the other ranks
why, and they stop with the same message. More ranks than missing samples
is allowed: the ranks beyond them have nothing to label (rank 0 says so).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Tuple

from . import comm

__all__ = ["ShardedLabels"]

_STOP, _ROUND = "stop", "round"
#: errors of rank 0 that the other ranks raise as the same type (bad input: the CLI's
#: one-line error); anything else becomes a DistributedError
_PASSED_ON = (ValueError, FileNotFoundError, KeyError)


class ShardedLabels:
    """Labels of samples by index, computed round-robin over the ranks.

    In one process, calling it just labels the indices in order. Under
    ``torchrun`` rank 0 calls it (inside ``with labels:``) and every other
    rank calls :meth:`serve` instead.

    Args:
        label: ``label(i) -> (spin, energy, field)`` of sample ``i``
            (deterministic in ``i``).
        what: what is labelled, for messages (e.g. ``"ED samples"``).
        identity: the settings that decide the labels (e.g. the data file's
            attributes); under ``torchrun`` every rank must give rank 0's.

    Raises:
        ValueError: on every rank, if the ranks' ``identity`` differ.

    Example (the shape of :func:`ecnn_pyg.generate.generate`)::

        labels = ShardedLabels(label)
        if not labels.is_main:
            labels.serve()                       # ranks > 0 label what rank 0 sends
            return
        with labels, H5Writer(...) as writer:    # rank 0 (or the only process) writes
            for i, spin, energy, field in labels(range(writer.n_done, total)):
                writer.append(spin, energy, field)
    """

    def __init__(self, label: Callable[[int], Tuple], what: str = "samples",
                 identity: Optional[Mapping[str, Any]] = None):
        self.label, self.what = label, what
        comm.init(backend="gloo")         # from the launcher's environment; none in one process
        self.rank, self.world = comm.rank(), comm.world_size()
        self._stopped = False
        if self.world > 1 and identity is not None:
            every = comm.all_gather_object(dict(identity), what="comparing the ranks' settings")
            diff = sorted({k for d in every[1:] for k in set(d) | set(every[0])
                           if d.get(k) != every[0].get(k)})
            if diff:
                raise ValueError(
                    "the ranks were given different settings (" + "; ".join(
                        f"{k}: " + ", ".join(f"rank {r} {d.get(k)!r}" for r, d in enumerate(every))
                        for k in diff) + "): every rank must run the same config")

    @property
    def is_main(self) -> bool:
        """Whether this rank writes (rank 0, or the only process)."""
        return self.rank == 0

    def __call__(self, indices: Iterable[int]) -> Iterator[Tuple]:
        """``(i, spin, energy, field)`` of every index, in the order given (rank 0 only).

        Args:
            indices: the sample indices to label.

        Yields:
            ``(i, *label(i))`` in index order, one round of ``world`` samples
            at a time under ``torchrun``.

        Raises:
            DistributedError: if a rank dies or does not answer in time.
        """
        indices = [int(i) for i in indices]
        if self.world == 1:
            for i in indices:
                yield (i, *self.label(i))
            return
        if 0 < len(indices) < self.world:
            idle = (f"rank {len(indices)} has" if len(indices) == self.world - 1 else
                    f"ranks {len(indices)}..{self.world - 1} have")
            print(f"{self.world} ranks for {len(indices)} missing {self.what}: {idle} "
                  "nothing to label", flush=True)
        for k in range(0, len(indices), self.world):
            batch = indices[k:k + self.world]
            span = f"{self.what} {batch[0]}..{batch[-1]}"
            comm.broadcast_object((_ROUND, batch), what=f"sending {span} to the ranks")
            mine = (batch[0], *self.label(batch[0]))
            try:
                results = comm.gather_object(mine, what=f"collecting {span}")
            except comm.DistributedError as err:
                raise comm.DistributedError(
                    f"{err}. The {self.what} before {batch[0]} are complete; run the command "
                    "again (on any number of ranks) to label the rest") from err
            for res in results[:len(batch)]:
                yield res

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop(exc)
        return False

    def stop(self, error: Optional[BaseException] = None) -> None:
        """Tell the other ranks to stop (with rank 0's ``error``, if any); once, rank 0 only."""
        if self.world == 1 or self._stopped or not self.is_main:
            return
        self._stopped = True
        reason = None
        if error is not None:
            base = next((c.__name__ for c in _PASSED_ON if isinstance(error, c)), None)
            reason = (base, type(error).__name__, str(error))
        try:
            comm.broadcast_object((_STOP, reason), what="telling the ranks to stop")
        except comm.DistributedError:
            if error is None:
                raise
            # a rank is gone already (the error says so): nothing more to tell

    def serve(self) -> None:
        """Label what rank 0 sends until it says stop (ranks > 0).

        Raises:
            DistributedError: if rank 0 (or another rank) dies or times out,
                or rank 0 stopped with an error other than bad input.
            ValueError: (or FileNotFoundError, KeyError) if rank 0 stopped on
                bad input; the message is rank 0's.
        """
        while True:
            kind, payload = comm.broadcast_object(
                None, what=f"waiting for rank 0's next {self.what}")
            if kind == _STOP:
                if payload is None:
                    return
                base, name, message = payload
                cls = next((c for c in _PASSED_ON if c.__name__ == base), None)
                text = f"rank 0 stopped: {message}"
                raise (cls or comm.DistributedError)(
                    text if cls else f"rank {self.rank} of {self.world}: {text} ({name})")
            batch = payload
            mine = None
            if self.rank < len(batch):
                i = batch[self.rank]
                mine = (i, *self.label(i))
            comm.gather_object(mine, what=f"sending {self.what} {batch[0]}..{batch[-1]} "
                                          "to rank 0")
