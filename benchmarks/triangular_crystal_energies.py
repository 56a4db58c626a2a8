"""Exact (ED) energies of the n_sk = 2 and n_sk = 1 crystals against field, on one supercell.

Checks where the learned model and exact diagonalization put the n_sk = 2 -> 1
transition, and how that depends on the ED supercell (the README's triangular
section). Both crystals are relaxed at each field by T = 0 ML-LLG (400 SIB
steps, dt = 5) on an L x L lattice (L a multiple of 12), starting from the
n_sk = 2 crystal of a 24 x 24 trajectory (tiled, it is 12-periodic) and from
the triple-Q ansatz; then E/N (Zeeman included) from ED and from the model.

    ecnn-pyg simulate --config configs/triangular_ml_llg_random.yaml   # gives the n_sk = 2 state
    OPENBLAS_NUM_THREADS=1 python benchmarks/triangular_crystal_energies.py --L 24 36
"""
from __future__ import annotations

import argparse

import numpy as np
import torch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="triangular-paper")
    p.add_argument("--L", type=int, nargs="+", default=[24, 36])
    p.add_argument("--fields", type=float, nargs="+", default=[0.002, 0.005, 0.008])
    p.add_argument("--bi", default="data/triangular_ml_llg_random.h5#0",
                   help="TRAJECTORY.h5#RUN whose last state (24 x 24) is the n_sk = 2 crystal")
    a = p.parse_args(argv)
    import ecnn_pyg as ep
    from ecnn_pyg.checkpoint import load_model
    from ecnn_pyg.dynamics import SIB, SpinSystem, model_field_source
    from ecnn_pyg.ed import KondoED
    from ecnn_pyg.observables import skyrmion_number
    from ecnn_pyg.simulate import read_runs
    from ecnn_pyg.spins import triple_q
    torch.set_num_threads(1)
    path, _, k = a.bi.rpartition("#")
    bi24 = read_runs(path)[int(k)]["spin"][-1].reshape(24, 24, 3)
    model = load_model(a.model).eval()
    print(f"{'L':>3} {'H_z':>6} {'crystal':>8} {'n_sk':>5} {'E_ED/N':>10} {'E_NN/N':>10}   lower (ED, NN)")
    for L in a.L:
        if L % 12:
            raise SystemExit(f"L must be a multiple of 12, got {L}")
        g = ep.lattice_graph("triangular", L, {"t1": 1.0, "t3": -0.85})
        i = np.arange(L)
        starts = {"n_sk=2": bi24[i[:, None] % 12, i[None, :] % 12].reshape(-1, 3),
                  "n_sk=1": triple_q(g)}
        ed = KondoED(g, J=-1.0, mu=-3.5)
        for hz in a.fields:
            system = SpinSystem(model_field_source(model, g), zeeman=hz)
            rows = []
            for name, s0 in starts.items():
                s = SIB(5.0, alpha=1.0).run(torch.from_numpy(s0).float(), system, 400).double()
                zee = hz * float(s[:, 2].sum())
                e_ed = (ed.energy_field(s.numpy())[0] - zee) / g.num_nodes
                e_nn = (float(model(g, s.float())["energy"].sum().detach()) - zee) / g.num_nodes
                rows.append((name, float(skyrmion_number(s, g)), e_ed, e_nn))
            lo_ed = min(rows, key=lambda r: r[2])[0]
            lo_nn = min(rows, key=lambda r: r[3])[0]
            for name, q, e_ed, e_nn in rows:
                print(f"{L:3d} {hz:6.4f} {name:>8} {q:+5.2f} {e_ed:10.6f} {e_nn:10.6f}"
                      + (f"   {lo_ed}, {lo_nn}" if name == rows[-1][0] else ""), flush=True)


if __name__ == "__main__":
    main()
