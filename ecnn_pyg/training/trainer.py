"""The trainer: one training run, from a config to a run directory.

:class:`Trainer` builds the model (or takes the weights of ``init_from``, or
of the run's ``last.pt`` with ``resume``), the optimizer and the scheduler,
and runs epochs: shuffled, optionally rotated mini-batches of each supercell,
interleaved; validation after each epoch; ``ReduceLROnPlateau`` and early
stopping on the validation loss; ``best.pt`` and ``last.pt`` written
atomically after each epoch; ``log.csv`` and the learning curve
(:mod:`.log`). :func:`train` is what ``ecnn-pyg train`` runs.
"""
from __future__ import annotations

import contextlib
import copy
import io
import math
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from .._version import __version__
from .. import keys as K
from ..augment import RotationAugment
from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..config import REQUIRED, ConfigError, load_config
from ..lattice import Lattice, LatticeError, lattice_reference, load_lattice
from ..locking import check_writable, output_lock
from ..metrics import ErrorAccumulator
from ..models import MODEL_TYPES, build_model
from .data import GraphBatcher, load_training_parts
from .evaluate import evaluate_parts
from .log import plot_learning_curve, write_log_row
from .loss import field_energy_loss
from ..distributed.train import DataParallel, data_parallel
from .schema import DTYPES, RESUME_MUTABLE, TRAIN_SCHEMA, data_file_weights, load_train_config

__all__ = ["Trainer", "train", "TrainingDivergedError", "zeeman_hull"]


class TrainingDivergedError(RuntimeError):
    """The loss or the weights became non-finite (NaN or infinite) during training."""


def zeeman_hull(m: torch.Tensor, e: torch.Tensor):
    """The energy per site of the best state at the most favourable Zeeman field, as a
    function of the magnetization: ``e_ref(m) = max over h >= 0 of min_j (e_j - h m_j) + h m``.

    ``(m_j, e_j)`` are the labels' magnetizations ``|sum_i S_i| / N`` and field-free energies
    per site. ``e - e_ref(m)`` is the least, over fields h >= 0, of how far a state lies above
    the best label in the energy ``E/N - h M/N``: 0 for a label that is the best at some
    field. By Legendre duality ``e_ref`` is the lower convex hull of the points beyond the
    lowest label's magnetization ``m*``, and the lowest energy below it:
    ``e_ref(m) = hull(max(m, m*))`` (constant beyond the largest ``m_j``).

    Returns:
        ``e_ref``: a function of a tensor of magnetizations, the reference energies (float64).
    """
    m = m.double().cpu().numpy()
    e = e.double().cpu().numpy()
    m_star = m[int(np.argmin(e))]
    pts = sorted(zip(m[m >= m_star], e[m >= m_star]))
    hull: list = []
    for p in pts:                               # Andrew's monotone chain, lower half
        if hull and p[0] == hull[-1][0]:        # sorted: the lowest at this m came first
            continue
        while len(hull) >= 2 and ((hull[-1][0] - hull[-2][0]) * (p[1] - hull[-2][1])
                                  - (hull[-1][1] - hull[-2][1]) * (p[0] - hull[-2][0])) <= 0:
            hull.pop()
        hull.append(p)
    hm = np.array([h[0] for h in hull])
    he = np.array([h[1] for h in hull])

    def e_ref(mq: torch.Tensor) -> torch.Tensor:
        q = np.maximum(mq.double().cpu().numpy(), m_star)
        return torch.from_numpy(np.interp(q, hm, he)).to(mq.device)
    return e_ref


class Trainer:
    """One training run (see the module docstring).

    Args:
        config: a YAML path or mapping with the keys of
            :data:`~ecnn_pyg.training.schema.TRAIN_SCHEMA`; with ``resume=True``
            it may be ``None`` (the run's stored config).
        overrides: ``{key: value}`` applied over ``config`` (``model_config.KEY`` too).
        resume: continue the run in ``run_dir`` from its ``last.pt``.
        run_dir: overrides the config's ``run_dir``.
        alone: train in this process alone even under torchrun (a committee
            member on its own rank, :func:`~ecnn_pyg.committee.train_committee`);
            by default the ranks of a process group train one model together (DDP).

    Raises:
        ConfigError: if the config is invalid, ``run_dir`` already holds a run
            (without ``resume``), or a resumed run's config differs in a key
            outside :data:`~ecnn_pyg.training.schema.RESUME_MUTABLE`.
        CheckpointError: if ``resume`` finds no readable ``last.pt``, or
            ``init_from`` cannot be loaded.
        DataFileError: if the data cannot be read.
    """

    def __init__(self, config=None, overrides: Optional[Mapping] = None, resume: bool = False,
                 run_dir: Optional[Union[str, Path]] = None, alone: bool = False):
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
            try:
                ckpt = load_checkpoint(last)
                if not all(k in ckpt for k in ("train_config", "optimizer_state", "epoch")):
                    raise CheckpointError(f"'{last}' is a model checkpoint without the "
                                          "training state a resume needs")
            except CheckpointError as err:
                raise CheckpointError(
                    f"cannot resume: {err}. The best epoch's checkpoint may be intact: resume "
                    f"from it with 'cp {rd / 'best.pt'} {last}' and --resume, or start a new "
                    f"run with init_from: {rd / 'best.pt'}") from None
            stored = ckpt["train_config"]
            base = dict(stored) if config is None else load_train_config(config)
            given_mc = set(base.get("_given_model_keys") or ()) if config is not None else set()
            given_mc |= {k.split(".", 1)[1] for k in overrides if k.startswith("model_config.")}
            given_mc |= set(overrides.get("model_config") or ())
            base = {k: v for k, v in base.items() if not k.startswith("_")}
            merged = load_train_config(base, overrides)
            diff = [k for k in TRAIN_SCHEMA if k not in RESUME_MUTABLE and k != "run_dir"
                    and k != "model_config" and merged[k] != stored.get(k)]
            if (config is not None and not merged.get("init_from")) or \
                    "model_config" in overrides or \
                    any(k.startswith("model_config.") for k in overrides):
                # (with init_from the architecture comes from that checkpoint, not the config)
                stored_mc = {k: v for k, v in stored["model_config"].items()
                             if k != "energy_shift"}
                new_mc = {k: v for k, v in merged["model_config"].items() if k != "energy_shift"}
                _same_lattice_terms(stored_mc, new_mc, given_mc)
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
            self.cfg = load_train_config(config, overrides)
        cfg = self.cfg
        if cfg.get("committee"):
            raise ConfigError(f"config key 'committee: {cfg['committee']}' asks for a committee "
                              "of models: train it with ecnn_pyg.committee.train_committee (or "
                              "ecnn-pyg train), not with one Trainer")
        self.run_dir = Path(cfg["run_dir"])
        if not resume and (self.run_dir / "last.pt").exists():
            raise ConfigError(f"run directory '{self.run_dir}' already holds a run (last.pt); "
                              "pass --resume to continue it or choose another run_dir")
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ConfigError(f"run_dir '{self.run_dir}' exists and is not a directory")
        if cfg["init_from"] and not resume and not Path(cfg["init_from"]).is_file():
            raise CheckpointError(f"init_from '{cfg['init_from']}' does not exist (or is not a "
                                  "file)")
        check_writable(self.run_dir / "last.pt", "run directory")   # before any work
        if cfg["num_threads"]:
            torch.set_num_threads(cfg["num_threads"])
        self.dtype = DTYPES[cfg["dtype"] or MODEL_TYPES[cfg["model"]].default_dtype]
        self._load_data()
        self._alone = bool(alone)
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
                part.train_source = part.train_source[:left]
                left -= len(part.train[K.ENERGY])
        if sum(len(p.train[K.ENERGY]) for p in parts) == 0:
            raise ValueError(f"'{path}' has no complete samples in split '{cfg['train_split']}'")
        self.lattice = _data_lattice(self.meta, path)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.dtype)
        self.notes = []
        for part in parts:
            part.train = {k: t(v) for k, v in part.train.items()}
            part.val = {k: t(v) for k, v in part.val.items()}
            part.batcher = GraphBatcher(part.graph)
            part.augment = None
            if cfg["augment"] and self.lattice is not None:
                part.augment = RotationAugment(part.graph, self.lattice,
                                               reflections=cfg["augment"] == "point_group")
        if cfg["augment"]:
            kind = "symmetry operations" if cfg["augment"] == "point_group" else "rotations"
            if self.lattice is None:
                self.notes.append(f"augment: the data ('{path}') do not record their lattice, "
                                  "so there is no symmetry to augment with; augmentation is off")
            elif all(p.augment.trivial for p in parts):
                self.notes.append(
                    f"augment: lattice '{self.lattice.name}' has no {kind} other than the "
                    f"identity that map it (basis and hopping shells) and the supercell"
                    f"{'s' if len(parts) > 1 else ''} {', '.join(str(p.size) for p in parts)} "
                    "onto themselves; augmentation is off")
            for part in parts:
                if part.augment is not None and part.augment.trivial:
                    part.augment = None
        self.parts = parts
        self._set_sample_weights()

    def _set_sample_weights(self) -> None:
        """``weight_by_energy: D``: every sample weighs ``(D / (e - e_min + D))^2``;
        ``data_weights``: times the weight of the file it came from.

        ``e`` is the sample's label energy per site and ``e_min`` the lowest of the training
        split (over all supercells), or with ``weight_by_energy_above: zeeman_hull`` the
        lowest at the sample's magnetization (:func:`zeeman_hull`): the field-free label of
        a state that is a minimum only in a field H then counts as a minimum, not as a state
        about ``H |M| / N`` per site above the zero-field one. The weights are divided by
        their mean over the training split, and the validation samples get the same formula
        and divisor (one below the reference weighs as the lowest training sample), so that
        the validation loss (which selects the best epoch) is the quantity the training
        lowers.
        The low-energy states that decide which phase wins (minima, crystals) then count
        more than disordered ones D or more per site above them, whose energy errors a
        strictly local model cannot bring to zero at the same time (energy-based weighting
        of fitting data, as interatomic-potential fitting codes do). A file's weight counts
        its samples in the loss as if the file were listed that many times (the per-type
        weights of those codes), e.g. scarce snapshots of the exact dynamics among many of
        the model's own. The reported RMSEs stay unweighted. Without either key every
        sample weighs 1 (``part.train_weight`` is None).
        """
        d = self.cfg["weight_by_energy"]
        if d is None and self.cfg["data_weights"] is None:
            return
        raw = {split: [torch.ones(getattr(p, split)[K.ENERGY].shape[0], dtype=torch.float64)
                       for p in self.parts] for split in ("train", "val")}
        if d is not None:
            per_site = {split: [getattr(p, split)[K.ENERGY].double() / p.n_sites
                                for p in self.parts] for split in ("train", "val")}
            if self.cfg["weight_by_energy_above"] == "zeeman_hull":
                mag = {split: [getattr(p, split)[K.SPIN].double().mean(dim=1).norm(dim=-1)
                               for p in self.parts] for split in ("train", "val")}
                ref = zeeman_hull(torch.cat(mag["train"]), torch.cat(per_site["train"]))
                above = {split: [e - ref(m) for e, m in zip(per_site[split], mag[split])]
                         for split in per_site}
            else:
                e_min = float(torch.cat(per_site["train"]).min())
                above = {split: [e - e_min for e in es] for split, es in per_site.items()}
            raw = {split: [(d / (a + d).clamp_min(d)) ** 2 for a in ab]
                   for split, ab in above.items()}
        if self.cfg["data_weights"] is not None:
            data = self.cfg["data"] if isinstance(self.cfg["data"], list) else [self.cfg["data"]]
            per_file = torch.tensor(data_file_weights(self.cfg["data_weights"], data),
                                    dtype=torch.float64)
            for split in raw:
                raw[split] = [w * per_file[torch.as_tensor(getattr(p, f"{split}_source"))]
                              for w, p in zip(raw[split], self.parts)]
        norm = float(torch.cat(raw["train"]).mean())
        for i, part in enumerate(self.parts):
            part.train_weight = (raw["train"][i] / norm).to(self.dtype)
            part.val_weight = (raw["val"][i] / norm).to(self.dtype)

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
            if init.get("kind") == "committee":
                raise ConfigError(f"init_from '{cfg['init_from']}' is a committee: start a "
                                  "committee from it with ecnn_pyg.committee.train_committee("
                                  "..., init_from=...), or give one member's best.pt")
            if init["model_type"] != cfg["model"]:
                raise ConfigError(f"init_from '{cfg['init_from']}' holds a {init['model_type']} "
                                  f"model, the config trains a {cfg['model']}")
            mc = dict(init["model_config"])         # the architecture of the initial weights
            cfg["model_config"] = mc
        elif self.resume_state is None:
            self._resolve_model_lattice(mc)
            if cfg["auto_energy_shift"] and "energy_shift" not in (self._given_model_keys or ()):
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
            shift = (ck.get("model_config") or {}).get("energy_shift")
            if shift is not None and self.calibrates_energy:
                self._set_energy_shift(float(shift))        # as calibrated after that epoch
            self.optimizer.load_state_dict(ck["optimizer_state"])
            if self.scheduler is not None and ck.get("scheduler_state") is not None:
                self.scheduler.load_state_dict(ck["scheduler_state"])
            self.epoch = int(ck["epoch"])
            self.best = ck["best"]
            self.bad_epochs = int(ck["bad_epochs"])
            self.wall_time = float(ck.get("wall_time", 0.0))
            torch.set_rng_state(ck["rng_state"])
        # under torchrun: DDP, batches split over the ranks (unless this rank trains alone)
        self.dp = DataParallel(self.model, alone=True) if self._alone else data_parallel(self)

    @property
    def _given_model_keys(self):
        return self.cfg.get("_given_model_keys")

    def _resolve_model_lattice(self, mc: Dict[str, Any]) -> None:
        """Fill the model's lattice in from the data's (unless the config set it), and check it.

        A built-in lattice stays a name; a lattice of one's own becomes its
        definition, so the checkpoint rebuilds the model without the file.
        """
        if "lattice" not in mc or self.lattice is None:
            return
        given = "lattice" in (self._given_model_keys or ())
        if not given:
            mc["lattice"] = lattice_reference(self.lattice)
        elif mc["lattice"] is None:          # a model for graphs of this lattice, by counts
            for key, count in (("num_bond_types", len(self.lattice.bonds)),
                               ("num_shells", len(self.lattice.shells))):
                if key in mc and mc[key] is None:
                    mc[key] = count
        else:
            try:
                lat = load_lattice(mc["lattice"])
            except LatticeError as err:
                raise ConfigError(f"model_config.lattice: {err}") from None
            if lat.structure() != self.lattice.structure():
                raise ConfigError(
                    f"model_config.lattice {lat.name!r} is not the lattice of the data "
                    f"({self.lattice.name!r}: vectors, basis, shells or bonds differ); leave "
                    "model_config.lattice out to take the data's lattice")
            mc["lattice"] = lattice_reference(lat)

    # ------------------------------------------------------------ energy
    @property
    def calibrates_energy(self) -> bool:
        """Whether the energy's constant is calibrated after every epoch (``energy_weight: 0``).

        A loss on fields alone leaves the constant of the energy free; it is
        then set after every epoch so that the mean of ``(E_ED - E_model) / N``
        over the training split is zero (as ``ecnn-pyg export`` does).
        """
        return self.cfg["energy_weight"] == 0 and hasattr(self.model, "energy_shift")

    def _set_energy_shift(self, shift: float) -> None:
        self.model.energy_shift = float(shift)
        self.model._config["energy_shift"] = float(shift)

    def calibrate_energy_shift(self) -> float:
        """Move the model's ``energy_shift`` so that its mean training energy error is zero.

        Returns:
            The change of the shift (per site).
        """
        model, bs = self.model, max(self.cfg["val_batch_size"] or self.cfg["batch_size"], 4)
        was_training = model.training
        model.eval()
        errors = []
        try:
            with torch.no_grad():
                for part in self.parts:       # under torchrun: this rank's share
                    spin, energy = self.dp.share(part.train[K.SPIN]), self.dp.share(
                        part.train[K.ENERGY])
                    for i in range(0, len(energy), bs):
                        b = part.batcher(spin[i:i + bs])
                        out = model(b, b[K.SPIN], compute_field=False, training=False)
                        errors.append((energy[i:i + bs].double()
                                       - out[K.ENERGY].detach().double()) / part.n_sites)
        finally:
            model.train(was_training)
        delta = self.dp.mean(errors)          # float(torch.cat(errors).mean()) in one process
        if math.isfinite(delta):
            self._set_energy_shift(model.energy_shift + delta)
        return delta

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
            "energy_calibration": ("energy_shift set after every epoch to the mean "
                                   "(E_ED - E_model)/N of the training split (energies not "
                                   "trained: energy_weight 0)") if self.calibrates_energy
            else None,
            "data": {"path": str(self.cfg["data"]), "lattice": self.meta.get("lattice"),
                     "lattice_definition": self.lattice.to_dict() if self.lattice else None,
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
        bar = tqdm(batches, disable=not (cfg["progress"] and self.dp.is_main), leave=False,
                   desc=f"epoch {epoch}", unit="batch")
        for part, idx, rot in bar:
            idx, rot, weight, real = self.dp.shard(idx, rot)
            arr = part.train
            spin, field, energy = arr[K.SPIN][idx], arr[K.FIELD][idx], arr[K.ENERGY][idx]
            if rot is not None:
                spin, field = part.augment.apply(rot, spin, field)
            b = part.batcher(spin, field, energy)
            nn_ = torch.full((len(idx),), float(part.n_sites), dtype=self.dtype)
            out = self.dp.model(b, b[K.SPIN], compute_field=True, training=True)
            w = part.train_weight[idx] if part.train_weight is not None else None
            loss = field_energy_loss(out[K.FIELD], b[K.FIELD], out[K.ENERGY], energy, nn_,
                                     cfg["energy_weight"], weights=w)
            # (under DDP a rank alone must not stop inside a step: the NaN reaches every
            # rank's weights through the gradient reduction, and the epoch's check stops all)
            if not self.dp.active and not torch.isfinite(loss.detach()):
                raise TrainingDivergedError(
                    f"the training loss became {float(loss.detach())} in epoch {epoch}"
                    + self._diverged_advice())
            self.optimizer.zero_grad(set_to_none=True)
            self.dp.backward(loss, weight)      # loss.backward() in one process
            if cfg["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg["grad_clip"])
            self.optimizer.step()
            loss_value = float(loss.detach())
            if real:
                acc.update(out[K.FIELD], b[K.FIELD], b[K.SPIN], out[K.ENERGY], energy, nn_,
                           loss_value)
            if cfg["progress"]:
                bar.set_postfix(loss=f"{loss_value:.3g}")
        return self.dp.reduce_metrics(acc)

    def validate(self) -> Dict[str, float]:
        """Loss and RMSEs (field, transverse field, E per site) on the validation split.

        Returns:
            The metrics, NaN when the validation split is empty.
        """
        if sum(p.val[K.ENERGY].shape[0] for p in self.parts) == 0:
            return {k: float("nan") for k in ("loss", "rmse_field", "rmse_field_transverse",
                                               "rmse_energy_per_site")}
        if self.dp.active:       # the validation samples split over the ranks
            return self.dp.validate(self.parts, self.cfg["val_batch_size"]
                                    or max(self.cfg["batch_size"], 4), self.cfg["energy_weight"])
        return evaluate_parts(self.model, self.parts, "val",
                              batch_size=self.cfg["val_batch_size"] or max(self.cfg["batch_size"], 4),
                              energy_weight=self.cfg["energy_weight"])["metrics"]

    def _diverged_advice(self) -> str:
        best = self.run_dir / "best.pt"
        kept = (f"the last good checkpoint, {best} (epoch {self.best['epoch']}), is kept"
                if best.exists() else "no checkpoint was written")
        return (f"; training stopped ({kept}). Lower lr (now "
                f"{self.optimizer.param_groups[0]['lr']:.3g}), set grad_clip, or check the data")

    def _remove_orphans(self) -> None:
        # temporary files of checkpoint writes that a killed process left behind (this
        # process holds the run directory's lock, so no other writer owns them)
        for name in ("best.pt", "last.pt"):
            for tmp in self.run_dir.glob(f".{name}.*.tmp"):
                try:
                    tmp.unlink()
                    print(f"removed {tmp}, left by an interrupted checkpoint write", flush=True)
                except OSError:
                    pass

    def run(self) -> Path:
        """Train until ``max_epochs``, early stopping or ``max_time``.

        Takes the run directory's lock (:func:`ecnn_pyg.locking.output_lock`)
        for the whole run: a second run in the same directory is refused.

        Returns:
            The run directory.

        Raises:
            OutputLockedError: if another process trains in the run directory.
            TrainingDivergedError: if the loss or the weights become
                non-finite; the checkpoints of the last good epoch are kept.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.dp.is_main:     # under torchrun: rank 0 holds the lock, writes and prints
            with contextlib.redirect_stdout(io.StringIO()):
                return self._run()
        with output_lock(self.run_dir, what="run directory"):
            return self._run()

    def _run(self) -> Path:
        cfg = self.cfg
        main = self.dp.is_main
        if main:
            self._remove_orphans()
        if self.resume_state is None and main:
            (self.run_dir / "config.yaml").write_text(
                f"# ecnn_pyg {__version__} training config (resolved)\n"
                + yaml.safe_dump({k: v for k, v in cfg.items() if not k.startswith("_")},
                                 sort_keys=False))
        for note in self.notes:
            print(note, flush=True)
        if self.calibrates_energy:
            print("energy_weight = 0: the loss has fields only, so energies are not trained; "
                  "the constant of the energy is calibrated on the training split after every "
                  "epoch (mean (E_ED - E_model)/N = 0)", flush=True)
        t_start = time.time()
        reason = "max_epochs"
        if self.bad_epochs >= (cfg["early_stopping_patience"] or math.inf):
            reason = "early stopping (before resume)"
        while self.epoch < cfg["max_epochs"] and reason == "max_epochs":
            epoch = self.epoch + 1
            t0 = time.time()
            tr = self.train_epoch(epoch)
            if not all(torch.isfinite(p).all() for p in self.model.parameters()):
                raise TrainingDivergedError(f"the weights became non-finite in epoch {epoch}"
                                            + self._diverged_advice())
            if self.calibrates_energy:
                self.calibrate_energy_shift()
            va = self.validate()
            # the loss that picks best.pt: the validation loss, or the training loss where
            # there is no validation sample or best_on says so (a validation split that lacks
            # the states weight_by_energy favours would pick an epoch by the wrong ones)
            val_loss = va["loss"] if not math.isnan(va["loss"]) and cfg["best_on"] == "val" \
                else tr["loss"]
            if not math.isfinite(val_loss):
                raise TrainingDivergedError(f"the validation loss became {val_loss} in epoch "
                                            f"{epoch}" + self._diverged_advice())
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
            if main:           # under torchrun: rank 0 writes
                write_log_row(self.run_dir / "log.csv", row)
                state = self.state(row)
                if improved:
                    save_checkpoint(self.run_dir / "best.pt", state)
                save_checkpoint(self.run_dir / "last.pt", state)
                print(f"epoch {epoch:5d}  train RMSE(B) {tr['rmse_field']:.5f}  val RMSE(B) "
                      f"{va['rmse_field']:.5f} (transverse {va['rmse_field_transverse']:.5f})  "
                      f"val RMSE(E/N) {va['rmse_energy_per_site']:.3e}  lr {row['lr']:.3g}  "
                      f"{dt:.1f} s" + ("  *" if improved else ""), flush=True)
                if cfg["plot_every"] and epoch % cfg["plot_every"] == 0:
                    plot_learning_curve(self.run_dir / "log.csv",
                                        self.run_dir / "learning_curve.png")
            if cfg["early_stopping_patience"] and self.bad_epochs >= cfg["early_stopping_patience"]:
                reason = "early stopping"
            elif cfg["max_time"] is not None and \
                    self.dp.agree(time.time() - t_start >= cfg["max_time"]):
                reason = "max_time"
        if main and cfg["plot_every"] and (self.run_dir / "log.csv").exists():
            plot_learning_curve(self.run_dir / "log.csv", self.run_dir / "learning_curve.png")
        self.stop_reason = reason
        print(f"stopped after epoch {self.epoch} ({reason}); best {cfg['best_on']} loss "
              f"{self.best['val_loss']:.6g} at epoch {self.best['epoch']}; run dir {self.run_dir}",
              flush=True)
        if self.calibrates_energy:
            print(f"energies were not trained (energy_weight 0): their constant was calibrated "
                  f"on the training split (energy_shift {self.model.energy_shift:.6g} per site)",
                  flush=True)
        return self.run_dir


def train(config=None, overrides: Optional[Mapping] = None, resume: bool = False) -> Path:
    """Run (or resume) the training described by ``config`` (``ecnn-pyg train``).

    Args:
        config: a YAML path or a mapping (see :class:`Trainer`).
        overrides: ``{key: value}`` applied over ``config``.
        resume: continue the run in ``run_dir`` from its ``last.pt``.

    Returns:
        The run directory.

    Raises:
        ConfigError: if the config is invalid (see :class:`Trainer`).
        CheckpointError: if a checkpoint to resume or start from cannot be loaded.
        DataFileError: if the data cannot be read.
    """
    return Trainer(config, overrides, resume=resume).run()


def _data_lattice(meta: Mapping[str, Any], path) -> Optional[Lattice]:
    """The lattice of a data file: its stored definition, else its built-in name, else ``None``."""
    text = meta.get("lattice_yaml")
    try:
        if text:
            return Lattice.from_dict(yaml.safe_load(text))
        if meta.get("lattice"):
            return load_lattice(str(meta["lattice"]))
    except (LatticeError, yaml.YAMLError) as err:
        raise ValueError(f"'{path}': the lattice stored with the data cannot be read: "
                         f"{err}") from None
    return None


def _same_lattice_terms(stored_mc: Dict[str, Any], new_mc: Dict[str, Any], given) -> None:
    """Put a resumed config's model lattice in the stored run's terms (in place).

    A run stores the lattice it took from the data (a built-in name or a
    definition); a config that leaves the lattice out means that lattice, and
    a file path means its definition.
    """
    if "lattice" not in stored_mc or "lattice" not in new_mc:
        return
    if "lattice" not in given:
        for key in ("lattice", "num_bond_types", "num_shells"):
            if key in stored_mc:
                new_mc[key] = stored_mc[key]
    elif new_mc["lattice"] is not None:
        try:
            new_mc["lattice"] = lattice_reference(new_mc["lattice"])
        except LatticeError as err:
            raise ConfigError(f"model_config.lattice: {err}") from None
