r"""Data-parallel training: one global batch, split over the ranks, averaged by DDP.

``torchrun --nproc-per-node N -m ecnn_pyg.cli train --config F.yaml`` runs
the same :class:`~ecnn_pyg.training.Trainer` on every rank; the trainer asks
:func:`data_parallel` for a :class:`DataParallel` and goes through it at four
places:

* the epoch order and the rotations are drawn from ``(seed, epoch)`` on every
  rank exactly as in one process, so every rank knows the whole list of
  global batches; :meth:`DataParallel.shard` gives a rank its share of each
  (global positions ``rank, rank + N, ...`` of the batch) and the weight
  ``N n_rank / n_batch`` of its mean loss, so that DDP's average of the
  gradients is the gradient of the global batch's mean loss (a rank without
  a sample in a batch runs one with weight 0: DDP needs every rank in every
  step);
* :attr:`DataParallel.model` is the model wrapped in
  :class:`torch.nn.parallel.DistributedDataParallel` (parameters that get no
  gradient from the loss, such as the energy offset of a field-only fit, are
  left out of its reduction, so the optimizer sees ``None`` there as in one
  process);
* :meth:`DataParallel.reduce_metrics` and :meth:`DataParallel.validate` sum
  the squared errors of all ranks (the validation split is split over the
  ranks too), so every rank sees the global metrics, and the scheduler and
  early stopping take the same decisions everywhere;
* only rank 0 writes (:attr:`DataParallel.is_main`): config, log, checkpoints,
  plots, messages; :meth:`DataParallel.agree` gives a decision that depends
  on the clock (``max_time``) rank 0's value.

The parameters after a step therefore equal those of one process with the
same ``batch_size`` up to float rounding, and a checkpoint holds nothing that
depends on the number of ranks: ``--resume`` works under any world size.
In a single process :func:`data_parallel` returns an object whose methods do
nothing (the results are bit for bit those of the plain trainer).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .. import keys as K
from ..metrics import ErrorAccumulator
from . import comm

__all__ = ["DataParallel", "data_parallel", "unused_parameters"]

_ACC_FIELDS = ("sq_b", "sq_bt", "n_b", "sq_e", "sum_e", "n_e", "loss", "n_loss")


def unused_parameters(model: torch.nn.Module, loss_of_model) -> List[str]:
    """Names of the trainable parameters that get no gradient from a loss.

    Args:
        model: the model.
        loss_of_model: ``f(model) -> scalar loss`` (one small batch).

    Returns:
        The names, e.g. the output bias when only the field (a derivative of
        the energy) enters the loss.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss_of_model(model), [p for _, p in named],
                                allow_unused=True)
    return [n for (n, _), g in zip(named, grads) if g is None]


class DataParallel:
    """The data-parallel side of a training run (see the module docstring).

    Args:
        model: the trainer's model (wrapped in DDP when several ranks run).
        loss_of_model: ``f(model) -> loss`` of a small batch, to find the
            parameters without gradient (several ranks only).
        alone: train in this process alone even where a process group runs
            (a committee member on its own rank): no DDP, this process writes.

    Attributes:
        rank, world: this rank and the number of ranks (0 and 1 in one process).
        model: what the training step calls: the DDP wrapper, or the model.
        ignored: the parameters left out of the gradient reduction.
    """

    def __init__(self, model: torch.nn.Module, loss_of_model=None, alone: bool = False):
        self.rank, self.world = (0, 1) if alone else (comm.rank(), comm.world_size())
        self.ignored: List[str] = []
        self.model = model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP
            if loss_of_model is not None:
                self.ignored = unused_parameters(model, loss_of_model)
            if self.ignored:
                DDP._set_params_and_buffers_to_ignore_for_model(model, self.ignored)
            with comm.guard("wrapping the model in DistributedDataParallel"):
                # the buffers are equal on every rank: no buffer broadcast before each step
                self.model = DDP(model, forward_sync_buffers=False)

    @property
    def active(self) -> bool:
        """Whether several ranks train together."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Whether this rank writes the run directory and prints (rank 0)."""
        return self.rank == 0

    def shard(self, idx: Tensor, rot: Optional[Tensor]
              ) -> Tuple[Tensor, Optional[Tensor], float, bool]:
        """This rank's share of a global batch.

        Args:
            idx: the sample indices of the global batch.
            rot: their rotation indices, or ``None``.

        Returns:
            ``(idx, rot, weight, real)``: the samples at global positions
            ``rank, rank + world, ...``; the weight of their mean loss
            (``world * n_rank / n_batch``; 1 in one process); ``real`` is
            ``False`` when the rank has no sample in this batch and runs the
            batch's first sample with weight 0 instead.
        """
        if self.world == 1:
            return idx, rot, 1.0, True
        mine = slice(self.rank, None, self.world)
        local = idx[mine]
        if len(local) == 0:
            return idx[:1], None if rot is None else rot[:1], 0.0, False
        return local, None if rot is None else rot[mine], \
            self.world * len(local) / len(idx), True

    def backward(self, loss: Tensor, weight: float = 1.0) -> None:
        """Gradients of ``weight * loss``, averaged over the ranks by DDP.

        Args:
            loss: this rank's mean loss of its share of the batch.
            weight: the share's weight (:meth:`shard`).

        Raises:
            DistributedError: if another rank died or did not answer in time.
        """
        if self.world == 1 and weight == 1.0:
            loss.backward()
            return
        with comm.guard("averaging the gradients over the ranks (DDP)"):
            (loss * weight).backward()

    def share(self, samples: Tensor) -> Tensor:
        """This rank's share of a split's samples (positions ``rank, rank + world, ...``)."""
        return samples if self.world == 1 else samples[self.rank::self.world]

    def mean(self, chunks: List[Tensor]) -> float:
        """The mean of the values of every rank's ``chunks`` (the same on every rank).

        Args:
            chunks: this rank's values (possibly none).

        Returns:
            ``float(torch.cat(chunks).mean())`` in one process; over the ranks,
            the sum of all values over their number.
        """
        if self.world == 1:
            return float(torch.cat(chunks).mean())
        local = torch.cat(chunks).double() if chunks else torch.zeros(0, dtype=torch.float64)
        every = comm.all_gather_object((float(local.sum()), int(local.numel())),
                                       what="averaging over the ranks")
        n = sum(c for _, c in every)
        return sum(s for s, _ in every) / n if n else float("nan")

    def reduce_metrics(self, acc: ErrorAccumulator) -> Dict[str, float]:
        """The metrics of the squared errors of all ranks (summed in rank order).

        Args:
            acc: this rank's accumulator of the epoch (or of a validation).

        Returns:
            :meth:`ErrorAccumulator.compute` of the sums, the same on every rank.
        """
        if self.world == 1:
            return acc.compute()
        mine = [getattr(acc, f) for f in _ACC_FIELDS]
        every = comm.all_gather_object(mine, what="summing the training metrics")
        total = ErrorAccumulator()
        for values in every:
            for f, v in zip(_ACC_FIELDS, values):
                setattr(total, f, getattr(total, f) + v)
        return total.compute()

    def validate(self, parts, batch_size: int, energy_weight: float) -> Dict[str, float]:
        """Validation metrics with the validation samples split over the ranks.

        Args:
            parts: the trainer's :class:`~ecnn_pyg.training.data.TrainingPart` objects.
            batch_size: configurations per forward pass.
            energy_weight: weight of the energy term of the loss.

        Returns:
            The metrics of all validation samples (the same on every rank).
        """
        from ..training.evaluate import evaluate_arrays
        acc = ErrorAccumulator()
        module = self.model.module if self.world > 1 else self.model
        mine = slice(self.rank, None, self.world)
        for part in parts:
            val = {k: v[mine] for k, v in part.val.items()}
            w = part.val_weight
            if val[K.ENERGY].shape[0]:
                evaluate_arrays(module, part.graph, val[K.SPIN], val[K.FIELD], val[K.ENERGY],
                                batch_size=batch_size, energy_weight=energy_weight,
                                accumulator=acc, weights=None if w is None else w[mine])
        return self.reduce_metrics(acc)

    def agree(self, value: Any, what: str = "agreeing on when to stop") -> Any:
        """Rank 0's ``value`` on every rank (e.g. a decision that depends on the clock)."""
        if self.world == 1:
            return value
        return comm.broadcast_object(value, what=what)


def _fingerprint(trainer) -> Dict[str, Any]:
    cfg = trainer.cfg
    return {"seed": cfg["seed"], "batch_size": cfg["batch_size"], "epoch": trainer.epoch,
            "model": cfg["model"], "dtype": str(trainer.dtype),
            "samples (train, val) per supercell": [
                (int(p.train[K.ENERGY].shape[0]), int(p.val[K.ENERGY].shape[0]))
                for p in trainer.parts],
            "sum of the training energies": round(float(sum(
                p.train[K.ENERGY].double().sum() for p in trainer.parts)), 9),
            "parameters": sum(p.numel() for p in trainer.model.parameters())}


def _check_same_run(trainer) -> None:
    """Refuse ranks that would train different runs (other data, config or checkpoint).

    Raises:
        ValueError: on every rank, naming what differs from rank 0.
    """
    every = comm.all_gather_object(_fingerprint(trainer), what="comparing the ranks' runs")
    diff = sorted({k for f in every[1:] for k in f if f[k] != every[0][k]})
    if diff:
        raise ValueError(
            "the ranks would train different runs (" + "; ".join(
                f"{k}: " + ", ".join(f"rank {r} {f[k]!r}" for r, f in enumerate(every))
                for k in diff)
            + "): every rank must read the same data, config and checkpoint")


def data_parallel(trainer) -> DataParallel:
    """The :class:`DataParallel` of a :class:`~ecnn_pyg.training.Trainer` (after its model).

    Starts the process group from the launcher's environment (gloo: the trainer
    runs on the CPU) if none runs yet; in a single process nothing is started.

    Args:
        trainer: the trainer, with ``model``, ``parts``, ``cfg`` and ``dtype`` set.

    Returns:
        The :class:`DataParallel` of the run.

    Raises:
        DistributedError: if the ranks cannot form a group within the timeout.
        ValueError: if the ranks hold different data, settings or checkpoints
            (they would not take the same steps).
    """
    comm.init(backend="gloo")
    if comm.world_size() == 1:
        return DataParallel(trainer.model)
    _check_same_run(trainer)
    from ..training.loss import field_energy_loss

    def loss_of_model(model):
        # one sample of every supercell: a parameter used by any of them is reduced
        total = 0.0
        for part in trainer.parts:
            arr = part.train
            if not arr[K.ENERGY].shape[0]:
                continue
            spin, field, energy = arr[K.SPIN][:1], arr[K.FIELD][:1], arr[K.ENERGY][:1]
            b = part.batcher(spin, field, energy)
            out = model(b, b[K.SPIN], compute_field=True, training=True)
            n = torch.full((1,), float(part.n_sites), dtype=trainer.dtype)
            total = total + field_energy_loss(out[K.FIELD], b[K.FIELD], out[K.ENERGY], energy,
                                              n, trainer.cfg["energy_weight"])
        return total

    return DataParallel(trainer.model, loss_of_model)
