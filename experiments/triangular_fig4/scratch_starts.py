"""The 96 x 96 sweep starts of the from-scratch committee: its own minima, found by its exploration.

51_learn_from_scratch.yaml explores with ML-LLG from random, triple-Q and ferromagnetic
starts at H_z = 0.002, 0.005 and 0.008. This script reads every explored round of that run
(or the last, --rounds last) and takes the final state of every T = 0 trajectory on the
12 x 12 cell: the states the exploration found, whichever committee drove it, and the exact
minima of random starts that the rounds labelled (the config's exact_minima), at the same
fields. A few hundred
LLG steps need not reach a minimum (a triple-Q state can still be on its way to the
n_sk = 2 crystal), so each is relaxed to the committee's nearest energy minimum (L-BFGS on
the unit spins, the committee's mean energy and field in float64, the Zeeman term
included). The table gives, per state, n_sk (per 12 x 12 cell) at the end of the LLG run
and after relaxing, M_z, the committee's energy per site (electronic + Zeeman) and, with
--exact-twists, the exact one (ED of the cell with twisted boundaries, the run's
Hamiltonian): whether the committee orders the minima as ED does. It answers whether
n_sk = 0 states came out of random starts. For every explored field the relaxed state of
lowest committee energy is the committee's own minimum there; it is tiled to 96 x 96 and
written as an (N, 3) .npy, the start of one sweep (52_sweep_96_scratch.yaml), e.g.
data/triangular_96_scratch_start_h0.002.npy. T = 0 dynamics stays near the minimum it starts
from, so a class of states that is lowest at no explored field would never enter the sweeps;
as 49-50 add n_sk = 0 branches to the crystals' sweeps, every |n_sk| class found also gets a
start (--out-class, e.g. data/triangular_96_scratch_start_nsk0.npy): its state that comes
closest to, or lies furthest below, the lowest state of the other classes at its field.
--random K adds K random spin configurations per explored field, relaxed the same way: a
search of the committee's own energy landscape beyond what the LLG explorations reached;
--tilt z shifts each random spin by z along the field first, starts nearer the high-field
states.
Nothing of the hand-driven stages (crystals, known minima) enters.

    python experiments/triangular_fig4/scratch_starts.py --learn runs/triangular_learn_scratch_symmetric \
        --exact-twists 8
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def explored_rounds(run_dir: Path) -> list:
    """The round folders whose exploration finished, in order."""
    rounds = sorted(p for p in run_dir.glob("round_*") if (p / "explore.json").is_file())
    if not rounds:
        raise SystemExit(f"{run_dir} has no finished exploration (round_NNN/explore.json); "
                         "run ecnn-pyg learn first")
    return rounds


def final_states(round_dir: Path, size: str):
    """One row per T = 0 trajectory of the round's ``explore/<size>_<start>.h5`` files."""
    import h5py
    import torch
    from ecnn_pyg.datasets import read_graph
    from ecnn_pyg.observables import skyrmion_number
    from ecnn_pyg.simulate import read_runs
    rows, graph = [], None
    for path in sorted((round_dir / "explore").glob(f"{size}_*.h5")):
        start = path.stem[len(size) + 1:]
        if graph is None:
            with h5py.File(path, "r", locking=False) as f:
                graph = read_graph(f)
        for r in read_runs(path):
            if float(r["temperature"]) != 0.0:
                continue
            s = np.asarray(r["spin"][-1], np.float64)
            rows.append({"round": round_dir.name, "start": start, "run": r["name"],
                         "zeeman": round(float(r["zeeman"]), 6),
                         "e": float(r["energy"][-1]) / len(s),
                         "n_sk": float(skyrmion_number(torch.from_numpy(s), graph)),
                         "m_z": float(s[:, 2].mean()),
                         "sigma_max": float(r["sigma_max"][-1]) if "sigma_max" in r
                         else float("nan"),
                         "spin": s})
    if not rows:
        raise SystemExit(f"no T = 0 trajectory on {size} in {round_dir / 'explore'}")
    return rows


def exact_minima_states(round_dir: Path, size: str) -> list:
    """One row per exact minimum of a random start that the round labelled (the learn
    config's ``exact_minima``, kept in ``round_k/exact_minima/``) on the ``size`` cell."""
    rows = []
    nan = float("nan")
    for info_file in sorted((round_dir / "exact_minima").glob("*.json")):
        info = json.loads(info_file.read_text())
        if info["size"] != size:
            continue
        rows.append({"round": round_dir.name, "start": "exact", "run": f"x{info_file.stem}",
                     "zeeman": round(float(info["zeeman"]), 6), "e": nan, "n_sk": nan,
                     "m_z": float(info["m_z"]), "sigma_max": nan,
                     "spin": np.load(info_file.with_suffix(".npy"))})
    return rows


def random_rows(fields, n_sites: int, k: int, seed: int, tilt: float = 0.0) -> list:
    """``k`` random unit-spin configurations per field, as rows to relax: uniform on the
    sphere, or with ``tilt`` > 0 each spin shifted by ``tilt`` along +z (the field) and
    renormalised, so that the starts carry a net magnetisation as high-field states do."""
    from ecnn_pyg.spins import random_spins
    rng = np.random.default_rng(seed)
    nan = float("nan")
    rows = []
    for h in fields:
        for i in range(k):
            s = random_spins(n_sites, generator=rng)
            if tilt:
                s[:, 2] += tilt
                s /= np.linalg.norm(s, axis=1, keepdims=True)
            rows.append({"round": "random", "start": "tilted" if tilt else "random",
                         "run": f"r{i:03d}", "zeeman": h, "e": nan, "n_sk": nan, "m_z": nan,
                         "sigma_max": nan, "spin": s})
    return rows


def class_starts(rows) -> dict:
    """|n_sk| class -> the relaxed row of that class whose committee energy lies lowest
    relative to the lowest state of the other classes at the same field (``margin``, per site;
    < 0: the class is the lowest there). Each class found gets one, so that a sweep can follow
    a state that is lowest at none of the explored fields."""
    out = {}
    for r in rows:
        c = abs(round(r["n_sk_min"]))
        others = [q["e_min"] for q in rows
                  if q["zeeman"] == r["zeeman"] and abs(round(q["n_sk_min"])) != c]
        margin = r["e_min"] - min(others) if others else float("-inf")
        if c not in out or margin < out[c][1]:
            out[c] = (r, margin)
    return {c: {**r, "margin": m} for c, (r, m) in sorted(out.items())}


def write_start(path: str, r: dict, cell: int, size: int) -> dict:
    """Tiles the relaxed state of row ``r`` to ``size`` x ``size``, saves it as ``path`` (.npy)
    and returns what the table's JSON line records of it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, tile(r["spin_min"], cell, size))
    return {"file": str(out), "round": r["round"], "start": r["start"], "run": r["run"],
            "n_sk": round(r["n_sk_min"], 3), "e": r["e_min"]}


def tile(s: np.ndarray, n: int, L: int) -> np.ndarray:
    """(n * n, 3) spins of an n x n cell -> (L * L, 3) spins of the tiled L x L lattice."""
    i = np.arange(L) % n
    return s.reshape(n, n, 3)[i[:, None], i[None, :]].reshape(-1, 3)


def relaxed(model, graph, rows, relax_first: bool = True) -> None:
    """Adds to every row the committee's nearest minimum: ``spin_min``, ``e_min`` (per site,
    Zeeman included), ``n_sk_min``, ``m_z_min`` and ``torque`` (largest |S x B_total|).
    With ``relax_first=False`` the state itself is priced (``spin_min`` is ``spin``)."""
    import torch
    from ecnn_pyg.minimize import model_energy_field, relax
    from ecnn_pyg.observables import skyrmion_number
    energy_field = model_energy_field(model, graph)
    for r in rows:
        s = relax(energy_field, r["spin"], r["zeeman"])[0] if relax_first else r["spin"]
        e, b = energy_field(s)
        b[:, 2] += r["zeeman"]
        r.update({"spin_min": s, "e_min": (e - r["zeeman"] * s[:, 2].sum()) / len(s),
                  "n_sk_min": float(skyrmion_number(torch.from_numpy(s), graph)),
                  "m_z_min": float(s[:, 2].mean()),
                  "torque": float(np.linalg.norm(np.cross(s, b), axis=1).max())})


def exact_energies(run_dir: Path, graph, rows, twists: int) -> None:
    """Adds ``e_exact`` (per site, Zeeman included) of every relaxed state: ED of the cell
    with ``twists`` x ``twists`` twisted boundaries and the learn run's Hamiltonian."""
    import yaml
    from ecnn_pyg.ed import KondoED
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    ed = KondoED(graph, J=cfg["J"], electrons=cfg.get("electrons"), filling=cfg.get("filling"),
                 mu=cfg.get("mu"), temperature=cfg.get("el_temperature") or 0.0,
                 twists=twists)
    for r in rows:
        s = r["spin_min"]
        r["e_exact"] = (float(ed.energy(s)) - r["zeeman"] * s[:, 2].sum()) / len(s)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--learn", default="runs/triangular_learn_scratch_symmetric", help="learn run directory")
    p.add_argument("--model", default=None,
                   help="relax with this committee or model instead of the learn run's latest "
                        "(e.g. a round's committee before the final training)")
    p.add_argument("--cell", type=int, default=12, help="the explored n x n cell to read")
    p.add_argument("--size", type=int, default=96, help="the sweeps' L x L lattice")
    p.add_argument("--exact-twists", type=int, default=0, metavar="M",
                   help="also give the exact energy of every relaxed state: ED of the cell "
                        "with M x M twisted boundaries (8: the 96 x 96 lattice); 0: none")
    p.add_argument("--rounds", choices=("all", "last"), default="all",
                   help="read the T = 0 final states of every explored round or of the last")
    p.add_argument("--random", type=int, default=0, metavar="K",
                   help="also relax K random configurations per explored field")
    p.add_argument("--seed", type=int, default=0, help="seed of the --random configurations")
    p.add_argument("--tilt", type=float, default=0.0,
                   help="shift each --random spin by this along +z before normalising "
                        "(0: uniform on the sphere)")
    p.add_argument("--fields", type=float, nargs="+", metavar="H",
                   help="only these explored fields (default: all)")
    p.add_argument("--out", default="data/triangular_96_scratch_start_h{}.npy",
                   help="per explored field, its lowest state ({} = the field)")
    p.add_argument("--out-class", default="data/triangular_96_scratch_start_nsk{}.npy",
                   help="per |n_sk| class found, its start ({} = |n_sk|)")
    a = p.parse_args(argv)
    if a.size % a.cell:
        raise SystemExit(f"--size {a.size} is not a multiple of --cell {a.cell}")
    if a.exact_twists < 0:
        raise SystemExit(f"--exact-twists must be >= 0, got {a.exact_twists}")
    if a.random < 0:
        raise SystemExit(f"--random must be >= 0, got {a.random}")
    if a.tilt < 0:
        raise SystemExit(f"--tilt must be >= 0, got {a.tilt}")
    import h5py
    import torch
    from ecnn_pyg.datasets import read_graph
    from ecnn_pyg.pretrained import load_model
    rounds = explored_rounds(Path(a.learn))
    if a.rounds == "last":
        rounds = rounds[-1:]
    rows = [r for rd in rounds for r in final_states(rd, f"{a.cell}x{a.cell}")]
    if a.fields:
        explored = sorted({r["zeeman"] for r in rows})
        unknown = [h for h in a.fields if round(h, 6) not in explored]
        if unknown:
            raise SystemExit(f"--fields {unknown}: not explored (explored: {explored})")
        rows = [r for r in rows if r["zeeman"] in {round(h, 6) for h in a.fields}]
    # the exact minima of random starts the rounds labelled (exact_minima), at those fields
    rows += [r for rd in rounds for r in exact_minima_states(rd, f"{a.cell}x{a.cell}")
             if r["zeeman"] in {q["zeeman"] for q in rows}]
    rows += random_rows(sorted({r["zeeman"] for r in rows}), len(rows[0]["spin"]), a.random,
                        a.seed, a.tilt)
    torch.set_num_threads(1)
    model_name = a.model or a.learn                      # default: the run's latest committee
    model = load_model(model_name).double().eval()
    first = sorted((rounds[-1] / "explore").glob(f"{a.cell}x{a.cell}_*.h5"))[0]
    with h5py.File(first, "r", locking=False) as f:
        graph = read_graph(f)
    relaxed(model, graph, rows)
    if a.exact_twists:
        exact_energies(Path(a.learn), graph, rows, a.exact_twists)
    print(f"{', '.join(rd.name for rd in rounds)} of {a.learn}: final states of the T = 0 "
          f"explorations on {a.cell} x {a.cell}"
          + (f" and {a.random} random configurations per field (seed {a.seed}"
             + (f", tilted by {a.tilt:g} along +z" if a.tilt else "") + ")" if a.random else "")
          + f", relaxed to the minima of the committee {model_name} (E/N: electronic + Zeeman)")
    print(f"{'round':>9} {'start':>12} {'run':>8} {'H_z':>7} {'n_sk LLG':>8} {'n_sk':>6} {'M_z':>7} "
          f"{'E/N':>12} {'E_ED/N':>12} {'NN-ED':>9} {'sigma_max':>9}")
    for r in sorted(rows, key=lambda r: (r["zeeman"], r["e_min"])):
        ex = (f"{r['e_exact']:12.7f} {r['e_min'] - r['e_exact']:+9.1e}" if "e_exact" in r
              else f"{'-':>12} {'-':>9}")
        print(f"{r['round']:>9} {r['start']:>12} {r['run']:>8} {r['zeeman']:7.4f} {r['n_sk']:+8.2f} "
              f"{r['n_sk_min']:+6.2f} {r['m_z_min']:7.4f} {r['e_min']:12.7f} {ex} "
              f"{r['sigma_max']:9.5f}")
    found = sorted({abs(round(r["n_sk_min"])) for r in rows})
    random0 = [r for r in rows if r["start"] in ("random", "tilted") and abs(round(r["n_sk_min"])) == 0]
    explored0 = sum(r["round"] != "random" for r in random0)
    print(f"|n_sk| classes found: {found}; n_sk = 0 states from random starts: {explored0} "
          f"of the explorations" + (f", {len(random0) - explored0} of --random" if a.random
                                    else ""))
    starts = {}
    for h in sorted({r["zeeman"] for r in rows}):
        here = [r for r in rows if r["zeeman"] == h]
        best = min(here, key=lambda r: r["e_min"])
        starts[f"{h:g}"] = write_start(a.out.format(f"{h:g}"), best, a.cell, a.size)
        line = (f"start H_z = {h:g}: {best['round']} {best['start']} {best['run']}, n_sk = "
                f"{best['n_sk_min']:+.2f} -> {starts[f'{h:g}']['file']}")
        if a.exact_twists:
            ed_best = min(here, key=lambda r: r["e_exact"])
            starts[f"{h:g}"]["exact_lowest"] = {"start": ed_best["start"],
                                                "n_sk": round(ed_best["n_sk_min"], 3)}
            line += (f"; lowest by ED: {ed_best['start']} (n_sk = {ed_best['n_sk_min']:+.2f})"
                     + (" (the same)" if ed_best is best else ""))
        print(line)
    for c, r in class_starts(rows).items():
        starts[f"nsk{c}"] = {**write_start(a.out_class.format(c), r, a.cell, a.size),
                             "zeeman": r["zeeman"], "margin": r["margin"]}
        print(f"start |n_sk| = {c}: {r['round']} {r['start']} {r['run']} at H_z = "
              f"{r['zeeman']:g}, {r['margin']:+.1e} per site (committee) from the lowest other "
              f"class -> {starts[f'nsk{c}']['file']}")
    print(json.dumps(starts))


if __name__ == "__main__":
    main()
