"""Exact training data: resumable HDF5 files and the PyG data set that reads them.

File layout (``format = "ecnn_pyg-dataset"``, ``format_version = 1``)::

    /spin    (n, N, 3) float64   spin configurations
    /energy  (n,)      float64   total energy (electronic + Zeeman)
    /field   (n, N, 3) float64   B = -dE/dS
    /graph/  every tensor of the lattice graph (edge_index, hopping, pos, ...)
    attrs:   n_done (complete samples), splits (JSON, e.g. {"train": 100, "val": 50}),
             lattice (name), lattice_yaml, size, hoppings, model (JSON of the ED
             parameters), sampler, seed, package_version, config (YAML text)

Samples are appended one at a time; ``n_done`` is raised only after a sample is
written and flushed, so an interrupted run loses at most the sample in flight,
and a rerun continues from ``n_done``. Sample ``i`` is drawn from the random
stream ``(seed, i)``, so a resumed file equals an uninterrupted one.
"""
from __future__ import annotations

import copy
import json
import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import h5py
import numpy as np
import torch
from torch_geometric.data import Data, Dataset

from ._version import __version__
from . import keys as K

__all__ = ["DataFileError", "H5Writer", "SpinDataset", "read_graph", "read_meta",
           "read_arrays", "split_ranges", "FORMAT"]

FORMAT = "ecnn_pyg-dataset"
FORMAT_VERSION = 1
#: attributes that must agree when a file is resumed
IDENTITY = ("lattice", "lattice_yaml", "size", "hoppings", "model", "sampler", "spins_from",
            "snapshots", "seed", "splits")


class DataFileError(ValueError):
    """A data file that is missing, corrupted, or does not match the request."""


def _open(path, mode="r") -> h5py.File:
    try:
        # readers do not lock, so a file can be inspected while a generate run appends to it
        f = h5py.File(path, mode, locking=False) if mode == "r" else h5py.File(path, mode)
    except FileNotFoundError as err:
        raise DataFileError(f"data file '{path}' does not exist") from err
    except OSError as err:
        if "lock" in str(err):
            raise DataFileError(f"'{path}' is open for writing by another process (a generate "
                                "run in progress?); wait for it or stop it first") from err
        raise DataFileError(f"'{path}' is not a readable HDF5 file (corrupted or of another "
                            f"format): {err}") from err
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise DataFileError(f"'{path}' is an HDF5 file but not an ecnn_pyg data set "
                            f"(attribute format != '{FORMAT}')")
    return f


def _graph_to_group(graph: Data, group: h5py.Group) -> None:
    for key, value in graph.items():
        if torch.is_tensor(value):
            group.create_dataset(key, data=value.cpu().numpy())
        elif isinstance(value, (str, int, float)):
            group.attrs[key] = value
    group.attrs["num_nodes"] = int(graph.num_nodes)


def read_graph(source: Union[str, Path, h5py.File]) -> Data:
    """The lattice graph stored in a data file.

    Args:
        source: path of a data file, or an open :class:`h5py.File`.

    Returns:
        :class:`~torch_geometric.data.Data` with the tensors and attributes of
        the file's ``graph`` group.

    Raises:
        DataFileError: if the file is missing, unreadable, locked for writing,
            or not an ecnn_pyg data set.
    """
    if not isinstance(source, h5py.File):
        with _open(source) as f:
            return read_graph(f)
    g = source["graph"]
    data = Data(num_nodes=int(g.attrs["num_nodes"]))
    for key in g:
        data[key] = torch.from_numpy(g[key][()])
    for key, value in g.attrs.items():
        if key != "num_nodes":
            data[key] = value.decode() if isinstance(value, bytes) else value
    return data


def read_meta(source: Union[str, Path, h5py.File]) -> Dict:
    """Metadata (attributes) of a data file, JSON fields decoded.

    Args:
        source: path of a data file, or an open :class:`h5py.File`.

    Returns:
        ``{attribute: value}``; ``hoppings``, ``model`` and ``splits`` decoded
        from JSON, arrays as lists and NumPy scalars as Python scalars.

    Raises:
        DataFileError: if the file is missing, unreadable, locked for writing,
            or not an ecnn_pyg data set.
    """
    if not isinstance(source, h5py.File):
        with _open(source) as f:
            return read_meta(f)
    meta = {}
    for k, v in source.attrs.items():
        v = v.decode() if isinstance(v, bytes) else v
        if k in ("hoppings", "model", "splits"):
            v = json.loads(v)
        elif isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, np.generic):
            v = v.item()
        meta[k] = v
    return meta


def split_ranges(splits: Mapping[str, int]) -> Dict[str, range]:
    """Contiguous sample ranges of the named splits, in the order given.

    Args:
        splits: ``{name: number of samples}``, e.g. ``{"train": 100, "val": 50}``.

    Returns:
        ``{name: range}``, e.g. ``{"train": range(0, 100), "val": range(100, 150)}``.
    """
    out, start = {}, 0
    for name, n in splits.items():
        out[name] = range(start, start + int(n))
        start += int(n)
    return out


def read_arrays(path, split: Optional[str] = None) -> Dict[str, np.ndarray]:
    """``spin``, ``energy``, ``field`` of the complete samples (of one split).

    Args:
        path: data file.
        split: a split name stored in the file, or ``None`` for all complete
            samples. A split not yet fully generated is cut at ``n_done``.

    Returns:
        ``{"spin": (n, N, 3), "energy": (n,), "field": (n, N, 3)}`` arrays.

    Raises:
        DataFileError: if the file cannot be read as a data set, or has no
            split named ``split``.
    """
    with _open(path) as f:
        meta = read_meta(f)
        n = int(meta["n_done"])
        sel = range(n)
        if split is not None:
            ranges = split_ranges(meta["splits"])
            if split not in ranges:
                raise DataFileError(f"'{path}' has splits {list(ranges)}, not '{split}'")
            r = ranges[split]
            sel = range(r.start, min(r.stop, n))
        sl = slice(sel.start, sel.stop)
        return {K.SPIN: f[K.SPIN][sl], K.ENERGY: f[K.ENERGY][sl], K.FIELD: f[K.FIELD][sl]}


class H5Writer:
    """Append-only, resumable writer of a data file.

    Args:
        path: the HDF5 file. A new file is created; an existing one is resumed
            only if its identity attributes (:data:`IDENTITY`) equal ``meta``,
            otherwise :class:`DataFileError` and the file is left untouched.
        graph: lattice graph of the samples.
        meta: identity and provenance attributes (see module docstring).

    Raises:
        DataFileError: if an existing file cannot be read as a data set, was
            made with different identity attributes, or holds a graph with a
            different number of sites.
    """

    def __init__(self, path: Union[str, Path], graph: Data, meta: Mapping):
        self.path = Path(path)
        self.n_sites = int(graph.num_nodes)
        meta = {k: (json.dumps(v, sort_keys=True) if k in ("hoppings", "model", "splits") else v)
                for k, v in meta.items()}
        if self.path.exists():
            self.file = _open(self.path, "r+")
            old = dict(self.file.attrs)
            diff = [k for k in IDENTITY if k in meta and _norm(old.get(k)) != _norm(meta[k])]
            if diff:
                self.file.close()
                raise DataFileError(
                    f"'{self.path}' was made with different settings ({', '.join(diff)}: file "
                    + "; ".join(f"{k}={_norm(old.get(k))!r}" for k in diff) + " vs requested "
                    + "; ".join(f"{k}={_norm(meta[k])!r}" for k in diff)
                    + "). Choose another output file; the existing one was not changed.")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = h5py.File(self.path, "w")
            f = self.file
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["package_version"] = __version__
            for k, v in meta.items():
                f.attrs[k] = v
            f.attrs["n_done"] = 0
            n = self.n_sites
            f.create_dataset(K.SPIN, (0, n, 3), maxshape=(None, n, 3), chunks=(1, n, 3), dtype="f8")
            f.create_dataset(K.FIELD, (0, n, 3), maxshape=(None, n, 3), chunks=(1, n, 3), dtype="f8")
            f.create_dataset(K.ENERGY, (0,), maxshape=(None,), chunks=(1024,), dtype="f8")
            _graph_to_group(graph, f.create_group("graph"))
            f.flush()
        if int(self.file["graph"].attrs["num_nodes"]) != self.n_sites:
            raise DataFileError(f"'{self.path}' holds a graph of "
                                f"{self.file['graph'].attrs['num_nodes']} sites, not {self.n_sites}")

    @property
    def n_done(self) -> int:
        """Number of complete samples in the file."""
        return int(self.file.attrs["n_done"])

    def append(self, spin: np.ndarray, energy: float, field: np.ndarray) -> None:
        """Write one sample, then mark it complete.

        Args:
            spin: ``(N, 3)`` spin configuration.
            energy: total energy.
            field: ``(N, 3)`` effective field ``B = -dE/dS``.
        """
        f, i = self.file, self.n_done
        for key in (K.SPIN, K.FIELD, K.ENERGY):
            if f[key].shape[0] < i + 1:
                f[key].resize(i + 1, axis=0)
        f[K.SPIN][i] = spin
        f[K.FIELD][i] = field
        f[K.ENERGY][i] = energy
        f.flush()
        f.attrs["n_done"] = i + 1
        f.flush()

    def close(self) -> None:
        """Close the file (does nothing if already closed)."""
        if self.file.id.valid:
            self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _norm(v):
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (list, tuple)):
        v = [int(x) if isinstance(x, (int, np.integer)) else x for x in v]
    return v


@contextmanager
def terminate_as_interrupt():
    """Turn SIGTERM into KeyboardInterrupt so files are closed cleanly.

    A context manager; outside the main thread (where signal handlers cannot
    be set) it does nothing.
    """
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:              # not in the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


class SpinDataset(Dataset):
    """PyG data set of a data file: one graph per spin configuration.

    Each item is the lattice graph with ``spin`` ``(N, 3)``, ``field`` ``(N, 3)``
    and ``energy`` ``(1,)`` (graph tensors are shared, not copied).

    Args:
        path: data file written by ``ecnn-pyg generate``.
        split: a split name stored in the file (``"train"``, ``"val"``) or
            ``None`` for all complete samples.
        dtype: floating dtype of spins, fields and energies.
        transform: optional PyG transform applied on access.

    Raises:
        DataFileError: if the file cannot be read as a data set, or has no
            split named ``split``.
    """

    def __init__(self, path: Union[str, Path], split: Optional[str] = "train",
                 dtype: torch.dtype = torch.float64, transform=None):
        self.path, self.split = Path(path), split
        self.meta = read_meta(path)
        arrays = read_arrays(path, split)
        self.graph = read_graph(path)
        self._spin = torch.from_numpy(arrays[K.SPIN]).to(dtype)
        self._field = torch.from_numpy(arrays[K.FIELD]).to(dtype)
        self._energy = torch.from_numpy(arrays[K.ENERGY]).to(dtype)
        super().__init__(root=None, transform=transform)

    def len(self) -> int:
        """Number of spin configurations in the split.

        Returns:
            The number of samples.
        """
        return len(self._energy)

    def get(self, idx: int) -> Data:
        """The graph of one sample.

        Args:
            idx: sample index within the split.

        Returns:
            A shallow copy of the lattice graph with ``spin``, ``field`` and
            ``energy`` of sample ``idx``.
        """
        data = copy.copy(self.graph)
        data[K.SPIN] = self._spin[idx]
        data[K.FIELD] = self._field[idx]
        data[K.ENERGY] = self._energy[idx].view(1)
        return data

    def __repr__(self) -> str:
        return (f"SpinDataset('{self.path}', split={self.split!r}, n={len(self)}, "
                f"lattice={self.meta.get('lattice')!r}, sites={self.graph.num_nodes})")
