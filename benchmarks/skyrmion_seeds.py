"""How often the README's main run reaches the skyrmion crystal from random spins.

T = 0 ML-LLG with the shipped triangular model on 48 x 48 at H_z = 0.006 (SIB, dt = 5,
alpha = 1, 1500 steps: the built-in default of ``ecnn-pyg simulate``), from the random
starts of ``ecnn-pyg simulate`` (``--simulate-seeds``) and of the README's API example
(``--api-seeds``). Prints n_sk, M_z and the learned energy per site (Zeeman included)
of every end state. About 2 min per start on one core.

    OMP_NUM_THREADS=1 python benchmarks/skyrmion_seeds.py
"""
from __future__ import annotations

import argparse

import numpy as np
import torch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="triangular-paper")
    p.add_argument("--simulate-seeds", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--api-seeds", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--zeeman", type=float, default=0.006)
    p.add_argument("--steps", type=int, default=1500)
    a = p.parse_args(argv)
    import ecnn_pyg as ep
    from ecnn_pyg.checkpoint import load_model
    from ecnn_pyg.dynamics import SIB, SpinSystem, model_field_source, random_spins
    from ecnn_pyg.observables import skyrmion_number
    from ecnn_pyg.spins import random_spins as numpy_random_spins
    graph = ep.lattice_graph("triangular", 48, {"t1": 1.0, "t3": -0.85})
    model = load_model(a.model).eval()
    system = SpinSystem(model_field_source(model, graph), zeeman=a.zeeman)
    n = graph.num_nodes
    starts = [(f"simulate seed {s}", torch.as_tensor(
        numpy_random_spins(n, np.random.default_rng([s, 0])), dtype=torch.float32))
        for s in a.simulate_seeds]
    starts += [(f"API seed {s}", random_spins(n, seed=s, dtype=torch.float32)) for s in a.api_seeds]
    print(f"{'start':>16} {'n_sk':>6} {'M_z':>6} {'E/N':>11}")
    for name, s0 in starts:
        s = SIB(dt=5.0, alpha=1.0).run(s0, system, a.steps)
        e = float(model(graph, s)["energy"].sum().detach()) / n - a.zeeman * float(s[:, 2].mean())
        print(f"{name:>16} {float(skyrmion_number(s, graph)):+6.2f} {float(s[:, 2].mean()):6.3f} "
              f"{e:11.7f}", flush=True)


if __name__ == "__main__":
    main()
