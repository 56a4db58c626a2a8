"""The 96 x 96 sweep starts of the from-scratch committee: its own minima, found by its exploration.

51_learn_from_scratch.yaml explores with ML-LLG from random, triple-Q and ferromagnetic
starts at H_z = 0.002, 0.005 and 0.008. This script reads the last explored round of that
run, takes the final state of every T = 0 trajectory on the 12 x 12 cell, and prints them
with their skyrmion number n_sk (per 12 x 12 cell) and their energy per site as the
exploring committee gave it (electronic + Zeeman), so that one sees which states the
committee found without being told: the table answers whether n_sk = 0 states came out of
random starts. For every explored field the state of lowest energy is the committee's own
minimum there; it is tiled 8 x 8 times to 96 x 96 and written as an (N, 3) .npy, the start
of one sweep (52_sweep_96_scratch.yaml), e.g. data/triangular_96_scratch_start_h0.002.npy.
Nothing of the hand-driven stages (crystals, known minima) enters.

    python experiments/triangular_fig4/scratch_starts.py --learn runs/triangular_learn_scratch
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def last_explored_round(run_dir: Path) -> Path:
    """The round folder of the highest round whose exploration finished."""
    rounds = sorted(p for p in run_dir.glob("round_*") if (p / "explore.json").is_file())
    if not rounds:
        raise SystemExit(f"{run_dir} has no finished exploration (round_NNN/explore.json); "
                         "run ecnn-pyg learn first")
    return rounds[-1]


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
            rows.append({"start": start, "run": r["name"], "zeeman": round(float(r["zeeman"]), 6),
                         "e": float(r["energy"][-1]) / len(s),
                         "n_sk": float(skyrmion_number(torch.from_numpy(s), graph)),
                         "m_z": float(s[:, 2].mean()),
                         "sigma_max": float(r["sigma_max"][-1]) if "sigma_max" in r
                         else float("nan"),
                         "spin": s})
    if not rows:
        raise SystemExit(f"no T = 0 trajectory on {size} in {round_dir / 'explore'}")
    return rows


def tile(s: np.ndarray, n: int, L: int) -> np.ndarray:
    """(n * n, 3) spins of an n x n cell -> (L * L, 3) spins of the tiled L x L lattice."""
    i = np.arange(L) % n
    return s.reshape(n, n, 3)[i[:, None], i[None, :]].reshape(-1, 3)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--learn", default="runs/triangular_learn_scratch", help="learn run directory")
    p.add_argument("--cell", type=int, default=12, help="the explored n x n cell to read")
    p.add_argument("--size", type=int, default=96, help="the sweeps' L x L lattice")
    p.add_argument("--out", default="data/triangular_96_scratch_start_h{}.npy")
    a = p.parse_args(argv)
    if a.size % a.cell:
        raise SystemExit(f"--size {a.size} is not a multiple of --cell {a.cell}")
    rd = last_explored_round(Path(a.learn))
    rows = final_states(rd, f"{a.cell}x{a.cell}")
    print(f"{rd}: final states of the T = 0 explorations on {a.cell} x {a.cell} "
          f"(energies of the exploring committee)")
    print(f"{'start':>12} {'run':>8} {'H_z':>7} {'n_sk':>6} {'M_z':>7} {'E/N':>12} "
          f"{'sigma_max':>9}")
    for r in sorted(rows, key=lambda r: (r["zeeman"], r["e"])):
        print(f"{r['start']:>12} {r['run']:>8} {r['zeeman']:7.4f} {r['n_sk']:+6.2f} "
              f"{r['m_z']:7.4f} {r['e']:12.7f} {r['sigma_max']:9.5f}")
    found = sorted({abs(round(r["n_sk"])) for r in rows})
    random0 = [r for r in rows if r["start"] == "random" and abs(round(r["n_sk"])) == 0]
    print(f"|n_sk| classes found: {found}; n_sk = 0 states from random starts: {len(random0)}")
    starts = {}
    for h in sorted({r["zeeman"] for r in rows}):
        best = min((r for r in rows if r["zeeman"] == h), key=lambda r: r["e"])
        out = Path(a.out.format(f"{h:g}"))
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, tile(best["spin"], a.cell, a.size))
        starts[f"{h:g}"] = {"file": str(out), "start": best["start"], "run": best["run"],
                            "n_sk": round(best["n_sk"], 3), "e": best["e"]}
        print(f"start H_z = {h:g}: {best['start']} {best['run']}, "
              f"n_sk = {best['n_sk']:+.2f} -> {out}")
    print(json.dumps(starts))


if __name__ == "__main__":
    main()
