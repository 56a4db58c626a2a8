"""Predictions and error metrics of a model on arrays of configurations or on training parts."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import keys as K
from ..metrics import ErrorAccumulator
from .data import GraphBatcher, TrainingPart
from .loss import field_energy_loss

__all__ = ["evaluate_arrays", "evaluate_parts"]


def evaluate_arrays(model, graph, spin: torch.Tensor, field: Optional[torch.Tensor] = None,
                    energy: Optional[torch.Tensor] = None, batch_size: int = 8,
                    energy_weight: float = 0.0, progress: bool = False,
                    accumulator: Optional[ErrorAccumulator] = None,
                    weights: Optional[torch.Tensor] = None) -> Dict[str, Any]:
    """Predict energies and fields of ``spin`` ``(n, N, 3)`` on ``graph``.

    The model runs in eval mode in its own dtype (the spins are cast to it),
    ``batch_size`` configurations at a time; its training mode is restored.

    Args:
        model: the model (``model(batch, spins, compute_field=True, training=False)``).
        graph: the lattice graph of the ``N`` sites.
        spin: spins ``(n, N, 3)``.
        field: target fields ``(n, N, 3)``, to score the predictions.
        energy: target energies ``(n,)`` (with ``field``).
        batch_size: configurations per forward pass.
        energy_weight: weight of the energy term in the reported loss.
        progress: show a progress bar.
        accumulator: an :class:`~ecnn_pyg.metrics.ErrorAccumulator` that also
            receives the errors (to pool several calls).
        weights: per-configuration weights ``(n,)`` of the reported loss (training
            ``weight_by_energy``); the RMSEs are unweighted.

    Returns:
        ``{"energy": (n,), "field": (n, N, 3)}`` (float64 numpy) and, when
        ``field`` is given, the metrics of
        :class:`~ecnn_pyg.metrics.ErrorAccumulator` under ``"metrics"`` (of
        these samples only).

    Raises:
        ValueError: if ``batch_size`` is not a positive integer.
    """
    if isinstance(batch_size, bool) or not hasattr(batch_size, "__index__") or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    dtype = next(model.parameters()).dtype
    batcher = GraphBatcher(graph)
    n, n_sites = spin.shape[0], spin.shape[1]
    acc = ErrorAccumulator()
    energies, fields = [], []
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(range(0, n, batch_size), disable=not progress, leave=False,
                          desc="evaluate"):
            sl = slice(start, start + batch_size)
            s = spin[sl].to(dtype)
            b = batcher(s)
            out = model(b, b[K.SPIN], compute_field=True, training=False)
            pe, pf = out[K.ENERGY].detach(), out[K.FIELD].detach().view(s.shape)
            energies.append(pe.double().numpy())
            fields.append(pf.double().numpy())
            if field is not None:
                f = field[sl].to(dtype)
                e = energy[sl].to(dtype) if energy is not None else torch.full_like(pe, float("nan"))
                nn_ = torch.full_like(pe, float(n_sites))
                loss = field_energy_loss(pf, f, pe, e, nn_, energy_weight,
                                         weights=None if weights is None else weights[sl])
                for a in (acc, accumulator):
                    if a is not None:
                        a.update(pf.reshape(-1, 3), f.reshape(-1, 3), s.reshape(-1, 3), pe, e,
                                 nn_, float(loss.detach()))
    finally:
        model.train(was_training)
    res = {K.ENERGY: np.concatenate(energies) if energies else np.zeros(0),
           K.FIELD: np.concatenate(fields) if fields else np.zeros((0, n_sites, 3))}
    if field is not None:
        res["metrics"] = acc.compute()
    return res


def evaluate_parts(model, parts: Sequence[TrainingPart], split: str, batch_size: int = 8,
                   energy_weight: float = 0.0) -> Dict[str, Any]:
    """:func:`evaluate_arrays` over the ``split`` (``"train"`` or ``"val"``) of several parts.

    Args:
        model: the model.
        parts: the :class:`~ecnn_pyg.training.data.TrainingPart` objects.
        split: ``"train"`` or ``"val"``.
        batch_size: configurations per forward pass.
        energy_weight: weight of the energy term in the reported loss.

    Returns:
        ``{"metrics": ...}`` of all samples together (squared errors pooled
        over the parts) and ``"parts"``: the per-part results of
        :func:`evaluate_arrays` (``None`` for a part without samples).
    """
    acc = ErrorAccumulator()
    per_part = []
    for part in parts:
        arr = getattr(part, split)
        if arr[K.ENERGY].shape[0] == 0:
            per_part.append(None)
            continue
        t = torch.as_tensor
        per_part.append(evaluate_arrays(model, part.graph, t(arr[K.SPIN]), t(arr[K.FIELD]),
                                        t(arr[K.ENERGY]), batch_size=batch_size,
                                        energy_weight=energy_weight, accumulator=acc,
                                        weights=getattr(part, f"{split}_weight")))
    return {"metrics": acc.compute(), "parts": per_part}
