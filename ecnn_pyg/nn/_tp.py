r"""The per-site tensor product with the central spin as one autograd function.

Given the aggregated mixtures ``M[l_i]`` (``(2 l_i + 1) P_i`` rows of ``C N``
values) and :math:`\mathbf s_r = \sqrt3\,\mathbf S_r`, the output of degree
:math:`l_o` is :math:`A_0 M + \sum_a s^a \odot (A_a M)` (see
:func:`~ecnn_pyg.nn.tp_matrices`). Forward: one matrix product per input
degree into a ``(4, D_out, C N)`` buffer and three fused multiply-adds.
Backward: the transposed products and one reduction for :math:`\partial/\partial
\mathbf s`, written with differentiable operations so that ``create_graph``
(training on the field) works.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import Tensor

__all__ = ["central_tensor_product"]


def _z(mats, ms, c, n):
    z = None
    for a, m in zip(mats, ms):
        if m is None:
            continue
        m = m.reshape(a.shape[1], c * n)
        z = torch.mm(a, m) if z is None else torch.addmm(z, a, m)
    return z


class _CentralTP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, meta, sh: Tensor, *ms: Optional[Tensor]):
        mats, lmax_out, c = meta
        n = sh.shape[-1]
        d_out = (lmax_out + 1) ** 2
        with torch.no_grad():
            z = _z(mats, ms, c, n).view(4, d_out, c, n)
            outs = []
            for lo in range(lmax_out + 1):
                r = slice(lo * lo, (lo + 1) ** 2)
                o = torch.addcmul(z[0, r], z[1, r], sh[0])
                o.addcmul_(z[2, r], sh[1]).addcmul_(z[3, r], sh[2])
                outs.append(o)
        ctx.meta = meta
        ctx.z = z[1:]
        ctx.save_for_backward(sh, *ms)
        return tuple(outs)

    @staticmethod
    def backward(ctx, *gouts):
        mats, lmax_out, c = ctx.meta
        sh, *ms = ctx.saved_tensors
        n = sh.shape[-1]
        d_out = (lmax_out + 1) ** 2
        g = torch.cat([go if go is not None else
                       sh.new_zeros(2 * lo + 1, c, n) for lo, go in enumerate(gouts)], 0)
        differentiable = torch.is_grad_enabled()
        if differentiable:       # create_graph: recompute z with recorded operations
            z = _z(mats, ms, c, n).view(4, d_out, c, n)[1:]
        else:
            z = ctx.z
        grad_sh = None
        if ctx.needs_input_grad[1]:
            grad_sh = torch.stack([(g * z[f]).sum((0, 1)) for f in range(3)])
        if differentiable:
            h = torch.stack([g, g * sh[0], g * sh[1], g * sh[2]])
        else:
            h = torch.empty((4,) + g.shape, dtype=g.dtype, device=g.device)
            h[0] = g
            for f in range(3):
                torch.mul(g, sh[f], out=h[f + 1])
        h = h.view(4 * d_out, c * n)
        grads = []
        for i, (a, m) in enumerate(zip(mats, ms)):
            if m is None or not ctx.needs_input_grad[2 + i]:
                grads.append(None)
            else:
                grads.append(torch.mm(a.t(), h).view(m.shape))
        return (None, grad_sh, *grads)


def central_tensor_product(mats: Sequence[Tensor], lmax_out: int, channels: int, sh: Tensor,
                           ms: Sequence[Optional[Tensor]]) -> List[Tensor]:
    """Tensor product of the mixtures ``ms`` with the central harmonics.

    Args:
        mats: per input degree, ``(4 D_out, (2 l_i + 1) P_i)`` matrices (rows
            ``f * D_out + d``, ``f = 0`` for :math:`Y_0`, ``1..3`` for ``sh``).
        lmax_out: largest output degree.
        channels: output channels ``C``.
        sh: ``(3, N)`` :math:`\\sqrt 3\\,\\mathbf S^T`.
        ms: per input degree ``((2 l_i + 1), P_i C, N)`` or ``None``.

    Returns:
        Per output degree ``(2 l_o + 1, C, N)``.
    """
    return list(_CentralTP.apply((list(mats), int(lmax_out), int(channels)), sh, *ms))
