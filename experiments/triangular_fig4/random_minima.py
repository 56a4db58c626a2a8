"""Exact energy minima of the 12 x 12 cell from random starts (a search for other crystals).

Each start (random spins tilted towards +z) is relaxed to the nearest exact energy minimum
(L-BFGS, ED of the 36 x 36 lattice via twists 3) at the given field and priced on 36 x 36
and 96 x 96 (twists 8). The table has the columns of exact_crystals.py,
so exact_transitions.py reads it. This search found the n_sk = 0 state
that puts the exact 1 -> 0 transition at H_z ~ 0.0067 (README, triangular section).

    OPENBLAS_NUM_THREADS=1 python experiments/triangular_fig4/random_minima.py --fields 0.006 0.0065 \\
        0.007 --starts 10 --seed 3 > runs/triangular/random_minima.txt
"""
from __future__ import annotations

import argparse

import numpy as np
import torch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fields", type=float, nargs="+", default=[0.006, 0.0065, 0.007])
    p.add_argument("--starts", type=int, default=10, help="random starts per field")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--save-states", default=None, help="write every minimum to this .npy")
    a = p.parse_args(argv)
    import ecnn_pyg as ep
    from ecnn_pyg.ed import KondoED
    from ecnn_pyg.observables import skyrmion_number
    from ecnn_pyg.minimize import relax
    torch.set_num_threads(1)
    g = ep.lattice_graph("triangular", 12, {"t1": 1.0, "t3": -0.85})
    ed3 = KondoED(g, J=-1.0, mu=-3.5, twists=3)
    ed8 = KondoED(g, J=-1.0, mu=-3.5, twists=8)
    print(f"{'H_z':>6} {'start':>16} {'n_sk':>6} {'M_z':>7} {'torque':>8} {'E/N (36)':>12} "
          f"{'E/N (96)':>12}", flush=True)
    saved = []
    for hz in a.fields:
        rng = np.random.default_rng([a.seed, int(round(hz * 1e6))])
        for k in range(a.starts):
            s0 = rng.normal(size=(g.num_nodes, 3))
            s0[:, 2] += 0.5
            s, _ = relax(ed3.energy_field, s0 / np.linalg.norm(s0, axis=1, keepdims=True), hz,
                         maxiter=3000)
            e3, b = ed3.energy_field(s)
            b[:, 2] += hz
            torque = np.linalg.norm(np.cross(s, b), axis=-1).max()
            zee = hz * s[:, 2].sum()
            print(f"{hz:6.4f} {'random ' + str(k):>16} {float(skyrmion_number(torch.from_numpy(s), g)):+6.2f} "
                  f"{s[:, 2].mean():7.4f} {torque:8.1e} {(e3 - zee) / g.num_nodes:12.7f} "
                  f"{(ed8.energy(s) - zee) / g.num_nodes:12.7f}", flush=True)
            saved.append(s)
            if a.save_states:
                np.save(a.save_states, np.stack(saved))


if __name__ == "__main__":
    main()
