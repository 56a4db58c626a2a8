r"""Checks for spin models, shipped so users can test their own models.

Every helper takes a ``model``: any callable ``model(graph, spins) -> dict``
with at least ``"energy"`` (per graph) and, where checked, ``"field"``
(``(N, 3)``) and ``"local_energy"`` (``(N,)``), as :class:`ecnn_pyg.nn.ECNN`
returns. Errors are relative: ``max |a - b| / max(max |b|, tiny)``. The
``assert_*`` variants raise :class:`AssertionError` above a tolerance that
defaults by dtype (``1e-5`` for float32, ``1e-10`` for float64), in the spirit
of :func:`e3nn.util.test.assert_equivariant`.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import torch
from torch import Tensor

from . import keys as K
from .graph import rotation_permutations, symmetry_permutations, translation_permutation
from .spins import random_spins     # re-exported for tests of user models

__all__ = ["random_spins", "random_rotation", "default_tolerance", "relative_error",
           "rotation_equivariance_error", "assert_rotation_equivariant",
           "translation_error", "assert_translation_equivariant",
           "point_group_error", "field_gradient_error", "assert_field_is_gradient",
           "batch_error", "time_reversal_error", "symmetry_energy_error"]

Model = Callable[..., Dict[str, Tensor]]


def random_rotation(dtype=torch.float64, generator: Optional[torch.Generator] = None) -> Tensor:
    """A uniformly random proper rotation matrix (QR of a Gaussian matrix).

    Args:
        dtype: dtype of the result (drawn in float64).
        generator: optional torch random generator.

    Returns:
        ``(3, 3)`` orthogonal matrix with determinant +1.
    """
    q, r = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=generator))
    q = q * torch.sign(torch.diagonal(r)).view(1, 3)
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.to(dtype)


def default_tolerance(dtype) -> float:
    """Default tolerance of the ``assert_*`` checks for a floating dtype.

    Args:
        dtype: torch dtype of the spins.

    Returns:
        ``1e-10`` for float64, ``1e-5`` for float32, ``1e-2`` for float16 and
        bfloat16, ``1e-5`` otherwise.
    """
    return {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 1e-2,
            torch.bfloat16: 1e-2}.get(dtype, 1e-5)


def relative_error(a: Tensor, b: Tensor) -> float:
    """``max|a - b| / max|b|`` (absolute when ``b`` vanishes).

    Args:
        a: tensor to check.
        b: reference tensor of the same shape.

    Returns:
        The relative error (``0.0`` for empty tensors), computed in float64.
    """
    a, b = a.detach().double(), b.detach().double()
    scale = float(b.abs().max()) if b.numel() else 0.0
    return float((a - b).abs().max()) / (scale if scale > 1e-300 else 1.0) if a.numel() else 0.0


def _call(model: Model, graph, spins: Tensor) -> Dict[str, Tensor]:
    out = model(graph, spins)
    if not isinstance(out, dict) or K.ENERGY not in out:
        raise TypeError("the model must return a dict with at least an 'energy' entry")
    return out


def rotation_equivariance_error(model: Model, graph, spins: Tensor,
                                rotation: Optional[Tensor] = None) -> Dict[str, float]:
    r"""Global spin rotation :math:`\mathbf S \to R\mathbf S`.

    Energies and local energies must be invariant, the field must rotate,
    :math:`\mathbf B(R\mathbf S) = R\,\mathbf B(\mathbf S)`.

    Args:
        model: callable ``model(graph, spins) -> dict`` (see module docstring).
        graph: lattice graph (or batch) the model is called on.
        spins: ``(N, 3)`` unit spins.
        rotation: ``(3, 3)`` rotation matrix; default: a random one.

    Returns:
        ``{"energy", "local_energy", "field": relative error}`` for each output
        the model gives.

    Raises:
        TypeError: if the model does not return a dict with an ``"energy"`` entry.
    """
    R = random_rotation(spins.dtype) if rotation is None else rotation.to(spins.dtype)
    R = R.to(spins.device)
    a, b = _call(model, graph, spins), _call(model, graph, spins @ R.T)
    err = {K.ENERGY: relative_error(b[K.ENERGY], a[K.ENERGY])}
    if K.LOCAL_ENERGY in a:
        err[K.LOCAL_ENERGY] = relative_error(b[K.LOCAL_ENERGY], a[K.LOCAL_ENERGY])
    if K.FIELD in a:
        err[K.FIELD] = relative_error(b[K.FIELD], a[K.FIELD] @ R.T)
    return err


def assert_rotation_equivariant(model: Model, graph, spins: Tensor, tol: Optional[float] = None,
                                n_rotations: int = 2) -> Dict[str, float]:
    """Raise if :func:`rotation_equivariance_error` exceeds ``tol`` for random rotations.

    Args:
        model: callable ``model(graph, spins) -> dict`` (see module docstring).
        graph: lattice graph (or batch) the model is called on.
        spins: ``(N, 3)`` unit spins.
        tol: tolerance; default :func:`default_tolerance` of the spins' dtype.
        n_rotations: number of random rotations tried.

    Returns:
        The worst relative error of each output over the rotations.

    Raises:
        AssertionError: if an error exceeds ``tol``.
        TypeError: if the model does not return a dict with an ``"energy"`` entry.
    """
    tol = default_tolerance(spins.dtype) if tol is None else tol
    worst: Dict[str, float] = {}
    for _ in range(n_rotations):
        for k, v in rotation_equivariance_error(model, graph, spins).items():
            worst[k] = max(worst.get(k, 0.0), v)
    bad = {k: v for k, v in worst.items() if v > tol}
    if bad:
        raise AssertionError(f"not rotation equivariant: relative errors {bad} > {tol:g}")
    return worst


def _permuted_error(model: Model, graph, spins: Tensor, perm: Tensor) -> Dict[str, float]:
    """Outputs of ``spins[perm]`` against the permuted outputs of ``spins``."""
    perm = perm.to(spins.device)
    a, b = _call(model, graph, spins), _call(model, graph, spins[perm])
    err = {K.ENERGY: relative_error(b[K.ENERGY], a[K.ENERGY])}
    if K.LOCAL_ENERGY in a:
        err[K.LOCAL_ENERGY] = relative_error(b[K.LOCAL_ENERGY], a[K.LOCAL_ENERGY][perm])
    if K.FIELD in a:
        err[K.FIELD] = relative_error(b[K.FIELD], a[K.FIELD][perm])
    return err


def translation_error(model: Model, graph, spins: Tensor, shift: Sequence[int]) -> Dict[str, float]:
    """Lattice translation by ``shift`` cells: outputs permute with the sites.

    Args:
        model: callable ``model(graph, spins) -> dict`` (see module docstring).
        graph: lattice graph (or batch) the model is called on.
        spins: ``(N, 3)`` unit spins.
        shift: translation in unit cells (periodic supercell, one site per cell).

    Returns:
        ``{"energy", "local_energy", "field": relative error}`` for each output
        the model gives.

    Raises:
        TypeError: if the model does not return a dict with an ``"energy"`` entry.
        LatticeError: if the lattice has more than one site per cell.
    """
    return _permuted_error(model, graph, spins, translation_permutation(graph, shift))


def assert_translation_equivariant(model: Model, graph, spins: Tensor,
                                   shifts: Sequence[Sequence[int]] = ((1, 0), (0, 1), (2, 3)),
                                   tol: Optional[float] = None) -> Dict[str, float]:
    """Raise if any :func:`translation_error` exceeds ``tol``.

    Args:
        model: callable ``model(graph, spins) -> dict`` (see module docstring).
        graph: lattice graph (or batch) the model is called on.
        spins: ``(N, 3)`` unit spins.
        shifts: translations (in unit cells) to try.
        tol: tolerance; default :func:`default_tolerance` of the spins' dtype.

    Returns:
        The worst relative error of each output over the shifts.

    Raises:
        AssertionError: if an error exceeds ``tol``.
        TypeError: if the model does not return a dict with an ``"energy"`` entry.
    """
    tol = default_tolerance(spins.dtype) if tol is None else tol
    worst: Dict[str, float] = {}
    for shift in shifts:
        for k, v in translation_error(model, graph, spins, shift).items():
            worst[k] = max(worst.get(k, 0.0), v)
    bad = {k: v for k, v in worst.items() if v > tol}
    if bad:
        raise AssertionError(f"not translation equivariant: relative errors {bad} > {tol:g}")
    return worst


def point_group_error(model: Model, graph, spins: Tensor) -> Dict[str, float]:
    """Worst error over the lattice rotations that fit the supercell.

    Spins are not rotated by a lattice rotation (only the sites move), so
    energies are invariant and fields permute with the sites.

    Args:
        model: callable ``model(graph, spins) -> dict`` (see module docstring).
        graph: lattice graph (or batch) the model is called on.
        spins: ``(N, 3)`` unit spins.

    Returns:
        The worst relative error of each output over the rotations of
        :func:`~ecnn_pyg.graph.rotation_permutations` (empty if none fit).

    Raises:
        TypeError: if the model does not return a dict with an ``"energy"`` entry.
    """
    worst: Dict[str, float] = {}
    for _, perm in rotation_permutations(graph):
        for k, v in _permuted_error(model, graph, spins, perm).items():
            worst[k] = max(worst.get(k, 0.0), v)
    return worst


def field_gradient_error(model: Model, graph, spins: Tensor, eps: float = 1e-6,
                         n_checks: int = 6, generator: Optional[torch.Generator] = None) -> float:
    """Field against minus the central finite difference of the energy.

    Checks ``n_checks`` random (site, component) pairs; use float64.

    Args:
        model: callable ``model(graph, spins) -> dict`` (see module docstring).
        graph: lattice graph (or batch) the model is called on.
        spins: ``(N, 3)`` unit spins.
        eps: finite-difference step.
        n_checks: number of random (site, component) pairs.
        generator: optional torch random generator for the pairs.

    Returns:
        The largest error relative to the largest checked field component.

    Raises:
        TypeError: if the model does not return a dict with an ``"energy"`` entry.
    """
    field = _call(model, graph, spins)[K.FIELD].detach()
    n = spins.shape[0]
    sites = torch.randint(n, (n_checks,), generator=generator)
    comps = torch.randint(3, (n_checks,), generator=generator)
    fd, an = [], []
    for i, c in zip(sites.tolist(), comps.tolist()):
        sp, sm = spins.detach().clone(), spins.detach().clone()
        sp[i, c] += eps
        sm[i, c] -= eps
        ep = _call(model, graph, sp)[K.ENERGY].sum()
        em = _call(model, graph, sm)[K.ENERGY].sum()
        fd.append(-(ep - em) / (2 * eps))
        an.append(field[i, c])
    return relative_error(torch.stack(an), torch.stack(fd).detach())


def assert_field_is_gradient(model: Model, graph, spins: Tensor, tol: float = 1e-6,
                             **kwargs) -> float:
    """Raise if :func:`field_gradient_error` exceeds ``tol``.

    Args:
        model: callable ``model(graph, spins) -> dict`` (see module docstring).
        graph: lattice graph (or batch) the model is called on.
        spins: ``(N, 3)`` unit spins.
        tol: tolerance on the relative error.
        **kwargs: passed to :func:`field_gradient_error`.

    Returns:
        The relative error.

    Raises:
        AssertionError: if the error exceeds ``tol``.
        TypeError: if the model does not return a dict with an ``"energy"`` entry.
    """
    err = field_gradient_error(model, graph, spins, **kwargs)
    if err > tol:
        raise AssertionError(f"field is not -dE/dS: relative error {err:.3g} > {tol:g}")
    return err


def batch_error(model: Model, graphs: Sequence, spins: Sequence[Tensor]) -> Dict[str, float]:
    """Outputs on a :class:`~torch_geometric.data.Batch` against per-graph outputs.

    Args:
        model: callable ``model(graph, spins) -> dict`` (see module docstring).
        graphs: lattice graphs, batched together.
        spins: ``(N_i, 3)`` unit spins of each graph.

    Returns:
        ``{"energy", "local_energy", "field": relative error}`` for each output
        the model gives.

    Raises:
        TypeError: if the model does not return a dict with an ``"energy"`` entry.
    """
    from torch_geometric.data import Batch
    batch = Batch.from_data_list(list(graphs))
    out = _call(model, batch, torch.cat(list(spins), 0))
    parts = [_call(model, g, s) for g, s in zip(graphs, spins)]
    err = {K.ENERGY: relative_error(out[K.ENERGY], torch.cat([p[K.ENERGY] for p in parts]))}
    for key in (K.LOCAL_ENERGY, K.FIELD):
        if key in out:
            err[key] = relative_error(out[key], torch.cat([p[key] for p in parts], 0))
    return err


def time_reversal_error(model: Model, graph, spins: Tensor) -> Dict[str, float]:
    r""":math:`E(-\mathbf S) = E(\mathbf S)` and :math:`\mathbf B(-\mathbf S) = -\mathbf B(\mathbf S)`.

    Args:
        model: callable ``model(graph, spins) -> dict`` (see module docstring).
        graph: lattice graph (or batch) the model is called on.
        spins: ``(N, 3)`` unit spins.

    Returns:
        ``{"energy", "field": relative error}`` for each output the model gives.

    Raises:
        TypeError: if the model does not return a dict with an ``"energy"`` entry.
    """
    a, b = _call(model, graph, spins), _call(model, graph, -spins)
    err = {K.ENERGY: relative_error(b[K.ENERGY], a[K.ENERGY])}
    if K.FIELD in a:
        err[K.FIELD] = relative_error(b[K.FIELD], -a[K.FIELD])
    return err


def symmetry_energy_error(model: Model, graph, spins: Tensor, lattice=None) -> Dict[str, float]:
    r"""How far a model prices a configuration and its exactly degenerate images apart.

    The Kondo lattice model with real hopping amplitudes gives the same electronic
    energy to a configuration, to its images under the lattice's point group (rotations
    and mirrors that map the supercell to itself) and to its time reverse
    :math:`-\mathbf S`. A model that breaks one of them (weights per bond direction
    learn the point group only from augmentation; axial ``1e`` spins allow terms odd in
    :math:`\mathbf S`, such as the scalar spin chirality) prices such partners apart,
    and so shifts ordered states of one handedness against the other: an error that
    competes with the energy differences between magnetic phases.

    Args:
        model: callable ``model(graph, spins) -> dict`` (see module docstring).
        graph: one periodic lattice graph (from :func:`~ecnn_pyg.graph.lattice_graph`).
        spins: ``(N, 3)`` unit spins.
        lattice: the graph's lattice when it is not a built-in one (as for
            :func:`~ecnn_pyg.graph.symmetry_permutations`).

    Returns:
        ``{"rotations", "mirrors", "time_reversal"}``: the largest
        :math:`|E(g\mathbf S) - E(\mathbf S)| / N` over the operations of each kind,
        in the model's energy unit per site (``0.0`` where no operation of the kind
        fits the supercell).

    Raises:
        TypeError: if the model does not return a dict with an ``"energy"`` entry.
        LatticeError: if the lattice cannot be loaded.
    """
    n = spins.shape[0]

    def energy(s: Tensor) -> float:
        return float(_call(model, graph, s)[K.ENERGY].detach().double().sum())

    e0 = energy(spins)
    out = {"rotations": 0.0, "mirrors": 0.0,
           "time_reversal": abs(energy(-spins) - e0) / n}
    for op, perm in symmetry_permutations(graph, lattice):
        if not op.is_identity:
            kind = "rotations" if op.proper else "mirrors"
            out[kind] = max(out[kind], abs(energy(spins[perm.to(spins.device)]) - e0) / n)
    return out
