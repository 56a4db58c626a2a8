"""Resumable LLG simulations: a trajectory, or a sweep over Zeeman fields / temperatures.

``simulate(config)`` is what ``ecnn-pyg simulate --config FILE.yaml`` runs. Each
entry of the sweep (every pair of ``zeeman`` x ``temperature`` values) is one run,
integrated for ``n_steps`` steps; every ``save_every`` steps (and at the end)
it appends a snapshot and its observables to the output file and saves the
state (spins and the noise generator), so a rerun continues exactly where it
stopped, and a rerun with a larger ``n_steps`` extends the runs.

File layout (``format = "ecnn_pyg-trajectory"``)::

    /graph/                         the lattice graph
    /run_000/ attrs: zeeman, temperature, step (completed steps)
              spin       (m, N, 3)  snapshots (float32)
              time       (m,)
              magnetization (m, 3), charge (m,)   (Q; 2D lattices only, else NaN)
              state_a/, state_b/  resume state, written in turn: spin (N, 3) float64,
                                  rng (uint8), attrs commit (JSON: step, snapshots, SHA-256)
    attrs: config (YAML), identity keys, package_version, model_sha256 (source model)

A save commits by its state slot's record; a reader (a resume, :func:`read_runs`)
trusts the latest intact slot and ignores snapshots written after it.
"""
from __future__ import annotations

import hashlib
import itertools
import json
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
from .dynamics import INTEGRATORS, SpinSystem, make_integrator, numpy_field_source
from .ed import KondoED
from .graph import lattice_graph
from .locking import OutputWriteError, check_writable, output_lock
from .runtime import resolve_device, set_threads
from .spins import as_spin_batch, ferromagnet, random_spins, triple_q

__all__ = ["SIMULATE_SCHEMA", "DEFAULT_CONFIG", "simulate", "field_source", "read_runs",
           "plot_runs", "FORMAT"]

FORMAT = "ecnn_pyg-trajectory"
_IDENTITY = ("lattice", "size", "hoppings", "source", "model", "J", "electrons", "filling",
             "mu", "el_temperature", "twists", "integrator", "dt", "alpha", "initial", "seed",
             "dtype", "save_every")

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
    "sites_per_magnetic_cell": (int, 48),       # n_sk = Q * this / N (48: triangular triple-Q)
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
    """The electronic field source of a simulate config (without Zeeman)."""
    if cfg["source"] == "ed":
        if cfg["J"] is None:
            raise ValueError("source 'ed' needs J and one of electrons, filling, mu")
        ed = KondoED(graph, J=cfg["J"], electrons=cfg["electrons"], filling=cfg["filling"],
                     mu=cfg["mu"], temperature=cfg["el_temperature"], twists=cfg["twists"])
        return numpy_field_source(lambda s: ed.energy_field(s)[1])
    if cfg["source"] == "model":
        if not cfg["model"]:
            raise ValueError("source 'model' needs model: a pretrained name or checkpoint path")
        from .pretrained import load_model        # a shipped name or a checkpoint path
        from .dynamics import model_field_source
        model = load_model(cfg["model"]).to(cfg["device"]).eval()
        return model_field_source(model, graph)
    raise ValueError(f"unknown source '{cfg['source']}'; expected 'ed' or 'model'")


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


def _observables(spins: torch.Tensor, graph, triangles):
    from .observables import magnetization, topological_charge
    m = magnetization(spins).cpu().numpy()
    q = float(topological_charge(spins, triangles)) if triangles is not None else float("nan")
    return m, q


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
    check_writable(cfg["output"], "trajectory file")   # a read-only place fails before any work
    cfg = _lattice_of_run(cfg)
    if cfg["num_threads"] is not None:
        set_threads(cfg["num_threads"], "num_threads")     # refuses 0, -1 with a clear message
    graph = lattice_graph(cfg["lattice"], cfg["size"], cfg["hoppings"])
    dtype = getattr(torch, cfg["dtype"])
    device = resolve_device(cfg["device"])      # 'banana', or 'cuda' without CUDA: a clear error
    runs = list(itertools.product(_as_list(cfg["zeeman"]), _as_list(cfg["temperature"])))
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
    with terminate_as_interrupt(), output_lock(path, what="trajectory file"):
        f = _open_output(path, identity, graph, cfg)
        f.attrs["config"] = yaml.safe_dump(cfg, sort_keys=False)
        with f:
            for r, (hz, temp) in enumerate(runs):
                _run_one(f, r, hz, temp, cfg, graph, source, initial, triangles, dtype, device,
                         progress)
    if cfg["plot"]:
        plot_runs(path, cfg["sites_per_magnetic_cell"])
    return path


def _model_sha256(cfg: Mapping) -> Optional[str]:
    """SHA-256 of the model file of a model source (``None`` for ED or an unresolvable name)."""
    if cfg["source"] != "model" or not cfg["model"]:
        return None
    p = Path(cfg["model"])
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
    f = h5py.File(path, "w")
    f.attrs["format"] = FORMAT
    f.attrs["package_version"] = __version__
    for k, v in identity.items():
        f.attrs[k] = v
    if model_hash:
        f.attrs["model_sha256"] = model_hash
    _graph_to_group(graph, f.create_group("graph"))
    return f


def plot_runs(path: Union[str, Path], sites_per_magnetic_cell: int = 48) -> list:
    """Pictures of the last state of every run of a trajectory file.

    Writes ``<stem>_run_XXX.png`` (in-plane spins as arrows over an S_z colour
    map, with H_z, T, n_sk and M_z in the title) next to the file and, for every
    temperature with two or more fields, ``<stem>_phase_diagram[_T<T>].png``:
    |n_sk| and |M_z| of the last states against H_z (the paper's Fig. 4a).

    Args:
        path: a trajectory file of :func:`simulate`.
        sites_per_magnetic_cell: magnetic unit cell for n_sk = Q N_mc / N.

    Returns:
        The paths written.
    """
    from .plot import phase_diagram, spin_texture
    path = Path(path)
    runs = read_runs(path)
    with h5py.File(path, "r", locking=False) as f:
        graph = read_graph(f)
    n = graph.num_nodes
    stride = max(1, int(round((n / 48 ** 2) ** 0.5)))
    written, by_temp = [], {}
    for r in runs:
        n_sk = r["charge"][-1] * sites_per_magnetic_cell / n
        m_z = r["magnetization"][-1][2]
        by_temp.setdefault(float(r["temperature"]), []).append((r["zeeman"], n_sk, m_z))
        out = path.with_name(f"{path.stem}_{r['name']}.png")
        spin_texture(r["spin"][-1], graph, out, arrow_stride=stride,
                     title=f"H_z = {r['zeeman']:g}, T = {r['temperature']:g}, t = {r['time'][-1]:g}\n"
                           f"n_sk = {n_sk:+.2f}, M_z = {m_z:.3f}")
        written.append(out)
    for temp, rows in by_temp.items():
        if len(rows) < 2:
            continue
        suffix = "" if len(by_temp) == 1 else f"_T{temp:g}"
        out = path.with_name(f"{path.stem}_phase_diagram{suffix}.png")
        h, n_sk, m_z = zip(*rows)
        phase_diagram(h, n_sk, m_z, out, title=f"{path.stem}: last states, T = {temp:g}")
        written.append(out)
    return written


def _run_one(f, r, hz, temp, cfg, graph, source, initial, triangles, dtype, device, progress):
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
        for key in ("spin", "time", "magnetization", "charge"):
            g[key].resize(m, axis=0)                # drop any snapshot written after the state
    else:
        g = f.create_group(name)
        g.attrs.update({"zeeman": hz, "temperature": temp, "step": 0})
        g.create_dataset("spin", (0, n, 3), maxshape=(None, n, 3), chunks=(1, n, 3), dtype="f4")
        g.create_dataset("time", (0,), maxshape=(None,), chunks=(256,), dtype="f8")
        g.create_dataset("magnetization", (0, 3), maxshape=(None, 3), chunks=(256, 3), dtype="f8")
        g.create_dataset("charge", (0,), maxshape=(None,), chunks=(256,), dtype="f8")
        spins = torch.from_numpy(initial(r)).to(device, dtype)
        step = 0
        _save(g, 0, 0.0, spins, gen, graph, triangles)
    system = SpinSystem(source, zeeman=hz)
    integ = make_integrator(cfg["integrator"], cfg["dt"], alpha=cfg["alpha"], temperature=temp,
                            generator=gen)
    bar = tqdm(total=cfg["n_steps"], initial=step, disable=not progress,
               desc=f"{name} H_z={hz:g} T={temp:g}", unit="step")
    while step < cfg["n_steps"]:
        k = min(every - step % every, cfg["n_steps"] - step)
        spins = integ.run(spins, system, k)
        step += k
        bar.update(k)
        _save(g, step, step * cfg["dt"], spins, gen, graph, triangles)
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


def _save(g, step, time, spins, gen, graph, triangles):
    """Append a snapshot, then commit the resume state (the commit point of the save).

    Order: the snapshot rows, a flush; then spins and generator state into the
    slot not holding the last committed state, its commit record (step,
    snapshot count, SHA-256), a flush; then the step attribute (a summary). A
    save cut short anywhere leaves the last committed state intact, and a
    reader trusts a slot only if its record matches its data.
    """
    m, q = _observables(spins, graph, triangles)
    obs = {"time": time, "magnetization": m, "charge": q}
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
    # every dataset handle is flushed by us, where a failed write raises, never only when a
    # handle is garbage-collected (HDF5 can then just print the error)
    series = {key: g[key] for key in _snapshot_keys(g)}
    i = series["spin"].shape[0]
    for ds in series.values():
        ds.resize(i + 1, axis=0)
    series["spin"][i] = spins.detach().cpu().numpy()
    for key, value in obs.items():
        series[key][i] = value
    for ds in series.values():
        ds.flush()
    g.file.flush()
    spin, rng = spins.detach().cpu().double().numpy(), gen.get_state().numpy()
    states = _saved_states(g)
    slot = _SLOTS[1] if states and states[0][4] == _SLOTS[0] else _SLOTS[0]
    s = g.require_group(slot)
    for key, value in (("spin", spin), ("rng", rng)):
        if key in s and s[key].shape != value.shape:
            del s[key]
        ds = s[key] if key in s else s.create_dataset(key, value.shape, dtype=value.dtype)
        ds[...] = value
        ds.flush()
    s.attrs["commit"] = json.dumps({"step": int(step), "snapshots": i + 1,
                                    "sha256": _state_digest(spin, rng, step, i + 1)})
    g.file.flush()
    g.attrs["step"] = step
    g.file.flush()


def read_runs(path) -> list:
    """All runs of a trajectory file as dicts (zeeman, temperature, time, spin, observables)."""
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
                        **{k: g[k][:m] for k in ("time", "spin", "magnetization", "charge")}})
    return out
