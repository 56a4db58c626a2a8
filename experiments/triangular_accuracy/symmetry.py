"""How far a model prices exactly degenerate minima apart: mirrors and time reversal.

The exact energy of the Kondo lattice model gives the same value to a configuration, to its
images under the lattice's point group (rotations and mirrors) and to its time reverse -S.
A network with one weight per bond direction learns the point group only from augmentation
(the shipped model's: the rotations), and one with axial (1e) spins can hold terms odd in
S, such as the scalar spin chirality, which a mirror and time reversal both flip. Such a
model prices a skyrmion crystal and its mirror image apart, an error of the size of the
energy differences between the phases.

The states are exact minima on 12 x 12 cells, as the learn loop's ``exact_minima`` makes
them: triple-Q starts (m = 0 and 1) and tilted random starts relaxed with ED (twists
``--relax-twists``) and the Zeeman term at every field; each is kept in ``--out`` and a
rerun relaxes only what is missing. For every model and minimum it prints the model's
energy error per site against ED (twists ``--twists``) on the minimum, its worst mirror
image and its time reverse (ED gives them all the same energy), and the largest
difference per site between the minimum and its images under the rotations, the mirrors
and time reversal (the figures of :func:`ecnn_pyg.testing.symmetry_energy_error`).

    python experiments/triangular_accuracy/symmetry.py --model triangular-paper

With ``--sets DIR`` it writes instead the spin sets of a training test from the same
minima: ``train_spins.npy`` (150 uniform random configurations, the minima of the triple-Q
starts and of random starts 0-3 at every field, and 9 perturbed copies of each) and
``test_spins.npy`` with ``test_rows.json`` (every minimum and its images: a
mirror, the time reverse -S and the spin-space mirror S_x -> -S_x; the minima of random
starts 4-5 are never trained on, and 3 perturbed copies of each of them). Once labelled
(``08_label_symmetry.yaml``) and networks trained on them (``09_train_symmetry.yaml``),
``--test FILE`` prints each model's energy errors per kind of test state, its spread
between a minimum and its images, and RMSE(B) on the perturbed held-out states.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ecnn_pyg.ed import KondoED
from ecnn_pyg.graph import lattice_graph, symmetry_permutations
from ecnn_pyg.minimize import relax
from ecnn_pyg.observables import skyrmion_number
from ecnn_pyg.pretrained import load_model
from ecnn_pyg.spins import triple_q

HOPPINGS = {"t1": 1.0, "t3": -0.85}
J, MU = -1.0, -3.5


def minima(out: Path, size: int, fields, n_random: int, relax_twists: int):
    """``(name, zeeman, spins)`` of every exact minimum, relaxed if not yet in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    graph = lattice_graph("triangular", size, HOPPINGS)
    ed = None
    found = []
    for hz in fields:
        starts = [(f"tq{m:g}", ("tq", m)) for m in (0.0, 1.0)] + \
                 [(f"random{j}", ("random", j)) for j in range(n_random)]
        for tag, (kind, x) in starts:
            name = f"{tag}_{hz:g}"
            if not (out / f"{name}.npy").is_file():
                if kind == "tq":
                    s0 = triple_q(graph.pos.numpy(), m=x, phase=0.3)
                else:
                    rng = np.random.default_rng([7, int(round(hz * 1e6)), x])
                    s0 = rng.normal(size=(graph.num_nodes, 3))
                    s0[:, 2] += 0.5
                ed = ed or KondoED(graph, J=J, mu=MU, twists=relax_twists)
                t0 = time.perf_counter()
                s, n_iter = relax(ed.energy_field, s0, hz, gtol=1e-6, maxiter=600)
                np.save(out / f"{name}.tmp.npy", s)
                (out / f"{name}.tmp.npy").replace(out / f"{name}.npy")
                print(f"relaxed {name}: {n_iter} L-BFGS iterations, "
                      f"{time.perf_counter() - t0:.1f} s", flush=True)
            found.append((name, hz, np.load(out / f"{name}.npy")))
    return graph, found


HELD_OUT = ("random4_", "random5_")       # minima never trained on
SIGMAS = (0.02, 0.04, 0.06, 0.08, 0.12, 0.16, 0.2, 0.3, 0.45)


def _unit(s):
    return s / np.linalg.norm(s, axis=-1, keepdims=True)


def write_sets(out: Path, graph, states) -> None:
    """The training and test spin sets of the module docstring, into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    n = graph.num_nodes
    mirror = [perm.numpy() for op, perm in symmetry_permutations(graph) if not op.proper][1]
    by_name = dict(sorted((name, s) for name, _, s in states))
    held = [t for t in by_name if t.startswith(HELD_OUT)]
    train = [_unit(rng.normal(size=(n, 3))) for _ in range(150)]
    for t in by_name:
        if t not in held:
            train.append(by_name[t])
            train += [_unit(by_name[t] + sig * rng.normal(size=(n, 3))) for sig in SIGMAS]
    train = np.array(train)
    np.save(out / "train_spins.npy", train[rng.permutation(len(train))])
    rows, test = [], []
    for t, s in by_name.items():
        for kind, image in (("minimum", s), ("mirror", s[mirror]), ("time_reverse", -s),
                            ("spin_mirror", s * np.array([-1.0, 1.0, 1.0]))):
            rows.append({"state": t, "kind": kind, "held_out": t in held})
            test.append(image)
    for t in held:
        for sig in (0.04, 0.1, 0.2):
            rows.append({"state": t, "kind": f"perturbed_{sig:g}", "held_out": True})
            test.append(_unit(by_name[t] + sig * rng.normal(size=(n, 3))))
    np.save(out / "test_spins.npy", np.array(test))
    (out / "test_rows.json").write_text(json.dumps(rows, indent=1))
    print(f"{len(train)} training and {len(test)} test configurations in {out}")


def score_test(path: str, rows_path: str, models) -> None:
    """Each model's energy error per kind of test state (module docstring)."""
    from ecnn_pyg.datasets import read_arrays, read_graph
    arr, graph = read_arrays(path), read_graph(path)
    rows = json.loads(Path(rows_path).read_text())
    n = graph.num_nodes
    classes = [int(round(abs(float(skyrmion_number(s, graph))))) for s in arr["spin"]]
    for name in models:
        model = load_model(name).double().eval()
        err, field = [], []
        for s, e in zip(arr["spin"], arr["energy"]):
            out = model(graph, torch.from_numpy(s.astype(np.float64)))
            err.append(float(out["energy"].detach().sum()) / n - float(e) / n)
            field.append(out["field"].detach().numpy())
        err, field = np.array(err), np.array(field)
        print(f"\n{name}: energy error per site (mean, RMS) by kind of test state")
        for held in (False, True):
            for kind in dict.fromkeys(r["kind"] for r in rows):
                v = err[[i for i, r in enumerate(rows) if r["kind"] == kind
                         and r["held_out"] == held]]
                if len(v):
                    print(f"  {'held out' if held else 'trained':9s} {kind:15s} n={len(v):2d} "
                          f"mean {v.mean():+.2e}  RMS {np.sqrt((v ** 2).mean()):.2e}")
        print("  minima (trained and held out) by class:")
        for c in sorted(set(classes)):
            v = err[[i for i, r in enumerate(rows) if r["kind"] == "minimum" and classes[i] == c]]
            print(f"    |n_sk| = {c}: n={len(v):2d} mean {v.mean():+.2e}  RMS "
                  f"{np.sqrt((v ** 2).mean()):.2e}  (min {v.min():+.2e}, max {v.max():+.2e})")
        spread = {}
        for i, r in enumerate(rows):
            if not r["kind"].startswith("perturbed"):
                spread.setdefault(r["state"], []).append(err[i])
        spread = np.array([max(v) - min(v) for v in spread.values()])
        pert = [i for i, r in enumerate(rows) if r["kind"].startswith("perturbed")]
        def rms(kind_ok, held):
            v = err[[i for i, r in enumerate(rows) if kind_ok(r["kind"])
                     and r["held_out"] == held]]
            return float(np.sqrt((v ** 2).mean()))

        def is_image(kind):
            return kind != "minimum" and not kind.startswith("perturbed")
        summary = {"model": name,
                   "spread_mean": float(spread.mean()), "spread_max": float(spread.max()),
                   "trained_minima_rms": rms(lambda k: k == "minimum", False),
                   "trained_images_rms": rms(is_image, False),
                   "held_out_minima_rms": rms(lambda k: k == "minimum", True),
                   "held_out_images_rms": rms(is_image, True),
                   "held_out_perturbed_rmse_field":
                       float(np.sqrt(((field[pert] - arr["field"][pert]) ** 2).mean()))}
        print(f"  spread of the error between a minimum and its images: mean "
              f"{summary['spread_mean']:.2e}, max {summary['spread_max']:.2e}; held-out "
              f"perturbed RMSE(B) {summary['held_out_perturbed_rmse_field']:.5f}")
        print(json.dumps(summary))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", nargs="+", default=["triangular-paper"],
                   help="models or committees (name, checkpoint or learn run directory)")
    p.add_argument("--out", default="runs/triangular/symmetry_minima",
                   help="folder of the exact minima (resumable)")
    p.add_argument("--size", type=int, default=12)
    p.add_argument("--fields", type=float, nargs="+", default=[0.003, 0.005, 0.007])
    p.add_argument("--random", type=int, default=6, help="random starts per field")
    p.add_argument("--relax-twists", type=int, default=3)
    p.add_argument("--twists", type=int, default=8, help="twists of the exact energies")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sets", metavar="DIR",
                   help="write the spin sets of the training test into DIR instead")
    p.add_argument("--test", nargs=2, metavar=("H5", "ROWS"),
                   help="score --model on the labelled test set and its test_rows.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.test:
        return score_test(*args.test, args.model)
    graph, states = minima(Path(args.out), args.size, args.fields, args.random,
                           args.relax_twists)
    if args.sets:
        return write_sets(Path(args.sets), graph, states)
    n = graph.num_nodes
    ed = KondoED(graph, J=J, mu=MU, twists=args.twists)
    exact = ed.energy(np.stack([s for _, _, s in states])) / n
    ops = [(op.proper, perm.numpy()) for op, perm in symmetry_permutations(graph)
           if not op.is_identity]
    for name in args.model:
        model = load_model(name).double().eval()

        def e(s):
            return float(model(graph, torch.from_numpy(np.ascontiguousarray(s)))
                         ["energy"].detach().sum()) / n
        print(f"\n{name}: energy error per site against ED (twists {args.twists})")
        print(f"{'minimum':14s} {'n_sk':>5s} {'ED E/N':>10s} {'error':>9s} "
              f"{'mirror':>9s} {'-S':>9s} | {'rotations':>9s} {'mirrors':>9s} {'time rev':>9s}")
        rows = []
        for (tag, hz, s), ex in zip(states, exact):
            e0 = e(s)
            err = e0 - ex
            # every image once: E(gS) - E(S), as symmetry_energy_error takes them
            rot = [e(s[p]) - e0 for proper, p in ops if proper]
            mir = [e(s[p]) - e0 for proper, p in ops if not proper]
            rev = e(-s) - e0
            worst_mirror = max((err + d for d in mir), key=abs)
            sym = [max(map(abs, rot), default=0.0), max(map(abs, mir), default=0.0), abs(rev)]
            rows.append([err, worst_mirror, err + rev, *sym])
            print(f"{tag:14s} {skyrmion_number(s, graph):5.1f} {ex:10.6f} {err:+9.2e} "
                  f"{worst_mirror:+9.2e} {err + rev:+9.2e} | {sym[0]:9.2e} {sym[1]:9.2e} "
                  f"{sym[2]:9.2e}")
        r = np.abs(np.array(rows))
        print(f"{'mean |.|':14s} {'':5s} {'':10s} {r[:, 0].mean():9.2e} {r[:, 1].mean():9.2e} "
              f"{r[:, 2].mean():9.2e} | {r[:, 3].mean():9.2e} {r[:, 4].mean():9.2e} "
              f"{r[:, 5].mean():9.2e}")
        print(f"{'max':14s} {'':5s} {'':10s} {r[:, 0].max():9.2e} {r[:, 1].max():9.2e} "
              f"{r[:, 2].max():9.2e} | {r[:, 3].max():9.2e} {r[:, 4].max():9.2e} "
              f"{r[:, 5].max():9.2e}")
        print(json.dumps({"model": name, "rms_error": float(np.sqrt((r[:, 0] ** 2).mean())),
                          "rms_error_images": float(np.sqrt((r[:, 1:3] ** 2).mean())),
                          "max_symmetry": float(r[:, 3:].max())}))


if __name__ == "__main__":
    main()
