r"""Committees of models: the mean field and the members' disagreement as its uncertainty.

A committee is ``M >= 2`` models of one lattice that differ only in their
random seed (initial weights and order of the training data). Its prediction
is the members' mean, and the spread of the members is a measure of how far
a configuration lies from what they were trained on:

.. math::

    \langle \mathbf B(r) \rangle = \frac1M \sum_m \mathbf B_m(r), \qquad
    \sigma_B(r) = \Big[\frac1M \sum_m |\mathbf B_m(r) - \langle \mathbf B(r) \rangle|^2\Big]^{1/2}

(the RMS over members of the length of the deviation vector at site ``r``;
the energy's :math:`\sigma_E` is the RMS over members of :math:`E_m - \langle E\rangle`).

* :class:`Committee` is a :class:`torch.nn.Module` with the ECNN's call
  signature, so it runs wherever a model does (``evaluate``, ``simulate``,
  :func:`~ecnn_pyg.dynamics.model_field_source`, tiled evaluation);
* :func:`save_committee` writes one checkpoint file (kind ``"committee"``)
  with every member's checkpoint inside; :func:`ecnn_pyg.pretrained.load_model`
  returns a :class:`Committee` for it (or for the folder holding its
  ``committee.pt``);
* :func:`train_committee` trains the members in turn with the ordinary
  :class:`~ecnn_pyg.training.Trainer` (resumable member by member) and writes
  ``<run_dir>/committee.pt`` with validation metrics and trust levels;
* :class:`SnapshotUncertainty` scores snapshots (``simulate`` records
  ``sigma_mean``, ``sigma_max`` and ``sigma_rms`` per snapshot) and raises one
  :class:`UncertaintyWarning` when a snapshot's ``sigma_max`` exceeds the
  upper trust level.

Trust levels are per-site :math:`\sigma_B` values (units of the field) to be
compared with a snapshot's largest per-site :math:`\sigma_B`, ``sigma_max``.
By default (:func:`default_trust`) ``lower`` is the RMS over validation sites
of the committee mean's error vector, :math:`e = \langle|\mathbf B_{mean} -
\mathbf B_{ED}|^2\rangle^{1/2}` (:math:`\sqrt 3` times the componentwise
RMSE(B)), and ``upper = 3 * lower``. The user's guide is ``docs/committee.md``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from . import keys as K
from .checkpoint import COMMITTEE_KIND, CheckpointError, load_checkpoint, save_checkpoint, \
    validate_checkpoint

__all__ = ["Committee", "UncertaintyWarning", "SnapshotUncertainty", "committee_field_stats",
           "committee_predictions", "committee_statistics", "score_predictions",
           "score_committee", "save_committee",
           "committee_from_checkpoint", "committee_file", "read_committee_info", "train_committee",
           "default_trust", "check_trust", "check_members", "UPPER_TRUST_FACTOR"]

#: the default upper trust level is this multiple of the lower one (:func:`default_trust`)
UPPER_TRUST_FACTOR = 3.0
#: keys of :attr:`Committee.trust`
TRUST_KEYS = ("lower", "upper")
#: the Hamiltonian entries of ``trained_on`` that members must share
_HAMILTONIAN_KEYS = ("lattice", "lattice_definition", "hoppings", "model")


class UncertaintyWarning(UserWarning):
    """A committee's disagreement exceeded its upper trust level (the model extrapolates)."""


def check_members(members: Any) -> int:
    """The committee size ``M`` as an int, or a ValueError saying that ``M >= 2`` is needed.

    Args:
        members: the requested number of members.

    Returns:
        ``int(members)``.

    Raises:
        ValueError: if ``members`` is not an integer >= 2.
    """
    if isinstance(members, bool) or not isinstance(members, (int, np.integer)):
        raise ValueError(f"the number of committee members must be an integer >= 2, "
                         f"got {members!r}")
    if members < 2:
        raise ValueError(f"a committee needs M >= 2 members (its uncertainty is their "
                         f"disagreement), got M = {int(members)}")
    return int(members)


def check_trust(trust: Optional[Mapping[str, Any]]) -> Dict[str, Optional[float]]:
    """Checked trust levels ``{"lower": float | None, "upper": float | None}``.

    Args:
        trust: a mapping with (some of) the keys ``lower`` and ``upper``:
            per-site :math:`\\sigma_B` levels, finite and > 0, or ``None``.

    Returns:
        Both keys, ``None`` where not given.

    Raises:
        ValueError: for another key, a value that is not a finite number > 0,
            or ``lower > upper``.
    """
    out: Dict[str, Optional[float]] = {"lower": None, "upper": None}
    if trust is None:
        return out
    if not isinstance(trust, Mapping):
        raise ValueError(f"trust levels must be a mapping {{lower: ..., upper: ...}}, "
                         f"got {type(trust).__name__}")
    stray = sorted(set(trust) - set(TRUST_KEYS))
    if stray:
        raise ValueError(f"unknown trust level(s) {stray}; expected 'lower' and 'upper'")
    for key in TRUST_KEYS:
        value = trust.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating,
                                                             np.integer)) \
                or not math.isfinite(float(value)) or value <= 0:
            raise ValueError(f"trust level '{key}' must be a finite number > 0 (a per-site "
                             f"sigma_B, units of the field) or null, got {value!r}")
        out[key] = float(value)
    if out["lower"] is not None and out["upper"] is not None and out["lower"] > out["upper"]:
        raise ValueError(f"trust level lower ({out['lower']:g}) must not exceed upper "
                         f"({out['upper']:g})")
    return out


def default_trust(error_site_rms: float, factor: float = UPPER_TRUST_FACTOR
                  ) -> Dict[str, Optional[float]]:
    r"""The default trust levels from the committee's validation error.

    Args:
        error_site_rms: RMS over validation sites of :math:`|\mathbf B_{mean} -
            \mathbf B_{ED}|` (the ``val_error_site_rms`` metric).
        factor: ``upper / lower``.

    Returns:
        ``{"lower": error_site_rms, "upper": factor * error_site_rms}``, both
        ``None`` if the error is not a finite number > 0.
    """
    if error_site_rms is None or not math.isfinite(error_site_rms) or error_site_rms <= 0:
        return {"lower": None, "upper": None}
    return {"lower": float(error_site_rms), "upper": float(factor * error_site_rms)}


def _config_lattice(model) -> Any:
    cfg = getattr(model, "config", None)
    return cfg.get("lattice") if isinstance(cfg, Mapping) else getattr(model, "lattice", None)


class Committee(torch.nn.Module):
    r"""``M >= 2`` models of one lattice; their mean and their disagreement.

    Called like an :class:`~ecnn_pyg.nn.ECNN` (``committee(graph, spins)``);
    each member is evaluated in turn, so the peak memory is that of one
    member (plus the ``M`` outputs).

    Args:
        members: the models (same class, lattice, neighbourhood and dtype).
        trust: trust levels ``{"lower", "upper"}`` (:func:`check_trust`).

    Attributes:
        members (torch.nn.ModuleList): the models.
        trust (dict): ``{"lower": float | None, "upper": float | None}``,
            per-site :math:`\sigma_B` levels compared with a snapshot's
            largest :math:`\sigma_B`.
        trained_on (dict): the members' common training record (lattice,
            hoppings, ED parameters), as a model's ``trained_on``.
        metrics (dict): the validation metrics of the checkpoint (``{}`` if none).

    Raises:
        ValueError: if there are fewer than two members, a member is not a
            module, or the members differ in class, lattice, neighbourhood,
            dtype or training Hamiltonian.

    Shapes:
        - **input:** graph(s) of :func:`~ecnn_pyg.lattice_graph`, spins ``(N, 3)``
        - **output:** ``{"energy": (B,), "local_energy": (N,), "field": (N, 3),
          "field_sigma": (N,), "energy_sigma": (B,)}`` (no field entries
          with ``compute_field=False``)
    """

    def __init__(self, members: Sequence[torch.nn.Module],
                 trust: Optional[Mapping[str, Any]] = None):
        super().__init__()
        if isinstance(members, torch.nn.Module) or not hasattr(members, "__len__"):
            raise ValueError("a committee needs a list of M >= 2 models, got "
                             f"{type(members).__name__}")
        members = list(members)
        check_members(len(members))
        for i, m in enumerate(members):
            if not isinstance(m, torch.nn.Module):
                raise ValueError(f"committee member {i} is a {type(m).__name__}, not a model "
                                 "(torch.nn.Module)")
            if isinstance(m, Committee):
                raise ValueError(f"committee member {i} is itself a committee; give its members")
        first = members[0]
        dtypes = [next(m.parameters()).dtype if any(True for _ in m.parameters()) else None
                  for m in members]
        for i, m in enumerate(members[1:], 1):
            if type(m) is not type(first):
                raise ValueError(f"committee members must be models of one kind: member 0 is a "
                                 f"{type(first).__name__}, member {i} a {type(m).__name__}")
            if _config_lattice(m) != _config_lattice(first) or \
                    getattr(m, "lattice", None) != getattr(first, "lattice", None):
                raise ValueError(f"committee members must share their lattice: member 0 is "
                                 f"built for {getattr(first, 'lattice', None)!r}, member {i} "
                                 f"for {getattr(m, 'lattice', None)!r}")
            for attr in ("neighborhood", "weight_sharing", "slot_offsets"):
                if getattr(m, attr, None) != getattr(first, attr, None):
                    raise ValueError(f"committee members must share their {attr}: member 0 has "
                                     f"{getattr(first, attr, None)!r}, member {i} "
                                     f"{getattr(m, attr, None)!r}")
            if dtypes[i] != dtypes[0]:
                raise ValueError(f"committee members must share their dtype: member 0 is "
                                 f"{dtypes[0]}, member {i} {dtypes[i]}")
        self.members = torch.nn.ModuleList(members)
        self.trust = check_trust(trust)
        self.trained_on = self._common_training(members)
        self.metrics: Dict[str, Any] = {}

    @staticmethod
    def _common_training(members) -> Dict[str, Any]:
        records = [dict(getattr(m, "trained_on", None) or {}) for m in members]
        known = [(i, r) for i, r in enumerate(records) if r]
        if not known:
            return {}
        i0, first = known[0]
        for i, r in known[1:]:
            for key in _HAMILTONIAN_KEYS:
                if key in first and key in r and first[key] != r[key]:
                    raise ValueError(f"committee members were trained on different Hamiltonians: "
                                     f"'{key}' of member {i0} is {first[key]!r}, of member {i} "
                                     f"{r[key]!r}")
        return first

    # ------------------------------------------------ what other code reads from a model
    def __len__(self) -> int:
        return len(self.members)

    @property
    def lattice(self):
        """The members' lattice name."""
        return getattr(self.members[0], "lattice", None)

    @property
    def neighborhood(self) -> str:
        """The members' neighbourhood (``"bonds"`` or ``"paper"``)."""
        return getattr(self.members[0], "neighborhood", "bonds")

    @property
    def slot_offsets(self):
        """The members' fixed slots (``neighborhood="paper"``), else ``None``."""
        return getattr(self.members[0], "slot_offsets", None)

    @property
    def channels(self) -> int:
        """The largest ``channels`` of the members (a memory estimate of one evaluation)."""
        return max(int(getattr(m, "channels", 8)) for m in self.members)

    @property
    def lmax(self) -> int:
        """The largest ``lmax`` of the members."""
        return max(int(getattr(m, "lmax", 2)) for m in self.members)

    @property
    def spin_tolerance(self):
        """The members' spin-length tolerance at the forward entry."""
        return getattr(self.members[0], "spin_tolerance", None)

    def reset_cache(self) -> None:
        """Forget every member's cached adjacency."""
        for m in self.members:
            if hasattr(m, "reset_cache"):
                m.reset_cache()

    def extra_repr(self) -> str:
        """``M`` and the trust levels, shown in ``repr``.

        Returns:
            The text inside the module's parentheses.
        """
        return f"M={len(self.members)}, trust={self.trust}"

    # ----------------------------------------------------------------------- forward
    def forward(self, data, spin: Optional[torch.Tensor] = None, compute_field: bool = True,
                training: Optional[bool] = None, fused: bool = True) -> Dict[str, torch.Tensor]:
        """The members' mean energies and field, and their disagreement.

        Args:
            data: graph (``Data`` or ``Batch``) of :func:`~ecnn_pyg.lattice_graph`.
            spin: ``(N, 3)`` spins; default ``data["spin"]``.
            compute_field: also return the fields.
            training: passed to every member (keep the graph of the field).
            fused: passed to members that take it (the ECNN's fused convolution).

        Returns:
            ``{"energy", "local_energy", "field"}`` (members' means),
            ``"field_sigma"`` ``(N,)`` (:math:`\\sigma_B` per site) and
            ``"energy_sigma"`` ``(num_graphs,)``.
        """
        outs = []
        for m in self.members:
            kw = {"compute_field": compute_field, "training": training}
            if "fused" in getattr(type(m).forward, "__code__", ()).co_varnames:
                kw["fused"] = fused
            outs.append(m(data, spin, **kw))
        energy = torch.stack([o[K.ENERGY] for o in outs])
        res = {K.ENERGY: energy.mean(0),
               "energy_sigma": (energy - energy.mean(0)).pow(2).mean(0).sqrt()}
        if all("local_energy" in o for o in outs):
            res["local_energy"] = torch.stack([o["local_energy"] for o in outs]).mean(0)
        if compute_field:
            field = torch.stack([o[K.FIELD] for o in outs])            # (M, N, 3)
            mean = field.mean(0)
            res[K.FIELD] = mean
            res["field_sigma"] = (field - mean).pow(2).sum(-1).mean(0).sqrt()
        return res


# --------------------------------------------------------------------- statistics
def committee_statistics(fields: np.ndarray) -> Dict[str, np.ndarray]:
    r"""Mean and :math:`\sigma_B` of members' fields ``(M, ..., 3)`` (numpy, float64).

    Args:
        fields: the members' fields, member axis first, vector axis last.

    Returns:
        ``{"field": (..., 3) mean, "sigma": (...) RMS over members of |B_m - mean|}``.
    """
    f = np.asarray(fields, dtype=np.float64)
    mean = f.mean(0)
    return {"field": mean, "sigma": np.sqrt(((f - mean) ** 2).sum(-1).mean(0))}


def committee_field_stats(committee: Committee, graph, spins: torch.Tensor,
                          max_sites: Optional[int] = None) -> Dict[str, Any]:
    """Mean field and per-site :math:`\\sigma_B` of one configuration (no gradient kept).

    Args:
        committee: the :class:`Committee`.
        graph: the lattice graph of the ``N`` sites.
        spins: ``(N, 3)`` spins (cast to the committee's dtype and device).
        max_sites: evaluate every member region by region with halos, at most
            this many sites at once (exact; :mod:`ecnn_pyg.distributed.tiling`).

    Returns:
        ``{"field": (N, 3), "sigma": (N,)}`` (tensors in the committee's dtype,
        on the CPU) and the floats ``energy`` (the members' mean total energy),
        ``sigma_max``, ``sigma_mean`` and ``sigma_rms`` (RMS over sites).
    """
    p = next(committee.parameters())
    s = spins.detach().to(device=p.device, dtype=p.dtype)
    if s.ndim != 2 or s.shape[-1] != 3:
        raise ValueError(f"spins must have shape (N, 3), got {tuple(spins.shape)}")
    if max_sites is None:
        g = graph.to(p.device) if hasattr(graph, "to") else graph
        was = committee.training
        committee.eval()
        try:
            with torch.enable_grad():
                out = committee(g, s, compute_field=True, training=False)
        finally:
            committee.train(was)
        field, sigma = out[K.FIELD].detach().cpu(), out["field_sigma"].detach().cpu()
        energy = float(out[K.ENERGY].detach().double().sum())
    else:
        from .distributed.tiling import evaluate_tiled
        outs = [evaluate_tiled(m, graph, s[None], max_sites=max_sites)
                for m in committee.members]
        fields = np.stack([o[K.FIELD][0] for o in outs])
        energy = float(np.mean([o[K.ENERGY][0] for o in outs]))
        st = committee_statistics(fields)
        field = torch.from_numpy(st["field"]).to(p.dtype)
        sigma = torch.from_numpy(st["sigma"]).to(p.dtype)
    sd = sigma.double()
    return {"field": field, "sigma": sigma, "energy": energy, "sigma_max": float(sd.max()),
            "sigma_mean": float(sd.mean()), "sigma_rms": float(sd.pow(2).mean().sqrt())}


def committee_predictions(committee: Committee, graph, spin: torch.Tensor,
                          batch_size: int = 4, max_sites: Optional[int] = None
                          ) -> Dict[str, np.ndarray]:
    """Every member's energies and fields of configurations ``(n, N, 3)`` (float64 numpy).

    Args:
        committee: the :class:`Committee`.
        graph: the lattice graph.
        spin: spins ``(n, N, 3)``.
        batch_size: configurations per forward pass.
        max_sites: evaluate region by region (exact), at most this many sites at once.

    Returns:
        ``{"energy": (M, n), "field": (M, n, N, 3)}``.
    """
    from .training.evaluate import evaluate_arrays
    energies, fields = [], []
    for m in committee.members:
        if max_sites is not None:
            from .distributed.tiling import evaluate_tiled
            res = evaluate_tiled(m, graph, spin, max_sites=max_sites)
        else:
            res = evaluate_arrays(m, graph, spin, batch_size=batch_size)
        energies.append(np.asarray(res[K.ENERGY], dtype=np.float64))
        fields.append(np.asarray(res[K.FIELD], dtype=np.float64))
    return {K.ENERGY: np.stack(energies), K.FIELD: np.stack(fields)}


def _score(pred: Mapping[str, np.ndarray], spin: np.ndarray, field: np.ndarray,
           energy: np.ndarray) -> Dict[str, Any]:
    """Validation metrics of members' predictions against exact values (one supercell)."""
    from .metrics import ErrorAccumulator
    n, n_sites = spin.shape[0], spin.shape[1]
    st = committee_statistics(pred[K.FIELD])
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
    nn_ = torch.full((n,), float(n_sites), dtype=torch.float64)
    mean_acc = ErrorAccumulator()
    mean_acc.update(t(st["field"]).reshape(-1, 3), t(field).reshape(-1, 3),
                    t(spin).reshape(-1, 3), t(pred[K.ENERGY].mean(0)), t(energy), nn_)
    members = []
    for m in range(pred[K.FIELD].shape[0]):
        acc = ErrorAccumulator()
        acc.update(t(pred[K.FIELD][m]).reshape(-1, 3), t(field).reshape(-1, 3),
                   t(spin).reshape(-1, 3), t(pred[K.ENERGY][m]), t(energy), nn_)
        members.append(acc)
    err = np.sqrt(((st["field"] - np.asarray(field, np.float64)) ** 2).sum(-1))   # (n, N)
    return {"mean": mean_acc, "members": members, "sigma": st["sigma"].reshape(-1),
            "error": err.reshape(-1), "samples": n,
            "snapshot_sigma_max": st["sigma"].reshape(n, -1).max(1),
            "snapshot_sigma_mean": st["sigma"].reshape(n, -1).mean(1)}


def _pool(scores: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Metrics of several supercells' scores together (squared errors pooled)."""
    from .metrics import ErrorAccumulator

    def merged(accs):
        out = ErrorAccumulator()
        for a in accs:
            for k in ("sq_b", "sq_bt", "sq_e", "n_b", "n_e"):
                setattr(out, k, getattr(out, k) + getattr(a, k))
        return out.compute()
    mean = merged([s["mean"] for s in scores])
    n_members = len(scores[0]["members"])
    members = [merged([s["members"][m] for s in scores]) for m in range(n_members)]
    sigma = np.concatenate([s["sigma"] for s in scores])
    err = np.concatenate([s["error"] for s in scores])
    corr = float(np.corrcoef(sigma, err)[0, 1]) if sigma.size > 1 and sigma.std() > 0 \
        and err.std() > 0 else float("nan")
    q = np.quantile(sigma, [0.5, 0.9, 0.99]) if sigma.size else [float("nan")] * 3
    snap_max = np.concatenate([s["snapshot_sigma_max"] for s in scores])
    snap_mean = np.concatenate([s["snapshot_sigma_mean"] for s in scores])
    return {"val_rmse_field": mean["rmse_field"],
            "val_rmse_field_transverse": mean["rmse_field_transverse"],
            "val_rmse_energy_per_site": mean["rmse_energy_per_site"],
            "val_error_site_rms": float(np.sqrt(np.mean(err ** 2))) if err.size else float("nan"),
            "val_sigma_mean": float(sigma.mean()) if sigma.size else float("nan"),
            "val_sigma_rms": float(np.sqrt(np.mean(sigma ** 2))) if sigma.size else float("nan"),
            "val_sigma_q50": float(q[0]), "val_sigma_q90": float(q[1]),
            "val_sigma_q99": float(q[2]),
            "val_sigma_max": float(sigma.max()) if sigma.size else float("nan"),
            "val_sigma_error_correlation": corr,
            "val_snapshot_sigma_max_median": float(np.median(snap_max)) if snap_max.size
            else float("nan"),
            "val_snapshot_sigma_mean_median": float(np.median(snap_mean)) if snap_mean.size
            else float("nan"),
            "val_samples": int(sum(s["samples"] for s in scores)),
            "members": [{"val_rmse_field": m["rmse_field"],
                         "val_rmse_energy_per_site": m["rmse_energy_per_site"]}
                        for m in members]}


def score_predictions(pred: Mapping[str, np.ndarray], spin: np.ndarray, field: np.ndarray,
                      energy: np.ndarray) -> Dict[str, Any]:
    """Metrics of members' predictions (:func:`committee_predictions`) against exact values.

    Args:
        pred: ``{"energy": (M, n), "field": (M, n, N, 3)}``.
        spin: ``(n, N, 3)`` spins.
        field: ``(n, N, 3)`` exact fields.
        energy: ``(n,)`` exact energies.

    Returns:
        The flat metrics of :func:`score_committee` (``val_rmse_field`` ...).
    """
    return _pool([_score(pred, np.asarray(spin), np.asarray(field), np.asarray(energy))])


def score_committee(committee: Committee, parts: Sequence[Any], split: str = "val",
                    batch_size: int = 4) -> Dict[str, Any]:
    """Validation metrics of a committee on training parts (see ``docs/committee.md``).

    Args:
        committee: the :class:`Committee`.
        parts: :class:`~ecnn_pyg.training.data.TrainingPart` objects.
        split: ``"val"`` or ``"train"``.
        batch_size: configurations per forward pass.

    Returns:
        The flat metrics (``val_rmse_field`` ... ``members``) of :func:`train_committee`.
    """
    scores = []
    for part in parts:
        arr = getattr(part, split)
        if len(arr[K.ENERGY]) == 0:
            continue
        spin = np.asarray(arr[K.SPIN])
        pred = committee_predictions(committee, part.graph, torch.from_numpy(spin),
                                     batch_size=batch_size)
        scores.append(_score(pred, spin, np.asarray(arr[K.FIELD]), np.asarray(arr[K.ENERGY])))
    if not scores:
        raise ValueError(f"no samples in split '{split}' to score the committee on")
    return _pool(scores)


# ------------------------------------------------------------------ snapshots
class SnapshotUncertainty:
    """Scores snapshots (``sigma_mean``, ``sigma_max``, ``sigma_rms``); warns once above ``upper``.

    Args:
        committee: the :class:`Committee`.
        graph: the lattice graph of the snapshots.
        upper: the upper trust level (``None``: no warning).
        lower: the lower trust level (recorded only).
        max_sites: evaluate region by region (as the run's field source).

    Attributes:
        warned (bool): whether the warning was raised.
    """

    def __init__(self, committee: Committee, graph, upper: Optional[float] = None,
                 lower: Optional[float] = None, max_sites: Optional[int] = None):
        self.committee, self.graph, self.max_sites = committee, graph, max_sites
        self.trust = {"lower": None if lower is None else float(lower),
                      "upper": None if upper is None else float(upper)}
        self.warned = False

    def __call__(self, spins: torch.Tensor, where: str = "") -> Dict[str, float]:
        """The ``sigma_mean``, ``sigma_max`` and ``sigma_rms`` of a snapshot; warns above ``upper``.

        Args:
            spins: the snapshot.
            where: the snapshot named in the warning (run, step).

        Returns:
            The mean, the largest and the RMS over sites of :math:`\\sigma_B`.
        """
        st = committee_field_stats(self.committee, self.graph, spins, max_sites=self.max_sites)
        upper = self.trust["upper"]
        if upper is not None and st["sigma_max"] > upper and not self.warned:
            self.warned = True
            at = f" at {where}" if where else ""
            warnings.warn(
                f"committee uncertainty above its upper trust level{at}: sigma_max = "
                f"{st['sigma_max']:.3g} > {upper:.3g} (largest per-site disagreement of the "
                f"{len(self.committee)} members): the model extrapolates here and its field may "
                "be wrong; label such snapshots with ED and retrain (ecnn-pyg learn), or raise "
                "trust_upper if this is expected (warned once per simulation)",
                UncertaintyWarning, stacklevel=2)
        return {"sigma_mean": st["sigma_mean"], "sigma_max": st["sigma_max"],
                "sigma_rms": st["sigma_rms"]}


# --------------------------------------------------------------------- checkpoints
def _sha256(path: Union[str, Path]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_committee(path: Union[str, Path], member_checkpoints: Sequence[Any],
                   trust: Optional[Mapping[str, Any]] = None,
                   metrics: Optional[Mapping[str, Any]] = None) -> Path:
    """Write a committee checkpoint: one file with every member's checkpoint inside.

    The members are checked first (each loads and rebuilds, and they form a
    :class:`Committee`); the file is written atomically (temporary file,
    ``os.replace``), as every checkpoint.

    Args:
        path: the file to write (e.g. ``runs/NAME/committee.pt``).
        member_checkpoints: ``M >= 2`` checkpoint paths (``best.pt`` of the
            members' runs) or loaded checkpoint dicts.
        trust: trust levels ``{"lower", "upper"}`` (:func:`check_trust`).
        metrics: validation metrics to store (JSON-like values).

    Returns:
        ``path``.

    Raises:
        ValueError: if there are fewer than two members, or they do not form
            a committee (:class:`Committee`), or the trust levels are invalid.
        CheckpointError: if a member checkpoint cannot be loaded or rebuilt.
    """
    from .models import model_from_checkpoint
    items = list(member_checkpoints)
    check_members(len(items))
    ckpts, shas = [], []
    for i, item in enumerate(items):
        if isinstance(item, (str, Path)):
            ck = load_checkpoint(item)
            shas.append(_sha256(item))
        elif isinstance(item, Mapping):
            from ._version import __version__
            from .checkpoint import FORMAT, FORMAT_VERSION
            ck = validate_checkpoint({"format": FORMAT, "format_version": FORMAT_VERSION,
                                      "package_version": __version__, **item},
                                     source=f"member {i}", strict_version=False)
            shas.append(None)
        else:
            raise ValueError(f"member {i}: give a checkpoint path or dict, got "
                             f"{type(item).__name__}")
        if ck.get("kind") == COMMITTEE_KIND:
            raise ValueError(f"member {i} is itself a committee checkpoint; give its members")
        ckpts.append(ck)
    models = [model_from_checkpoint(ck, source=f"member {i}") for i, ck in enumerate(ckpts)]
    committee = Committee(models, trust=trust)
    first = ckpts[0]
    state = {"kind": COMMITTEE_KIND, "model_type": COMMITTEE_KIND,
             "model_config": {"members": len(ckpts),
                              "lattice": (first.get("model_config") or {}).get("lattice"),
                              "member_type": first["model_type"]},
             "model_state": {}, "dtype": first.get("dtype"),
             "data": dict(first.get("data") or {}),
             "members": ckpts, "member_sha256": shas,
             "trust": dict(committee.trust), "metrics": dict(metrics or {})}
    return save_checkpoint(path, state)


def committee_file(path: Union[str, Path]) -> Path:
    """The committee checkpoint a path stands for.

    A folder holding a ``committee.pt`` (the run directory of
    :func:`train_committee`) stands for that file; the run directory of
    ``ecnn-pyg learn`` for its latest committee (``committee`` in its
    ``summary.json``). Any other path is returned as it is.

    Args:
        path: a checkpoint file or one of those folders.

    Returns:
        The checkpoint file's path (not checked to exist).
    """
    p = Path(path)
    if p.is_dir() and (p / "committee.pt").is_file():
        return p / "committee.pt"
    summary = p / "summary.json"
    if p.is_dir() and summary.is_file():
        try:
            latest = json.loads(summary.read_text()).get("committee")
        except (ValueError, AttributeError):
            latest = None
        if latest:
            return p / latest
    return p


def committee_from_checkpoint(ckpt: Mapping[str, Any], source: str = "checkpoint") -> Committee:
    """The :class:`Committee` of a loaded committee checkpoint (eval mode).

    Args:
        ckpt: a checkpoint dict of kind ``"committee"`` (from
            :func:`ecnn_pyg.checkpoint.load_checkpoint`).
        source: the checkpoint's name in error messages.

    Returns:
        The committee: members rebuilt, ``trust``, ``metrics`` and
        ``trained_on`` set.

    Raises:
        CheckpointError: if it is not a committee checkpoint, or a member
            cannot be rebuilt, or the members do not form a committee.
    """
    from .models import model_from_checkpoint
    if ckpt.get("kind") != COMMITTEE_KIND:
        raise CheckpointError(f"'{source}' is not a committee checkpoint")
    members = [model_from_checkpoint(ck, source=f"{source} (member {i})")
               for i, ck in enumerate(ckpt["members"])]
    try:
        committee = Committee(members, trust=ckpt.get("trust"))
    except ValueError as err:
        raise CheckpointError(f"'{source}': {err}") from None
    committee.metrics = dict(ckpt.get("metrics") or {})
    if not committee.trained_on:
        committee.trained_on = dict(ckpt.get("data") or {})
    committee.eval()
    return committee


def read_committee_info(path: Union[str, Path]) -> Dict[str, Any]:
    """``{"members": M, "trust": {...}, "metrics": {...}, "data": {...}}`` of a committee file.

    Args:
        path: a committee checkpoint (or the folder holding its ``committee.pt``).

    Returns:
        The entries, without building the models.

    Raises:
        CheckpointError: if the file is not a readable committee checkpoint.
    """
    p = committee_file(path)
    ck = load_checkpoint(p)
    if ck.get("kind") != COMMITTEE_KIND:
        raise CheckpointError(f"'{p}' is a single-model checkpoint, not a committee")
    return {"members": len(ck["members"]), "trust": dict(ck.get("trust") or {}),
            "metrics": dict(ck.get("metrics") or {}), "data": dict(ck.get("data") or {})}


# --------------------------------------------------------------------- training
def _write_json(path: Path, obj: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _member_done(mdir: Path) -> bool:
    done, best = mdir / "done.json", mdir / "best.pt"
    if not (done.is_file() and best.is_file()):
        return False
    try:
        rec = json.loads(done.read_text())
    except (ValueError, OSError):
        return False
    return rec.get("best_sha256") == _sha256(best)


def train_committee(config, overrides: Optional[Mapping[str, Any]] = None, members: int = 4,
                    resume: bool = True, init_from: Optional[Union[str, Path]] = None,
                    trust: Optional[Mapping[str, Any]] = None) -> Path:
    """Train ``members`` models (in turn, or spread over torchrun's ranks) and write
    ``<run_dir>/committee.pt``.

    Member ``m`` is an ordinary training run (:class:`~ecnn_pyg.training.Trainer`)
    in ``<run_dir>/member_<m>/`` with ``seed`` = the config's seed + ``m`` (its
    initial weights and the order of the data differ), started from member
    ``m`` of ``init_from`` (a committee file) when given, else from the
    config's own ``init_from``. A finished member (its ``best.pt`` and a
    ``done.json`` recording that file's SHA-256) is never trained again; an
    interrupted one resumes from its ``last.pt``, so a killed committee
    training rerun with the same arguments ends as an uninterrupted one.

    The committee is then scored on the validation split (the training split
    if there is none) and written last, atomically, with the metrics and the
    trust levels (``trust`` if given, else :func:`default_trust` of the
    validation error).

    Under ``torchrun`` (a process group from
    :func:`ecnn_pyg.distributed.session`), rank ``r`` of ``W`` trains members
    ``r, r + W, ...``, each alone on its rank (no DDP): the members are
    independent, so the committee is the one a single process trains, in
    about ``1/W`` of the time. Rank 0 scores and writes it once every rank is
    done; a rank whose member fails stops them all.

    Args:
        config: a training config (YAML path or mapping, keys of
            :data:`~ecnn_pyg.training.schema.TRAIN_SCHEMA`).
        overrides: ``{key: value}`` over ``config`` (``run_dir`` too).
        members: ``M >= 2``.
        resume: continue the members' runs found in ``run_dir``; ``False``
            refuses a ``run_dir`` that holds member runs.
        init_from: a committee checkpoint with at least ``M`` members (or a
            learn run directory); a committee named by the config's own
            ``init_from`` counts as this too.
        trust: trust levels replacing the default rule.

    Returns:
        The path of ``committee.pt``.

    Raises:
        ValueError: if ``members < 2``, ``init_from`` is not a committee of at
            least ``M`` members, or the trust levels are invalid.
        ConfigError: if the config is invalid, or (without ``resume``)
            ``run_dir`` already holds member runs.
    """
    from .config import ConfigError
    from .distributed import comm
    from .training.schema import load_train_config
    M = check_members(members)
    trust = check_trust(trust) if trust is not None else None
    overrides = dict(overrides or {})
    overrides.pop("committee", None)
    base = load_train_config(config, overrides)
    run_dir = Path(base["run_dir"])
    out = run_dir / "committee.pt"
    mdirs = [run_dir / f"member_{m}" for m in range(M)]
    if not resume and (out.exists() or any((d / "last.pt").exists() for d in mdirs)):
        raise ConfigError(f"run directory '{run_dir}' already holds a committee run; rerun "
                          "with resume to continue it, or choose another run_dir")
    if resume and out.is_file() and all(_member_done(d) for d in mdirs):
        try:
            info = load_checkpoint(out)
            shas = [json.loads((d / "done.json").read_text())["best_sha256"] for d in mdirs]
            if info.get("kind") == COMMITTEE_KIND and list(info.get("member_sha256") or []) \
                    == shas:
                return out                              # finished, nothing changed
        except (CheckpointError, ValueError, KeyError, OSError):
            pass
    ck = None
    if init_from is None and base.get("init_from"):
        ck = _committee_or_none(base["init_from"])
        if ck is not None:
            init_from = base["init_from"]         # member m from member m
    init_ckpts = None
    if init_from is not None:
        ck = ck if ck is not None else load_checkpoint(committee_file(init_from))
        if ck.get("kind") != COMMITTEE_KIND:
            raise ValueError(f"init_from '{init_from}' is a single-model checkpoint; give a "
                             "committee (or set init_from in the config to start every member "
                             "from one model)")
        if len(ck["members"]) < M:
            raise ValueError(f"init_from '{init_from}' has {len(ck['members'])} members, fewer "
                             f"than the {M} to train")
        init_ckpts = ck["members"][:M]
    run_dir.mkdir(parents=True, exist_ok=True)
    rank, world = comm.rank(), comm.world_size()
    wait = comm.waiting_group()             # waits as long as another rank's members take
    failed = None
    try:
        _train_members(config, overrides, base, mdirs, init_ckpts, run_dir,
                       [m for m in range(M) if m % world == rank])
    except Exception as err:                # tell the other ranks, then raise
        failed = err
    errors = comm.all_gather_object(None if failed is None else
                                    f"{type(failed).__name__}: {failed}",
                                    what="waiting for the other ranks' committee members",
                                    group=wait)
    if failed is not None:
        raise failed
    others = [f"rank {r}: {e}" for r, e in enumerate(errors) if e]
    if others:
        raise comm.DistributedError(f"rank {rank} of {world}: the committee's training "
                                    "stopped on another rank (" + "; ".join(others) + ")")
    if rank == 0:
        _assemble(out, mdirs, base, M, trust)
    comm.barrier("waiting for rank 0 to write the committee", group=wait)
    return out


def _committee_or_none(path) -> Optional[Dict[str, Any]]:
    """The committee checkpoint ``path`` names (a file or folder, a learn run), else ``None``."""
    try:
        ck = load_checkpoint(committee_file(path))
    except (CheckpointError, OSError, ValueError):
        return None
    return ck if ck.get("kind") == COMMITTEE_KIND else None


def _train_members(config, overrides, base, mdirs, init_ckpts, run_dir, mine) -> None:
    """Train (or continue) the members ``mine`` of a committee, one after the other."""
    from .training.trainer import Trainer
    M = len(mdirs)
    for m in mine:
        mdir = mdirs[m]
        if _member_done(mdir):
            print(f"committee member {m}: done ({mdir / 'best.pt'})", flush=True)
            continue
        ov = dict(overrides, run_dir=str(mdir), seed=int(base["seed"]) + m, committee=None)
        if init_ckpts is not None:
            init_path = run_dir / "init" / f"member_{m}.pt"
            if not init_path.is_file():
                save_checkpoint(init_path, init_ckpts[m])
            ov["init_from"] = str(init_path)
        again = (mdir / "last.pt").exists()
        print(f"committee member {m} of {M}: {'resuming' if again else 'training'} in {mdir} "
              f"(seed {ov['seed']})", flush=True)
        trainer = Trainer(config, ov, resume=again, alone=True)
        trainer.run()
        best = mdir / "best.pt"
        if not best.is_file():
            raise RuntimeError(f"committee member {m} finished without a best.pt in {mdir}")
        _write_json(mdir / "done.json", {"member": m, "seed": ov["seed"],
                                         "best_sha256": _sha256(best),
                                         "stop_reason": getattr(trainer, "stop_reason", None),
                                         "best_epoch": trainer.best.get("epoch")})


def _assemble(out, mdirs, base, M, trust) -> None:
    """Score the trained members together and write the committee file ``out``."""
    from .models import model_from_checkpoint
    from .training.data import load_training_parts
    bests = [d / "best.pt" for d in mdirs]
    ckpts = [load_checkpoint(b) for b in bests]
    committee = Committee([model_from_checkpoint(ck, source=str(b))
                           for ck, b in zip(ckpts, bests)])
    _, parts = load_training_parts(base["data"], base["train_split"], base["val_split"])
    split = "val" if any(len(p.val[K.ENERGY]) for p in parts) else "train"
    metrics = score_committee(committee, parts, split,
                              batch_size=base["val_batch_size"] or max(base["batch_size"], 4))
    metrics["split"] = split
    for m, (ck, info) in enumerate(zip(ckpts, metrics["members"])):
        info["seed"] = int(base["seed"]) + m
        info["best_epoch"] = int((ck.get("best") or {}).get("epoch", ck.get("epoch", 0)))
    levels = trust if trust is not None else default_trust(metrics["val_error_site_rms"])
    metrics["trust_rule"] = ("given" if trust is not None else
                             f"lower = RMS over {split} sites of |B_mean - B_ED|; upper = "
                             f"{UPPER_TRUST_FACTOR:g} x lower")
    save_committee(out, bests, trust=levels, metrics=metrics)
    members_rmse = ", ".join(f"{x['val_rmse_field']:.5f}" for x in metrics["members"])
    print(f"committee of {M}: {split} RMSE(B) of the mean {metrics['val_rmse_field']:.5f} "
          f"(members {members_rmse}); "
          f"sigma_B mean {metrics['val_sigma_mean']:.3g}, max {metrics['val_sigma_max']:.3g}; "
          f"trust levels {levels}; wrote {out}", flush=True)
