"""Data augmentation by the lattice point group (C4 on the square, C6 on the triangular lattice).

A lattice rotation ``R`` maps the configuration ``S`` to ``S[perm]`` (site ``i``
of the new configuration carries the spin of site ``perm[i]``,
:func:`~ecnn_pyg.rotation_permutations`). Spin and lattice spaces are decoupled
in the Kondo lattice model, so the spin *vectors* are not rotated: the energy
is unchanged and the field transforms like the spins, ``B[perm]``.

Works for any lattice whose point group :meth:`~ecnn_pyg.Lattice.point_group`
knows, on any supercell that the rotations map onto itself (``L1 == L2``);
rotations that do not fit the supercell are left out.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from . import keys as K
from .graph import rotation_permutations

__all__ = ["RotationAugment"]


class RotationAugment:
    """Random lattice rotations of spin configurations and their fields.

    Args:
        graph: the lattice graph of the configurations (one graph, not a batch).

    Attributes:
        matrices: the rotation matrices (cell coordinates), identity first.
        perms: ``(R, N)`` site permutations.

    Raises:
        ValueError: if no lattice rotation fits the supercell.
        LatticeError: if the lattice has no point group implemented (not 2D
            with one site per cell).
    """

    def __init__(self, graph):
        rots = rotation_permutations(graph)
        if not rots:
            raise ValueError(f"no lattice rotation fits the supercell of lattice "
                             f"{graph[K.LATTICE]!r} and size {graph[K.SIZE].view(-1).tolist()}")
        self.matrices = [m for m, _ in rots]
        self.perms = torch.stack([p.long() for _, p in rots])

    def __len__(self) -> int:
        return len(self.perms)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """``n`` random rotation indices (uniform over the group).

        Args:
            n: number of indices.
            generator: optional torch random generator.

        Returns:
            ``(n,)`` long tensor of indices into :attr:`perms`.
        """
        return torch.randint(len(self.perms), (n,), generator=generator)

    def apply(self, k: Tensor, *arrays: Tensor) -> Tuple[Tensor, ...]:
        """Rotate per-site arrays ``(B, N, ...)`` of ``B`` samples by rotations ``k`` ``(B,)``.

        Args:
            k: ``(B,)`` rotation indices (e.g. from :meth:`sample`).
            *arrays: per-site arrays ``(B, N, ...)`` (spins, fields, ...).

        Returns:
            The permuted arrays, sample ``b`` as ``a[b, perms[k[b]]]``.
        """
        p = self.perms[k]                                    # (B, N)
        rows = torch.arange(p.shape[0])[:, None]
        return tuple(a[rows, p] for a in arrays)

    def __repr__(self) -> str:
        return f"RotationAugment(rotations={len(self)})"
