r"""Invariant-descriptor fully connected network (IFNN), the baseline of the paper.

Zhang & Chern, PRL 127, 146401 (2021) (public code: zhangpuhan/ML_double_exchange);
Miyazaki (2023) compares the ECNN against it on the square protocol (validation
RMSE(B) 0.148 vs 0.0481). This is our own implementation of the method:

* **Neighbourhood.** For every site :math:`0`, the neighbours :math:`j` at cell
  offsets with :math:`0 < |\mathbf r_j|^2 \le r^2_{max}` (``radius2 = 26`` on the
  square lattice: 88 sites in 15 symmetry shells; a shell is an orbit of the
  offsets under the lattice rotations and a mirror).
* **Bond descriptors** :math:`\mathbf S_a\cdot\mathbf S_b`: every pair among
  the centre and the ``inner`` neighbours with :math:`|\mathbf r|^2 \le`
  ``pair_radius2`` (= 9: 28 neighbours, :math:`\binom{29}{2} = 406` pairs), plus
  the centre with each of the remaining outer neighbours (60): 466 on the square
  lattice (the reference's 466).
* **Chirality descriptors** :math:`\mathbf S_0\cdot(\mathbf S_j\times\mathbf S_{j'})`
  for consecutive members :math:`j, j'` of each shell, ordered by polar angle
  (cyclically): one per neighbour, 88.
* 466 + 88 = **554** inputs, invariant under global spin rotations; a lattice
  rotation permutes them. A ReLU network (default ``554-1024-512-256-128-64-1``)
  maps them to the local energy :math:`\epsilon_0`; :math:`E = \sum_r \epsilon_r`,
  :math:`\mathbf B = -\partial E/\partial\mathbf S` by autograd (float64 in the paper).

The neighbour tables are built once per graph from the cell coordinates and
applied with a gather; descriptors are two ``einsum``-like contractions, no loop
over sites. Requires a periodic supercell of a one-site-per-cell lattice whose
node order is the ``i1 * L2 + i2`` of :func:`~ecnn_pyg.lattice_graph`.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from . import keys as K
from .lattice import load_lattice
from .nn import ModelInputError
from .nn._grad import energy_outputs
from .nn._configurable import ConfigurableModel

__all__ = ["IFNN", "IFNN_DEFAULT_CONFIG", "descriptor_tables", "DescriptorTables"]

#: Paper/reference defaults of the baseline.
IFNN_DEFAULT_CONFIG: Dict[str, Any] = {
    "lattice": "square",
    "radius2": 26.0,
    "pair_radius2": 9.0,
    "hidden": [1024, 512, 256, 128, 64],
    "energy_scale": 1.0,
    "energy_shift": 0.0,
}


class DescriptorTables:
    """Index tables of the descriptors of one lattice (all numpy, built once).

    Attributes:
        offsets: ``(M, dim)`` integer cell offsets of the neighbours (slot 1..M;
            slot 0 is the centre).
        shells: ``(M,)`` shell index of each neighbour slot.
        pairs: ``(P, 2)`` slots ``(a, b)`` of the bond descriptors ``S_a . S_b``.
        chiral: ``(C, 2)`` slots ``(j, j')`` of ``S_0 . (S_j x S_j')``.

    Args:
        offsets: see Attributes.
        shells: see Attributes.
        pairs: see Attributes.
        chiral: see Attributes.
    """

    def __init__(self, offsets, shells, pairs, chiral):
        self.offsets, self.shells, self.pairs, self.chiral = offsets, shells, pairs, chiral

    @property
    def num_neighbors(self) -> int:
        """Number of neighbour slots ``M`` (the centre not counted)."""
        return len(self.offsets)

    @property
    def num_shells(self) -> int:
        """Number of symmetry shells of the neighbourhood."""
        return int(self.shells.max()) + 1 if len(self.shells) else 0

    @property
    def num_descriptors(self) -> int:
        """Number of descriptors: bond pairs plus chiralities (554 on the square lattice)."""
        return len(self.pairs) + len(self.chiral)

    def __repr__(self) -> str:
        return (f"DescriptorTables(neighbors={self.num_neighbors}, shells={self.num_shells}, "
                f"pairs={len(self.pairs)}, chiralities={len(self.chiral)}, "
                f"total={self.num_descriptors})")


def descriptor_tables(lattice="square", radius2: float = 26.0,
                      pair_radius2: float = 9.0) -> DescriptorTables:
    r"""Neighbour offsets, symmetry shells, pair and chirality slots of a lattice.

    Args:
        lattice: a 2D one-site-per-cell lattice (a :class:`~ecnn_pyg.Lattice`,
            built-in name or file path).
        radius2: squared radius of the neighbourhood, :math:`0 < |\mathbf r|^2 \le r^2_{max}`.
        pair_radius2: squared radius within which all pairs of sites (centre
            included) enter as bond descriptors; beyond it only the pairs with
            the centre.

    Returns:
        The :class:`DescriptorTables`; slots are ordered by shell, then polar
        angle.

    Raises:
        ValueError: if the lattice is not 2D with one site per cell.
        LatticeError: if the lattice cannot be loaded.
    """
    lat = load_lattice(lattice)
    if lat.dim != 2 or lat.n_basis != 1:
        raise ValueError("the IFNN descriptors need a 2D lattice with one site per cell")
    A = lat.vectors                          # rows a1, a2
    Ainv = np.linalg.inv(A)
    tol = 1e-8
    n = int(math.ceil(math.sqrt(radius2) / min(np.linalg.svd(A, compute_uv=False)))) + 1
    cand = np.array([(i, j) for i in range(-n, n + 1) for j in range(-n, n + 1)
                     if (i, j) != (0, 0)], dtype=np.int64)
    r = cand @ A
    d2 = (r ** 2).sum(1)
    keep = d2 <= radius2 + tol
    cand, r, d2 = cand[keep], r[keep], d2[keep]
    # symmetry operations in cell coordinates: rotations of the lattice and one mirror
    rots = lat.point_group()
    # the Cartesian mirror y -> -y in cell coordinates (column convention n' = Mc n)
    Mc = Ainv.T @ np.diag([1.0, -1.0]) @ A.T           # n' = Mc n (column convention)
    ops = [R for R in rots]
    if np.abs(Mc - np.rint(Mc)).max() < tol:
        Mi = np.rint(Mc).astype(np.int64)
        ops = ops + [R @ Mi for R in rots]
    key_of = {tuple(c): k for k, c in enumerate(cand.tolist())}
    shell = -np.ones(len(cand), dtype=np.int64)
    order = np.lexsort((np.arctan2(r[:, 1], r[:, 0]), np.round(d2, 6)))
    n_shell = 0
    for k in order:
        if shell[k] >= 0:
            continue
        for G in ops:
            img = tuple(int(x) for x in G @ cand[k])
            if img in key_of:
                shell[key_of[img]] = n_shell
        n_shell += 1
    ang = np.mod(np.arctan2(r[:, 1], r[:, 0]), 2 * math.pi)
    # slots ordered by shell, then polar angle
    idx = np.lexsort((np.round(ang, 9), shell))
    offsets, shells, d2_s = cand[idx], shell[idx], d2[idx]
    slots = np.arange(1, len(offsets) + 1)
    inner = np.concatenate([[0], slots[d2_s <= pair_radius2 + tol]])
    outer = slots[d2_s > pair_radius2 + tol]
    pairs = [(a, b) for i, a in enumerate(inner) for b in inner[i + 1:]]
    pairs += [(0, b) for b in outer]
    chiral = []
    for s in range(n_shell):
        members = slots[shells == s]
        for i in range(len(members)):
            chiral.append((members[i], members[(i + 1) % len(members)]))
    return DescriptorTables(offsets, shells, np.array(pairs, dtype=np.int64).reshape(-1, 2),
                            np.array(chiral, dtype=np.int64).reshape(-1, 2))


class IFNN(ConfigurableModel, torch.nn.Module):
    r"""Invariant-descriptor fully connected network (Zhang & Chern 2021).

    Args:
        lattice (str): lattice the descriptor tables are built for.
        radius2 (float): squared radius of the neighbourhood (26: 88 neighbours).
        pair_radius2 (float): squared radius within which all pairs enter (9).
        hidden (sequence of int): hidden widths of the ReLU network.
        energy_scale (float): :math:`a` in :math:`\epsilon \to a\epsilon + b`.
        energy_shift (float): :math:`b` in :math:`\epsilon \to a\epsilon + b`.

    Shapes:
        - **input:** a graph (``Data`` or ``Batch``) of :func:`~ecnn_pyg.lattice_graph`,
          spins :math:`(N, 3)`
        - **output:** ``{"energy": (B,), "local_energy": (N,), "field": (N, 3)}``
    """

    DEFAULT_CONFIG = IFNN_DEFAULT_CONFIG

    def __init__(self, lattice: str = "square", radius2: float = 26.0, pair_radius2: float = 9.0,
                 hidden: Sequence[int] = (1024, 512, 256, 128, 64), energy_scale: float = 1.0,
                 energy_shift: float = 0.0):
        super().__init__()
        lat = load_lattice(lattice)
        self.lattice = lat.name
        self.tables = descriptor_tables(lat, radius2, pair_radius2)
        self.energy_scale, self.energy_shift = float(energy_scale), float(energy_shift)
        self._config = dict(lattice=lat.name, radius2=float(radius2),
                            pair_radius2=float(pair_radius2), hidden=[int(h) for h in hidden],
                            energy_scale=float(energy_scale), energy_shift=float(energy_shift))
        t = self.tables
        self.register_buffer("offsets", torch.from_numpy(t.offsets), persistent=False)
        self.register_buffer("pair_a", torch.from_numpy(t.pairs[:, 0]), persistent=False)
        self.register_buffer("pair_b", torch.from_numpy(t.pairs[:, 1]), persistent=False)
        self.register_buffer("chi_a", torch.from_numpy(t.chiral[:, 0]), persistent=False)
        self.register_buffer("chi_b", torch.from_numpy(t.chiral[:, 1]), persistent=False)
        widths = [t.num_descriptors] + [int(h) for h in hidden] + [1]
        layers: List[torch.nn.Module] = []
        for i in range(len(widths) - 1):
            layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
            if i < len(widths) - 2:
                layers.append(torch.nn.ReLU())
        self.mlp = torch.nn.Sequential(*layers)
        self.to(torch.float64)
        self._cache = None

    @property
    def num_descriptors(self) -> int:
        """Number of input descriptors of the network (554 on the square lattice)."""
        return self.tables.num_descriptors


    # --------------------------------------------------------------- tables
    def neighbor_table(self, data) -> Tensor:
        """``(N, 1 + M)`` global node index of the centre and its neighbours.

        Cached while the graph's ``cell`` tensor is unchanged.

        Args:
            data: graph (``Data`` or ``Batch``) of :func:`~ecnn_pyg.lattice_graph`
                with ``cell`` and ``size``.

        Returns:
            ``(N, 1 + M)`` long tensor; column 0 is the site itself.

        Raises:
            ModelInputError: if the lattice has more than one site per cell.
        """
        cell = data[K.CELL]
        c = self._cache
        if c is not None and c[0] is cell and c[1] == cell._version and c[2] == data.num_nodes:
            return c[3]
        n = int(data.num_nodes)
        size = data[K.SIZE].view(-1, cell.shape[1]).to(cell.device)
        batch = data.batch if getattr(data, "batch", None) is not None else \
            torch.zeros(n, dtype=torch.long, device=cell.device)
        ptr = getattr(data, "ptr", None)
        if ptr is None:
            ptr = torch.tensor([0, n], device=cell.device)
        L = size[batch]                                           # (N, dim)
        if K.SUBLATTICE in data and int(data[K.SUBLATTICE].max()) != 0:
            raise ModelInputError("the IFNN needs a lattice with one site per cell")
        local = torch.remainder(cell[:, None, :] + self.offsets[None].to(cell.device),
                                L[:, None, :])                     # (N, M, dim)
        strides = torch.ones_like(L)
        for d in range(L.shape[1] - 2, -1, -1):
            strides[:, d] = strides[:, d + 1] * L[:, d + 1]
        idx = (local * strides[:, None, :]).sum(-1) + ptr[batch][:, None]
        centre = torch.arange(n, device=cell.device)[:, None]
        table = torch.cat([centre, idx], dim=1)
        self._cache = (cell, cell._version, data.num_nodes, table)
        return table

    def _check(self, data, spin: Tensor) -> None:
        n = int(data.num_nodes)
        if not torch.is_tensor(spin) or spin.shape != (n, 3):
            shape = tuple(spin.shape) if torch.is_tensor(spin) else type(spin).__name__
            raise ModelInputError(f"spins must have shape (num_nodes, 3) = ({n}, 3), got {shape}")
        names = data[K.LATTICE] if K.LATTICE in data else None
        names = [names] if isinstance(names, str) else list(names or [])
        for name in set(names):
            if name != self.lattice:
                raise ModelInputError(f"IFNN built for lattice {self.lattice!r} (its neighbour "
                                      f"shells and descriptors), got a graph of lattice {name!r}")
        for key in (K.CELL, K.SIZE):
            if key not in data:
                raise ModelInputError(f"the IFNN needs the graph's '{key}' (use lattice_graph)")

    def descriptors(self, data, spin: Tensor) -> Tensor:
        r"""``(N, 554)`` invariant descriptors (bond dot products, then chiralities).

        Args:
            data: graph (``Data`` or ``Batch``) of :func:`~ecnn_pyg.lattice_graph`.
            spin: ``(N, 3)`` spins.

        Returns:
            ``(N, num_descriptors)`` tensor: the ``P`` dot products
            :math:`\mathbf S_a\cdot\mathbf S_b`, then the ``C`` chiralities
            :math:`\mathbf S_0\cdot(\mathbf S_j\times\mathbf S_{j'})`.

        Raises:
            ModelInputError: if the lattice has more than one site per cell.
        """
        table = self.neighbor_table(data)
        s = spin[table]                                             # (N, 1+M, 3)
        dots = (s[:, self.pair_a] * s[:, self.pair_b]).sum(-1)       # (N, P)
        cross = torch.linalg.cross(s[:, self.chi_a], s[:, self.chi_b], dim=-1)
        chi = torch.einsum("nc,nkc->nk", s[:, 0], cross)           # (N, C)
        return torch.cat([dots, chi], dim=1)

    def forward(self, data, spin: Optional[Tensor] = None, compute_field: bool = True,
                training: Optional[bool] = None) -> Dict[str, Tensor]:
        """Energies and field of spins on the graph(s) ``data``.

        Args:
            data: graph (``Data`` or ``Batch``) of :func:`~ecnn_pyg.lattice_graph`
                for the model's lattice.
            spin: ``(N, 3)`` spins; default ``data["spin"]``.
            compute_field: also return ``field = -dE/dS``.
            training: keep the graph of the field for a loss on it (default:
                ``self.training``).

        Returns:
            ``{"energy": (num_graphs,), "local_energy": (N,), "field": (N, 3)}``
            (``field`` only with ``compute_field``).

        Raises:
            ModelInputError: if there are no spins, they do not have shape
                ``(N, 3)``, the graph is of another lattice, lacks ``cell`` or
                ``size``, or has more than one site per cell.
        """
        if spin is None:
            if K.SPIN not in data:
                raise ModelInputError("no spins: pass spin=(N, 3) or set data['spin']")
            spin = data[K.SPIN]
        self._check(data, spin)
        training = self.training if training is None else bool(training)
        dtype = self.mlp[0].weight.dtype
        n = int(data.num_nodes)
        batch = data.batch if getattr(data, "batch", None) is not None else \
            torch.zeros(n, dtype=torch.long, device=spin.device)
        num_graphs = int(getattr(data, "num_graphs", 1) or 1)
        with torch.set_grad_enabled(torch.is_grad_enabled() or compute_field):
            if compute_field and not spin.requires_grad:
                spin = spin.detach().requires_grad_(True)
            s = spin.to(dtype)
            local = self.mlp(self.descriptors(data, s)).squeeze(-1)
            return energy_outputs(local, batch, num_graphs, spin, compute_field, training,
                                  self.energy_scale, self.energy_shift)

    def extra_repr(self) -> str:
        """Summary shown in ``repr(model)``: the lattice and the descriptor tables.

        Returns:
            The text inside the module's parentheses in ``repr``.
        """
        return f"lattice={self.lattice!r}, {self.tables!r}"
