"""Scoring and selection of explored snapshots by the committee's disagreement.

A snapshot's disagreement is a statistic over its sites of sigma_B, the spread of the
members' fields at a site (:func:`ecnn_pyg.committee.committee_field_stats`): its RMS
(``"rms"``, the default of ``ecnn-pyg learn``) or its maximum (``"max"``). Two trust levels
sort every snapshot:

* **accurate**: disagreement below ``lower`` (the committee agrees: nothing to learn);
* **candidate**: ``lower <= disagreement < upper`` (worth an exact label);
* **failed**: ``upper`` or above, or not finite (the committee is lost there; such states
  are usually unphysical, and labelling them teaches little).

:func:`select_candidates` takes at most ``K`` candidates, spread evenly over groups (the
exploration's fields, starts and sizes), deterministic for a given seed.
:func:`final_t0_snapshots` finds the last snapshot of every T = 0 run: the minima the
dynamics relaxed to, which ``select.minima`` labels beside the candidates.
"""
from __future__ import annotations

from typing import Hashable, List, Sequence

import numpy as np

__all__ = ["ACCURATE", "CANDIDATE", "FAILED", "CLASSES", "classify", "select_candidates",
           "spread_sample", "final_t0_snapshots"]

ACCURATE, CANDIDATE, FAILED = 0, 1, 2
#: class code -> name (as in the reports)
CLASSES = {ACCURATE: "accurate", CANDIDATE: "candidate", FAILED: "failed"}


def _levels(lower: float, upper: float) -> None:
    if not (np.isfinite(lower) and lower >= 0):
        raise ValueError(f"the lower trust level must be a finite number >= 0, got {lower!r}")
    if not upper > lower:
        raise ValueError(f"the upper trust level ({upper!r}) must be above the lower one "
                         f"({lower!r})")


def classify(scores: Sequence[float], lower: float, upper: float) -> np.ndarray:
    """The class of every snapshot: :data:`ACCURATE`, :data:`CANDIDATE` or :data:`FAILED`.

    Args:
        scores: the disagreement of each snapshot.
        lower: the lower trust level (a score below it is accurate).
        upper: the upper trust level (a score at or above it, or not finite, failed);
            ``inf`` for none.

    Returns:
        ``(n,)`` int array of class codes.

    Raises:
        ValueError: if ``lower`` is not finite and >= 0, or ``upper <= lower``.
    """
    _levels(lower, upper)
    s = np.asarray(scores, dtype=float)
    out = np.full(s.shape, FAILED, dtype=int)
    finite = np.isfinite(s)
    out[finite & (s < lower)] = ACCURATE
    out[finite & (s >= lower) & (s < upper)] = CANDIDATE
    return out


def select_candidates(scores: Sequence[float], groups: Sequence[Hashable], lower: float,
                      upper: float, max_count: int, seed: int = 0) -> np.ndarray:
    """Indices of the snapshots to label: candidates, at most ``max_count``, spread over groups.

    Every candidate (``lower <= score < upper``) is taken when there are at most
    ``max_count``. Otherwise the groups (e.g. ``(start, field)`` of each
    snapshot) take turns, one snapshot per group per turn, in an order drawn
    from ``seed``; within a group the snapshots come in a random order drawn
    from ``seed`` too, so that a few trajectories cannot fill the quota with
    their neighbouring (nearly equal) snapshots.

    Args:
        scores: the disagreement of each snapshot.
        groups: a hashable key per snapshot (same length as ``scores``).
        lower: the lower trust level.
        upper: the upper trust level.
        max_count: ``K``, the most snapshots to take (>= 1).
        seed: seed of the orders (same inputs and seed: same selection).

    Returns:
        Sorted ``int`` indices into ``scores``.

    Raises:
        ValueError: if the lengths differ, ``max_count < 1``, or the levels are
            out of order.
    """
    if len(groups) != len(scores):
        raise ValueError(f"groups ({len(groups)}) and scores ({len(scores)}) differ in length")
    if isinstance(max_count, bool) or int(max_count) != max_count or max_count < 1:
        raise ValueError(f"max_count must be an integer >= 1, got {max_count!r}")
    cand = np.flatnonzero(classify(scores, lower, upper) == CANDIDATE)
    return spread_sample(cand, groups, max_count, seed)


def spread_sample(indices: Sequence[int], groups: Sequence[Hashable], max_count: int,
                  seed: int = 0) -> np.ndarray:
    """At most ``max_count`` of ``indices``, spread over groups as :func:`select_candidates` does.

    Args:
        indices: the indices to choose from.
        groups: a hashable key per index of the whole set (``groups[i]`` for ``i`` in
            ``indices``).
        max_count: the most to take (>= 0).
        seed: seed of the orders.

    Returns:
        Sorted ``int`` indices.
    """
    cand = np.asarray(sorted(int(i) for i in indices), dtype=int)
    if len(cand) <= max_count:
        return cand
    rng = np.random.default_rng(seed)
    keys: List[Hashable] = sorted({groups[i] for i in cand}, key=repr)
    members = {k: [] for k in keys}
    for i in cand:
        members[groups[i]].append(int(i))
    queues = [list(np.asarray(members[k])[rng.permutation(len(members[k]))])
              for k in (keys[j] for j in rng.permutation(len(keys)))]
    chosen: List[int] = []
    while len(chosen) < max_count:
        for q in queues:
            if q and len(chosen) < max_count:
                chosen.append(int(q.pop(0)))
    return np.sort(np.asarray(chosen, dtype=int))


def final_t0_snapshots(arrays) -> np.ndarray:
    """Indices of the last snapshot of every T = 0 run that is not failed.

    These are the states the zero-temperature dynamics relaxed to: the minima whose energy
    differences decide a phase diagram. sigma_B measures how far the members' fields
    spread, so a minimum can count as accurate while its energy relative to the other
    minima is off by more than the differences between phases.

    Args:
        arrays: the scores of a round (``scores.npz``): per snapshot ``traj`` (exploration
            file), ``run``, ``snapshot`` (index within the run), ``temperature`` and
            ``class``.

    Returns:
        Sorted ``int`` indices, one per (file, run) at T = 0 whose last snapshot is
        accurate or a candidate.
    """
    traj, run, snap = (np.asarray(arrays[k], dtype=int) for k in ("traj", "run", "snapshot"))
    cold = np.asarray(arrays["temperature"], dtype=float) == 0.0
    last = {}
    for i in np.flatnonzero(cold):
        key = (int(traj[i]), int(run[i]))
        if key not in last or snap[i] > snap[last[key]]:
            last[key] = int(i)
    cls = np.asarray(arrays["class"], dtype=int)
    return np.asarray(sorted(i for i in last.values() if cls[i] != FAILED), dtype=int)
