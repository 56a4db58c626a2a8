"""The learned dynamics' end state beside the exact relaxation of the same start (honeycomb, 12 x 12).

Reads the ML-LLG runs of experiments/honeycomb_learn (03_ml_llg_anneal.yaml from random spins
at T = 0.002, then 04_ml_llg_quench.yaml at T = 0, with the final committee of the learn
loop) and compares, on the 12 x 12 cell (288 sites):

* **ML-LLG end state**: the last state of the quench;
* **its exact relaxation**: L-BFGS on the exact energy from that state (how far it is from an
  exact minimum: energy change and largest spin change);
* **exact relaxation of the same start**: L-BFGS on the exact energy from the random spins
  the ML-LLG started from (experiments/triangular_fig4/exact_crystals.py's ``relax``);
* **ideal tetrahedral**: the exact ground state (exact_relaxations.py), tiled on 12 x 12.

For each: the exact energy per site on the 48 x 48 lattice (twisted boundaries), the largest
exact torque |S x B|, the net scalar chirality chi per sublattice triangle and its mean
modulus (tetrahedral: 4 / 3 sqrt 3 = 0.770), the eigenvalues of <S_a S_b> (tetrahedral:
1/3 each), the structure-factor weight at the three M points (tetrahedral: 1/3 each, sum 1)
and, with the committee, its energy per site, RMSE(B) against the exact field and largest
sigma_B. The table goes to standard output, the picture to --figure:

    OMP_NUM_THREADS=1 python experiments/honeycomb_learn/compare.py > runs/honeycomb_learn/compare.txt

A few minutes on one core (the exact relaxations on 288 sites).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def _exp():
    sys.path.insert(0, str(HERE))
    import exact_relaxations
    return exact_relaxations


def m_weight(spins: np.ndarray, L: int) -> float:
    """Structure-factor weight at the three M points, averaged over both sublattices (max 1)."""
    exp = _exp()
    peaks = exp.sq_peaks(spins, L, min_weight=0.0)
    return sum(w for _, k1, k2, w in peaks
               if (k1, k2) in ((0.5, 0.0), (0.0, 0.5), (0.5, 0.5))) / 2


def committee_numbers(committee, graph, spins: np.ndarray, exact_field: np.ndarray):
    """The committee's energy per site, RMSE(B) against the exact field, largest sigma_B."""
    from ecnn_pyg.committee import committee_field_stats
    p = next(committee.parameters())
    s = torch.from_numpy(spins).to(p.dtype)
    stats = committee_field_stats(committee, graph, s)
    with torch.no_grad():
        e = committee(graph, s, compute_field=False, training=False)["energy"]
    rmse = float(np.sqrt(((stats["field"].double().numpy() - exact_field) ** 2).mean()))
    return float(e.sum()) / len(spins), rmse, float(stats["sigma_max"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--anneal", default="runs/honeycomb_learn/ml_llg_anneal.h5",
                   help="ML-LLG file whose first snapshot is the random start")
    p.add_argument("--quench", default="runs/honeycomb_learn/ml_llg_quench.h5",
                   help="ML-LLG file whose last state is the learned end state")
    p.add_argument("--committee", default="runs/honeycomb_learn/committee.pt")
    p.add_argument("--relax-twists", type=int, default=1,
                   help="relax on the 12m x 12m lattice (twisted boundaries)")
    p.add_argument("--price-twists", type=int, default=4, help="price on the 12m x 12m lattice")
    p.add_argument("--maxiter", type=int, default=1500)
    p.add_argument("--figure", default="runs/honeycomb_learn/compare.png")
    a = p.parse_args(argv)
    import ecnn_pyg as ep
    from ecnn_pyg.ed import KondoED
    from ecnn_pyg.pretrained import load_model
    from ecnn_pyg.runtime import set_threads
    from ecnn_pyg.simulate import read_runs
    set_threads(1)
    exp = _exp()
    relax = exp._relax_fn()
    t0 = time.time()
    start = read_runs(a.anneal)[0]["spin"][0].astype(np.float64)
    ml = read_runs(a.quench)[0]["spin"][-1].astype(np.float64)
    start, ml = exp._unit(start), exp._unit(ml)
    L = int(round(np.sqrt(len(ml) / 2)))
    g = ep.lattice_graph("honeycomb", L, exp.HOPPINGS)
    ed_r = KondoED(g, J=exp.J, mu=exp.MU, twists=a.relax_twists)
    ed_p = KondoED(g, J=exp.J, mu=exp.MU, twists=a.price_twists)
    ml_relaxed, it_ml = relax(ed_r.energy_field, ml, 0.0, maxiter=a.maxiter)
    exact, it_ex = relax(ed_r.energy_field, start, 0.0, maxiter=a.maxiter)
    states = {"random start": start, "ML-LLG end state": ml,
              "ML-LLG end, exactly relaxed": ml_relaxed,
              "exact relaxation of the start": exact, "ideal tetrahedral": exp.tetrahedral(L)}
    committee = load_model(a.committee).eval()
    rl, pl = L * a.relax_twists, L * a.price_twists
    print(f"# honeycomb Kondo lattice, t1 = 1, J = {exp.J}, mu = {exp.MU}; {L} x {L} cell "
          f"({len(ml)} sites); exact E/N on {pl} x {pl}, torque and field on {rl} x {rl}")
    print(f"# committee: {a.committee}; L-BFGS iterations: ML end state {it_ml}, "
          f"random start {it_ex}")
    print("# chi: net scalar chirality per sublattice triangle; M: S(q) weight at the three "
          "M points; nematic: eigenvalues of <S_a S_b>; E_ML/N, RMSE(B), sigma_max: committee")
    print(f"{'state':<31} {'E/N exact':>11} {'torque':>8} {'chi':>7} {'|chi|':>6} {'M':>5} "
          f"{'nematic':>15} {'E_ML/N':>10} {'RMSE(B)':>8} {'sigma_max':>9}")
    rows = {}
    for name, s in states.items():
        e = float(ed_p.energy(s)) / len(s)
        _, b = ed_r.energy_field(s)
        torque = float(np.linalg.norm(np.cross(s, b), axis=-1).max())
        chi, chi_abs = exp.chirality(s, L)
        nem = exp.nematic_eigenvalues(s)
        e_ml, rmse, sig = committee_numbers(committee, g, s, b)
        rows[name] = dict(e=e, chi=chi, chi_abs=chi_abs, m=m_weight(s, L))
        print(f"{name:<31} {e:11.7f} {torque:8.1e} {chi:+7.3f} {chi_abs:6.3f} "
              f"{rows[name]['m']:5.2f} {' '.join(f'{x:.2f}' for x in nem):>15} {e_ml:10.6f} "
              f"{rmse:8.5f} {sig:9.5f}")
    dev = float(np.linalg.norm(ml_relaxed - ml, axis=-1).max())
    print(f"# exact relaxation of the ML-LLG end state: E/N changes by "
          f"{rows['ML-LLG end, exactly relaxed']['e'] - rows['ML-LLG end state']['e']:+.2e}, "
          f"largest spin change {dev:.3f}")
    gap = rows["ML-LLG end state"]["e"] - rows["ideal tetrahedral"]["e"]
    print(f"# ML-LLG end state above the exact ground state by {gap:.2e} per site")
    print(f"# [{time.time() - t0:.0f} s]")
    picture(states, rows, g, L, a.figure)


def picture(states, rows, graph, L, path):
    """ML-LLG end state and exact relaxation of the same start: textures, chirality, spins on the sphere."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.tri import Triangulation
    from ecnn_pyg.observables import scalar_chirality
    from ecnn_pyg.plot import spin_texture
    exp = _exp()
    shown = ["ML-LLG end state", "exact relaxation of the start"]
    fig = Figure(figsize=(12, 15))
    FigureCanvasAgg(fig)
    for j, name in enumerate(shown):
        s = exp.display_rotation(states[name])
        r = rows[name]
        ax = fig.add_subplot(3, 2, 1 + j)
        spin_texture(s, graph, ax=ax, title=f"{name}\nexact E/N = {r['e']:.5f}, chi = "
                                            f"{r['chi']:+.3f}\n|chi| = {r['chi_abs']:.3f}, "
                                            f"M-point weight {r['m']:.2f}")
        axc = fig.add_subplot(3, 2, 3 + j)
        chi = scalar_chirality(s, exp.sublattice_triangles(L), per="site")
        pos = graph.pos.numpy()
        im = axc.tripcolor(Triangulation(pos[:, 0], pos[:, 1]), chi, cmap="RdBu_r",
                           vmin=-0.77, vmax=0.77, shading="gouraud")
        fig.colorbar(im, ax=axc, label="chirality per site", shrink=0.8)
        axc.set_aspect("equal")
        axc.set_title("scalar chirality (tetrahedral domains: +-0.770)")
        ax3 = fig.add_subplot(3, 2, 5 + j, projection="3d")
        cols = np.where(np.arange(len(s)) % 2 == 0, "tab:blue", "tab:orange")
        ax3.scatter(s[:, 0], s[:, 1], s[:, 2], c=cols, s=6, alpha=0.6)
        ax3.set_xlim(-1, 1)
        ax3.set_ylim(-1, 1)
        ax3.set_zlim(-1, 1)
        ax3.set_title("its spins on the unit sphere\n(blue A, orange B; rotated globally)")
    fig.suptitle(f"honeycomb Kondo lattice, {L} x {L} cells: learned dynamics (left) and exact "
                 f"relaxation (right) from the same random spins\nexact ground state "
                 f"(tetrahedral): E/N = {rows['ideal tetrahedral']['e']:.5f}, |chi| = 0.770, "
                 f"M-point weight 1")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    main()
