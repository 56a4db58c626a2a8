"""Data augmentation by the lattice's own symmetry group (C4 on the square, C6 on the triangular lattice).

A lattice rotation ``R`` maps the configuration ``S`` to ``S[perm]`` (site ``i``
of the new configuration carries the spin of site ``perm[i]``,
:func:`~ecnn_pyg.rotation_permutations`). Spin and lattice spaces are decoupled
in the Kondo lattice model, so the spin *vectors* are not rotated: the energy
is unchanged and the field transforms like the spins, ``B[perm]``.

The operations are derived from the lattice definition itself
(:meth:`~ecnn_pyg.lattice.Lattice.symmetries`: the maps of the Bravais
lattice, the basis and every hopping shell onto themselves), so a lattice
file of one's own gets its own group: the rotations by default (the paper's
C4 and C6; C6 on the honeycomb and kagome lattices too), with
``reflections=True`` also the mirrors. Operations that do not map the
supercell onto itself (``L1 != L2``) are left out. A lattice with no
operation but the identity has nothing to augment with
(:attr:`RotationAugment.trivial`).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .graph import symmetry_permutations

__all__ = ["RotationAugment"]


class RotationAugment:
    """Random lattice symmetry operations of spin configurations and their fields.

    Args:
        graph: the lattice graph of the configurations (one graph, not a batch).
        lattice: the lattice of the graph (a :class:`~ecnn_pyg.lattice.Lattice`,
            definition, name or path); default: the graph's ``lattice`` name,
            which must then be a built-in lattice. Pass the definition for a
            lattice of one's own (a data file holds it, ``lattice_yaml``).
        reflections: use the mirrors of the lattice too, not only its rotations.

    Attributes:
        matrices: the operations' matrices (cell coordinates), identity first.
        ops: the :class:`~ecnn_pyg.lattice.SymmetryOp` of every operation.
        perms: ``(R, N)`` site permutations.

    Raises:
        LatticeError: if the lattice cannot be loaded.
    """

    def __init__(self, graph, lattice=None, reflections: bool = False):
        found = symmetry_permutations(graph, lattice, proper_only=not reflections)
        self.ops = [op for op, _ in found]
        self.matrices = [op.matrix for op in self.ops]
        self.perms = torch.stack([p.long() for _, p in found])

    @property
    def trivial(self) -> bool:
        """Whether the identity is the only operation (nothing to augment with)."""
        return len(self.perms) <= 1

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
        return f"RotationAugment(operations={len(self)})"
