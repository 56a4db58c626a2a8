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
import os
import re
import shutil
import signal
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import h5py
import numpy as np
import torch
from torch_geometric.data import Data, Dataset

from ._version import __version__
from . import keys as K
from .locking import OutputWriteError

__all__ = ["DataFileError", "H5Writer", "SpinDataset", "read_graph", "read_meta",
           "read_arrays", "damaged_samples", "split_ranges", "open_error_message",
           "extend_truncated", "FORMAT"]

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
        raise DataFileError(open_error_message(path, err)) from err
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise DataFileError(f"'{path}' is an HDF5 file but not an ecnn_pyg data set "
                            f"(attribute format != '{FORMAT}')")
    return f


_TRUNCATED = re.compile(r"truncated file: eof = (\d+), sblock->base_addr = \d+, stored_eof = (\d+)")


def extend_truncated(path: Union[str, Path], err: OSError, max_missing: int = 1 << 20) -> bool:
    """Give a data file cut short by a failed write its recorded length back (zeros).

    A write that fails on a full disk can leave an HDF5 file shorter than the
    end of file its superblock records, and HDF5 then refuses to open it. If
    at most ``max_missing`` bytes are missing, they are appended as zeros and
    the file is opened read-only to check that its structure (attributes,
    datasets, graph) is whole; if not, the file is cut back to its former
    length (nothing is lost either way). The rows that
    were not written are then found by the integrity check and recomputed.

    Args:
        path: the file.
        err: the error of opening it.
        max_missing: the largest tail (bytes) to restore.

    Returns:
        Whether the file now opens.
    """
    found = _TRUNCATED.search(str(err))
    if not found:
        return False
    eof, stored = int(found.group(1)), int(found.group(2))
    if not 0 < stored - eof <= max_missing or Path(path).stat().st_size != eof:
        return False
    try:
        os.truncate(path, stored)
        with h5py.File(path, "r", locking=False) as f:     # the structure must be whole
            ok = (f.attrs.get("format") == FORMAT and int(f.attrs["n_done"]) >= 0
                  and all(f[key].shape is not None for key in (K.SPIN, K.FIELD, K.ENERGY))
                  and int(f["graph"].attrs["num_nodes"]) > 0)
    except (OSError, KeyError, RuntimeError, ValueError):
        ok = False
    if not ok:
        os.truncate(path, eof)
    return ok


def open_error_message(path, err: OSError) -> str:
    """What is wrong with an HDF5 file that ``h5py.File`` could not open.

    HDF5 reports a held file lock, a truncated file and a damaged one as
    :class:`OSError`; their messages are told apart by HDF5's own phrases
    ("unable to lock file", "truncated file"), never by a bare word.

    Args:
        path: the file.
        err: the error of ``h5py.File``.

    Returns:
        One sentence naming the file, the fault and what to do.
    """
    text = str(err)
    if "unable to lock file" in text:
        return (f"'{path}' is open for writing by another process (HDF5 file lock); wait for "
                "it or stop it first")
    if "truncated file" in text:
        size = Path(path).stat().st_size if Path(path).exists() else 0
        return (f"'{path}' is truncated ({size} bytes; the file was cut short, e.g. by a full "
                "disk or an interrupted copy) and cannot be read or resumed; copy it again "
                f"or move it aside and regenerate it (HDF5: {text})")
    if "permission denied" in text.lower():
        return f"cannot open '{path}': permission denied ({text})"
    return (f"'{path}' is not a readable HDF5 file (corrupted, or of another format): "
            f"{text}; move it aside and regenerate it")


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


def read_arrays(path, split: Optional[str] = None, check: bool = True) -> Dict[str, np.ndarray]:
    """``spin``, ``energy``, ``field`` of the complete samples (of one split).

    Args:
        path: data file.
        split: a split name stored in the file, or ``None`` for all complete
            samples. A split not yet fully generated is cut at ``n_done``.
        check: refuse damaged samples (see :func:`damaged_samples`).

    Returns:
        ``{"spin": (n, N, 3), "energy": (n,), "field": (n, N, 3)}`` arrays.

    Raises:
        DataFileError: if the file cannot be read as a data set, has no split
            named ``split``, its datasets disagree with ``n_done``, or (with
            ``check``) some of the samples read are damaged.
    """
    with _open(path) as f:
        meta = read_meta(f)
        n = _check_layout(f, meta, path)
        sel = range(n)
        if split is not None:
            ranges = split_ranges(meta["splits"])
            if split not in ranges:
                raise DataFileError(f"'{path}' has splits {list(ranges)}, not '{split}'")
            r = ranges[split]
            sel = range(r.start, min(r.stop, n))
        sl = slice(sel.start, sel.stop)
        out = {K.SPIN: f[K.SPIN][sl], K.ENERGY: f[K.ENERGY][sl], K.FIELD: f[K.FIELD][sl]}
    if check:
        bad = _damaged(out, _zero_field_possible(meta), offset=sel.start)
        if bad:
            raise DataFileError(f"'{path}' is damaged: {_describe_damage(bad)} (of samples "
                                f"{sel.start}-{sel.stop - 1}); rerun 'ecnn-pyg generate' with its "
                                "config to recompute them, the intact samples are kept")
    return out


#: largest accepted deviation of a stored spin's length from 1
UNIT_TOLERANCE = 1e-5


def _zero_field_possible(meta: Mapping) -> bool:
    """Whether an all-zero field can be a true label (no coupling and no Zeeman field)."""
    model = meta.get("model") or {}
    return not model.get("J") and not model.get("zeeman")


def _damaged(arrays: Mapping[str, np.ndarray], zero_field_ok: bool,
             offset: int = 0) -> Dict[str, np.ndarray]:
    """``{reason: sample indices}`` of the damaged samples among ``arrays``."""
    spin, energy, field = arrays[K.SPIN], arrays[K.ENERGY], arrays[K.FIELD]
    if not len(energy):
        return {}
    finite = (np.isfinite(spin).all(axis=(1, 2)) & np.isfinite(field).all(axis=(1, 2))
              & np.isfinite(energy))
    zero = (spin == 0).all(axis=(1, 2))
    norm = np.linalg.norm(np.where(np.isfinite(spin), spin, 0.0), axis=-1)
    masks = {"non-finite values": ~finite,
             "all-zero spins (never written)": finite & zero,
             "spins not of unit length": finite & ~zero
             & (np.abs(norm - 1) > UNIT_TOLERANCE).any(axis=1)}
    if not zero_field_ok:
        masks["all-zero field"] = finite & ~zero & (field == 0).all(axis=(1, 2))
    return {reason: np.flatnonzero(m) + offset for reason, m in masks.items() if m.any()}


def _ranges(idx: np.ndarray) -> str:
    """``[3, 4, 5, 9]`` as ``"3-5, 9"`` (at most 8 ranges shown)."""
    parts, start = [], None
    for k, i in enumerate(idx):
        if start is None:
            start = i
        if k + 1 == len(idx) or idx[k + 1] != i + 1:
            parts.append(f"{start}" if start == i else f"{start}-{i}")
            start = None
    return ", ".join(parts[:8]) + (f", ... ({len(parts) - 8} more ranges)" if len(parts) > 8 else "")


def _describe_damage(bad: Mapping[str, np.ndarray]) -> str:
    return "; ".join(f"samples {_ranges(idx)} ({len(idx)}) have {reason}"
                     for reason, idx in bad.items())


def _check_layout(f: h5py.File, meta: Mapping, path) -> int:
    """``n_done`` after checking that the datasets hold that many rows of the graph's size."""
    n = int(meta.get("n_done", -1))
    total = sum(int(v) for v in (meta.get("splits") or {}).values())
    if any(key not in f for key in (K.SPIN, K.ENERGY, K.FIELD, "graph")):
        raise DataFileError(f"'{path}' is damaged: datasets are missing (it has {sorted(f)}); "
                            "move it aside and regenerate it")
    n_sites = int(f["graph"].attrs["num_nodes"])
    rows = {key: f[key].shape for key in (K.SPIN, K.ENERGY, K.FIELD)}
    if not 0 <= n <= total:
        raise DataFileError(f"'{path}' is damaged: n_done = {n} is not within 0..{total} (the "
                            "sum of its splits)")
    bad = [f"{key} {shape}" for key, shape in rows.items()
           if shape[0] < n or (key != K.ENERGY and tuple(shape[1:]) != (n_sites, 3))]
    if bad:
        raise DataFileError(f"'{path}' is damaged: it claims {n} complete samples of {n_sites} "
                            f"sites but holds {', '.join(bad)}; rerun 'ecnn-pyg generate' with "
                            "its config to recompute the missing samples")
    return n


def damaged_samples(path: Union[str, Path], block: int = 1024) -> Dict[str, np.ndarray]:
    """The damaged samples among the complete ones (``n_done``) of a data file.

    A sample is damaged if any value is not finite, a spin is not of unit
    length (all-zero spins: the row was never written), or, for a model with
    a coupling or a Zeeman field, its field is all zero. The file is read in
    blocks of ``block`` samples.

    Args:
        path: data file.
        block: samples read at a time.

    Returns:
        ``{reason: sample indices}``, empty if every complete sample is intact.

    Raises:
        DataFileError: if the file cannot be read as a data set or its
            datasets hold fewer rows than ``n_done``.
    """
    with _open(path) as f:
        meta = read_meta(f)
        return _scan(f, _check_layout(f, meta, path), _zero_field_possible(meta), block)


def _scan(f: h5py.File, n: int, zero_field_ok: bool, block: int = 1024) -> Dict[str, np.ndarray]:
    out: Dict[str, list] = {}
    for start in range(0, n, block):
        sl = slice(start, min(start + block, n))
        arrays = {key: f[key][sl] for key in (K.SPIN, K.ENERGY, K.FIELD)}
        for reason, idx in _damaged(arrays, zero_field_ok, offset=start).items():
            out.setdefault(reason, []).extend(idx.tolist())
    return {reason: np.asarray(idx) for reason, idx in out.items()}


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
            try:
                self.file = _open(self.path, "r+")
            except DataFileError as err:
                if not (isinstance(err.__cause__, OSError)
                        and extend_truncated(self.path, err.__cause__)):
                    raise
                warnings.warn(f"'{self.path}' was cut short by a failed write (a full disk?); "
                              "its recorded length was restored and its samples are checked",
                              RuntimeWarning, stacklevel=2)
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
            total = sum(json.loads(meta["splits"]).values()) if "splits" in meta else 0
            check_space(self.path, data_file_bytes(total, self.n_sites))
            try:
                self.file = self._create(graph, meta, total)
            except (OSError, RuntimeError) as err:     # nothing computed yet: leave no file
                self.path.with_name(f".{self.path.name}.creating").unlink(missing_ok=True)
                raise OutputWriteError(f"cannot create '{self.path}' ({err}); the disk may be "
                                       "full. Free space or choose another output") from err
        if int(self.file["graph"].attrs["num_nodes"]) != self.n_sites:
            n_file = self.file["graph"].attrs["num_nodes"]
            self.file.close()
            raise DataFileError(f"'{self.path}' holds a graph of {n_file} sites, not "
                                f"{self.n_sites}")
        # persistent handles: their chunks are written by the file flushes, where a failure
        # raises, never when a handle is garbage-collected (HDF5 can then only print the error)
        self._datasets = [self.file[key] for key in (K.SPIN, K.FIELD, K.ENERGY)]
        self._repair(meta)

    def _create(self, graph: Data, meta: Mapping, total: int) -> h5py.File:
        """A new file whose datasets reserve all ``total`` samples on disk at once.

        Rows are allocated (and filled with NaN) at creation, so a disk too
        small fails here, before any computation, and the samples are later
        written into space the file already has.
        """
        # made complete under a temporary name, then renamed: a kill leaves no half-made file
        tmp = self.path.with_name(f".{self.path.name}.creating")
        f = h5py.File(tmp, "w")
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["package_version"] = __version__
        for k, v in meta.items():
            f.attrs[k] = v
        f.attrs["n_done"] = 0
        n = self.n_sites
        for key, shape, chunks in ((K.SPIN, (n, 3), (1, n, 3)), (K.FIELD, (n, 3), (1, n, 3)),
                                   (K.ENERGY, (), (1024,))):
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            f.create_dataset(key, (total,) + shape, maxshape=(None,) + shape, chunks=chunks,
                             dtype="f8", fillvalue=np.nan, fill_time="alloc", dcpl=dcpl)
        _graph_to_group(graph, f.create_group("graph"))
        f.close()
        os.replace(tmp, self.path)
        return h5py.File(self.path, "r+")

    def _repair(self, meta: Mapping) -> None:
        """Lower ``n_done`` to the first sample that is missing or damaged (a rerun redoes it)."""
        f, n = self.file, self.n_done
        rows = min(ds.shape[0] for ds in self._datasets)
        problems = []
        if n > rows:
            problems.append(f"it claims {n} complete samples but holds {rows}")
            n = rows
        model = meta.get("model")
        bad = _scan(f, n, _zero_field_possible({"model": json.loads(model) if isinstance(
            model, str) else model}))
        if bad:
            problems.append(_describe_damage(bad))
            n = min(int(idx.min()) for idx in bad.values())
        if problems:
            warnings.warn(f"'{self.path}' is damaged ({'; '.join(problems)}); recomputing from "
                          f"sample {n}", RuntimeWarning, stacklevel=3)
            self._commit(n)

    @property
    def n_done(self) -> int:
        """Number of complete samples in the file."""
        return int(self.file.attrs["n_done"])

    def append(self, spin: np.ndarray, energy: float, field: np.ndarray) -> None:
        """Write one sample, flush it to the file, then mark it complete.

        ``n_done`` is raised only after the sample's rows were written
        without error, so it never counts a row that did not reach the file.

        Args:
            spin: ``(N, 3)`` spin configuration.
            energy: total energy.
            field: ``(N, 3)`` effective field ``B = -dE/dS``.

        Raises:
            OutputWriteError: if the file cannot be written (a full disk, a
                quota, an I/O error); the sample is not counted.
        """
        i = self.n_done
        spin_ds, field_ds, energy_ds = self._datasets
        try:
            for ds in self._datasets:
                if ds.shape[0] < i + 1:
                    ds.resize(i + 1, axis=0)
            spin_ds[i] = spin
            field_ds[i] = field
            energy_ds[i] = energy
            self.file.flush()               # one file flush: never ahead of the superblock
        except (OSError, RuntimeError) as err:      # h5py reports some write failures so
            raise self._write_error(err, i) from err
        self._commit(i + 1)

    def _commit(self, n: int) -> None:
        try:
            self.file.attrs["n_done"] = n
            self.file.flush()
        except (OSError, RuntimeError) as err:
            raise self._write_error(err, n - 1) from err

    def _write_error(self, err: OSError, i: int) -> OutputWriteError:
        return OutputWriteError(
            f"cannot write sample {i} to '{self.path}' ({err}); the disk may be full or the "
            f"file system failing. The {self.n_done} samples counted in the file are intact: "
            "free space and rerun the same command to continue")

    def close(self) -> None:
        """Close the file (does nothing if already closed).

        Raises:
            OutputWriteError: if the last buffered writes fail.
        """
        if self.file.id.valid:
            try:
                self.file.close()
            except (OSError, RuntimeError) as err:
                raise OutputWriteError(f"closing '{self.path}' failed ({err}); the disk may be "
                                       "full. Rerun the same command to check and continue "
                                       "the file") from err

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
            return
        try:                                    # the error in flight is the one to report
            self.close()
        except OutputWriteError:
            pass


def data_file_bytes(n_samples: int, n_sites: int) -> int:
    """Estimated size of a data file of ``n_samples`` samples of ``n_sites`` sites, in bytes.

    Args:
        n_samples: samples (the sum of the splits).
        n_sites: sites of the lattice.

    Returns:
        Bytes: spins, fields and energies (float64), the chunk index and the graph.
    """
    return int(n_samples * (2 * n_sites * 3 * 8 + 8 + 48) + n_sites * 1000 + 49152)


def check_space(path: Union[str, Path], needed: int) -> None:
    """Refuse an output for which the disk (or the file-size limit) has no room.

    Args:
        path: the file to write.
        needed: bytes it will take.

    Raises:
        OutputWriteError: naming the bytes needed and the space free, or the
            process's file-size limit (``ulimit -f``).
    """
    path = Path(path)
    folder = path.absolute().parent
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise OutputWriteError(f"'{path}' needs about {needed / 1e6:.1f} MB, its disk has "
                               f"{free / 1e6:.1f} MB free; free space or choose another output")
    try:
        import resource
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    except (ImportError, ValueError, OSError):      # not on this platform
        return
    if limit != resource.RLIM_INFINITY and needed > limit:
        raise OutputWriteError(f"'{path}' needs about {needed / 1e6:.1f} MB, more than this "
                               f"process may write to one file ({limit / 1e6:.1f} MB: the limit "
                               "of 'ulimit -f'); raise the limit or make the data set smaller")


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
