"""Predict energies and fields with a trained model, or score it on a data set.

--model is a checkpoint file (best.pt / last.pt of a run) or the name of a
shipped pretrained model (`ecnn-pyg models` describes them):
    {models}

With --spins S.npy: writes --out OUT.npz with `energy` (n,) and `field`
(n, sites, 3). The lattice and hoppings are the model's (those of its
training data) unless --lattice / --t1 ... are given; the supercell size is
--size, or the size of the model's training data. Nothing is inferred from
the array: the spins must be (sites, 3) or (n, sites, 3) with
sites = L1 * L2 * (sites per cell), site order (i1 * L2 + i2) * (sites per
cell) + b, or with the site axis written as (L1, L2) (one site per cell) or
(L1, L2, sites per cell), as for `ecnn-pyg ed`; any other shape is an error
that names the expected shapes.

With --data FILE.h5 [--split val]: prints RMSE(B), transverse RMSE(B) and
RMSE(E per site) against the stored ED values and writes a parity plot
(--plot, default parity_<split>.png); --out additionally saves the predictions.

A committee (a committee.pt of `ecnn-pyg train --committee M`, or its run
folder) predicts the members' mean; --data also reports each member's
RMSE(B), the mean and largest per-site uncertainty sigma_B and the
correlation of sigma_B with the actual per-site error |B_mean - B_ED|;
--out also holds `field_sigma` (n, sites) and `energy_sigma` (n,).

Every output (--out, --plot and its default) is checked before the model runs:
an existing file is kept unless --force is given, and a folder that cannot be
written is an error. A model with non-finite weights, or predictions that are
not finite, are refused; nothing is written.

Examples:
    ecnn-pyg evaluate --model runs/square_ecnn/best.pt --data data/square_paper.h5 --split val
    ecnn-pyg evaluate --model square-paper --spins S.npy --out OUT.npz --size 30 30
    ecnn-pyg evaluate --model best.pt --spins S.npy --out OUT.npz --lattice square --size 60 60
"""
import json
import sys
from pathlib import Path

from ._common import positive_int


def shipped_models():
    """Names of the pretrained models installed with the package (read without loading torch).

    Returns:
        Sorted names: the ``NAME.pt`` files of ``ecnn_pyg/pretrained`` that have a
        ``NAME.yaml`` model card.
    """
    folder = Path(__file__).resolve().parent.parent / "pretrained"
    return sorted(p.stem for p in folder.glob("*.pt") if p.with_suffix(".yaml").exists())


__doc__ = __doc__.format(models=", ".join(shipped_models()) or "none installed")


def add_arguments(parser):
    """Add the options of ``ecnn-pyg evaluate`` to ``parser``.

    Args:
        parser: the :class:`argparse.ArgumentParser` of the subcommand.
    """
    parser.add_argument("--model", required=True,
                        help="checkpoint file (or a committee.pt, or its run folder) or "
                             "pretrained name: " + ", ".join(shipped_models()))
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--spins", help=".npy file of spin configurations")
    src.add_argument("--data", help="HDF5 data set (ecnn-pyg generate) to score the model on")
    parser.add_argument("--split", default="val", help="split of --data (default val; 'all' "
                                                        "for every sample)")
    parser.add_argument("--out", help="output .npz (required with --spins)")
    parser.add_argument("--plot", help="parity plot PNG (with --data; default "
                                       "parity_<split>.png)")
    parser.add_argument("--lattice", help="lattice (default: the model's)")
    parser.add_argument("--size", type=int, nargs="+",
                        help="L1 L2 (default: the size of the model's training data)")
    for t in ("t1", "t2", "t3"):
        parser.add_argument(f"--{t}", type=float, help=f"hopping {t} (default: the model's)")
    parser.add_argument("--memory-budget", metavar="SIZE",
                        help="with --spins: evaluate region by region with halos (exact) within "
                             "this memory, e.g. 8GB (a lattice larger than memory)")
    parser.add_argument("--max-tile-sites", type=positive_int, metavar="N",
                        help="with --spins: at most N sites (region plus halo) per evaluation")
    parser.add_argument("--batch-size", type=positive_int, default=4,
                        help="configurations per batch (default 4)")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    parser.add_argument("--allow-version-mismatch", action="store_true",
                        help="load a checkpoint of another package release")


def _graph_for(args, ckpt):
    """The lattice graph the spins live on: the model's lattice, --size or the model's size."""
    from ..graph import lattice_graph
    from ..models import checkpoint_lattice
    data = ckpt.get("data") or {}
    lattice = args.lattice or checkpoint_lattice(ckpt)   # a lattice of one's own: carried along
    if lattice is None:
        raise ValueError("the model does not record its lattice: give --lattice")
    same = args.lattice is None or args.lattice == data.get("lattice")
    hop = dict(data.get("hoppings") or {}) if same else {}
    for t in ("t1", "t2", "t3"):
        if getattr(args, t) is not None:
            hop[t] = getattr(args, t)
    if args.size:
        size = list(args.size) if len(args.size) > 1 else [args.size[0]] * 2
    elif same and data.get("size"):
        size = list(data["size"])
    else:
        raise ValueError(f"give --size L1 L2: the model does not record a supercell size of "
                         f"lattice {lattice!r}")
    return lattice_graph(lattice, size, hop), size


def _check_finite(res, K):
    import numpy as np
    bad = ~(np.isfinite(res[K.ENERGY]) & np.isfinite(res[K.FIELD]).all(axis=(1, 2)))
    if bad.any():
        idx = np.flatnonzero(bad)
        raise ValueError(f"the model's predictions are not finite (NaN or inf) for "
                         f"{len(idx)} of {len(bad)} configurations (first: {idx[0]}); "
                         f"nothing was written")


def run(args):
    """Predict with ``--spins`` and write ``--out``, or score the model on ``--data``.

    Args:
        args: the parsed :class:`argparse.Namespace` of :func:`add_arguments`.

    Returns:
        0 on success.

    Raises:
        ValueError: if an output exists (without ``--force``), has the wrong
            suffix or cannot be written, ``--out`` is missing with ``--spins``,
            the spins do not have one of the expected shapes or are invalid,
            the size is unknown, the split has no complete samples, the
            checkpoint or data file cannot be read, the model's weights or
            its predictions are not finite.
    """
    from ._common import check_output
    if args.spins and args.out is None:
        raise ValueError("--spins needs --out OUT.npz")
    out = check_output(args.out, force=args.force, suffix=".npz") if args.out else None
    plot = None
    if args.data:
        plot = check_output(args.plot or f"parity_{args.split}.png", force=args.force,
                            suffix=".png", option="--plot")
    import numpy as np
    import torch
    from .. import keys as K
    from ..pretrained import load_model_and_checkpoint
    from ..spins import SpinError, as_spin_batch, load_spin_file, supercell_shape
    from ..training import evaluate_arrays
    from ..committee import Committee, committee_predictions, committee_statistics, \
        score_predictions
    model, ckpt = load_model_and_checkpoint(args.model,
                                            strict_version=not args.allow_version_mismatch)
    if args.spins:
        raw = load_spin_file(args.spins)
        graph, size = _graph_for(args, ckpt)
        try:
            s, _ = as_spin_batch(raw, graph.num_nodes, supercell_shape(graph), tol=1e-3)
        except SpinError as err:
            if "do not fit" in str(err) or "must have shape" in str(err):
                raise SpinError(f"{err} (supercell {size} of lattice {graph.lattice!r}"
                                f"{'' if args.size else ', the model training size'}; "
                                f"give --size for another)") from None
            raise
        if isinstance(model, Committee):
            from ..distributed.tiling import tile_options
            tiling = tile_options({"memory_budget": args.memory_budget,
                                   "max_tile_sites": args.max_tile_sites}, model)
            pred = committee_predictions(model, graph, torch.from_numpy(s),
                                         batch_size=args.batch_size, **tiling)
            st = committee_statistics(pred[K.FIELD])
            e = pred[K.ENERGY]
            res = {K.ENERGY: e.mean(0), K.FIELD: st["field"], "field_sigma": st["sigma"],
                   "energy_sigma": np.sqrt(((e - e.mean(0)) ** 2).mean(0))}
        elif args.memory_budget or args.max_tile_sites:       # region by region, exact
            from ..distributed.tiling import evaluate_tiled, tile_options
            res = evaluate_tiled(model, graph, torch.from_numpy(s), **tile_options(
                {"memory_budget": args.memory_budget, "max_tile_sites": args.max_tile_sites},
                model))
        else:
            res = evaluate_arrays(model, graph, torch.from_numpy(s), batch_size=args.batch_size)
        _check_finite(res, K)
        out.parent.mkdir(parents=True, exist_ok=True)
        extra = {k: res[k] for k in ("field_sigma", "energy_sigma") if k in res}
        np.savez(out, energy=res[K.ENERGY], field=res[K.FIELD], **extra)
        print(f"wrote {out}: energy {res[K.ENERGY].shape}, field {res[K.FIELD].shape}"
              + (f", field_sigma {extra['field_sigma'].shape} (committee of {len(model)})"
                 if extra else ""))
        return 0
    from ..datasets import read_arrays, read_graph, read_meta
    from ..metrics import parity_plot
    meta = read_meta(args.data)
    graph = read_graph(args.data)
    mdata = ckpt.get("data") or {}
    if mdata.get("lattice") and meta.get("lattice") != mdata.get("lattice"):
        print(f"warning: the model was trained on lattice {mdata.get('lattice')!r}, the data "
              f"set is {meta.get('lattice')!r}", file=sys.stderr)
    elif mdata.get("hoppings") and meta.get("hoppings") != mdata.get("hoppings"):
        print(f"warning: the model was trained with hoppings {mdata.get('hoppings')}, the data "
              f"set has {meta.get('hoppings')}", file=sys.stderr)
    arr = read_arrays(args.data, None if args.split == "all" else args.split)
    if len(arr[K.ENERGY]) == 0:
        raise ValueError(f"'{args.data}' has no complete samples in split '{args.split}'")
    t = lambda a: torch.from_numpy(a)
    report = {}
    if isinstance(model, Committee):       # every member once; the mean and sigma_B from them
        pred = committee_predictions(model, graph, t(arr[K.SPIN]), batch_size=args.batch_size)
        sc = score_predictions(pred, arr[K.SPIN], arr[K.FIELD], arr[K.ENERGY])
        res = {K.ENERGY: pred[K.ENERGY].mean(0),
               K.FIELD: committee_statistics(pred[K.FIELD])["field"]}
        _check_finite(res, K)
        m = {k: sc[f"val_{k}"] for k in ("rmse_field", "rmse_field_transverse",
                                         "rmse_energy_per_site")}
        report = {"members": len(model),
                  "members_rmse_field": [x["val_rmse_field"] for x in sc["members"]],
                  "sigma_mean": sc["val_sigma_mean"], "sigma_max": sc["val_sigma_max"],
                  "error_site_rms": sc["val_error_site_rms"],
                  "sigma_error_correlation": sc["val_sigma_error_correlation"],
                  "trust": dict(model.trust)}
    else:
        res = evaluate_arrays(model, graph, t(arr[K.SPIN]), t(arr[K.FIELD]), t(arr[K.ENERGY]),
                              batch_size=args.batch_size)
        _check_finite(res, K)
        m = res["metrics"]
    n = len(arr[K.ENERGY])
    print(json.dumps({"model": str(args.model), "data": str(args.data), "split": args.split,
                      "samples": n, "rmse_field": m["rmse_field"],
                      "rmse_field_transverse": m["rmse_field_transverse"],
                      "rmse_energy_per_site": m["rmse_energy_per_site"], **report}, indent=1))
    plot.parent.mkdir(parents=True, exist_ok=True)
    parity_plot(res[K.FIELD], arr[K.FIELD], plot,
                title=f"{Path(str(args.model)).name} on {Path(args.data).name} [{args.split}]: "
                      f"RMSE(B) = {m['rmse_field']:.4f}")
    print(f"parity plot: {plot}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, energy=res[K.ENERGY], field=res[K.FIELD], energy_ed=arr[K.ENERGY],
                 field_ed=arr[K.FIELD])
        print(f"wrote {out}")
    return 0
