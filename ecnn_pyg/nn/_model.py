r"""The equivariant convolutional neural network (ECNN) for spin energies and fields."""
from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
import yaml
from e3nn import o3
from torch import Tensor

from .. import keys as K
from ..lattice import LatticeError, lattice_reference, load_lattice
from ._blocks import ACTIVATIONS, RESIDUALS, InteractionBlock, OutputBlock
from ._configurable import ConfigurableModel
from ._conv import Adjacency
from ._grad import energy_outputs
from ._neighbors import Edges, Neighbors, build_neighbors, offset_neighbors
from ._paths import irreps_of

__all__ = ["ECNN", "DEFAULT_CONFIG", "ModelInputError", "PAPER_NEIGHBORHOODS"]

_HEX = [(1, 1), (1, 0), (0, -1), (-1, -1), (-1, 0), (0, 1)]

#: Cell offsets of the slots of the published model's neighbourhoods
#: (``neighborhood="paper"``; slot ``k`` of site ``r`` is the site at cell
#: ``cell(r) + offset[k]`` and has its own weight). Square: the site five times
#: (the published code's loop over distances starts at distance 0, so four
#: copies of the site have weights of their own), then the 4 nearest
#: neighbours. Triangular: the site, its 6 nearest and its 6 third neighbours.
PAPER_NEIGHBORHOODS: Dict[str, Tuple[Tuple[int, int], ...]] = {
    "square": ((0, 0),) * 5 + ((-1, 0), (1, 0), (0, -1), (0, 1)),
    "triangular": ((0, 0),) + tuple(_HEX) + tuple((2 * a, 2 * b) for a, b in _HEX),
}

#: ``neighborhood`` options (see :class:`ECNN`).
NEIGHBORHOODS = ("bonds", "paper")
#: ``sh_normalization`` options (see :class:`~ecnn_pyg.nn.SpinConv`).
SH_NORMALIZATIONS = ("component", "integral")

#: The package's default architecture; ``configs/model_paper.yaml`` documents each key
#: and ``configs/model_ecnn4klm.yaml`` gives the published code's architecture.
DEFAULT_CONFIG: Dict[str, Any] = {
    "lattice": "square",
    "num_bond_types": None,
    "num_shells": None,
    "weight_sharing": "type",
    "channels": 8,
    "lmax": 2,
    "lmax_filter": 1,
    "num_blocks": 4,
    "output_channels": [8, 4, 2, 1],
    "time_reversal": False,
    "avg_num_neighbors": None,
    "energy_scale": 1.0,
    "energy_shift": 0.0,
    "neighborhood": "bonds",
    "activation": "swish",
    "residual": "after_activation",
    "sh_normalization": "component",
}


@functools.lru_cache(maxsize=64)
def _lattice_counts(name: str) -> Optional[Tuple[int, int]]:
    """(bond types, shells) of a known lattice name, ``None`` for custom graphs."""
    try:
        lat = load_lattice(name)
    except (LatticeError, OSError, ValueError):
        return None
    return len(lat.bonds), len(lat.shells)


class ModelInputError(ValueError):
    """A graph or spin tensor the model cannot be applied to."""


def check_unit_spins(spin: Tensor, tol: float) -> None:
    """Refuse spins that are not finite unit vectors: one fused check, no copy of the input.

    Args:
        spin: ``(N, 3)`` spins.
        tol: allowed deviation of :math:`|S|` from 1.

    Raises:
        ModelInputError: naming the first offending site and its length.
    """
    with torch.no_grad():
        s = spin.detach()
        # |S|^2 column by column (a reduction over the last axis of 3 is ~10x slower)
        sq = torch.addcmul(torch.addcmul(s[:, 0] * s[:, 0], s[:, 1], s[:, 1]), s[:, 2], s[:, 2])
        lo, hi = torch.aminmax(sq)                  # NaN propagates: the test below fails
        if not (float(lo) >= 1.0 - 2.0 * tol and float(hi) <= 1.0 + 2.0 * tol):
            ok = (sq - 1.0).abs() <= 2.0 * tol      # NaN and inf compare False
            i = int(torch.nonzero(~ok)[0, 0])
            raise ModelInputError(f"spins must be finite unit vectors (|S| = 1 within {tol:g}); "
                                  f"site {i} has |S| = {float(sq[i].sqrt()):.6g}")


class ECNN(ConfigurableModel, torch.nn.Module):
    r"""Equivariant convolutional neural network for classical spins on a lattice.

    Input features are the spherical harmonics :math:`Y_{l}(\mathbf S_r)`,
    :math:`l \le l_{max}`; ``num_blocks`` :class:`InteractionBlock` (skip from
    the second on) and an :class:`OutputBlock` give local energies
    :math:`\epsilon_r`; :math:`E = \sum_r \epsilon_r` per graph and
    :math:`\mathbf B_r = -\partial E / \partial \mathbf S_r` by autograd.

    Two architectures share this class. The package default
    (``neighborhood="bonds"``, ``activation="swish"``,
    ``residual="after_activation"``, ``sh_normalization="component"``)
    convolves over the site and its hopping partners with one weight per bond
    type. The published code of the paper (``configs/model_ecnn4klm.yaml``:
    ``neighborhood="paper"``, ``activation="norm_nobias"``,
    ``residual="before_activation"``, ``sh_normalization="integral"``) uses
    the fixed neighbourhoods of :data:`PAPER_NEIGHBORHOODS`, e3nn's
    bias-free :class:`NormActivation`, the skip inside the activation and
    integral-normalized harmonics; :func:`ecnn_pyg.ecnn4klm.import_ecnn4klm`
    loads its published weights into it.

    Args:
        lattice (str or dict, optional): lattice the model is built for (a
            built-in name, a file, or a lattice definition mapping); fixes the
            number of bond types and shells. A file is kept in :attr:`config` as
            its definition. ``None`` for a custom graph (then give
            ``num_bond_types`` / ``num_shells``).
        num_bond_types (int, optional): bond types (directed offset classes).
        num_shells (int, optional): hopping shells.
        weight_sharing (str, optional): ``"type"`` (one weight per bond type, the
            paper) or ``"shell"`` (one per hopping shell: exact point-group
            symmetry); only for ``neighborhood="bonds"``.
        channels (int, optional): channels per degree of the hidden features.
        lmax (int, optional): largest degree of input and hidden features.
        lmax_filter (int, optional): largest degree of the central-spin harmonics (0 or 1).
        num_blocks (int, optional): interaction blocks.
        output_channels (sequence of int, optional): widths of the output stack.
        time_reversal (bool, optional): encode the spin as ``1o`` so that the
            invariant energy is exactly even, :math:`E(-\mathbf S) = E(\mathbf S)`.
        avg_num_neighbors (float, optional): fan-in normalization of the
            convolutions (default: the size of the neighbourhood, the site and one
            neighbour per bond type, ``1 + num_bond_types``, whether the bonds have a
            weight each or share them per shell; the number of slots for
            ``neighborhood="paper"``; ``1 + num_shells`` for a custom graph without
            ``num_bond_types``).
        energy_scale (float, optional): :math:`a` in :math:`\epsilon_r \to a\epsilon_r + b`.
        energy_shift (float, optional): :math:`b` in :math:`\epsilon_r \to a\epsilon_r + b`.
        neighborhood (str, optional): ``"bonds"``: the site and its hopping
            partners of the graph, weights by ``weight_sharing``; ``"paper"``:
            the published model's slots (:data:`PAPER_NEIGHBORHOODS`, square
            and triangular lattices only), one weight per slot, independent of
            the graph's edges.
        activation (str, optional): ``"swish"`` (:class:`NormSwish` in the
            blocks, swish before every output linear) or ``"norm_nobias"``
            (e3nn's :class:`NormActivation` without bias, as published).
        residual (str, optional): skip added ``"after_activation"`` or
            ``"before_activation"`` (published).
        sh_normalization (str, optional): ``"component"`` or ``"integral"``
            (published: every harmonic divided by :math:`\sqrt{4\pi}`).
        cached (bool, optional): keep the adjacency of the last graph and reuse
            it while that graph's tensors are unchanged (PyG's ``cached``; not
            part of :attr:`config`). (default: ``True``)

    Shapes:
        - **input:** a :class:`~torch_geometric.data.Data` or ``Batch`` from
          :func:`~ecnn_pyg.lattice_graph`, spins :math:`(N, 3)`
        - **output:** ``{"energy": (B,), "local_energy": (N,), "field": (N, 3)}``

    Raises:
        ValueError: if ``weight_sharing``, ``neighborhood``, ``activation``,
            ``residual`` or ``sh_normalization`` is unknown, the bond-type or
            shell counts contradict ``lattice``, a custom lattice lacks the
            count its weight sharing needs, ``neighborhood="paper"`` is asked
            for another lattice than square or triangular, or ``num_blocks < 1``.
        LatticeError: if ``lattice`` cannot be loaded.
    """

    DEFAULT_CONFIG = DEFAULT_CONFIG
    #: allowed deviation of :math:`|S|` from 1 at the forward entry (NaN, inf, zero or
    #: long spins are refused); ``None`` skips the check (a model applied off the sphere)
    spin_tolerance: Optional[float] = 1e-2

    def __init__(self, lattice: Optional[str] = "square", num_bond_types: Optional[int] = None,
                 num_shells: Optional[int] = None, weight_sharing: str = "type",
                 channels: int = 8, lmax: int = 2, lmax_filter: int = 1, num_blocks: int = 4,
                 output_channels: Sequence[int] = (8, 4, 2, 1), time_reversal: bool = False,
                 avg_num_neighbors: Optional[float] = None, energy_scale: float = 1.0,
                 energy_shift: float = 0.0, neighborhood: str = "bonds",
                 activation: str = "swish", residual: str = "after_activation",
                 sh_normalization: str = "component", *, cached: bool = True):
        super().__init__()
        if weight_sharing not in ("type", "shell"):
            raise ValueError(f"weight_sharing must be 'type' or 'shell', got {weight_sharing!r}")
        for name, value, choices in (("neighborhood", neighborhood, NEIGHBORHOODS),
                                     ("activation", activation, ACTIVATIONS),
                                     ("residual", residual, RESIDUALS),
                                     ("sh_normalization", sh_normalization, SH_NORMALIZATIONS)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
        reference = lattice
        if lattice is not None:
            lat = load_lattice(lattice)
            # a built-in name stays a name; a file or definition is kept as its definition,
            # so the config (and a checkpoint) rebuilds the model wherever it goes
            reference = lattice_reference(lat) if not isinstance(lattice, str) \
                or Path(lattice).suffix else lattice
            lattice = lat.name
            num_bond_types = num_bond_types or len(lat.bonds)
            num_shells = num_shells or len(lat.shells)
            if num_bond_types != len(lat.bonds) or num_shells != len(lat.shells):
                raise ValueError(f"lattice {lat.name!r} has {len(lat.bonds)} bond types and "
                                 f"{len(lat.shells)} shells, got {num_bond_types} and {num_shells}")
        if neighborhood == "paper":
            if lattice not in PAPER_NEIGHBORHOODS:
                raise ValueError(f"neighborhood='paper' is defined for the lattices "
                                 f"{sorted(PAPER_NEIGHBORHOODS)}, got {lattice!r}")
            if weight_sharing != "type":
                raise ValueError("neighborhood='paper' has one weight per slot; "
                                 "weight_sharing='shell' applies to neighborhood='bonds' only")
        if weight_sharing == "type" and not num_bond_types:
            raise ValueError("a custom lattice (lattice=None) needs num_bond_types")
        if weight_sharing == "shell" and not num_shells:
            raise ValueError("a custom lattice (lattice=None) needs num_shells")
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
        self.lattice = lattice
        self.num_bond_types = int(num_bond_types or 0)
        self.num_shells = int(num_shells or 0)
        self.weight_sharing = weight_sharing
        self.neighborhood = neighborhood
        self.lmax, self.channels = int(lmax), int(channels)
        self.time_reversal = bool(time_reversal)
        self.spin_parity = -1 if self.time_reversal else 1
        self.sh_normalization = sh_normalization
        self.energy_scale, self.energy_shift = float(energy_scale), float(energy_shift)
        self._config = dict(lattice=reference, num_bond_types=self.num_bond_types or None,
                            num_shells=self.num_shells or None, weight_sharing=weight_sharing,
                            channels=channels, lmax=lmax, lmax_filter=lmax_filter,
                            num_blocks=num_blocks, output_channels=list(output_channels),
                            time_reversal=time_reversal, avg_num_neighbors=avg_num_neighbors,
                            energy_scale=energy_scale, energy_shift=energy_shift,
                            neighborhood=neighborhood, activation=activation,
                            residual=residual, sh_normalization=sh_normalization)
        if neighborhood == "paper":
            self.slot_offsets: Optional[Tuple[Tuple[int, int], ...]] = \
                PAPER_NEIGHBORHOODS[lattice]
            n_w = len(self.slot_offsets) - 1
        else:
            self.slot_offsets = None
            n_w = self.num_bond_types if weight_sharing == "type" else self.num_shells
        if avg_num_neighbors is None and neighborhood == "bonds" and self.num_bond_types:
            # the fan-in is the site and its neighbours, one per bond type, however many
            # weights they share: 1 + num_weights for "type", more than that for "shell"
            avg_num_neighbors = 1 + self.num_bond_types
        kw = dict(num_weights=n_w, lmax_filter=lmax_filter, spin_parity=self.spin_parity,
                  avg_num_neighbors=avg_num_neighbors, activation=activation,
                  sh_normalization=sh_normalization)
        self.irreps_spin = o3.Irreps(f"1x1{'o' if self.time_reversal else 'e'}")
        self.irreps_in = irreps_of(1, lmax, self.spin_parity)
        self.blocks = torch.nn.ModuleList(
            [InteractionBlock(1 if b == 0 else channels, channels, lmax, lmax, skip=b > 0,
                              residual=residual, **kw)
             for b in range(num_blocks)])
        self.output = OutputBlock(channels, lmax, channels=output_channels, **kw)
        self.cached = bool(cached)
        self._cached_adj = None

    # ----------------------------------------------------------------- config

    @classmethod
    def from_yaml(cls, path: Union[str, Path], **overrides) -> "ECNN":
        """Build from a YAML file (a flat mapping, or one under a ``model:`` key).

        Args:
            path: YAML file of constructor arguments.
            **overrides: constructor arguments that replace those of the file.

        Returns:
            The :class:`ECNN`.

        Raises:
            ValueError: if the file has unknown keys (see
                :meth:`~ecnn_pyg.nn._configurable.ConfigurableModel.from_config`).
        """
        with open(path) as f:
            cfg = yaml.safe_load(f) or {}
        if isinstance(cfg.get("model"), Mapping):
            cfg = cfg["model"]
        return cls.from_config(cfg, **overrides)

    # ------------------------------------------------------------------ checks
    def _check(self, data, spin: Tensor) -> None:
        n = int(data.num_nodes)
        if not torch.is_tensor(spin) or spin.dim() != 2 or spin.shape != (n, 3):
            shape = tuple(spin.shape) if torch.is_tensor(spin) else type(spin).__name__
            raise ModelInputError(f"spins must have shape (num_nodes, 3) = ({n}, 3), got {shape}")
        if not spin.is_floating_point():
            raise ModelInputError(f"spins must be floating point, got {spin.dtype}")
        names = data[K.LATTICE] if K.LATTICE in data else None
        names = [names] if isinstance(names, str) else list(names or [])
        if self.neighborhood == "paper":
            other = sorted(set(str(m) for m in names) - {self.lattice})
            if other:
                raise ModelInputError(f"model built for lattice {self.lattice!r} (the published "
                                      f"neighbourhood), got a graph of lattice {other[0]!r}")
            if K.CELL not in data or K.SIZE not in data:
                raise ModelInputError("neighborhood='paper' needs the graph's cell coordinates "
                                      "and supercell size (a graph of ecnn_pyg.lattice_graph)")
            return
        own = {self.lattice} if isinstance(self._config["lattice"], Mapping) else set()
        for name in set(names) - own:       # (a lattice of one's own may share a built-in name)
            counts = _lattice_counts(str(name))
            if counts is None:
                continue
            if self.weight_sharing == "type" and counts[0] != self.num_bond_types:
                raise ModelInputError(
                    f"model built for lattice {self.lattice!r} with {self.num_bond_types} bond "
                    f"types, got a graph of lattice {name!r} with {counts[0]} bond types")
            if self.weight_sharing == "shell" and counts[1] != self.num_shells:
                raise ModelInputError(
                    f"model built for lattice {self.lattice!r} with {self.num_shells} shells, "
                    f"got a graph of lattice {name!r} with {counts[1]} shells")
        key, count = (K.BOND_TYPE, self.num_bond_types) if self.weight_sharing == "type" \
            else (K.BOND_SHELL, self.num_shells)
        ids = data[key]
        if ids.numel() and (int(ids.max()) >= count or int(ids.min()) < 0):
            raise ModelInputError(
                f"model built for lattice {self.lattice!r} with {count} "
                f"{'bond types' if key == K.BOND_TYPE else 'shells'} (ids 0..{count - 1}), got a "
                f"graph with {key} in {int(ids.min())}..{int(ids.max())}")

    # --------------------------------------------------------------- adjacency
    def _graph_tensors(self, data) -> Tuple[Tensor, ...]:
        """The graph tensors the adjacency is computed from (the cache key)."""
        if self.neighborhood == "paper":
            ptr = getattr(data, "ptr", None)
            return (data[K.CELL], data[K.SIZE]) + ((ptr,) if ptr is not None else ())
        if self.weight_sharing == "shell":
            return (data.edge_index, data[K.BOND_TYPE], data[K.BOND_SHELL])
        return (data.edge_index, data[K.BOND_TYPE])

    def _build_neighbors(self, data) -> Neighbors:
        if self.neighborhood == "paper":
            try:
                return offset_neighbors(data[K.CELL], data[K.SIZE], self.slot_offsets,
                                        getattr(data, "ptr", None))
            except ValueError as err:
                raise ModelInputError(str(err)) from None
        num_graphs = int(getattr(data, "num_graphs", 1) or 1)
        nb = build_neighbors(data.edge_index, data[K.BOND_TYPE], data.num_nodes,
                             data[K.CELL] if K.CELL in data else None,
                             data[K.SIZE] if K.SIZE in data else None, num_graphs)
        if self.weight_sharing == "shell":
            bt, shell = data[K.BOND_TYPE], data[K.BOND_SHELL]
            shell_of_type = torch.zeros(max(self.num_bond_types, int(bt.max()) + 1 if bt.numel()
                                            else 0) + 1, dtype=torch.long, device=bt.device)
            shell_of_type[bt] = shell
            nb = nb._replace(weight=torch.where(
                nb.slot_type < 0, torch.zeros_like(nb.slot_type),
                shell_of_type[nb.slot_type.clamp(min=0)] + 1))
        return nb

    def adjacency(self, data, fused: bool = True) -> Adjacency:
        """Adjacency of ``data`` for the convolutions (one argument for every block).

        The neighbour table is computed once per graph: with ``cached`` (as
        PyG's ``cached=True`` layers keep their normalized adjacency) it is
        kept and reused while the graph tensors it came from are the same
        objects, unmodified; another graph replaces it.

        Args:
            data: graph (``Data`` or ``Batch``) of :func:`~ecnn_pyg.lattice_graph`.
            fused: the :class:`~ecnn_pyg.nn.Neighbors` table (the fused
                convolution); ``False``: the reference :class:`~ecnn_pyg.nn.Edges`
                list with self-loops (the graph's own edges for
                ``neighborhood="bonds"``).

        Returns:
            :class:`~ecnn_pyg.nn.Neighbors` or :class:`~ecnn_pyg.nn.Edges`.
        """
        if not fused and self.neighborhood == "bonds":
            n = int(data.num_nodes)
            ids = data[K.BOND_TYPE] if self.weight_sharing == "type" else data[K.BOND_SHELL]
            loops = torch.arange(n, device=data.edge_index.device)
            return Edges(torch.cat([data.edge_index, torch.stack([loops, loops])], 1),
                         torch.cat([ids.to(torch.long) + 1, torch.zeros_like(loops)]))
        tensors = self._graph_tensors(data)
        key = tuple((id(t), t._version) for t in tensors) + (int(data.num_nodes),)
        cache = self._cached_adj
        if cache is not None and cache[0] == key and all(a is b for a, b in zip(cache[1],
                                                                                  tensors)):
            nb = cache[2]
        else:
            nb = self._build_neighbors(data)
            self._cached_adj = (key, tensors, nb) if self.cached else None
        return nb if fused else nb.to_edges()

    def reset_cache(self) -> None:
        """Forget the cached adjacency (see :meth:`adjacency`)."""
        self._cached_adj = None

    # ----------------------------------------------------------------- forward
    def forward(self, data, spin: Optional[Tensor] = None, compute_field: bool = True,
                training: Optional[bool] = None, fused: bool = True) -> Dict[str, Tensor]:
        """Energies and field of spins on the graph(s) ``data``.

        Args:
            data: graph (``Data`` or ``Batch``) of :func:`~ecnn_pyg.lattice_graph`.
            spin: ``(N, 3)`` spins; default ``data["spin"]``.
            compute_field: also return ``field = -dE/dS``.
            training: keep the graph of the field for a loss on it
                (default: ``self.training`` unless called under ``torch.no_grad()``).
            fused: use the fused neighbour-table convolution (``False``: the
                reference per-edge ``propagate``; same result, slower).

        Returns:
            ``{"energy": (num_graphs,), "local_energy": (N,), "field": (N, 3)}``
            (``field`` only with ``compute_field``).

        Raises:
            ModelInputError: if there are no spins, they are not a floating
                ``(N, 3)`` tensor, the graph's lattice or bond ids do not fit
                the model, or a spin is not finite or not of unit length
                (within :attr:`spin_tolerance`).
        """
        if spin is None:
            if K.SPIN not in data:
                raise ModelInputError("no spins: pass spin=(N, 3) or set data['spin']")
            spin = data[K.SPIN]
        self._check(data, spin)
        if self.spin_tolerance is not None:
            check_unit_spins(spin, self.spin_tolerance)
        training = (self.training and torch.is_grad_enabled()) if training is None \
            else bool(training)
        dtype = self.blocks[0].conv.weight[0].dtype
        device = self.blocks[0].conv.weight[0].device
        adj = self.adjacency(data, fused)
        batch = data.batch if getattr(data, "batch", None) is not None else \
            torch.zeros(data.num_nodes, dtype=torch.long, device=spin.device)
        num_graphs = int(getattr(data, "num_graphs", 1) or 1)
        with torch.set_grad_enabled(torch.is_grad_enabled() or compute_field):
            if compute_field and not spin.requires_grad:
                spin = spin.detach().requires_grad_(True)
            s = spin.to(device=device, dtype=dtype)
            y = o3.spherical_harmonics(list(range(self.lmax + 1)), s, normalize=False,
                                       normalization=self.sh_normalization).t()
            x = [y[l * l:(l + 1) ** 2].unsqueeze(1).contiguous()          # (2l+1, 1, N)
                 for l in range(self.lmax + 1)]
            spin_y1 = (s * math.sqrt(3.0)).t().contiguous()                # (3, N)
            for block in self.blocks:
                x = block(x, spin_y1, adj)
            local = self.output(x, spin_y1, adj)
            return energy_outputs(local, batch, num_graphs, spin, compute_field, training,
                                  self.energy_scale, self.energy_shift)

    def extra_repr(self) -> str:
        """Summary shown in ``repr(model)``: lattice, bond types, shells, weight sharing, spin irreps.

        Returns:
            The text inside the module's parentheses in ``repr``.
        """
        if self.neighborhood == "paper":
            return (f"lattice={self.lattice!r}, neighborhood='paper' "
                    f"({len(self.slot_offsets)} slots), spin={self.irreps_spin}")
        return (f"lattice={self.lattice!r}, bond_types={self.num_bond_types}, "
                f"shells={self.num_shells}, weight_sharing={self.weight_sharing!r}, "
                f"spin={self.irreps_spin}")
