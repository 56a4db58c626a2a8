r"""Exact diagonalization of the Kondo lattice (double-exchange) model.

.. math::

    H_{el}(S) = -\sum_{\langle r r' \rangle} t_{rr'} (c^\dagger_{r\alpha} c_{r'\alpha} + h.c.)
                - J \sum_r s_r \cdot S_r \; [-\mu N_{el}],
    \qquad s_r = \tfrac12 c^\dagger_{r\alpha} \sigma_{\alpha\beta} c_{r\beta},

on any lattice graph (:func:`ecnn_pyg.lattice_graph`, :func:`ecnn_pyg.from_networkx`),
plus the Zeeman term :math:`-H_z \sum_r S^z_r` of the localized spins.
Single-particle basis index ``2 * site + spin`` (spin 0 = up); on-site block
:math:`-(J/2)\, S\cdot\sigma`.

Energies (``energy``):

* canonical, ``electrons`` (or ``filling = electrons / (2 N)``):
  :math:`E = \sum_{n < N_e} \varepsilon_n`;
* grand canonical at :math:`T_{el} = 0`, ``mu``:
  :math:`E = \sum_{\varepsilon_n < \mu} (\varepsilon_n - \mu)`;
* grand canonical at :math:`T_{el} > 0`: the grand potential
  :math:`\Omega = -T \sum_n \ln(1 + e^{-(\varepsilon_n - \mu)/T})`.

The effective field :math:`B_r = -\partial E / \partial S_r` (Hellmann-Feynman,
full 3-vector) is :math:`B_r = (J/2)\,\mathrm{Tr}[\sigma \rho_{rr}] + H_z \hat z`,
with :math:`\rho` the one-body density matrix of the occupied states.
Everything is float64; the eigensolver is LAPACK's MRRR (``zheevr``) through
SciPy, asking only for the occupied eigenpairs.

Twisted boundary conditions (``twists=(m1, m2)``) give the exact energy and field
of the configuration tiled :math:`m_1 \times m_2` times, i.e. of the
:math:`m_1 L_1 \times m_2 L_2` lattice, from :math:`m_1 m_2` Bloch sectors of the
small supercell: a bond that crosses the boundary with ``cell_shift`` :math:`n`
picks up the phase :math:`e^{i\theta\cdot n}`, :math:`\theta = 2\pi (k_1/m_1,
k_2/m_2)`. A 12 x 12 triple-Q crystal with ``twists=(3, 3)`` is the 36 x 36 ED at
1/60 of the cost; large ``twists`` approach the thermodynamic limit. The sector
matrices are built when needed, so memory stays that of one supercell.
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Optional, Tuple

import numpy as np

from . import keys as K
from .runtime import check_memory
from .spins import as_spin_batch, supercell_shape

__all__ = ["KondoED", "EDError", "hopping_matrix", "ed_memory_bytes", "ed_memory_of"]

#: dense 2N x 2N matrices alive at the peak of building a KondoED and of one call
#: (3.5 to 3.6 measured with tracemalloc at N = 196 to 900; see ed_memory_bytes)
_ED_PEAK_MATRICES = 4


def ed_memory_bytes(n_sites: int, dtype=np.complex128, *, sectors: int = 1,
                    keep_sectors: bool = False) -> int:
    r"""Estimated peak memory of one :class:`KondoED` evaluation, in bytes.

    The single-particle matrix is :math:`2N \times 2N`; at the peak of a call
    up to four such matrices are alive (the stored hopping matrix, the
    configuration's matrix, LAPACK's copy of it and the eigenvectors; 3.5 to
    3.6 measured with ``tracemalloc``). A canonical run with ``twists`` keeps
    every sector's eigenvectors until the levels of all sectors are ordered
    (``keep_sectors=True``: one matrix more per sector; 7.2 measured with 4
    sectors, estimated 8).

    Args:
        n_sites: number of lattice sites :math:`N`.
        dtype: element type of the matrix (complex128, as :class:`KondoED` uses).
        sectors: number of twist (Bloch) sectors.
        keep_sectors: whether all sectors' eigenvectors are held at once.

    Returns:
        The estimate in bytes.
    """
    matrix = float(np.dtype(dtype).itemsize) * (2 * int(n_sites)) ** 2
    held = _ED_PEAK_MATRICES + (max(int(sectors), 1) if keep_sectors else 0)
    return int(held * matrix)


def ed_memory_of(lattice, size, twists=None, canonical: bool = True) -> int:
    """:func:`ed_memory_bytes` of a run given by its config values, before any graph exists.

    Args:
        lattice: a :class:`~ecnn_pyg.lattice.Lattice`.
        size: ``L`` or ``(L1, L2[, L3])`` unit cells (integers; checked by ``lattice_graph``).
        twists: twist sectors per axis (int, list or None).
        canonical: fixed electron number (all sectors' eigenvectors held at once).

    Returns:
        The estimate in bytes.
    """
    cells = int(size) ** lattice.dim if isinstance(size, int) else int(np.prod([int(x) for x in size]))
    t = twists or 1
    sectors = int(np.prod(t if isinstance(t, list) else [t] * lattice.dim))
    return ed_memory_bytes(cells * lattice.n_basis, sectors=sectors,
                           keep_sectors=sectors > 1 and canonical)


class EDError(ValueError):
    """Inconsistent or impossible parameters of the electronic model."""


def hopping_matrix(graph, mu: float = 0.0, twist=None) -> np.ndarray:
    r"""Dense ``(2N, 2N)`` complex single-particle matrix of the hopping (and :math:`-\mu`).

    Every directed edge ``j -> i`` of the graph adds :math:`-t\, e^{i\theta\cdot n}` to
    ``H[2i+s, 2j+s]`` (:math:`n` the edge's ``cell_shift``, :math:`\theta` the
    ``twist``; no phase without one); the graph holds both directions of each
    bond, so ``H`` is Hermitian.
    Entries are accumulated, so bonds meeting their periodic images in small
    supercells add up (as the Bloch sum over that supercell's momenta does).

    Args:
        graph: lattice graph with ``edge_index`` and optionally ``hopping``
            (default amplitude 1 per edge) and ``cell_shift``.
        mu: chemical potential, subtracted on the diagonal.
        twist: boundary twist angles :math:`\theta` (one per lattice
            dimension, radians), or ``None`` for periodic boundaries.

    Returns:
        ``(2N, 2N)`` complex128 Hermitian matrix, basis index ``2 * site + spin``.

    Raises:
        EDError: if an amplitude is not finite, the matrix is not Hermitian
            (a bond lacks its reverse direction with equal amplitude), or a
            twist is asked of a graph without ``cell_shift`` or with another
            number of dimensions.
    """
    n = int(graph.num_nodes)
    ei = graph[K.EDGE_INDEX].cpu().numpy()
    t = _amplitudes(graph)
    h = np.zeros((2 * n, 2 * n), dtype=np.complex128)
    for s in (0, 1):
        np.add.at(h, (2 * ei[1] + s, 2 * ei[0] + s), -t)
    idx = np.arange(2 * n)
    h[idx, idx] -= mu
    if not np.allclose(h, h.conj().T):
        raise EDError("the hopping matrix is not Hermitian: every bond needs both directions "
                      "with equal amplitude in edge_index")
    if twist is not None:
        _add_twist(h, _boundary_bonds(graph), twist)
    return h


def _amplitudes(graph) -> np.ndarray:
    ne = graph[K.EDGE_INDEX].shape[1]
    t = graph[K.HOPPING].cpu().numpy().astype(np.float64) if K.HOPPING in graph else np.ones(ne)
    if not np.isfinite(t).all():
        raise EDError("hopping amplitudes must be finite")
    return t


def _boundary_bonds(graph):
    """``(rows, cols, -t, cell_shift)`` of the edges that cross the supercell boundary."""
    if K.CELL_SHIFT not in graph:
        raise EDError("twisted boundaries need the graph's cell_shift edge attribute")
    ei = graph[K.EDGE_INDEX].cpu().numpy()
    shift = graph[K.CELL_SHIFT].cpu().numpy().astype(np.float64)
    b = (shift != 0).any(axis=1)
    return 2 * ei[1, b], 2 * ei[0, b], -_amplitudes(graph)[b], shift[b]


def _add_twist(h: np.ndarray, bonds, twist) -> None:
    r"""Multiply the boundary bonds of ``h`` (in place) by :math:`e^{i\theta\cdot n}`."""
    rows, cols, amp, shift = bonds
    theta = np.asarray(twist, dtype=np.float64).reshape(-1)
    if shift.shape[1] != len(theta):
        raise EDError(f"twist needs one angle per lattice dimension ({shift.shape[1]}), "
                      f"got {len(theta)}")
    d = amp * (np.exp(1j * (shift @ theta)) - 1.0)
    for s in (0, 1):
        np.add.at(h, (rows + s, cols + s), d)


def _eigh(*args, **kwargs):
    """``scipy.linalg.eigh``, imported on first use (the memory estimate needs no SciPy)."""
    import scipy.linalg
    return scipy.linalg.eigh(*args, **kwargs)


def _real(v, name: str) -> float:
    """``v`` as a finite float; a bool, a complex number or a string is refused, not converted."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise EDError(f"{name} must be a finite real number, got {v!r} "
                      f"({type(v).__name__})")
    if not math.isfinite(float(v)):
        raise EDError(f"{name} must be a finite number, got {v}")
    return float(v)


def _degenerate_at_fermi_level(w: np.ndarray, ne: int) -> bool:
    """Whether the ``ne``-th and ``ne + 1``-th of the ascending levels ``w`` coincide."""
    return 0 < ne < len(w) and w[ne] - w[ne - 1] < 1e-10 * max(1.0, abs(w[ne]))


_DEGENERATE = ("the N_e-th and (N_e+1)-th levels are degenerate: the canonical field is not "
               "unique for this configuration")


class KondoED:
    r"""Exact energy and effective field of the Kondo lattice model on a graph.

    Args:
        graph: lattice graph (``edge_index``, ``hopping``; ``size`` optional).
        J: Kondo / Hund coupling :math:`J` (on-site block :math:`-(J/2) S\cdot\sigma`).
        electrons: number of electrons (canonical ensemble), ``0 <= N_e <= 2N``.
        filling: ``N_e / (2N)`` instead of ``electrons``; must give an integer.
        mu: chemical potential (grand canonical ensemble).
        temperature: electron temperature (grand canonical only; default 0).
        zeeman: field :math:`H_z` on the localized spins (energy :math:`-H_z\sum S^z`).
        ignore_memory_check: build even when :func:`ed_memory_bytes` exceeds
            the available memory (see :func:`ecnn_pyg.runtime.check_memory`).
        twists: ``(m1, m2, ...)`` (or one int for every dimension): energy and
            field of the configuration tiled ``m1 x m2`` times, from that many
            twisted-boundary (Bloch) sectors; the energy is per copy of the
            supercell and ``electrons`` counts the electrons of one copy.
            ``None`` (default) is the plain periodic supercell.

    Raises:
        EDError: if ``J``, ``temperature`` or ``zeeman`` is not finite, the
            temperature is negative, not exactly one of ``electrons``,
            ``filling``, ``mu`` is given, the filling or electron number is out
            of range or not an integer number of electrons, a finite
            temperature is asked for in the canonical ensemble, or the hopping
            matrix is invalid (see :func:`hopping_matrix`), or ``twists`` are
            not positive integers, one per lattice dimension.
        InsufficientMemoryError: if the estimated memory of one evaluation
            (:func:`ed_memory_bytes`) exceeds the machine's available memory
            and ``ignore_memory_check`` is not set.

    Example::

        g = lattice_graph("square", 30, {"t1": 1.0})
        ed = KondoED(g, J=7.0, electrons=864)
        energy, field = ed.energy_field(spins)      # (n,), (n, 900, 3)
    """

    def __init__(self, graph, J: float, electrons: Optional[int] = None,
                 filling: Optional[float] = None, mu: Optional[float] = None,
                 temperature: float = 0.0, zeeman: float = 0.0, twists=None,
                 ignore_memory_check: bool = False):
        self.graph = graph
        self.n_sites = int(graph.num_nodes)
        n_orb = 2 * self.n_sites
        for name, v in (("J", J), ("temperature", temperature), ("zeeman", zeeman)):
            _real(v, name)
        self.J, self.temperature, self.zeeman = float(J), float(temperature), float(zeeman)
        if self.temperature < 0:
            raise EDError(f"temperature must be >= 0, got {temperature}")
        given = [x is not None for x in (electrons, filling, mu)]
        if sum(given) != 1:
            raise EDError("give exactly one of electrons, filling (canonical) or mu "
                          "(grand canonical)")
        if filling is not None:
            f = _real(filling, "filling")
            if not 0.0 <= f <= 1.0:
                raise EDError(f"filling must lie in [0, 1] (electrons per spin-orbital), got {f}")
            ne = f * n_orb
            if abs(ne - round(ne)) > 1e-6:
                raise EDError(f"filling {f} gives {ne:g} electrons on {self.n_sites} sites; "
                              f"it must give an integer (e.g. electrons={round(ne)})")
            electrons = int(round(ne))
        if electrons is not None:
            ne = _real(electrons, "electrons")
            if int(ne) != ne or not 0 <= int(ne) <= n_orb:
                raise EDError(f"electrons must be an integer in [0, {n_orb}] "
                              f"(2 x {self.n_sites} sites), got {electrons}")
            if self.temperature > 0:
                raise EDError("a finite electron temperature is supported in the grand "
                              "canonical ensemble (mu) only")
            self.electrons, self.mu = int(ne), None
        else:
            self.electrons, self.mu = None, _real(mu, "mu")
        self.twists = self._twist_counts(graph, twists)
        n_sec = int(np.prod(self.twists)) if self.twists else 1
        check_memory(ed_memory_bytes(self.n_sites, sectors=n_sec,
                                     keep_sectors=self.canonical and n_sec > 1),
                     f"exact diagonalization of {self.n_sites} sites"
                     + (f" ({n_sec} twist sectors)" if n_sec > 1 else ""),
                     allow=ignore_memory_check,
                     override="ignore_memory_check=True (command line: --ignore-memory-check)")
        grids = np.meshgrid(*[np.arange(m) / m for m in self.twists or (1,)], indexing="ij")
        thetas = 2 * np.pi * np.stack([g.ravel() for g in grids], axis=-1)
        self._thetas = None if self.twists is None else thetas
        self._h0 = hopping_matrix(graph, mu=self.mu or 0.0)
        # twisted: the phases of the boundary bonds are added per sector (no stored copies)
        self._bonds = None if self.twists is None else _boundary_bonds(graph)
        self.num_sectors = len(thetas)
        self._diag = np.arange(n_orb)
        self._shape = supercell_shape(graph)    # supercell shape the spins may take

    @staticmethod
    def _twist_counts(graph, twists):
        if twists is None:
            return None
        dim = graph[K.CELL_SHIFT].shape[-1] if K.CELL_SHIFT in graph else None
        if dim is None:
            raise EDError("twists need the graph's cell_shift edge attribute")
        m = (twists,) * dim if np.ndim(twists) == 0 else tuple(twists)
        if len(m) != dim or any(int(x) != x or int(x) < 1 for x in m):
            raise EDError(f"twists must be {dim} positive integers (one per lattice dimension), "
                          f"got {twists}")
        return tuple(int(x) for x in m)

    @property
    def canonical(self) -> bool:
        """Whether the electron number is fixed (canonical ensemble) rather than ``mu``."""
        return self.electrons is not None

    def params(self) -> dict:
        """Model parameters (stored with data sets).

        Returns:
            ``{"J", "electrons", "mu", "temperature", "zeeman"}`` (and
            ``"twists"`` when set); the unused one of ``electrons`` / ``mu`` is
            ``None``.
        """
        out = {"J": self.J, "electrons": self.electrons, "mu": self.mu,
               "temperature": self.temperature, "zeeman": self.zeeman}
        if self.twists is not None:
            out["twists"] = list(self.twists)
        return out

    # ------------------------------------------------------------------ core
    def hamiltonian(self, spin: np.ndarray, sector: int = 0) -> np.ndarray:
        r"""Single-particle matrix ``(2N, 2N)`` for one configuration ``(N, 3)``.

        Args:
            spin: ``(N, 3)`` spins (not validated).
            sector: index of the twist (Bloch) sector, ``0`` (no twist) without
                ``twists``.

        Returns:
            ``(2N, 2N)`` complex matrix: the hopping (and :math:`-\mu`) plus the
            on-site blocks :math:`-(J/2)\, S_r\cdot\sigma`.
        """
        s = np.asarray(spin, dtype=np.float64)
        h = self._h0.copy()
        if self._bonds is not None:
            _add_twist(h, self._bonds, self._thetas[sector])
        a = -0.5 * self.J
        up, dn = self._diag[0::2], self._diag[1::2]
        h[up, up] += a * s[:, 2]
        h[dn, dn] -= a * s[:, 2]
        h[up, dn] += a * (s[:, 0] - 1j * s[:, 1])
        h[dn, up] += a * (s[:, 0] + 1j * s[:, 1])
        return h

    def _solve(self, h: np.ndarray, vectors: bool):
        """Occupied eigenpairs (and their occupations) of ``h``."""
        kw = dict(overwrite_a=True, check_finite=False, driver="evr", eigvals_only=not vectors)
        n_orb = h.shape[0]
        if self.canonical:
            ne = self.electrons
            if ne == 0:
                return np.zeros(0), np.zeros((n_orb, 0)), np.zeros(0)
            hi = min(ne, n_orb - 1)            # one level above: Fermi-level degeneracy check
            out = _eigh(h, subset_by_index=[0, hi], **kw)
            w = out if not vectors else out[0]
            if vectors and hi == ne and _degenerate_at_fermi_level(w, ne):
                warnings.warn(_DEGENERATE, RuntimeWarning, stacklevel=3)
            occ = np.ones(ne)
            if vectors:
                return w[:ne], out[1][:, :ne], occ
            return w[:ne], None, occ
        # grand canonical: the matrix already holds -mu
        T = self.temperature
        top = 0.0 if T == 0 else 40.0 * T
        out = _eigh(h, subset_by_value=(-np.inf, top), **kw)
        w = out if not vectors else out[0]
        if T == 0:
            w = w[w < 0]
            occ = np.ones(len(w))
        else:
            occ = 0.5 * (1.0 - np.tanh(0.5 * w / T))      # Fermi function, stable
        v = out[1][:, :len(w)] if vectors else None
        return w, v, occ

    def _sectors(self, spin: np.ndarray, vectors: bool):
        """``[(w, v, occ)]`` of the occupied states of every twist sector."""
        if self._thetas is None:
            return [self._solve(self.hamiltonian(spin), vectors)]
        if not self.canonical:
            return [self._solve(self.hamiltonian(spin, k), vectors) for k in range(self.num_sectors)]
        # canonical: the lowest N_e * (number of sectors) levels of all sectors together
        kw = dict(overwrite_a=True, check_finite=False, driver="evr", eigvals_only=not vectors)
        outs = [_eigh(self.hamiltonian(spin, k), **kw) for k in range(self.num_sectors)]
        ws = [o[0] if vectors else o for o in outs]
        n_occ = self.electrons * len(ws)
        levels = np.concatenate(ws)
        order = np.argsort(levels, kind="stable")
        if vectors and _degenerate_at_fermi_level(levels[order], n_occ):
            warnings.warn(_DEGENERATE, RuntimeWarning, stacklevel=3)
        order = order[:n_occ]
        sector_of = np.repeat(np.arange(len(ws)), [len(w) for w in ws])[order]
        level_of = np.concatenate([np.arange(len(w)) for w in ws])[order]
        res = []
        for k, w in enumerate(ws):
            sel = np.sort(level_of[sector_of == k])
            v = outs[k][1][:, sel] if vectors else None
            res.append((w[sel], v, np.ones(len(sel))))
        return res

    def _energy(self, w: np.ndarray, occ: np.ndarray) -> float:
        if self.canonical or self.temperature == 0:
            return float(w.sum())
        T = self.temperature
        return float(-T * np.logaddexp(0.0, -w / T).sum())

    def _check(self, spins):
        return as_spin_batch(spins, self.n_sites, self._shape)

    def energy(self, spins) -> np.ndarray:
        """Total energy ``(n,)`` (float for one configuration), eigenvalues only.

        Args:
            spins: ``(N, 3)``, ``(n, N, 3)`` or with the sites as the supercell
                shape; unit vectors.

        Returns:
            ``(n,)`` energies including the Zeeman term, or a float for a
            single configuration.

        Raises:
            SpinError: if the spins have the wrong shape, are not finite or
                not of unit length.
        """
        s, single = self._check(spins)
        e = np.empty(len(s))
        for k, sk in enumerate(s):
            e[k] = sum(self._energy(w, occ) for w, _, occ in self._sectors(sk, False)) \
                / self.num_sectors - self.zeeman * sk[:, 2].sum()
        return e[0] if single else e

    def energy_field(self, spins) -> Tuple[np.ndarray, np.ndarray]:
        r"""Energy ``(n,)`` and field ``B = -dE/dS`` ``(n, N, 3)`` of spin configurations.

        Args:
            spins: ``(N, 3)``, ``(n, N, 3)`` or with the sites as the supercell
                shape; unit vectors.

        Returns:
            ``(energy, field)``: ``(n,)`` and ``(n, N, 3)`` (field including the
            Zeeman :math:`H_z \hat z`); a single configuration returns a float
            and an ``(N, 3)`` array.

        Raises:
            SpinError: if the spins have the wrong shape, are not finite or
                not of unit length.
        """
        s, single = self._check(spins)
        n = len(s)
        energy = np.empty(n)
        field = np.empty((n, self.n_sites, 3))
        m = self.num_sectors
        for k, sk in enumerate(s):
            sectors = self._sectors(sk, True)
            energy[k] = sum(self._energy(w, occ) for w, _, occ in sectors) / m \
                - self.zeeman * sk[:, 2].sum()
            field[k] = sum(self._field(v, occ) for _, v, occ in sectors) / m
        field[..., 2] += self.zeeman
        return (energy[0], field[0]) if single else (energy, field)

    def _field(self, v: np.ndarray, occ: np.ndarray) -> np.ndarray:
        """(J/2) Tr[sigma rho_rr] from the occupied eigenvectors ``v`` (2N, m)."""
        u, d = v[0::2], v[1::2]
        ud = (u.conj() * d) @ occ                     # sum_n f_n u_n^* d_n, (N,)
        nz = (u.real ** 2 + u.imag ** 2 - d.real ** 2 - d.imag ** 2) @ occ
        half = 0.5 * self.J
        return np.stack([2 * half * ud.real, 2 * half * ud.imag, half * nz], axis=-1)

    def __call__(self, spins):
        return self.energy_field(spins)

    def __repr__(self) -> str:
        ens = f"electrons={self.electrons}" if self.canonical else f"mu={self.mu}"
        tw = "" if self.twists is None else f", twists={self.twists}"
        return (f"KondoED(n_sites={self.n_sites}, J={self.J}, {ens}, "
                f"temperature={self.temperature}, zeeman={self.zeeman}{tw})")

