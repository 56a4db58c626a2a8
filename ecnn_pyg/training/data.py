"""The training data: the samples of one or several supercells, and their batches.

``data`` in a training config names one data file or several; files of the
same supercell are concatenated split by split, files of different supercells
(e.g. 12 x 12 cells and 24 x 24 snapshots of one lattice and model) become
separate :class:`TrainingPart` objects (:func:`load_training_parts`). A batch
(:class:`GraphBatcher`) holds configurations of one supercell.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch_geometric.data import Batch

from .. import keys as K
from ..augment import RotationAugment
from ..config import ConfigError
from ..datasets import DataFileError, read_arrays, read_graph, read_meta

__all__ = ["GraphBatcher", "TrainingPart", "load_training_parts", "load_training_data"]


class GraphBatcher:
    """Batches of configurations that share one lattice graph.

    The PyG ``Batch`` of ``b`` copies of the graph is built once per ``b`` and
    reused (the models cache their neighbour tables on its tensors); a batch of
    samples is that template with ``spin``/``field``/``energy`` set:
    ``batcher(spin (b, N, 3), field=None, energy=None) -> Batch``.

    Args:
        graph: the lattice graph the configurations live on (its ``spin``,
            ``field`` and ``energy`` entries, if any, are dropped).
    """

    def __init__(self, graph):
        self.graph = copy.copy(graph)
        for key in (K.SPIN, K.FIELD, K.ENERGY):
            if key in self.graph:
                del self.graph[key]
        self._templates: Dict[int, Batch] = {}

    def __call__(self, spin, field=None, energy=None) -> Batch:
        b = spin.shape[0]
        if b not in self._templates:
            self._templates[b] = Batch.from_data_list([self.graph] * b)
        out = copy.copy(self._templates[b])
        out[K.SPIN] = spin.reshape(-1, 3)
        if field is not None:
            out[K.FIELD] = field.reshape(-1, 3)
        if energy is not None:
            out[K.ENERGY] = energy.reshape(-1)
        return out


class TrainingPart:
    """The training and validation samples of one supercell (one lattice graph).

    Attributes:
        graph: the lattice graph the samples live on.
        size: its supercell size ``[L1, L2]``.
        train, val: ``{"spin": (n, N, 3), "field": (n, N, 3), "energy": (n,)}`` arrays.
        batcher, augment: the :class:`GraphBatcher` and
            :class:`~ecnn_pyg.augment.RotationAugment` of the graph, set by the
            :class:`~ecnn_pyg.training.Trainer` (``augment`` ``None`` without
            augmentation).
        train_weight, val_weight: per-sample loss weights ``(n,)`` set by the trainer
            (``weight_by_energy``, ``data_weights``), or ``None``: every sample weighs 1.
        train_source, val_source: the index, in the list of data files, of the file each
            sample came from ``(n,)`` (set by :func:`load_training_parts`; ``None`` for a
            part made otherwise).

    Args:
        graph: the lattice graph.
        size: the supercell size.
        train: the training arrays.
        val: the validation arrays.
    """

    def __init__(self, graph, size, train, val):
        self.graph, self.size, self.train, self.val = graph, list(size), train, val
        self.batcher: Optional[GraphBatcher] = None
        self.augment: Optional[RotationAugment] = None
        self.train_weight: Optional[torch.Tensor] = None
        self.val_weight: Optional[torch.Tensor] = None
        self.train_source: Optional[np.ndarray] = None
        self.val_source: Optional[np.ndarray] = None

    @property
    def n_sites(self) -> int:
        """Number of sites of the supercell."""
        return int(self.graph.num_nodes)

    def __repr__(self) -> str:
        return (f"TrainingPart(size={self.size}, train={len(self.train[K.ENERGY])}, "
                f"val={len(self.val[K.ENERGY])})")


def _model_params(meta) -> Dict[str, Any]:
    # the electronic model of a data file, independent of its supercell: without the twists
    # (12 x 12 cells with twists 8 and 24 x 24 cells with twists 4 are labelled by the same
    # Hamiltonian) and with electrons per site instead of electrons (canonical ensemble)
    params = {k: v for k, v in (meta.get("model") or {}).items() if k != "twists"}
    if params.get("electrons") is not None:
        params["electrons"] = params["electrons"] / math.prod(meta.get("size") or [1])
    return params


def load_training_parts(paths, train_split: str, val_split: str
                        ) -> Tuple[Dict[str, Any], List[TrainingPart]]:
    """Meta and the :class:`TrainingPart` of every supercell of one or several data files.

    A split is the concatenation, in list order, of that split in every file
    of the same supercell; files of different supercells (e.g. 12 x 12 cells
    and 24 x 24 snapshots of one lattice) become separate parts, in order of
    first appearance, and every batch holds samples of one part. All files
    must hold the same lattice, hoppings and electronic model (J, mu or the
    electrons per site, temperature; the twists may differ), and each split
    must occur in at least one of them.

    Args:
        paths: a data file (``ecnn-pyg generate``) or a list of them.
        train_split: name of the training split (e.g. ``"train"``).
        val_split: name of the validation split (e.g. ``"val"``).

    Returns:
        ``(meta, parts)``: the first file's meta and the list of parts (numpy
        arrays, as stored).

    Raises:
        ConfigError: if ``paths`` is empty.
        ValueError: if the files differ in lattice, hoppings or model.
        DataFileError: if a file cannot be read, or no file has one of the splits.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise ConfigError("data must name at least one data file")
    meta = read_meta(paths[0])
    groups: Dict[tuple, Dict[str, Any]] = {}
    found = set()
    for index, path in enumerate(paths):
        m = read_meta(path)
        diff = [k for k in ("lattice", "hoppings") if m.get(k) != meta.get(k)]
        if _model_params(m) != _model_params(meta):
            diff.append("model")
        if diff:
            raise ValueError(f"'{path}' and '{paths[0]}' differ in {', '.join(diff)}: "
                             "a training set must hold one lattice, hoppings and model")
        key = tuple(m.get("size") or ())
        grp = groups.setdefault(key, {"graph": None, train_split: [], val_split: [],
                                      "source": {train_split: [], val_split: []}})
        if grp["graph"] is None:
            grp["graph"] = read_graph(path)
        for split in (train_split, val_split):
            if split in m["splits"]:
                grp[split].append(read_arrays(path, split))
                grp["source"][split].append(np.full(len(grp[split][-1][K.ENERGY]), index))
                found.add(split)
    for split in (train_split, val_split):
        if split not in found:
            raise DataFileError(f"no data file of {paths} has a split '{split}'")
    parts = []
    for key, grp in groups.items():
        arrays = []
        for split in (train_split, val_split):
            got = grp[split]
            if got:
                arrays.append({k: np.concatenate([a[k] for a in got]) for k in got[0]})
            else:
                n = int(grp["graph"].num_nodes)
                arrays.append({K.SPIN: np.zeros((0, n, 3), np.float32),
                               K.FIELD: np.zeros((0, n, 3), np.float32),
                               K.ENERGY: np.zeros(0)})
        part = TrainingPart(grp["graph"], key, arrays[0], arrays[1])
        part.train_source, part.val_source = (
            np.concatenate(grp["source"][split]) if grp["source"][split] else np.zeros(0, int)
            for split in (train_split, val_split))
        parts.append(part)
    return meta, parts


def load_training_data(paths, train_split: str, val_split: str):
    """Meta, graph and the train / validation arrays of data files of one supercell.

    :func:`load_training_parts` for the common case of one supercell.

    Args:
        paths: a data file or a list of them.
        train_split: name of the training split.
        val_split: name of the validation split.

    Returns:
        ``(meta, graph, train, val)``: the first file's meta, the lattice graph
        and the arrays of the two splits.

    Raises:
        ValueError: if the files hold more than one supercell, or differ in
            lattice, hoppings or model.
        DataFileError: if a file cannot be read, or no file has one of the splits.
    """
    meta, parts = load_training_parts(paths, train_split, val_split)
    if len(parts) > 1:
        raise ValueError(f"the data files hold {len(parts)} supercells "
                         f"({', '.join(str(p.size) for p in parts)}): use load_training_parts")
    return meta, parts[0].graph, parts[0].train, parts[0].val
