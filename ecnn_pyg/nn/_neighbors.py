r"""Dense neighbour tables: the convolution neighbourhood as ``K`` slots per site.

The neighbourhood of site :math:`r` is :math:`N(r) = \{r\} \cup` its hopping
partners. Slot 0 is the site itself; every further slot holds, for each site,
the source of the edge of one bond type (``index[k, i] = j`` for the edge
``j -> i`` of type ``slot_type[k]``). On a periodic Bravais supercell the edges
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

from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

__all__ = ["Neighbors", "build_neighbors"]


class Neighbors(NamedTuple):
    """Neighbour table of a (batched) graph.

    Attributes:
        index: ``(K, N)`` long, source site of slot ``k`` for every site;
            ``N`` marks an empty slot (zero feature).
        slot_type: ``(K,)`` long, bond type of every slot, ``-1`` for the site itself.
        padded: whether ``index`` contains the padding value ``N``.
        grid: ``(L1, L2)`` for a single periodic 2D Bravais supercell, else ``None``.
        offsets: ``(K, 2)`` long cell offset of every slot when ``grid`` is set.
    """

    index: Tensor
    slot_type: Tensor
    padded: bool
    grid: Optional[Tuple[int, int]] = None
    offsets: Optional[Tensor] = None

    @property
    def num_slots(self) -> int:
        """Number of slots ``K`` (rows of ``index``)."""
        return self.index.shape[0]


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
    return Neighbors(index, slot_type, padded, grid, offsets)


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
