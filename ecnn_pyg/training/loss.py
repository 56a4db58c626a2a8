"""The training loss: ``MSE(B) + energy_weight * MSE(E / N)``."""
from __future__ import annotations

from typing import Union

import torch
from torch import Tensor

__all__ = ["field_energy_loss"]


def field_energy_loss(field_pred: Tensor, field: Tensor, energy_pred: Tensor, energy: Tensor,
                      n_sites: Union[Tensor, float], energy_weight: float = 0.0) -> Tensor:
    """Mean squared field error plus ``energy_weight`` times that of the energy per site.

    Args:
        field_pred: predicted fields (any shape matching ``field``).
        field: target fields; the mean runs over every component.
        energy_pred: predicted energies ``(B,)``.
        energy: target energies ``(B,)`` (ignored when ``energy_weight`` is 0).
        n_sites: sites per configuration (a number or ``(B,)``).
        energy_weight: weight of the energy term; 0 for the field-only protocol.

    Returns:
        The scalar loss.
    """
    loss = torch.mean((field_pred - field) ** 2)
    if energy_weight:
        loss = loss + energy_weight * torch.mean(((energy_pred - energy) / n_sites) ** 2)
    return loss
