"""One torchrun rank of a learn round's relaxations: ``python -m ecnn_pyg.learn.relax_worker
SPEC`` (:meth:`ecnn_pyg.learn.loop._Loop.relax_on_ranks` starts it; not a user command).

The ranks share nothing but the files: each claims a relaxation by creating its
``.claim`` file, writes the result, and takes the next; no collective, so no rank ever
waits for another.
"""
import sys

from .loop import relax_on_this_rank


def main(argv=None) -> int:
    """Relax this rank's share of the round in ``argv[0]`` (the spec the loop wrote).

    Args:
        argv: ``[SPEC]``; ``None`` reads ``sys.argv[1:]``.

    Returns:
        0 when done, 2 for a wrong command line.
    """
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m ecnn_pyg.learn.relax_worker SPEC.json", file=sys.stderr)
        return 2
    relax_on_this_rank(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
