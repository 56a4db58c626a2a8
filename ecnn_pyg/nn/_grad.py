r"""The effective field :math:`\mathbf B_r = -\partial E / \partial \mathbf S_r`."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["compute_field", "energy_outputs"]


def compute_field(energy: Tensor, spin: Tensor, training: bool = False) -> Tensor:
    r"""``-dE/dS`` by :func:`torch.autograd.grad` (the full 3-vector, not projected).

    Args:
        energy: energies (any shape; their sum is differentiated).
        spin: ``(N, 3)`` spins that ``energy`` was computed from (requires grad).
        training: keep the graph (``create_graph``) so a loss on the field can
            be back-propagated to the parameters.

    Returns:
        ``(N, 3)`` tensor :math:`-\partial E/\partial\mathbf S`.
    """
    (grad,) = torch.autograd.grad([energy.sum()], [spin], create_graph=training,
                                  retain_graph=training)
    return -grad


def energy_outputs(local: Tensor, batch: Tensor, num_graphs: int, spin: Tensor,
                   with_field: bool, training: bool, scale: float = 1.0,
                   shift: float = 0.0) -> dict:
    """``{"energy", "local_energy"[, "field"]}`` from local energies ``(N,)``.

    Local energies are mapped to ``scale * eps + shift``, summed per graph of
    ``batch``, and the field is ``-dE/dS`` (:func:`compute_field`).

    Args:
        local: ``(N,)`` local energies computed from ``spin``.
        batch: ``(N,)`` graph index of each node.
        num_graphs: number of graphs in the batch.
        spin: ``(N, 3)`` spins (requires grad when ``with_field``).
        with_field: also compute ``"field"``.
        training: keep the autograd graph of the field (see :func:`compute_field`).
        scale: factor ``a`` of ``a * eps + b``.
        shift: offset ``b`` of ``a * eps + b``.

    Returns:
        ``{"energy": (num_graphs,), "local_energy": (N,)[, "field": (N, 3)]}``.
    """
    from .. import keys as K
    if scale != 1.0 or shift != 0.0:
        local = local * scale + shift
    energy = torch.zeros(num_graphs, dtype=local.dtype, device=local.device)
    energy = energy.index_add(0, batch.to(local.device), local)
    out = {K.ENERGY: energy, K.LOCAL_ENERGY: local}
    if with_field:
        out[K.FIELD] = compute_field(energy, spin, training)
    return out
