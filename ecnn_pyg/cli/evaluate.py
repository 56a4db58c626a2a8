"""Predict energies and fields with a trained model, or score it on a data set.

--model is a checkpoint file (best.pt / last.pt of a run) or the name of a
shipped pretrained model (square-paper).

With --spins S.npy: spins of shape (n, L1, L2, 3), (n, sites, 3) or one
configuration; writes --out OUT.npz with `energy` (n,) and `field`
(n, sites, 3), site order i1 * L2 + i2. The lattice and hoppings default to
those of the model's training data; the size is taken from the spins' shape
(L1, L2), or from --size, or from the training data if the site counts agree,
or L x L with L = sqrt(sites).

With --data FILE.h5 [--split val]: prints RMSE(B), transverse RMSE(B) and
RMSE(E per site) against the stored ED values and writes a parity plot
(--plot, default parity_<split>.png); --out additionally saves the predictions.

Examples:
    ecnn-pyg evaluate --model runs/square_ecnn/best.pt --data data/square_paper.h5 --split val
    ecnn-pyg evaluate --model square-paper --spins S.npy --out OUT.npz
    ecnn-pyg evaluate --model best.pt --spins S.npy --out OUT.npz --lattice square --size 60 60
"""
import json
from pathlib import Path


def add_arguments(parser):
    """Add the options of ``ecnn-pyg evaluate`` to ``parser``.

    Args:
        parser: the :class:`argparse.ArgumentParser` of the subcommand.
    """
    parser.add_argument("--model", required=True, help="checkpoint file or pretrained name")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--spins", help=".npy file of spin configurations")
    src.add_argument("--data", help="HDF5 data set (ecnn-pyg generate) to score the model on")
    parser.add_argument("--split", default="val", help="split of --data (default val; 'all' "
                                                        "for every sample)")
    parser.add_argument("--out", help="output .npz (required with --spins)")
    parser.add_argument("--plot", help="parity plot PNG (with --data)")
    parser.add_argument("--lattice", help="lattice (default: the model's)")
    parser.add_argument("--size", type=int, nargs="+", help="L1 L2 (default: from the spins)")
    for t in ("t1", "t2", "t3"):
        parser.add_argument(f"--{t}", type=float, help=f"hopping {t} (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=4, help="configurations per batch")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")
    parser.add_argument("--allow-version-mismatch", action="store_true",
                        help="load a checkpoint of another package release")


def _graph_for(args, ckpt, n_sites, shape_size):
    import math
    from ..graph import lattice_graph
    data = ckpt.get("data") or {}
    lattice = args.lattice or data.get("lattice") or ckpt["model_config"].get("lattice")
    if lattice is None:
        raise ValueError("the model does not record its lattice: give --lattice")
    hop = dict(data.get("hoppings") or {}) if lattice == data.get("lattice") else {}
    for t in ("t1", "t2", "t3"):
        if getattr(args, t) is not None:
            hop[t] = getattr(args, t)
    if args.size:
        size = list(args.size) if len(args.size) > 1 else [args.size[0]] * 2
    elif shape_size is not None:
        size = list(shape_size)
    elif data.get("size") and int(math.prod(data["size"])) == n_sites and \
            lattice == data.get("lattice"):
        size = list(data["size"])
    else:
        L = int(round(math.sqrt(n_sites)))
        if L * L != n_sites:
            raise ValueError(f"cannot infer the supercell of {n_sites} sites: give --size L1 L2 "
                             "or spins shaped (n, L1, L2, 3)")
        size = [L, L]
    if int(math.prod(size)) != n_sites:
        raise ValueError(f"--size {size} has {math.prod(size)} sites, the spins have {n_sites}")
    return lattice_graph(lattice, size, hop)


def _load_spins(path):
    import numpy as np
    try:
        s = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read spins from '{path}' (expected a .npy array): {err}")
    if s.shape[-1:] != (3,) or s.ndim < 2 or s.ndim > 4:
        raise ValueError(f"spins must have shape (n, L1, L2, 3), (n, sites, 3), (L1, L2, 3) or "
                         f"(sites, 3); got {s.shape}")
    return s


def run(args):
    """Predict with ``--spins`` and write ``--out``, or score the model on ``--data``.

    Args:
        args: the parsed :class:`argparse.Namespace` of :func:`add_arguments`.

    Returns:
        0 on success.

    Raises:
        ValueError: if ``--out`` exists (without ``--force``), does not end in
            ``.npz`` or is missing with ``--spins``, the spins are invalid or
            their supercell cannot be inferred, the split has no complete
            samples, or the checkpoint or data file cannot be read.
    """
    import numpy as np
    import torch
    from .. import keys as K
    from ..pretrained import load_model_and_checkpoint
    from ..datasets import read_arrays, read_graph, read_meta
    from ..metrics import parity_plot
    from ..spins import as_spin_batch
    from ..training import evaluate_arrays
    out = Path(args.out) if args.out else None
    if out is not None:
        if not str(out).endswith(".npz"):
            raise ValueError(f"--out must end in .npz, got '{out}'")
        if out.exists() and not args.force:
            raise ValueError(f"'{out}' exists; use --force to overwrite it")
    model, ckpt = load_model_and_checkpoint(args.model,
                                            strict_version=not args.allow_version_mismatch)
    if args.spins:
        if out is None:
            raise ValueError("--spins needs --out OUT.npz")
        s = _load_spins(args.spins)
        shape_size = None
        if s.ndim == 4:
            shape_size = s.shape[1:3]
        elif s.ndim == 3 and args.size is None and s.shape[0] * s.shape[1] != 0 and \
                not _is_batch(s, ckpt):
            shape_size = s.shape[0:2]
            s = s[None]
        if s.ndim == 2:
            s = s[None]
        n = s.shape[0]
        s, _ = as_spin_batch(s.reshape(n, -1, 3), s.size // (3 * n), tol=1e-3)
        graph = _graph_for(args, ckpt, s.shape[1], shape_size)
        res = evaluate_arrays(model, graph, torch.from_numpy(s), batch_size=args.batch_size)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, energy=res[K.ENERGY], field=res[K.FIELD])
        print(f"wrote {out}: energy {res[K.ENERGY].shape}, field {res[K.FIELD].shape}")
        return 0
    meta = read_meta(args.data)
    graph = read_graph(args.data)
    mdata = ckpt.get("data") or {}
    if mdata.get("lattice") and meta.get("lattice") != mdata.get("lattice"):
        print(f"warning: the model was trained on lattice {mdata.get('lattice')!r}, the data "
              f"set is {meta.get('lattice')!r}")
    elif mdata.get("hoppings") and meta.get("hoppings") != mdata.get("hoppings"):
        print(f"warning: the model was trained with hoppings {mdata.get('hoppings')}, the data "
              f"set has {meta.get('hoppings')}")
    arr = read_arrays(args.data, None if args.split == "all" else args.split)
    if len(arr[K.ENERGY]) == 0:
        raise ValueError(f"'{args.data}' has no complete samples in split '{args.split}'")
    t = lambda a: torch.from_numpy(a)
    res = evaluate_arrays(model, graph, t(arr[K.SPIN]), t(arr[K.FIELD]), t(arr[K.ENERGY]),
                          batch_size=args.batch_size)
    m = res["metrics"]
    n = len(arr[K.ENERGY])
    print(json.dumps({"model": str(args.model), "data": str(args.data), "split": args.split,
                      "samples": n, "rmse_field": m["rmse_field"],
                      "rmse_field_transverse": m["rmse_field_transverse"],
                      "rmse_energy_per_site": m["rmse_energy_per_site"]}, indent=1))
    plot = Path(args.plot or f"parity_{args.split}.png")
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


def _is_batch(s, ckpt) -> bool:
    """A 3D array (a, b, 3): n configurations of b sites unless it is one L1 x L2 configuration."""
    import math
    data = ckpt.get("data") or {}
    size = data.get("size")
    if size and tuple(s.shape[:2]) == tuple(size):
        return False
    if size and s.shape[1] == math.prod(size):
        return True
    L = int(round(math.sqrt(s.shape[1])))
    return L * L == s.shape[1]
