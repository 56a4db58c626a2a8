"""The active-learning config: one YAML file, its defaults and every check made before any work.

A learn config has top-level keys (:data:`LEARN_SCHEMA`) and sections, each a mapping with a
schema of its own (:data:`SECTIONS`); every key is commented in ``configs/triangular_learn.yaml``.
:func:`load_learn_config` reads the file (``extends:`` resolved), applies overrides (dotted
keys reach into the sections: ``select.lower=0.01``) and checks everything that can be checked
without computing: the Hamiltonian, the committee's training settings (against the training
schema), the seed data, the exploration starts and sizes, the trust levels, the stop rule and
the held-out files. A bad config fails here, before the run directory is touched.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np

from ..config import REQUIRED, ConfigError, _merge, load_config, read_config_file

__all__ = ["LEARN_SCHEMA", "SECTIONS", "STARTS", "STATISTICS", "RESUME_MUTABLE",
           "load_learn_config", "identity_of", "snapshots_per_run", "size_label", "twists_of",
           "floats"]

_NONE = type(None)

#: top-level keys: key -> (type(s), default)
LEARN_SCHEMA = {
    "run_dir": (str, REQUIRED),
    "seed": (int, 0),
    "num_threads": ((int, _NONE), None),
    # ranks (torchrun) of the ML-LLG explorations and ED-LLG seed runs (runs spread over
    # them) and of the committee trainings (members spread over them): the same results as
    # one process; 1: everything in this process
    "processes": (int, 1),
    # the Hamiltonian (that of the labels: the electronic part, no Zeeman term)
    "lattice": (str, REQUIRED),
    "hoppings": (dict, {}),
    "J": (float, REQUIRED),
    "electrons": ((int, _NONE), None),
    "filling": ((float, _NONE), None),
    "mu": ((float, _NONE), None),
    "el_temperature": (float, 0.0),
    "ignore_memory_check": (bool, False),
    # the sections (SECTIONS)
    "committee": (dict, REQUIRED),
    "seed_data": (dict, REQUIRED),
    "explore": (dict, REQUIRED),
    "select": (dict, {}),
    "stop": (dict, {}),
    "validation": (list, []),
    # exact minima searched beside the exploration (SECTIONS["exact_minima"])
    "exact_minima": (dict, {}),
    # a last, longer training of the committee on all data once the loop has stopped:
    # training keys over committee.train (e.g. max_epochs, lr); null: none
    "final": ((dict, _NONE), None),
    # exact (ED) LLG from the committee's lowest minimum of every |n_sk| class (or from a
    # named start), labelled for the final training (SECTIONS["exact_dynamics"]); a list of
    # such sections runs each (e.g. one per cell size); null: none
    "exact_dynamics": ((dict, list, _NONE), None),
}

_SIZE = (int, list)
_TWISTS = (int, list, _NONE)
#: the LLG keys of the ED-LLG seed runs and of the exploration
_LLG = {
    "integrator": (str, "sib"),
    "dt": (float, REQUIRED),
    "alpha": (float, 1.0),
    "n_steps": (int, REQUIRED),
    "save_every": (int, REQUIRED),
    "snapshots": (str, "1:"),
}

#: section -> its schema
SECTIONS = {
    "committee": {
        "members": (int, 4),
        "train": (dict, {}),         # training keys (TRAIN_SCHEMA) of round 0; may 'extends'
        "retrain": (dict, {}),       # keys that differ from rounds 1 on (e.g. max_epochs, lr)
    },
    "seed_data": {
        "random": ((dict, _NONE), None),
        "ed_llg": ((dict, _NONE), None),
        "paths": (list, []),
    },
    "seed_data.random": {
        "size": (_SIZE, REQUIRED),
        "twists": (_TWISTS, None),
        "n_train": (int, REQUIRED),
        "n_val": (int, 0),
    },
    "seed_data.ed_llg": {
        "size": (_SIZE, REQUIRED),
        "twists": (_TWISTS, None),
        "zeeman": ((float, list), 0.0),
        "temperature": ((float, list), REQUIRED),
        "initial": (str, "random"),
        **_LLG,
        "n_val": (int, 0),
    },
    "explore": {
        "sizes": (list, REQUIRED),
        "twists": ((int, list, dict, _NONE), None),
        "starts": (list, ["random"]),
        "zeeman": ((float, list), 0.0),
        "temperatures": ((float, list), 0.0),
        # the field that drives the trajectories: "mean" (the committee's mean) or "member"
        # (one member per trajectory file, in turn; the committee scores the saved snapshots)
        "drive": (str, "mean"),
        # random starts per size, field and temperature (each its own spins and noise); the
        # deterministic starts (triple-q, ferromagnet, a file) run once
        "replicas": (int, 1),
        **_LLG,
    },
    "select": {
        "lower": ((float, _NONE), None),
        "upper": ((float, _NONE), None),
        "statistic": (str, "rms"),
        "max_per_round": (int, 20),
        "audit": (int, 0),           # accurate / failed snapshots labelled for the report only
        "minima": (bool, False),     # also label the final state of every T = 0 trajectory
        "relax_minima": (bool, False),   # ... relaxed first to the committee's nearest minimum
    },
    # Random starts relaxed to the nearest minimum of the exact (ED) energy, Zeeman term
    # included, and labelled in every round beside the committee's candidates: a search of
    # the exact landscape where the committee's may hold no basin (states it never saw)
    "exact_minima": {
        "starts": (int, 0),            # per field and round; 0: none
        "size": ((list, int, _NONE), None),     # one of explore.sizes; null: the first
        "zeeman": ((float, list, _NONE), None),  # null: explore.zeeman
        "tilt": (float, 0.0),          # added to S_z of the Gaussian random spins before norming
        # the lattice of the relaxation (twists of the cell): cheaper than the labels' (the
        # minimum is then labelled with explore.twists); null: the labels' own
        "relax_twists": (_TWISTS, None),
        "maxiter": (int, 3000),        # L-BFGS iterations per start at most
        # in the final training the exact minima of every round are added once more, as
        # round_k/exact_minima_<size>.h5 (copied from the labels, no new ED) with this
        # data weight: they count 1 + final_weight times. 0: only as the labels they are
        "final_weight": (float, 0.0),
    },
    # The explorations sample the committee's own dynamics, which visits most the states it
    # prices too low: its thermal energies come out biased. Before the final training, ED-LLG
    # from the committee's lowest minimum of every |n_sk| class (over the rounds' T = 0
    # minima and exact minima of this size) at these fields and temperature, labelled
    "exact_dynamics": {
        "size": ((list, int, _NONE), None),     # one of explore.sizes; null: the first
        # where the dynamics start: "minima" (the committee's lowest labelled minimum of every
        # |n_sk| class, one trajectory file per class) or a named start (random, triple-q,
        # ferromagnet: one file, a run per field)
        "initial": (str, "minima"),
        # the lattice of the dynamics (twists of the cell); the snapshots are labelled with
        # explore.twists of the size. null: the labels' own
        "twists": (_TWISTS, None),
        "zeeman": ((float, list, _NONE), None),  # null: explore.zeeman
        "temperature": (float, REQUIRED),
        # the data weight of its labels in the final training: 1 counts them as any label;
        # > 1 leans the committee towards the states of the exact dynamics (the held-out
        # equilibrium states are such snapshots)
        "weight": (float, 1.0),
        **_LLG,
    },
    "stop": {
        "accurate_share": (float, 0.95),
        "max_rounds": (int, 5),
    },
}

#: exploration starts by name (anything else must be a .npy file of spins)
STARTS = {"random": "random", "triple-q": "triple-q", "ferromagnet": "ferro", "ferro": "ferro"}
#: the disagreement statistics a selection may use: the max or the RMS over sites of sigma_B
STATISTICS = ("max", "rms")
#: keys that may change when a run is continued (everything else is the run's identity)
RESUME_MUTABLE = ("num_threads", "processes", "stop", "validation", "final", "exact_minima",
                  "exact_dynamics")
#: keys of sections that may change too: how many rounds, and how the next rounds explore
#: (a finished round keeps its record; a round whose exploration is under way refuses a
#: change of its fields, temperatures or replicas through the trajectory file's settings)
RESUME_MUTABLE_KEYS = (("stop", "max_rounds"), ("explore", "drive"), ("explore", "zeeman"),
                       ("explore", "temperatures"), ("explore", "replicas"),
                       ("select", "minima"), ("select", "relax_minima"))
#: what drives the exploration trajectories (explore.drive)
DRIVES = ("mean", "member")
#: training keys the loop sets itself
_LOOP_TRAIN_KEYS = ("data", "run_dir", "init_from")
_INTEGRATORS = ("sib", "heun", "depondt")


def _section(raw: Mapping, name: str, where: str) -> Dict[str, Any]:
    try:
        return load_config(dict(raw), SECTIONS[name])
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _apply_overrides(raw: Dict[str, Any], overrides: Optional[Mapping]) -> Dict[str, Any]:
    """``raw`` with ``{key: value}`` applied; ``a.b`` sets key ``b`` of section ``a``."""
    raw = dict(raw)
    for key, value in (overrides or {}).items():
        parts = str(key).split(".")
        node = raw
        for p in parts[:-1]:
            child = node.get(p)
            child = dict(child) if isinstance(child, Mapping) else {}
            node[p] = child
            node = child
        node[parts[-1]] = value
    return raw


def size_label(size) -> str:
    """``[12, 12]`` -> ``"12x12"`` (file names and report rows)."""
    return "x".join(str(int(x)) for x in (size if isinstance(size, (list, tuple)) else [size]))


def _check_size(size, where: str) -> List[int]:
    sizes = size if isinstance(size, list) else [size]
    if not sizes or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1
                            for x in sizes):
        raise ConfigError(f"{where} must be a positive integer or a list of them "
                          f"([L1, L2]), got {size!r}")
    return [int(x) for x in sizes]


def _check_twists(value, where: str):
    if value is None:
        return None
    vals = value if isinstance(value, list) else [value]
    if not vals or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in vals):
        raise ConfigError(f"{where} must be null, a positive integer or a list of them "
                          f"([m1, m2]), got {value!r}")
    return value


def twists_of(explore: Mapping, size) -> Any:
    """The twists of one exploration size (``explore.twists``: one value, or per ``"L1xL2"``)."""
    tw = explore["twists"]
    if isinstance(tw, dict):
        return tw.get(size_label(size))
    return tw


def _positive(value, key: str, where: str, allow_zero: bool = False):
    ok = value >= 0 if allow_zero else value >= 1
    if isinstance(value, bool) or not ok:
        raise ConfigError(f"{where}.{key} must be {'>= 0' if allow_zero else '>= 1'}, "
                          f"got {value!r}")


def _floats(value) -> List[float]:
    return [float(v) for v in (value if isinstance(value, list) else [value])]


def _train_settings(raw: Mapping, base_dir: Path, where: str) -> Dict[str, Any]:
    """A ``committee.train`` mapping with its ``extends`` (relative to the config file) resolved."""
    raw = dict(raw)
    given = [k for k in _LOOP_TRAIN_KEYS if k in raw]
    if given:
        raise ConfigError(f"{where}: {', '.join(given)} are set by the learning loop (the data "
                          "of every round, its run directory, the previous committee); remove "
                          "them")
    if "extends" not in raw:
        return raw
    ext = raw.pop("extends")
    ext = [ext] if isinstance(ext, str) else ext
    if not isinstance(ext, list) or not ext or not all(isinstance(e, str) for e in ext):
        raise ConfigError(f"{where}: 'extends' must be a training config path or a list of "
                          f"them, got {ext!r}")
    merged: Dict[str, Any] = {}
    for e in ext:
        merged = _merge(merged, read_config_file(base_dir / e))
    for k in _LOOP_TRAIN_KEYS:              # the extended config's own data and run are not used
        merged.pop(k, None)
    return _merge(merged, raw)


def _check_trainings(cfg: Mapping) -> None:
    """``committee.train``, ``committee.retrain`` (over it) and ``final`` (over it) as
    training configs of the files the run trains on: its seed files (``seed_random.h5``,
    ``seed_ed_llg.h5``, ``seed_data.paths``) and every round's ``labels_<size>.h5``, which
    ``data_weights`` may name."""
    from ..training.schema import load_train_config
    seed, com = cfg["seed_data"], cfg["committee"]
    data = [name for name, section in (("seed_random.h5", seed["random"]),
                                       ("seed_ed_llg.h5", seed["ed_llg"])) if section is not None]
    data += list(seed["paths"]) + [f"labels_{size_label(s)}.h5" for s in cfg["explore"]["sizes"]]
    checks = [("committee.train", com["train"]),
              ("committee.retrain", {**com["train"], **com["retrain"]})]
    if cfg["final"] is not None:
        checks.append(("final", {**com["train"], **cfg["final"]}))
    for where, train in checks:
        try:
            load_train_config({**train, "data": data, "run_dir": "<learn run>"})
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None


def _check_start(start, sizes: List[List[int]], n_sites_of) -> None:
    if not isinstance(start, str) or not start:
        raise ConfigError(f"explore.starts: each start must be a string, got {start!r}")
    if start in STARTS:
        return
    if not start.endswith(".npy"):
        raise ConfigError(f"explore.starts: unknown start {start!r}; expected one of "
                          f"{', '.join(STARTS)} or a .npy file of spins")
    path = Path(start)
    if not path.is_file():
        raise ConfigError(f"explore.starts: the spins file '{start}' does not exist")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ConfigError(f"explore.starts: cannot read '{start}' as a .npy array: {err}") \
            from None
    n = int(np.prod(arr.shape[:-1])) if arr.ndim >= 2 and arr.shape[-1] == 3 else -1
    fits = [size_label(s) for s in sizes if n_sites_of(s) == n]
    if not fits:
        raise ConfigError(f"explore.starts: '{start}' holds spins of shape {arr.shape}, which "
                          "fit none of the exploration sizes "
                          f"{', '.join(size_label(s) for s in sizes)} (one configuration "
                          "of N sites: (N, 3) or (L1, L2, 3))")


def _size_and_fields(sec: Dict[str, Any], where: str, explore: Mapping, why: str) -> None:
    """``sec["size"]`` resolved (null: the first exploration size) and checked to be one of
    explore.sizes; ``sec["zeeman"]`` a list of floats (null: explore.zeeman)."""
    if sec["size"] is None:
        sec["size"] = explore["sizes"][0]
    sec["size"] = _check_size(sec["size"], f"{where}.size")
    if size_label(sec["size"]) not in {size_label(s) for s in explore["sizes"]}:
        raise ConfigError(f"{where}.size {size_label(sec['size'])} is not one of explore.sizes "
                          f"({', '.join(size_label(s) for s in explore['sizes'])}): {why}")
    sec["zeeman"] = _floats(explore["zeeman"] if sec["zeeman"] is None else sec["zeeman"])


def _exact_minima_section(raw: Mapping, explore: Mapping) -> Dict[str, Any]:
    """The ``exact_minima`` section complete: its size one of the exploration's, its fields
    explore.zeeman unless given."""
    em = _section(raw, "exact_minima", "exact_minima")
    _positive(em["starts"], "starts", "exact_minima", allow_zero=True)
    _positive(em["maxiter"], "maxiter", "exact_minima")
    _size_and_fields(em, "exact_minima", explore, "its minima are labelled as that size's")
    _check_twists(em["relax_twists"], "exact_minima.relax_twists")
    if not all(math.isfinite(h) for h in em["zeeman"]):
        raise ConfigError(f"exact_minima.zeeman must be finite numbers, got {em['zeeman']}")
    if not math.isfinite(em["tilt"]):
        raise ConfigError(f"exact_minima.tilt must be a finite number, got {em['tilt']}")
    if not (math.isfinite(em["final_weight"]) and em["final_weight"] >= 0):
        raise ConfigError("exact_minima.final_weight must be a finite number >= 0 (the data "
                          f"weight of the exact minima in the final training), got "
                          f"{em['final_weight']}")
    return em


def exact_dynamics_name(sec: Mapping) -> str:
    """The name of an ``exact_dynamics`` section's files in ``round_k/``:
    ``exact_dynamics_<size>`` (its folder, and ``.h5`` its labels), with ``_<start>`` for a
    named start."""
    name = f"exact_dynamics_{size_label(sec['size'])}"
    return name if sec["initial"] == "minima" else f"{name}_{STARTS[sec['initial']]}"


def _exact_dynamics_section(raw, explore: Mapping,
                            final: Optional[Mapping]) -> Optional[List[Dict[str, Any]]]:
    """The ``exact_dynamics`` sections complete, as a list (or ``None``): a mapping is one
    section; each one's size one of the exploration's, its fields explore.zeeman unless
    given, its files' names distinct; they need ``final``."""
    if raw is None:
        return None
    if final is None:
        raise ConfigError("exact_dynamics labels data for the final training: set final "
                          "(e.g. final: {max_epochs: 100}) or remove exact_dynamics")
    single = isinstance(raw, Mapping)
    items = [raw] if single else list(raw)
    if not items or not all(isinstance(x, Mapping) for x in items):
        raise ConfigError("exact_dynamics must be a section (size, zeeman, temperature, LLG "
                          "keys) or a non-empty list of sections, got " + repr(raw))
    out, names = [], {}
    for i, item in enumerate(items):
        where = "exact_dynamics" if single else f"exact_dynamics[{i}]"
        ed = _section(item, "exact_dynamics", where)
        if ed["initial"] != "minima" and ed["initial"] not in STARTS:
            raise ConfigError(f"{where}.initial must be 'minima' (the committee's lowest "
                              f"labelled minimum of every |n_sk| class) or one of "
                              f"{', '.join(STARTS)}, got {ed['initial']!r}")
        _size_and_fields(ed, where, explore, "its snapshots are labelled as that size's")
        _check_twists(ed["twists"], f"{where}.twists")
        _check_dynamics(ed, where, ed["temperature"])
        if not (math.isfinite(ed["weight"]) and ed["weight"] > 0):
            raise ConfigError(f"{where}.weight must be a finite number > 0 (the data weight "
                              f"of its labels in the final training), got {ed['weight']}")
        if snapshots_per_run(ed) < 1:
            raise ConfigError(f"{where}.snapshots ({ed['snapshots']!r}) selects none of the "
                              f"{1 + -(-ed['n_steps'] // ed['save_every'])} snapshots of a run")
        name = exact_dynamics_name(ed)
        if name in names:
            raise ConfigError(f"exact_dynamics[{names[name]}] and exact_dynamics[{i}] have the "
                              f"same size and start ({name}): give each section its own")
        names[name] = i
        out.append(ed)
    return out


def load_learn_config(source: Union[str, Path, Mapping],
                      overrides: Optional[Mapping] = None) -> Dict[str, Any]:
    """Read and check an active-learning config; fill in every default.

    Args:
        source: a YAML file (``extends:`` resolved) or a mapping.
        overrides: ``{key: value}``; a dotted key (``select.lower``) sets a key of a section.

    Returns:
        The config with every section complete: ``committee`` (with ``train`` and
        ``retrain`` resolved), ``seed_data`` (``random`` / ``ed_llg`` complete or
        ``None``), ``explore``, ``select``, ``stop``, ``validation``.

    Raises:
        ConfigError: for anything the config gets wrong, with a message naming
            the key: unknown or ill-typed keys, a missing Hamiltonian (``J`` and
            exactly one of ``electrons``, ``filling``, ``mu``), fewer than two
            committee members, invalid training settings, no seed data, an
            unknown start or a ``.npy`` start that fits no exploration size,
            ``max_per_round < 1``, trust levels out of order, a stop rule out
            of range, or held-out files that are missing or also seed data.
    """
    base_dir = Path(source).parent if isinstance(source, (str, Path)) else Path(".")
    raw = read_config_file(source) if isinstance(source, (str, Path)) else dict(source)
    raw = _apply_overrides(raw, overrides)
    cfg = load_config(raw, LEARN_SCHEMA)
    # --- Hamiltonian
    given = [k for k in ("electrons", "filling", "mu") if cfg[k] is not None]
    if len(given) != 1:
        raise ConfigError("the Hamiltonian needs exactly one of electrons, filling (canonical) "
                          f"or mu (grand canonical), got {given or 'none'}")
    if not str(cfg["run_dir"]).strip():
        raise ConfigError("run_dir must not be empty")
    if cfg["seed"] < 0:
        raise ConfigError(f"seed must be >= 0, got {cfg['seed']}")
    if isinstance(cfg["processes"], bool) or cfg["processes"] < 1:
        raise ConfigError(f"processes must be >= 1 (ranks of the LLG runs and trainings), got "
                          f"{cfg['processes']!r}")
    from ..lattice import LatticeError, load_lattice
    try:
        lat = load_lattice(cfg["lattice"])
        lat.hopping_values(cfg["hoppings"])
    except (LatticeError, ValueError, TypeError) as err:
        raise ConfigError(f"lattice / hoppings: {err}") from None

    def n_sites_of(size):
        s = size if isinstance(size, list) else [size] * lat.dim
        return int(np.prod(s)) * lat.n_basis
    # --- committee
    com = _section(cfg["committee"], "committee", "committee")
    if isinstance(com["members"], bool) or com["members"] < 2:
        raise ConfigError(f"committee.members must be >= 2 (the disagreement of a committee "
                          f"needs two members at least), got {com['members']!r}")
    com["train"] = _train_settings(com["train"], base_dir, "committee.train")
    if any(k in com["retrain"] for k in _LOOP_TRAIN_KEYS + ("extends",)):
        raise ConfigError("committee.retrain: give training keys that change from round 1 on "
                          "(max_epochs, lr, ...); data, run_dir, init_from and extends are not "
                          "allowed there")
    cfg["committee"] = com
    if cfg["final"] is not None:
        if any(k in cfg["final"] for k in _LOOP_TRAIN_KEYS + ("extends",)):
            raise ConfigError("final: give training keys over committee.train (max_epochs, lr, "
                              "...); data, run_dir, init_from and extends are not allowed there")
    # --- seed data
    seed = _section(cfg["seed_data"], "seed_data", "seed_data")
    sizes_used = []
    if seed["random"] is not None:
        r = _section(seed["random"], "seed_data.random", "seed_data.random")
        r["size"] = _check_size(r["size"], "seed_data.random.size")
        _check_twists(r["twists"], "seed_data.random.twists")
        _positive(r["n_train"], "n_train", "seed_data.random")
        _positive(r["n_val"], "n_val", "seed_data.random", allow_zero=True)
        seed["random"] = r
        sizes_used.append(r["size"])
    if seed["ed_llg"] is not None:
        e = _section(seed["ed_llg"], "seed_data.ed_llg", "seed_data.ed_llg")
        e["size"] = _check_size(e["size"], "seed_data.ed_llg.size")
        _check_twists(e["twists"], "seed_data.ed_llg.twists")
        _check_dynamics(e, "seed_data.ed_llg", e["temperature"])
        _positive(e["n_val"], "n_val", "seed_data.ed_llg", allow_zero=True)
        n_runs = len(_floats(e["zeeman"])) * len(_floats(e["temperature"]))
        n_snap = n_runs * snapshots_per_run(e)
        if e["n_val"] >= n_snap:
            raise ConfigError(f"seed_data.ed_llg.n_val ({e['n_val']}) must be below the number "
                              f"of snapshots it labels ({n_snap}: {n_runs} runs x "
                              f"{snapshots_per_run(e)} snapshots each)")
        if e["initial"] not in STARTS:
            raise ConfigError(f"seed_data.ed_llg.initial: unknown start {e['initial']!r}; "
                              f"expected one of {', '.join(STARTS)}")
        seed["ed_llg"] = e
        sizes_used.append(e["size"])
    for p in seed["paths"]:
        if not isinstance(p, str) or not Path(p).is_file():
            raise ConfigError(f"seed_data.paths: '{p}' is not an existing data file")
        _check_data_file(p, "seed_data.paths", cfg, lat)
    if seed["random"] is None and seed["ed_llg"] is None and not seed["paths"]:
        raise ConfigError("seed_data needs random, ed_llg or paths: the first committee is "
                          "trained on them")
    n_val = sum(s["n_val"] for s in (seed["random"], seed["ed_llg"]) if s is not None)
    if n_val == 0 and not seed["paths"]:
        raise ConfigError("seed_data: the committee needs validation samples (its trust levels "
                          "come from its validation error): set n_val > 0 in random or ed_llg, "
                          "or give paths with a 'val' split")
    cfg["seed_data"] = seed
    # --- exploration
    ex = _section(cfg["explore"], "explore", "explore")
    if not ex["sizes"]:
        raise ConfigError("explore.sizes must list at least one supercell, e.g. [[12, 12]]")
    ex["sizes"] = [_check_size(s, "explore.sizes") for s in ex["sizes"]]
    if len({size_label(s) for s in ex["sizes"]}) != len(ex["sizes"]):
        raise ConfigError(f"explore.sizes lists a size twice: {ex['sizes']}")
    if isinstance(ex["twists"], dict):
        known = {size_label(s) for s in ex["sizes"]}
        for k, v in ex["twists"].items():
            if str(k) not in known:
                raise ConfigError(f"explore.twists: '{k}' is not one of the exploration sizes "
                                  f"{sorted(known)} (keys look like '12x12')")
            _check_twists(v, f"explore.twists.{k}")
    else:
        _check_twists(ex["twists"], "explore.twists")
    if not ex["starts"]:
        raise ConfigError("explore.starts must list at least one start")
    for s in ex["starts"]:
        _check_start(s, ex["sizes"], n_sites_of)
    if len(set(ex["starts"])) != len(ex["starts"]):
        raise ConfigError(f"explore.starts lists a start twice: {ex['starts']}")
    _check_dynamics(ex, "explore", ex["temperatures"])
    if ex["drive"] not in DRIVES:
        raise ConfigError(f"explore.drive must be 'mean' (the committee's mean field drives the "
                          f"trajectories) or 'member' (one member per trajectory file, in turn), "
                          f"got {ex['drive']!r}")
    if ex["replicas"] < 1:
        raise ConfigError(f"explore.replicas (random starts per size, field and temperature) "
                          f"must be >= 1, got {ex['replicas']}")
    if snapshots_per_run(ex) < 1:
        raise ConfigError(f"explore.snapshots ({ex['snapshots']!r}) selects none of the "
                          f"{1 + -(-ex['n_steps'] // ex['save_every'])} snapshots of a run")
    sizes_used += ex["sizes"]
    cfg["explore"] = ex
    if cfg["electrons"] is not None and len({n_sites_of(s) for s in sizes_used}) > 1:
        raise ConfigError("electrons counts the electrons of one supercell, but the seed data "
                          "and exploration use several sizes; give filling (electrons per "
                          "spin-orbital) or mu instead")
    cfg["exact_minima"] = _exact_minima_section(cfg["exact_minima"], ex)
    cfg["exact_dynamics"] = _exact_dynamics_section(cfg["exact_dynamics"], ex, cfg["final"])
    # --- selection and stop
    sel = _section(cfg["select"], "select", "select")
    if sel["statistic"] not in STATISTICS:
        raise ConfigError(f"select.statistic must be one of {STATISTICS} (the max or the RMS "
                          f"over sites of sigma_B), got {sel['statistic']!r}")
    if isinstance(sel["max_per_round"], bool) or sel["max_per_round"] < 1:
        raise ConfigError(f"select.max_per_round must be >= 1, got {sel['max_per_round']!r}")
    if isinstance(sel["audit"], bool) or sel["audit"] < 0:
        raise ConfigError(f"select.audit must be >= 0 (snapshots outside the candidates "
                          f"labelled to check sigma_B), got {sel['audit']!r}")
    if not isinstance(sel["minima"], bool):
        raise ConfigError(f"select.minima must be true or false (label the final state of "
                          f"every T = 0 exploration run), got {sel['minima']!r}")
    if not isinstance(sel["relax_minima"], bool):
        raise ConfigError(f"select.relax_minima must be true or false (relax the minima to the "
                          f"committee's nearest energy minimum before labelling them), got "
                          f"{sel['relax_minima']!r}")
    if sel["relax_minima"] and not sel["minima"]:
        raise ConfigError("select.relax_minima: true needs select.minima: true (it relaxes the "
                          "minima that select.minima labels)")
    for k in ("lower", "upper"):
        v = sel[k]
        if v is not None and (not math.isfinite(v) or v < 0):
            raise ConfigError(f"select.{k} must be a finite number >= 0 or null (the "
                              f"committee's default), got {v!r}")
    if sel["lower"] is not None and sel["upper"] is not None and sel["upper"] <= sel["lower"]:
        raise ConfigError(f"select.upper ({sel['upper']}) must be above select.lower "
                          f"({sel['lower']}): candidates lie between the two trust levels")
    cfg["select"] = sel
    if (any(ed["initial"] == "minima" for ed in cfg["exact_dynamics"] or ())
            and not (sel["minima"] or cfg["exact_minima"]["starts"])):
        raise ConfigError("exact_dynamics starts from the minima the rounds labelled: set "
                          "select.minima: true or exact_minima.starts > 0, or give it a "
                          "named start (initial: triple-q, ...)")
    em = cfg["exact_minima"]
    if em["final_weight"] > 0 and (cfg["final"] is None or not em["starts"]):
        raise ConfigError("exact_minima.final_weight weights the exact minima in the final "
                          "training: it needs final (e.g. final: {max_epochs: 100}) and "
                          "exact_minima.starts > 0")
    stop = _section(cfg["stop"], "stop", "stop")
    if not 0 < stop["accurate_share"] <= 1:
        raise ConfigError(f"stop.accurate_share must lie in (0, 1], got {stop['accurate_share']}")
    if isinstance(stop["max_rounds"], bool) or stop["max_rounds"] < 1:
        raise ConfigError(f"stop.max_rounds must be >= 1, got {stop['max_rounds']!r}")
    cfg["stop"] = stop
    # --- held-out validation
    seed_paths = {Path(p).resolve() for p in seed["paths"]}
    for p in cfg["validation"]:
        if not isinstance(p, str) or not Path(p).is_file():
            raise ConfigError(f"validation: '{p}' is not an existing data file")
        _check_data_file(p, "validation", cfg, lat)
        if Path(p).resolve() in seed_paths:
            raise ConfigError(f"validation: '{p}' is also seed data; a held-out set is never "
                              "trained on")
    if cfg["num_threads"] is not None and cfg["num_threads"] < 1:
        raise ConfigError(f"num_threads must be >= 1 or null, got {cfg['num_threads']}")
    _check_trainings(cfg)
    return cfg


def _check_data_file(path: str, where: str, cfg: Mapping, lat) -> None:
    """Refuse a data file of another lattice, hoppings or coupling than the config's."""
    from ..datasets import DataFileError, read_meta
    try:
        meta = read_meta(path)
    except DataFileError as err:
        raise ConfigError(f"{where}: {err}") from None
    model = meta.get("model") or {}
    diffs = []
    if meta.get("lattice") != lat.name:
        diffs.append(f"lattice {meta.get('lattice')!r}")
    hop = lat.hopping_values(cfg["hoppings"])
    if any(abs(float(v or 0.0) - hop.get(k, 0.0)) > 1e-9 for k, v in
           (meta.get("hoppings") or {}).items()):
        diffs.append(f"hoppings {meta.get('hoppings')}")
    for key in ("J", "mu"):
        if cfg[key] is not None and model.get(key) is not None and \
                abs(float(model[key]) - float(cfg[key])) > 1e-9:
            diffs.append(f"{key} = {model[key]}")
    if diffs:
        raise ConfigError(f"{where}: '{path}' was labelled with another Hamiltonian than the "
                          f"config's ({', '.join(diffs)})")


def _check_dynamics(sec: Mapping, where: str, temperatures) -> None:
    if sec["integrator"] not in _INTEGRATORS:
        raise ConfigError(f"{where}.integrator must be one of {_INTEGRATORS}, "
                          f"got {sec['integrator']!r}")
    if not sec["dt"] > 0 or not math.isfinite(sec["dt"]):
        raise ConfigError(f"{where}.dt must be > 0, got {sec['dt']}")
    if sec["alpha"] < 0:
        raise ConfigError(f"{where}.alpha must be >= 0, got {sec['alpha']}")
    _positive(sec["n_steps"], "n_steps", where)
    _positive(sec["save_every"], "save_every", where)
    for key in ("zeeman", "temperature" if "temperature" in sec else "temperatures"):
        vals = sec[key] if isinstance(sec[key], list) else [sec[key]]
        if not vals or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                               and math.isfinite(v) for v in vals):
            raise ConfigError(f"{where}.{key} must be a number or a non-empty list of numbers, "
                              f"got {sec[key]!r}")
    if any(t < 0 for t in _floats(temperatures)):
        raise ConfigError(f"{where}: temperatures must be >= 0, got {temperatures!r}")
    from ..generate import parse_slice
    try:
        parse_slice(sec["snapshots"])
    except ValueError as err:
        raise ConfigError(f"{where}.snapshots: {err}") from None


def snapshots_per_run(sec: Mapping) -> int:
    """Snapshots of one run that ``sec["snapshots"]`` selects (simulate saves the start, every
    ``save_every`` steps and the end)."""
    from ..generate import parse_slice
    m = 1 + sec["n_steps"] // sec["save_every"] + (1 if sec["n_steps"] % sec["save_every"] else 0)
    return len(range(m)[parse_slice(sec["snapshots"])])


def identity_of(cfg: Mapping) -> Dict[str, Any]:
    """The keys of a resolved config a continued run must keep (all but :data:`RESUME_MUTABLE`)."""
    out = {k: v for k, v in cfg.items() if k not in RESUME_MUTABLE}
    for section, key in RESUME_MUTABLE_KEYS:
        if isinstance(out.get(section), Mapping):
            out[section] = {k: v for k, v in out[section].items() if k != key}
    return out


def floats(value) -> List[float]:
    """A number or a list of numbers as a list of floats."""
    return _floats(value)
