"""Training of the ECNN (and of the IFNN baseline) on an ED data set.

``train(config)`` is what ``ecnn-pyg train --config FILE.yaml`` runs; the keys
are :data:`TRAIN_SCHEMA` (every one commented in ``configs/square_ecnn.yaml``).

* Loss: ``MSE(B) + energy_weight * MSE(E / N)`` (MSE over all field components).
* Optimizers AdaGrad (the paper) or Adam; ``ReduceLROnPlateau`` on the
  validation loss (factor 0.5, patience 20: "halved after 20 epochs without
  improvement"); early stopping on the validation loss.
* Mini-batches of ``batch_size`` configurations (PyG ``Batch`` of the shared
  lattice graph); augmentation by random lattice rotations (:mod:`.augment`).
  ``data`` may list files of several supercells of one lattice and model
  (e.g. 12 x 12 cells and 24 x 24 snapshots): each supercell is a
  :class:`TrainingPart`, a batch holds one part, and the batches of all parts
  are interleaved (:func:`load_training_parts`).
* Reproducible: the model is initialised from ``seed``; the shuffling and the
  rotations of epoch ``e`` come from a generator seeded with ``(seed, e)``, so
  a resumed run follows the same path as an uninterrupted one.
* Run directory: ``config.yaml``, ``log.csv`` (one row per epoch),
  ``learning_curve.png``, ``best.pt`` (lowest validation loss) and ``last.pt``
  (end of the latest epoch), both written atomically; ``--resume`` continues
  from ``last.pt`` and loses at most the epoch in flight.

Train metrics in the log are accumulated over the epoch's batches as they are
trained (running, like Keras), validation metrics are computed after the epoch.
"""
from __future__ import annotations

import copy
import csv
import math
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np
import torch
import yaml
from torch_geometric.data import Batch
from tqdm.auto import tqdm

from .. import __version__
from .. import keys as K
from ..augment import RotationAugment
from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..config import REQUIRED, ConfigError, load_config
from ..datasets import DataFileError, read_arrays, read_graph, read_meta
from ..metrics import ErrorAccumulator
from ..models import MODEL_TYPES, build_model, check_model_config

__all__ = ["TRAIN_SCHEMA", "RESUME_MUTABLE", "Trainer", "train", "evaluate_arrays",
           "GraphBatcher", "LOG_COLUMNS", "plot_learning_curve", "load_training_data",
           "load_training_parts", "TrainingPart", "evaluate_parts"]

_NONE = type(None)
#: key -> (type(s), default); REQUIRED keys have no default
TRAIN_SCHEMA = {
    "model": (str, "ecnn"),
    "model_config": (dict, {}),
    "init_from": ((str, _NONE), None),  # fine-tuning: start from this checkpoint's weights
    "data": ((str, list), REQUIRED),   # one data file, or a list whose splits are concatenated
    "train_split": (str, "train"),
    "val_split": (str, "val"),
    "max_train_samples": ((int, _NONE), None),
    "run_dir": (str, REQUIRED),
    "seed": (int, 0),
    "dtype": ((str, _NONE), None),
    "num_threads": ((int, _NONE), None),
    "batch_size": (int, 1),
    "energy_weight": (float, 0.0),
    "auto_energy_shift": (bool, True),
    "optimizer": (str, "adagrad"),
    "lr": (float, 0.01),
    "weight_decay": (float, 0.0),
    "grad_clip": ((float, _NONE), None),
    "scheduler": ((str, _NONE), "plateau"),
    "lr_factor": (float, 0.5),
    "lr_patience": (int, 20),
    "min_lr": (float, 0.0),
    "max_epochs": (int, 1000),
    "early_stopping_patience": ((int, _NONE), 100),
    "min_delta": (float, 0.0),
    "max_time": ((float, _NONE), None),
    "augment": (bool, False),
    "val_batch_size": ((int, _NONE), None),
    "plot_every": (int, 10),           # 0: no learning-curve plot
    "progress": (bool, True),
}

#: keys that may differ when a run is resumed (they do not change the path of the run)
RESUME_MUTABLE = ("max_epochs", "max_time", "early_stopping_patience", "progress", "plot_every",
                  "num_threads", "val_batch_size", "data")

LOG_COLUMNS = ["epoch", "train_loss", "val_loss", "train_rmse_field", "val_rmse_field",
               "train_rmse_field_transverse", "val_rmse_field_transverse",
               "train_rmse_energy_per_site", "val_rmse_energy_per_site", "lr", "epoch_time",
               "wall_time"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _load_train_config(config, overrides=None) -> Dict[str, Any]:
    overrides = dict(overrides or {})
    if isinstance(config, Mapping):
        config = {k: v for k, v in config.items() if not str(k).startswith("_")}
    nested = {k: overrides.pop(k) for k in list(overrides) if k.startswith("model_config.")}
    cfg = load_config(config, TRAIN_SCHEMA, overrides)
    cfg["model_config"] = dict(cfg["model_config"])
    for k, v in nested.items():
        cfg["model_config"][k.split(".", 1)[1]] = v
    if cfg["optimizer"] not in ("adagrad", "adam"):
        raise ConfigError(f"config key 'optimizer' must be 'adagrad' or 'adam', "
                          f"got {cfg['optimizer']!r}")
    if cfg["scheduler"] not in (None, "plateau"):
        raise ConfigError(f"config key 'scheduler' must be 'plateau' or null, "
                          f"got {cfg['scheduler']!r}")
    if cfg["dtype"] is not None and cfg["dtype"] not in _DTYPES:
        raise ConfigError(f"config key 'dtype' must be one of {list(_DTYPES)} or null, "
                          f"got {cfg['dtype']!r}")
    if cfg["batch_size"] < 1:
        raise ConfigError(f"config key 'batch_size' must be >= 1, got {cfg['batch_size']}")
    given = set(cfg["model_config"])
    cfg["model_config"] = check_model_config(cfg["model"], cfg["model_config"])
    cfg["_given_model_keys"] = sorted(given)
    return cfg


class GraphBatcher:
    """Batches of configurations that share one lattice graph.

    The PyG ``Batch`` of ``b`` copies of the graph is built once per ``b`` and
    reused (the models cache their neighbour tables on its tensors); a batch of
    samples is that template with ``spin``/``field``/``energy`` set.
    """

    def __init__(self, graph):
        self.graph = copy.copy(graph)
        for key in (K.SPIN, K.FIELD, K.ENERGY):
            if key in self.graph:
                del self.graph[key]
        self._templates: Dict[int, Batch] = {}

    def __call__(self, spin, field=None, energy=None) -> Batch:
        b = spin.shape[0]
        if b not in self._templates:
            self._templates[b] = Batch.from_data_list([self.graph] * b)
        out = copy.copy(self._templates[b])
        out[K.SPIN] = spin.reshape(-1, 3)
        if field is not None:
            out[K.FIELD] = field.reshape(-1, 3)
        if energy is not None:
            out[K.ENERGY] = energy.reshape(-1)
        return out


def _loss(out, field, energy, n_sites, energy_weight):
    loss = torch.mean((out[K.FIELD] - field) ** 2)
    if energy_weight:
        loss = loss + energy_weight * torch.mean(((out[K.ENERGY] - energy) / n_sites) ** 2)
    return loss


def evaluate_arrays(model, graph, spin: torch.Tensor, field: Optional[torch.Tensor] = None,
                    energy: Optional[torch.Tensor] = None, batch_size: int = 8,
                    energy_weight: float = 0.0, progress: bool = False,
                    accumulator: Optional[ErrorAccumulator] = None) -> Dict[str, Any]:
    """Predict energies and fields of ``spin`` ``(n, N, 3)`` on ``graph``.

    Returns ``{"energy": (n,), "field": (n, N, 3)}`` (float64 numpy) and, when
    ``field``/``energy`` targets are given, the metrics of
    :class:`~ecnn_pyg.metrics.ErrorAccumulator` under ``"metrics"`` (of these
    samples only; the errors are also added to ``accumulator`` if given).
    """
    dtype = next(model.parameters()).dtype
    batcher = GraphBatcher(graph)
    n, n_sites = spin.shape[0], spin.shape[1]
    acc = ErrorAccumulator()
    energies, fields = [], []
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(range(0, n, batch_size), disable=not progress, leave=False,
                          desc="evaluate"):
            sl = slice(start, start + batch_size)
            s = spin[sl].to(dtype)
            b = batcher(s)
            out = model(b, b[K.SPIN], compute_field=True, training=False)
            pe, pf = out[K.ENERGY].detach(), out[K.FIELD].detach().view(s.shape)
            energies.append(pe.double().numpy())
            fields.append(pf.double().numpy())
            if field is not None:
                f = field[sl].to(dtype)
                e = energy[sl].to(dtype) if energy is not None else torch.full_like(pe, float("nan"))
                nn_ = torch.full_like(pe, float(n_sites))
                loss = torch.mean((pf - f) ** 2)
                if energy_weight:
                    loss = loss + energy_weight * torch.mean(((pe - e) / nn_) ** 2)
                for a in (acc, accumulator):
                    if a is not None:
                        a.update(pf.reshape(-1, 3), f.reshape(-1, 3), s.reshape(-1, 3), pe, e,
                                 nn_, float(loss.detach()))
    finally:
        model.train(was_training)
    res = {K.ENERGY: np.concatenate(energies) if energies else np.zeros(0),
           K.FIELD: np.concatenate(fields) if fields else np.zeros((0, n_sites, 3))}
    if field is not None:
        res["metrics"] = acc.compute()
    return res


def plot_learning_curve(log_path: Union[str, Path], out_path: Union[str, Path]) -> Path:
    """Train/validation RMSE(B) (full and transverse) and learning rate per epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = list(csv.DictReader(open(log_path)))
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6, 6), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    if rows:
        ep = [int(r["epoch"]) for r in rows]
        for key, style, name in (("rmse_field", "-", "RMSE(B)"),
                                 ("rmse_field_transverse", "--", "transverse RMSE(B)")):
            for split, color in (("train", "C0"), ("val", "C1")):
                ax.plot(ep, [float(r[f"{split}_{key}"]) for r in rows], style, color=color,
                        label=f"{split} {name}")
        ax2.plot(ep, [float(r["lr"]) for r in rows], color="C2")
    ax.set_yscale("log")
    ax.set_ylabel("RMSE of the field")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax2.set_yscale("log")
    ax2.set_ylabel("learning rate")
    ax2.set_xlabel("epoch")
    fig.tight_layout()
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out_path)
    return out_path


class TrainingPart:
    """The training and validation samples of one supercell (one lattice graph).

    Attributes:
        graph: the lattice graph the samples live on.
        size: its supercell size ``[L1, L2]``.
        train, val: ``{"spin": (n, N, 3), "field": (n, N, 3), "energy": (n,)}`` arrays.
        batcher, augment: the :class:`GraphBatcher` and :class:`RotationAugment`
            of the graph, set by the :class:`Trainer` (``augment`` ``None`` without
            augmentation).
    """

    def __init__(self, graph, size, train, val):
        self.graph, self.size, self.train, self.val = graph, list(size), train, val
        self.batcher: Optional[GraphBatcher] = None
        self.augment: Optional[RotationAugment] = None

    @property
    def n_sites(self) -> int:
        """Number of sites of the supercell."""
        return int(self.graph.num_nodes)

    def __repr__(self) -> str:
        return (f"TrainingPart(size={self.size}, train={len(self.train[K.ENERGY])}, "
                f"val={len(self.val[K.ENERGY])})")


def _model_params(meta) -> Dict[str, Any]:
    # the electronic model of a data file, independent of its supercell: without the twists
    # (12 x 12 cells with twists 8 and 24 x 24 cells with twists 4 are labelled by the same
    # Hamiltonian) and with electrons per site instead of electrons (canonical ensemble)
    params = {k: v for k, v in (meta.get("model") or {}).items() if k != "twists"}
    if params.get("electrons") is not None:
        params["electrons"] = params["electrons"] / math.prod(meta.get("size") or [1])
    return params


def load_training_parts(paths, train_split: str, val_split: str):
    """Meta and the :class:`TrainingPart` of every supercell of one or several data files.

    A split is the concatenation, in list order, of that split in every file
    of the same supercell; files of different supercells (e.g. 12 x 12 cells
    and 24 x 24 snapshots of one lattice) become separate parts, in order of
    first appearance, and every batch holds samples of one part. All files
    must hold the same lattice, hoppings and electronic model (J, mu or the
    electrons per site, temperature; the twists may differ), and each split
    must occur in at least one of them.

    Returns:
        ``(meta, parts)``: the first file's meta and the list of parts.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise ConfigError("data must name at least one data file")
    meta = read_meta(paths[0])
    groups: Dict[tuple, Dict[str, Any]] = {}
    found = set()
    for path in paths:
        m = read_meta(path)
        diff = [k for k in ("lattice", "hoppings") if m.get(k) != meta.get(k)]
        if _model_params(m) != _model_params(meta):
            diff.append("model")
        if diff:
            raise ValueError(f"'{path}' and '{paths[0]}' differ in {', '.join(diff)}: "
                             "a training set must hold one lattice, hoppings and model")
        key = tuple(m.get("size") or ())
        grp = groups.setdefault(key, {"graph": None, train_split: [], val_split: []})
        if grp["graph"] is None:
            grp["graph"] = read_graph(path)
        for split in (train_split, val_split):
            if split in m["splits"]:
                grp[split].append(read_arrays(path, split))
                found.add(split)
    for split in (train_split, val_split):
        if split not in found:
            raise DataFileError(f"no data file of {paths} has a split '{split}'")
    parts = []
    for key, grp in groups.items():
        arrays = []
        for split in (train_split, val_split):
            got = grp[split]
            if got:
                arrays.append({k: np.concatenate([a[k] for a in got]) for k in got[0]})
            else:
                n = int(grp["graph"].num_nodes)
                arrays.append({K.SPIN: np.zeros((0, n, 3), np.float32),
                               K.FIELD: np.zeros((0, n, 3), np.float32),
                               K.ENERGY: np.zeros(0)})
        parts.append(TrainingPart(grp["graph"], key, arrays[0], arrays[1]))
    return meta, parts


def load_training_data(paths, train_split: str, val_split: str):
    """Meta, graph and the train / validation arrays of data files of one supercell.

    :func:`load_training_parts` for the common case of one supercell.

    Raises:
        ValueError: if the files hold more than one supercell.
    """
    meta, parts = load_training_parts(paths, train_split, val_split)
    if len(parts) > 1:
        raise ValueError(f"the data files hold {len(parts)} supercells "
                         f"({', '.join(str(p.size) for p in parts)}): use load_training_parts")
    return meta, parts[0].graph, parts[0].train, parts[0].val


def evaluate_parts(model, parts, split: str, batch_size: int = 8,
                   energy_weight: float = 0.0) -> Dict[str, Any]:
    """:func:`evaluate_arrays` over the ``split`` (``"train"`` or ``"val"``) of several parts.

    Returns:
        ``{"metrics": ...}`` of all samples together and ``"parts"``: the
        per-part results of :func:`evaluate_arrays` (predictions and metrics).
    """
    acc = ErrorAccumulator()
    per_part = []
    for part in parts:
        arr = getattr(part, split)
        if arr[K.ENERGY].shape[0] == 0:
            per_part.append(None)
            continue
        t = torch.as_tensor
        per_part.append(evaluate_arrays(model, part.graph, t(arr[K.SPIN]), t(arr[K.FIELD]),
                                        t(arr[K.ENERGY]), batch_size=batch_size,
                                        energy_weight=energy_weight, accumulator=acc))
    return {"metrics": acc.compute(), "parts": per_part}


class Trainer:
    """One training run (see the module docstring).

    Args:
        config: a YAML path or mapping with the keys of :data:`TRAIN_SCHEMA`;
            with ``resume=True`` it may be ``None`` (the run's stored config).
        overrides: ``{key: value}`` applied over ``config`` (``model_config.KEY`` too).
        resume: continue the run in ``run_dir`` from its ``last.pt``.
    """

    def __init__(self, config=None, overrides: Optional[Mapping] = None, resume: bool = False,
                 run_dir: Optional[Union[str, Path]] = None):
        overrides = dict(overrides or {})
        if run_dir is not None:
            overrides["run_dir"] = str(run_dir)
        self.resume_state = None
        if resume:
            rd = Path(overrides.get("run_dir") or load_config(
                config, {**TRAIN_SCHEMA, "data": ((str, list), ""), "run_dir": (str, REQUIRED)})["run_dir"])
            last = rd / "last.pt"
            if not last.exists():
                raise CheckpointError(f"cannot resume: '{last}' does not exist")
            ckpt = load_checkpoint(last)
            stored = ckpt["train_config"]
            base = dict(stored) if config is None else _load_train_config(config)
            base = {k: v for k, v in base.items() if not k.startswith("_")}
            merged = _load_train_config(base, overrides)
            diff = [k for k in TRAIN_SCHEMA if k not in RESUME_MUTABLE and k != "run_dir"
                    and k != "model_config" and merged[k] != stored.get(k)]
            if (config is not None and not merged.get("init_from")) or \
                    "model_config" in overrides or \
                    any(k.startswith("model_config.") for k in overrides):
                # (with init_from the architecture comes from that checkpoint, not the config)
                stored_mc = {k: v for k, v in stored["model_config"].items()
                             if k != "energy_shift"}
                new_mc = {k: v for k, v in merged["model_config"].items() if k != "energy_shift"}
                for k in sorted(set(stored_mc) | set(new_mc)):
                    if stored_mc.get(k) != new_mc.get(k):
                        diff.append(f"model_config.{k}")
                        stored[f"model_config.{k}"] = stored_mc.get(k)
                        merged[f"model_config.{k}"] = new_mc.get(k)
            if diff:
                raise ConfigError(
                    f"cannot resume '{rd}': its run was made with different settings ("
                    + "; ".join(f"{k}: stored {stored.get(k)!r} vs {merged[k]!r}" for k in diff)
                    + f"). Only {', '.join(RESUME_MUTABLE)} may change on resume.")
            merged["model_config"] = stored["model_config"]
            merged["run_dir"] = str(rd)
            self.cfg = merged
            self.resume_state = ckpt
        else:
            self.cfg = _load_train_config(config, overrides)
        cfg = self.cfg
        self.run_dir = Path(cfg["run_dir"])
        if not resume and (self.run_dir / "last.pt").exists():
            raise ConfigError(f"run directory '{self.run_dir}' already holds a run (last.pt); "
                              "pass --resume to continue it or choose another run_dir")
        if cfg["num_threads"]:
            torch.set_num_threads(cfg["num_threads"])
        self.dtype = _DTYPES[cfg["dtype"] or MODEL_TYPES[cfg["model"]].default_dtype]
        self._load_data()
        self._build()

    # ------------------------------------------------------------------ data
    def _load_data(self):
        cfg = self.cfg
        path = cfg["data"]
        self.meta, parts = load_training_parts(path, cfg["train_split"], cfg["val_split"])
        if cfg["max_train_samples"] is not None:
            left = cfg["max_train_samples"]
            for part in parts:
                part.train = {k: v[:left] for k, v in part.train.items()}
                left -= len(part.train[K.ENERGY])
        if sum(len(p.train[K.ENERGY]) for p in parts) == 0:
            raise ValueError(f"'{path}' has no complete samples in split '{cfg['train_split']}'")
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.dtype)
        for part in parts:
            part.train = {k: t(v) for k, v in part.train.items()}
            part.val = {k: t(v) for k, v in part.val.items()}
            part.batcher = GraphBatcher(part.graph)
            part.augment = RotationAugment(part.graph) if cfg["augment"] else None
        self.parts = parts

    @property
    def graph(self):
        """The lattice graph of the (first) supercell of the data."""
        return self.parts[0].graph

    def _build(self):
        cfg = self.cfg
        mc = dict(cfg["model_config"])
        init = None
        if self.resume_state is None and cfg["init_from"]:
            init = load_checkpoint(cfg["init_from"])
            if init["model_type"] != cfg["model"]:
                raise ConfigError(f"init_from '{cfg['init_from']}' holds a {init['model_type']} "
                                  f"model, the config trains a {cfg['model']}")
            mc = dict(init["model_config"])         # the architecture of the initial weights
            cfg["model_config"] = mc
        elif self.resume_state is None and cfg["auto_energy_shift"] and \
                "energy_shift" not in (self._given_model_keys or ()):
            mc["energy_shift"] = float(torch.cat([p.train[K.ENERGY].double() / p.n_sites
                                                  for p in self.parts]).mean())
            cfg["model_config"] = mc
        torch.manual_seed(cfg["seed"])
        self.model = build_model(cfg["model"], mc).to(self.dtype)
        if init is not None:
            self.model.load_state_dict(init["model_state"])
        params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg["optimizer"] == "adagrad":
            self.optimizer = torch.optim.Adagrad(params, lr=cfg["lr"],
                                                 weight_decay=cfg["weight_decay"])
        else:
            self.optimizer = torch.optim.Adam(params, lr=cfg["lr"],
                                              weight_decay=cfg["weight_decay"])
        self.scheduler = None
        if cfg["scheduler"] == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="min", factor=cfg["lr_factor"], patience=cfg["lr_patience"],
                min_lr=cfg["min_lr"])
        self.epoch = 0                       # epochs completed
        self.best = {"val_loss": math.inf, "epoch": 0, "metrics": {}}
        self.bad_epochs = 0
        self.wall_time = 0.0
        if self.resume_state is not None:
            ck = self.resume_state
            self.model.load_state_dict(ck["model_state"])
            self.optimizer.load_state_dict(ck["optimizer_state"])
            if self.scheduler is not None and ck.get("scheduler_state") is not None:
                self.scheduler.load_state_dict(ck["scheduler_state"])
            self.epoch = int(ck["epoch"])
            self.best = ck["best"]
            self.bad_epochs = int(ck["bad_epochs"])
            self.wall_time = float(ck.get("wall_time", 0.0))
            torch.set_rng_state(ck["rng_state"])

    @property
    def _given_model_keys(self):
        return self.cfg.get("_given_model_keys")

    # ------------------------------------------------------------ checkpoint
    def state(self, metrics: Dict[str, float]) -> Dict[str, Any]:
        """The checkpoint dictionary of the current epoch.

        Args:
            metrics: the epoch's metrics (as returned by :meth:`train_epoch` and
                :meth:`validate`), stored with the checkpoint.

        Returns:
            Model type, config and weights, dtype, the data's lattice and model
            parameters, epoch, best-so-far record, optimizer / scheduler / RNG
            states, config and package version: everything ``--resume`` needs.
        """
        cfg = {k: v for k, v in self.cfg.items() if not k.startswith("_")}
        return {
            "model_type": self.cfg["model"],
            "model_config": self.model.config,
            "model_state": self.model.state_dict(),
            "dtype": str(self.dtype).replace("torch.", ""),
            "data": {"path": str(self.cfg["data"]), "lattice": self.meta.get("lattice"),
                     "size": self.meta.get("size"), "hoppings": self.meta.get("hoppings"),
                     "model": self.meta.get("model"), "n_sites": self.parts[0].n_sites,
                     **({"sizes": [p.size for p in self.parts]} if len(self.parts) > 1 else {})},
            "epoch": self.epoch,
            "metrics": dict(metrics),
            "best": copy.deepcopy(self.best),
            "bad_epochs": self.bad_epochs,
            "wall_time": self.wall_time,
            "train_config": cfg,
            "optimizer_state": self.optimizer.state_dict(),
            "scheduler_state": self.scheduler.state_dict() if self.scheduler else None,
            "rng_state": torch.get_rng_state(),
        }

    # ----------------------------------------------------------------- epochs
    def _epoch_generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(int(self.cfg["seed"]) * 1_000_003 + int(epoch))

    def train_epoch(self, epoch: int) -> Dict[str, float]:
        """One pass over the shuffled (and, with ``augment``, rotated) training set.

        Args:
            epoch: epoch number; it seeds the shuffle and the rotations, so a
                resumed run repeats an uninterrupted one.

        Returns:
            Running training loss and RMSEs (field, transverse field, E per site).
        """
        cfg = self.cfg
        g = self._epoch_generator(epoch)
        bs = cfg["batch_size"]
        batches = []          # (part, sample indices, rotation indices or None)
        for part in self.parts:
            n = part.train[K.ENERGY].shape[0]
            order = torch.randperm(n, generator=g)
            rot = part.augment.sample(n, g) if part.augment is not None else None
            batches += [(part, order[i:i + bs], None if rot is None else rot[i:i + bs])
                        for i in range(0, n, bs)]
        if len(self.parts) > 1:    # interleave the supercells
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        acc = ErrorAccumulator()
        self.model.train()
        bar = tqdm(batches, disable=not cfg["progress"], leave=False,
                   desc=f"epoch {epoch}", unit="batch")
        for part, idx, rot in bar:
            arr = part.train
            spin, field, energy = arr[K.SPIN][idx], arr[K.FIELD][idx], arr[K.ENERGY][idx]
            if rot is not None:
                spin, field = part.augment.apply(rot, spin, field)
            b = part.batcher(spin, field, energy)
            nn_ = torch.full((len(idx),), float(part.n_sites), dtype=self.dtype)
            out = self.model(b, b[K.SPIN], compute_field=True, training=True)
            loss = _loss(out, b[K.FIELD], energy, nn_, cfg["energy_weight"])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg["grad_clip"])
            self.optimizer.step()
            loss_value = float(loss.detach())
            acc.update(out[K.FIELD], b[K.FIELD], b[K.SPIN], out[K.ENERGY], energy, nn_,
                       loss_value)
            if cfg["progress"]:
                bar.set_postfix(loss=f"{loss_value:.3g}")
        return acc.compute()

    def validate(self) -> Dict[str, float]:
        """Loss and RMSEs (field, transverse field, E per site) on the validation split.

        Returns:
            The metrics, NaN when the validation split is empty.
        """
        if sum(p.val[K.ENERGY].shape[0] for p in self.parts) == 0:
            return {k: float("nan") for k in ("loss", "rmse_field", "rmse_field_transverse",
                                               "rmse_energy_per_site")}
        return evaluate_parts(self.model, self.parts, "val",
                              batch_size=self.cfg["val_batch_size"] or max(self.cfg["batch_size"], 4),
                              energy_weight=self.cfg["energy_weight"])["metrics"]

    def _write_log(self, row: Dict[str, Any]) -> None:
        path = self.run_dir / "log.csv"
        rows = []
        if path.exists():
            rows = [r for r in csv.DictReader(open(path)) if int(r["epoch"]) < row["epoch"]]
        rows.append({k: row[k] for k in LOG_COLUMNS})
        tmp = path.with_name(".log.csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
            w.writeheader()
            w.writerows(rows)
        tmp.replace(path)

    def run(self) -> Path:
        """Train until ``max_epochs``, early stopping or ``max_time``; returns the run dir."""
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.resume_state is None:
            (self.run_dir / "config.yaml").write_text(
                f"# ecnn_pyg {__version__} training config (resolved)\n"
                + yaml.safe_dump({k: v for k, v in cfg.items() if not k.startswith("_")},
                                 sort_keys=False))
        t_start = time.time()
        reason = "max_epochs"
        if self.bad_epochs >= (cfg["early_stopping_patience"] or math.inf):
            reason = "early stopping (before resume)"
        while self.epoch < cfg["max_epochs"] and reason == "max_epochs":
            epoch = self.epoch + 1
            t0 = time.time()
            tr = self.train_epoch(epoch)
            va = self.validate()
            val_loss = va["loss"] if not math.isnan(va["loss"]) else tr["loss"]
            if self.scheduler is not None:
                self.scheduler.step(val_loss)
            dt = time.time() - t0
            self.wall_time += dt
            self.epoch = epoch
            row = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"],
                   "epoch_time": round(dt, 3), "wall_time": round(self.wall_time, 3)}
            for split, m in (("train", tr), ("val", va)):
                for k, v in m.items():
                    row[f"{split}_{k}"] = v
            improved = val_loss < self.best["val_loss"] - cfg["min_delta"]
            if improved:
                self.best = {"val_loss": val_loss, "epoch": epoch, "metrics": dict(row)}
                self.bad_epochs = 0
            else:
                self.bad_epochs += 1
            self._write_log(row)
            state = self.state(row)
            if improved:
                save_checkpoint(self.run_dir / "best.pt", state)
            save_checkpoint(self.run_dir / "last.pt", state)
            print(f"epoch {epoch:5d}  train RMSE(B) {tr['rmse_field']:.5f}  val RMSE(B) "
                  f"{va['rmse_field']:.5f} (transverse {va['rmse_field_transverse']:.5f})  "
                  f"val RMSE(E/N) {va['rmse_energy_per_site']:.3e}  lr {row['lr']:.3g}  "
                  f"{dt:.1f} s" + ("  *" if improved else ""), flush=True)
            if cfg["plot_every"] and epoch % cfg["plot_every"] == 0:
                plot_learning_curve(self.run_dir / "log.csv", self.run_dir / "learning_curve.png")
            if cfg["early_stopping_patience"] and self.bad_epochs >= cfg["early_stopping_patience"]:
                reason = "early stopping"
            elif cfg["max_time"] is not None and time.time() - t_start >= cfg["max_time"]:
                reason = "max_time"
        if cfg["plot_every"] and (self.run_dir / "log.csv").exists():
            plot_learning_curve(self.run_dir / "log.csv", self.run_dir / "learning_curve.png")
        self.stop_reason = reason
        print(f"stopped after epoch {self.epoch} ({reason}); best val loss "
              f"{self.best['val_loss']:.6g} at epoch {self.best['epoch']}; run dir {self.run_dir}",
              flush=True)
        return self.run_dir


def train(config=None, overrides: Optional[Mapping] = None, resume: bool = False) -> Path:
    """Run (or resume) the training described by ``config``; returns the run directory."""
    return Trainer(config, overrides, resume=resume).run()
