"""How far exact labels of the same snapshots move with the lattice they are computed on,
and how a model compares with each.

Twisted-boundary ED of an L x L cell with ``twists: k`` gives the exact energy and field
of the cell's texture tiled on the kL x kL lattice. A general (disordered) snapshot's
labels then depend on k: at T = 0 in the grand canonical ensemble every level that
crosses mu moves the field of all sites, and which levels lie near mu depends on the
k grid. That part of the field is not a local function of the spins, so no local model
can learn it: it is a floor under RMSE(B) against the labels of any one finite lattice.

Give data files that hold the same spins (one split) labelled with increasing k, e.g.
``experiments/triangular_accuracy/06_label_24_val_lattices.yaml`` with ``twists: 4, 6, 8``. The script prints

* between consecutive label sets: RMSE(B), its transverse part and RMSE(E/N);
* for every --model: RMSE(B), transverse and RMSE(E/N) against each label set.

Once the labels have converged, what error is left is the model's own.

    python experiments/triangular_accuracy/label_convergence.py data/triangular_24_val_96.h5 \\
        data/triangular_24_val_144.h5 data/triangular_24_val_192.h5 --split val \\
        --model triangular-paper
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from ecnn_pyg import keys as K
from ecnn_pyg.pretrained import load_model
from ecnn_pyg.datasets import read_arrays, read_graph, read_meta
from ecnn_pyg.metrics import ErrorAccumulator
from ecnn_pyg.training import evaluate_arrays


def compare(pred, target) -> dict:
    """RMSE(B), transverse RMSE(B) and RMSE(E/N) of ``pred`` against ``target``.

    Both are ``read_arrays`` dicts of the same spins (``pred`` may be a model's output
    with ``energy`` and ``field``).
    """
    acc = ErrorAccumulator()
    spin = torch.as_tensor(target[K.SPIN])
    n, n_sites = spin.shape[:2]
    acc.update(torch.as_tensor(pred[K.FIELD]).reshape(-1, 3),
               torch.as_tensor(target[K.FIELD]).reshape(-1, 3), spin.reshape(-1, 3),
               torch.as_tensor(pred[K.ENERGY]), torch.as_tensor(target[K.ENERGY]),
               torch.full((n,), float(n_sites), dtype=torch.float64))
    m = acc.compute()
    m.pop("loss")
    m["mean_energy_error_per_site"] = float(np.mean((np.asarray(pred[K.ENERGY])
                                                     - target[K.ENERGY]) / n_sites))
    return m


def lattice_name(path) -> str:
    """'kL x kL' of a data file (its cell size times its twists)."""
    meta = read_meta(path)
    size = np.asarray(meta["size"]).reshape(-1)
    twists = np.asarray(meta["model"].get("twists") or [1, 1]).reshape(-1)
    return " x ".join(str(int(a * b)) for a, b in zip(size, twists))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", nargs="+", help="data files of the same spins, smallest lattice first")
    p.add_argument("--split", default=None)
    p.add_argument("--model", nargs="*", default=[], help="pretrained names or checkpoints")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    sets = [read_arrays(f, a.split) for f in a.data]
    names = [lattice_name(f) for f in a.data]
    for f, s in zip(a.data[1:], sets[1:]):
        if s[K.SPIN].shape != sets[0][K.SPIN].shape or \
                not np.allclose(s[K.SPIN], sets[0][K.SPIN], atol=1e-6):
            raise SystemExit(f"{f} does not hold the spins of {a.data[0]}")
    n, n_sites = sets[0][K.SPIN].shape[:2]
    print(f"# {n} snapshots of {n_sites} sites; RMS field "
          f"{float(np.sqrt(np.mean(sets[-1][K.FIELD] ** 2))):.4f}")
    print(f"{'compared':<34} {'labels':<14} {'RMSE(B)':>9} {'transv':>9} {'RMSE(E/N)':>10} "
          f"{'mean dE/N':>10}")

    def row(what, label, m):
        print(f"{what:<34} {label:<14} {m['rmse_field']:9.5f} {m['rmse_field_transverse']:9.5f} "
              f"{m['rmse_energy_per_site']:10.2e} {m['mean_energy_error_per_site']:10.2e}")

    for i in range(1, len(sets)):
        row(f"labels {names[i - 1]}", names[i], compare(sets[i - 1], sets[i]))
    graph = read_graph(a.data[0])
    for name in a.model:
        model = load_model(name)
        out = evaluate_arrays(model, graph, torch.as_tensor(sets[0][K.SPIN]))
        for label, s in zip(names, sets):
            row(f"model {name}", label, compare(out, s))


if __name__ == "__main__":
    main()
