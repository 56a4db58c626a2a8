r"""Lattices: a Bravais lattice with a basis plus hopping shells.

A lattice definition is a small YAML file (see ``graphs/square.yaml``, which
is ``ecnn_pyg/lattices/square.yaml``)::

    name: square
    vectors: [[1, 0], [0, 1]]          # primitive vectors a_i (rows)
    basis: [[0, 0]]                    # sites, fractional coordinates
    hoppings:
      t1:                              # shell name = amplitude parameter
        default: 1.0
        bonds:                         # each bond once; the reverse is implied
          - {from: 0, to: 0, offset: [1, 0]}
          - {from: 0, to: 0, offset: [0, 1]}

Built-in lattices are the files in the package folder ``ecnn_pyg/lattices/``
(installed with the package; the repository's top-level ``graphs/`` is a link
to it, the place to read and copy them from) and are loaded by name
(:func:`load_lattice`); any other file is loaded by path. Site order and
lattice vectors are described in ``docs/conventions.md`` ("Lattices and site
order").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import yaml

__all__ = ["Bond", "Lattice", "LatticeError", "load_lattice", "available_lattices",
           "LATTICES_DIR"]

#: Folder holding the built-in lattice definitions (inside the installed package).
LATTICES_DIR = Path(__file__).resolve().parent / "lattices"


class LatticeError(ValueError):
    """A lattice definition or a supercell request that cannot be honoured."""


@dataclass(frozen=True)
class Bond:
    """One directed bond class of a lattice.

    Args:
        shell: name of the hopping shell (and of its amplitude parameter).
        source: basis index of the site the bond starts from.
        target: basis index of the site it ends on.
        offset: unit cell of ``target`` relative to the cell of ``source``.
    """

    shell: str
    source: int
    target: int
    offset: Tuple[int, ...]

    def reversed(self) -> "Bond":
        """The same bond traversed the other way.

        Returns:
            A :class:`Bond` of the same shell from ``target`` to ``source`` with
            the negated ``offset``.
        """
        return Bond(self.shell, self.target, self.source, tuple(-o for o in self.offset))


class Lattice:
    r"""A Bravais lattice with a basis and hopping shells.

    Args:
        name: identifier, stored with data sets and models.
        vectors: ``(dim, dim)`` primitive vectors :math:`a_i` as rows.
        basis: ``(n_basis, dim)`` site positions in fractional coordinates.
        hoppings: ``{shell: {"default": t, "bonds": [{"from", "to", "offset"}]}}``;
            each bond listed once, the reverse direction is implied.

    Attributes:
        bonds: list of :class:`Bond`: the listed bonds (ids ``0..B-1``) followed
            by their reverses (ids ``B..2B-1``). The id is the ``bond_type`` of a
            graph edge; the shell's position in :attr:`shells` is its ``bond_shell``.
        shells: names of the hopping shells, in file order.
        defaults: ``{shell: default amplitude}``.
        dim: spatial dimension (1, 2 or 3).

    Raises:
        LatticeError: if the vectors are not a square, non-singular ``(dim, dim)``
            array, the basis is empty, a shell or bond is malformed, a bond
            refers to a missing basis site or joins a site to itself, or a bond
            is listed twice (possibly as its reverse).
    """

    def __init__(self, name: str, vectors, basis, hoppings: Mapping[str, Mapping]):
        self.name = str(name)
        self.vectors = np.asarray(vectors, dtype=np.float64)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != self.vectors.shape[1] \
                or self.vectors.shape[0] not in (1, 2, 3):
            raise LatticeError(f"lattice '{name}': 'vectors' must be a square list of 1, 2 or "
                               f"3 primitive vectors, got shape {self.vectors.shape}")
        if abs(np.linalg.det(self.vectors)) < 1e-10:
            raise LatticeError(f"lattice '{name}': primitive vectors are linearly dependent")
        self.dim = self.vectors.shape[0]
        self.basis = np.asarray(basis, dtype=np.float64).reshape(-1, self.dim) \
            if np.size(basis) else np.zeros((0, self.dim))
        if len(self.basis) == 0:
            raise LatticeError(f"lattice '{name}': 'basis' must list at least one site")
        if not isinstance(hoppings, Mapping) or not hoppings:
            raise LatticeError(f"lattice '{name}': 'hoppings' must map shell names to "
                               "{default, bonds}")
        self.shells: List[str] = []
        self.defaults: Dict[str, float] = {}
        forward: List[Bond] = []
        for shell, spec in hoppings.items():
            if not isinstance(spec, Mapping) or "bonds" not in spec:
                raise LatticeError(f"lattice '{name}': shell '{shell}' needs a 'bonds' list")
            unknown = set(spec) - {"default", "bonds"}
            if unknown:
                raise LatticeError(f"lattice '{name}': shell '{shell}' has unknown keys "
                                   f"{sorted(unknown)} (expected 'default', 'bonds')")
            self.shells.append(str(shell))
            self.defaults[str(shell)] = float(spec.get("default", 0.0))
            for b in spec["bonds"]:
                try:
                    bond = Bond(str(shell), int(b["from"]), int(b["to"]),
                                tuple(int(o) for o in b["offset"]))
                except (KeyError, TypeError, ValueError) as err:
                    raise LatticeError(f"lattice '{name}': bond {b!r} of shell '{shell}' must "
                                       "be {from: int, to: int, offset: [ints]}") from err
                if len(bond.offset) != self.dim:
                    raise LatticeError(f"lattice '{name}': bond {b!r} has an offset of length "
                                       f"{len(bond.offset)}, expected {self.dim}")
                for idx in (bond.source, bond.target):
                    if not 0 <= idx < len(self.basis):
                        raise LatticeError(f"lattice '{name}': bond {b!r} refers to basis site "
                                           f"{idx}, the basis has {len(self.basis)} sites")
                if bond.source == bond.target and not any(bond.offset):
                    raise LatticeError(f"lattice '{name}': bond {b!r} joins a site to itself")
                forward.append(bond)
        keys = [(b.source, b.target, b.offset) for b in forward]
        rev = [(b.target, b.source, tuple(-o for o in b.offset)) for b in forward]
        if len(set(keys) | set(rev)) != 2 * len(forward):
            raise LatticeError(f"lattice '{name}': a bond is listed twice (possibly as its "
                               "reverse); list each bond once")
        self.bonds: List[Bond] = forward + [b.reversed() for b in forward]

    # ------------------------------------------------------------------ I/O
    @classmethod
    def from_dict(cls, spec: Mapping) -> "Lattice":
        """Build from the parsed YAML mapping of a lattice file.

        Args:
            spec: mapping with exactly the keys ``name``, ``vectors``, ``basis``
                and ``hoppings`` (see :class:`Lattice`).

        Returns:
            The :class:`Lattice`.

        Raises:
            LatticeError: if ``spec`` is not a mapping, has missing or unknown
                keys, or describes an invalid lattice.
        """
        if not isinstance(spec, Mapping):
            raise LatticeError("a lattice definition must be a mapping with keys "
                               "'name', 'vectors', 'basis', 'hoppings'")
        missing = {"name", "vectors", "basis", "hoppings"} - set(spec)
        unknown = set(spec) - {"name", "vectors", "basis", "hoppings"}
        if missing or unknown:
            raise LatticeError(f"lattice definition: missing keys {sorted(missing)}, unknown "
                               f"keys {sorted(unknown)} (expected name, vectors, basis, hoppings)")
        return cls(spec["name"], spec["vectors"], spec["basis"], spec["hoppings"])

    def to_dict(self) -> dict:
        """The YAML mapping of this lattice (inverse of :meth:`from_dict`).

        Returns:
            ``{"name", "vectors", "basis", "hoppings"}`` with plain lists; each
            bond is listed once (the reverses are implied).
        """
        n = len(self.bonds) // 2
        hop = {}
        for s in self.shells:
            hop[s] = {"default": self.defaults[s],
                      "bonds": [{"from": b.source, "to": b.target, "offset": list(b.offset)}
                                for b in self.bonds[:n] if b.shell == s]}
        return {"name": self.name, "vectors": self.vectors.tolist(),
                "basis": self.basis.tolist(), "hoppings": hop}

    def to_yaml(self) -> str:
        """The lattice definition as YAML text.

        Returns:
            :meth:`to_dict` dumped as YAML, keys in definition order.
        """
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    # ------------------------------------------------------------ geometry
    @property
    def n_basis(self) -> int:
        """Number of sites per unit cell."""
        return len(self.basis)

    def hopping_values(self, hoppings: Optional[Mapping[str, float]] = None) -> Dict[str, float]:
        """Amplitude of every shell: the defaults overridden by ``hoppings``.

        Args:
            hoppings: ``{shell: amplitude}`` overrides; ``None`` keeps the defaults.

        Returns:
            ``{shell: amplitude}`` for every shell of the lattice.

        Raises:
            LatticeError: if ``hoppings`` names an unknown shell or a value is
                not finite.
        """
        values = dict(self.defaults)
        for k, v in (hoppings or {}).items():
            if k not in values:
                raise LatticeError(f"lattice '{self.name}' has no hopping shell '{k}' "
                                   f"(shells: {self.shells})")
            v = float(v)
            if not math.isfinite(v):
                raise LatticeError(f"hopping {k} must be finite, got {v}")
            values[k] = v
        return values

    def bond_vector(self, bond: Bond) -> np.ndarray:
        """Cartesian vector from the ``source`` site to the ``target`` site.

        Args:
            bond: a bond of this lattice.

        Returns:
            ``(dim,)`` vector ``(offset + r_target - r_source) @ vectors``.
        """
        frac = np.asarray(bond.offset, float) + self.basis[bond.target] - self.basis[bond.source]
        return frac @ self.vectors

    def point_group(self, tol: float = 1e-8) -> List[np.ndarray]:
        """Rotations about the z axis (2D) that map the lattice and its bonds to itself.

        The 12 rotations by multiples of 30 degrees are tried; a rotation is
        kept when it is an integer matrix in cell coordinates and maps every
        shell's set of bond offsets to itself. Used for symmetry augmentation
        and point-group tests.

        Args:
            tol: tolerance for the rotation to be an integer matrix in cell
                coordinates.

        Returns:
            Integer ``(2, 2)`` matrices ``M`` acting on fractional cell
            coordinates (``n' = M n``); the identity is first.

        Raises:
            LatticeError: unless the lattice is 2D with one site per cell.
        """
        if self.dim != 2 or self.n_basis != 1:
            raise LatticeError("point_group() is implemented for 2D Bravais lattices with one "
                               "site per cell")
        A = self.vectors.T                      # columns a1, a2
        Ainv = np.linalg.inv(A)
        shells = {}
        for b in self.bonds:
            shells.setdefault(b.shell, set()).add(b.offset)
        out = []
        for k in range(12):
            th = 2 * math.pi * k / 12
            R = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
            M = Ainv @ R @ A
            Mi = np.rint(M)
            if np.abs(M - Mi).max() > tol:
                continue
            Mi = Mi.astype(np.int64)
            if all({tuple(int(x) for x in Mi @ np.array(o)) for o in offs} == offs
                   for offs in shells.values()):
                out.append(Mi)
        return out

    def __repr__(self) -> str:
        return (f"Lattice({self.name!r}, dim={self.dim}, n_basis={self.n_basis}, "
                f"shells={self.shells})")


def available_lattices() -> List[str]:
    """Names of the built-in lattices (files in ``ecnn_pyg/lattices/``).

    Returns:
        Sorted lattice names, loadable with :func:`load_lattice`.
    """
    return sorted(p.stem for p in LATTICES_DIR.glob("*.yaml"))


def load_lattice(name_or_path: Union[str, Path, Lattice]) -> Lattice:
    """Load a built-in lattice by name (``"square"``) or a lattice file by path.

    Args:
        name_or_path: a built-in name (no file suffix), the path of a ``.yaml``
            lattice file, or a :class:`Lattice` (returned unchanged).

    Returns:
        The :class:`Lattice`.

    Raises:
        LatticeError: if the name is unknown, the file does not exist, is not
            valid YAML, or does not define a valid lattice.
    """
    if isinstance(name_or_path, Lattice):
        return name_or_path
    path = Path(name_or_path)
    if not path.suffix:
        builtin = LATTICES_DIR / f"{name_or_path}.yaml"
        if not builtin.exists():
            raise LatticeError(f"unknown lattice '{name_or_path}': built-in lattices are "
                               f"{available_lattices()}, or give the path of a .yaml file")
        path = builtin
    if not path.exists():
        raise LatticeError(f"lattice file '{path}' does not exist")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise LatticeError(f"lattice file '{path}' is not valid YAML: {err}") from err
    try:
        return Lattice.from_dict(spec)
    except LatticeError as err:
        raise LatticeError(f"{path}: {err}") from err
