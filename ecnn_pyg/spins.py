"""Spin configurations: validation, reshaping and random sampling.

Spin arrays are ``(n_samples, n_sites, 3)``; for an ``L1 x L2`` supercell
``(n_samples, L1, L2, 3)`` is the same data reshaped (site ``i1 * L2 + i2``).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = ["SpinError", "as_spin_batch", "random_spins", "ferromagnet", "triple_q"]


class SpinError(ValueError):
    """Spins of the wrong shape, not finite or not of unit length."""


def as_spin_batch(spins, n_sites: int, lattice_shape: Optional[Sequence[int]] = None,
                  tol: float = 1e-5, normalize: bool = False) -> Tuple[np.ndarray, bool]:
    """Validate spins and return them as ``(n, n_sites, 3)`` float64.

    Accepted shapes: ``(n_sites, 3)``, ``(n, n_sites, 3)``, and the same with the
    site axis written as the supercell shape ``lattice_shape`` (e.g.
    ``(L1, L2, 3)`` or ``(n, L1, L2, 3)``).

    Args:
        spins: array-like of spins.
        n_sites: number of sites of the lattice.
        lattice_shape: supercell shape whose product is ``n_sites`` (optional).
        tol: allowed deviation of ``|S|`` from 1.
        normalize: rescale to unit length instead of checking it.

    Returns:
        ``(batch, single)``: the ``(n, n_sites, 3)`` array and whether a single
        configuration was given.

    Raises:
        SpinError: with the expected shape, or the offending site, in the message.
    """
    s = np.asarray(spins, dtype=np.float64)
    expected = f"(n_sites={n_sites}, 3) or (n_samples, {n_sites}, 3)"
    shapes = [(n_sites,)]
    if lattice_shape is not None and tuple(lattice_shape) != (n_sites,):
        shape = tuple(int(x) for x in lattice_shape)
        shapes.append(shape)
        expected += f", or with the sites as {shape}"
    if s.ndim < 2 or s.shape[-1] != 3:
        raise SpinError(f"spins must have shape {expected}; got {s.shape}")
    single = None
    for shape in shapes:
        k = len(shape)
        if s.shape[-1 - k:-1] == shape and s.ndim in (k + 1, k + 2):
            single = s.ndim == k + 1
            break
    if single is None:
        raise SpinError(f"spins of shape {s.shape} do not fit a lattice of {n_sites} sites: "
                        f"expected {expected}")
    s = s.reshape(-1, n_sites, 3)
    bad = ~np.isfinite(s).all(axis=-1)
    if bad.any():
        n, i = np.argwhere(bad)[0]
        raise SpinError(f"spins contain NaN or inf (sample {n}, site {i})")
    norm = np.linalg.norm(s, axis=-1)
    if normalize:
        if (norm == 0).any():
            raise SpinError("a spin of zero length cannot be normalized")
        s = s / norm[..., None]
    elif np.abs(norm - 1).max() > tol:
        n, i = np.unravel_index(np.argmax(np.abs(norm - 1)), norm.shape)
        raise SpinError(f"spins must be unit vectors (|S| = 1 within {tol}); sample {n} site {i} "
                        f"has |S| = {norm[n, i]:.6g}")
    return s, single


def random_spins(n_sites: int, rng: np.random.Generator, n: Optional[int] = None) -> np.ndarray:
    """Spins drawn uniformly on the unit sphere.

    Args:
        n_sites: number of sites.
        rng: random generator.
        n: number of configurations; ``None`` for a single one.

    Returns:
        ``(n_sites, 3)`` if ``n`` is ``None``, else ``(n, n_sites, 3)``.
    """
    shape = (n_sites, 3) if n is None else (n, n_sites, 3)
    v = rng.standard_normal(shape)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def ferromagnet(n_sites: int, direction=(0.0, 0.0, 1.0)) -> np.ndarray:
    """All spins along ``direction`` (normalized).

    Args:
        n_sites: number of sites.
        direction: 3-vector, normalized to unit length.

    Returns:
        ``(n_sites, 3)`` array.
    """
    d = np.asarray(direction, float)
    return np.tile(d / np.linalg.norm(d), (n_sites, 1))


def triple_q(positions, q: float = np.pi / 3, m: float = 0.0, phase: float = 0.0,
             kind: str = "neel") -> np.ndarray:
    r"""Triple-Q skyrmion-crystal ansatz on a 2D lattice (a starting state for LLG).

    .. math::
        \mathbf S_r \propto \sum_{i=1}^{3} \sin(\mathbf Q_i\cdot\mathbf r + \phi)\,\hat{\mathbf e}_i
        + \Big(m - \sum_{i=1}^{3}\cos(\mathbf Q_i\cdot\mathbf r + \phi)\Big)\hat{\mathbf z},

    with :math:`\hat{\mathbf e}_i = \hat{\mathbf Q}_i` (``kind="neel"``) or
    :math:`\hat{\mathbf z}\times\hat{\mathbf Q}_i` (``kind="bloch"``; the Kondo model has
    full spin-rotation symmetry, so both have the same electronic energy), and :math:`\mathbf Q_i = q(\cos\theta_i, \sin\theta_i, 0)`, :math:`\theta_i = 0, 2\pi/3,
    4\pi/3`. For :math:`-1.5 < m < 3` every triangle of the three waves holds one
    skyrmion whose core (at :math:`\mathbf Q_i\cdot\mathbf r + \phi = 0`) points down in a
    background along :math:`+z`: topological charge :math:`-1` per magnetic unit cell
    (the package's sign convention, :func:`~ecnn_pyg.observables.topological_charge`).
    With the default :math:`q = \pi/3` on the triangular lattice (:math:`\mathbf a_1 =
    (1, 0)`) this is the period-6 triple-Q state of the paper's protocol, whose
    magnetic unit cell holds 48 sites; it is periodic on supercells with sides that
    are multiples of 6 (use multiples of 12 to fit whole magnetic cells).

    Args:
        positions: ``(N, 2)`` (or ``(N, 3)``, the first two columns are used) site
            positions, or a graph with ``pos``.
        q: length of the three wave vectors (in units of 1 / lattice constant).
        m: uniform :math:`z` offset (larger: smaller skyrmions, larger magnetization).
        phase: common phase :math:`\phi` of the three waves (shifts the cores).
        kind: ``"neel"`` or ``"bloch"`` helicity.

    Returns:
        ``(N, 3)`` float64 unit spins.

    Raises:
        ValueError: if the positions are not ``(N, >=2)`` finite numbers, or
            ``kind`` is unknown.
    """
    if kind not in ("neel", "bloch"):
        raise ValueError(f"kind must be 'neel' or 'bloch', got {kind!r}")
    pos = getattr(positions, "pos", positions)
    pos = np.asarray(pos.detach().cpu() if hasattr(pos, "detach") else pos, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] < 2 or not np.isfinite(pos).all():
        raise ValueError(f"positions must be a finite (N, 2) array, got shape {pos.shape}")
    v = np.zeros((len(pos), 3))
    v[:, 2] = m
    for theta in (0.0, 2 * np.pi / 3, 4 * np.pi / 3):
        qhat = np.array([np.cos(theta), np.sin(theta)])
        ehat = qhat if kind == "neel" else np.array([-qhat[1], qhat[0]])
        arg = q * (pos[:, :2] @ qhat) + phase
        v[:, :2] += np.sin(arg)[:, None] * ehat
        v[:, 2] -= np.cos(arg)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    if (norm < 1e-12).any():
        raise ValueError(f"the ansatz vanishes at some site for m={m}, phase={phase}; "
                         "change m or phase")
    return v / norm
