"""The training loss: ``MSE(B) + energy_weight * MSE(E / N)``, optionally weighted per sample."""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

__all__ = ["field_energy_loss"]


def field_energy_loss(field_pred: Tensor, field: Tensor, energy_pred: Tensor, energy: Tensor,
                      n_sites: Union[Tensor, float], energy_weight: float = 0.0,
                      weights: Optional[Tensor] = None) -> Tensor:
    """Mean squared field error plus ``energy_weight`` times that of the energy per site.

    With ``weights`` ``(B,)`` each configuration's squared errors (its field MSE and its
    energy term) count ``w_b`` times: ``mean_b w_b (MSE_b(B) + energy_weight * err_b(E/N)^2)``.
    The mean runs over the batch, not divided by the weights' sum, so that a batch of
    low-weight samples moves the model little (the weights are normalised over the data set).

    Args:
        field_pred: predicted fields (any shape matching ``field``).
        field: target fields; the mean runs over every component.
        energy_pred: predicted energies ``(B,)``.
        energy: target energies ``(B,)`` (ignored when ``energy_weight`` is 0).
        n_sites: sites per configuration (a number or ``(B,)``).
        energy_weight: weight of the energy term; 0 for the field-only protocol.
        weights: per-configuration weights ``(B,)``; ``field`` must then hold the same
            number of components for each configuration (one supercell per batch).

    Returns:
        The scalar loss.
    """
    if weights is None:
        loss = torch.mean((field_pred - field) ** 2)
        if energy_weight:
            loss = loss + energy_weight * torch.mean(((energy_pred - energy) / n_sites) ** 2)
        return loss
    per = torch.mean(((field_pred - field) ** 2).reshape(len(weights), -1), dim=1)
    if energy_weight:
        per = per + energy_weight * ((energy_pred - energy) / n_sites) ** 2
    return torch.mean(weights.to(per.dtype) * per)
