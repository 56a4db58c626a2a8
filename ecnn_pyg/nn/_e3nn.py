r"""The package's layers seen in e3nn's feature layout ``(N, irreps.dim)``.

Inside the package, features are per-degree blocks ``(2l+1, C, N)``
(:mod:`ecnn_pyg.nn._paths`); :class:`E3nnLayout` wraps a layer so that it takes
and returns e3nn's layout and carries ``irreps_in`` / ``irreps_out``, which is
what :func:`e3nn.util.test.assert_equivariant` and comparisons with e3nn
modules need.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from e3nn import o3
from torch import Tensor

from ._activation import NormActivation, NormSwish
from ._blocks import InteractionBlock, OutputBlock
from ._conv import Adjacency, SpinConv
from ._paths import from_e3nn, to_e3nn

__all__ = ["E3nnLayout"]


class E3nnLayout(torch.nn.Module):
    r"""A layer of this package with e3nn's feature layout at its boundary.

    For :class:`SpinConv`, :class:`InteractionBlock` and :class:`OutputBlock`
    the inputs are the features ``(N, irreps_in.dim)`` and the spins
    ``(N, 3)`` (irreps ``1x1e``, or ``1x1o`` with the time-reversal
    encoding); the adjacency is fixed at construction (it does not rotate).
    For the activations (:class:`NormSwish`, :class:`NormActivation`) the
    input is the features alone. The output is ``(N, irreps_out.dim)``
    (``(N, 1)`` local energies for :class:`OutputBlock`).

    Args:
        layer (torch.nn.Module): the wrapped layer.
        adj (Neighbors or Edges, optional): the adjacency of a convolution layer.

    Raises:
        ValueError: if a convolution layer is given without ``adj``.
        TypeError: if ``layer`` is not one of the layers above.
    """

    def __init__(self, layer: torch.nn.Module, adj: Optional[Adjacency] = None):
        super().__init__()
        self.layer, self.adj = layer, adj
        if isinstance(layer, (SpinConv, InteractionBlock, OutputBlock)):
            if adj is None:
                raise ValueError(f"{type(layer).__name__} needs its adjacency (adj)")
            conv = layer if isinstance(layer, SpinConv) else layer.conv
            self.needs_spin = True
            spin = o3.Irreps("1x1e" if conv.spin_parity == 1 else "1x1o")
            self.irreps_in = [layer.irreps_in, spin]
            self.irreps_out = [o3.Irreps("1x0e") if isinstance(layer, OutputBlock)
                               else layer.irreps_out]
        elif isinstance(layer, (NormSwish, NormActivation)):
            self.needs_spin = False
            self.irreps_in, self.irreps_out = [layer.irreps_in], [layer.irreps_out]
        else:
            raise TypeError(f"E3nnLayout wraps SpinConv, InteractionBlock, OutputBlock, "
                            f"NormSwish or NormActivation, got {type(layer).__name__}")
        self.channels_in = self.irreps_in[0][0].mul
        self.lmax_in = self.irreps_in[0].lmax

    def forward(self, x: Tensor, spin: Optional[Tensor] = None) -> Tensor:
        """Apply the layer in e3nn's layout.

        Args:
            x: ``(N, irreps_in[0].dim)`` features.
            spin: ``(N, 3)`` spins (convolution layers only).

        Returns:
            ``(N, irreps_out[0].dim)`` features.

        Raises:
            ValueError: if a convolution layer gets no spins.
        """
        xs = from_e3nn(x, self.channels_in, self.lmax_in)
        if self.needs_spin:
            if spin is None:
                raise ValueError("a convolution layer needs the spins (N, 3)")
            out = self.layer(xs, (spin * math.sqrt(3.0)).t().contiguous(), self.adj)
        else:
            out = self.layer(xs)
        return out.view(-1, 1) if isinstance(out, Tensor) else to_e3nn(out)
