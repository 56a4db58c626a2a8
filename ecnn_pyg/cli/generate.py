"""Generate an exact-diagonalization data set (HDF5).

Samples spin configurations, computes their exact energy and effective field
and appends them to the output file. Resumable: rerun the same command after
an interruption (Ctrl-C, a kill, a full disk) and it continues where it
stopped; damaged samples of the file are recomputed. One writer per file: a
second run on the same output is refused (lock file OUTPUT.lock).

Without --config the built-in default runs: a 12 x 12 square lattice
(t1 = 1, J = 7, 138 electrons), 20 training + 10 validation configurations,
written to data/square_12x12.h5.

Example:
    ecnn-pyg generate --config configs/square_generate.yaml
    ecnn-pyg generate --config configs/square_generate.yaml --set output=data/x.h5 seed=3
    torchrun --nproc-per-node 4 -m ecnn_pyg.cli generate --config configs/square_generate.yaml
"""
import shlex
import sys

from ..config import parse_overrides


def add_arguments(parser):
    """Add the options of ``ecnn-pyg generate`` to ``parser``.

    Args:
        parser: the :class:`argparse.ArgumentParser` of the subcommand.
    """
    parser.add_argument("--config", help="YAML config (keys: see configs/square_generate.yaml)")
    parser.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config keys, values parsed as YAML")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--ignore-memory-check", action="store_true",
                        help="label even if one exact diagonalization needs more memory than is "
                             "available (config key ignore_memory_check)")


def run(args):
    """Generate (or resume) the data set of the config and print a summary of it.

    Args:
        args: the parsed :class:`argparse.Namespace` of :func:`add_arguments`.

    Returns:
        0 on success, 1 if the output is locked by another writer or cannot be
        written (a full disk), 130 if interrupted (Ctrl-C or SIGTERM).

    Raises:
        ValueError: if the config is invalid or the output file was made with
            other settings.
    """
    from ..generate import describe, generate
    from ..distributed import DistributedError, is_main, session
    from ..locking import OutputLockedError, OutputWriteError
    try:
        with session():     # under torchrun: ranks label round-robin, rank 0 writes
            overrides = parse_overrides(args.set)
            if args.ignore_memory_check:
                overrides["ignore_memory_check"] = True
            path = generate(args.config, overrides, progress=not args.quiet)
            if not is_main():
                return 0
    except KeyboardInterrupt:
        print("interrupted; the samples written so far are kept, resume with: "
              + rerun_command("generate", args))
        return 130
    except (OutputLockedError, OutputWriteError, DistributedError) as err:
        print(f"ecnn-pyg generate: error: {err}", file=sys.stderr)
        return 1
    print(describe(path))
    return 0


def rerun_command(command: str, args) -> str:
    """The command line that continues an interrupted run (same config and overrides).

    Args:
        command: the subcommand (``generate``, ``simulate``).
        args: its parsed :class:`argparse.Namespace` (``config``, ``set``).

    Returns:
        ``ecnn-pyg COMMAND [--config FILE] [--set KEY=VALUE ...]``, shell-quoted.
    """
    words = ["ecnn-pyg", command]
    if args.config:
        words += ["--config", args.config]
    if args.set:
        words += ["--set", *args.set]
    return " ".join(shlex.quote(w) for w in words)
