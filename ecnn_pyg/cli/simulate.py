"""Run stochastic LLG dynamics (a trajectory or a sweep over fields/temperatures).

The field comes from exact diagonalization (source: ed) or a trained model
(source: model). Snapshots, magnetization, topological charge Q and the
energy (total, electronic, Zeeman) go to an HDF5 file; resumable: rerun the
same command to continue, or raise n_steps to extend the runs.

Units: hbar = 1; energies, fields, H_z and temperatures in units of the
nearest-neighbour hopping t1; time and dt in units of hbar/t1 = 1/t1.
A dt far beyond the step suggested by the initial field is warned about.

A model runs only on the Hamiltonian of its training data (lattice, hoppings,
and J, mu, filling if given): anything else is refused unless the config sets
allow_hamiltonian_mismatch: true. n_sk (skyrmions per magnetic cell) is
printed where the magnetic cell is known (sites_per_magnetic_cell, or the model
card's: 48 for triangular-paper); Q always. With a committee model
(ecnn-pyg train --committee M) every snapshot also records its uncertainty
sigma_B (sigma_mean, sigma_max), and the first one above the committee's
upper trust level (trust_upper overrides it) is warned about
(docs/committee.md).

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
    parser.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config keys, values parsed as YAML")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--ignore-memory-check", action="store_true",
                        help="run even if the estimated memory exceeds what the machine has "
                             "available (config key ignore_memory_check)")


def _device_of(config, overrides):
    """The config's ``device`` (chooses the backend of the process group under torchrun)."""
    from .. import distributed
    if not distributed.launched():
        return None
    from ..config import load_config
    from ..simulate import DEFAULT_CONFIG, SIMULATE_SCHEMA
    return load_config(config if config is not None else DEFAULT_CONFIG, SIMULATE_SCHEMA,
                       overrides)["device"]


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
    from ..simulate import magnetic_cell_of, read_runs, simulate
    overrides = parse_overrides(args.set)
    if args.ignore_memory_check:
        overrides["ignore_memory_check"] = True
    from ..locking import OutputLockedError, OutputWriteError
    from .generate import rerun_command
    from .. import distributed
    try:
        # under torchrun: one rank of several (rank 0 writes); NCCL for a CUDA device
        with distributed.session(device=_device_of(args.config, overrides)):
            main_rank = distributed.is_main()
            path = simulate(args.config, overrides, progress=not args.quiet)
        if not main_rank:
            return 0
    except KeyboardInterrupt:
        print("interrupted; the runs are saved every save_every steps, resume with: "
              + rerun_command("simulate", args))
        return 130
    except (OutputLockedError, OutputWriteError, distributed.DistributedError) as err:
        print(f"ecnn-pyg simulate: error: {err}", file=sys.stderr)
        return 1
    print(f"trajectories: {path.resolve()}")
    cell = magnetic_cell_of(path)
    for r in read_runs(path):
        m = r["magnetization"][-1]
        n_sites = r["spin"].shape[1]
        q = r["charge"][-1]
        e = r.get("energy")
        print(f"  {r['name']}: H_z={r['zeeman']:g} T={r['temperature']:g} steps={r['step']} "
              f"snapshots={len(r['time'])} M=({m[0]:+.4f}, {m[1]:+.4f}, {m[2]:+.4f}) "
              f"Q={q:+.3f}" + (f" n_sk={q * cell / n_sites:+.2f}" if cell else "")
              + (f" E/N={e[-1] / n_sites:+.6f}" if e is not None else "")
              + (f" sigma_max={r['sigma_max'][-1]:.3g} (largest {max(r['sigma_max']):.3g})"
                 if len(r.get("sigma_max", ())) else ""))
    pictures = sorted(path.parent.glob(f"{path.stem}_*.png"))
    if pictures:
        print("pictures: " + ", ".join(str(p) for p in pictures))
    return 0
