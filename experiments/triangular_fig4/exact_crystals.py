"""Exact T = 0 phase diagram of the 12-periodic crystals of the paper's triangular model.

The triple-Q crystals fit a 12 x 12 supercell (three 48-site magnetic cells). With
twisted boundaries (``KondoED(..., twists=(m, m))``) the ED of that cell is the exact
ED of the crystal tiled on a 12m x 12m lattice: m = 3 is the paper's 36 x 36 training
lattice, m = 8 the 96 x 96 lattice of its ML-LLG sweep. Each start (the n_sk = 2
crystal, the triple-Q ansatz with skyrmions, a triple-Q "bubble" state without
winding, the polarized state) is relaxed to the nearest exact energy minimum (L-BFGS on
the unit spins, exact energy and field) at every field of the sweep, continuing from the
previous field; the state of lowest exact
energy per field gives the phase diagram against which the learned model is judged.

    OPENBLAS_NUM_THREADS=1 python experiments/triangular_fig4/exact_crystals.py \\
        --fields $(seq 0 0.0005 0.01) --save-states data/triangular_12_crystal_states.npy \\
        --save-bi data/triangular_12_biskx.npy > runs/triangular/exact_crystals.txt

(stage ``exact_crystals`` of experiments/triangular_fig4/run.py, after the stage-3 sweeps
21 and 22 that provide the "model sweep_*" branches).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ecnn_pyg.minimize import relax


def starts(graph, bi_path):
    """Named 12 x 12 starting states."""
    from ecnn_pyg.simulate import read_runs
    from ecnn_pyg.spins import triple_q
    out = {"n_sk=1 triple-Q": triple_q(graph), "n_sk=0 bubble": triple_q(graph, m=3.5)}
    if bi_path:
        path, _, k = bi_path.rpartition("#")
        s = read_runs(path)[int(k)]["spin"][-1].astype(np.float64)
        L = int(round(np.sqrt(len(s))))
        out["n_sk=2 crystal"] = s.reshape(L, L, 3)[:12, :12].reshape(-1, 3)
    pol = np.zeros((graph.num_nodes, 3))
    pol[:, 2] = 1.0
    out["polarized"] = pol
    return {k: v / np.linalg.norm(v, axis=1, keepdims=True) for k, v in out.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fields", type=float, nargs="+",
                   default=[0.0, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01])
    p.add_argument("--relax-twists", type=int, default=3, help="twists (m) of the relaxing ED")
    p.add_argument("--energy-twists", type=int, nargs="+", default=[3, 8],
                   help="twists (m) at which the relaxed states' energies are reported")
    p.add_argument("--bi", default="data/triangular_ml_llg_random.h5#0",
                   help="TRAJECTORY.h5#RUN whose last state holds the n_sk = 2 crystal ('' to skip)")
    p.add_argument("--model-states", nargs="*",
                   default=["runs/triangular_sweep_tripleq/sweep.h5",
                            "runs/triangular_sweep_biskx/sweep.h5"],
                   help="ML-LLG sweeps (12-periodic states); at each field of theirs, their final "
                        "state (cropped to 12 x 12) restarts that branch")
    p.add_argument("--save-states", default=None,
                   help="also write every relaxed state, (fields x starts, 144, 3), to this .npy "
                        "(training data: experiments/triangular_fig4/26_label_12_crystals.yaml)")
    p.add_argument("--save-bi", default=None,
                   help="also write the relaxed n_sk = 2 crystal at the first field, (144, 3), to "
                        "this .npy (the start of experiments/triangular_fig4/24_ed_llg_12_biskx.yaml)")
    p.add_argument("--out", default="runs/triangular/exact_crystals.npz")
    a = p.parse_args(argv)
    import ecnn_pyg as ep
    from ecnn_pyg.ed import KondoED
    from ecnn_pyg.observables import skyrmion_number
    torch.set_num_threads(1)
    g = ep.lattice_graph("triangular", 12, {"t1": 1.0, "t3": -0.85})
    n = g.num_nodes
    relax_ed = KondoED(g, J=-1.0, mu=-3.5, twists=a.relax_twists)
    judges = {m: KondoED(g, J=-1.0, mu=-3.5, twists=m) for m in a.energy_twists}
    st = starts(g, a.bi)
    from ecnn_pyg.simulate import read_runs
    model_states = {}
    for path in a.model_states:
        runs = read_runs(path)
        label = "model " + path.split("/")[-2].replace("triangular_", "")
        model_states[label] = {round(float(r["zeeman"]), 6):
                               r["spin"][-1].reshape(96, 96, 3)[:12, :12].reshape(-1, 3)
                               for r in runs}
        first = model_states[label][min(model_states[label])]
        st[label] = first.astype(np.float64) / np.linalg.norm(first, axis=1, keepdims=True)
    names = list(st)
    spins = np.stack([st[k] for k in names])
    res = {"fields": np.array(a.fields), "names": np.array(names),
           "n_sk": np.zeros((len(a.fields), len(names))), "mz": np.zeros((len(a.fields), len(names))),
           "torque": np.zeros((len(a.fields), len(names)))}
    for m in a.energy_twists:
        res[f"e{m}"] = np.zeros((len(a.fields), len(names)))
    hdr = " ".join(f"{'E/N (' + str(12 * m) + ')':>12}" for m in a.energy_twists)
    print(f"{'H_z':>6} {'start':>16} {'n_sk':>6} {'M_z':>7} {'torque':>8} {hdr}", flush=True)
    t0 = time.time()
    for i, hz in enumerate(a.fields):
        for j, name in enumerate(names):
            if round(hz, 6) in model_states.get(name, {}):
                x = model_states[name][round(hz, 6)].astype(np.float64)
                spins[j] = x / np.linalg.norm(x, axis=1, keepdims=True)
            spins[j] = relax(relax_ed.energy_field, spins[j], hz)[0]
        s = spins
        b = relax_ed.energy_field(s)[1]
        b[..., 2] += hz
        torque = np.linalg.norm(np.cross(s, b), axis=-1).max(-1)
        for j, name in enumerate(names):
            res["n_sk"][i, j] = float(skyrmion_number(torch.from_numpy(s[j]), g))
            res["mz"][i, j] = s[j, :, 2].mean()
            res["torque"][i, j] = torque[j]
            es = []
            for m, ed in judges.items():
                e = (ed.energy(s[j]) - hz * s[j, :, 2].sum()) / n
                res[f"e{m}"][i, j] = e
                es.append(f"{e:12.7f}")
            print(f"{hz:6.4f} {name:>16} {res['n_sk'][i, j]:+6.2f} {res['mz'][i, j]:7.4f} "
                  f"{torque[j]:8.1e} {' '.join(es)}", flush=True)
        for m in a.energy_twists:
            j = int(np.argmin(res[f"e{m}"][i]))
            print(f"       lowest at {12 * m} x {12 * m}: {names[j]} (n_sk {res['n_sk'][i, j]:+.2f})")
        print(f"       [{time.time() - t0:.0f} s]", flush=True)
        res[f"spins_{i}"] = spins.copy()
        np.savez(a.out, **res)
        if a.save_bi and i == 0 and "n_sk=2 crystal" in names:
            np.save(a.save_bi, spins[names.index("n_sk=2 crystal")])
        if a.save_states:
            np.save(a.save_states, np.concatenate([res[f"spins_{k}"] for k in range(i + 1)]))


if __name__ == "__main__":
    main()
