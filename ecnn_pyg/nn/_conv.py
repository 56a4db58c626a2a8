r"""The equivariant spin convolution of Miyazaki (2023), eq. (5)."""
from __future__ import annotations

import math
from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter, ParameterList
from torch_geometric.nn import MessagePassing

from ._neighbors import Edges, Neighbors
from ._pad import circular_pad
from ._paths import irreps_of, l_slices, paths, tp_matrices
from ._tp import central_tensor_product

__all__ = ["SpinConv", "Adjacency"]

#: The adjacency argument of :class:`SpinConv`: a neighbour table (fused) or an edge list.
Adjacency = Union[Neighbors, Edges]

_INV_SQRT_4PI = 1.0 / math.sqrt(4.0 * math.pi)


class SpinConv(MessagePassing):
    r"""Equivariant spin convolution from `"Equivariant neural networks for spin
    dynamics simulations of itinerant magnets" <https://arxiv.org/abs/2305.03804>`_
    (Miyazaki, 2023), eq. (5):

    .. math::
        \mathbf V'_{r, c_o l_o} = \sum_{l_i, l_f} C^{l_o}_{l_i l_f}\Big(
        \sum_{r' \in N(r)} \sum_{c_i} W^{(l_i l_f l_o)}_{\tau(r, r'), c_o c_i}\,
        \mathbf V_{r', c_i l_i} \;\otimes\; Y_{l_f}(\mathbf S_r)\Big)

    with :math:`N(r)` the neighbourhood of the adjacency (e.g. :math:`\{r\}
    \cup \{r' : t_{rr'} \neq 0\}`), :math:`\tau(r, r')` the weight id of the
    slot or edge (bond type, bond shell, or slot of a fixed neighbourhood),
    :math:`C` real Clebsch-Gordan coefficients and :math:`Y_{l_f}` the
    spherical harmonics of the *central* spin, :math:`l_f \in \{0, 1\}`. The
    neighbours are mixed and summed first (messages :math:`W \mathbf V_{r'}`,
    sum aggregation), then one tensor product per site is taken
    (:meth:`update`), which equals the per-edge form because the tensor
    product is bilinear. It equals ``e3nn.o3.TensorProduct`` of the
    slot-concatenated features with :math:`Y_{0,1}(\mathbf S_r)`, all allowed
    ``"uvw"`` paths, e3nn's default normalizations, when ``avg_num_neighbors``
    is the number of slots (``tests/test_e3nn_equivalence.py``).

    Features are lists over the degree ``l`` of m-major blocks ``(2l+1, C, N)``
    (see :mod:`ecnn_pyg.nn._paths`; :func:`~ecnn_pyg.nn.to_e3nn` and
    :func:`~ecnn_pyg.nn.from_e3nn` convert to and from e3nn's
    ``(N, irreps.dim)``). The adjacency is one argument, as in PyG: a
    :class:`~ecnn_pyg.nn.Neighbors` table selects the fused
    :meth:`message_and_aggregate` (one gather, or one circular ``conv2d`` on a
    periodic 2D supercell, and one matrix product per input degree), an
    :class:`~ecnn_pyg.nn.Edges` list the per-edge ``propagate`` reference
    (:meth:`message`, sum aggregation). Setting ``fuse = False`` (PyG's flag)
    sends a table through ``propagate`` too.

    Args:
        channels_in (int): input channels per degree.
        channels_out (int): output channels per degree.
        lmax_in (int): largest input degree :math:`l_i`.
        lmax_out (int): largest output degree :math:`l_o`.
        num_weights (int): number of neighbour weights (bond types, bond
            shells, or slots); the site itself has one more (weight id 0).
        lmax_filter (int, optional): largest :math:`l_f` (0 or 1). (default: ``1``)
        spin_parity (int, optional): ``1`` for axial spins (``1e``), ``-1`` for
            the time-reversal encoding (``1o``). (default: ``1``)
        avg_num_neighbors (float, optional): fan-in normalization, the typical
            size of :math:`N(r)`. (default: ``1 + num_weights``)
        sh_normalization (str, optional): normalization of the central
            harmonics :math:`Y_{l_f}(\mathbf S_r)`: ``"component"``
            (:math:`Y_0 = 1`, :math:`Y_1 = \sqrt 3\,\mathbf S`) or
            ``"integral"`` (both divided by :math:`\sqrt{4\pi}`, e3nn's default
            and the published code's). (default: ``"component"``)

    Raises:
        ValueError: if ``lmax_filter`` is not 0 or 1, ``spin_parity`` is not 1
            or -1, or ``sh_normalization`` is unknown.

    Shapes:
        - **input:** features, per degree :math:`(2l+1, C_{in}, N)`; central
          harmonics :math:`\sqrt 3\,\mathbf S^T` :math:`(3, N)`; adjacency: a
          :class:`Neighbors` table with weight ids :math:`(K,)` in
          ``[0, num_weights]``, or :class:`Edges` :math:`(2, E)`, :math:`(E,)`
        - **output:** per degree :math:`(2l+1, C_{out}, N)`
    """

    def __init__(self, channels_in: int, channels_out: int, lmax_in: int, lmax_out: int,
                 num_weights: int, lmax_filter: int = 1, spin_parity: int = 1,
                 avg_num_neighbors: Optional[float] = None,
                 sh_normalization: str = "component"):
        super().__init__(aggr="add", node_dim=-1)
        if lmax_filter not in (0, 1):
            raise ValueError(f"lmax_filter must be 0 or 1, got {lmax_filter}")
        if spin_parity not in (1, -1):
            raise ValueError(f"spin_parity must be 1 or -1, got {spin_parity}")
        if sh_normalization not in ("component", "integral"):
            raise ValueError(f"sh_normalization must be 'component' or 'integral', "
                             f"got {sh_normalization!r}")
        self.channels_in, self.channels_out = int(channels_in), int(channels_out)
        self.lmax_in, self.lmax_out = int(lmax_in), int(lmax_out)
        self.num_weights, self.lmax_filter = int(num_weights), int(lmax_filter)
        self.spin_parity = int(spin_parity)
        self.sh_normalization = sh_normalization
        self.avg_num_neighbors = float(avg_num_neighbors or (1 + num_weights))
        self.irreps_in = irreps_of(channels_in, lmax_in, spin_parity)
        self.irreps_out = irreps_of(channels_out, lmax_out, spin_parity)
        self.irreps_filter = irreps_of(1, lmax_filter, spin_parity)
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
        if sh_normalization == "integral":     # Y_0 and Y_1 both scale by 1/sqrt(4 pi)
            self.weight_norm *= _INV_SQRT_4PI
        self.reset_parameters()

    def reset_parameters(self):
        """Draw the neighbour weights from the standard normal distribution."""
        super().reset_parameters()
        for w in self.weight:
            torch.nn.init.normal_(w)

    # ---------------------------------------------------------------- forward
    def forward(self, x: List[Tensor], spin_y1: Tensor, adj: Adjacency) -> List[Tensor]:
        r"""Convolve ``x`` (see the class docstring).

        Args:
            x: features, per degree a ``(2l+1, C_in, N)`` tensor.
            spin_y1: ``(3, N)`` degree-1 harmonics of the central spins,
                :math:`\sqrt 3\,\mathbf S^T` (component normalization).
            adj: the adjacency: a :class:`Neighbors` table (fused
                :meth:`message_and_aggregate`) or :class:`Edges` (per-edge
                ``propagate``).

        Returns:
            Features, per degree a ``(2l+1, C_out, N)`` tensor.

        Raises:
            TypeError: if ``adj`` is neither a :class:`Neighbors` nor :class:`Edges`.
        """
        if isinstance(adj, Neighbors):
            if self.fuse:
                return self.update(self.message_and_aggregate(adj, x), spin_y1)
            adj = adj.to_edges()
        if not isinstance(adj, Edges):
            raise TypeError(f"SpinConv needs a Neighbors table or Edges as adjacency, got "
                            f"{type(adj).__name__}")
        n = spin_y1.shape[-1]
        return self.propagate(adj.edge_index, x=torch.cat(list(x), 0), weight_id=adj.weight,
                              spin_y1=spin_y1, size=(n, n))

    def _kernel(self, li: int, weight_id: Tensor) -> Tensor:
        """Weights of input degree ``li`` per slot or edge: ``(K, C_in, P C_out)``."""
        return self.weight[li][weight_id] * self.weight_norm

    def message(self, x_j: Tensor, weight_id: Tensor) -> Tensor:
        r"""Per-edge mixtures :math:`W_{\tau} \mathbf V_{r'}` (the ``propagate`` form).

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

    def message_and_aggregate(self, adj: Neighbors, x: List[Tensor]) -> List[Optional[Tensor]]:
        r"""Fused gather, mix and sum over the slots of a neighbour table.

        Equals :meth:`message` followed by sum aggregation over the edges of
        ``adj.to_edges()``, in one circular ``conv2d`` (``adj.grid`` set) or
        one gather and matrix product per input degree.

        Args:
            adj: the :class:`Neighbors` table (its ``weight`` gives every
                slot's weight id).
            x: features, per degree a ``(2l+1, C_in, N)`` tensor.

        Returns:
            Per input degree the mixtures ``(2 l_i + 1, P_i C_out, N)``, or
            ``None`` for a degree without paths.
        """
        c_in, n = x[0].shape[1], x[0].shape[2]
        K = adj.num_slots
        slot_weight = adj.weight
        out: List[Optional[Tensor]] = []
        if adj.grid is not None:
            L1, L2 = adj.grid
            p = int(adj.offsets.abs().max())
            w_side = 2 * p + 1
            pos = (adj.offsets[:, 0] + p) * w_side + (adj.offsets[:, 1] + p)
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
        index = adj.index.reshape(-1)
        for li, xl in enumerate(x):
            if not self.path_list[li]:
                out.append(None)
                continue
            if adj.padded:
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

    def update(self, inputs, spin_y1: Tensor) -> List[Tensor]:
        r"""Tensor product of the aggregated mixtures with :math:`Y_{l_f}(\mathbf S_r)`.

        Args:
            inputs: aggregated mixtures: the stacked tensor from ``propagate``,
                or per input degree ``(2 l_i + 1, P_i C_out, N)`` (or ``None``)
                from :meth:`message_and_aggregate`.
            spin_y1: ``(3, N)`` central harmonics :math:`\sqrt 3\,\mathbf S^T`.

        Returns:
            Features, per output degree a ``(2 l_o + 1, C_out, N)`` tensor.
        """
        n = spin_y1.shape[-1]
        c = self.channels_out
        if isinstance(inputs, Tensor):                                # from propagate
            parts, start = [], 0
            for li in range(self.lmax_in + 1):
                rows = (2 * li + 1) * len(self.path_list[li]) * c
                parts.append(inputs[start:start + rows].reshape(2 * li + 1, -1, n)
                             if rows else None)
                start += rows
            inputs = parts
        return central_tensor_product(self._tp(spin_y1.dtype, spin_y1.device), self.lmax_out, c,
                                      spin_y1, inputs)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.irreps_in} -> {self.irreps_out}, "
                f"filter={self.irreps_filter}, paths={self.num_paths}, "
                f"weights={self.num_weights})")
