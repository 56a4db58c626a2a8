"""ED cost per configuration against lattice size, beside the bare LAPACK call.

For each size: the time of ``KondoED.energy_field`` on one random configuration
(matrix build, occupied eigenpairs, field) and, on the same matrix, the bare
``scipy.linalg.eigh(driver="evr")`` call for all eigenpairs (and numpy's eigh
for reference at the largest square size). Best of --repeat runs.

    python benchmarks/bench_ed.py            # full table (~3 minutes on 2 cores)
    python benchmarks/bench_ed.py --quick    # two sizes per lattice
"""
import argparse
import time

import numpy as np
import scipy.linalg

import ecnn_pyg as ep
from ecnn_pyg.ed import KondoED
from ecnn_pyg.spins import random_spins


def best(fn, repeat):
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--numpy", action="store_true", help="also time numpy.linalg.eigh")
    args = p.parse_args()
    from ecnn_pyg.runtime import keep_freed_memory
    keep_freed_memory()                 # as the command line does; ECNN_PYG_MALLOC=system opts out
    square = [12, 30] if args.quick else [12, 16, 20, 24, 30]
    tri = [12, 36] if args.quick else [12, 18, 24, 30, 36]
    cases = [("square", L, {"t1": 1.0}, dict(J=7.0, filling=0.48)) for L in square] + \
            [("triangular", L, {"t1": 1.0, "t3": -0.85}, dict(J=-1.0, mu=-3.5)) for L in tri]
    rng = np.random.default_rng(0)
    print(f"{'lattice':>10s} {'L':>4s} {'N':>6s} {'matrix':>7s} {'ED E+B [s]':>11s} "
          f"{'bare evr [s]':>12s} {'ratio':>6s}" + (f" {'numpy [s]':>10s}" if args.numpy else ""))
    for name, L, hop, kw in cases:
        g = ep.lattice_graph(name, L, hop)
        if "filling" in kw:
            kw = dict(J=kw["J"], electrons=int(round(kw["filling"] * 2 * g.num_nodes)))
        ed = KondoED(g, **kw)
        s = random_spins(g.num_nodes, generator=rng)
        h = ed.hamiltonian(s)
        t_ed = best(lambda: ed.energy_field(s), args.repeat)
        t_bare = best(lambda: scipy.linalg.eigh(h.copy(), driver="evr", check_finite=False,
                                                 overwrite_a=True), args.repeat)
        line = (f"{name:>10s} {L:>4d} {g.num_nodes:>6d} {2 * g.num_nodes:>7d} {t_ed:>11.3f} "
                f"{t_bare:>12.3f} {t_ed / t_bare:>6.2f}")
        if args.numpy:
            line += f" {best(lambda: np.linalg.eigh(h), 1):>10.3f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
