"""The energy error of a model on a learning run's own labels, by where each label came from.

A strictly local model cannot price every kind of state at once, and the mix of the training
data decides where its energy error goes. This script splits the labels of an
``ecnn-pyg learn`` run into their sources and prints, per group, the mean error of E/N (model
minus ED, per site), its scatter and the RMSE: the seed's random configurations and ED-LLG
snapshots, and every round's labels by exploration cell, temperature, start and kind
(an exploration snapshot, a committee minimum of a T = 0 run, an exact minimum of
``exact_minima``). The audits are left out (never trained on).

    python experiments/triangular_fig4/label_bias.py \\
        --learn runs/triangular_learn_scratch_symmetric \\
        --model runs/triangular_learn_scratch_symmetric/round_005/final/committee.pt

Without ``--model`` the run's latest committee is scored.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def label_sources(run_dir: Path):
    """``[(path, split, [group per sample])]`` of every file the run trained on: the seed's
    (``round_000/seed.json``; a group per file) and every round's labels (grouped by the
    rows of its ``select.json``, in the order they were labelled)."""
    from ecnn_pyg.datasets import read_meta
    from ecnn_pyg.learn._files import read_json
    seed_groups = {"seed_random.h5": "seed: random configurations",
                   "seed_ed_llg.h5": "seed: ED-LLG snapshots"}
    out = []
    for path in read_json(run_dir / "round_000" / "seed.json")["data"]:
        group = seed_groups.get(Path(path).name, f"seed: {Path(path).name}")
        for split, n in read_meta(path)["splits"].items():
            out.append((path, split, [group] * int(n)))
    for rd in sorted(run_dir.glob("round_[0-9][0-9][0-9]"))[1:]:
        if not (rd / "label.json").exists():
            continue
        selected = read_json(rd / "select.json")["selected"]
        for path in read_json(rd / "label.json")["files"]:
            size = Path(path).stem[len("labels_"):]
            rows = [e for e in selected if e["size"] == size]
            splits = read_meta(path)["splits"]
            if sum(splits.values()) != len(rows):
                raise SystemExit(f"{path}: {sum(splits.values())} labels in splits {splits}, "
                                 f"but select.json names {len(rows)} of size {size}")
            groups = []
            for e in rows:
                kind = ("exact minimum" if e["class"] == "exact minimum"
                        else "committee minimum" if e.get("minimum") else "snapshot")
                groups.append(f"{size}, T = {e['temperature']:g}, {e['start']}: {kind}")
            start = 0                         # the splits lie in the file in this order
            for split, count in splits.items():
                out.append((path, split, groups[start:start + count]))
                start += count
    return out


def per_site_errors(model, path, split, batch_size=4) -> np.ndarray:
    """(E_model - E_ED) / N of every sample of ``split`` in ``path``."""
    import torch
    from ecnn_pyg import keys as K
    from ecnn_pyg.datasets import read_arrays, read_graph
    from ecnn_pyg.training import evaluate_arrays
    arr = read_arrays(path, split)
    graph = read_graph(path)
    pred = evaluate_arrays(model, graph, torch.from_numpy(arr[K.SPIN]), batch_size=batch_size)
    return (pred["energy"] - arr[K.ENERGY].astype(np.float64)) / graph.num_nodes


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--learn", required=True, help="the learning run's directory")
    p.add_argument("--model", help="a model or committee (default: the run's latest committee)")
    p.add_argument("--batch-size", type=int, default=4)
    a = p.parse_args(argv)
    from ecnn_pyg.learn.report import latest_committee
    from ecnn_pyg.pretrained import load_model
    run_dir = Path(a.learn)
    model_path = a.model or str(latest_committee(run_dir))
    model = load_model(model_path).eval()
    errors = {}
    for path, split, groups in label_sources(run_dir):
        for g, e in zip(groups, per_site_errors(model, path, split, a.batch_size)):
            errors.setdefault(g, []).append(float(e))
    print(f"{model_path} on the labels of {run_dir} (E/N error, model - ED, per site)")
    width = max(len(g) for g in errors)
    print(f"{'source':<{width}} {'labels':>6} {'mean':>10} {'scatter':>9} {'RMSE':>9}")
    for g in sorted(errors):
        v = np.array(errors[g])
        print(f"{g:<{width}} {len(v):6d} {v.mean():+10.2e} {v.std():9.1e} "
              f"{np.sqrt(np.mean(v ** 2)):9.1e}")
    return errors


if __name__ == "__main__":
    main()
