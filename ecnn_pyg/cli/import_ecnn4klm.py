"""Import a published model of the paper's code (ecnn4klm) as a package checkpoint.

Reads the paper's published PARAM.cpt (a torch.save of e3nn weights, read with
weights_only=True: no code runs), maps it onto the package's ECNN with the
published architecture (configs/model_ecnn4klm.yaml: the paper's
neighbourhoods, e3nn's bias-free NormActivation, the skip inside the
activation, integral-normalized harmonics) and writes MODEL.pt. Its `data`
entry records the paper's protocol of the lattice (square: 30 x 30, t1 = 1,
J = 7, 864 electrons; triangular: t1 = 1, t3 = -0.85, J = -1, mu = -3.5), so
`ecnn-pyg evaluate --model MODEL.pt`, the `model:` key of a simulate config
and ecnn_pyg.pretrained.load_model use it like any trained model.

Examples:
    ecnn-pyg import-ecnn4klm --checkpoint data/square/param.cpt --lattice square \\
        --out models/ecnn4klm-square.pt
    ecnn-pyg import-ecnn4klm --checkpoint data/triangle/param.cpt --lattice triangular \\
        --out models/ecnn4klm-triangular.pt
"""


def add_arguments(parser):
    """Add the options of ``ecnn-pyg import-ecnn4klm`` to ``parser``.

    Args:
        parser: the :class:`argparse.ArgumentParser` of the subcommand.
    """
    parser.add_argument("--checkpoint", required=True, metavar="PARAM.cpt",
                        help="the published checkpoint (data/square/param.cpt or "
                             "data/triangle/param.cpt of the paper's code)")
    parser.add_argument("--lattice", required=True, choices=["square", "triangular"],
                        help="the lattice the checkpoint was trained on")
    parser.add_argument("--out", required=True, metavar="MODEL.pt",
                        help="package checkpoint to write")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")


def run(args):
    """Import ``--checkpoint`` and write ``--out``.

    Args:
        args: the parsed :class:`argparse.Namespace` of :func:`add_arguments`.

    Returns:
        0 on success.

    Raises:
        ValueError: if ``--out`` exists and ``--force`` is not given, or its
            folder cannot be written (checked before the import).
        ecnn_pyg.checkpoint.CheckpointError: if the file is not a readable
            published checkpoint or its weights do not fit ``--lattice``.
    """
    from ..ecnn4klm import import_ecnn4klm
    from ._common import check_output
    out = check_output(args.out, force=args.force)
    path = import_ecnn4klm(args.checkpoint, args.lattice, out)
    print(f"wrote {path} (published {args.lattice} model, architecture "
          f"configs/model_ecnn4klm.yaml)")
    return 0
