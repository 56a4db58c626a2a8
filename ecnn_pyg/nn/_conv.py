r"""The equivariant spin convolution of Miyazaki (2023), eq. (5)."""
from __future__ import annotations

import math
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter, ParameterList
from torch_geometric.nn import MessagePassing

from ._neighbors import Neighbors
from ._pad import circular_pad
from ._paths import irreps_of, l_slices, paths, tp_matrices
from ._tp import central_tensor_product

__all__ = ["SpinConv"]


class SpinConv(MessagePassing):
    r"""Equivariant spin convolution from `"Equivariant neural networks for spin
    dynamics simulations of itinerant magnets" <https://arxiv.org/abs/2305.03804>`_
    (Miyazaki, 2023), eq. (5):

    .. math::
        \mathbf V'_{r, c_o l_o} = \sum_{l_i, l_f} C^{l_o}_{l_i l_f}\Big(
        \sum_{r' \in N(r)} \sum_{c_i} W^{(l_i l_f l_o)}_{\tau(r, r'), c_o c_i}\,
        \mathbf V_{r', c_i l_i} \;\otimes\; Y_{l_f}(\mathbf S_r)\Big)

    with :math:`N(r) = \{r\} \cup \{r' : t_{rr'} \neq 0\}`, :math:`\tau(r, r')`
    the bond type (the paper) or the bond shell of the bond :math:`r' \to r`
    (its own weight for :math:`r' = r`), :math:`C` real Clebsch-Gordan
    coefficients and :math:`Y_{l_f}` the spherical harmonics of the *central*
    spin, :math:`l_f \in \{0, 1\}`. The neighbours are mixed and summed first
    (messages :math:`W \mathbf V_{r'}`, sum aggregation), then one tensor
    product per site is taken (:meth:`update`), which equals the per-edge form
    because the tensor product is bilinear.

    Features are lists over the degree ``l`` of m-major blocks ``(2l+1, C, N)``
    (see :mod:`ecnn_pyg.nn._paths`).
    :meth:`forward` takes either the edges (``propagate``: messages per edge,
    the reference form) or a :class:`~ecnn_pyg.nn.Neighbors` table (the fused
    form: one gather, or one circular ``conv2d`` on a periodic 2D supercell,
    and one matrix product per input degree).

    Args:
        channels_in (int): input channels per degree.
        channels_out (int): output channels per degree.
        lmax_in (int): largest input degree :math:`l_i`.
        lmax_out (int): largest output degree :math:`l_o`.
        num_weights (int): number of bond weights (bond types or bond shells);
            the site itself has one more.
        lmax_filter (int, optional): largest :math:`l_f` (0 or 1). (default: ``1``)
        spin_parity (int, optional): ``1`` for axial spins (``1e``), ``-1`` for
            the time-reversal encoding (``1o``). (default: ``1``)
        avg_num_neighbors (float, optional): fan-in normalization, the typical
            size of :math:`N(r)`. (default: ``1 + num_weights``)

    Raises:
        ValueError: if ``lmax_filter`` is not 0 or 1, or ``spin_parity`` is
            not 1 or -1.

    Shapes:
        - **input:** features, per degree :math:`(2l+1, C_{in}, N)`, central harmonics
          :math:`\sqrt 3\,\mathbf S^T` :math:`(3, N)`, edges :math:`(2, E)` and
          bond weight ids :math:`(E,)` in ``[0, num_weights)``, or a
          :class:`Neighbors` table with slot weight ids :math:`(K,)`
        - **output:** per degree :math:`(2l+1, C_{out}, N)`
    """

    def __init__(self, channels_in: int, channels_out: int, lmax_in: int, lmax_out: int,
                 num_weights: int, lmax_filter: int = 1, spin_parity: int = 1,
                 avg_num_neighbors: Optional[float] = None):
        super().__init__(aggr="add", node_dim=-1)
        if lmax_filter not in (0, 1):
            raise ValueError(f"lmax_filter must be 0 or 1, got {lmax_filter}")
        if spin_parity not in (1, -1):
            raise ValueError(f"spin_parity must be 1 or -1, got {spin_parity}")
        self.channels_in, self.channels_out = int(channels_in), int(channels_out)
        self.lmax_in, self.lmax_out = int(lmax_in), int(lmax_out)
        self.num_weights, self.lmax_filter = int(num_weights), int(lmax_filter)
        self.spin_parity = int(spin_parity)
        self.avg_num_neighbors = float(avg_num_neighbors or (1 + num_weights))
        self.irreps_in = irreps_of(channels_in, lmax_in, spin_parity)
        self.irreps_out = irreps_of(channels_out, lmax_out, spin_parity)
        self.irreps_sh = irreps_of(1, lmax_filter, spin_parity)
        self.path_list = paths(lmax_in, lmax_out, lmax_filter, spin_parity)
        self.num_paths = sum(len(p) for p in self.path_list)
        self.weight = ParameterList([
            Parameter(torch.empty(1 + self.num_weights, channels_in, len(p) * channels_out))
            for p in self.path_list])
        # float64 masters; cast copies per (dtype, device) are cached (not buffers, so
        # .float() then .double() does not lose precision)
        self._tp64 = [A.reshape(4 * A.shape[1], A.shape[2])
                      for A in tp_matrices(lmax_in, lmax_out, self.path_list)]
        self._tp_cache = {}
        self.weight_norm = 1.0 / math.sqrt(self.channels_in * self.avg_num_neighbors)
        self.reset_parameters()

    def reset_parameters(self):
        """Draw the bond weights from the standard normal distribution."""
        super().reset_parameters()
        for w in self.weight:
            torch.nn.init.normal_(w)

    # ---------------------------------------------------------------- forward
    def forward(self, x: List[Tensor], sh: Tensor, edge_index: Optional[Tensor] = None,
                bond_weight: Optional[Tensor] = None, neighbors: Optional[Neighbors] = None,
                slot_weight: Optional[Tensor] = None) -> List[Tensor]:
        """Convolve ``x`` (see the class docstring); ``neighbors`` selects the fused form.

        Args:
            x: features, per degree a ``(2l+1, C_in, N)`` tensor.
            sh: ``(3, N)`` central harmonics :math:`\sqrt 3\,\mathbf S^T`.
            edge_index: ``(2, E)`` edges ``r' -> r`` (per-edge form).
            bond_weight: ``(E,)`` weight ids in ``[0, num_weights)`` (per-edge form).
            neighbors: neighbour table (fused form; takes precedence).
            slot_weight: ``(K,)`` weight id of every slot of ``neighbors``
                (fused form; 0 is the site's own weight).

        Returns:
            Features, per degree a ``(2l+1, C_out, N)`` tensor.

        Raises:
            ValueError: if the fused form lacks ``slot_weight``, or the
                per-edge form lacks ``edge_index`` or ``bond_weight``.
        """
        if neighbors is not None:
            if slot_weight is None:
                raise ValueError("the fused form needs slot_weight (weight id of every slot)")
            return self.update(self._mix_fused(x, neighbors, slot_weight), sh)
        if edge_index is None or bond_weight is None:
            raise ValueError("SpinConv needs edge_index and bond_weight, or neighbors")
        n = sh.shape[-1]
        loops = torch.arange(n, device=sh.device)
        edge_index = torch.cat([edge_index, torch.stack([loops, loops])], 1)
        weight_id = torch.cat([bond_weight + 1, torch.zeros_like(loops)])
        return self.propagate(edge_index, x=torch.cat(list(x), 0), weight_id=weight_id, sh=sh,
                              size=(n, n))

    def _kernel(self, li: int, weight_id: Tensor) -> Tensor:
        """Weights of input degree ``li`` per slot or edge: ``(K, C_in, P C_out)``."""
        return self.weight[li][weight_id] * self.weight_norm

    def message(self, x_j: Tensor, weight_id: Tensor) -> Tensor:
        """Per-edge mixtures :math:`W_{\tau} \mathbf V_{r'}` (the ``propagate`` form).

        Args:
            x_j: ``(D_in, C_in, E)`` source features, all degrees stacked.
            weight_id: ``(E,)`` weight id of every edge (0 for the self-loops).

        Returns:
            ``(rows, E)`` tensor: for every input degree with paths, its
            ``(2 l_i + 1) * P_i * C_out`` mixture rows.
        """
        out = []
        for li, sl in enumerate(l_slices(self.lmax_in)):
            if self.path_list[li]:
                w = self._kernel(li, weight_id)                       # (E, C_in, P C_out)
                out.append(torch.einsum("mce,ecq->mqe", x_j[sl], w).flatten(0, 1))
        return torch.cat(out, 0)

    def _mix_fused(self, x: List[Tensor], nb: Neighbors,
                   slot_weight: Tensor) -> List[Optional[Tensor]]:
        c_in, n = x[0].shape[1], x[0].shape[2]
        K = nb.num_slots
        out: List[Optional[Tensor]] = []
        if nb.grid is not None:
            L1, L2 = nb.grid
            p = int(nb.offsets.abs().max())
            w_side = 2 * p + 1
            pos = (nb.offsets[:, 0] + p) * w_side + (nb.offsets[:, 1] + p)
            for li, xl in enumerate(x):
                if not self.path_list[li]:
                    out.append(None)
                    continue
                xg = circular_pad(xl.view(-1, c_in, L1, L2), p)
                w = self._kernel(li, slot_weight).permute(2, 1, 0)    # (P C_out, C_in, K)
                ker = w.new_zeros(w.shape[0], c_in, w_side * w_side).index_add(2, pos, w)
                ker = ker.view(w.shape[0], c_in, w_side, w_side)
                out.append(F.conv2d(xg, ker).view(2 * li + 1, -1, n))
            return out
        index = nb.index.reshape(-1)
        for li, xl in enumerate(x):
            if not self.path_list[li]:
                out.append(None)
                continue
            if nb.padded:
                xl = F.pad(xl, (0, 1))
            g = xl.index_select(-1, index).view(2 * li + 1, c_in * K, n)
            w = self._kernel(li, slot_weight).permute(2, 1, 0).reshape(-1, c_in * K)
            out.append(torch.matmul(w, g))                            # (m_i, P C_out, N)
        return out

    def _tp(self, dtype, device) -> List[Tensor]:
        key = (dtype, device)
        if key not in self._tp_cache:
            self._tp_cache[key] = [a.to(device=device, dtype=dtype) for a in self._tp64]
        return self._tp_cache[key]

    def update(self, inputs, sh: Tensor) -> List[Tensor]:
        """Tensor product of the aggregated mixtures with :math:`Y_{l_f}(\\mathbf S_r)`.

        Args:
            inputs: aggregated mixtures: the stacked tensor from ``propagate``,
                or per input degree ``(2 l_i + 1, P_i C_out, N)`` (or ``None``).
            sh: ``(3, N)`` central harmonics :math:`\\sqrt 3\\,\\mathbf S^T`.

        Returns:
            Features, per output degree a ``(2 l_o + 1, C_out, N)`` tensor.
        """
        n = sh.shape[-1]
        c = self.channels_out
        if isinstance(inputs, Tensor):                                # from propagate
            parts, start = [], 0
            for li in range(self.lmax_in + 1):
                rows = (2 * li + 1) * len(self.path_list[li]) * c
                parts.append(inputs[start:start + rows].reshape(2 * li + 1, -1, n)
                             if rows else None)
                start += rows
            inputs = parts
        return central_tensor_product(self._tp(sh.dtype, sh.device), self.lmax_out, c, sh,
                                      inputs)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.irreps_in} -> {self.irreps_out}, "
                f"sh={self.irreps_sh}, paths={self.num_paths}, weights={self.num_weights})")
