"""The paper's Fig. 4 from ML-LLG field sweeps on 96 x 96 started from the three crystals.

For every field the final states of all sweeps are scored with the learned (in float64)
energy (electronic part from the model, plus the Zeeman energy -H_z sum S^z);
the lowest one is the T = 0 state at that field. Prints the table and the
transition fields (where the learned energies of the two competing states cross,
interpolated linearly between neighbouring fields) and writes the phase diagram
and the spin textures at H_z = 0.002, 0.005, 0.008 (or the fields given) as
small PNGs. A label may name several sweeps (the same start run at other fields); the
crossings are printed to 1e-6 in H_z, the resolution the 15% limits of the transitions need.

    ecnn-pyg simulate --config experiments/triangular_fig4/47_sweep_96_biskx.yaml
    ecnn-pyg simulate --config experiments/triangular_fig4/48_sweep_96_tripleq.yaml
    ecnn-pyg simulate --config experiments/triangular_fig4/49_sweep_96_nsk0.yaml
    ecnn-pyg simulate --config experiments/triangular_fig4/50_sweep_96_nsk0_model.yaml
    python experiments/triangular_fig4/phase_diagram.py --model runs/triangular_stage11.pt \\
        --out runs/triangular/figures
"""
from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np
import torch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sweeps", nargs="+", default=["runs/triangular_96_sweep_biskx/sweep.h5",
                                                   "runs/triangular_96_sweep_tripleq/sweep.h5",
                                                   "runs/triangular_96_sweep_nsk0/sweep.h5",
                                                   "runs/triangular_96_sweep_nsk0_model/sweep.h5"])
    p.add_argument("--labels", nargs="+", default=["from n_sk=2", "from n_sk=1", "from n_sk=0",
                                                   "from model n_sk=0"])
    p.add_argument("--model", default="triangular-paper")
    p.add_argument("--snapshots", type=float, nargs="*", default=[0.002, 0.005, 0.008])
    p.add_argument("--out", default="runs/triangular/figures")
    a = p.parse_args(argv)
    if len(a.labels) != len(a.sweeps):
        p.error(f"--labels needs one label per sweep file: {len(a.sweeps)} sweeps, "
                f"{len(a.labels)} labels (a label may repeat)")
    from ecnn_pyg.pretrained import load_model
    from ecnn_pyg.datasets import read_graph
    from ecnn_pyg.observables import skyrmion_number
    from ecnn_pyg.plot import phase_diagram, spin_texture
    from ecnn_pyg.simulate import read_runs
    torch.set_num_threads(2)
    # float64: in float32 the learned energy per site of a 96 x 96 state carries an error of
    # ~2e-6, as large as the energy differences between the branches near a transition
    model = load_model(a.model).double().eval()
    with h5py.File(a.sweeps[0], "r", locking=False) as f:
        graph = read_graph(f)
    n = graph.num_nodes
    rows = {}
    for path, label in zip(a.sweeps, a.labels):
        for r in read_runs(path):
            s = torch.from_numpy(r["spin"][-1]).double()
            e = float(model(graph, s)["energy"].sum().detach()) - r["zeeman"] * float(s[:, 2].sum())
            rows.setdefault(round(float(r["zeeman"]), 6), []).append(
                {"label": label, "e": e / n, "n_sk": float(skyrmion_number(s, graph)),
                 "m_z": float(s[:, 2].mean()), "spin": r["spin"][-1], "steps": int(r["step"])})
    fields = sorted(rows)
    best = [min(rows[h], key=lambda x: x["e"]) for h in fields]
    columns = list(dict.fromkeys(a.labels))
    print(f"{'H_z':>7} " + " ".join(f"{lab + ' n_sk':>14} {lab + ' E/N':>14}" for lab in columns)
          + f" {'lowest':>9} {'|n_sk|':>7} {'|M_z|':>7}")
    for h, b in zip(fields, best):
        cols = {x["label"]: x for x in rows[h]}
        print(f"{h:7.4f} " + " ".join(
            f"{cols[lab]['n_sk']:+14.2f} {cols[lab]['e']:14.7f}" if lab in cols else f"{'-':>14} {'-':>14}"
            for lab in columns) + f" {b['label']:>9} {abs(b['n_sk']):7.2f} {abs(b['m_z']):7.4f}")
    ns = [round(abs(b["n_sk"])) for b in best]
    for i in range(len(fields) - 1):
        if ns[i] != ns[i + 1]:
            h0, h1 = fields[i], fields[i + 1]
            msg = f"transition |n_sk| {ns[i]} -> {ns[i + 1]} between H_z = {h0:g} and {h1:g}"
            a0, a1 = best[i]["label"], best[i + 1]["label"]
            e = {h: {x["label"]: x["e"] for x in rows[h]} for h in (h0, h1)}
            if a0 != a1 and all(lab in e[h] for lab in (a0, a1) for h in (h0, h1)):
                d0, d1 = e[h0][a0] - e[h0][a1], e[h1][a0] - e[h1][a1]   # <= 0, then > 0
                msg += f"; learned energies cross at H_z = {h0 + (h1 - h0) * d0 / (d0 - d1):.6f}"
            print(msg)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    phase_diagram(fields, [b["n_sk"] for b in best], [b["m_z"] for b in best],
                  out / "triangular_phase_diagram.png",
                  title="ML-LLG, 96 x 96, T = 0 (lowest learned energy of the starts)")
    for h in a.snapshots:
        key = min(fields, key=lambda x: abs(x - h))
        b = min(rows[key], key=lambda x: x["e"])
        spin_texture(b["spin"], graph, out / f"triangular_snapshot_h{key:g}.png", arrow_stride=2,
                     figsize=(5, 4), title=f"H_z = {key:g}: n_sk = {b['n_sk']:+.2f}, "
                                           f"M_z = {b['m_z']:.3f}")
    print(f"figures in {out}/")


if __name__ == "__main__":
    main()
