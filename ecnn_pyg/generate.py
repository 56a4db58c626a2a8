"""Data-set generation: sample spin configurations, solve them exactly, append to HDF5.

``generate(config)`` is what ``ecnn-pyg generate --config FILE.yaml`` runs. The
config keys are :data:`GENERATE_SCHEMA` (see ``configs/square_paper.yaml``).
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
from .ed import KondoED
from .graph import lattice_graph
from .lattice import load_lattice
from .spins import random_spins

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
    "sampler": (str, "uniform"),
    "seed": (int, 0),
    "splits": (dict, {"train": 100, "val": 50}),
}

#: The built-in default run of ``ecnn-pyg generate`` (no config): a small square data set.
DEFAULT_CONFIG = {
    "output": "data/square_12x12.h5", "lattice": "square", "size": [12, 12],
    "hoppings": {"t1": 1.0}, "J": 7.0, "electrons": 138, "seed": 0,
    "splits": {"train": 20, "val": 10},
}


def _uniform(n_sites: int, rng: np.random.Generator) -> np.ndarray:
    return random_spins(n_sites, rng)


#: sampler name -> function(n_sites, rng) -> (n_sites, 3) spins
SAMPLERS: Dict[str, Callable] = {"uniform": _uniform}


def build_solver(cfg: Mapping):
    """Lattice graph and :class:`KondoED` of a generate config."""
    graph = lattice_graph(cfg["lattice"], cfg["size"], cfg["hoppings"])
    ed = KondoED(graph, J=cfg["J"], electrons=cfg["electrons"], filling=cfg["filling"],
                 mu=cfg["mu"], temperature=cfg["temperature"], zeeman=cfg["zeeman"])
    return graph, ed


def generate(config: Union[str, Path, Mapping, None] = None, overrides: Optional[Mapping] = None,
             progress: bool = True) -> Path:
    """Generate (or continue) the data set described by ``config``; returns its path."""
    cfg = load_config(config if config is not None else DEFAULT_CONFIG, GENERATE_SCHEMA, overrides)
    if cfg["sampler"] not in SAMPLERS:
        raise ValueError(f"unknown sampler '{cfg['sampler']}'; available: {sorted(SAMPLERS)}")
    splits = {str(k): int(v) for k, v in cfg["splits"].items()}
    if not splits or any(v < 0 for v in splits.values()):
        raise ValueError(f"splits must map names to non-negative counts, got {cfg['splits']}")
    graph, ed = build_solver(cfg)
    lat = load_lattice(cfg["lattice"])
    meta = {"lattice": lat.name, "lattice_yaml": lat.to_yaml(),
            "size": [int(x) for x in graph[K.SIZE].view(-1)],
            "hoppings": lat.hopping_values(cfg["hoppings"]), "model": ed.params(),
            "sampler": cfg["sampler"], "seed": cfg["seed"], "splits": splits}
    total = sum(splits.values())
    sampler = SAMPLERS[cfg["sampler"]]
    with terminate_as_interrupt(), H5Writer(cfg["output"], graph, meta) as writer:
        writer.file.attrs["config"] = yaml.safe_dump(cfg, sort_keys=False)
        bar = tqdm(total=total, initial=writer.n_done, disable=not progress,
                   desc=f"ED {lat.name} {graph.num_nodes} sites", unit="config")
        for i in range(writer.n_done, total):
            rng = np.random.default_rng([cfg["seed"], i])
            spin = sampler(graph.num_nodes, rng)
            energy, field = ed.energy_field(spin)
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
        lines.append(f"  energy per site: mean {e.mean():.5f}, std {e.std():.5f}; "
                     f"RMS field {np.sqrt((arr['field'] ** 2).sum(-1).mean()):.4f}")
    return "\n".join(lines)
