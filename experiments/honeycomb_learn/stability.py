"""Is the exact ground state a minimum of the learned field? T = 0 ML-LLG from the kicked tetrahedral state.

The ideal tetrahedral state on 12 x 12 cells plus Gaussian noise (0.1 per component,
renormalised) is run with a committee's mean field (SIB, dt 2, alpha 1, T = 0); every 150
steps the net and mean-modulus scalar chirality per sublattice triangle and the eigenvalues
of <S_a S_b> are printed (tetrahedral: chi = +-0.770, eigenvalues 1/3 each). With the exact
field this start relaxes back (exact_relaxations.py: the kicked tetrahedral state returns);
a committee whose field lacks the minimum lets it decay. The end state is priced exactly.

    OMP_NUM_THREADS=1 python experiments/honeycomb_learn/stability.py \\
        --committee runs/honeycomb_learn/committee.pt > runs/honeycomb_learn/stability.txt

About 2-4 min on one core.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--committee", default="runs/honeycomb_learn/committee.pt")
    p.add_argument("--size", type=int, default=12, help="L x L cells (even)")
    p.add_argument("--kick", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--every", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import exact_relaxations as ex
    import ecnn_pyg as ep
    from ecnn_pyg.dynamics import SIB, SpinSystem, model_field_source
    from ecnn_pyg.ed import KondoED
    from ecnn_pyg.pretrained import load_model
    from ecnn_pyg.runtime import set_threads
    set_threads(1)
    t0 = time.time()
    L = a.size
    committee = load_model(a.committee).eval()
    g = ep.lattice_graph("honeycomb", L, ex.HOPPINGS)
    rng = np.random.default_rng(a.seed)
    start = ex._unit(ex.tetrahedral(L) + a.kick * rng.normal(size=(2 * L * L, 3)))
    system = SpinSystem(model_field_source(committee, g))
    s = torch.from_numpy(start).to(next(committee.parameters()).dtype)
    print(f"# committee {a.committee}; {L} x {L} cells; tetrahedral + noise {a.kick}; "
          "T = 0 ML-LLG (SIB, dt 2, alpha 1)")
    print(f"{'step':>6} {'chi':>7} {'|chi|':>6} {'nematic':>17}")

    def row(step, spins):
        chi, chi_abs = ex.chirality(spins, L)
        nem = " ".join(f"{x:.3f}" for x in ex.nematic_eigenvalues(spins))
        print(f"{step:6d} {chi:+7.3f} {chi_abs:6.3f} {nem:>17}", flush=True)

    row(0, start)
    done = 0
    end = start
    while done < a.steps:
        n = min(a.every, a.steps - done)
        s = SIB(dt=2.0, alpha=1.0).run(s, system, n)
        done += n
        end = ex._unit(s.double().numpy())
        row(done, end)
    ed = KondoED(g, J=ex.J, mu=ex.MU, twists=4)
    n_sites = len(end)
    print(f"# exact E/N (48 x 48): start {ed.energy(start) / n_sites:.6f}, end "
          f"{ed.energy(end) / n_sites:.6f}, ideal tetrahedral "
          f"{ed.energy(ex.tetrahedral(L)) / n_sites:.6f}")
    print(f"# [{time.time() - t0:.0f} s]")


if __name__ == "__main__":
    main()
