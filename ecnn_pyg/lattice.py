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

:meth:`Lattice.symmetries` derives a lattice's symmetry operations from its
definition alone (the orthogonal maps of the Bravais lattice that map the
basis and every hopping shell onto themselves): C4v on the square lattice,
C6v on the triangular, honeycomb and kagome lattices, and whatever a lattice
file of one's own has. Training augments with them (:mod:`ecnn_pyg.augment`).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import yaml

__all__ = ["Bond", "SymmetryOp", "Lattice", "LatticeError", "load_lattice", "available_lattices",
           "is_builtin", "lattice_reference", "LATTICES_DIR"]

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


@dataclass(frozen=True, eq=False)
class SymmetryOp:
    """A symmetry operation ``x -> R x + t`` of a lattice (see :meth:`Lattice.symmetries`).

    In fractional coordinates it maps ``f -> matrix @ f + translation``: basis
    site ``b`` of cell ``n`` goes to basis site ``sublattice[b]`` of cell
    ``matrix @ n + shifts[b]``.

    Attributes:
        matrix: integer ``(dim, dim)`` matrix on cell coordinates.
        rotation: the orthogonal ``(dim, dim)`` Cartesian matrix ``R``.
        translation: ``(dim,)`` fractional translation ``t``.
        sublattice: image of every basis site.
        shifts: ``(n_basis, dim)`` integer cell shift of every basis site's image.
    """

    matrix: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    sublattice: Tuple[int, ...]
    shifts: np.ndarray

    @property
    def proper(self) -> bool:
        """Whether the operation is a rotation (``det R = +1``), not a reflection."""
        return bool(np.linalg.det(self.rotation) > 0)

    @property
    def is_identity(self) -> bool:
        """Whether the operation maps every site onto itself."""
        return bool((self.matrix == np.eye(len(self.matrix), dtype=np.int64)).all()
                    and self.sublattice == tuple(range(len(self.sublattice)))
                    and not self.shifts.any())

    def __repr__(self) -> str:
        kind = "identity" if self.is_identity else ("rotation" if self.proper else "reflection")
        return f"SymmetryOp({kind}, matrix={self.matrix.tolist()}, sublattice={self.sublattice})"


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
        if not np.all(np.isfinite(self.vectors)):
            raise LatticeError(f"lattice '{name}': 'vectors' must be finite numbers, got "
                               f"{self.vectors.tolist()}")
        if abs(np.linalg.det(self.vectors)) < 1e-10:
            raise LatticeError(f"lattice '{name}': primitive vectors are linearly dependent")
        self.dim = self.vectors.shape[0]
        self.basis = np.asarray(basis, dtype=np.float64).reshape(-1, self.dim) \
            if np.size(basis) else np.zeros((0, self.dim))
        if len(self.basis) == 0:
            raise LatticeError(f"lattice '{name}': 'basis' must list at least one site")
        if not np.all(np.isfinite(self.basis)):
            raise LatticeError(f"lattice '{name}': 'basis' must be finite fractional "
                               f"coordinates, got {self.basis.tolist()}")
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
            default = spec.get("default", 0.0)
            if isinstance(default, bool) or not isinstance(default, (int, float)) \
                    or not np.isfinite(default):
                raise LatticeError(f"lattice '{name}': the default of shell '{shell}' must be a "
                                   f"finite real number, got {default!r}")
            self.defaults[str(shell)] = float(default)
            if not isinstance(spec["bonds"], (list, tuple)) or not spec["bonds"]:
                raise LatticeError(f"lattice '{name}': 'bonds' of shell '{shell}' must be a "
                                   "non-empty list of {from: int, to: int, offset: [ints]}, "
                                   f"got {spec['bonds']!r}")
            for b in spec["bonds"]:
                try:
                    bond = Bond(str(shell), _integer(b["from"]), _integer(b["to"]),
                                tuple(_integer(o) for o in b["offset"]))
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

    def structure(self, decimals: int = 9) -> tuple:
        """What the lattice is, without its name and default amplitudes.

        Two lattice definitions with equal structures give the same graphs
        (up to the hopping amplitudes), so a model trained on one applies to
        the other.

        Args:
            decimals: rounding of the vectors and basis coordinates.

        Returns:
            A hashable tuple of the rounded vectors and basis, the shell names
            and the bonds.
        """
        r = lambda a: tuple(np.round(a, decimals).ravel().tolist())
        return (self.dim, r(self.vectors), r(self.basis), tuple(self.shells),
                tuple((b.shell, b.source, b.target, b.offset) for b in self.bonds))

    def _bravais_matrices(self, tol: float) -> List[np.ndarray]:
        # integer M (column convention, f -> M f) with M^T G M = G: the orthogonal maps of the
        # Bravais lattice onto itself; column i of M is the image of a_i, a lattice vector of
        # the same length
        A = self.vectors.T
        G = A.T @ A
        # coefficient j of a lattice vector of length l is at most l |row j of A^-1|
        bounds = np.ceil(np.sqrt(np.diag(G)).max() * np.linalg.norm(np.linalg.inv(A), axis=1)
                         + tol).astype(np.int64)
        if np.prod(2 * bounds + 1) > 4_000_000:
            raise LatticeError(f"lattice '{self.name}': the primitive vectors are too skewed to "
                               "search their symmetries; give a reduced basis (the shortest "
                               "vectors that span the lattice)")
        grid = np.stack(np.meshgrid(*[np.arange(-b, b + 1) for b in bounds], indexing="ij"),
                        -1).reshape(-1, self.dim)
        norms = np.einsum("ni,ij,nj->n", grid, G, grid)
        cand = [grid[np.abs(norms - G[i, i]) < tol * max(1.0, G[i, i])] for i in range(self.dim)]
        out = []
        for cols in itertools.product(*cand):
            M = np.stack(cols, axis=1)
            if np.abs(M.T @ G @ M - G).max() < tol * max(1.0, np.abs(G).max()) \
                    and abs(round(np.linalg.det(M))) == 1:
                out.append(M.astype(np.int64))
        return out

    def symmetries(self, tol: float = 1e-6) -> List["SymmetryOp"]:
        """The point-group operations of the lattice, derived from its definition.

        An operation ``x -> R x + t`` (``R`` orthogonal) is kept when it maps
        the Bravais lattice, the basis (up to lattice translations) and every
        hopping shell's bonds onto themselves, so the tight-binding model (and
        every model trained on it) is invariant under it. ``R`` runs over the
        orthogonal maps of the Bravais lattice; ``t`` may be a fraction of a
        cell (the 60 degree rotation of the honeycomb lattice is about a
        hexagon centre). One operation is listed per ``R`` and image of basis
        site 0 (the space group modulo lattice translations).

        Args:
            tol: tolerance on coordinates (fractions of a cell).

        Returns:
            The :class:`SymmetryOp` list: the identity first, then the other
            rotations (by angle in 2D), then the reflections (improper
            operations). A lattice whose list holds the identity only has no
            symmetry to augment with.

        Raises:
            LatticeError: if the primitive vectors are so skewed that the
                search would be too large (give a reduced basis).
        """
        f = self.basis                                     # (n_basis, dim) fractional
        nb = len(f)
        bonds = {(b.shell, b.source, b.target, b.offset) for b in self.bonds}
        A = self.vectors.T
        ops = []
        for M in self._bravais_matrices(tol):
            for image0 in range(nb):
                tau = f[image0] - M @ f[0]
                sigma, shifts = [], []
                for b in range(nb):
                    g = M @ f[b] + tau
                    match = [c for c in range(nb)
                             if np.abs(g - f[c] - np.rint(g - f[c])).max() < tol]
                    if len(match) != 1:
                        break
                    sigma.append(match[0])
                    shifts.append(np.rint(g - f[match[0]]).astype(np.int64))
                if len(sigma) != nb or len(set(sigma)) != nb:
                    continue
                ok = all((b.shell, sigma[b.source], sigma[b.target],
                          tuple(int(x) for x in shifts[b.target] + M @ np.array(b.offset)
                                - shifts[b.source])) in bonds for b in self.bonds)
                if ok:
                    R = A @ M @ np.linalg.inv(A)
                    ops.append(SymmetryOp(matrix=M, rotation=R, translation=tau,
                                          sublattice=tuple(sigma),
                                          shifts=np.stack(shifts).astype(np.int64)))

        def order(op):
            ident = op.is_identity
            angle = 0.0
            if self.dim == 2:
                angle = math.atan2(op.rotation[1, 0], op.rotation[0, 0]) % (2 * math.pi)
                angle = round(angle, 6) % round(2 * math.pi, 6)
            return (not ident, not op.proper, angle, op.matrix.ravel().tolist(), op.sublattice)
        return sorted(ops, key=order)

    def point_group(self, tol: float = 1e-6) -> List[np.ndarray]:
        """Integer matrices of the lattice's rotations (proper operations of :meth:`symmetries`).

        Args:
            tol: tolerance on coordinates (fractions of a cell).

        Returns:
            Integer ``(dim, dim)`` matrices ``M`` acting on fractional cell
            coordinates (``n' = M n``), one per rotation of :meth:`symmetries`
            (4 on the square lattice, 6 on the triangular one); the identity is
            first.
        """
        return [op.matrix for op in self.symmetries(tol) if op.proper]

    def __repr__(self) -> str:
        return (f"Lattice({self.name!r}, dim={self.dim}, n_basis={self.n_basis}, "
                f"shells={self.shells})")


def available_lattices() -> List[str]:
    """Names of the built-in lattices (files in ``ecnn_pyg/lattices/``).

    Returns:
        Sorted lattice names, loadable with :func:`load_lattice`.
    """
    return sorted(p.stem for p in LATTICES_DIR.glob("*.yaml"))


def _integer(x) -> int:
    """``x`` as an int if it is an integer (not a bool, not 1.5); else ``ValueError``."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise ValueError(f"{x!r} is not an integer")
    return int(x)


def load_lattice(name_or_path: Union[str, Path, Lattice, Mapping]) -> Lattice:
    """Load a built-in lattice by name (``"square"``) or a lattice file by path.

    Args:
        name_or_path: a built-in name (no file suffix), the path of a ``.yaml``
            lattice file, a lattice definition (the mapping of such a file, as
            model checkpoints carry it) or a :class:`Lattice` (returned unchanged).

    Returns:
        The :class:`Lattice`.

    Raises:
        LatticeError: if the name is unknown, the file does not exist, is not
            valid YAML, or does not define a valid lattice.
    """
    if isinstance(name_or_path, Lattice):
        return name_or_path
    if isinstance(name_or_path, Mapping):
        return Lattice.from_dict(name_or_path)
    if not isinstance(name_or_path, (str, Path)):
        raise LatticeError(f"a lattice is a built-in name, the path of a .yaml file or a "
                           f"lattice definition (mapping), got {type(name_or_path).__name__}")
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


def is_builtin(lattice: Lattice) -> bool:
    """Whether ``lattice`` is the built-in lattice of its name (same structure).

    Args:
        lattice: a :class:`Lattice`.

    Returns:
        ``True`` if a built-in lattice of that name exists and has the same
        :meth:`~Lattice.structure` (vectors, basis, shells, bonds).
    """
    path = LATTICES_DIR / f"{lattice.name}.yaml"
    if not path.is_file():
        return False
    return load_lattice(lattice.name).structure() == lattice.structure()


def lattice_reference(lattice: Union[str, Path, Lattice, Mapping]) -> Union[str, dict]:
    """How a model config refers to a lattice so that it can be rebuilt anywhere.

    A built-in lattice is referred to by its name; any other (a file given by
    path, a definition) by its definition, since a path may move.

    Args:
        lattice: a built-in name, a lattice file path, a definition or a :class:`Lattice`.

    Returns:
        The built-in name, or the definition mapping (:meth:`Lattice.to_dict`).

    Raises:
        LatticeError: if the lattice cannot be loaded.
    """
    lat = load_lattice(lattice)
    return lat.name if is_builtin(lat) else lat.to_dict()
