"""Run stochastic LLG dynamics (a trajectory or a sweep over fields/temperatures).

The field comes from exact diagonalization (source: ed) or a trained model
(source: model). Snapshots, magnetization and topological charge go to an
HDF5 file; resumable: rerun the same command to continue, or raise n_steps
to extend the runs.

Without --config the built-in default runs: T = 0 ML-LLG with the shipped
triangular model (``triangular-paper``) on 48 x 48 at H_z = 0.006 from random
spins, ending in the skyrmion crystal; writes runs/skyrmion_crystal.h5 and the
picture runs/skyrmion_crystal_run_000.png.

Example:
    ecnn-pyg simulate
    ecnn-pyg simulate --config configs/triangular_sweep.yaml
    ecnn-pyg simulate --config configs/triangular_ed_llg.yaml
    ecnn-pyg simulate --config configs/triangular_ed_llg.yaml --set n_steps=2000
"""
import sys

from ..config import parse_overrides


def add_arguments(parser):
    """Add the options of ``ecnn-pyg simulate`` to ``parser``.

    Args:
        parser: the :class:`argparse.ArgumentParser` of the subcommand.
    """
    parser.add_argument("--config", help="YAML config (keys: ecnn_pyg.simulate); default: a "
                        "skyrmion-crystal run with the shipped triangular model")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override config keys, values parsed as YAML")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
    """Run (or resume) the simulations of the config and print a summary of each run.

    Args:
        args: the parsed :class:`argparse.Namespace` of :func:`add_arguments`.

    Returns:
        0 on success, 1 if the output is locked by another writer or cannot be
        written (a full disk), 130 if interrupted (Ctrl-C or SIGTERM).

    Raises:
        ValueError: if the config is invalid or the output file was made with
            other settings.
    """
    from ..simulate import read_runs, simulate
    from ..locking import OutputLockedError, OutputWriteError
    from .generate import rerun_command
    try:
        path = simulate(args.config, parse_overrides(args.set), progress=not args.quiet)
    except KeyboardInterrupt:
        print("interrupted; the runs are saved every save_every steps, resume with: "
              + rerun_command("simulate", args))
        return 130
    except (OutputLockedError, OutputWriteError) as err:
        print(f"ecnn-pyg simulate: error: {err}", file=sys.stderr)
        return 1
    print(f"trajectories: {path.resolve()}")
    import h5py
    import yaml
    with h5py.File(path, "r", locking=False) as f:
        cell = yaml.safe_load(f.attrs["config"]).get("sites_per_magnetic_cell", 48)
    for r in read_runs(path):
        m = r["magnetization"][-1]
        n_sites = r["spin"].shape[1]
        print(f"  {r['name']}: H_z={r['zeeman']:g} T={r['temperature']:g} steps={r['step']} "
              f"snapshots={len(r['time'])} M=({m[0]:+.4f}, {m[1]:+.4f}, {m[2]:+.4f}) "
              f"Q={r['charge'][-1]:+.3f} n_sk={r['charge'][-1] * cell / n_sites:+.2f}")
    pictures = sorted(path.parent.glob(f"{path.stem}_*.png"))
    if pictures:
        print("pictures: " + ", ".join(str(p) for p in pictures))
    return 0
