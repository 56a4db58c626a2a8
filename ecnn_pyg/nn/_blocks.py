r"""Interaction and output blocks (Miyazaki 2023, Fig. 1(b), 1(c))."""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ._activation import NormActivation, NormSwish
from ._conv import Adjacency, SpinConv
from ._linear import SelfInteraction

__all__ = ["InteractionBlock", "OutputBlock", "ACTIVATIONS", "RESIDUALS"]

#: ``activation`` options: the package's :class:`NormSwish` or the published
#: code's bias-free e3nn :class:`NormActivation`.
ACTIVATIONS = ("swish", "norm_nobias")
#: ``residual`` options: skip added after the activation (the package) or
#: before it (the published code).
RESIDUALS = ("after_activation", "before_activation")


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


class InteractionBlock(torch.nn.Module):
    r"""Convolution, norm activation and (optionally) a ResNet skip:

    .. math::
        \mathbf V' = \eta\big(\mathrm{Conv}(\mathbf V, \mathbf S)\big) \;[+\, \mathbf V]
        \quad\text{or}\quad
        \mathbf V' = \eta\big(\mathrm{Conv}(\mathbf V, \mathbf S) \;[+\, \mathbf V]\big)

    (``residual="after_activation"``, the default, or ``"before_activation"``,
    the published code).

    Args:
        channels_in (int): input channels per degree, as in :class:`SpinConv`.
        channels_out (int): output channels per degree, as in :class:`SpinConv`.
        lmax_in (int): largest input degree, as in :class:`SpinConv`.
        lmax_out (int): largest output degree, as in :class:`SpinConv`.
        num_weights (int): number of neighbour weights, as in :class:`SpinConv`.
        lmax_filter (int, optional): as in :class:`SpinConv`. (default: ``1``)
        spin_parity (int, optional): as in :class:`SpinConv`. (default: ``1``)
        avg_num_neighbors (float, optional): as in :class:`SpinConv`.
        skip (bool, optional): add the input (needs equal shapes). (default: ``False``)
        activation (str, optional): ``"swish"`` (:class:`NormSwish`) or
            ``"norm_nobias"`` (:class:`NormActivation` without bias).
            (default: ``"swish"``)
        residual (str, optional): ``"after_activation"`` or
            ``"before_activation"``. (default: ``"after_activation"``)
        sh_normalization (str, optional): as in :class:`SpinConv`.
            (default: ``"component"``)

    Raises:
        ValueError: if ``skip`` is set and the input and output shapes differ,
            ``activation`` or ``residual`` is unknown, or a :class:`SpinConv`
            argument is invalid.
    """

    def __init__(self, channels_in: int, channels_out: int, lmax_in: int, lmax_out: int,
                 num_weights: int, lmax_filter: int = 1, spin_parity: int = 1,
                 avg_num_neighbors: Optional[float] = None, skip: bool = False,
                 activation: str = "swish", residual: str = "after_activation",
                 sh_normalization: str = "component"):
        super().__init__()
        _check_choice("activation", activation, ACTIVATIONS)
        _check_choice("residual", residual, RESIDUALS)
        if skip and (channels_in, lmax_in) != (channels_out, lmax_out):
            raise ValueError("a skip connection needs equal input and output irreps")
        self.conv = SpinConv(channels_in, channels_out, lmax_in, lmax_out, num_weights,
                             lmax_filter, spin_parity, avg_num_neighbors, sh_normalization)
        self.act = NormSwish(channels_out, lmax_out, spin_parity) if activation == "swish" \
            else NormActivation(channels_out, lmax_out, spin_parity, bias=False)
        self.skip = bool(skip)
        self.residual = residual
        self.irreps_in, self.irreps_out = self.conv.irreps_in, self.conv.irreps_out

    def forward(self, x: List[Tensor], spin_y1: Tensor, adj: Adjacency) -> List[Tensor]:
        r"""Convolution, activation and skip.

        Args:
            x: features, per degree a ``(2l+1, C_in, N)`` tensor.
            spin_y1: ``(3, N)`` central harmonics :math:`\sqrt 3\,\mathbf S^T`.
            adj: adjacency (:class:`~ecnn_pyg.nn.Neighbors` or
                :class:`~ecnn_pyg.nn.Edges`), as in :class:`SpinConv`.

        Returns:
            Features, per degree a ``(2l+1, C_out, N)`` tensor.
        """
        y = self.conv(x, spin_y1, adj)
        if not self.skip:
            return self.act(y)
        if self.residual == "before_activation":
            return self.act([a + b for a, b in zip(y, x)])
        return [a + b for a, b in zip(self.act(y), x)]

    def extra_repr(self) -> str:
        """Summary shown in ``repr(block)``: the skip connection and where it is added.

        Returns:
            The text inside the module's parentheses in ``repr``.
        """
        return f"skip={self.skip}, residual={self.residual!r}" if self.skip else "skip=False"


class OutputBlock(torch.nn.Module):
    r"""Invariant convolution to scalars, then a per-site scalar stack to the local energy.

    With ``activation="swish"`` (the default) every linear layer is preceded
    by swish :math:`\eta`:

    .. math::
        \epsilon_r = W_3\,\eta(W_2\,\eta(W_1\,\eta(\mathrm{Conv}_{l_o = 0}(\mathbf V, \mathbf S)_r)))

    with ``"norm_nobias"`` (the published code) the convolution output enters
    the first linear layer directly and the activations between the linear
    layers are e3nn's :class:`NormActivation`,
    :math:`\phi(x) = \operatorname{sign}(x)\,\eta(|x|)`:

    .. math::
        \epsilon_r = W_3\,\phi(W_2\,\phi(W_1\,\mathrm{Conv}_{l_o = 0}(\mathbf V, \mathbf S)_r))

    (each :math:`W_i` with a bias).

    Args:
        channels_in (int): input channels per degree.
        lmax_in (int): largest input degree.
        num_weights (int): number of neighbour weights, as in :class:`SpinConv`.
        lmax_filter (int, optional): as in :class:`SpinConv`. (default: ``1``)
        spin_parity (int, optional): as in :class:`SpinConv`. (default: ``1``)
        avg_num_neighbors (float, optional): as in :class:`SpinConv`.
        channels (sequence of int, optional): widths of the scalar stack,
            first the convolution output. (default: ``(8, 4, 2, 1)``)
        activation (str, optional): ``"swish"`` or ``"norm_nobias"`` (see
            above). (default: ``"swish"``)
        sh_normalization (str, optional): as in :class:`SpinConv`.
            (default: ``"component"``)

    Raises:
        ValueError: if ``channels`` is empty or does not end with 1,
            ``activation`` is unknown, or a :class:`SpinConv` argument is invalid.
    """

    def __init__(self, channels_in: int, lmax_in: int, num_weights: int, lmax_filter: int = 1,
                 spin_parity: int = 1, avg_num_neighbors: Optional[float] = None,
                 channels: Sequence[int] = (8, 4, 2, 1), activation: str = "swish",
                 sh_normalization: str = "component"):
        super().__init__()
        _check_choice("activation", activation, ACTIVATIONS)
        channels = [int(c) for c in channels]
        if len(channels) < 1 or channels[-1] != 1:
            raise ValueError(f"output channels must end with 1, got {channels}")
        self.conv = SpinConv(channels_in, channels[0], lmax_in, 0, num_weights, lmax_filter,
                             spin_parity, avg_num_neighbors, sh_normalization)
        self.linears = torch.nn.ModuleList(
            [SelfInteraction(a, b, 0, True, spin_parity) for a, b in zip(channels, channels[1:])])
        self.activation = activation
        self.irreps_in = self.conv.irreps_in

    def forward(self, x: List[Tensor], spin_y1: Tensor, adj: Adjacency) -> Tensor:
        r"""Local energies ``(N,)``.

        Args:
            x: features, per degree a ``(2l+1, C_in, N)`` tensor.
            spin_y1: ``(3, N)`` central harmonics :math:`\sqrt 3\,\mathbf S^T`.
            adj: adjacency (:class:`~ecnn_pyg.nn.Neighbors` or
                :class:`~ecnn_pyg.nn.Edges`), as in :class:`SpinConv`.

        Returns:
            ``(N,)`` local energies :math:`\epsilon_r`.
        """
        y = self.conv(x, spin_y1, adj)
        if self.activation == "swish":
            for lin in self.linears:
                y = lin([F.silu(y[0])])
        else:
            for i, lin in enumerate(self.linears):
                if i:
                    y = [y[0] * torch.sigmoid(y[0].abs())]     # sign(x) SiLU(|x|)
                y = lin(y)
        return y[0].view(-1)

    def extra_repr(self) -> str:
        """Summary shown in ``repr(block)``: the activation of the scalar stack.

        Returns:
            The text inside the module's parentheses in ``repr``.
        """
        return f"activation={self.activation!r}"
