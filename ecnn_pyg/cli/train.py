"""Train an ECNN (or the IFNN baseline) on an ED data set.

Writes the run directory given by the config's run_dir: config.yaml, log.csv
(one row per epoch), learning_curve.png, best.pt and last.pt. An interrupted
run (Ctrl-C, SIGTERM, a crash) loses at most the epoch in flight: rerun the
same command with --resume to continue it exactly.

With --committee M (or the config key committee: M) it trains a committee
of M models that differ only in their seed (seed, seed + 1, ...), one after
the other, in run_dir/member_<m>/, and writes run_dir/committee.pt: their
mean field and its uncertainty (docs/committee.md). Under torchrun the
members are spread over the ranks (rank r trains members r, r + P, ...),
each alone, and the committee is the one a single process trains. Rerun
the same command after an interruption: finished members are kept, the
interrupted ones resume.

Example:
    ecnn-pyg train --config configs/square_train.yaml
    ecnn-pyg train --config configs/square_train.yaml --set batch_size=4 lr=0.003
    ecnn-pyg train --config configs/square_train.yaml --set model_config.channels=16
    ecnn-pyg train --config configs/square_train.yaml --resume --set max_epochs=3000
    ecnn-pyg train --resume --set run_dir=runs/square_ecnn
    torchrun --nproc-per-node 4 -m ecnn_pyg.cli train --config configs/square_train.yaml
    ecnn-pyg train --config configs/square_train.yaml --committee 4 --set run_dir=runs/sq_c4
    torchrun --nproc-per-node 2 -m ecnn_pyg.cli train --config configs/square_train.yaml \
        --committee 4 --set run_dir=runs/sq_c4
"""
from ..config import parse_overrides


def add_arguments(parser):
    """Add the options of ``ecnn-pyg train`` to ``parser``.

    Args:
        parser: the :class:`argparse.ArgumentParser` of the subcommand.
    """
    parser.add_argument("--config", help="YAML training config (keys: see "
                                         "configs/square_train.yaml); optional with --resume")
    parser.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config keys (values parsed as YAML); "
                             "model_config.KEY=VALUE sets one model key")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in run_dir from its last.pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--committee", type=_committee_size, metavar="M",
                        help="train a committee of M >= 2 models (seeds seed .. seed+M-1) into "
                             "run_dir/member_<m>/ and write run_dir/committee.pt; rerun to "
                             "continue an interrupted one")


def _committee_size(text):
    import argparse
    try:
        m = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer M >= 2, got {text!r}") from None
    if m < 2:
        raise argparse.ArgumentTypeError(f"a committee needs M >= 2 members, got {m}")
    return m


def run(args):
    """Train (or, with ``--resume``, continue) the run of the config.

    Args:
        args: the parsed :class:`argparse.Namespace` of :func:`add_arguments`.

    Returns:
        0 on success, 1 if the loss or the weights became non-finite (the
        last good checkpoints are kept), another run holds the run
        directory or (under torchrun) another rank stopped, 130 if
        interrupted (Ctrl-C or SIGTERM).

    Raises:
        ValueError: if neither ``--config`` nor ``--resume`` is given, or the
            config is invalid.
    """
    import sys
    from ..datasets import terminate_as_interrupt
    from ..locking import OutputLockedError
    from ..training import Trainer
    from ..training.trainer import TrainingDivergedError
    overrides = parse_overrides(args.set)
    if args.quiet:
        overrides["progress"] = False
    if args.config is None and not args.resume:
        raise ValueError("give --config FILE.yaml (or --resume with run_dir)")
    members = getattr(args, "committee", None)
    if members is None and args.config is not None:
        from ..training.schema import load_train_config
        members = load_train_config(args.config, overrides).get("committee")
    if members is not None:
        return _run_committee(args, overrides, members)
    from ..distributed import DistributedError, session
    with session():     # under torchrun: the ranks' process group (none in one process)
        trainer = Trainer(args.config, overrides, resume=args.resume)
        with terminate_as_interrupt():
            try:
                trainer.run()
            except KeyboardInterrupt:
                print(f"interrupted during epoch {trainer.epoch + 1}; resume with: ecnn-pyg "
                      f"train --resume --set run_dir={trainer.run_dir}")
                return 130
            except (TrainingDivergedError, OutputLockedError, DistributedError) as err:
                print(f"ecnn-pyg train: error: {err}", file=sys.stderr)
                return 1
    return 0


def _run_committee(args, overrides, members):
    """Train (or continue) a committee of ``members`` models; 130 if interrupted."""
    import sys
    from ..committee import train_committee
    from ..datasets import terminate_as_interrupt
    from ..locking import OutputLockedError
    from ..training.trainer import TrainingDivergedError
    from ..distributed import DistributedError, is_main, session
    if args.config is None:
        raise ValueError("--committee needs --config FILE.yaml (rerunning the same command "
                         "continues an interrupted committee)")
    overrides.pop("committee", None)
    with session(), terminate_as_interrupt():   # under torchrun: members spread over the ranks
        try:
            path = train_committee(args.config, overrides, members=members, resume=True)
        except KeyboardInterrupt:
            print("interrupted; finished members are kept: rerun the same command to continue")
            return 130
        except (TrainingDivergedError, OutputLockedError, DistributedError) as err:
            print(f"ecnn-pyg train: error: {err}", file=sys.stderr)
            return 1
        if is_main():
            print(f"committee: {path}")
    return 0
