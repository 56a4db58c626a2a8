r"""Circular (periodic) padding of the last two dimensions with a lean backward.

:func:`torch.nn.functional.pad` with ``mode="circular"`` zero-fills and
accumulates the whole padded gradient in its backward; here the backward is one
crop plus eight strip additions, written with differentiable operations so
that double backward (training on the field) still works.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["circular_pad"]


def _pad(x: Tensor, p: int) -> Tensor:
    H, W = x.shape[-2], x.shape[-1]
    out = x.new_empty(x.shape[:-2] + (H + 2 * p, W + 2 * p))
    out[..., p:H + p, p:W + p] = x
    out[..., :p, p:W + p] = x[..., H - p:, :]
    out[..., H + p:, p:W + p] = x[..., :p, :]
    out[..., :, :p] = out[..., :, W:W + p]
    out[..., :, W + p:] = out[..., :, p:2 * p]
    return out


def _fold(g: Tensor, p: int) -> Tensor:
    H, W = g.shape[-2] - 2 * p, g.shape[-1] - 2 * p
    r = g[..., p:H + p, p:W + p].clone()
    r[..., :p, :] += g[..., H + p:, p:W + p]
    r[..., H - p:, :] += g[..., :p, p:W + p]
    r[..., :, :p] += g[..., p:H + p, W + p:]
    r[..., :, W - p:] += g[..., p:H + p, :p]
    r[..., :p, :p] += g[..., H + p:, W + p:]
    r[..., :p, W - p:] += g[..., H + p:, :p]
    r[..., H - p:, :p] += g[..., :p, W + p:]
    r[..., H - p:, W - p:] += g[..., :p, :p]
    return r


class _CircularPad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, p: int) -> Tensor:
        ctx.p = p
        return _pad(x, p)

    @staticmethod
    def backward(ctx, g: Tensor):
        return _CircularFold.apply(g, ctx.p), None


class _CircularFold(torch.autograd.Function):
    @staticmethod
    def forward(ctx, g: Tensor, p: int) -> Tensor:
        ctx.p = p
        return _fold(g, p)

    @staticmethod
    def backward(ctx, gr: Tensor):
        return _CircularPad.apply(gr, ctx.p), None


def circular_pad(x: Tensor, p: int) -> Tensor:
    """Pad the last two dimensions of ``x`` by ``p`` periodically (``p`` <= their sizes).

    Args:
        x: tensor ``(..., H, W)``.
        p: padding width on every side.

    Returns:
        ``(..., H + 2p, W + 2p)`` tensor (``x`` itself for ``p = 0``).

    Raises:
        ValueError: if ``p`` exceeds ``H`` or ``W``.
    """
    if p == 0:
        return x
    if p > min(x.shape[-2], x.shape[-1]):
        raise ValueError(f"circular padding {p} exceeds the grid {tuple(x.shape[-2:])}")
    return _CircularPad.apply(x, int(p))
