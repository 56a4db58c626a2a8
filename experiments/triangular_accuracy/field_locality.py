"""How far the exact field reaches, against the model's: the nonlocal part no local model learns.

For a snapshot S and a site i, replace every spin farther than R from i by the spin of
another snapshot S' and recompute the field at i. The change of B_i measures how much of
the field comes from beyond R. The model's field is strictly local: with ``num_blocks``
interaction blocks its energy eps_r depends on the spins within (num_blocks + 1) hops of r,
so B_i depends on nothing beyond 2 (num_blocks + 1) hops (each hop at most the longest
bond). The exact field of a metal is not: its tail decays as a power law (RKKY-like), so on
disordered snapshots a part of it is out of any local model's reach, whatever the data.

Prints, per R, the RMS per component of the change of B_i for ED and for each model, over
``--pairs`` snapshot pairs of the file (site ``--site``; minimum-image distances).

    python experiments/triangular_accuracy/field_locality.py --data data/triangular_test_36.h5 --split test \\
        --model triangular-paper
"""
from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from ecnn_pyg import keys as K
from ecnn_pyg.pretrained import load_model
from ecnn_pyg.datasets import read_arrays, read_graph, read_meta
from ecnn_pyg.ed import KondoED


def distances_from(graph, site: int) -> np.ndarray:
    """Minimum-image distances of all sites from ``site`` on the periodic supercell."""
    pos = graph.pos.double().numpy()
    cells = graph.supercell[0].double().numpy()          # supercell vectors (rows), Cartesian
    d = pos - pos[site]
    best = np.full(len(pos), np.inf)
    for shift in itertools.product((-1, 0, 1), repeat=len(cells)):
        best = np.minimum(best, np.linalg.norm(d + np.asarray(shift) @ cells, axis=1))
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="data file (its spins, lattice and ED model)")
    p.add_argument("--split", default=None)
    p.add_argument("--model", nargs="*", default=["triangular-paper"])
    p.add_argument("--radii", type=float, nargs="+", default=[4, 6, 8, 10, 12, 14])
    p.add_argument("--pairs", type=int, default=8, help="snapshot pairs (S, S')")
    p.add_argument("--site", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    meta = read_meta(a.data)
    graph = read_graph(a.data)
    arrays = read_arrays(a.data, a.split)
    spins = arrays[K.SPIN].astype(np.float64)
    n = len(spins)
    if n < 2:
        raise SystemExit(f"{a.data} needs at least two snapshots, has {n}")
    ed = KondoED(graph, **meta["model"])
    dist = distances_from(graph, a.site)
    models = [(name, load_model(name)) for name in a.model]

    def model_field(model, s):
        dtype = next(model.parameters()).dtype
        return model(graph, torch.as_tensor(s, dtype=dtype))[K.FIELD][a.site].detach().double()

    changes = {src: {r: [] for r in a.radii} for src in ["ED"] + a.model}
    t0 = time.perf_counter()
    for k in range(min(a.pairs, n)):
        s, other = spins[k], spins[(k + n // 2) % n]
        b_ed = ed.energy_field(s[None])[1][0, a.site]
        b_ml = {name: model_field(m, s) for name, m in models}
        for r in a.radii:
            mixed = np.where((dist <= r)[:, None], s, other)
            changes["ED"][r].append(ed.energy_field(mixed[None])[1][0, a.site] - b_ed)
            for name, m in models:
                changes[name][r].append((model_field(m, mixed) - b_ml[name]).numpy())
        print(f"# pair {k + 1}: {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"# {a.data}: {graph.num_nodes} sites, site {a.site}; RMS per component of the change "
          f"of B_i when the spins beyond R are replaced ({min(a.pairs, n)} pairs); field RMS "
          f"{float(np.sqrt(np.mean(arrays[K.FIELD] ** 2))):.4f}")
    print(f"{'R':>6} " + " ".join(f"{src:>18}" for src in changes))
    for r in a.radii:
        print(f"{r:6.1f} " + " ".join(f"{np.sqrt(np.mean(np.square(changes[src][r]))):18.5f}"
                                      for src in changes))


if __name__ == "__main__":
    main()
