"""Exact transition fields of the triangular model from every crystal priced so far.

Reads the tables printed by exact_crystals.py and random_minima.py (column E/N (96)) and
model_crystals.py (column E_ED/N), keeps per field and per |n_sk|
the lowest exact energy (the 96 x 96 lattice, twisted-boundary ED), and reports where the
lowest n_sk = 2, 1 and 0 states cross (linear interpolation between fields). An upper
bound in the sense that a lower state not yet found could move the crossings.

    python experiments/triangular_fig4/exact_transitions.py runs/triangular/exact_crystals.txt \\
        runs/triangular/active*.txt runs/triangular/model_crystals_*.txt
"""
from __future__ import annotations

import argparse
import collections
import re

NUM = r"([-+]?[0-9.]+(?:e[-+]?[0-9]+)?)"


def read(path):
    """Rows (H_z, n_sk, exact E/N) of one table."""
    rows = []
    model_table = "E_ED/N" in open(path).readline()
    for line in open(path):
        if "," in line:                               # drop the "lowest (NN, ED)" tail
            line = line.split(",")[0].rsplit(None, 1)[0]
        f = line.split()
        if len(f) < 6 or not re.fullmatch(NUM, f[0]):
            continue
        nums = [x for x in f if re.fullmatch(NUM, x)]
        if model_table:        # model table: ... n_sk M_z E_NN E_ED diff
            rows.append((float(nums[0]), float(nums[-5]), float(nums[-2])))
        else:                                         # exact table: ... n_sk M_z torque E36 E96
            rows.append((float(nums[0]), float(nums[-5]), float(nums[-1])))
    return rows


def crossings(best, pairs=((2, 1), (1, 0))):
    """``(lo, hi, H_z)`` for each field interval where the lowest energy of class ``hi`` falls
    below that of class ``lo`` (``best[H_z][|n_sk|]``: the lowest energy per class), the
    crossing interpolated linearly between the two fields."""
    fields = sorted(best)
    out = []
    for lo, hi in pairs:
        for h0, h1 in zip(fields, fields[1:]):
            if all(k in best[h] for k in (lo, hi) for h in (h0, h1)):
                d0, d1 = best[h0][hi] - best[h0][lo], best[h1][hi] - best[h1][lo]
                if d0 > 0 >= d1:
                    out.append((lo, hi, h0 + (h1 - h0) * d0 / (d0 - d1)))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("tables", nargs="+")
    a = p.parse_args(argv)
    best = collections.defaultdict(dict)
    for path in a.tables:
        for h, q, e in read(path):
            n = round(abs(q))
            if e < best[h].get(n, float("inf")):
                best[h][n] = e
    fields = sorted(best)
    print(f"{'H_z':>7} " + " ".join(f"{'n_sk=' + str(n):>11}" for n in (2, 1, 0)) + "  lowest")
    for h in fields:
        cols = [f"{best[h][n]:11.7f}" if n in best[h] else f"{'-':>11}" for n in (2, 1, 0)]
        print(f"{h:7.4f} " + " ".join(cols) + f"  {min(best[h], key=best[h].get)}")
    for lo, hi, h in crossings(best):
        print(f"|n_sk| {lo} -> {hi}: exact energies cross at H_z = {h:.5f}")


if __name__ == "__main__":
    main()
