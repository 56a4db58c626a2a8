"""The from-scratch committee's crystals across the field: relaxed minima, learned and exact crossings.

scratch_starts.py writes one start per |n_sk| class the committee found
(data/triangular_96_scratch_start_nsk{0,1,2}.npy, 12-periodic states tiled to 96 x 96). This
script takes the 12 x 12 cell of each and, at every field, relaxes it afresh to the
committee's nearest energy minimum (L-BFGS on the unit spins, the committee's mean energy in
float64, the Zeeman term included; on the 12 x 12 cell, which is the same as on any lattice it
tiles) and prices the minimum exactly (ED of the cell with twisted boundaries, the learn run's
Hamiltonian; twists 8: the 96 x 96 lattice). Per field and |n_sk| the lowest state counts;
where the lowest states of two classes cross, by the committee's energies and by the exact
energies of the same states, is the transition (linear interpolation between fields).

It measures, in minutes, what the 96 x 96 sweeps measure in hours for 12-periodic crystals,
with one difference: the sweeps' 300 LLG steps need not reach the minimum. It also shows
how much of a transition's error is the committee's energy (learned against exact crossing
of the same states) and how much the states it found (exact crossing against the best
states known).

    python experiments/triangular_fig4/scratch_crystals.py --learn runs/triangular_learn_scratch_symmetric
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

DEFAULT_FIELDS = [round(0.0005 * i, 4) for i in range(21)]      # 0 to 0.01


def cell_of(spins: np.ndarray, cell: int) -> np.ndarray:
    """The ``cell`` x ``cell`` corner of an L x L state (L a multiple of ``cell``; the site
    order of the triangular supercell, row-major in the two lattice directions)."""
    n = len(spins)
    size = int(round(np.sqrt(n)))
    if size * size != n or size % cell:
        raise SystemExit(f"a start of {n} sites is not an L x L state with L a multiple of "
                         f"{cell}")
    return np.ascontiguousarray(spins.reshape(size, size, 3)[:cell, :cell].reshape(-1, 3))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--learn", default="runs/triangular_learn_scratch_symmetric",
                   help="learn run directory (its Hamiltonian)")
    p.add_argument("--model", default=None,
                   help="the committee (default: the run's latest, i.e. --learn)")
    p.add_argument("--starts", nargs="+",
                   default=[f"data/triangular_96_scratch_start_nsk{c}.npy" for c in (2, 1, 0)],
                   help="(N, 3) .npy states, 12-periodic (scratch_starts.py --out-class)")
    p.add_argument("--cell", type=int, default=12)
    p.add_argument("--fields", type=float, nargs="+", default=DEFAULT_FIELDS)
    p.add_argument("--exact-twists", type=int, default=8, metavar="M",
                   help="ED of the cell with M x M twisted boundaries (8: the 96 x 96 lattice)")
    p.add_argument("--no-relax", action="store_true",
                   help="price the starts as they are (e.g. exact minima: how far the committee "
                        "prices a state ED puts lowest from its exact energy), no relaxation")
    a = p.parse_args(argv)
    if a.exact_twists < 1:
        raise SystemExit(f"--exact-twists must be >= 1, got {a.exact_twists}")
    missing = [s for s in a.starts if not Path(s).is_file()]
    if missing:
        raise SystemExit(f"start files not found: {missing} (scratch_starts.py writes them)")
    import torch
    import yaml
    import ecnn_pyg as ep
    from ecnn_pyg.pretrained import load_model
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from exact_transitions import crossings
    from scratch_starts import exact_energies, relaxed

    cfg = yaml.safe_load((Path(a.learn) / "config.yaml").read_text())
    torch.set_num_threads(1)
    graph = ep.lattice_graph(cfg["lattice"], a.cell, cfg["hoppings"])
    model = load_model(a.model or a.learn)
    starts = [(Path(s).stem, cell_of(np.load(s).astype(np.float64), a.cell)) for s in a.starts]
    what = "states as given" if a.no_relax else "minima"
    print(f"committee {a.model or a.learn}; {a.cell} x {a.cell} {what} priced with twists "
          f"{a.exact_twists} (E/N: electronic + Zeeman)")
    print(f"{'H_z':>7} {'start':>36} {'n_sk':>5} {'M_z':>6} {'E_NN/N':>11} {'E_ED/N':>11} "
          f"{'NN-ED':>9}", flush=True)
    best = {"committee": collections.defaultdict(dict), "exact": collections.defaultdict(dict)}
    for h in a.fields:
        rows = [{"start": name, "zeeman": h, "spin": s0} for name, s0 in starts]
        relaxed(model, graph, rows, not a.no_relax)  # afresh from each start, every field
        exact_energies(Path(a.learn), graph, rows, a.exact_twists)
        for r in rows:
            c = round(abs(r["n_sk_min"]))
            for key, e in (("committee", r["e_min"]), ("exact", r["e_exact"])):
                if e < best[key][h].get(c, np.inf):
                    best[key][h][c] = e
            print(f"{h:7.4f} {r['start']:>36} {r['n_sk_min']:+5.1f} {r['m_z_min']:6.3f} "
                  f"{r['e_min']:11.7f} {r['e_exact']:11.7f} {r['e_min'] - r['e_exact']:+9.1e}",
                  flush=True)
    if a.no_relax:          # states that are no minima at most fields: no transition to read
        return
    for key in ("committee", "exact"):
        found = crossings(best[key])
        for lo, hi, h in found:
            print(f"|n_sk| {lo} -> {hi}: {key} energies of these states cross at H_z = {h:.5f}")
        if not found:
            print(f"no crossing of the {key} energies of these states")


if __name__ == "__main__":
    main()
