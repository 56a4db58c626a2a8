"""Data-set generation: sample spin configurations, solve them exactly, append to HDF5.

``generate(config)`` is what ``ecnn-pyg generate --config FILE.yaml`` runs. The
config keys are :data:`GENERATE_SCHEMA` (see ``configs/square_generate.yaml``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Union

import numpy as np
import yaml
from tqdm.auto import tqdm

from . import keys as K
from .config import REQUIRED, load_config
from .datasets import H5Writer, read_meta, terminate_as_interrupt
from .distributed.generate import ShardedLabels
from .ed import KondoED, ed_memory_of
from .graph import lattice_graph
from .lattice import load_lattice
from .locking import check_writable, output_lock
from .spins import as_spin_batch, load_spin_file, random_spins

__all__ = ["GENERATE_SCHEMA", "SAMPLERS", "DEFAULT_CONFIG", "generate", "build_solver"]

#: key -> (type(s), default); REQUIRED keys have no default
GENERATE_SCHEMA = {
    "output": (str, REQUIRED),
    "lattice": (str, "square"),
    "size": ((int, list), REQUIRED),
    "hoppings": (dict, {}),
    "J": (float, REQUIRED),
    "electrons": ((int, type(None)), None),
    "filling": ((float, type(None)), None),
    "mu": ((float, type(None)), None),
    "temperature": (float, 0.0),
    "zeeman": (float, 0.0),
    "twists": ((int, list, type(None)), None),   # Bloch sectors: labels of the tiled lattice
    "sampler": (str, "uniform"),                # uniform | file
    "spins_from": ((str, type(None)), None),     # sampler "file": .npy or trajectory .h5
    "snapshots": ((str, type(None)), None),      # trajectory: "start:stop:step" of every run
    "seed": (int, 0),
    "splits": (dict, {"train": 100, "val": 50}),
    "ignore_memory_check": (bool, False),       # label even if one ED call exceeds the RAM
}

#: The built-in default run of ``ecnn-pyg generate`` (no config): a small square data set.
DEFAULT_CONFIG = {
    "output": "data/square_12x12.h5", "lattice": "square", "size": [12, 12],
    "hoppings": {"t1": 1.0}, "J": 7.0, "electrons": 138, "seed": 0,
    "splits": {"train": 20, "val": 10},
}


def _uniform(n_sites: int, rng: np.random.Generator) -> np.ndarray:
    return random_spins(n_sites, generator=rng)


#: sampler name -> function(n_sites, rng) -> (n_sites, 3) spins
SAMPLERS: Dict[str, Callable] = {"uniform": _uniform}


def parse_slice(text: Optional[str]) -> slice:
    """``"start:stop:step"`` (any part may be empty, e.g. ``"20:"``) as a :class:`slice`."""
    if text is None:
        return slice(None)
    parts = str(text).split(":")
    try:
        if not 2 <= len(parts) <= 3:
            raise ValueError
        values = [int(p) if p.strip() else None for p in parts]
    except ValueError:
        raise ValueError(f"snapshots must look like 'start:stop:step' (e.g. '20:' or '0:20'), "
                         f"got {text!r}") from None
    if len(values) == 3 and values[2] is not None and values[2] <= 0:
        raise ValueError(f"the step of snapshots must be positive, got {text!r}")
    return slice(*values)


def spins_from_file(path: Union[str, Path], n_sites: int,
                    snapshots: Optional[str] = None) -> np.ndarray:
    """Spin configurations ``(n, N, 3)`` from a ``.npy`` array or a trajectory file.

    A trajectory file (``ecnn-pyg simulate``) contributes the snapshots of every
    run, in run order: e.g. the non-equilibrium and equilibrium snapshots of
    ED-LLG runs at several fields (the triangular protocol of the paper).
    ``snapshots`` (``"start:stop:step"``) selects the same slice of every run,
    e.g. ``":20"`` the first 20 (non-equilibrium) and ``"20:"`` the rest.
    """
    path = Path(path)
    sel = parse_slice(snapshots)
    if path.suffix == ".npy":
        return _unit_length(load_spin_file(path), n_sites)[sel]
    from .simulate import read_runs
    runs = read_runs(path)
    if not runs:
        raise ValueError(f"trajectory file '{path}' holds no runs")
    spins = np.concatenate([r["spin"][sel] for r in runs])
    if spins.ndim != 3 or spins.shape[1] != n_sites:
        raise ValueError(f"'{path}' holds spins of shape {spins.shape[1:]}, the lattice has "
                         f"{n_sites} sites")
    return _unit_length(spins, n_sites)


def _unit_length(spins, n_sites: int) -> np.ndarray:
    """``(n, N, 3)`` unit spins: lengths within 1e-3 of one (float32 files) are rescaled to
    one; anything else (|S| = 5, zero spins) is refused, never labelled as given or rescaled."""
    batch = as_spin_batch(spins, n_sites, tol=1e-3)[0]
    return batch / np.linalg.norm(batch, axis=-1, keepdims=True)


def _check_memory(cfg: Mapping) -> None:
    """Refuse, before the graph is built, a size whose ED exceeds the available memory."""
    from .runtime import check_memory
    lat = load_lattice(cfg["lattice"])
    size = cfg["size"]
    try:
        needed = ed_memory_of(lat, size, cfg.get("twists"), canonical=cfg.get("mu") is None)
    except (TypeError, ValueError):
        return                                     # a bad size: lattice_graph says what is wrong
    check_memory(needed, f"generate on {lat.name} {size}", allow=cfg.get("ignore_memory_check", False),
                 override="ignore_memory_check: true (--set ignore_memory_check=true)")


def build_solver(cfg: Mapping):
    """Lattice graph and :class:`KondoED` of a generate config."""
    _check_memory(cfg)
    graph = lattice_graph(cfg["lattice"], cfg["size"], cfg["hoppings"])
    ed = KondoED(graph, J=cfg["J"], electrons=cfg["electrons"], filling=cfg["filling"],
                 mu=cfg["mu"], temperature=cfg["temperature"], zeeman=cfg["zeeman"],
                 twists=cfg["twists"], ignore_memory_check=cfg.get("ignore_memory_check", False))
    return graph, ed


def generate(config: Union[str, Path, Mapping, None] = None, overrides: Optional[Mapping] = None,
             progress: bool = True) -> Path:
    """Generate (or continue) the data set described by ``config``; returns its path."""
    cfg = load_config(config if config is not None else DEFAULT_CONFIG, GENERATE_SCHEMA, overrides)
    if cfg["sampler"] not in SAMPLERS and cfg["sampler"] != "file":
        raise ValueError(f"unknown sampler '{cfg['sampler']}'; available: "
                         f"{sorted(SAMPLERS) + ['file']}")
    if cfg["sampler"] != "file":        # else the file would be ignored: random spins labelled
        for key in ("spins_from", "snapshots"):
            if cfg[key] is not None:
                raise ValueError(f"{key} is read only by sampler: file, and this config's "
                                 f"sampler is '{cfg['sampler']}'; set sampler: file to label "
                                 f"the given spins, or remove {key}")
    splits = {str(k): int(v) for k, v in cfg["splits"].items()}
    if not splits or any(v < 0 for v in splits.values()):
        raise ValueError(f"splits must map names to non-negative counts, got {cfg['splits']}")
    check_writable(cfg["output"], "data set")      # a read-only place fails before any work
    graph, ed = build_solver(cfg)
    lat = load_lattice(cfg["lattice"])
    meta = {"lattice": lat.name, "lattice_yaml": lat.to_yaml(),
            "size": [int(x) for x in graph[K.SIZE].view(-1)],
            "hoppings": lat.hopping_values(cfg["hoppings"]), "model": ed.params(),
            "sampler": cfg["sampler"], "seed": cfg["seed"], "splits": splits}
    total = sum(splits.values())
    stock = None
    if cfg["sampler"] == "file":
        if not cfg["spins_from"]:
            raise ValueError("sampler 'file' needs spins_from: a .npy of spins or a trajectory .h5")
        stock = spins_from_file(cfg["spins_from"], graph.num_nodes, cfg["snapshots"])
        if len(stock) < total:
            raise ValueError(f"'{cfg['spins_from']}' holds {len(stock)} configurations, the "
                             f"splits ask for {total}")
        meta["spins_from"] = str(cfg["spins_from"])
        meta["snapshots"] = cfg["snapshots"] or ":"
    sampler = SAMPLERS.get(cfg["sampler"])

    def label(i):
        rng = np.random.default_rng([cfg["seed"], i])
        spin = stock[i] if stock is not None else sampler(graph.num_nodes, rng)
        return (spin, *ed.energy_field(spin))

    # under torchrun: ranks label round-robin (all with rank 0's settings), rank 0 writes
    labels = ShardedLabels(label, "ED samples", identity={**meta, "total": total})
    if not labels.is_main:
        labels.serve()                              # ranks > 0 label, rank 0 writes
        return Path(cfg["output"])
    with labels, terminate_as_interrupt(), output_lock(cfg["output"], what="data set"), \
            H5Writer(cfg["output"], graph, meta) as writer:
        writer.file.attrs["config"] = yaml.safe_dump(cfg, sort_keys=False)
        bar = tqdm(total=total, initial=writer.n_done, disable=not progress,
                   desc=f"ED {lat.name} {graph.num_nodes} sites", unit="config")
        for _, spin, energy, field in labels(range(writer.n_done, total)):
            writer.append(spin, energy, field)
            bar.update()
        bar.close()
    return Path(cfg["output"])


def describe(path: Union[str, Path]) -> str:
    """A short human-readable summary of a data file."""
    from .datasets import read_arrays
    meta = read_meta(path)
    arr = read_arrays(path)
    n, sites = arr["spin"].shape[:2] if len(arr["spin"]) else (0, 0)
    lines = [f"data set: {Path(path).resolve()}",
             f"  lattice {meta['lattice']} {' x '.join(map(str, meta['size']))} ({sites} sites), "
             f"hoppings {meta['hoppings']}",
             f"  model {meta['model']}",
             f"  samples {meta['n_done']} of {sum(meta['splits'].values())} "
             f"(splits {meta['splits']}), sampler {meta['sampler']}, seed {meta['seed']}",
             "  datasets: spin (n, N, 3), energy (n,), field (n, N, 3); graph/ holds the lattice graph"]
    if n:
        e = arr["energy"] / sites
        b2 = (arr["field"] ** 2).mean()
        lines.append(f"  energy per site: mean {e.mean():.5f}, std {e.std():.5f}; "
                     f"field RMS per component {np.sqrt(b2):.4f} (RMS |B| {np.sqrt(3 * b2):.4f})")
    return "\n".join(lines)
