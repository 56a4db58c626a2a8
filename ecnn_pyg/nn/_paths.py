r"""Tensor-product paths and their real Clebsch-Gordan matrices.

Features are stored *m-major*, one tensor per degree :math:`l \le l_{max}` of
shape ``(2l+1, C, N)`` (components ``m`` in the e3nn basis, ``C`` channels,
``N`` sites; ``D = (l_max + 1)^2`` components in all). Every mixing and tensor
product is then a matrix product over contiguous blocks with the sites as the
long, contiguous dimension (no reshapes or concatenations).

A path :math:`(l_i, l_f, l_o)` couples an input feature of degree :math:`l_i`
with the spherical harmonic :math:`Y_{l_f}(\mathbf S_r)` of the central spin to
an output of degree :math:`l_o`. With :math:`l_f \le 1` the harmonics are
:math:`Y_0 = 1` and :math:`Y_1 = \sqrt 3\,\mathbf S` (e3nn ``component``
normalization), so the per-site tensor product is

.. math::
    \mathbf V^{out}_r = A_0 \mathbf M_r + \sum_{a=x,y,z} S^a_r A_a \mathbf M_r

with four constant matrices :math:`A_f` built here from
:func:`e3nn.o3.wigner_3j`.
"""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import torch
from e3nn import o3

__all__ = ["irreps_of", "paths", "tp_matrices", "l_slices"]


def irreps_of(channels: int, lmax: int, spin_parity: int = 1) -> o3.Irreps:
    """Irreps ``channels x (0e + 1p + 2e + ...)`` with ``p = spin_parity ** l``.

    Args:
        channels: multiplicity of every degree.
        lmax: largest degree.
        spin_parity: ``1`` (axial spins, ``1e``) or ``-1`` (``1o``).

    Returns:
        The :class:`e3nn.o3.Irreps`.
    """
    return o3.Irreps([(channels, (l, spin_parity ** l)) for l in range(lmax + 1)])


def l_slices(lmax: int) -> List[slice]:
    """Rows of degree ``l`` in the m-major layout.

    Args:
        lmax: largest degree.

    Returns:
        ``[slice(l**2, (l+1)**2) for l in 0..lmax]``.
    """
    return [slice(l * l, (l + 1) * (l + 1)) for l in range(lmax + 1)]


def paths(lmax_in: int, lmax_out: int, lmax_filter: int = 1,
          spin_parity: int = 1) -> List[List[Tuple[int, int]]]:
    r"""Allowed paths grouped by input degree: ``out[l_i] = [(l_f, l_o), ...]``.

    Selection rules: :math:`|l_i - l_f| \le l_o \le l_i + l_f` and parity
    :math:`p^{l_i} p^{l_f} = p^{l_o}` with ``p = spin_parity`` (all paths for
    axial spins ``1e``; only even :math:`l_i + l_f + l_o` for ``1o``).

    Args:
        lmax_in: largest input degree :math:`l_i`.
        lmax_out: largest output degree :math:`l_o`.
        lmax_filter: largest filter degree :math:`l_f` (0 or 1).
        spin_parity: ``1`` (``1e``) or ``-1`` (``1o``).

    Returns:
        For each :math:`l_i = 0..l_{max,in}` the list of allowed ``(l_f, l_o)``.

    Raises:
        NotImplementedError: if ``lmax_filter > 1``.
    """
    if lmax_filter > 1:
        raise NotImplementedError("the fused tensor product supports l_f in {0, 1}")
    out = []
    for li in range(lmax_in + 1):
        out.append([(lf, lo) for lf in range(lmax_filter + 1) for lo in range(lmax_out + 1)
                    if abs(li - lf) <= lo <= li + lf and spin_parity ** (li + lf + lo) == 1])
    return out


def tp_matrices(lmax_in: int, lmax_out: int, path_list: Sequence[Sequence[Tuple[int, int]]],
                dtype=torch.float64) -> List[torch.Tensor]:
    r"""Matrices ``A[l_i]`` of shape ``(4, D_out, (2 l_i + 1) * P_i)``.

    Column ``mi * P_i + p`` is component ``mi`` of path ``p`` of input degree
    ``l_i``; row ``(f, d)`` gives output component ``d`` multiplying
    :math:`Y_0 = 1` (``f = 0``) or :math:`\sqrt3 S^{f-1}` (``f = 1, 2, 3``).
    Coefficients are :math:`\sqrt{2 l_o + 1}\,(l_i\,l_f\,l_o)` Wigner 3j symbols
    (e3nn ``component`` normalization: the ``l_f = 0`` paths are identities),
    divided by the square root of the number of paths into :math:`l_o`.

    Args:
        lmax_in: largest input degree.
        lmax_out: largest output degree.
        path_list: the paths of :func:`paths`.
        dtype: dtype of the result (computed in float64).

    Returns:
        One ``(4, D_out, (2 l_i + 1) * P_i)`` tensor per input degree.
    """
    d_out = (lmax_out + 1) ** 2
    fan = [0] * (lmax_out + 1)
    for pl in path_list:
        for _, lo in pl:
            fan[lo] += 1
    mats = []
    for li, pl in enumerate(path_list):
        P, mi_n = len(pl), 2 * li + 1
        A = torch.zeros(4, d_out, mi_n * P, dtype=torch.float64)
        for p, (lf, lo) in enumerate(pl):
            cg = o3.wigner_3j(li, lf, lo, dtype=torch.float64) * math.sqrt(2 * lo + 1)
            cg = cg / math.sqrt(fan[lo])
            for mi in range(mi_n):
                col = mi * P + p
                if lf == 0:
                    A[0, lo * lo:(lo + 1) ** 2, col] = cg[mi, 0, :]
                else:
                    A[1:4, lo * lo:(lo + 1) ** 2, col] = cg[mi, :, :]
        mats.append(A.to(dtype))
    return mats


def to_e3nn(x: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-degree features ``(2l+1, C, N)`` in e3nn's layout ``(N, irreps.dim)``.

    The irreps are ``irreps_of(C, len(x) - 1, parity)``: for every degree the
    ``C`` channels of ``2l+1`` components each (channel-major), degree after
    degree.

    Args:
        x: features, per degree ``l = 0..lmax`` a ``(2l+1, C, N)`` tensor.

    Returns:
        ``(N, sum_l C (2l+1))`` tensor.
    """
    return torch.cat([xl.permute(2, 1, 0).reshape(xl.shape[2], -1) for xl in x], 1)


def from_e3nn(x: torch.Tensor, channels: int, lmax: int) -> List[torch.Tensor]:
    """Features in e3nn's layout ``(N, irreps.dim)`` as per-degree ``(2l+1, C, N)`` blocks.

    Inverse of :func:`to_e3nn` for ``irreps_of(channels, lmax, parity)``.

    Args:
        x: ``(N, channels * (lmax + 1)**2)`` tensor.
        channels: multiplicity ``C`` of every degree.
        lmax: largest degree.

    Returns:
        Per degree ``l = 0..lmax`` a contiguous ``(2l+1, C, N)`` tensor.

    Raises:
        ValueError: if ``x`` is not ``(N, channels * (lmax + 1)**2)``.
    """
    dim = channels * (lmax + 1) ** 2
    if x.dim() != 2 or x.shape[1] != dim:
        raise ValueError(f"e3nn features of {channels} channels up to l = {lmax} must have "
                         f"shape (N, {dim}), got {tuple(x.shape)}")
    out, start = [], 0
    for l in range(lmax + 1):
        width = channels * (2 * l + 1)
        out.append(x[:, start:start + width].reshape(-1, channels, 2 * l + 1)
                   .permute(2, 1, 0).contiguous())
        start += width
    return out
