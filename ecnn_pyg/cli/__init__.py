"""Command-line interface: ``ecnn-pyg <command> [options]``.

One module per command in this package, each with ``add_arguments(parser)``
and ``run(args)``; :data:`COMMANDS` registers them by name (as MACE's
``mace/cli``).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from ._common import positive_int

#: command name -> (module, one-line help)
COMMANDS = {
    "generate": ("ecnn_pyg.cli.generate", "generate an exact-diagonalization data set (HDF5)"),
    "ed": ("ecnn_pyg.cli.ed", "energy and effective field of given spin configurations by ED"),
    "lattices": ("ecnn_pyg.cli.lattices", "list or describe the built-in lattices"),
    "simulate": ("ecnn_pyg.cli.simulate", "run LLG spin dynamics with an ED or learned field"),
    "train": ("ecnn_pyg.cli.train", "train an ECNN (or the IFNN baseline) on an ED data set"),
    "evaluate": ("ecnn_pyg.cli.evaluate", "predict energies/fields with a trained model, or "
                 "score it on a data set"),
    "import-ecnn4klm": ("ecnn_pyg.cli.import_ecnn4klm", "import a published model of the "
                        "paper's code (param.cpt) as a package checkpoint"),
    "export": ("ecnn_pyg.cli.export", "export a trained model (weights and model card) to a "
               "folder, ready to load or ship"),
    "models": ("ecnn_pyg.cli.models", "list the shipped pretrained models and what they were "
               "trained on"),
    "learn": ("ecnn_pyg.cli.learn", "committee active learning: explore with the learned "
              "field, label where the committee disagrees, retrain (resumable)"),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``ecnn-pyg`` argument parser with one subcommand per :data:`COMMANDS` entry.

    Each subcommand's description is its module docstring; its ``run`` is
    stored as the ``_run`` default.

    Returns:
        The :class:`argparse.ArgumentParser`.
    """
    from .. import __version__
    parser = argparse.ArgumentParser(
        prog="ecnn-pyg",
        description="Equivariant neural networks for spin dynamics of itinerant magnets.")
    parser.add_argument("--version", action="version", version=f"ecnn_pyg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_, description=(mod.__doc__ or help_).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.add_argument("--threads", type=positive_int, metavar="N",
                       help="threads of torch and BLAS (default 1, or $ECNN_PYG_NUM_THREADS; "
                            "a config's num_threads sets torch's)")
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``ecnn-pyg``: parse the arguments and run the command.

    Bad input (:class:`ValueError`, :class:`FileNotFoundError`,
    :class:`KeyError` from the command) and a computation refused by the
    memory guard (:class:`~ecnn_pyg.runtime.InsufficientMemoryError`) are
    reported as one line on stderr, without a traceback.

    Args:
        argv: command-line arguments without the program name; default
            ``sys.argv[1:]``.

    Returns:
        The exit status: the command's (0 on success), 0 when no command is
        given (the help is printed), 2 for bad input.
    """
    from ..runtime import InsufficientMemoryError, default_threads, keep_freed_memory, \
        set_threads
    keep_freed_memory()     # the command line opts in (ECNN_PYG_MALLOC=system: off)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        threads = args.threads or default_threads()
        if threads is not None:
            set_threads(threads)        # before numpy and torch load: one thread by default
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError, KeyError, InsufficientMemoryError) as err:
        # bad input: one clear line, no traceback
        print(f"ecnn-pyg {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":       # python -m ecnn_pyg.cli
    sys.exit(main())
