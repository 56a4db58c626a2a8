r"""The per-site tensor product with the central spin as one autograd function.

Given the aggregated mixtures ``M[l_i]`` (``(2 l_i + 1) P_i`` rows of ``C N``
values) and :math:`\mathbf s_r = \sqrt3\,\mathbf S_r`, the output of degree
:math:`l_o` is :math:`A_0 M + \sum_a s^a \odot (A_a M)` (see
:func:`~ecnn_pyg.nn.tp_matrices`). Forward and plain backward run
over blocks of ``BLOCK`` columns of the ``C N`` (channel, site) columns, so that
the ``(4 D_out, block)`` intermediate stays in cache (no full-size temporaries)
while a small lattice takes all channels in one block (a few large operations
rather than many per channel: the per-call cost of small lattices); under ``create_graph``
(training on the field) the backward is written with differentiable
operations instead.
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


#: Columns (channel, site) per block of the blocked (cache-resident) forward and backward.
BLOCK = 16384


def _blocks(c: int, n: int):
    """Column ranges ``(j0, j1)`` of ``(rows, C N)`` views, at most ``BLOCK`` wide."""
    for j0 in range(0, c * n, BLOCK):
        yield j0, min(c * n, j0 + BLOCK)


def _per_column(y1: Tensor, c: int) -> Tensor:
    """``y1`` (3, N) repeated for the C channels: (3, C N), column ``ch * N + r``."""
    return y1 if c == 1 else y1.repeat(1, c)


def _forward_blocked(mats, ms, y1, lmax_out, c, n):
    d_out = (lmax_out + 1) ** 2
    pairs = [(a, m.reshape(a.shape[1], c * n)) for a, m in zip(mats, ms) if m is not None]
    outs = [y1.new_empty(2 * lo + 1, c, n) for lo in range(lmax_out + 1)]
    views = [o.view(2 * lo + 1, c * n) for lo, o in enumerate(outs)]
    zbuf = y1.new_empty(4 * d_out, min(c * n, BLOCK))
    yc = _per_column(y1, c)
    for j0, j1 in _blocks(c, n):
        z = zbuf[:, :j1 - j0]
        torch.mm(pairs[0][0], pairs[0][1][:, j0:j1], out=z)
        for a, m in pairs[1:]:
            z.addmm_(a, m[:, j0:j1])
        z = z.view(4, d_out, j1 - j0)
        s = yc[:, j0:j1]
        for lo, v in enumerate(views):
            r = slice(lo * lo, (lo + 1) ** 2)
            dst = v[:, j0:j1]
            torch.addcmul(z[0, r], z[1, r], s[0], out=dst)
            dst.addcmul_(z[2, r], s[1]).addcmul_(z[3, r], s[2])
    return outs


def _backward_blocked(mats, ms, y1, g, lmax_out, c, n, need_y1, need_m):
    d_out = (lmax_out + 1) ** 2
    gv = g.view(d_out, c * n)
    pairs = [(a, m.reshape(a.shape[1], c * n)) if m is not None else (a, None)
             for a, m in zip(mats, ms)]
    grads = [m.new_empty(m.shape) if (m is not None and need) else None
             for m, need in zip(ms, need_m)]
    gviews = [gm.view(gm.shape[0] * gm.shape[1] // c, c * n) if gm is not None else None
              for gm in grads]
    grad_yc = y1.new_empty(3, c * n) if need_y1 else None
    yc = _per_column(y1, c)
    hbuf = y1.new_empty(4, d_out, min(c * n, BLOCK))
    zbuf = y1.new_empty(4 * d_out, min(c * n, BLOCK))
    for j0, j1 in _blocks(c, n):
        w = j1 - j0
        s = yc[:, j0:j1]
        gb = gv[:, j0:j1]
        h = hbuf[:, :, :w]
        h[0].copy_(gb)
        for f in range(3):
            torch.mul(gb, s[f], out=h[f + 1])
        h2 = h.view(4 * d_out, w)
        for (a, m), gm in zip(pairs, gviews):
            if gm is not None:
                gm[:, j0:j1].copy_(torch.mm(a.t(), h2))
        if grad_yc is not None:
            z = zbuf[:, :w]
            first = True
            for a, m in pairs:
                if m is None:
                    continue
                if first:
                    torch.mm(a, m[:, j0:j1], out=z)
                    first = False
                else:
                    z.addmm_(a, m[:, j0:j1])
            z = z.view(4, d_out, w)[1:]
            torch.sum(z * gb.unsqueeze(0), 1, out=grad_yc[:, j0:j1])
    grad_y1 = grad_yc.view(3, c, n).sum(1) if grad_yc is not None else None
    return grad_y1, grads


class _CentralTP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, meta, y1: Tensor, *ms: Optional[Tensor]):
        mats, lmax_out, c = meta
        n = y1.shape[-1]
        with torch.no_grad():
            outs = _forward_blocked(mats, ms, y1, lmax_out, c, n)
        ctx.meta = meta
        ctx.save_for_backward(y1, *ms)
        return tuple(outs)

    @staticmethod
    def backward(ctx, *gouts):
        mats, lmax_out, c = ctx.meta
        y1, *ms = ctx.saved_tensors
        n = y1.shape[-1]
        d_out = (lmax_out + 1) ** 2
        g = torch.cat([go if go is not None else
                       y1.new_zeros(2 * lo + 1, c, n) for lo, go in enumerate(gouts)], 0)
        if not torch.is_grad_enabled():          # plain backward: blocked, no graph
            grad_y1, grads = _backward_blocked(mats, ms, y1, g, lmax_out, c, n,
                                               ctx.needs_input_grad[1], ctx.needs_input_grad[2:])
            return (None, grad_y1, *grads)
        # create_graph (training on the field): the same with recorded operations
        z = _z(mats, ms, c, n).view(4, d_out, c, n)[1:]
        grad_y1 = None
        if ctx.needs_input_grad[1]:
            grad_y1 = torch.stack([(g * z[f]).sum((0, 1)) for f in range(3)])
        h = torch.stack([g, g * y1[0], g * y1[1], g * y1[2]])
        h = h.view(4 * d_out, c * n)
        grads = []
        for i, (a, m) in enumerate(zip(mats, ms)):
            if m is None or not ctx.needs_input_grad[2 + i]:
                grads.append(None)
            else:
                grads.append(torch.mm(a.t(), h).view(m.shape))
        return (None, grad_y1, *grads)


def central_tensor_product(mats: Sequence[Tensor], lmax_out: int, channels: int, y1: Tensor,
                           ms: Sequence[Optional[Tensor]]) -> List[Tensor]:
    r"""Tensor product of the mixtures ``ms`` with the central harmonics.

    Args:
        mats: per input degree, ``(4 D_out, (2 l_i + 1) P_i)`` matrices (rows
            ``f * D_out + d``, ``f = 0`` for :math:`Y_0`, ``1..3`` for ``y1``).
        lmax_out: largest output degree.
        channels: output channels ``C``.
        y1: ``(3, N)`` :math:`\sqrt 3\,\mathbf S^T`.
        ms: per input degree ``((2 l_i + 1), P_i C, N)`` or ``None``.

    Returns:
        Per output degree ``(2 l_o + 1, C, N)``.
    """
    return list(_CentralTP.apply((list(mats), int(lmax_out), int(channels)), y1, *ms))
