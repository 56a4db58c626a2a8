"""How often the README's main run reaches the skyrmion crystal from random spins.

The built-in default run of ``ecnn-pyg simulate`` (T = 0 ML-LLG with the shipped
triangular model on 48 x 48 at H_z = 0.006, SIB, dt = 5, alpha = 1, 1500 steps; all taken
from ``ecnn_pyg.simulate.DEFAULT_CONFIG``), from the random starts of ``ecnn-pyg simulate``
(``--simulate-seeds``) and of the README's API example (``--api-seeds``). Prints n_sk, M_z and the learned energy per site (Zeeman included)
of every end state. About 2 min per start on one core.

    OMP_NUM_THREADS=1 python experiments/skyrmion_crystal/skyrmion_seeds.py
"""
from __future__ import annotations

import argparse
import copy

import torch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--simulate-seeds", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--api-seeds", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=None, help="default: the run's n_steps")
    p.add_argument("--model", default=None,
                   help="a checkpoint to try instead of the run's model (e.g. before shipping it)")
    a = p.parse_args(argv)
    import ecnn_pyg as ep
    from ecnn_pyg.pretrained import load_model
    from ecnn_pyg.dynamics import SIB, SpinSystem, model_field_source, random_spins
    from ecnn_pyg.observables import skyrmion_number
    from ecnn_pyg.simulate import DEFAULT_CONFIG as cfg, _initial
    graph = ep.lattice_graph(cfg["lattice"], cfg["size"], cfg["hoppings"])
    model = load_model(a.model or cfg["model"]).eval()
    model64 = copy.deepcopy(model).double()          # energies in float64, as the phase diagram
    system = SpinSystem(model_field_source(model, graph), zeeman=cfg["zeeman"])
    n = graph.num_nodes
    starts = [(f"simulate seed {s}", torch.as_tensor(_initial({**cfg, "seed": s}, graph)(0),
                                                     dtype=torch.float32))
              for s in a.simulate_seeds]
    starts += [(f"API seed {s}", random_spins(n, seed=s, dtype=torch.float32)) for s in a.api_seeds]
    print(f"{'start':>16} {'n_sk':>6} {'M_z':>6} {'E/N':>11}")
    for name, s0 in starts:
        s = SIB(dt=cfg["dt"], alpha=cfg["alpha"]).run(s0, system, a.steps or cfg["n_steps"])
        e = (float(model64(graph, s.double())["energy"].sum().detach()) / n
             - cfg["zeeman"] * float(s[:, 2].mean()))
        print(f"{name:>16} {float(skyrmion_number(s, graph)):+6.2f} {float(s[:, 2].mean()):6.3f} "
              f"{e:11.7f}", flush=True)


if __name__ == "__main__":
    main()
