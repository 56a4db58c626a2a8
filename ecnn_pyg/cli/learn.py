"""Committee active learning: explore with the learned field, label where the committee disagrees.

Round 0 labels the seed data (random configurations and/or ED-LLG snapshots) by exact
diagonalization and trains a committee of M networks. Every later round runs ML-LLG with
the committee's mean field (explore.drive: mean) or its members' fields in turn
(explore.drive: member) from the configured starts, fields and temperatures, scores
every snapshot by the members' disagreement sigma_B, labels the candidates (between the
lower and the upper trust level, at most max_per_round, spread over fields and starts)
exactly, and retrains the committee from its previous weights on all data. It stops when
the share of accurate snapshots reaches stop.accurate_share, when no candidate is left,
or after stop.max_rounds rounds. Each round writes report.json and report.md; the run
directory's summary.md has one row per round (docs/active_learning.md).

Resumable: kill it anywhere and rerun the same command; a finished stage is never redone,
an interrupted one continues (data sets sample by sample, trajectories from their last
save, training from the last epoch). One loop per run directory (lock file learn.lock).

Example:
    ecnn-pyg learn --config configs/triangular_learn.yaml
    ecnn-pyg learn --config configs/triangular_learn.yaml --rounds 5        # more rounds
    ecnn-pyg learn --config configs/triangular_learn.yaml --until 1/label   # stop after a stage
    ecnn-pyg learn --config configs/triangular_learn.yaml --status
"""
import sys

from ..config import parse_overrides
from ._common import positive_int


def add_arguments(parser):
    """Add the options of ``ecnn-pyg learn`` to ``parser``.

    Args:
        parser: the :class:`argparse.ArgumentParser` of the subcommand.
    """
    parser.add_argument("--config", required=True,
                        help="YAML config (keys: see configs/triangular_learn.yaml)")
    parser.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config keys, values parsed as YAML; a dotted key sets "
                             "a key of a section (select.lower=0.01)")
    parser.add_argument("--rounds", type=positive_int, metavar="N",
                        help="stop after round N at the latest (stop.max_rounds)")
    parser.add_argument("--until", metavar="STAGE",
                        help="stop after this stage: seed, explore, score, select, label, "
                             "train or report (its next run), or ROUND/STAGE (1/label)")
    parser.add_argument("--status", action="store_true",
                        help="show which stages of the run directory are done, and the "
                             "summary; runs nothing")
    parser.add_argument("--progress", action="store_true",
                        help="progress bars of the data sets, trajectories and training")


def run(args):
    """Run (or continue) the loop of the config, or show its status.

    Args:
        args: the parsed :class:`argparse.Namespace` of :func:`add_arguments`.

    Returns:
        0 on success, 1 if the run directory is locked by another loop or an
        output cannot be written, 130 if interrupted (Ctrl-C or SIGTERM).

    Raises:
        ValueError: if the config is invalid or differs from the run's.
    """
    from ..learn import learn, status
    from ..locking import OutputLockedError, OutputWriteError
    overrides = parse_overrides(args.set)
    if args.status:
        print(status(args.config, overrides))
        return 0
    try:
        learn(args.config, overrides, rounds=args.rounds, until=args.until,
              progress=args.progress)
    except KeyboardInterrupt:
        from .generate import rerun_command
        print("interrupted; every finished stage is kept, continue with: "
              + rerun_command("learn", args))
        return 130
    except (OutputLockedError, OutputWriteError) as err:
        print(f"ecnn-pyg learn: error: {err}", file=sys.stderr)
        return 1
    return 0
