"""Resumable LLG simulations: a trajectory, or a sweep over Zeeman fields / temperatures.

``simulate(config)`` is what ``ecnn-pyg simulate --config FILE.yaml`` runs. Each
entry of the sweep (every pair of ``zeeman`` x ``temperature`` values) is one run,
integrated for ``n_steps`` steps; every ``save_every`` steps (and at the end)
it appends a snapshot and its observables to the output file and saves the
state (spins and the noise generator), so a rerun continues exactly where it
stopped, and a rerun with a larger ``n_steps`` extends the runs.

Units: hbar = 1; energies and fields in units of the nearest-neighbour hopping t1,
time (``dt``, ``time``) in units of 1/t1.

File layout (``format = "ecnn_pyg-trajectory"``); ``m`` snapshots per run (the
start, every ``save_every`` steps and the end)::

    /graph/                         the lattice graph
    /run_000/ attrs: zeeman, temperature, step (completed steps)
              spin       (m, N, 3)  snapshots (float32)
              time       (m,)       time of each snapshot (step x dt)
              magnetization (m, 3)  mean spin
              charge     (m,)       topological charge Q (2D lattices only, else NaN)
              energy     (m,)       total energy E = energy_electronic + energy_zeeman
              energy_electronic (m,)  the field source's energy: exact (source ed) or
                                      learned (source model) electronic energy
              energy_zeeman (m,)    -H_z sum_r S^z_r
              sigma_mean, sigma_max, sigma_rms (m,)  a committee model only
                                  (ecnn_pyg.committee): mean, largest and RMS over the
                                  sites of the uncertainty sigma_B; attrs
                                  trust_lower, trust_upper (NaN: none)
              state_a/, state_b/  resume state, written in turn: spin (N, 3) float64,
                                  rng (uint8), attrs commit (JSON: step, snapshots, SHA-256)
    attrs: config (YAML; sites_per_magnetic_cell as resolved, null: unknown),
           identity keys, package_version, model_sha256 (source model)

A save commits by its state slot's record; a reader (a resume, :func:`read_runs`)
trusts the latest intact slot and ignores snapshots written after it.

Energies are totals over the supercell's N sites (E/N: divide by ``spin.shape[1]``),
float64. n_sk = Q N_mc / N needs the magnetic unit cell N_mc
(``sites_per_magnetic_cell``): given in the config, or from the model card of
the model (``triangular-paper``: 48); where it is unknown only Q is reported.

A committee model warns once (:class:`~ecnn_pyg.committee.UncertaintyWarning`)
when a saved snapshot's ``sigma_max`` exceeds its upper trust level
(``trust_upper`` overrides it).
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import warnings
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

import h5py
import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from ._version import __version__
from .config import REQUIRED, load_config
from .datasets import (DataFileError, _graph_to_group, open_error_message, read_graph,
                       terminate_as_interrupt)
from .dynamics import (INTEGRATORS, SpinSystem, check_timestep, make_integrator,
                       numpy_field_source)
from .ed import KondoED, ed_memory_of
from .graph import lattice_graph
from .locking import OutputWriteError, check_writable, output_lock
from .runtime import resolve_device, set_threads
from .spins import as_spin_batch, ferromagnet, random_spins, triple_q

__all__ = ["SIMULATE_SCHEMA", "DEFAULT_CONFIG", "simulate", "field_source", "read_runs",
           "plot_runs", "magnetic_cell_of", "hamiltonian_differences", "memory_estimate",
           "HamiltonianMismatchWarning", "FORMAT"]

FORMAT = "ecnn_pyg-trajectory"
_IDENTITY = ("lattice", "size", "hoppings", "source", "model", "J", "electrons", "filling",
             "mu", "el_temperature", "twists", "integrator", "dt", "alpha", "initial", "seed",
             "dtype", "save_every", "periodic", "replicas", "committee_member")

SIMULATE_SCHEMA = {
    "output": (str, REQUIRED),
    # null: a model run takes the model's lattice (and, if hoppings is empty, its hoppings)
    # from the checkpoint, so a lattice file of one's own need not stay; an ED run: triangular
    "lattice": ((str, type(None)), None),
    "size": ((int, list), REQUIRED),
    "hoppings": (dict, {}),
    "source": (str, "ed"),                      # ed | model
    "model": ((str, type(None)), None),         # pretrained name or checkpoint path
    "J": ((float, type(None)), None),
    "electrons": ((int, type(None)), None),
    "filling": ((float, type(None)), None),
    "mu": ((float, type(None)), None),
    "el_temperature": (float, 0.0),
    "twists": ((int, list, type(None)), None),  # source ed: Bloch sectors (tiled lattice)
    "integrator": (str, "sib"),
    "dt": (float, REQUIRED),
    "alpha": (float, 1.0),
    "temperature": ((float, list), 0.0),
    "zeeman": ((float, list), 0.0),
    "n_steps": (int, REQUIRED),
    "save_every": (int, 100),
    "initial": (str, "random"),     # random | ferro | triple-q | FILE.npy | TRAJ.h5#RUN (last state)
    "seed": (int, 0),
    "dtype": (str, "float64"),
    "device": (str, "cpu"),
    "num_threads": ((int, type(None)), None),   # torch CPU threads (null: torch's default)
    "plot": (bool, False),                      # PNG of every run's last state (+ phase diagram)
    # n_sk = Q * this / N; null: the model card's (triangular-paper: 48), else Q only
    "sites_per_magnetic_cell": ((int, type(None)), None),
    # run a model on a Hamiltonian other than its training data's (refused by default)
    "allow_hamiltonian_mismatch": (bool, False),
    "ignore_memory_check": (bool, False),       # run even if the memory estimate exceeds RAM
    # source model: evaluate the field region by region with halos (exact), within this
    # memory ("8GB") or this many sites per evaluation (docs/distributed.md)
    "memory_budget": ((str, float, type(None)), None),
    "max_tile_sites": ((int, type(None)), None),
    "parallel": (str, "auto"),      # under torchrun: domain (split the lattice) | runs | auto
    "periodic": ((bool, list, type(None)), None),   # null: periodic; false / per axis: open
    "replicas": ((int, type(None)), None),          # runs per (zeeman, temperature); null: 1
    # committee model: warn (once) when a snapshot's largest per-site sigma_B exceeds this;
    # null: the committee's own upper trust level (docs/committee.md)
    "trust_upper": ((float, type(None)), None),
    # committee model: drive the dynamics with this member's field alone (0 ... M-1); the
    # whole committee still scores every saved snapshot. null: the members' mean field.
    # One member costs 1/M of the mean per step, which is how exploration runs (docs/committee.md)
    "committee_member": ((int, type(None)), None),
}

#: The built-in default run of ``ecnn-pyg simulate`` (no config): T = 0 ML-LLG with the
#: shipped triangular model from random spins into the skyrmion crystal, and its picture.
DEFAULT_CONFIG = {
    "output": "runs/skyrmion_crystal.h5", "lattice": "triangular", "size": [48, 48],
    "hoppings": {"t1": 1.0, "t3": -0.85}, "source": "model", "model": "triangular-paper",
    "integrator": "sib", "dt": 5.0, "alpha": 1.0, "temperature": 0.0, "zeeman": 0.006,
    "n_steps": 1500, "save_every": 100, "initial": "random", "seed": 1, "dtype": "float32",
    "plot": True,
}


def field_source(cfg: Mapping, graph) -> Callable:
    """The electronic field source of a simulate config (without Zeeman).

    The returned callable ``spins -> field`` also has ``energy`` (``spins (N, 3)
    -> total electronic energy``, a float) and ``card`` (the model card of a
    model source, ``{}`` for ED) attributes. A model source is checked against
    the Hamiltonian of its training data (:func:`hamiltonian_differences`):
    a difference is refused unless ``allow_hamiltonian_mismatch`` is true, then
    it is a :class:`HamiltonianMismatchWarning`.
    """
    if cfg["source"] == "ed":
        if cfg["J"] is None:
            raise ValueError("source 'ed' needs J and one of electrons, filling, mu")
        ed = KondoED(graph, J=cfg["J"], electrons=cfg["electrons"], filling=cfg["filling"],
                     mu=cfg["mu"], temperature=cfg["el_temperature"], twists=cfg["twists"],
                     ignore_memory_check=cfg["ignore_memory_check"])
        source = numpy_field_source(lambda s: ed.energy_field(s)[1])
        source.energy = lambda s: float(ed.energy_field(s.detach().cpu().double().numpy())[0])
        source.card = {}
        return source
    if cfg["source"] == "model":
        if not cfg["model"]:
            raise ValueError("source 'model' needs model: a pretrained name or checkpoint path")
        from .pretrained import load_model_and_checkpoint   # a shipped name or a checkpoint path
        from .dynamics import model_field_source
        model, ckpt = load_model_and_checkpoint(cfg["model"])
        model = model.to(cfg["device"]).eval()
        card = _model_card(cfg["model"])
        trained = model.trained_on or card.get("trained_on") or {}
        diffs = hamiltonian_differences(cfg, trained)
        if diffs:
            msg = (f"model '{cfg['model']}' was trained on another Hamiltonian than this run's: "
                   + "; ".join(diffs) + ". A model is valid for the Hamiltonian of its training "
                   "data only")
            if not cfg["allow_hamiltonian_mismatch"]:
                raise ValueError(msg + "; set the run's lattice, hoppings (and J, mu, filling "
                                 "if given) to the model's, or set allow_hamiltonian_mismatch: "
                                 "true to run anyway")
            warnings.warn(msg, HamiltonianMismatchWarning, stacklevel=2)
            card = {}                               # its magnetic cell is not this run's
        elif not trained:
            warnings.warn(f"model '{cfg['model']}' records no training Hamiltonian; make sure "
                          "the run's lattice and hoppings are those it was trained on",
                          HamiltonianMismatchWarning, stacklevel=2)
        committee, model = _driving_model(cfg, model)
        from .distributed.tiling import tile_options
        tiling = tile_options(cfg, model)
        source = model_field_source(model, graph, **tiling)
        source.model = model
        mgraph = graph.to(cfg["device"])
        p_dtype = next(model.parameters()).dtype

        def energy(spins):
            if tiling:
                return float(source.evaluator(spins.detach().to(cfg["device"], p_dtype),
                                              compute_field=False)["energy"].double().sum())
            with torch.no_grad():
                out = model(mgraph, spins.detach().to(cfg["device"], p_dtype),
                            compute_field=False)
            return float(out["energy"].double().sum())
        source.energy = energy
        source.card = card
        if committee is not None:           # a committee: sigma_B of every saved snapshot
            from .committee import SnapshotUncertainty
            upper = cfg.get("trust_upper") or committee.trust["upper"]
            source.uncertainty = SnapshotUncertainty(committee, graph, upper=upper,
                                                     lower=committee.trust["lower"], **tiling)
        return source
    raise ValueError(f"unknown source '{cfg['source']}'; expected 'ed' or 'model'")


def _driving_model(cfg: Mapping, model):
    """``(committee or None, the model whose field drives the run)`` of a loaded model.

    A committee drives by its members' mean field, or by member ``committee_member`` alone
    (then the energies recorded are that member's, the dynamics' own).
    """
    member = cfg.get("committee_member")
    if not hasattr(model, "members"):
        if member is not None:
            raise ValueError(f"committee_member {member} needs a committee model; "
                             f"'{cfg['model']}' is a single model (set committee_member: null)")
        return None, model
    if member is None:
        return model, model
    if member >= len(model.members):
        raise ValueError(f"committee_member must be one of 0 ... {len(model.members) - 1} (the "
                         f"committee '{cfg['model']}' has {len(model.members)} members), "
                         f"got {member}")
    return model, model.members[member]


class HamiltonianMismatchWarning(UserWarning):
    """A model runs on a Hamiltonian other than that of its training data."""


def _model_card(name_or_path: str) -> dict:
    """The model card of a pretrained name, or the ``NAME.yaml`` next to a checkpoint ``NAME.pt``."""
    from . import pretrained
    p = Path(name_or_path)
    try:
        if not p.exists():
            return pretrained.info(str(name_or_path))
        card = p.with_suffix(".yaml")
        data = yaml.safe_load(card.read_text()) if card.is_file() else None
    except (KeyError, FileNotFoundError, OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _close(a, b) -> bool:
    return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)), abs(float(b)))


def hamiltonian_differences(cfg: Mapping, trained: Mapping) -> list:
    """What of a simulate config's Hamiltonian differs from a model's training data.

    Compared: the lattice (by name), every hopping amplitude (shells not given
    take the lattice file's defaults), and J, mu, the filling (electrons per
    spin-orbital, from ``electrons`` or ``filling``) and the electron
    temperature where the config gives them (a model run needs none of them).
    A Zeeman field in the training labels is reported too: the run adds its own.

    Args:
        cfg: a simulate config (:data:`SIMULATE_SCHEMA` keys).
        trained: the training record of a model (``model.trained_on``, the
            ``trained_on`` entry of a model card): ``lattice``, ``hoppings``,
            ``model`` (``J``, ``electrons``, ``mu``, ``temperature``, ``zeeman``)
            and ``n_sites``.

    Returns:
        One readable line per difference (empty: none, or nothing recorded).
    """
    from .lattice import LatticeError, load_lattice
    out = []
    if not trained:
        return out
    lat = load_lattice(cfg["lattice"])
    t_lat = trained.get("lattice")
    t_name = t_lat.get("name") if isinstance(t_lat, Mapping) else t_lat
    t_def = trained.get("lattice_definition")
    if isinstance(t_def, Mapping):                 # the definition itself: compare the geometry
        same = _geometry(t_def) == _geometry(lat.to_dict())
        if not same:
            return [f"lattice {lat.name!r} is not the model's lattice {t_name!r} (primitive "
                    "vectors, basis or bonds differ)"]
    elif t_name is not None and str(t_name) != lat.name:
        return [f"lattice {lat.name!r} (model: {t_name!r})"]
    run_h = lat.hopping_values(cfg["hoppings"])
    t_given = {str(k): v for k, v in (trained.get("hoppings") or {}).items() if v is not None}
    try:
        t_h = lat.hopping_values(t_given)
    except LatticeError:
        t_h = {**{k: 0.0 for k in run_h}, **t_given}
    for k in sorted(set(run_h) | set(t_h)):
        a, b = run_h.get(k, 0.0), t_h.get(k, 0.0)
        if not _close(a, b):
            out.append(f"hopping {k} = {a:g} (model: {b:g})")
    e = trained.get("model") or {}
    if cfg["J"] is not None and e.get("J") is not None and not _close(cfg["J"], e["J"]):
        out.append(f"J = {cfg['J']:g} (model: {e['J']:g})")
    n_t = trained.get("n_sites")
    t_fill = e["electrons"] / (2 * n_t) if e.get("electrons") is not None and n_t else None
    run_fill = cfg["filling"]
    if cfg["electrons"] is not None:
        run_fill = cfg["electrons"] / (2 * _n_sites(cfg, lat))
    if cfg["mu"] is not None and (e.get("mu") is None or not _close(cfg["mu"], e["mu"])):
        out.append(f"mu = {cfg['mu']:g} (model: " + (f"mu = {e['mu']:g})" if e.get("mu") is not None
                                                    else f"fixed filling {t_fill:g})"))
    if run_fill is not None and (t_fill is None or abs(run_fill - t_fill) > 1e-9):
        out.append(f"filling {run_fill:g} (model: " + (f"{t_fill:g})" if t_fill is not None else
                                                       f"mu = {e.get('mu')})"))
    if e.get("temperature") is not None and not _close(cfg["el_temperature"], e["temperature"]):
        out.append(f"el_temperature = {cfg['el_temperature']:g} (model: {e['temperature']:g})")
    if e.get("zeeman"):
        out.append(f"the model's training fields include a Zeeman field H_z = {e['zeeman']:g}; "
                   "simulate adds the run's own")
    return out


def _geometry(definition: Mapping):
    """Primitive vectors, basis and bonds per shell of a lattice definition (``Lattice.to_dict``)."""
    try:
        bonds = {str(s): sorted(json.dumps(b, sort_keys=True) for b in (v.get("bonds") or []))
                 for s, v in (definition.get("hoppings") or {}).items()}
        return (np.round(np.asarray(definition["vectors"], float), 9).tolist(),
                np.round(np.asarray(definition["basis"], float), 9).tolist(), bonds)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _n_sites(cfg: Mapping, lat) -> int:
    """Sites of the config's supercell (``size`` as given; validated by ``lattice_graph``)."""
    size = cfg["size"]
    cells = int(size) ** lat.dim if isinstance(size, int) else int(np.prod([int(x) for x in size]))
    return cells * lat.n_basis


#: Peak bytes per bond (directed edge) of one field evaluation of a model (forward and
#: backward, float32): 1005 and 918 measured (peak RSS) with triangular-paper on 96 x 96 and
#: 192 x 192, with a margin.
_MODEL_BYTES_PER_BOND = 1200
#: Peak bytes per bond of building the graph (edge index, shifts, vectors, types, amplitudes):
#: 147 and 127 measured on 96 x 96 and 192 x 192, with a margin.
_GRAPH_BYTES_PER_BOND = 160


def memory_estimate(cfg: Mapping) -> int:
    """Estimated peak memory of a simulate config, in bytes (before anything is allocated).

    The graph, the spins, states and snapshots of a run, and one field
    evaluation: exact diagonalization (:func:`ecnn_pyg.ed.ed_memory_bytes`:
    the 2N x 2N Hamiltonian and its eigenvectors) or a model (measured bytes
    per bond).

    Args:
        cfg: a simulate config: ``lattice``, ``size``, and ``hoppings``,
            ``source``, ``dtype``, ``twists``, ``mu`` where they differ from
            the defaults.

    Returns:
        Bytes.
    """
    from .lattice import load_lattice
    lat = load_lattice(cfg["lattice"])
    n = _n_sites(cfg, lat)
    hop = lat.hopping_values(cfg.get("hoppings"))
    bonds = n // lat.n_basis * sum(1 for b in lat.bonds if hop[b.shell] != 0.0)
    spins = n * 3 * 8 * 12                          # integrator temporaries, state, snapshot
    if cfg.get("source", "ed") == "ed":
        src = ed_memory_of(lat, cfg["size"], cfg.get("twists"), canonical=cfg.get("mu") is None)
    else:
        src = _MODEL_BYTES_PER_BOND * bonds * (2 if cfg.get("dtype") == "float64" else 1)
        if cfg.get("memory_budget") or cfg.get("max_tile_sites"):     # evaluated tile by tile
            from .distributed.tiling import parse_bytes
            src = min(src, parse_bytes(cfg["memory_budget"]) if cfg.get("memory_budget")
                      else src * cfg["max_tile_sites"] / n)
    return int(bonds * _GRAPH_BYTES_PER_BOND + spins + src)


def _check_memory(cfg: Mapping) -> None:
    """Refuse a run whose memory estimate exceeds the machine's available memory."""
    from .lattice import load_lattice
    from .runtime import check_memory
    try:
        needed = memory_estimate(cfg)
    except (ValueError, TypeError, OverflowError):
        return                                     # a bad size: lattice_graph says what is wrong
    name = load_lattice(cfg["lattice"]).name       # a definition (lattice of one's own): its name
    check_memory(needed, f"simulate on {name} {cfg['size']} (source {cfg['source']})",
                 allow=cfg["ignore_memory_check"],
                 override="ignore_memory_check: true (--set ignore_memory_check=true)")


def _as_list(v):
    return [float(x) for x in v] if isinstance(v, list) else [float(v)]


def _initial(cfg, graph):
    """The initial state of the config as a function ``run_index -> (N, 3)`` spins.

    Resolved (files read, bad values refused) once, before the output file is touched.
    """
    n_sites = graph.num_nodes
    init = cfg["initial"]
    if init == "random":
        return lambda r: random_spins(n_sites, generator=np.random.default_rng([cfg["seed"], r]))
    if init == "ferro":
        spins = ferromagnet(n_sites)
    elif init == "triple-q":
        spins = triple_q(graph)
    elif "#" in init:                   # "trajectory.h5#k": the last state of run k
        path, _, k = init.rpartition("#")
        try:
            with h5py.File(path, "r", locking=False) as f:
                if f.attrs.get("format") != FORMAT:
                    raise DataFileError(f"'{path}' is not an ecnn_pyg trajectory file")
                spins = f[sorted(n for n in f if n.startswith("run_"))[int(k)]]["spin"][-1]
        except (OSError, ValueError, IndexError, DataFileError) as err:
            raise ValueError(f"initial '{init}': expected TRAJECTORY.h5#RUN_INDEX of an existing "
                             f"trajectory file and run; {err}") from err
    else:
        try:
            spins = np.load(init, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ValueError(f"initial must be 'random', 'ferro', 'triple-q', TRAJECTORY.h5#RUN "
                             f"or a .npy file of spins; cannot read '{init}': {err}") from err
    spins = as_spin_batch(spins, n_sites, normalize=True)[0][0]
    return lambda r: spins


def _lattice_of_run(cfg: Mapping) -> dict:
    """The config with ``lattice: null`` resolved: the model's lattice (and hoppings), or triangular.

    A model's lattice comes from its checkpoint (a built-in name, or the
    definition of a lattice of one's own), so the lattice file it was trained
    from may have moved.
    """
    cfg = dict(cfg)
    if cfg["lattice"] is not None:
        return cfg
    if cfg["source"] != "model" or not cfg["model"]:
        cfg["lattice"] = "triangular"
        return cfg
    from .lattice import lattice_reference
    from .models import checkpoint_lattice
    from .pretrained import load_model_and_checkpoint
    _, ckpt = load_model_and_checkpoint(cfg["model"])
    lat = checkpoint_lattice(ckpt)
    if lat is None:
        raise ValueError(f"model '{cfg['model']}' does not record its lattice: set lattice "
                         "(a built-in name or a lattice file)")
    cfg["lattice"] = lattice_reference(lat)
    if not cfg["hoppings"]:
        trained = (ckpt.get("data") or {}).get("hoppings") or {}
        cfg["hoppings"] = {str(k): float(v) for k, v in trained.items() if v is not None}
    return cfg


def _check(cfg):
    if cfg["integrator"] not in INTEGRATORS:
        raise ValueError(f"unknown integrator '{cfg['integrator']}'; choose from {sorted(INTEGRATORS)}")
    if cfg["n_steps"] < 0 or cfg["save_every"] < 1:
        raise ValueError("n_steps must be >= 0 and save_every >= 1")
    if cfg["dtype"] not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {cfg['dtype']}")
    for t in _as_list(cfg["temperature"]):
        if t < 0:
            raise ValueError(f"temperature must be >= 0, got {t}")
    upper = cfg.get("trust_upper")
    if upper is not None and not (math.isfinite(upper) and upper > 0):
        raise ValueError(f"trust_upper must be a finite number > 0 (a per-site sigma_B of a "
                         f"committee, units of the field) or null, got {upper}")
    member = cfg.get("committee_member")
    if member is not None and (member < 0 or cfg["source"] != "model"):
        raise ValueError(f"committee_member must be null (the committee's mean field) or the "
                         f"index of a member (0 ... M-1) of a committee model (source: model), "
                         f"got {member} with source {cfg['source']!r}")
    if cfg["replicas"] is not None and cfg["replicas"] < 1:
        raise ValueError(f"replicas must be a positive integer or null (1), got {cfg['replicas']}")
    cell = cfg["sites_per_magnetic_cell"]
    if cell is not None and cell < 1:
        raise ValueError(f"sites_per_magnetic_cell must be a positive integer (the sites of the "
                         f"magnetic unit cell, for n_sk = Q * it / N) or null (unknown: only Q "
                         f"is reported), got {cell}")


def _magnetic_cell(cfg: Mapping, source) -> Optional[int]:
    """Sites per magnetic unit cell: the config's, else the model card's, else None (unknown)."""
    if cfg["sites_per_magnetic_cell"] is not None:
        return int(cfg["sites_per_magnetic_cell"])
    cell = (getattr(source, "card", None) or {}).get("sites_per_magnetic_cell")
    return int(cell) if isinstance(cell, int) and not isinstance(cell, bool) and cell > 0 \
        else None


def _check_timestep(cfg: Mapping, source, initial, dtype, device) -> None:
    """Warn (``TimestepWarning``) if dt is far beyond ``suggest_timestep`` at the initial state."""
    if cfg["n_steps"] == 0:
        return
    spins = torch.from_numpy(initial(0)).to(device, dtype)
    hz = max(_as_list(cfg["zeeman"]), key=abs)
    field = SpinSystem(source, zeeman=hz)(spins)
    check_timestep(cfg["dt"], field, alpha=cfg["alpha"], temperature=max(_as_list(
        cfg["temperature"])))


#: Per-snapshot series of a run: name -> (shape after the snapshot axis, dtype); see the
#: module docstring for what each holds.
_SERIES = {"time": ((), "f8"), "magnetization": ((3,), "f8"), "charge": ((), "f8"),
           "energy": ((), "f8"), "energy_electronic": ((), "f8"), "energy_zeeman": ((), "f8")}
#: What each dataset of a run holds (stored as its ``description`` attribute).
_DESCRIPTIONS = {
    "spin": "spin snapshots (m, N, 3), unit vectors",
    "time": "time of each snapshot, step x dt, units of 1/t1 (hbar = 1)",
    "magnetization": "mean spin (1/N) sum_r S_r of each snapshot",
    "charge": "topological charge Q of each snapshot (NaN: not a 2D lattice)",
    "energy": "total energy E = energy_electronic + energy_zeeman, summed over the N sites, "
              "units of t1",
    "energy_electronic": "energy of the field source (source ed: exact electronic energy; "
                         "source model: the learned one), summed over the N sites, units of t1",
    "energy_zeeman": "Zeeman energy -H_z sum_r S^z_r, units of t1",
}


def _observables(spins: torch.Tensor, graph, triangles, system=None) -> dict:
    """Magnetization, Q and the energies (total, electronic, Zeeman) of one snapshot."""
    from .observables import magnetization, topological_charge
    m = magnetization(spins).cpu().numpy()
    q = float(topological_charge(spins, triangles)) if triangles is not None else float("nan")
    e_el = e_z = float("nan")
    if system is not None:
        hz = float(system.zeeman)
        e_z = -hz * float(spins[..., 2].double().sum())
        if system.energy_source is not None:
            e_el = float(system.energy_source(spins))
    return {"magnetization": m, "charge": q, "energy": e_el + e_z, "energy_electronic": e_el,
            "energy_zeeman": e_z}


def _series_datasets(g, n_snapshots: int = 0) -> None:
    """Create the per-snapshot series a run group lacks (NaN for snapshots written before)."""
    for key, (shape, dt) in _SERIES.items():
        if key not in g:
            g.create_dataset(key, (n_snapshots,) + shape, maxshape=(None,) + shape,
                             chunks=(256,) + shape, dtype=dt, fillvalue=np.nan)
    for key in ("spin", *_SERIES):
        if key in g and "description" not in g[key].attrs:
            g[key].attrs["description"] = _DESCRIPTIONS[key]


#: Per-snapshot series of a run with a committee model (ecnn_pyg.committee): name -> description
_UNCERTAINTY = {
    "sigma_mean": "committee uncertainty: mean over sites of sigma_B(r), the RMS over members of "
                  "|B_m(r) - <B(r)>|, units of t1",
    "sigma_max": "committee uncertainty: largest sigma_B(r) over the sites, units of t1 (compared "
                 "with the run's trust_upper attribute)",
    "sigma_rms": "committee uncertainty: RMS over sites of sigma_B(r), units of t1",
}


def _uncertainty_datasets(g, source, n_snapshots: int = 0) -> None:
    """A committee run's ``sigma_mean`` / ``sigma_max`` series and trust-level attributes."""
    unc = getattr(source, "uncertainty", None)
    if unc is None:
        return
    for key, text in _UNCERTAINTY.items():
        if key not in g:
            g.create_dataset(key, (n_snapshots,), maxshape=(None,), chunks=(256,), dtype="f8",
                             fillvalue=np.nan)
            g[key].attrs["description"] = text
    for key in ("lower", "upper"):
        value = unc.trust[key]
        g.attrs[f"trust_{key}"] = np.nan if value is None else float(value)


def simulate(config: Union[str, Path, Mapping, None] = None, overrides: Optional[Mapping] = None,
             progress: bool = True) -> Path:
    """Run (or continue) the simulation of ``config``; returns the output path.

    Args:
        config: YAML path or mapping with the keys of :data:`SIMULATE_SCHEMA`;
            ``None`` runs :data:`DEFAULT_CONFIG`.
        overrides: key -> value replacing entries of ``config``.
        progress: show a progress bar per run.

    With ``plot: true`` it also writes, next to the output file, a picture of
    every run's last state (:func:`plot_runs`).
    """
    cfg = load_config(config if config is not None else DEFAULT_CONFIG, SIMULATE_SCHEMA,
                      overrides)
    _check(cfg)
    cfg = _lattice_of_run(cfg)
    check_writable(cfg["output"], "trajectory file")   # a read-only place fails before any work
    _check_memory(cfg)
    if cfg["num_threads"] is not None:
        set_threads(cfg["num_threads"], "num_threads")     # refuses 0, -1 with a clear message
    from .distributed.llg import follow_slab, plan_for
    if follow_slab(cfg, field_source):      # ranks > 0 of a lattice in slabs: their slab only
        return Path(cfg["output"])
    graph = lattice_graph(cfg["lattice"], cfg["size"], cfg["hoppings"],
                          periodic=True if cfg["periodic"] is None else cfg["periodic"])
    dtype = getattr(torch, cfg["dtype"])
    device = resolve_device(cfg["device"])      # 'banana', or 'cuda' without CUDA: a clear error
    runs = [run for run in itertools.product(_as_list(cfg["zeeman"]),
                                             _as_list(cfg["temperature"]))
            for _ in range(cfg["replicas"] or 1)]      # replicas: own initial state and noise
    identity = {k: json.dumps(cfg[k], sort_keys=True) for k in _IDENTITY}
    path = Path(cfg["output"])
    try:
        triangles = None
        if graph.pos.shape[1] == 2:
            from .observables import triangulation
            triangles = triangulation(graph)
    except ValueError:
        triangles = None
    source = field_source(cfg, graph)
    initial = _initial(cfg, graph)
    cfg["sites_per_magnetic_cell"] = _magnetic_cell(cfg, source)
    # under torchrun: rank 0 writes, the other ranks follow it (ecnn_pyg.distributed.llg)
    plan = plan_for(cfg, graph, len(runs), getattr(source, "model", None), triangles)
    if plan is None or plan.writer:
        _check_timestep(cfg, source if plan is None else plan.field_source(source), initial,
                        dtype, device)

    def one(f, r, **kw):
        _run_one(f, r, *runs[r], cfg, graph, source, initial, triangles, dtype, device,
                 progress and (plan is None or plan.writer), **kw)
    if plan is not None and not plan.writer:
        plan.follow(one)
        return path
    with terminate_as_interrupt(), output_lock(path, what="trajectory file"), \
            (plan.lead() if plan is not None else contextlib.nullcontext()):
        f = _open_output(path, identity, graph, cfg)
        f.attrs["config"] = yaml.safe_dump(cfg, sort_keys=False)
        with f:
            if plan is not None and plan.mode == "runs":
                plan.run_all(f, runs, one)
            for r in range(len(runs)) if plan is None or plan.mode == "domain" else ():
                one(f, r, advance=plan.advance if plan is not None else None,
                    observe=plan.observe if plan is not None else None)
    if cfg["plot"]:
        plot_runs(path, cfg["sites_per_magnetic_cell"])
    return path


def _model_sha256(cfg: Mapping) -> Optional[str]:
    """SHA-256 of the model file of a model source (``None`` for ED or an unresolvable name)."""
    if cfg["source"] != "model" or not cfg["model"]:
        return None
    from .committee import committee_file
    p = committee_file(cfg["model"])                       # a committee's or learn's run folder
    if not p.is_file():
        from . import pretrained
        try:
            p = pretrained.path(str(cfg["model"]))
        except (KeyError, FileNotFoundError):
            return None
    digest = hashlib.sha256()
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open_output(path: Path, identity: Mapping, graph, cfg: Mapping) -> h5py.File:
    """The trajectory file: created, or reopened to continue after checking it matches.

    A file is continued only with the same identity keys and, for a model
    source, the same model file content (its SHA-256 is recorded at creation).
    """
    model_hash = _model_sha256(cfg)
    if path.exists():
        try:
            f = h5py.File(path, "r+")
        except OSError as err:
            raise DataFileError(open_error_message(path, err)) from err
        if f.attrs.get("format") != FORMAT:
            f.close()
            raise DataFileError(f"'{path}' is not an ecnn_pyg trajectory file")
        # a key absent from an older file held its default, null
        diff = [k for k in _IDENTITY if f.attrs.get(k, "null") != identity[k]]
        if diff:
            f.close()
            raise DataFileError(f"'{path}' was made with different settings ({', '.join(diff)}); "
                                "choose another output file, the existing one was not changed")
        old_hash = f.attrs.get("model_sha256")
        if model_hash and old_hash and old_hash != model_hash:
            f.close()
            raise DataFileError(
                f"the model file of '{cfg['model']}' changed since '{path}' was started (SHA-256 "
                f"{old_hash[:12]}... then, {model_hash[:12]}... now): its runs cannot be continued "
                "with another model. Restore the original model file, or write to another "
                "output; the existing file was not changed")
        if model_hash and not old_hash:             # a file of an older version: record it now
            f.attrs["model_sha256"] = model_hash
        return f
    # made complete under a temporary name, then renamed: a kill leaves no half-made file
    tmp = path.with_name(f".{path.name}.creating")
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["package_version"] = __version__
        for k, v in identity.items():
            f.attrs[k] = v
        if model_hash:
            f.attrs["model_sha256"] = model_hash
        _graph_to_group(graph, f.create_group("graph"))
    os.replace(tmp, path)
    return h5py.File(path, "r+")


def magnetic_cell_of(path: Union[str, Path]) -> Optional[int]:
    """Sites per magnetic unit cell recorded in a trajectory file (``None``: unknown).

    Args:
        path: a trajectory file of :func:`simulate`.

    Returns:
        The ``sites_per_magnetic_cell`` the run resolved (config or model card).
    """
    with h5py.File(path, "r", locking=False) as f:
        cell = yaml.safe_load(f.attrs.get("config", "{}") or "{}").get("sites_per_magnetic_cell")
    return int(cell) if isinstance(cell, int) and cell > 0 else None


def plot_runs(path: Union[str, Path], sites_per_magnetic_cell: Optional[int] = None) -> list:
    """Pictures of the last state of every run of a trajectory file.

    Writes ``<stem>_run_XXX.png`` (in-plane spins as arrows over an S_z colour
    map, with H_z, T, Q, n_sk (where the magnetic cell is known) and M_z in the
    title) next to the file and, for every temperature with two or more fields,
    ``<stem>_phase_diagram[_T<T>].png``: |n_sk| (or |Q| where the magnetic cell
    is unknown) and |M_z| of the last states against H_z (the paper's Fig. 4a),
    and for a committee model ``<stem>_uncertainty.png``: its largest and mean
    per-site sigma_B against time, with the trust levels.

    Args:
        path: a trajectory file of :func:`simulate`.
        sites_per_magnetic_cell: magnetic unit cell for n_sk = Q N_mc / N;
            default: the one recorded in the file (:func:`magnetic_cell_of`).

    Returns:
        The paths written.

    Raises:
        ValueError: if ``sites_per_magnetic_cell`` is given and not a positive integer.
    """
    from .plot import phase_diagram, spin_texture, uncertainty_plot
    path = Path(path)
    cell = sites_per_magnetic_cell
    if cell is None:
        cell = magnetic_cell_of(path)
    elif isinstance(cell, bool) or not isinstance(cell, (int, np.integer)) or cell < 1:
        raise ValueError(f"sites_per_magnetic_cell must be a positive integer, got {cell!r}")
    runs = read_runs(path)
    with h5py.File(path, "r", locking=False) as f:
        graph = read_graph(f)
    n = graph.num_nodes
    stride = max(1, int(round((n / 48 ** 2) ** 0.5)))
    written, by_temp = [], {}
    for r in runs:
        q = r["charge"][-1]
        charge = q * cell / n if cell else q
        m_z = r["magnetization"][-1][2]
        by_temp.setdefault(float(r["temperature"]), []).append((r["zeeman"], charge, m_z))
        out = path.with_name(f"{path.stem}_{r['name']}.png")
        topo = f"Q = {q:+.2f}" + (f", n_sk = {charge:+.2f}" if cell else "")
        spin_texture(r["spin"][-1], graph, out, arrow_stride=stride,
                     title=f"H_z = {r['zeeman']:g}, T = {r['temperature']:g}, t = {r['time'][-1]:g}\n"
                           f"{topo}, M_z = {m_z:.3f}")
        written.append(out)
    for temp, rows in by_temp.items():
        if len(rows) < 2:
            continue
        suffix = "" if len(by_temp) == 1 else f"_T{temp:g}"
        out = path.with_name(f"{path.stem}_phase_diagram{suffix}.png")
        h, charge, m_z = zip(*rows)
        phase_diagram(h, charge, m_z, out, title=f"{path.stem}: last states, T = {temp:g}",
                      quantity="n_sk" if cell else "Q")
        written.append(out)
    if any("sigma_max" in r and len(r["sigma_max"]) for r in runs):   # a committee model
        out = path.with_name(f"{path.stem}_uncertainty.png")
        r0 = next(r for r in runs if "sigma_max" in r)
        uncertainty_plot(runs, out, lower=r0.get("trust_lower"), upper=r0.get("trust_upper"),
                         title=f"{path.stem}: committee uncertainty")
        written.append(out)
    return written


def _run_one(f, r, hz, temp, cfg, graph, source, initial, triangles, dtype, device, progress,
             advance=None, observe=None):
    name = f"run_{r:03d}"
    n, every = graph.num_nodes, cfg["save_every"]
    gen = torch.Generator(device=device).manual_seed(int(cfg["seed"]) * 1000003 + r)
    if name in f:
        g = f[name]
        if g.attrs["zeeman"] != hz or g.attrs["temperature"] != temp:
            raise DataFileError(f"{name} of '{f.filename}' has H_z={g.attrs['zeeman']}, "
                                f"T={g.attrs['temperature']}, not {hz}, {temp}")
        state = _committed_state(g, every)
        if state is None:                           # killed in its first save: start again
            del f[name]
    if name in f:
        step, spin_state, rng_state, m = state
        if step >= cfg["n_steps"]:
            return
        spins = torch.from_numpy(spin_state).to(device, dtype)
        gen.set_state(torch.from_numpy(rng_state))
        _series_datasets(g, g["spin"].shape[0])     # a file of an older version: no energies
        _uncertainty_datasets(g, source, g["spin"].shape[0])
        for key in ("spin", *_SERIES, *(k for k in _UNCERTAINTY if k in g)):
            g[key].resize(m, axis=0)                # drop any snapshot written after the state
        system = SpinSystem(source, zeeman=hz, energy=getattr(source, "energy", None))
    else:
        g = f.create_group(name)
        g.attrs.update({"zeeman": hz, "temperature": temp, "step": 0})
        g.create_dataset("spin", (0, n, 3), maxshape=(None, n, 3), chunks=(1, n, 3), dtype="f4")
        _series_datasets(g)
        _uncertainty_datasets(g, source)
        spins = torch.from_numpy(initial(r)).to(device, dtype)
        step = 0
        system = SpinSystem(source, zeeman=hz, energy=getattr(source, "energy", None))
        _save(g, 0, 0.0, spins, gen, graph, triangles, system, observe)
    integ = make_integrator(cfg["integrator"], cfg["dt"], alpha=cfg["alpha"], temperature=temp,
                            generator=gen)
    bar = tqdm(total=cfg["n_steps"], initial=step, disable=not progress,
               desc=f"{name} H_z={hz:g} T={temp:g}", unit="step")
    while step < cfg["n_steps"]:
        k = min(every - step % every, cfg["n_steps"] - step)
        spins = integ.run(spins, system, k) if advance is None else \
            advance(integ, spins, system, k)            # the lattice split over ranks
        step += k
        bar.update(k)
        _save(g, step, step * cfg["dt"], spins, gen, graph, triangles, system, observe)
    bar.close()


#: the two resume-state slots of a run group, written in turn: a save never overwrites the
#: last committed state, so a save cut short (kill, full disk) leaves the previous one intact
_SLOTS = ("state_a", "state_b")


def _state_digest(spin: np.ndarray, rng: np.ndarray, step: int, snapshots: int) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(spin, dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(rng, dtype=np.uint8).tobytes())
    h.update(f"{int(step)}:{int(snapshots)}".encode())
    return h.hexdigest()


def _saved_states(g) -> list:
    """Intact committed states of a run group, latest first: ``(step, spin, rng, snapshots, slot)``.

    A slot counts only if its commit record (step, snapshot count and the
    SHA-256 of spins, generator state and both counts) matches its data.
    """
    out = []
    for slot in _SLOTS:
        s = g.get(slot)
        if s is None or "spin" not in s or "rng" not in s or "commit" not in s.attrs:
            continue
        try:
            commit = json.loads(s.attrs["commit"])
            step, snaps = int(commit["step"]), int(commit["snapshots"])
        except (ValueError, KeyError, TypeError):
            continue
        spin, rng = s["spin"][()], s["rng"][()]
        if _state_digest(spin, rng, step, snaps) == commit.get("sha256"):
            out.append((step, spin, rng, snaps, slot))
    return sorted(out, key=lambda t: -t[0])


def _committed_state(g, every: int):
    """``(step, spin, rng, snapshots)`` to continue a run from, or ``None`` if it has none.

    The latest intact slot whose snapshots are all in the file; a file of an
    older version (one state, the step counter as attribute) is read as it was
    written. ``None``: the run was cut short during its first save (nothing of
    it is lost by starting it again).

    Raises:
        DataFileError: if the run has snapshots but no intact state.
    """
    rows = min((g[key].shape[0] for key in _snapshot_keys(g)), default=0)
    for step, spin, rng, snaps, _slot in _saved_states(g):
        if rows >= snaps:
            return step, spin, rng, snaps
    if "state_spin" in g and "state_rng" in g and not any(slot in g for slot in _SLOTS):
        step = int(g.attrs["step"])
        return step, g["state_spin"][()], g["state_rng"][()], \
            step // every + 1 + (step % every > 0)
    if rows <= 1:
        return None
    raise DataFileError(f"{g.name} of '{g.file.filename}' holds {rows} snapshots but no intact "
                        "saved state to continue from (the file is damaged); move the file aside "
                        "and start the run again")


def _save(g, step, time, spins, gen, graph, triangles, system=None, observe=None):
    """Append a snapshot, then commit the resume state (the commit point of the save).

    Order: the snapshot rows, a flush; then spins and generator state into the
    slot not holding the last committed state, its commit record (step,
    snapshot count, SHA-256), a flush; then the step attribute (a summary). A
    save cut short anywhere leaves the last committed state intact, and a
    reader trusts a slot only if its record matches its data.
    """
    obs = {"time": time, **(observe or _observables)(spins, graph, triangles, system)}
    uncertainty = getattr(getattr(system, "source", None), "uncertainty", None)
    if uncertainty is not None and "sigma_max" in g:     # a committee: sigma_B of the snapshot
        obs.update(uncertainty(spins, where=f"{g.name.lstrip('/')} step {step}"))
    try:
        _write_save(g, step, spins, gen, obs)
    except OSError as err:
        raise OutputWriteError(f"cannot save step {step} of {g.name} to '{g.file.filename}' "
                               f"({err}); the disk may be full or the file system failing. The "
                               "last committed save is intact: free space and rerun the same "
                               "command to continue") from err


def _snapshot_keys(g) -> list:
    """The per-snapshot datasets of a run group (``spin`` and the series)."""
    return [k for k in g if isinstance(g[k], h5py.Dataset) and k not in ("state_spin", "state_rng")]


def _write_save(g, step, spins, gen, obs):
    # the dataset handles stay open until the file is flushed: their buffered rows are written
    # by that flush, where a failure raises, never when a handle is garbage-collected (HDF5
    # can then only print the error); one file flush, not one per dataset, so the file on disk
    # is never ahead of its superblock
    series = {key: g[key] for key in _snapshot_keys(g)}
    i = series["spin"].shape[0]
    for ds in series.values():
        ds.resize(i + 1, axis=0)
    series["spin"][i] = spins.detach().cpu().numpy()
    for key, value in obs.items():
        series[key][i] = value
    g.file.flush()
    spin, rng = spins.detach().cpu().double().numpy(), gen.get_state().numpy()
    states = _saved_states(g)
    slot = _SLOTS[1] if states and states[0][4] == _SLOTS[0] else _SLOTS[0]
    s = g.require_group(slot)
    for key, value in (("spin", spin), ("rng", rng)):
        if key in s and s[key].shape != value.shape:
            del s[key]
        series[key] = s[key] if key in s else s.create_dataset(key, value.shape,
                                                                 dtype=value.dtype)
        series[key][...] = value
    s.attrs["commit"] = json.dumps({"step": int(step), "snapshots": i + 1,
                                    "sha256": _state_digest(spin, rng, step, i + 1)})
    g.file.flush()
    g.attrs["step"] = step
    g.file.flush()


def read_runs(path) -> list:
    """All runs of a trajectory file as dicts (zeeman, temperature, step, spin and the series).

    The series are those of the module docstring (time, magnetization, charge,
    energy, energy_electronic, energy_zeeman); a file of an older version may
    lack the energies. A run with a committee model also has ``sigma_mean``,
    ``sigma_max`` and ``sigma_rms`` (per snapshot) and ``trust_lower`` / ``trust_upper``
    (NaN: none).
    """
    out = []
    with h5py.File(path, "r", locking=False) as f:
        if f.attrs.get("format") != FORMAT:
            raise DataFileError(f"'{path}' is not an ecnn_pyg trajectory file")
        every = int(json.loads(f.attrs.get("save_every", "1")))
        for name in sorted(k for k in f if k.startswith("run_")):
            g = f[name]
            state = _committed_state(g, every)   # a save cut short: its rows are not counted
            step, m = (state[0], state[3]) if state is not None else (0, 0)
            out.append({"name": name, "zeeman": g.attrs["zeeman"],
                        "temperature": g.attrs["temperature"], "step": step,
                        **{k: g[k][:m] for k in ("spin", *_SERIES, *_UNCERTAINTY) if k in g},
                        **{f"trust_{k}": float(g.attrs[f"trust_{k}"]) for k in ("lower", "upper")
                           if f"trust_{k}" in g.attrs}})
    return out
