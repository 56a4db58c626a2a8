"""Spin configurations: validation, reshaping and random sampling.

Spin arrays are ``(n_samples, n_sites, 3)``; for an ``L1 x L2`` supercell
``(n_samples, L1, L2, 3)`` is the same data reshaped (site ``i1 * L2 + i2``).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = ["SpinError", "as_spin_batch", "random_spins", "ferromagnet"]


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
