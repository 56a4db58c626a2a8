"""One exploration file of ``ecnn-pyg learn``: driven by the committee's mean or by one member.

An exploration file is one supercell and one start, with one ML-LLG run per Zeeman field and
temperature (the triangular from-scratch protocol: 3 fields x 2 temperatures, 400 SIB steps,
saves every 50). Both drives write the same snapshots, which the whole committee scores
(sigma_B); ``mean`` evaluates every member twice per step, ``member`` one member. Both run in
this process, one after the other, so the ratio compares like with like. Printed per drive:
wall time, steps per second, and the RMS sigma_B of the saved snapshots (all but the start)
per temperature: median and range.

    python benchmarks/bench_explore.py --committee runs/triangular_learn_scratch \\
        --size 12 --n-steps 400
    python benchmarks/bench_explore.py --size 12 --n-steps 40        # timing only

Without ``--committee`` the committee is four copies of the shipped triangular model: the
timing holds for any committee of that architecture, but sigma_B is zero.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def explore_file(committee: str, out: Path, size: int, start: str, n_steps: int, member,
                 zeeman, temperatures, seed: int = 7919) -> dict:
    """Run one exploration file; its wall time and the sigma_rms of its saved snapshots."""
    from ecnn_pyg.simulate import read_runs, simulate
    cfg = {"output": str(out), "lattice": "triangular", "size": [size, size],
           "hoppings": {"t1": 1.0, "t3": -0.85}, "source": "model", "model": committee,
           "integrator": "sib", "dt": 5.0, "alpha": 1.0, "temperature": list(temperatures),
           "zeeman": list(zeeman), "n_steps": n_steps, "save_every": 50 if n_steps >= 100
           else max(1, n_steps // 4), "initial": start, "seed": seed, "dtype": "float32",
           "committee_member": member}
    t0 = time.perf_counter()
    simulate(cfg, progress=False)
    wall = time.perf_counter() - t0
    runs = read_runs(out)
    sigma = {}
    for r in runs:
        sigma.setdefault(float(r["temperature"]), []).extend(np.asarray(r["sigma_rms"])[1:])
    steps = n_steps * len(runs)
    return {"drive": "mean" if member is None else f"member {member}", "size": size,
            "start": start, "runs": len(runs), "wall_s": round(wall, 1),
            "steps_per_s": round(steps / wall, 2),
            "sigma_rms": {f"T={t:g}": {"median": float(np.median(v)), "min": float(np.min(v)),
                                       "max": float(np.max(v))} for t, v in sigma.items()}}


def shipped_committee(folder: Path) -> str:
    from ecnn_pyg.committee import save_committee
    from ecnn_pyg.pretrained import path as pretrained_path
    ckpt = str(pretrained_path("triangular-paper"))
    return str(save_committee(folder / "shipped_x4.pt", [ckpt] * 4))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--committee", help="committee checkpoint or learn run directory "
                   "(default: four copies of the shipped triangular model, timing only)")
    p.add_argument("--size", type=int, default=12)
    p.add_argument("--start", default="random", help="random | triple-q | ferro")
    p.add_argument("--n-steps", type=int, default=400)
    p.add_argument("--member", type=int, default=0, help="the member of the 'member' drive")
    p.add_argument("--zeeman", type=float, nargs="+", default=[0.002, 0.005, 0.008])
    p.add_argument("--temperatures", type=float, nargs="+", default=[0.0, 0.005])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print one JSON line per drive")
    a = p.parse_args(argv)
    from ecnn_pyg.runtime import keep_freed_memory, set_threads
    keep_freed_memory()
    set_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        committee = a.committee or shipped_committee(tmp)
        if Path(committee).is_dir():
            from ecnn_pyg.committee import committee_file
            committee = str(committee_file(committee))
        rows = [explore_file(committee, tmp / f"{name}.h5", a.size, a.start, a.n_steps, m,
                             a.zeeman, a.temperatures)
                for name, m in (("mean", None), ("member", a.member))]
    if a.json:
        for r in rows:
            print(json.dumps(r))
        return
    print(f"committee {committee if a.committee else 'shipped model x 4 (timing only)'}; "
          f"{a.size} x {a.size}, start {a.start}, {rows[0]['runs']} runs of {a.n_steps} SIB "
          f"steps, {a.threads} thread(s)")
    print(f"{'drive':<10} {'wall':>8} {'steps/s':>8}   RMS sigma_B of the snapshots: median "
          "[min, max] per temperature")
    for r in rows:
        sig = "  ".join(f"{t}: {v['median']:.2g} [{v['min']:.2g}, {v['max']:.2g}]"
                        for t, v in r["sigma_rms"].items())
        print(f"{r['drive']:<10} {r['wall_s']:>7.1f}s {r['steps_per_s']:>8.2f}   {sig}")
    print(f"speed-up of one member over the mean: {rows[0]['wall_s'] / rows[1]['wall_s']:.2f}x")


if __name__ == "__main__":
    main()
