"""The active-learning loop: rounds of explore, score, select, label, retrain, report.

Everything lives under the config's ``run_dir``::

    config.yaml            the resolved config (a continued run must keep it; see RESUME_MUTABLE)
    learn.lock             one loop per run directory
    summary.json, summary.md   one row per round, rewritten after every round's report
    round_000/             seed.json  seed_random.h5  seed_ed_llg_traj.h5  seed_ed_llg_spins.npy
                           seed_ed_llg.h5  committee/ (train_committee's run)  train.json
                           report.json  report.md
    round_001/             explore/<size>_<start>.h5  explore.json
                           scores.npz  score.json     selected_<size>.npy  select.json
                           relaxed/<index>.npy|json  (select.relax_minima: one per minimum)
                           exact_minima/<H_z>_<j>.npy|json  (exact_minima)
                           relax.json  (processes > 1: the relaxations' spec for the ranks)
                           labels_<size>.h5  label.json    committee/  train.json
                           report.json  report.md

A stage is finished when its record ``<stage>.json`` has been renamed into place (written
to a temporary file, then ``os.replace``); a stage without its record is run again, and
the machinery it uses continues what it had done: ``generate`` its data sets (sample by
sample), ``simulate`` its trajectories (from the last save), ``train_committee`` its
members (from their ``last.pt``). A finished stage is never redone. Every stage's wall time
(summed over interrupted attempts) is in its record and in the round's report.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import yaml

from ..config import ConfigError
from .schema import (RESUME_MUTABLE, RESUME_MUTABLE_KEYS, STARTS, exact_dynamics_name,
                     identity_of, load_learn_config, size_label, twists_of)
from ._files import (ROUND0_STAGES, STAGES, jsonable, read_json, replace_into, round_dir,
                     save_npy, save_npz, write_json, write_text)
from .select import (CANDIDATE, CLASSES, classify, final_t0_snapshots, select_candidates,
                     spread_sample)

__all__ = ["learn", "status", "STAGES", "ROUND0_STAGES", "LearnStopped"]



class LearnStopped(Exception):
    """Stops the loop after the stage named by ``until`` (caught by :func:`learn`)."""


def _snapshot(files: List[Mapping[str, Any]], arrays: Mapping[str, np.ndarray], i: int,
              cache: Dict[int, list]) -> np.ndarray:
    """Snapshot ``i`` of a round's scores (``scores.npz``) read from its exploration file,
    in float64; ``cache`` keeps the files' runs."""
    from ..simulate import read_runs
    fi, ri, si = (int(arrays[key][i]) for key in ("traj", "run", "snapshot"))
    if fi not in cache:
        cache[fi] = read_runs(files[fi]["path"])
    return np.asarray(cache[fi][ri]["spin"][si], dtype=np.float64)


class _MinimaRelaxer:
    """``select.relax_minima``: a T = 0 run's last snapshot relaxed to the nearest minimum of
    the exploring committee (L-BFGS on unit spins, its mean energy and field in float64, the
    Zeeman term included), each result kept in ``folder`` as ``<index>.npy`` and
    ``<index>.json`` so that a rerun of the stage relaxes only what is missing."""

    def __init__(self, committee: Path, folder: Path):
        self.committee, self.folder = committee, folder
        self._model = None
        self._graphs: Dict[str, Any] = {}

    def __call__(self, index: int, path: str, spin: np.ndarray, zeeman: float):
        done = self.folder / f"{index}.json"
        if done.is_file():
            return np.load(self.folder / f"{index}.npy"), read_json(done)
        import torch
        from ..datasets import read_graph
        from ..minimize import model_energy_field, relax
        if self._model is None:
            from ..pretrained import load_model
            self._model = load_model(str(self.committee))
        if path not in self._graphs:             # the trajectory file stores its graph
            import h5py
            with h5py.File(path, "r", locking=False) as f:
                self._graphs[path] = read_graph(f)
        graph = self._graphs[path]
        energy_field = model_energy_field(self._model, graph)       # float64, eval mode
        t0 = time.perf_counter()
        relaxed, n_iter = relax(energy_field, spin, zeeman)
        seconds = time.perf_counter() - t0
        out = self._model(graph, torch.from_numpy(relaxed))         # energy, field, sigma_B
        h = np.array([0.0, 0.0, zeeman])
        e_start = energy_field(spin)[0] - zeeman * spin[:, 2].sum()
        e_end = float(out["energy"].sum().detach()) - zeeman * relaxed[:, 2].sum()
        b = out["field"].detach().numpy() + h
        sigma = out["field_sigma"].detach().numpy()
        info = {"iterations": n_iter, "seconds": seconds,
                "energy_change_per_site": (e_end - e_start) / len(spin),
                "torque_max": float(np.linalg.norm(np.cross(relaxed, b), axis=1).max()),
                "sigma_rms": float(np.sqrt((sigma ** 2).mean())),
                "sigma_max": float(sigma.max())}
        save_npy(self.folder / f"{index}.npy", relaxed)
        write_json(done, info)
        return relaxed, info


class _ExactMinima:
    """``exact_minima``: Gaussian random spins (``tilt`` added to S_z) relaxed to the nearest
    minimum of the exact energy, ED of the run's Hamiltonian on ``relax_twists`` and the Zeeman
    term (L-BFGS on unit spins, :func:`ecnn_pyg.minimize.relax`). Start j at field H_z of
    round k is drawn from the seed ``[seed, k, round(H_z * 1e6), j]``; each result is kept in
    ``folder`` as ``<H_z>_<j>.npy`` and ``.json``, named by the field rather than its place in
    the list (which may change on continuation), so that a rerun of the stage relaxes only
    what is missing."""

    def __init__(self, loop: "_Loop", k: int, folder: Path):
        self.loop, self.k, self.folder = loop, k, folder
        self.em = loop.cfg["exact_minima"]
        self._ed = None

    def solver(self):
        if self._ed is None:
            from ..generate import build_solver
            em, ex = self.em, self.loop.cfg["explore"]
            twists = em["relax_twists"] if em["relax_twists"] is not None \
                else twists_of(ex, em["size"])
            self._ed = build_solver(self.loop.labels_config(self.folder, em["size"], twists, {}))
        return self._ed

    def starts(self) -> List[Tuple[float, int]]:
        """``(H_z, j)`` of every start, in the order of the labels."""
        return [(hz, j) for hz in self.em["zeeman"] for j in range(self.em["starts"])]

    def done(self, hz: float, j: int) -> Path:
        """The record whose existence marks start ``j`` at ``hz`` as relaxed."""
        return self.folder / f"{hz:g}_{j}.json"

    def __call__(self) -> List[Tuple[Dict[str, Any], np.ndarray]]:
        """``(row, spins)`` of every start: the minimum and how it was reached."""
        return [self.one(hz, j) for hz, j in self.starts()]

    def one(self, hz: float, j: int) -> Tuple[Dict[str, Any], np.ndarray]:
        from ..minimize import relax
        done = self.done(hz, j)
        if done.is_file():
            return read_json(done), np.load(done.with_suffix(".npy"))
        graph, ed = self.solver()
        rng = np.random.default_rng([self.loop.cfg["seed"], self.k, int(round(hz * 1e6)), j])
        start = rng.normal(size=(graph.num_nodes, 3))
        start[:, 2] += self.em["tilt"]
        t0 = time.perf_counter()
        spins, n_iter = relax(ed.energy_field, start, hz, maxiter=self.em["maxiter"])
        energy, field = ed.energy_field(spins)
        field[:, 2] += hz
        row = {"size": size_label(self.em["size"]), "zeeman": float(hz), "start": j,
               "iterations": int(n_iter),
               "seconds": round(time.perf_counter() - t0, 3),
               "energy_per_site": float(energy - hz * spins[:, 2].sum()) / len(spins),
               "torque_max": float(np.linalg.norm(np.cross(spins, field), axis=1).max()),
               "m_z": float(spins[:, 2].mean())}
        save_npy(done.with_suffix(".npy"), spins)
        write_json(done, row)
        return row, spins


def relax_on_this_rank(spec: Union[str, Path]) -> int:
    """The worker of :meth:`_Loop.relax_on_ranks`, one per torchrun rank: the relaxations
    of the round in ``spec`` (``{"cfg", "run_dir", "round"}``, JSON) that no rank has
    claimed yet, each claimed by creating ``<record>.claim`` (exclusive create), so that
    ranks that finish early take the next. Every result goes to its own file; no rank
    waits for another. Returns how many this rank relaxed."""
    import os
    job = read_json(Path(spec))
    loop = _Loop(job["cfg"], Path(job["run_dir"]), None, False, lambda msg: None)
    n = 0
    for done, work in loop.relaxations(int(job["round"])):
        if done.exists():
            continue
        claim = done.with_suffix(".claim")
        try:
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue                       # another rank has it
        work()
        claim.unlink()
        n += 1
    return n


# ----------------------------------------------------------------------------- the run


def _parse_until(until: Optional[str]) -> Optional[Tuple[Optional[int], str]]:
    if until is None:
        return None
    text = str(until).strip()
    rnd, _, stage = text.rpartition("/")
    known = set(ROUND0_STAGES) | set(STAGES)
    if stage not in known or (rnd and not rnd.isdigit()):
        raise ValueError(f"until must be a stage ({', '.join(sorted(known))}) or ROUND/STAGE "
                         f"(e.g. 1/label), got {until!r}")
    k = int(rnd) if rnd else None
    if k == 0 and stage not in ROUND0_STAGES or k is not None and k > 0 and stage == "seed":
        raise ValueError(f"round {k} has no stage {stage!r}: round 0 has "
                         f"{', '.join(ROUND0_STAGES)}, later rounds {', '.join(STAGES)}")
    return k, stage


def _started_member(path: Path) -> Optional[int]:
    """The committee member driving an exploration file already started (None: the mean).

    A file is continued as it was begun, even if ``explore.drive`` changed in between.
    """
    import h5py
    try:
        with h5py.File(path, "r") as f:
            value = json.loads(f.attrs.get("committee_member", "null"))
    except (OSError, ValueError):
        return None                         # unreadable: simulate says so when it opens it
    return None if value is None else int(value)


class _Heartbeat:
    """Calls ``tick`` every ``period`` seconds in a daemon thread until :meth:`stop`.

    A stage's clock file is rewritten this way, so that a run killed without a chance to
    write it (SIGKILL, a lost machine) still counts the stage's time, to within a period.
    """

    def __init__(self, tick: Callable[[], None], period: float = 30.0):
        import threading
        self._stop = threading.Event()

        def loop():
            while not self._stop.wait(period):
                try:
                    tick()
                except OSError:             # a full disk must not kill the stage
                    pass
        self._thread = threading.Thread(target=loop, daemon=True, name="learn-clock")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


#: what may change when a run is continued, for messages
_MUTABLE = ", ".join([k for k in RESUME_MUTABLE if k != "stop"]
                     + [f"{s}.{k}" for s, k in RESUME_MUTABLE_KEYS])


def _check_continuation(run_dir: Path, cfg: Mapping) -> None:
    """Refuse to continue a run directory made with other settings (before anything is written)."""
    stored = run_dir / "config.yaml"
    if not stored.exists():
        if run_dir.exists() and any(p.name.startswith("round_") for p in run_dir.iterdir()):
            raise ConfigError(f"'{run_dir}' holds rounds but no config.yaml: it was not made by "
                              "ecnn-pyg learn, or is damaged; choose another run_dir")
        return
    old = yaml.safe_load(stored.read_text()) or {}
    a, b = jsonable(identity_of(old)), jsonable(identity_of(cfg))
    diff = []
    for section in sorted({s for s, _ in RESUME_MUTABLE_KEYS} | {"stop"}):
        old_s, new_s = dict(a.pop(section, {}) or {}), dict(b.pop(section, {}) or {})
        diff += [f"{section}.{k}" for k in sorted(set(old_s) | set(new_s))
                 if old_s.get(k) != new_s.get(k)]
    diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)] + diff
    if diff:
        raise ConfigError(f"'{run_dir}' was started with other settings ({', '.join(diff)} "
                          f"differ from its config.yaml); only {_MUTABLE} may change when a run "
                          "is continued. Choose another run_dir, or restore the settings")


def learn(config: Union[str, Path, Mapping], overrides: Optional[Mapping] = None, *,
          rounds: Optional[int] = None, until: Optional[str] = None,
          progress: bool = False, log: Callable[[str], None] = print) -> Path:
    """Run (or continue) the active-learning loop of ``config``; returns the run directory.

    Round 0 labels the seed data and trains the first committee; every later round
    explores with the committee's field (``explore.drive``), scores the snapshots by its
    disagreement, labels the candidates exactly and retrains the committee from its
    previous weights (see ``docs/active_learning.md``). The loop stops when the share
    of accurate snapshots reaches ``stop.accurate_share``, when no candidate is left, or
    after ``stop.max_rounds`` rounds.

    Args:
        config: a learn config (YAML path or mapping; ``configs/triangular_learn.yaml``).
        overrides: ``{key: value}`` over the config (``select.lower`` reaches into a section).
        rounds: sets ``stop.max_rounds``.
        until: stop after this stage: ``STAGE`` (its next run) or ``ROUND/STAGE`` (``1/label``).
        progress: progress bars of the stages' generate, simulate and training runs.
        log: where the loop's one-line messages go.

    Returns:
        The run directory.

    Raises:
        ConfigError: if the config is invalid or differs from the one the run
            directory was started with; nothing is written then.
        OutputLockedError: if another process runs the loop in the same directory.
    """
    overrides = dict(overrides or {})
    if rounds is not None:
        overrides["stop.max_rounds"] = rounds
    cfg = load_learn_config(config, overrides)
    stop_at = _parse_until(until)
    run_dir = Path(cfg["run_dir"])
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run_dir '{run_dir}' exists and is not a directory")
    _check_continuation(run_dir, cfg)
    from ..datasets import terminate_as_interrupt
    from ..locking import check_writable, output_lock
    check_writable(run_dir / "config.yaml", "learning run directory")
    if cfg["num_threads"] is not None:
        from ..runtime import set_threads
        set_threads(cfg["num_threads"], "num_threads")
    with terminate_as_interrupt(), output_lock(run_dir / "learn", what="learning run"):
        if not (run_dir / "config.yaml").exists():
            write_text(run_dir / "config.yaml", "# ecnn_pyg learn config (resolved)\n"
                       + yaml.safe_dump(jsonable(cfg), sort_keys=False))
        try:
            _Loop(cfg, run_dir, stop_at, progress, log).run()
        except LearnStopped as stopped:
            log(str(stopped))
    return run_dir


class _Loop:
    """The rounds of one :func:`learn` call (one object, one process)."""

    def __init__(self, cfg, run_dir: Path, stop_at, progress: bool, log):
        self.cfg, self.run_dir, self.stop_at = cfg, run_dir, stop_at
        self.progress, self.log = progress, log

    # ------------------------------------------------------------------ stage machinery
    def stage(self, k: int, name: str, fn: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
        """Run stage ``name`` of round ``k`` unless its record exists; returns the record."""
        rd = round_dir(self.run_dir, k)
        record = rd / f"{name}.json"
        if record.exists():
            if self.stop_at == (k, name):
                raise LearnStopped(f"round {k}: {name} was already done (until); rerun without "
                                   "until to continue")
            return read_json(record)
        rd.mkdir(parents=True, exist_ok=True)
        clock = rd / f".{name}.time"
        spent = float(clock.read_text()) if clock.exists() else 0.0
        self.log(f"round {k}: {name} ...")
        t0 = time.time()
        beat = _Heartbeat(lambda: write_text(clock, repr(spent + time.time() - t0)))
        try:
            out = fn()
        finally:
            beat.stop()
            write_text(clock, repr(spent + time.time() - t0))
        out = {"stage": name, "round": k, "wall_s": round(spent + time.time() - t0, 3), **out}
        write_json(record, out)
        clock.unlink(missing_ok=True)
        self.log(f"round {k}: {name} done in {out['wall_s']:.1f} s")
        if self.stop_at is not None and self.stop_at[1] == name and \
                self.stop_at[0] in (None, k):
            raise LearnStopped(f"stopped after round {k}: {name} (until); rerun to continue")
        return out

    def hamiltonian(self) -> Dict[str, Any]:
        c = self.cfg
        return {"lattice": c["lattice"], "hoppings": dict(c["hoppings"]), "J": c["J"],
                "electrons": c["electrons"], "filling": c["filling"], "mu": c["mu"]}

    def labels_config(self, output: Path, size, twists, splits, **extra) -> Dict[str, Any]:
        """A generate config: the run's Hamiltonian (electronic part only) on ``size``."""
        return {**self.hamiltonian(), "output": str(output), "size": size, "twists": twists,
                "temperature": self.cfg["el_temperature"], "zeeman": 0.0, "seed": self.cfg["seed"],
                "splits": splits, "ignore_memory_check": self.cfg["ignore_memory_check"], **extra}

    def committee_path(self, k: int) -> Path:
        return round_dir(self.run_dir, k) / "committee" / "committee.pt"

    # ------------------------------------------------------------------ the rounds
    def remove_orphans(self) -> None:
        """Delete temporary files that a killed loop left (this process holds the lock)."""
        for folder in [self.run_dir, *self.run_dir.glob("round_*")]:
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)

    def run(self) -> None:
        c = self.cfg
        self.remove_orphans()
        self.stage(0, "seed", self.seed)
        self.stage(0, "train", lambda: self.train(0))
        rep = self.stage(0, "report", lambda: self.report(0))
        self.write_summary()
        stop = rep.get("stop")
        k = 0
        while stop is None:
            k += 1
            if k > c["stop"]["max_rounds"]:
                stop = "max_rounds"
                break
            self.stage(k, "explore", lambda: self.explore(k))
            score = self.stage(k, "score", lambda: self.score(k))
            converged = score["share_accurate"] >= c["stop"]["accurate_share"]
            stop = "converged" if converged else None
            if not converged or c["select"]["audit"]:
                sel = self.stage(k, "select", lambda: self.select(k, converged))
                if stop is None and sel["n_selected"] == 0:
                    stop = "no candidates"
                if sel["n_selected"] or sel["n_audit"]:
                    self.stage(k, "label", lambda: self.label(k))
                if stop is None:
                    self.stage(k, "train", lambda: self.train(k))
            rep = self.stage(k, "report", lambda: self.report(k, stop=stop))
            stop = rep.get("stop")
            self.write_summary()
        if c["final"] is not None:
            last = max(j for j in range(k + 1) if round_dir(self.run_dir, j).exists())
            self.replace_changed_final(last)
            self.stage(last, "final", lambda: self.final(last))
        self.write_summary(final=stop)
        self.log(f"finished: {stop}; summary in {self.run_dir / 'summary.md'}")

    # ------------------------------------------------------------------ round 0
    def seed(self) -> Dict[str, Any]:
        c, rd = self.cfg, round_dir(self.run_dir, 0)
        sd = c["seed_data"]
        files, counts = [], {}
        if sd["random"] is not None:
            r = sd["random"]
            out = rd / "seed_random.h5"
            self.generate(self.labels_config(out, r["size"], r["twists"],
                                             {"train": r["n_train"], "val": r["n_val"]}))
            files.append(str(out))
            counts["random"] = r["n_train"] + r["n_val"]
        if sd["ed_llg"] is not None:
            files.append(str(self.seed_ed_llg(sd["ed_llg"], rd)))
            counts["ed_llg"] = int(np.load(rd / "seed_ed_llg_spins.npy", mmap_mode="r").shape[0])
        files += [str(p) for p in sd["paths"]]
        return {"data": files, "ed_labels": int(sum(counts.values())), "counts": counts}

    def seed_ed_llg(self, e: Mapping, rd: Path) -> Path:
        from ..generate import parse_slice
        from ..simulate import read_runs
        c = self.cfg
        traj = rd / "seed_ed_llg_traj.h5"
        self.ed_llg(e, traj, e["twists"], STARTS[e["initial"]], c["seed"])
        spins_file = rd / "seed_ed_llg_spins.npy"
        if not spins_file.exists():
            sel = parse_slice(e["snapshots"])
            spins = np.concatenate([r["spin"][sel] for r in read_runs(traj)]).astype(np.float64)
            order = np.random.default_rng([c["seed"], 0]).permutation(len(spins))
            save_npy(spins_file, spins[order])        # shuffled: the val split is a sample
        n = int(np.load(spins_file, mmap_mode="r").shape[0])
        out = rd / "seed_ed_llg.h5"
        self.generate(self.labels_config(out, e["size"], e["twists"],
                                         {"train": n - e["n_val"], "val": e["n_val"]},
                                         sampler="file", spins_from=str(spins_file)))
        return out

    def ed_llg(self, sec: Mapping, output: Path, twists, initial: str, seed: int) -> None:
        """The ED-LLG runs of ``sec`` (``seed_data.ed_llg`` or ``exact_dynamics``: size,
        fields, temperature and LLG keys) from ``initial``, written to ``output``."""
        c = self.cfg
        self.simulate({**self.hamiltonian(), "output": str(output), "size": sec["size"],
                       "source": "ed", "el_temperature": c["el_temperature"], "twists": twists,
                       "integrator": sec["integrator"], "dt": sec["dt"], "alpha": sec["alpha"],
                       "temperature": sec["temperature"], "zeeman": sec["zeeman"],
                       "n_steps": sec["n_steps"], "save_every": sec["save_every"],
                       "initial": initial, "seed": seed,
                       "ignore_memory_check": c["ignore_memory_check"]})

    # ------------------------------------------------------------------ exact dynamics
    def class_minima(self, k: int, ed: Mapping, folder: Path) -> Dict[str, Any]:
        """The starts of an ``exact_dynamics`` section ``ed`` with ``initial: minima``: of
        every |n_sk| class, the minimum with the lowest energy per site of the latest
        committee (Zeeman term at the mean of ``ed["zeeman"]``) among the T = 0 minima and
        exact minima of ``ed["size"]`` labelled in rounds 1..k; saved as
        ``folder/start_nsk<class>.npy`` with a record ``starts.json``, so that a rerun starts
        from the same states."""
        from ..graph import lattice_graph
        from ..minimize import model_energy_field
        from ..observables import skyrmion_number
        from ..pretrained import load_model
        from .report import latest_committee
        record = folder / "starts.json"
        if record.exists():
            return read_json(record)
        import torch
        c, size = self.cfg, ed["size"]
        label = size_label(size)
        hz = float(np.mean(ed["zeeman"]))
        graph = lattice_graph(c["lattice"], size, c["hoppings"])
        committee = latest_committee(self.run_dir)
        energy = model_energy_field(load_model(str(committee)), graph)
        best: Dict[int, Tuple[float, np.ndarray, Dict[str, Any]]] = {}
        for j in range(1, k + 1):
            rd = round_dir(self.run_dir, j)
            if not (rd / "select.json").exists() or not (rd / f"selected_{label}.npy").exists():
                continue
            rows = [r for r in read_json(rd / "select.json")["selected"] if r["size"] == label]
            spins = np.load(rd / f"selected_{label}.npy")
            for row, s in zip(rows, spins):
                if not row.get("minimum"):
                    continue
                s = np.asarray(s, dtype=np.float64)
                e = (energy(s)[0] - hz * s[:, 2].sum()) / len(s)
                cls = int(round(abs(float(skyrmion_number(torch.from_numpy(s), graph)))))
                if cls not in best or e < best[cls][0]:
                    best[cls] = (e, s, {"round": j, "sigma_class": row["class"],
                                        "zeeman": row["zeeman"], "energy_per_site": e,
                                        "m_z": float(s[:, 2].mean())})
        if not best:
            raise RuntimeError(f"exact_dynamics: rounds 1..{k} labelled no minimum of size "
                               f"{label} to start from (select.minima and exact_minima give them)")
        starts = {}
        for cls in sorted(best):
            path = folder / f"start_nsk{cls}.npy"
            save_npy(path, best[cls][1])
            starts[str(cls)] = {**best[cls][2], "path": str(path)}
        write_json(record, {"committee": str(committee), "zeeman": hz, "starts": starts})
        return read_json(record)

    def exact_dynamics(self, k: int) -> List[Dict[str, Any]]:
        """``exact_dynamics`` before the final training of round ``k``, section by section:
        ED-LLG from :meth:`class_minima` (one trajectory file per class) or from the named
        start (one file, a run per field) in ``round_k/<name>/``, the snapshots labelled as
        ``round_k/<name>.h5`` with the exploration's twists of the size
        (:func:`exact_dynamics_name`)."""
        return [self.exact_dynamics_section(k, ed) for ed in self.cfg["exact_dynamics"]]

    def exact_dynamics_section(self, k: int, ed: Mapping) -> Dict[str, Any]:
        """One section of :meth:`exact_dynamics`; returns its record (labels file, count,
        starts)."""
        from ..generate import parse_slice
        from ..simulate import read_runs
        c = self.cfg
        rd = round_dir(self.run_dir, k)
        name = exact_dynamics_name(ed)
        folder = rd / name
        folder.mkdir(parents=True, exist_ok=True)
        label_twists = twists_of(c["explore"], ed["size"])
        twists = ed["twists"] if ed["twists"] is not None else label_twists
        if ed["initial"] == "minima":
            starts = self.class_minima(k, ed, folder)
            runs = [(folder / f"nsk{cls}.h5", start["path"], 7919 * (int(cls) + 1))
                    for cls, start in starts["starts"].items()]
        else:
            start = STARTS[ed["initial"]]
            starts = {"starts": {start: {"path": start}}}
            runs = [(folder / f"{start}.h5", start, 7919 * 101)]    # noise of its own
        for traj, initial, offset in runs:
            self.ed_llg(ed, traj, twists, initial, c["seed"] + offset)
        spins_file = folder / "spins.npy"
        if not spins_file.exists():
            sel = parse_slice(ed["snapshots"])
            save_npy(spins_file, np.concatenate([r["spin"][sel] for t, _, _ in runs
                                                 for r in read_runs(t)]).astype(np.float64))
        n = int(np.load(spins_file, mmap_mode="r").shape[0])
        out = rd / f"{name}.h5"
        self.generate(self.labels_config(out, ed["size"], label_twists, {"train": n},
                                         sampler="file", spins_from=str(spins_file)))
        return {"file": str(out), "n_labels": n, "size": size_label(ed["size"]),
                "initial": ed["initial"], **starts}

    def exact_minima_labels(self, k: int) -> Optional[Dict[str, Any]]:
        """The labels of the exact minima of rounds 1..k gathered into one file,
        ``round_k/exact_minima_<size>.h5``, copied from the rounds' ``labels_<size>.h5``
        (where they follow the committee's candidates; no new ED), for
        ``exact_minima.final_weight``. ``None`` if no round labelled any."""
        from ..datasets import H5Writer, read_arrays, read_graph, read_meta
        from ..keys import ENERGY, FIELD, SPIN
        label = size_label(self.cfg["exact_minima"]["size"])
        out = round_dir(self.run_dir, k) / f"exact_minima_{label}.h5"
        sources, taken = [], {SPIN: [], ENERGY: [], FIELD: []}
        for j in range(1, k + 1):
            rd = round_dir(self.run_dir, j)
            if not (rd / "label.json").exists():
                continue
            rows = [r for r in read_json(rd / "select.json")["selected"] if r["size"] == label]
            idx = [i for i, r in enumerate(rows) if r["class"] == "exact minimum"]
            if not idx:
                continue
            path = rd / f"labels_{label}.h5"
            arrays = read_arrays(path, "train")
            if len(arrays[ENERGY]) != len(rows):
                raise RuntimeError(f"'{path}' holds {len(arrays[ENERGY])} labels, but round "
                                   f"{j} selected {len(rows)} states of size {label}")
            for key in taken:
                taken[key].append(arrays[key][idx])
            sources.append(f"{path}[{','.join(map(str, idx))}]")
        if not sources:
            return None
        n = sum(len(e) for e in taken[ENERGY])
        if not (out.exists() and read_meta(out).get("spins_from") == "; ".join(sources)):
            first = round_dir(self.run_dir, 1) / f"labels_{label}.h5"
            meta = {key: v for key, v in read_meta(first).items()
                    if key in ("lattice", "lattice_yaml", "size", "hoppings", "model")}
            meta.update(sampler="copy", spins_from="; ".join(sources), snapshots="",
                        seed=int(self.cfg["seed"]), splits={"train": n})

            def write(tmp: Path) -> None:
                with H5Writer(tmp, read_graph(first), meta) as writer:
                    for s, e, f in zip(*(np.concatenate(taken[key])
                                         for key in (SPIN, ENERGY, FIELD))):
                        writer.append(s, float(e), f)
            replace_into(out, write)
        return {"file": str(out), "n_labels": n, "weight": self.cfg["exact_minima"]["final_weight"]}

    # ------------------------------------------------------------------ training
    def training_data(self, k: int) -> List[str]:
        """The data of round ``k``'s committee: the seed data and the labels of rounds 1..k
        (a round that labelled nothing, having converged or run out of candidates, has none)."""
        files = list(read_json(round_dir(self.run_dir, 0) / "seed.json")["data"])
        for j in range(1, k + 1):
            rec = round_dir(self.run_dir, j) / "label.json"
            if rec.exists():
                files += read_json(rec)["files"]
        return files

    def train_committee(self, train: Dict[str, Any], init: Optional[str]) -> Path:
        """Train (or continue) a committee: in this process, or with its members spread over
        ``processes`` ranks by torchrun (``ecnn-pyg train --committee``); the same weights."""
        from ..committee import train_committee
        train = {**train, "progress": train.get("progress", self.progress)}
        if init is not None:
            train["init_from"] = init             # a committee: member m from member m
        members = self.cfg["committee"]["members"]
        if self.cfg["processes"] == 1:
            return train_committee(train, members=members, resume=True)
        run = Path(train["run_dir"])
        spec = run.with_name(f"{run.name}.train.yaml")
        write_text(spec, yaml.safe_dump(jsonable(train), sort_keys=False))
        self.torchrun(["train", "--config", str(spec), "--committee", str(members)],
                      f"the committee training in '{run}'")
        return run / "committee.pt"

    def train(self, k: int) -> Dict[str, Any]:
        from ..committee import read_committee_info
        c = self.cfg
        train = dict(c["committee"]["train"])
        if k > 0:
            train.update(c["committee"]["retrain"])
        data = self.training_data(k)
        run = round_dir(self.run_dir, k) / "committee"
        init = str(self.committee_path(k - 1)) if k > 0 else None
        path = self.train_committee({**train, "data": data, "run_dir": str(run)}, init)
        info = read_committee_info(path)
        return {"committee": str(path), "init_from": init, "data": data,
                "trust": info.get("trust"), "metrics": info.get("metrics")}

    def final(self, k: int) -> Dict[str, Any]:
        """The last training (config ``final``) after the loop stopped in round ``k``.

        The committee is trained once more on the seed data and every round's labels
        (never the audit's), member m from member m of the latest committee, with
        ``final`` over ``committee.train``; it goes to ``round_k/final/committee.pt``,
        which becomes the run's latest committee, and is scored on the held-out sets and
        for the symmetries (:func:`~ecnn_pyg.learn.report.committee_scores`).
        """
        from ..committee import read_committee_info
        from .report import committee_scores, latest_committee
        c = self.cfg
        data = self.training_data(k)
        dynamics = self.exact_dynamics(k) if c["exact_dynamics"] is not None else None
        data = data + [d["file"] for d in dynamics or ()]
        train = {**c["committee"]["train"], **c["final"]}
        sections = zip(dynamics or (), c["exact_dynamics"] or ())
        weights = {d["file"]: ed["weight"] for d, ed in sections if ed["weight"] != 1.0}
        minima = self.exact_minima_labels(k) if c["exact_minima"]["final_weight"] > 0 else None
        if minima is not None:
            data = data + [minima["file"]]
            weights[minima["file"]] = minima["weight"]
        if weights:
            train["data_weights"] = {**(train.get("data_weights") or {}), **weights}
        init = latest_committee(self.run_dir)
        train.update(data=data, run_dir=str(round_dir(self.run_dir, k) / "final"))
        path = self.train_committee(train, str(init))
        info = read_committee_info(path)
        out = {"committee": str(path), "init_from": str(init), "data": data,
               "settings": self.final_settings(), "exact_dynamics": dynamics,
               "exact_minima": minima,
               "trust": info.get("trust"), "metrics": info.get("metrics")}
        out.update(committee_scores(path, c["validation"], data))
        return out

    def final_settings(self) -> Dict[str, Any]:
        """What a final training depends on beyond the rounds: ``final``, ``exact_dynamics``,
        ``exact_minima.final_weight``."""
        return jsonable({"final": self.cfg["final"],
                         "exact_dynamics": self.cfg["exact_dynamics"],
                         "exact_minima_weight": self.cfg["exact_minima"]["final_weight"]})

    def replace_changed_final(self, k: int) -> None:
        """Set aside round ``k``'s finished final training if ``final`` has changed since.

        ``final`` may change when a run is continued; a final training made with other
        settings is moved, not deleted, to ``round_k/final.replaced_N`` (folder, record and
        spec, N = 1, 2, ...; the ``exact_dynamics`` files too where their settings, not their
        ``weight``, changed)
        so that the stage runs again from round ``k``'s committee. The settings are the
        record's (``settings``); a record without them is compared key by key with the final
        training's member 0 config.
        """
        rd = round_dir(self.run_dir, k)
        record = rd / "final.json"
        if not record.exists():
            return
        now = self.final_settings()
        old = read_json(record).get("settings")
        if old is None:             # a record written before the settings were recorded
            member = rd / "final" / "member_0" / "config.yaml"
            given = yaml.safe_load(member.read_text()) if member.exists() else {}
            old = jsonable({"final": {key: given.get(key) for key in now["final"]},
                            "exact_dynamics": None})
        old = {"exact_minima_weight": 0.0, **old}     # recorded before the weight existed
        if isinstance(old.get("exact_dynamics"), dict):  # one section, before lists and starts
            old["exact_dynamics"] = [{"initial": "minima", **old["exact_dynamics"]}]
        if old.get("exact_dynamics") is not None:      # recorded before sections had weights
            old["exact_dynamics"] = [{"weight": 1.0, **ed} for ed in old["exact_dynamics"]]
        if old == now:
            return
        n = 1
        while (rd / f"final.replaced_{n}.json").exists():
            n += 1
        names = ["final", "final.train.yaml"]

        def data_settings(sections):        # what the labels depend on: not their weight
            return None if sections is None else [{key: v for key, v in ed.items()
                                                   if key != "weight"} for ed in sections]
        if data_settings(old.get("exact_dynamics")) != data_settings(now["exact_dynamics"]):
            names = [p.name for p in sorted(rd.glob("exact_dynamics*"))] + names
        # the record last: a kill in between leaves it, and the rerun moves it to the same N
        for name in names + ["final.json"]:
            target = rd / name.replace("final", f"final.replaced_{n}", 1) \
                if name.startswith("final") else rd / f"final.replaced_{n}.{name}"
            if (rd / name).exists() and not target.exists():
                (rd / name).rename(target)
        changed = ", ".join(f"{part}: {old.get(part)} -> {now[part]}" for part in now
                            if old.get(part) != now[part])
        self.log(f"round {k}: the final training was made with other settings ({changed}); "
                 f"it is kept in '{rd / f'final.replaced_{n}'}' and trained again")

    # ------------------------------------------------------------------ exploration
    def explore_runs(self) -> List[Tuple[List[int], str, str]]:
        """``(size, start, name)`` of every exploration file (a .npy start: its size only)."""
        from ..lattice import load_lattice
        lat = load_lattice(self.cfg["lattice"])
        out = []
        for size in self.cfg["explore"]["sizes"]:
            n = int(np.prod(size if len(size) > 1 else size * lat.dim)) * lat.n_basis
            for start in self.cfg["explore"]["starts"]:
                if start in STARTS:
                    name = start
                else:
                    arr = np.load(start, mmap_mode="r")
                    if int(np.prod(arr.shape[:-1])) != n:
                        continue
                    name = Path(start).stem
                out.append((size, start, name))
        return out

    def generate(self, config: Dict[str, Any]) -> None:
        """One ``generate`` data set of exact labels: in this process, or over ``processes``
        ranks by torchrun (:mod:`ecnn_pyg.distributed.generate`: the ranks label the samples
        round-robin, rank 0 writes), the file the one a single process writes.
        Stopping the loop stops the ranks; the data set continues on a rerun."""
        from ..generate import generate
        if self.cfg["processes"] == 1:
            generate(config, progress=self.progress)
            return
        self.command_on_ranks("generate", config, f"the labels of '{config['output']}'")

    def command_on_ranks(self, command: str, config: Mapping[str, Any], what: str) -> None:
        """``ecnn-pyg COMMAND --config SPEC`` under torchrun, the spec written beside the
        command's output as ``<output stem>.<command>.yaml`` (kept)."""
        out = Path(config["output"])
        spec = out.with_name(f"{out.stem}.{command}.yaml")
        write_text(spec, yaml.safe_dump(jsonable(config), sort_keys=False))
        self.torchrun([command, "--config", str(spec)], what)

    def simulate(self, config: Dict[str, Any]) -> None:
        """One ``simulate`` run file: in this process, or over ``processes`` ranks by torchrun.

        Under torchrun the runs of the file are spread over the ranks (``parallel: runs``),
        each with its own noise generator, so the file is the one a single process writes.
        Stopping the loop (Ctrl-C, SIGTERM) stops the ranks; the file continues on a rerun.
        """
        from ..simulate import simulate
        if self.cfg["processes"] == 1:
            simulate(config, progress=self.progress)
            return
        self.command_on_ranks("simulate", {**config, "parallel": "runs", "num_threads": 1},
                              f"simulate of '{config['output']}'")

    def torchrun(self, command: List[str], what: str, module: str = "ecnn_pyg.cli") -> None:
        """``ecnn-pyg COMMAND`` (or ``python -m module COMMAND``) on ``processes`` local ranks
        under torchrun, one thread each.

        Stopping the loop (Ctrl-C, SIGTERM) stops the ranks (torchrun passes the signal on).

        Raises:
            RuntimeError: if the command fails on any rank, with the end of its errors.
        """
        import os
        import signal
        import subprocess
        import sys
        argv = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={self.cfg['processes']}", "-m", module, *command]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(argv, env=env, stdout=None if self.progress else
                                subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _, err = proc.communicate()
        except BaseException:
            proc.send_signal(signal.SIGTERM)          # torchrun passes it to every rank
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        if proc.returncode != 0:
            lines = [ln for ln in (err or "").splitlines() if ln.strip()]
            raise RuntimeError(f"{what} on {self.cfg['processes']} processes "
                               f"(torchrun) failed with exit code {proc.returncode}: "
                               + " | ".join(lines[-5:]))

    def explore(self, k: int) -> Dict[str, Any]:
        c, ex = self.cfg, self.cfg["explore"]
        folder = round_dir(self.run_dir, k) / "explore"
        from ..committee import read_committee_info
        files = []
        members = read_committee_info(self.committee_path(k - 1))["members"] \
            if ex["drive"] == "member" else None
        for i, (size, start, name) in enumerate(self.explore_runs()):
            out = folder / f"{size_label(size)}_{name}.h5"
            member = _started_member(out) if out.exists() else \
                (None if members is None else i % members)
            drive = {} if member is None else {"committee_member": member}
            self.simulate({**drive,"output": str(out), "lattice": c["lattice"], "size": size,
                           "hoppings": dict(c["hoppings"]), "source": "model",
                           "model": str(self.committee_path(k - 1)),
                           "integrator": ex["integrator"], "dt": ex["dt"], "alpha": ex["alpha"],
                           "temperature": ex["temperatures"], "zeeman": ex["zeeman"],
                           "n_steps": ex["n_steps"], "save_every": ex["save_every"],
                           "initial": STARTS.get(start, start), "seed": c["seed"] + 7919 * k,
                           **({"replicas": ex["replicas"]} if start == "random"
                              and ex["replicas"] > 1 else {})})
            files.append({"path": str(out), "size": size, "start": start, **drive})
        return {"files": files, "committee": str(self.committee_path(k - 1)),
                "drive": ex["drive"]}

    def trust_levels(self, k: int) -> Dict[str, Any]:
        """The trust levels of round ``k``: the config's, else the previous committee's defaults."""
        sel = self.cfg["select"]
        trust = read_json(round_dir(self.run_dir, k - 1) / "train.json").get("trust") or {}
        lower = sel["lower"] if sel["lower"] is not None else trust.get("lower")
        upper = sel["upper"] if sel["upper"] is not None else trust.get("upper")
        if lower is None:
            raise ValueError(f"the committee of round {k - 1} carries no default trust level; "
                             "set select.lower (and select.upper) in the config")
        if upper is None:
            upper = math.inf
        if not upper > lower:
            raise ValueError(f"trust levels out of order in round {k}: lower {lower} (from "
                             f"{'the config' if sel['lower'] is not None else 'the committee'}"
                             f"), upper {upper}; set both in select")
        return {"lower": float(lower), "upper": float(upper),
                "lower_from": "config" if sel["lower"] is not None else "committee",
                "upper_from": "config" if sel["upper"] is not None else
                ("committee" if trust.get("upper") is not None else "none"),
                "statistic": sel["statistic"]}

    def score(self, k: int) -> Dict[str, Any]:
        from ..generate import parse_slice
        from ..simulate import read_runs
        c = self.cfg
        files = read_json(round_dir(self.run_dir, k) / "explore.json")["files"]
        sel = parse_slice(c["explore"]["snapshots"])
        cols: Dict[str, list] = {key: [] for key in ("traj", "run", "snapshot", "zeeman",
                                                     "temperature", "sigma_max", "sigma_rms",
                                                     "sigma_mean")}
        for fi, f in enumerate(files):
            for ri, run in enumerate(read_runs(f["path"])):
                idx = np.arange(len(run["spin"]))[sel]
                # simulate recorded the committee's sigma_B statistics of every snapshot
                for si in idx:
                    st = {key: run[key][si] for key in ("sigma_max", "sigma_rms", "sigma_mean")}
                    for key, v in (("traj", fi), ("run", ri), ("snapshot", si),
                                   ("zeeman", run["zeeman"]), ("temperature", run["temperature"]),
                                   ("sigma_max", st["sigma_max"]), ("sigma_rms", st["sigma_rms"]),
                                   ("sigma_mean", st["sigma_mean"])):
                        cols[key].append(float(v) if key.startswith(("sigma", "zeeman", "temp"))
                                         else int(v))
        arrays = {key: np.asarray(v, dtype=float if key.startswith(("sigma", "zeeman", "temp"))
                                  else int) for key, v in cols.items()}
        trust = self.trust_levels(k)
        stat = arrays["sigma_" + trust["statistic"]]
        cls = classify(stat, trust["lower"], trust["upper"])
        arrays["class"] = cls
        save_npz(round_dir(self.run_dir, k) / "scores.npz", **arrays)
        counts = {name: int((cls == code).sum()) for code, name in CLASSES.items()}
        n = len(cls)
        return {"n_scored": n, **{f"n_{name}": v for name, v in counts.items()},
                "share_accurate": counts["accurate"] / n if n else 0.0, "trust": trust,
                "by_group": self.group_counts(files, arrays, cls)}

    @staticmethod
    def group_of(files, arrays, i) -> Tuple:
        f = files[int(arrays["traj"][i])]
        return (size_label(f["size"]), f["start"], float(arrays["zeeman"][i]),
                float(arrays["temperature"][i]))

    def group_counts(self, files, arrays, cls) -> List[Dict[str, Any]]:
        rows: Dict[Tuple, Dict[str, Any]] = {}
        for i in range(len(cls)):
            g = self.group_of(files, arrays, i)
            row = rows.setdefault(g, {"size": g[0], "start": g[1], "zeeman": g[2],
                                      "temperature": g[3], "accurate": 0, "candidate": 0,
                                      "failed": 0})
            row[CLASSES[int(cls[i])]] += 1
        return list(rows.values())

    # ------------------------------------------------------------------ selection, labels
    def relaxations(self, k: int) -> List[Tuple[Path, Callable[[], Any]]]:
        """Round ``k``'s relaxations as ``(record, work)``: the committee's minima
        (``select.relax_minima``) and the exact minima (``exact_minima``); ``work()`` relaxes
        one and writes ``record`` (and its ``.npy``) last."""
        c, rd = self.cfg, round_dir(self.run_dir, k)
        jobs: List[Tuple[Path, Callable[[], Any]]] = []
        if c["select"]["minima"] and c["select"]["relax_minima"]:
            files = read_json(rd / "explore.json")["files"]
            arrays = dict(np.load(rd / "scores.npz"))
            relaxer = _MinimaRelaxer(self.committee_path(k - 1), rd / "relaxed")
            cache: Dict[int, list] = {}
            for i in final_t0_snapshots(arrays):
                def work(i=int(i)):
                    spin = _snapshot(files, arrays, i, cache)
                    return relaxer(i, files[int(arrays["traj"][i])]["path"], spin,
                                   float(arrays["zeeman"][i]))
                jobs.append((relaxer.folder / f"{int(i)}.json", work))
        if c["exact_minima"]["starts"]:
            exact = _ExactMinima(self, k, rd / "exact_minima")
            jobs += [(exact.done(hz, j), lambda hz=hz, j=j: exact.one(hz, j))
                     for hz, j in exact.starts()]
        return jobs

    def relax_on_ranks(self, k: int) -> None:
        """With ``processes`` > 1: round ``k``'s missing relaxations spread over that many
        torchrun ranks (:func:`relax_on_this_rank`) before the selection collects them;
        stale claims of a stopped attempt are cleared first."""
        rd = round_dir(self.run_dir, k)
        missing = [done for done, _ in self.relaxations(k) if not done.exists()]
        if self.cfg["processes"] < 2 or len(missing) < 2:
            return
        for folder in {done.parent for done in missing}:
            folder.mkdir(parents=True, exist_ok=True)
            for claim in folder.glob("*.claim"):
                claim.unlink()
        spec = rd / "relax.json"
        write_json(spec, {"cfg": jsonable(self.cfg), "run_dir": str(self.run_dir), "round": k})
        self.log(f"round {k}: {len(missing)} relaxations on {self.cfg['processes']} processes")
        self.torchrun([str(spec)], f"the relaxations of round {k}",
                      module="ecnn_pyg.learn.relax_worker")

    def select(self, k: int, converged: bool = False) -> Dict[str, Any]:
        c, rd = self.cfg, round_dir(self.run_dir, k)
        files = read_json(rd / "explore.json")["files"]
        score = read_json(rd / "score.json")
        trust = score["trust"]
        arrays = dict(np.load(rd / "scores.npz"))
        groups = [self.group_of(files, arrays, i) for i in range(len(arrays["traj"]))]
        stat = arrays["sigma_" + trust["statistic"]]
        upper = trust["upper"] if trust["upper"] is not None else math.inf
        chosen = [] if converged else select_candidates(
            stat, groups, trust["lower"], upper, c["select"]["max_per_round"],
            seed=c["seed"] + 104729 * k)
        # select.minima: the states the T = 0 runs relaxed to, whatever sigma_B says of them
        # (it measures the members' spread of fields; the energy differences between minima
        # that decide a phase diagram can be wrong where the fields agree)
        minima = final_t0_snapshots(arrays) if c["select"]["minima"] and not converged \
            else np.zeros(0, dtype=int)
        chosen = np.union1d(np.asarray(chosen, dtype=int), minima).astype(int)
        # the audit: snapshots outside the candidates, labelled to check sigma_B there
        outside = np.setdiff1d(np.flatnonzero(arrays["class"] != CANDIDATE), minima)
        audit = spread_sample(outside, groups, c["select"]["audit"], seed=c["seed"] + 15485863 * k)
        runs_cache: Dict[int, list] = {}
        relaxer = _MinimaRelaxer(self.committee_path(k - 1), rd / "relaxed") \
            if c["select"]["relax_minima"] and len(minima) else None
        if not converged:
            self.relax_on_ranks(k)              # with processes > 1; each result in a file

        def take(indices, prefix, extra=()):
            by_size: Dict[str, list] = {}
            rows = []
            for i in indices:
                fi, ri, si = (int(arrays[key][i]) for key in ("traj", "run", "snapshot"))
                label = size_label(files[fi]["size"])
                spin = _snapshot(files, arrays, int(i), runs_cache)
                row = {"index": int(i), "size": label, "file": fi, "run": ri,
                       "snapshot": si, "start": files[fi]["start"],
                       "zeeman": float(arrays["zeeman"][i]),
                       "temperature": float(arrays["temperature"][i]),
                       "class": CLASSES[int(arrays["class"][i])],
                       "sigma_max": float(arrays["sigma_max"][i]),
                       "sigma_rms": float(arrays["sigma_rms"][i]),
                       "minimum": bool(np.isin(i, minima))}
                if relaxer is not None and row["minimum"]:
                    spin, row["relaxed"] = relaxer(int(i), files[fi]["path"], spin,
                                                   row["zeeman"])
                by_size.setdefault(label, []).append(spin)
                rows.append(row)
            for row, spin in extra:               # the exact minima, after the snapshots
                by_size.setdefault(row["size"], []).append(spin)
                rows.append(row)
            spins_files = {}
            for label, spins in by_size.items():
                p = rd / f"{prefix}_{label}.npy"
                save_npy(p, np.stack(spins))
                spins_files[label] = str(p)
            return rows, spins_files
        # exact_minima: random starts relaxed with ED, labelled whatever the committee says
        exact = [] if converged or not c["exact_minima"]["starts"] else [
            ({"index": -1, "size": row["size"], "start": "random", "zeeman": row["zeeman"],
              "temperature": 0.0, "class": "exact minimum", "minimum": True, "exact": row},
             spin) for row, spin in _ExactMinima(self, k, rd / "exact_minima")()]
        rows, spins = take(chosen, "selected", exact)
        audit_rows, audit_spins = take(audit, "audit")
        return {"n_candidates": int(score["n_candidate"]), "n_selected": len(rows),
                "n_minima": int(len(minima)), "n_exact_minima": len(exact),
                "max_per_round": c["select"]["max_per_round"], "selected": rows,
                "spins": spins, "n_audit": len(audit_rows), "audit": audit_rows,
                "audit_spins": audit_spins}

    def label(self, k: int) -> Dict[str, Any]:
        rd = round_dir(self.run_dir, k)
        sel = read_json(rd / "select.json")
        sizes = {size_label(s): s for s in self.cfg["explore"]["sizes"]}
        out = {"files": [], "audit_files": [], "by_size": {}}
        for kind, prefix, split, key in (("spins", "labels", "train", "files"),
                                         ("audit_spins", "audit", "audit", "audit_files")):
            for label, spins_file in sel[kind].items():
                n = int(np.load(spins_file, mmap_mode="r").shape[0])
                path = rd / f"{prefix}_{label}.h5"
                twists = twists_of(self.cfg["explore"], sizes[label])
                t0 = time.time()
                self.generate(self.labels_config(path, sizes[label], twists, {split: n},
                                                 sampler="file", spins_from=spins_file))
                out[key].append(str(path))
                row = out["by_size"].setdefault(label, {"n": 0, "n_audit": 0, "wall_s": 0.0,
                                                        "twists": twists})
                row["n" if split == "train" else "n_audit"] += n
                row["wall_s"] = round(row["wall_s"] + time.time() - t0, 3)
        # the files in "files" are trained on; the audit files never are
        out["ed_labels"] = int(sum(r["n"] + r["n_audit"] for r in out["by_size"].values()))
        return out

    # ------------------------------------------------------------------ reports
    def report(self, k: int, stop: Optional[str] = None) -> Dict[str, Any]:
        from .report import round_report, write_round_markdown
        rep = round_report(self, k, stop)          # its record, report.json, is the report
        write_round_markdown(round_dir(self.run_dir, k) / "report.md", rep)
        return rep

    def write_summary(self, final: Optional[str] = None) -> None:
        from .report import write_summary
        write_summary(self.run_dir, final)


def status(config: Union[str, Path, Mapping], overrides: Optional[Mapping] = None) -> str:
    """A table of the stages of a run directory: which are done, with their wall time.

    Args:
        config: the learn config (its ``run_dir`` is read; nothing is written).
        overrides: as for :func:`learn`.

    Returns:
        Text, one line per round.
    """
    cfg = load_learn_config(config, overrides)
    run_dir = Path(cfg["run_dir"])
    lines = [f"learning run {run_dir}" + ("" if run_dir.exists() else " (not started)")]
    k = 0
    while round_dir(run_dir, k).exists():
        names = ROUND0_STAGES if k == 0 else STAGES
        cells = []
        if (round_dir(run_dir, k) / "final.json").exists():
            names = (*names, "final")
        for name in names:
            rec = round_dir(run_dir, k) / f"{name}.json"
            cells.append(f"{name} {read_json(rec)['wall_s']:.0f}s" if rec.exists()
                         else f"{name} -")
        lines.append(f"  round {k:3d}: " + "  ".join(cells))
        k += 1
    summary = run_dir / "summary.md"
    if summary.exists():
        lines += ["", summary.read_text().rstrip()]
    return "\n".join(lines)
