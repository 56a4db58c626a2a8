"""Run stochastic LLG dynamics (a trajectory or a sweep over fields/temperatures).

The field comes from exact diagonalization (source: ed) or a trained model
(source: model). Snapshots, magnetization and topological charge go to an
HDF5 file; resumable: rerun the same command to continue, or raise n_steps
to extend the runs.

Example:
    ecnn-pyg simulate --config configs/triangular_ed_llg.yaml
    ecnn-pyg simulate --config configs/triangular_ed_llg.yaml --set n_steps=2000
"""
from ..config import parse_overrides


def add_arguments(parser):
    parser.add_argument("--config", required=True, help="YAML config (keys: ecnn_pyg.simulate)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override config keys, values parsed as YAML")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
    from ..simulate import read_runs, simulate
    path = simulate(args.config, parse_overrides(args.set), progress=not args.quiet)
    print(f"trajectories: {path.resolve()}")
    for r in read_runs(path):
        m = r["magnetization"][-1]
        print(f"  {r['name']}: H_z={r['zeeman']:g} T={r['temperature']:g} steps={r['step']} "
              f"snapshots={len(r['time'])} M=({m[0]:+.4f}, {m[1]:+.4f}, {m[2]:+.4f}) "
              f"Q={r['charge'][-1]:+.3f}")
    return 0
