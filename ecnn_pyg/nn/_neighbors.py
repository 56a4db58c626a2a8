r"""Adjacency of the convolution: a dense neighbour table, or an edge list.

:class:`Neighbors` is the adjacency of the fused convolution (PyG's
``message_and_aggregate``): the neighbourhood as ``K`` slots per site, each
slot with its convolution weight id. :class:`Edges` is the same adjacency as
an edge list with self-loops (the per-edge ``propagate`` reference).

With :func:`build_neighbors` the neighbourhood of site :math:`r` is
:math:`N(r) = \{r\} \cup` its hopping partners. Slot 0 is the site itself;
every further slot holds, for each site, the source of the edge of one bond
type (``index[k, i] = j`` for the edge ``j -> i`` of type ``slot_type[k]``).
:func:`offset_neighbors` builds a table of given cell offsets instead (the
published model's neighbourhoods). On a periodic Bravais supercell the edges
of one bond type form a permutation of the sites, so the table has exactly
``1 + n_types`` rows and no padding. Other graphs (open boundaries, custom
graphs, supercells so small that a bond meets its own image) get extra slots
and the padding index ``N`` (a zero feature).

When the graph is a single periodic 2D Bravais supercell (a
:func:`~ecnn_pyg.lattice_graph` with one site per cell), :attr:`grid` also
records the cell offset of every slot, so that the gather-and-mix step of the
convolution becomes one circular :func:`torch.nn.functional.conv2d`.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["Neighbors", "Edges", "build_neighbors", "offset_neighbors"]


class Edges(NamedTuple):
    """Adjacency as an edge list (the per-edge ``propagate`` form).

    Attributes:
        edge_index: ``(2, E)`` long, edges ``j -> i`` including the self-loops.
        weight: ``(E,)`` long, convolution weight id of every edge (0 for the
            self-loops in the tables of :func:`build_neighbors`).
    """

    edge_index: Tensor
    weight: Tensor


class Neighbors(NamedTuple):
    """Neighbour table of a (batched) graph: the adjacency of the fused convolution.

    Attributes:
        index: ``(K, N)`` long, source site of slot ``k`` for every site;
            ``N`` marks an empty slot (zero feature).
        slot_type: ``(K,)`` long, bond type of every slot, ``-1`` for the site
            itself (and for every slot of :func:`offset_neighbors`).
        padded: whether ``index`` contains the padding value ``N``.
        grid: ``(L1, L2)`` for a single periodic 2D Bravais supercell, else ``None``.
        offsets: ``(K, 2)`` long cell offset of every slot when ``grid`` is set.
        weight: ``(K,)`` long, convolution weight id of every slot
            (:func:`build_neighbors`: ``slot_type + 1``, so 0 is the site's own).
    """

    index: Tensor
    slot_type: Tensor
    padded: bool
    grid: Optional[Tuple[int, int]] = None
    offsets: Optional[Tensor] = None
    weight: Optional[Tensor] = None

    @property
    def num_slots(self) -> int:
        """Number of slots ``K`` (rows of ``index``)."""
        return self.index.shape[0]

    def to_edges(self) -> Edges:
        """The same adjacency as an edge list (empty slots dropped).

        Returns:
            :class:`Edges` with one edge ``index[k, i] -> i`` of weight
            ``weight[k]`` per filled slot (slot-major order).
        """
        K, N = self.index.shape
        dst = torch.arange(N, device=self.index.device).expand(K, N)
        wid = self.weight.view(K, 1).expand(K, N)
        keep = self.index < N
        return Edges(torch.stack([self.index[keep], dst[keep]]), wid[keep])


def build_neighbors(edge_index: Tensor, bond_type: Tensor, num_nodes: int,
                    cell: Optional[Tensor] = None, size: Optional[Tensor] = None,
                    num_graphs: int = 1, allow_grid: bool = True) -> Neighbors:
    """Neighbour table from edges and their bond types (see :class:`Neighbors`).

    Args:
        edge_index: ``(2, E)`` edges ``j -> i`` (PyG flow source to target).
        bond_type: ``(E,)`` bond type of every edge.
        num_nodes: number of sites ``N``.
        cell: ``(N, dim)`` integer cell coordinates (optional, for the grid test).
        size: supercell size ``(1, dim)`` (optional, for the grid test).
        num_graphs: graphs in the batch (the grid form needs exactly one).
        allow_grid: look for the 2D periodic grid form.

    Returns:
        The :class:`Neighbors` table; ``grid`` and ``offsets`` are set only for
        a single unpadded periodic 2D supercell in row-major cell order.
    """
    device = edge_index.device
    N = int(num_nodes)
    src, dst = edge_index[0], edge_index[1]
    E = src.numel()
    bond_type = bond_type.to(device=device, dtype=torch.long)
    n_types = int(bond_type.max()) + 1 if E else 0
    slots = [torch.arange(N, device=device).view(1, N)]
    slot_type = [-1]
    padded = False
    if E:
        key = dst * n_types + bond_type
        counts = torch.bincount(key, minlength=N * n_types).view(N, n_types)
        cmax = counts.max(0).values
        cmin = counts.min(0).values
        present = torch.nonzero(cmax > 0).view(-1)
        if bool((cmax[present] == 1).all()) and bool((cmin[present] == 1).all()):
            # every present bond type is a permutation: one slot per type
            table = torch.empty(n_types, N, dtype=torch.long, device=device)
            table[bond_type, dst] = src
            slots.append(table[present])
            slot_type += present.tolist()
        else:
            padded = True
            order = torch.argsort(key, stable=True)
            skey = key[order]
            first = torch.searchsorted(skey, skey, right=False)
            rank = torch.arange(E, device=device) - first
            offset = torch.zeros(n_types + 1, dtype=torch.long, device=device)
            offset[1:] = torch.cumsum(cmax, 0)
            table = torch.full((int(offset[-1]), N), N, dtype=torch.long, device=device)
            t_sorted = bond_type[order]
            table[offset[t_sorted] + rank, dst[order]] = src[order]
            slots.append(table)
            slot_type += torch.repeat_interleave(torch.arange(n_types, device=device),
                                                 cmax).tolist()
    index = torch.cat(slots, 0)
    slot_type = torch.tensor(slot_type, dtype=torch.long, device=device)
    grid, offsets = None, None
    if allow_grid and not padded and num_graphs == 1 and cell is not None \
            and size is not None and size.numel() == 2 and cell.shape == (N, 2):
        grid, offsets = _grid_form(index, cell.to(device), size.view(-1).to(device))
    return Neighbors(index, slot_type, padded, grid, offsets, slot_type + 1)


def offset_neighbors(cell: Tensor, size: Tensor, offsets: Sequence[Sequence[int]],
                     ptr: Optional[Tensor] = None, allow_grid: bool = True) -> Neighbors:
    """Neighbour table of fixed cell offsets on periodic 2D supercells (one site per cell).

    Slot ``k`` of site ``r`` holds the site at cell ``cell[r] + offsets[k]``
    (modulo the supercell), and has the weight id ``k``; offsets may repeat
    (repeated slots are separate weights on the same input).

    Args:
        cell: ``(N, 2)`` integer cell coordinates, row-major within every
            supercell (site ``i1 * L2 + i2`` at cell ``(i1, i2)``).
        size: ``(B, 2)`` supercell sizes ``(L1, L2)``, one row per graph.
        offsets: ``K`` cell offsets ``(d1, d2)``.
        ptr: ``(B + 1,)`` first site of every graph (default: one graph).
        allow_grid: set :attr:`Neighbors.grid` for a single supercell (the
            circular ``conv2d`` form).

    Returns:
        The :class:`Neighbors` (unpadded; ``slot_type`` all ``-1``).

    Raises:
        ValueError: if the sites are not the row-major cells of their supercells.
    """
    device = cell.device
    off = torch.as_tensor(offsets, dtype=torch.long, device=device).view(-1, 2)
    N = cell.shape[0]
    size = size.to(device=device, dtype=torch.long).view(-1, 2)
    if ptr is None:
        ptr = torch.tensor([0, N], device=device)
    ptr = ptr.to(device=device, dtype=torch.long)
    counts = ptr[1:] - ptr[:-1]
    if cell.dim() != 2 or cell.shape[1] != 2 or size.shape[0] != counts.numel() \
            or not bool((counts == size[:, 0] * size[:, 1]).all()):
        raise ValueError("a neighbourhood of cell offsets needs periodic 2D supercells of one "
                         f"site per cell (cell (N, 2), size (B, 2)); got cell "
                         f"{tuple(cell.shape)}, size {tuple(size.shape)}, graph sizes "
                         f"{counts.tolist()}")
    batch = torch.repeat_interleave(torch.arange(counts.numel(), device=device), counts)
    L = size[batch]                                                   # (N, 2)
    start = ptr[batch]
    cell = cell.to(device=device, dtype=torch.long)
    local = torch.arange(N, device=device) - start
    if not bool((cell[:, 0] * L[:, 1] + cell[:, 1] == local).all()):
        raise ValueError("a neighbourhood of cell offsets needs the sites in row-major cell "
                         "order (site i1 * L2 + i2 at cell (i1, i2)), as lattice_graph makes them")
    c = (cell.unsqueeze(0) + off.view(-1, 1, 2)) % L.unsqueeze(0)   # (K, N, 2)
    index = start.unsqueeze(0) + c[..., 0] * L[:, 1].unsqueeze(0) + c[..., 1]
    K = off.shape[0]
    grid = offsets_out = None
    if allow_grid and counts.numel() == 1:
        L1, L2 = int(size[0, 0]), int(size[0, 1])
        if int(off.abs().max()) <= min(L1, L2):
            grid, offsets_out = (L1, L2), off
    return Neighbors(index, torch.full((K,), -1, dtype=torch.long, device=device), False,
                     grid, offsets_out, torch.arange(K, device=device))


def _grid_form(index: Tensor, cell: Tensor, size: Tensor):
    L1, L2 = int(size[0]), int(size[1])
    N = index.shape[1]
    if L1 * L2 != N:
        return None, None
    n = torch.arange(N, device=index.device)
    if not (bool((cell[:, 0] == n // L2).all()) and bool((cell[:, 1] == n % L2).all())):
        return None, None
    L = size.view(1, 1, 2)
    d = (cell[index] - cell.view(1, N, 2)) % L          # (K, N, 2)
    if not bool((d == d[:, :1]).all()):
        return None, None                               # not a translation per slot
    d = d[:, 0]
    d = torch.where(2 * d > L.view(1, 2), d - L.view(1, 2), d)  # signed, |d| <= L/2
    pad = int(d.abs().max())
    if pad > min(L1, L2):
        return None, None
    return (L1, L2), d
