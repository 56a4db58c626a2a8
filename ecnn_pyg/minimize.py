r"""Energy minima of classical spin configurations: L-BFGS on unit spins.

The phases of a phase diagram are local minima of

.. math:: E_{tot}(\{\mathbf S\}) = E(\{\mathbf S\}) - \mathbf H \cdot \sum_i \mathbf S_i,

and the transitions between them are where the energies of competing minima cross.
Zero-temperature LLG reaches a minimum only asymptotically (its last steps move slowly
along flat directions); :func:`relax` goes there directly: quasi-Newton L-BFGS (SciPy) on
unconstrained vectors :math:`\mathbf v_i` with :math:`\mathbf S_i = \mathbf v_i/|\mathbf v_i|`,
whose gradient is :math:`-\mathbf B^\perp_i / |\mathbf v_i|` with
:math:`\mathbf B^\perp_i` the part of the total field :math:`\mathbf B_i + \mathbf H`
normal to :math:`\mathbf S_i`. At a minimum the torque :math:`\mathbf S_i \times
(\mathbf B_i + \mathbf H)` vanishes on every site.

The energy and field may come from exact diagonalization
(:meth:`ecnn_pyg.ed.KondoED.energy_field`) or from a model or committee
(:func:`model_energy_field`: its mean energy and field in float64).

    >>> from ecnn_pyg.minimize import relax, model_energy_field
    >>> s_min, n_iter = relax(model_energy_field(model, graph), spins, zeeman=0.008)
"""
from __future__ import annotations

from typing import Callable, Tuple, Union

import numpy as np

__all__ = ["relax", "model_energy_field", "torque"]

EnergyField = Callable[[np.ndarray], Tuple[float, np.ndarray]]


def _zeeman_vector(zeeman) -> np.ndarray:
    h = np.asarray(zeeman, dtype=np.float64)
    if h.ndim == 0:
        h = np.array([0.0, 0.0, float(h)])
    if h.shape != (3,) or not np.all(np.isfinite(h)):
        raise ValueError(f"zeeman must be a finite number (H_z) or a 3-vector (H_x, H_y, H_z), "
                         f"got {zeeman!r}")
    return h


def _unit_spins(spins) -> np.ndarray:
    from .spins import SpinError
    s = np.array(spins, dtype=np.float64)          # a copy: the caller's array is kept
    if s.ndim != 2 or s.shape[1] != 3 or len(s) == 0:
        raise SpinError(f"spins must have shape (N, 3) (one configuration), got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise SpinError("spins contain NaN or inf")
    norm = np.linalg.norm(s, axis=1)
    if np.any(norm < 1e-12):
        raise SpinError(f"spin {int(np.argmin(norm))} has zero length; spins must be nonzero "
                        "vectors (they are normalised)")
    return s / norm[:, None]


def torque(energy_field: EnergyField, spins, zeeman=0.0) -> np.ndarray:
    r"""Per site :math:`|\mathbf S_i \times (\mathbf B_i + \mathbf H)|`: zero at a stationary point."""
    s = _unit_spins(spins)
    _, b = energy_field(s)
    return np.linalg.norm(np.cross(s, np.asarray(b) + _zeeman_vector(zeeman)), axis=1)


def relax(energy_field: EnergyField, spins, zeeman: Union[float, np.ndarray] = 0.0, *,
          gtol: float = 1e-6, maxiter: int = 2000) -> Tuple[np.ndarray, int]:
    r"""The local minimum of :math:`E(\{\mathbf S\}) - \mathbf H \cdot \sum_i \mathbf S_i`
    nearest (downhill) to ``spins``.

    Args:
        energy_field: ``S -> (E, B)`` for one ``(N, 3)`` float64 configuration of unit
            spins: the energy (float, without the Zeeman term) and the field
            :math:`\mathbf B = -\partial E / \partial \mathbf S` ``(N, 3)``.
        spins: ``(N, 3)`` start (nonzero vectors; normalised here).
        zeeman: :math:`H_z` (along z), or the field vector ``(3,)``.
        gtol: stop when every component of the field normal to the spins (the gradient
            on the unit sphere) is below this.
        maxiter: at most this many L-BFGS iterations (in all, restarts included).

    Returns:
        ``(spins, n_iter)``: the relaxed unit spins ``(N, 3)`` float64 and the number of
        L-BFGS iterations.
    """
    import scipy.optimize
    if not (gtol > 0 and np.isfinite(gtol)):
        raise ValueError(f"gtol must be a positive number, got {gtol!r}")
    if int(maxiter) < 1:
        raise ValueError(f"maxiter must be >= 1, got {maxiter!r}")
    h = _zeeman_vector(zeeman)
    start = _unit_spins(spins)
    shape = start.shape

    def fun(x):
        v = x.reshape(shape)
        norm = np.linalg.norm(v, axis=1, keepdims=True)
        s = v / norm
        e, b = energy_field(s)
        b = np.asarray(b, dtype=np.float64) + h
        b_perp = b - (b * s).sum(1, keepdims=True) * s
        return float(e) - float(s.sum(0) @ h), (-b_perp / norm).ravel()

    # The gradient in v is the field normal to S divided by |v|, and every step normal to v
    # lengthens v: far from the start L-BFGS could stop on a small gradient while the torque
    # is not small. It is restarted from the normalised spins until the largest component
    # of the normal field itself is below gtol (or maxiter iterations are spent).
    s, n_iter = start, 0
    while True:
        r = scipy.optimize.minimize(fun, s.ravel(), jac=True, method="L-BFGS-B",
                                    options={"maxiter": int(maxiter) - n_iter, "gtol": gtol,
                                             "ftol": 1e-15, "maxcor": 30})
        v = r.x.reshape(shape)
        s, n_iter = v / np.linalg.norm(v, axis=1, keepdims=True), n_iter + int(r.nit)
        if n_iter >= maxiter or r.nit == 0 or np.abs(fun(s.ravel())[1]).max() <= gtol:
            return s, n_iter


def model_energy_field(model, graph) -> EnergyField:
    """``S -> (E, B)`` of a model or committee on ``graph`` (float64; the committee's mean).

    The model is converted to float64 and evaluation mode (in place, as
    :meth:`torch.nn.Module.double` does) so that L-BFGS sees a smooth energy.
    """
    import torch
    model.double().eval()

    def energy_field(s):
        out = model(graph, torch.from_numpy(np.ascontiguousarray(s, dtype=np.float64)))
        return float(out["energy"].sum().detach()), out["field"].detach().numpy()
    return energy_field
