r"""Self-interaction: per-site channel mixing, the same for every m (eq. 8)."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._paths import irreps_of, l_slices

__all__ = ["SelfInteraction"]


class SelfInteraction(torch.nn.Module):
    r"""Point convolution on m-major features ``(D, C, N)``:

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
        - **input:** :math:`(D, C_{in}, N)`
        - **output:** :math:`(D, C_{out}, N)`
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
        torch.nn.init.normal_(self.weight, std=1.0 / math.sqrt(self.channels_in))
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = []
        for l, sl in enumerate(l_slices(self.lmax)):
            y = torch.matmul(self.weight[l], x[sl])
            if l == 0 and self.bias is not None:
                y = y + self.bias
            out.append(y)
        return torch.cat(out, 0) if len(out) > 1 else out[0]

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.irreps_in} -> {self.irreps_out})"
