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
        channels_in (int): input channels per degree, as in :class:`SpinConv`.
        channels_out (int): output channels per degree, as in :class:`SpinConv`.
        lmax_in (int): largest input degree, as in :class:`SpinConv`.
        lmax_out (int): largest output degree, as in :class:`SpinConv`.
        num_weights (int): number of bond weights, as in :class:`SpinConv`.
        lmax_filter (int, optional): as in :class:`SpinConv`. (default: ``1``)
        spin_parity (int, optional): as in :class:`SpinConv`. (default: ``1``)
        avg_num_neighbors (float, optional): as in :class:`SpinConv`.
        skip (bool, optional): add the input (needs equal shapes). (default: ``False``)

    Raises:
        ValueError: if ``skip`` is set and the input and output shapes differ,
            or a :class:`SpinConv` argument is invalid.
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
        """Convolution, activation and skip.

        Args:
            x: features, per degree a ``(2l+1, C_in, N)`` tensor.
            sh: ``(3, N)`` central harmonics :math:`\sqrt 3\,\mathbf S^T`.
            neighbors: neighbour table (the fused form); ``None`` for the
                per-edge form.
            slot_weight: ``(K,)`` weight id of every slot of ``neighbors``.
            edge_index: ``(2, E)`` edges (per-edge form only).
            bond_weight: ``(E,)`` weight id of every edge (per-edge form only).

        Returns:
            Features, per degree a ``(2l+1, C_out, N)`` tensor.
        """
        y = self.act(self.conv(x, sh, edge_index, bond_weight, neighbors, slot_weight))
        return [a + b for a, b in zip(y, x)] if self.skip else y

    def extra_repr(self) -> str:
        """Summary shown in ``repr(block)``: whether the skip connection is on.

        Returns:
            The text inside the module's parentheses in ``repr``.
        """
        return f"skip={self.skip}"


class OutputBlock(torch.nn.Module):
    r"""Invariant convolution to scalars, then per-site swish MLP to the local energy:

    .. math::
        \epsilon_r = W_3\,\eta(W_2\,\eta(W_1\,\eta(\mathrm{Conv}_{l_o = 0}(\mathbf V, \mathbf S)_r)))

    Args:
        channels_in (int): input channels per degree.
        lmax_in (int): largest input degree.
        num_weights (int): number of bond weights, as in :class:`SpinConv`.
        lmax_filter (int, optional): as in :class:`SpinConv`. (default: ``1``)
        spin_parity (int, optional): as in :class:`SpinConv`. (default: ``1``)
        avg_num_neighbors (float, optional): as in :class:`SpinConv`.
        channels (sequence of int, optional): widths of the scalar stack,
            first the convolution output. (default: ``(8, 4, 2, 1)``)

    Raises:
        ValueError: if ``channels`` is empty or does not end with 1, or a
            :class:`SpinConv` argument is invalid.
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
        """Local energies ``(N,)``.

        Args:
            x: features, per degree a ``(2l+1, C_in, N)`` tensor.
            sh: ``(3, N)`` central harmonics :math:`\sqrt 3\,\mathbf S^T`.
            neighbors: neighbour table (the fused form); ``None`` for the
                per-edge form.
            slot_weight: ``(K,)`` weight id of every slot of ``neighbors``.
            edge_index: ``(2, E)`` edges (per-edge form only).
            bond_weight: ``(E,)`` weight id of every edge (per-edge form only).

        Returns:
            ``(N,)`` local energies :math:`\epsilon_r`.
        """
        y = self.conv(x, sh, edge_index, bond_weight, neighbors, slot_weight)
        for lin in self.linears:
            y = lin([F.silu(y[0])])
        return y[0].view(-1)
