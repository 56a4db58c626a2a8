"""Where a model's own T = 0 crystals lie in exact energy (active learning for the phase diagram).

The exact 12 x 12 crystals of exact_crystals.py (its --out .npz) are
relaxed to the nearest minimum of the *learned* energy (L-BFGS on the 12 x 12 cell, which
is the same as on any tiled lattice) at every field, then their exact energy is computed
with twisted boundaries (twists 8: the 96 x 96 lattice). A model state whose learned
energy lies far below its exact one is a hole in the training data; --save-states writes
the states so that they can be labelled and added (experiments/triangular_fig4/31_label_12_active1.yaml
and its rounds 33, 35, 37: stages active1-4 of experiments/triangular_fig4/run.py).

    OPENBLAS_NUM_THREADS=1 python experiments/triangular_fig4/model_crystals.py --model triangular-paper
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="triangular-paper")
    p.add_argument("--crystals", default="runs/triangular/exact_crystals.npz")
    p.add_argument("--starts", nargs="+", default=["model sweep_biskx", "model sweep_tripleq",
                                                   "n_sk=2 crystal"],
                   help="names of the start branches in --crystals")
    p.add_argument("--extra", nargs="*", default=[],
                   help="more starts, FILE.npy#INDEX of a (n, 144, 3) array, used at every field")
    p.add_argument("--fields", type=float, nargs="*", default=None,
                   help="only these fields of --crystals (default: all)")
    p.add_argument("--twists", type=int, default=8)
    p.add_argument("--save-states", default=None)
    a = p.parse_args(argv)
    import ecnn_pyg as ep
    from ecnn_pyg.pretrained import load_model
    from ecnn_pyg.ed import KondoED
    from ecnn_pyg.observables import skyrmion_number
    from ecnn_pyg.minimize import relax
    torch.set_num_threads(1)
    model = load_model(a.model).double().eval()
    g = ep.lattice_graph("triangular", 12, {"t1": 1.0, "t3": -0.85})
    ed = KondoED(g, J=-1.0, mu=-3.5, twists=a.twists)

    def model_ef(s):
        out = model(g, torch.from_numpy(s))
        return float(out["energy"].sum().detach()), out["field"].detach().numpy()

    r = np.load(a.crystals)
    names = [str(x) for x in r["names"]]
    cols = [names.index(s) for s in a.starts]
    extra = []
    for spec in a.extra:
        path, _, idx = spec.rpartition("#")
        extra.append((f"extra {Path(path).stem}#{idx}", np.load(path)[int(idx)].astype(np.float64)))
    saved = []
    print(f"{'H_z':>7} {'start':>20} {'n_sk':>5} {'M_z':>6} {'E_NN/N':>11} {'E_ED/N':>11} "
          f"{'NN-ED':>9}   lowest (NN, ED)")
    for i, hz in enumerate(r["fields"]):
        if a.fields and not any(abs(hz - h) < 1e-9 for h in a.fields):
            continue
        rows = []
        starts = [(names[j], r[f"spins_{i}"][j]) for j in cols] + extra
        for name, s0 in starts:
            s, _ = relax(model_ef, s0, hz)
            zee = hz * s[:, 2].sum()
            e_nn, e_ed = (model_ef(s)[0] - zee) / g.num_nodes, (ed.energy(s) - zee) / g.num_nodes
            rows.append((name, float(skyrmion_number(torch.from_numpy(s), g)),
                         s[:, 2].mean(), e_nn, e_ed))
            saved.append(s)
        lo_nn = min(rows, key=lambda x: x[3])
        lo_ed = min(rows, key=lambda x: x[4])
        for k, (name, q, mz, e_nn, e_ed) in enumerate(rows):
            tail = f"   {lo_nn[1]:+.0f}, {lo_ed[1]:+.0f}" if k == len(rows) - 1 else ""
            print(f"{hz:7.4f} {name:>20} {q:+5.1f} {mz:6.3f} {e_nn:11.7f} {e_ed:11.7f} "
                  f"{e_nn - e_ed:+9.1e}{tail}", flush=True)
        if a.save_states:
            np.save(a.save_states, np.stack(saved))


if __name__ == "__main__":
    main()
