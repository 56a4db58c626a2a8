"""RMSE(B), its transverse part and RMSE(E/N) of models on named data sets (the accuracy table).

The last column is the mean error of E/N, the part of RMSE(E/N) common to the whole set: it
changes no force and no energy difference within the set, but it is an error of the set's
energies against other states (e.g. equilibrium snapshots against the minima).

A set is ``NAME=FILE[,FILE...]:SPLIT``; a set of several files (one per field) is scored on
all their samples together. One row per model and set, e.g.

    python experiments/triangular_accuracy/accuracy_table.py --models triangular-paper \\
        --sets "12x12 val=data/triangular_12_val.h5:val" \\
        "24x24 eq=data/triangular_24_eq_96_h0.002.h5,data/triangular_24_eq_96_h0.005.h5:val"
"""
from __future__ import annotations

import argparse


def parse_set(spec: str):
    """``NAME=F1,F2:SPLIT`` -> ``(NAME, [F1, F2], SPLIT)``."""
    name, sep, rest = spec.partition("=")
    files, sep2, split = rest.rpartition(":")
    if not sep or not sep2 or not files or not split:
        raise SystemExit(f"--sets entries look like NAME=FILE[,FILE...]:SPLIT, got {spec!r}")
    return name, files.split(","), split


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", required=True, help="pretrained names or checkpoints")
    p.add_argument("--sets", nargs="+", required=True, help="NAME=FILE[,FILE...]:SPLIT")
    p.add_argument("--batch-size", type=int, default=4)
    a = p.parse_args(argv)
    sets = [parse_set(s) for s in a.sets]
    import torch
    from ecnn_pyg import keys as K
    from ecnn_pyg.datasets import read_arrays, read_graph
    from ecnn_pyg.metrics import ErrorAccumulator
    from ecnn_pyg.pretrained import load_model_and_checkpoint
    from ecnn_pyg.training import evaluate_arrays
    width = max(len(n) for n, _, _ in sets)
    print(f"{'model':<32} {'set':<{width}} {'samples':>7} {'RMSE(B)':>9} {'transverse':>10} "
          f"{'RMSE(E/N)':>10} {'mean E/N err':>12}", flush=True)
    for model_name in a.models:
        model, _ = load_model_and_checkpoint(model_name)
        for name, files, split in sets:
            acc, n = ErrorAccumulator(), 0
            for path in files:
                arr = read_arrays(path, split)
                t = {k: torch.from_numpy(arr[k]) for k in (K.SPIN, K.FIELD, K.ENERGY)}
                evaluate_arrays(model, read_graph(path), t[K.SPIN], t[K.FIELD], t[K.ENERGY],
                                batch_size=a.batch_size, accumulator=acc)
                n += len(arr[K.ENERGY])
            m = acc.compute()
            print(f"{model_name:<32} {name:<{width}} {n:7d} {m['rmse_field']:9.6f} "
                  f"{m['rmse_field_transverse']:10.6f} {m['rmse_energy_per_site']:10.2e} "
                  f"{acc.energy_bias_per_site():+12.2e}",
                  flush=True)


if __name__ == "__main__":
    main()
