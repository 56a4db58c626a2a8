r"""A balanced partition of a general graph over ranks: recursive coordinate bisection.

For graphs that are not periodic Bravais supercells (open boundaries,
:func:`~ecnn_pyg.from_networkx` graphs) the sites are split into ``parts``
parts of equal size (within one site) by recursive coordinate bisection of
their positions: the set is cut across its longest extent into two halves
whose sizes are in the ratio of the parts each half gets (``3`` parts: one
third and two thirds), and each half is cut again. The parts are compact
(their boundary, and so the halo a part needs, is small), contiguous in
space, and the same on every rank: ties in position (sites of one column)
are broken by the site index and positions are rounded to 1e-9 first, so the
cut does not depend on rounding. A graph without positions is ordered by
breadth-first search from site 0 and cut into consecutive pieces.

Example::

    parts = partition_graph(graph, 3)       # three sorted arrays of site indices
"""
from __future__ import annotations

from collections import deque
from typing import List

import numpy as np

__all__ = ["partition_graph", "boundary_sites"]


def _bfs_order(graph) -> np.ndarray:
    n = int(graph.num_nodes)
    src, dst = graph.edge_index.cpu().numpy()
    order = np.argsort(src, kind="stable")
    ptr = np.r_[0, np.cumsum(np.bincount(src, minlength=n))]
    nbr = dst[order]
    seen = np.zeros(n, bool)
    out = []
    for start in range(n):                  # every component, in order of its first site
        if seen[start]:
            continue
        seen[start] = True
        queue = deque([start])
        while queue:
            v = queue.popleft()
            out.append(v)
            for w in np.sort(nbr[ptr[v]:ptr[v + 1]]):
                if not seen[w]:
                    seen[w] = True
                    queue.append(w)
    return np.asarray(out, dtype=np.int64)


def partition_graph(graph, parts: int) -> List[np.ndarray]:
    """Split the sites of ``graph`` into ``parts`` balanced, compact parts (module docstring).

    Args:
        graph: a graph with ``num_nodes``, ``edge_index`` and (preferably) ``pos``.
        parts: the number of parts (ranks), ``1 <= parts <= num_nodes``.

    Returns:
        ``parts`` sorted int64 arrays of site indices; sizes differ by at most one.

    Raises:
        ValueError: if ``parts`` is not between 1 and the number of sites.
    """
    n = int(graph.num_nodes)
    if isinstance(parts, bool) or not isinstance(parts, (int, np.integer)) or not 1 <= parts <= n:
        raise ValueError(f"a graph of {n} sites can be split into 1 to {n} parts, got {parts!r}")
    pos = getattr(graph, "pos", None)
    if pos is None or not pos.numel():
        order = _bfs_order(graph)
        return [np.sort(order[n * p // parts:n * (p + 1) // parts]) for p in range(parts)]
    pos = np.round(pos.detach().cpu().double().numpy().reshape(n, -1), 9)
    out: List[np.ndarray] = []

    def cut(idx: np.ndarray, k: int) -> None:
        if k == 1:
            out.append(np.sort(idx))
            return
        k1 = k // 2
        n1 = len(idx) * k1 // k
        p = pos[idx]
        axis = int(np.argmax(p.max(0) - p.min(0)))
        idx = idx[np.lexsort((idx, p[:, axis]))]          # by position, ties by site index
        cut(idx[:n1], k1)
        cut(idx[n1:], k - k1)

    cut(np.arange(n, dtype=np.int64), int(parts))
    return out


def boundary_sites(graph, parts: List[np.ndarray]) -> int:
    """Sites with a bond into another part (the size of the cut; a measure of the halo)."""
    n = int(graph.num_nodes)
    owner = np.empty(n, np.int64)
    for r, p in enumerate(parts):
        owner[p] = r
    src, dst = graph.edge_index.cpu().numpy()
    cross = owner[src] != owner[dst]
    return int(np.unique(src[cross]).size)
