r"""Interaction and output blocks (Miyazaki 2023, Fig. 1(b), 1(c))."""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ._activation import NormActivation
from ._conv import SpinConv
from ._linear import SelfInteraction
from ._neighbors import Neighbors

__all__ = ["InteractionBlock", "OutputBlock"]


class InteractionBlock(torch.nn.Module):
    r"""Convolution, norm activation and (optionally) a ResNet skip:

    .. math::
        \mathbf V' = \eta\big(\mathrm{Conv}(\mathbf V, \mathbf S)\big) \;[+\, \mathbf V]

    Args:
        channels_in, channels_out, lmax_in, lmax_out, num_weights, lmax_filter,
        spin_parity, avg_num_neighbors: as in :class:`SpinConv`.
        skip (bool, optional): add the input (needs equal shapes). (default: ``False``)
    """

    def __init__(self, channels_in: int, channels_out: int, lmax_in: int, lmax_out: int,
                 num_weights: int, lmax_filter: int = 1, spin_parity: int = 1,
                 avg_num_neighbors: Optional[float] = None, skip: bool = False):
        super().__init__()
        if skip and (channels_in, lmax_in) != (channels_out, lmax_out):
            raise ValueError("a skip connection needs equal input and output irreps")
        self.conv = SpinConv(channels_in, channels_out, lmax_in, lmax_out, num_weights,
                             lmax_filter, spin_parity, avg_num_neighbors)
        self.act = NormActivation(channels_out, lmax_out, spin_parity)
        self.skip = bool(skip)
        self.irreps_in, self.irreps_out = self.conv.irreps_in, self.conv.irreps_out

    def forward(self, x: List[Tensor], sh: Tensor, neighbors: Neighbors, slot_weight: Tensor,
                edge_index: Optional[Tensor] = None,
                bond_weight: Optional[Tensor] = None) -> List[Tensor]:
        y = self.act(self.conv(x, sh, edge_index, bond_weight, neighbors, slot_weight))
        return [a + b for a, b in zip(y, x)] if self.skip else y

    def extra_repr(self) -> str:
        return f"skip={self.skip}"


class OutputBlock(torch.nn.Module):
    r"""Invariant convolution to scalars, then per-site swish MLP to the local energy:

    .. math::
        \epsilon_r = W_3\,\eta(W_2\,\eta(W_1\,\eta(\mathrm{Conv}_{l_o = 0}(\mathbf V, \mathbf S)_r)))

    Args:
        channels_in (int): input channels per degree.
        lmax_in (int): largest input degree.
        num_weights, lmax_filter, spin_parity, avg_num_neighbors: as in :class:`SpinConv`.
        channels (sequence of int, optional): widths of the scalar stack,
            first the convolution output. (default: ``(8, 4, 2, 1)``)
    """

    def __init__(self, channels_in: int, lmax_in: int, num_weights: int, lmax_filter: int = 1,
                 spin_parity: int = 1, avg_num_neighbors: Optional[float] = None,
                 channels: Sequence[int] = (8, 4, 2, 1)):
        super().__init__()
        channels = [int(c) for c in channels]
        if len(channels) < 1 or channels[-1] != 1:
            raise ValueError(f"output channels must end with 1, got {channels}")
        self.conv = SpinConv(channels_in, channels[0], lmax_in, 0, num_weights, lmax_filter,
                             spin_parity, avg_num_neighbors)
        self.linears = torch.nn.ModuleList(
            [SelfInteraction(a, b, 0, True, spin_parity) for a, b in zip(channels, channels[1:])])
        self.irreps_in = self.conv.irreps_in

    def forward(self, x: List[Tensor], sh: Tensor, neighbors: Neighbors, slot_weight: Tensor,
                edge_index: Optional[Tensor] = None,
                bond_weight: Optional[Tensor] = None) -> Tensor:
        """Local energies ``(N,)``."""
        y = self.conv(x, sh, edge_index, bond_weight, neighbors, slot_weight)
        for lin in self.linears:
            y = lin([F.silu(y[0])])
        return y[0].view(-1)
