"""Spin configurations: the one validation helper, reshaping and random sampling.

The one spin-shape convention of the package (every command and function
that takes spins follows it, through :func:`as_spin_batch`): spins are
``(n_sites, 3)`` (one configuration) or ``(n_configs, n_sites, 3)``, where
``n_sites = L1 * L2 * sites_per_cell`` for the supercell size of the lattice
(given, never guessed from the array), site index
``(i1 * L2 + i2) * sites_per_cell + b``. The site axis may also be written as
the supercell shape :func:`supercell_shape`: ``(L1, L2)`` for one site per
cell, ``(L1, L2, sites_per_cell)`` otherwise (e.g. ``(n, L1, L2, 3)``).
Every part of the package checks spins here: :func:`check_spins` for torch
tensors ``(N, 3)`` / ``(R, N, 3)`` (dynamics, observables, plots) and
:func:`as_spin_batch` for numpy batches (exact diagonalization, data
generation); both raise :class:`SpinError` with the same messages.
:func:`random_spins` is the package's one sampler of random unit spins.
"""
from __future__ import annotations

import math
import sys
from typing import Optional, Sequence, Tuple

import numpy as np

# torch is imported where a function needs it: the numpy path (exact diagonalization,
# the command line's checks of spin files) runs without loading it


def _is_tensor(x) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch: none exists before it is)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)

__all__ = ["SpinError", "check_spins", "as_spin_batch", "supercell_shape", "load_spin_file",
           "random_spins", "ferromagnet", "triple_q"]


class SpinError(ValueError):
    """Spins of the wrong shape, not finite or not of unit length."""


def _check_values(s, tol: float, name: str, normalize: bool = False):
    """Finite, unit-length spins ``(..., 3)`` (numpy or torch); errors name the first bad spin.

    Returns ``s``, divided by its lengths when ``normalize`` (then ``tol`` is not used).
    """
    xp_torch = _is_tensor(s)
    if xp_torch:
        import torch

    def where(mask):
        idx = (torch.nonzero(mask)[0].tolist() if xp_torch else np.argwhere(mask)[0].tolist())
        return (f"sample {idx[0]}, site {idx[1]}" if len(idx) == 2 else f"site {idx[0]}") \
            if idx else "the spin"

    finite = torch.isfinite(s).all(dim=-1) if xp_torch else np.isfinite(s).all(axis=-1)
    if not bool(finite.all()):
        raise SpinError(f"{name} contain NaN or inf ({where(~finite)})")
    norm = s.norm(dim=-1) if xp_torch else np.linalg.norm(s, axis=-1)
    if normalize:
        if bool((norm == 0).any()):
            raise SpinError(f"{name}: a spin of zero length ({where(norm == 0)}) cannot be "
                            "normalized")
        return s / norm[..., None]
    if math.isfinite(tol):
        dev = (norm - 1).abs() if xp_torch else np.abs(norm - 1)
        if bool((dev > tol).any()):
            worst = dev == dev.max()
            value = float(norm[worst].reshape(-1)[0])
            raise SpinError(f"{name} must be unit vectors (|S| = 1 within {tol:.1g}); "
                            f"{where(worst)} has |S| = {value:.6g} (normalize them first)")
    return s


def check_spins(spins, tol: Optional[float] = None, name: str = "spins",
                n_sites: Optional[int] = None) -> torch.Tensor:
    r"""Check that ``spins`` is a floating tensor ``(N, 3)`` or ``(R, N, 3)`` of finite unit vectors.

    Args:
        spins: torch tensor (numpy arrays are accepted and converted).
        tol: allowed deviation of :math:`|\mathbf S|` from 1 (default ``1e-4`` for
            float32 and lower precisions, ``1e-8`` for float64); ``float("inf")`` skips
            the norm check.
        name: how the spins are called in the error message.
        n_sites: the number of sites ``N`` the spins must have (``None``: any).

    Returns:
        The spins as a tensor (the input itself when it is one).

    Raises:
        SpinError: saying what is wrong: not a tensor, the shape, an integer
            dtype, empty, NaN/inf, a spin of the wrong length (with its index),
            or the wrong number of sites.
    """
    import torch
    if isinstance(spins, np.ndarray):
        spins = torch.from_numpy(spins)
    if not isinstance(spins, torch.Tensor):
        raise SpinError(f"{name} must be a torch tensor of shape (N, 3) or (R, N, 3), "
                        f"got {type(spins).__name__}")
    if spins.ndim not in (2, 3) or spins.shape[-1] != 3:
        raise SpinError(f"{name} must have shape (N, 3) or (R, N, 3) (replicas, sites, "
                        f"components), got {tuple(spins.shape)}")
    if not spins.is_floating_point():
        raise SpinError(f"{name} must be a floating tensor (float32 or float64), got {spins.dtype}")
    if spins.numel() == 0:
        raise SpinError(f"{name} is empty (shape {tuple(spins.shape)})")
    if n_sites is not None and spins.shape[-2] != n_sites:
        raise SpinError(f"{name} have {spins.shape[-2]} sites but the graph has {n_sites}")
    if tol is None:
        tol = 1e-8 if spins.dtype == torch.float64 else 1e-4
    return _check_values(spins, tol, name)


def supercell_shape(graph) -> Optional[Tuple[int, ...]]:
    """The shape the site axis of spins may take on ``graph``: ``(L1, L2[, sites_per_cell])``.

    Args:
        graph: a lattice graph (with ``size``, as :func:`ecnn_pyg.lattice_graph` makes).

    Returns:
        The supercell size, followed by the number of sites per cell when it
        is more than one; ``None`` for a graph without ``size``.
    """
    if "size" not in graph:
        return None
    size = graph["size"]
    shape = tuple(int(x) for x in size.view(-1))
    n_cells = int(np.prod(shape))
    nb = int(graph.num_nodes) // n_cells if n_cells else 0
    return shape + (nb,) if nb > 1 else shape


def as_spin_batch(spins, n_sites: int, lattice_shape: Optional[Sequence[int]] = None,
                  tol: float = 1e-5, normalize: bool = False) -> Tuple[np.ndarray, bool]:
    """Validate spins and return them as ``(n, n_sites, 3)`` float64.

    Accepted shapes: ``(n_sites, 3)``, ``(n, n_sites, 3)``, and the same with the
    site axis written as the supercell shape ``lattice_shape`` (e.g.
    ``(L1, L2, 3)`` or ``(n, L1, L2, 3)``).

    Args:
        spins: array-like of spins (numpy, torch or nested lists).
        n_sites: number of sites of the lattice.
        lattice_shape: supercell shape whose product is ``n_sites`` (optional).
        tol: allowed deviation of ``|S|`` from 1.
        normalize: rescale to unit length instead of checking it.

    Returns:
        ``(batch, single)``: the ``(n, n_sites, 3)`` array and whether a single
        configuration was given.

    Raises:
        SpinError: with the expected shape, or the offending sample and site, in
            the message; also for complex, boolean or non-numeric arrays
            (never converted with a loss) and for an empty array.
    """
    if _is_tensor(spins):
        spins = spins.detach().cpu().numpy()
    try:
        raw = np.asarray(spins)
    except (TypeError, ValueError) as err:
        raise SpinError(f"spins must be an array of numbers, got {type(spins).__name__}: "
                        f"{err}") from err
    if raw.dtype.kind not in "fiu":     # complex, bool, object, strings: not converted silently
        raise SpinError(f"spins must be real numbers (float); got an array of dtype {raw.dtype}"
                        + (" (the imaginary part would be lost)" if raw.dtype.kind == "c" else ""))
    s = raw.astype(np.float64, copy=False)
    if s.size == 0:
        raise SpinError(f"spins are empty (shape {s.shape}): expected at least one configuration")
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
    return _check_values(s, tol, "spins", normalize=normalize), single


def load_spin_file(path) -> np.ndarray:
    """Read spins from a ``.npy`` file (no pickled objects); shapes are checked by :func:`as_spin_batch`.

    Args:
        path: the ``.npy`` file.

    Returns:
        The array as stored.

    Raises:
        SpinError: if the file does not exist or cannot be read as a ``.npy``
            array, or holds an empty array.
    """
    try:
        s = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise SpinError(f"spin file '{path}' does not exist") from None
    except (OSError, ValueError, EOFError) as err:
        raise SpinError(f"cannot read spins from '{path}' (expected a .npy array): "
                        f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    if not isinstance(s, np.ndarray):       # an .npz archive
        raise SpinError(f"cannot read spins from '{path}': an .npz archive, expected a .npy array")
    if s.size == 0:
        raise SpinError(f"'{path}' holds no spins (an empty array of shape {s.shape})")
    return s


def random_spins(n_sites: int, n_replicas: Optional[int] = None, *, generator=None,
                 seed: Optional[int] = None, dtype=None, device=None):
    """Spins drawn independently and uniformly on the unit sphere.

    Two kinds of random source, each reproducible from its seed:

    * torch (default): a tensor drawn with :func:`torch.randn` from ``generator``
      (a :class:`torch.Generator`), from a new generator seeded with ``seed``,
      or from torch's global generator, in ``dtype`` (default float64) on
      ``device``;
    * numpy: with ``generator`` a :class:`numpy.random.Generator`, a float64
      numpy array drawn with ``generator.standard_normal`` (data generation
      and the simulation's random starts use this form).

    Args:
        n_sites: number of sites.
        n_replicas: number of configurations (replicas or samples); ``None``
            for a single one.
        generator: a :class:`torch.Generator` or a :class:`numpy.random.Generator`.
        seed: seed of a new torch generator (torch draws only; not with ``generator``).
        dtype: torch floating dtype of the result (torch draws only).
        device: torch device of the result (torch draws only).

    Returns:
        ``(n_sites, 3)``, or ``(n_replicas, n_sites, 3)``: a torch tensor, or a
        float64 numpy array for a numpy generator.

    Raises:
        ValueError: if a count is not a positive integer, both ``seed`` and
            ``generator`` are given, or ``dtype``/``device`` come with a numpy
            generator.
    """
    for label, value in (("n_sites", n_sites), ("n_replicas", n_replicas)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                  or value < 1):
            raise ValueError(f"random_spins: {label} must be a positive integer, got {value!r}")
    shape = (int(n_sites), 3) if n_replicas is None else (int(n_replicas), int(n_sites), 3)
    if seed is not None and generator is not None:
        raise ValueError("random_spins: give a seed or a generator, not both")
    if isinstance(generator, np.random.Generator):
        if dtype is not None or device is not None:
            raise ValueError("random_spins: dtype and device are for torch draws; a numpy "
                             "generator gives float64 numpy arrays (convert with torch.from_numpy)")
        v = generator.standard_normal(shape)
        return v / np.linalg.norm(v, axis=-1, keepdims=True)
    import torch
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"random_spins: generator must be a torch.Generator or a "
                         f"numpy.random.Generator, got {type(generator).__name__}")
    if seed is not None:
        generator = torch.Generator(device=device or "cpu").manual_seed(int(seed))
    x = torch.randn(shape, generator=generator, dtype=dtype or torch.float64, device=device)
    return x / x.norm(dim=-1, keepdim=True)


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
