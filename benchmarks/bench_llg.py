"""Time of one LLG step: the trained model on 96 x 96 and 576 x 576 against ED on 36 x 36.

The triangular protocol of the paper (t1 = 1, t3 = -0.85, J = -1, mu = -3.5).
One SIB step (two field evaluations, as for every integrator of the package)
at T = 0.005, alpha = 1, H_z = 0.005, from a random configuration; the first
step is a warm-up, the best of ``--repeat`` further steps is reported, all in
one process, so the ratios compare like with like.

    python benchmarks/bench_llg.py                 # model 96, 576; ED 36
    python benchmarks/bench_llg.py --threads 1 --model-sizes 96 --ed-sizes 24 36

The model is the shipped ``triangular-paper`` (``--model`` takes another name
or checkpoint). Set OPENBLAS_NUM_THREADS to the same value as --threads.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

HOP = {"t1": 1.0, "t3": -0.85}


def time_steps(system, spins, repeat, dt=2.0, seed=0):
    from ecnn_pyg.dynamics import make_integrator
    integ = make_integrator("sib", dt, alpha=1.0, temperature=0.005,
                            generator=torch.Generator().manual_seed(seed))
    spins = integ.run(spins, system, 1)                  # warm-up (neighbour tables, caches)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        spins = integ.run(spins, system, 1)
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="triangular-paper")
    p.add_argument("--model-sizes", type=int, nargs="*", default=[96, 576])
    p.add_argument("--ed-sizes", type=int, nargs="*", default=[36])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print one JSON line per row")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    import ecnn_pyg
    from ecnn_pyg.runtime import keep_freed_memory
    keep_freed_memory()                 # as the command line does; ECNN_PYG_MALLOC=system opts out
    from ecnn_pyg.pretrained import load_model
    from ecnn_pyg.dynamics import SpinSystem, model_field_source, numpy_field_source
    from ecnn_pyg.ed import KondoED
    from ecnn_pyg.spins import random_spins
    model = load_model(a.model).eval()
    dtype = next(model.parameters()).dtype
    rows = []
    for L in a.model_sizes:
        g = ecnn_pyg.lattice_graph("triangular", L, HOP)
        s = torch.from_numpy(random_spins(g.num_nodes, generator=np.random.default_rng(L))).to(dtype)
        system = SpinSystem(model_field_source(model, g), zeeman=0.005)
        rows.append({"source": "model", "L": L, "N": g.num_nodes,
                     "step_s": time_steps(system, s, a.repeat)})
    for L in a.ed_sizes:
        g = ecnn_pyg.lattice_graph("triangular", L, HOP)
        ed = KondoED(g, J=-1.0, mu=-3.5)
        s = torch.from_numpy(random_spins(g.num_nodes, generator=np.random.default_rng(L)))
        system = SpinSystem(numpy_field_source(lambda x: ed.energy_field(x)[1]), zeeman=0.005)
        rows.append({"source": "ED", "L": L, "N": g.num_nodes,
                     "step_s": time_steps(system, s, max(1, a.repeat - 1))})
    ed_rows = [r for r in rows if r["source"] == "ED"]
    print(f"one SIB LLG step (2 field evaluations), triangular protocol, {a.threads} thread(s), "
          f"model {a.model} ({str(dtype).replace('torch.', '')})")
    print(f"{'source':>6} {'L':>5} {'sites':>8} {'s/step':>9} {'us/site':>8}  speed-up vs ED")
    for r in rows:
        ups = "  ".join(f"x{e['step_s'] / r['step_s'] * r['N'] / e['N']:.0f} per site vs ED {e['L']}"
                        f" (x{e['step_s'] / r['step_s']:.1f} per step)"
                        for e in ed_rows) if r["source"] == "model" else ""
        print(f"{r['source']:>6} {r['L']:>5} {r['N']:>8} {r['step_s']:>9.3f} "
              f"{r['step_s'] / r['N'] * 1e6:>8.2f}  {ups}")
        if a.json:
            print(json.dumps(r))


if __name__ == "__main__":
    main()
