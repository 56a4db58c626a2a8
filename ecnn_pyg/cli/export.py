"""Export a trained model: its weights without the training state, and a model card.

Writes OUT/NAME.pt (loadable by `ecnn-pyg evaluate --model OUT/NAME.pt`,
`ecnn_pyg.pretrained.load_model`, and the simulate config's `model:`) and
OUT/NAME.yaml, the model card: the model and its training data and config,
the training command, the metrics on the training and validation splits of
--data, and --notes. The energy's constant, left free by a field-only loss, is
calibrated on the training split first (energy_shift += the mean of
(E_ED - E_model)/N). --out is never inside the installed package; to ship a
model with the package, copy the two files into ecnn_pyg/pretrained/ of a
source checkout and register the name in ecnn_pyg/pretrained/__init__.py.
A committee file (committee.pt of `ecnn-pyg train --committee M` or of
`ecnn-pyg learn`) is exported member by member, its trust levels kept.

Example:
    ecnn-pyg export --checkpoint runs/square_ecnn/best.pt --data data/square_paper.h5 \\
        --name square-paper --out exported \\
        --command "ecnn-pyg train --config experiments/square_fig3/02_train_ecnn.yaml" --notes "best.pt, ..."
"""


def add_arguments(parser):
    """Add the options of ``ecnn-pyg export`` to ``parser``.

    Args:
        parser: the :class:`argparse.ArgumentParser` of the subcommand.
    """
    parser.add_argument("--checkpoint", required=True, help="checkpoint of a training run "
                                                            "(RUN/best.pt)")
    parser.add_argument("--data", nargs="+", required=True, metavar="FILE.h5",
                        help="the data file(s) the model was trained on (the training "
                             "config's data); their splits as named in the run's config")
    parser.add_argument("--name", required=True, help="model name: the stem of NAME.pt and "
                                                      "NAME.yaml")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder (not inside the installed package)")
    parser.add_argument("--command", default="", help="training command, recorded in the card")
    parser.add_argument("--notes", default="", help="free text recorded in the card")
    parser.add_argument("--force", action="store_true", help="overwrite NAME.pt / NAME.yaml")


def run(args):
    """Export ``--checkpoint`` as ``--out/NAME.pt`` and ``--out/NAME.yaml`` and print the metrics.

    Args:
        args: the parsed :class:`argparse.Namespace` of :func:`add_arguments`.

    Returns:
        0 on success.

    Raises:
        ValueError: if the name is not a plain file stem, ``--out`` is inside
            the installed package, the output files exist (without
            ``--force``), or the checkpoint or data cannot be read.
    """
    from ..training.export import export_model
    data = args.data[0] if len(args.data) == 1 else list(args.data)
    pt, card = export_model(args.checkpoint, data, args.name, args.out, command=args.command,
                            notes=args.notes, force=args.force)
    import yaml
    info = yaml.safe_load(card.read_text())
    print(f"model: {pt}\nmodel card: {card}")
    print(f"  {info['energy_calibration']}")
    for split, m in info["metrics"].items():
        print(f"  {split} ({m['samples']} samples): RMSE(B) {m['rmse_field']:.5g}, transverse "
              f"{m['rmse_field_transverse']:.5g}, RMSE(E/N) {m['rmse_energy_per_site']:.3g}")
    return 0
