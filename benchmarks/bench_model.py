"""Time and peak memory of the ECNN energy + field (E and B) against lattice size.

Each (lattice, L) runs in its own subprocess so that the peak resident memory
(``ru_maxrss``) belongs to that size alone. Reported: the graph build, the
first model call (builds the neighbour table) and the best of ``--repeat``
further calls, the time per site, and the peak RSS of the process (and its
increase over the RSS before the first model call). Then the time of one
training step (forward, field with create_graph, backward of an MSE loss on
E and B) on a 30 x 30 configuration.

    python benchmarks/bench_model.py                       # full table
    python benchmarks/bench_model.py --sizes 30 64 --lattices square
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HOP = {"square": {"t1": 1.0}, "triangular": {"t1": 1.0, "t3": -0.85}}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def worker(lattice: str, L: int, repeat: int, threads: int, dtype: str, train: bool) -> dict:
    import torch
    import ecnn_pyg
    from ecnn_pyg.runtime import keep_freed_memory
    keep_freed_memory()                 # as the command line does; ECNN_PYG_MALLOC=system opts out
    from ecnn_pyg.nn import ECNN
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dt = getattr(torch, dtype)
    t0 = time.perf_counter()
    data = ecnn_pyg.lattice_graph(lattice, L, HOP[lattice])
    t_graph = time.perf_counter() - t0
    model = ECNN(lattice=lattice).to(dt)
    spins = torch.nn.functional.normalize(torch.randn(data.num_nodes, 3, dtype=dt), dim=1)
    res = {"lattice": lattice, "L": L, "N": data.num_nodes, "graph_s": t_graph}
    if train:
        model.train()
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        ref = {"energy": torch.zeros(1, dtype=dt), "field": torch.zeros_like(spins)}

        def step():
            opt.zero_grad()
            out = model(data, spins)
            loss = (out["field"] - ref["field"]).pow(2).mean() + \
                (out["energy"] - ref["energy"]).pow(2).mean()
            loss.backward()
            opt.step()
        step()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        res["train_step_s"] = min(times)
        return res
    model.eval()
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    out = model(data, spins)
    res["first_s"] = time.perf_counter() - t0
    del out
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = model(data, spins)
        times.append(time.perf_counter() - t0)
        del out
    res["best_s"] = min(times)
    res["us_per_site"] = 1e6 * res["best_s"] / data.num_nodes
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["peak_over_start_mb"] = res["peak_rss_mb"] - rss0
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--lattices", nargs="+", default=["square", "triangular"])
    p.add_argument("--sizes", nargs="+", type=int, default=[30, 64, 128, 256, 384, 576])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--no-train", action="store_true", help="skip the training-step timing")
    p.add_argument("--worker", nargs=2, metavar=("LATTICE", "L"), help=argparse.SUPPRESS)
    p.add_argument("--train", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.repeat, args.threads,
                                args.dtype, args.train)))
        return

    def run(lattice, L, train=False):
        cmd = [sys.executable, __file__, "--worker", lattice, str(L), "--repeat",
               str(args.repeat), "--threads", str(args.threads), "--dtype", args.dtype]
        r = subprocess.run(cmd + (["--train"] if train else []), capture_output=True, text=True)
        if r.returncode:
            return {"lattice": lattice, "L": L, "error": (r.stderr.strip().splitlines() or
                                                          ["killed"])[-1]}
        return json.loads(r.stdout.strip().splitlines()[-1])

    print(f"ECNN (package default, {args.dtype}, {args.threads} threads): energy + field "
          "of one configuration")
    head = f"{'lattice':<11}{'L':>5}{'N':>9}{'graph s':>9}{'first s':>9}{'best s':>9}" \
           f"{'us/site':>9}{'peak RSS MB':>13}{'(+ model)':>11}"
    print(head)
    print("-" * len(head))
    for lattice in args.lattices:
        for L in args.sizes:
            r = run(lattice, L)
            if "error" in r:
                print(f"{lattice:<11}{L:>5}  failed: {r['error']}")
                continue
            print(f"{lattice:<11}{L:>5}{r['N']:>9}{r['graph_s']:>9.2f}{r['first_s']:>9.2f}"
                  f"{r['best_s']:>9.2f}{r['us_per_site']:>9.2f}{r['peak_rss_mb']:>13.0f}"
                  f"{r['peak_over_start_mb']:>11.0f}", flush=True)
    if not args.no_train:
        for lattice in args.lattices:
            r = run(lattice, 30, train=True)
            msg = r.get("error") or f"{r['train_step_s']:.3f} s"
            print(f"training step (forward, field with create_graph, backward, Adam) "
                  f"{lattice} 30x30: {msg}")


if __name__ == "__main__":
    main()
