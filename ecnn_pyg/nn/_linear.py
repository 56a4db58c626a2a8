r"""Self-interaction: per-site channel mixing, the same for every m (eq. 8)."""
from __future__ import annotations

import math

import torch
from typing import List

from torch import Tensor

from ._paths import irreps_of

__all__ = ["SelfInteraction"]


class SelfInteraction(torch.nn.Module):
    r"""Point convolution on features given per degree as ``(2l+1, C, N)``:

    .. math::
        \mathbf V'_{r, c', l} = \sum_c W^{l}_{c' c}\, \mathbf V_{r, c, l}
        \;(+\, b_{c'} \text{ for } l = 0)

    Args:
        channels_in (int): input channels per degree.
        channels_out (int): output channels per degree.
        lmax (int, optional): largest degree. (default: ``0``)
        bias (bool, optional): add a bias to the scalars. (default: ``True``)
        spin_parity (int, optional): parity of the spin (only for ``irreps``).

    Shapes:
        - **input:** per degree :math:`(2l+1, C_{in}, N)`
        - **output:** per degree :math:`(2l+1, C_{out}, N)`
    """

    def __init__(self, channels_in: int, channels_out: int, lmax: int = 0, bias: bool = True,
                 spin_parity: int = 1):
        super().__init__()
        self.channels_in, self.channels_out, self.lmax = int(channels_in), int(channels_out), lmax
        self.irreps_in = irreps_of(channels_in, lmax, spin_parity)
        self.irreps_out = irreps_of(channels_out, lmax, spin_parity)
        self.weight = torch.nn.Parameter(torch.empty(lmax + 1, channels_out, channels_in))
        self.bias = torch.nn.Parameter(torch.empty(channels_out, 1)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        """Draw the weights from :math:`N(0, 1/C_{in})`; zero the bias."""
        torch.nn.init.normal_(self.weight, std=1.0 / math.sqrt(self.channels_in))
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def forward(self, x: List[Tensor]) -> List[Tensor]:
        """Mix the channels of every degree.

        Args:
            x: features, per degree a ``(2l+1, C_in, N)`` tensor.

        Returns:
            Features, per degree a ``(2l+1, C_out, N)`` tensor.
        """
        out = []
        for l, xl in enumerate(x):
            y = torch.matmul(self.weight[l], xl)
            if l == 0 and self.bias is not None:
                y = y + self.bias
            out.append(y)
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.irreps_in} -> {self.irreps_out})"
