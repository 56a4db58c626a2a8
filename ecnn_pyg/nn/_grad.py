r"""The effective field :math:`\mathbf B_r = -\partial E / \partial \mathbf S_r`."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["compute_field"]


def compute_field(energy: Tensor, spin: Tensor, training: bool = False) -> Tensor:
    """``-dE/dS`` by :func:`torch.autograd.grad` (the full 3-vector, not projected).

    Args:
        energy: energies (any shape; their sum is differentiated).
        spin: ``(N, 3)`` spins that ``energy`` was computed from (requires grad).
        training: keep the graph (``create_graph``) so a loss on the field can
            be back-propagated to the parameters.
    """
    (grad,) = torch.autograd.grad([energy.sum()], [spin], create_graph=training,
                                  retain_graph=training)
    return -grad
