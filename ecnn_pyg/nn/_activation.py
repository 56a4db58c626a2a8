r"""Norm-based activation (Miyazaki 2023, eq. 6)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from typing import List

from torch import Tensor

from ._paths import irreps_of

__all__ = ["NormActivation"]


class NormActivation(torch.nn.Module):
    r"""Equivariant gated swish on features given per degree as ``(2l+1, C, N)``:

    .. math::
        \mathbf V'_{c,0} = \eta(V_{c,0}), \qquad
        \mathbf V'_{c,l} = \eta(\lVert \mathbf V_{c,l} \rVert + b_{c,l})
        \frac{\mathbf V_{c,l}}{\lVert \mathbf V_{c,l} \rVert} \quad (l \ge 1)

    with :math:`\eta(x) = x\,\sigma(x)` (swish) and a learned bias per channel
    and degree. The norm is :math:`\sqrt{\lVert\mathbf V\rVert^2 + \epsilon}`,
    smooth at zero.

    Args:
        channels (int): channels per degree.
        lmax (int): largest degree.
        spin_parity (int, optional): parity of the spin (only for ``irreps``).
            (default: ``1``)
        eps (float, optional): regularizer of the norm. (default: ``1e-8``)

    Shapes:
        - **input:** per degree :math:`(2l+1, C, N)`
        - **output:** per degree :math:`(2l+1, C, N)`
    """

    def __init__(self, channels: int, lmax: int, spin_parity: int = 1, eps: float = 1e-8):
        super().__init__()
        self.channels, self.lmax, self.eps = int(channels), int(lmax), float(eps)
        self.irreps_in = self.irreps_out = irreps_of(channels, lmax, spin_parity)
        self.bias = torch.nn.Parameter(torch.empty(lmax, channels, 1))
        self.reset_parameters()

    def reset_parameters(self):
        """Set the biases :math:`b_{c,l}` to zero."""
        torch.nn.init.zeros_(self.bias)

    def forward(self, x: List[Tensor]) -> List[Tensor]:
        """Apply the activation degree by degree.

        Args:
            x: features, per degree ``l = 0..lmax`` a ``(2l+1, C, N)`` tensor.

        Returns:
            Activated features of the same shapes.
        """
        out = [F.silu(x[0])]
        for l in range(1, len(x)):
            v = x[l]
            norm = torch.sqrt(torch.sum(v * v, 0) + self.eps)
            out.append(v * (F.silu(norm + self.bias[l - 1]) / norm))
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.irreps_in}, swish)"
