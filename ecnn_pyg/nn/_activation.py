r"""Norm-based activations on features given per degree as ``(2l+1, C, N)``.

Two nonlinearities, both equivariant because they rescale every irrep by a
function of its norm:

* :class:`NormSwish` (the package default, Miyazaki 2023, eq. 6): swish on
  the scalars, swish of the biased norm on :math:`l \ge 1`;
* :class:`NormActivation`: the semantics of :class:`e3nn.nn.NormActivation`
  with :class:`torch.nn.SiLU` (the published code of the paper): *every*
  irrep, scalars included, is multiplied by :math:`\mathrm{SiLU}(\lVert x
  \rVert + b) / \lVert x \rVert`, so a scalar :math:`x` becomes
  :math:`\operatorname{sign}(x)\,\mathrm{SiLU}(|x|)`.
"""
from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor

from ._paths import irreps_of

__all__ = ["NormSwish", "NormActivation"]


class NormSwish(torch.nn.Module):
    r"""Swish on the scalars and on the biased norm of every higher irrep:

    .. math::
        \mathbf V'_{c,0} = \eta(V_{c,0}), \qquad
        \mathbf V'_{c,l} = \eta(\lVert \mathbf V_{c,l} \rVert + b_{c,l})
        \frac{\mathbf V_{c,l}}{\lVert \mathbf V_{c,l} \rVert} \quad (l \ge 1)

    with :math:`\eta(x) = x\,\sigma(x)` (swish) and a learned bias per channel
    and degree :math:`l \ge 1`. The norm is
    :math:`\sqrt{\lVert\mathbf V\rVert^2 + \epsilon}`, smooth at zero. Unlike
    :class:`NormActivation` (e3nn's), the scalars keep their sign structure
    :math:`\eta(x)`, not :math:`\operatorname{sign}(x)\,\eta(|x|)`.

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
        r"""Set the biases :math:`b_{c,l}` to zero."""
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


class NormActivation(torch.nn.Module):
    r"""e3nn's :class:`~e3nn.nn.NormActivation` with SiLU, on per-degree features:

    .. math::
        \mathbf V'_{c,l} = \mathrm{SiLU}(\lVert \mathbf V_{c,l} \rVert + b_{c,l})
        \frac{\mathbf V_{c,l}}{\lVert \mathbf V_{c,l} \rVert} \quad (l \ge 0)

    for every channel and degree, scalars included (a scalar :math:`x`
    becomes :math:`\operatorname{sign}(x)\,\mathrm{SiLU}(|x|)` without bias).
    Equal to ``e3nn.nn.NormActivation(irreps, torch.nn.SiLU(), bias=bias)``
    (``normalize=True``, no epsilon). Without bias it is evaluated as
    :math:`\mathbf V\,\sigma(\lVert\mathbf V\rVert)`, which is the same
    function and finite at zero.

    Args:
        channels (int): channels per degree.
        lmax (int): largest degree.
        spin_parity (int, optional): parity of the spin (only for ``irreps``).
            (default: ``1``)
        bias (bool, optional): learned bias :math:`b_{c,l}` added to the norm
            (e3nn's ``bias``). (default: ``False``)

    Shapes:
        - **input:** per degree :math:`(2l+1, C, N)`
        - **output:** per degree :math:`(2l+1, C, N)`
    """

    def __init__(self, channels: int, lmax: int, spin_parity: int = 1, bias: bool = False):
        super().__init__()
        self.channels, self.lmax = int(channels), int(lmax)
        self.irreps_in = self.irreps_out = irreps_of(channels, lmax, spin_parity)
        self.bias = torch.nn.Parameter(torch.empty(lmax + 1, channels, 1)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        r"""Set the biases :math:`b_{c,l}` (if any) to zero."""
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def forward(self, x: List[Tensor]) -> List[Tensor]:
        """Apply the activation degree by degree.

        Args:
            x: features, per degree ``l = 0..lmax`` a ``(2l+1, C, N)`` tensor.

        Returns:
            Activated features of the same shapes.
        """
        out = []
        for l, v in enumerate(x):
            norm = torch.linalg.vector_norm(v, dim=0)
            if self.bias is None:
                out.append(v * torch.sigmoid(norm))          # SiLU(|v|) / |v|
            else:
                out.append(v * (F.silu(norm + self.bias[l]) / norm))
        return out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.irreps_in}, SiLU, "
                f"bias={self.bias is not None})")
