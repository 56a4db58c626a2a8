"""The reports of the active-learning loop: one per round, and the summary of all rounds.

A round's report (``round_NNN/report.json`` and ``report.md``) holds:

* the exploration's verdict: snapshots scored, accurate / candidate / failed (overall and
  per size, start, field and temperature), the trust levels and where they came from;
* the cost: exact (ED) labels made and the wall time of every stage;
* the accuracy of the committee that explored, on what it had not seen: the error of its
  mean field against the new exact labels, before it was trained on them;
* how well sigma_B predicted that error (:func:`calibration`): per site, the actual error
  in bins of sigma_B and their correlation; per snapshot, the correlation of the selection
  statistic with the snapshot's actual error;
* the new committee's validation metrics and the RMSE(B) of its mean on every held-out set;
* how far the new committee prices exactly degenerate states apart
  (:func:`symmetry_scores`): its lowest-energy training labels against their images under
  the lattice rotations, the mirrors and time reversal, which the exact energy of the
  Kondo lattice model does not tell apart.

``summary.json`` / ``summary.md`` in the run directory have one row per round (see
``docs/active_learning.md`` for the columns).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

__all__ = ["calibration", "committee_scores", "predict", "round_report", "symmetry_scores",
           "write_round_markdown", "write_summary", "SUMMARY_COLUMNS"]

#: how many of the lowest-energy training labels :func:`symmetry_scores` checks
SYMMETRY_STATES = 4

#: summary column -> description (docs/active_learning.md lists the same)
SUMMARY_COLUMNS = {
    "round": "round number (0: the seed data)",
    "ed_labels": "exact labels made in the round",
    "ed_wall_s": "wall time of those labels (seed or label stage), seconds",
    "lower": "lower trust level (sigma_B, units of t1)",
    "upper": "upper trust level",
    "scored": "explored snapshots scored",
    "accurate": "snapshots below the lower level",
    "candidate": "snapshots between the levels",
    "failed": "snapshots at or above the upper level",
    "share_accurate": "accurate / scored",
    "selected": "candidates labelled (at most max_per_round)",
    "rmse_before": "RMSE(B) of the exploring committee's mean on the new labels, before "
                   "training on them",
    "corr_sigma_error": "correlation of per-site sigma_B with the per-site error "
                        "|B_mean - B_ED| on the new labels",
    "rmse_accurate": "RMSE(B) of the exploring committee on the audited accurate snapshots",
    "val_rmse": "RMSE(B) of the new committee's mean on its validation split",
    "heldout_rmse": "RMSE(B) of the new committee's mean on the held-out sets (pooled)",
    "heldout_rmse_e": "RMSE(E/N) of the new committee's mean on the held-out sets (pooled)",
    "symmetry_e": "largest energy difference per site the new committee puts between one of "
                  "its lowest-energy training labels and an exactly degenerate image of it "
                  "(lattice rotation, mirror, time reversal)",
    "wall_s": "wall time of the round, seconds",
    "stop": "why the loop stopped after this round (converged, no candidates), else empty",
}


def predict(committee, graph, spins: np.ndarray) -> Dict[str, np.ndarray]:
    """The committee's mean field and sigma_B per site for configurations ``(n, N, 3)``.

    Returns:
        ``{"field": (n, N, 3), "sigma": (n, N), "energy": (n,)}`` float64 arrays (the
        mean's total energy of each configuration).
    """
    import torch
    from ..committee import committee_field_stats
    fields, sigmas, energies = [], [], []
    for s in spins:
        st = committee_field_stats(committee, graph, torch.from_numpy(np.asarray(s, np.float64)))
        fields.append(st["field"].detach().double().cpu().numpy())
        sigmas.append(st["sigma"].detach().double().cpu().numpy())
        energies.append(st["energy"])
    n_sites = spins.shape[1] if spins.ndim == 3 else 0
    return {"field": np.stack(fields) if fields else np.zeros((0, n_sites, 3)),
            "sigma": np.stack(sigmas) if sigmas else np.zeros((0, n_sites)),
            "energy": np.asarray(energies, np.float64)}


def _corr(x: np.ndarray, y: np.ndarray) -> Dict[str, Optional[float]]:
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return {"pearson": None, "spearman": None}
    from scipy.stats import spearmanr
    return {"pearson": float(np.corrcoef(x, y)[0, 1]), "spearman": float(spearmanr(x, y)[0])}


def calibration(sigma: np.ndarray, field_pred: np.ndarray, field_true: np.ndarray,
                n_bins: int = 5) -> Dict[str, Any]:
    """How well sigma_B predicts the actual error of the committee's mean.

    Args:
        sigma: ``(n, N)`` sigma_B per site.
        field_pred: ``(n, N, 3)`` the committee's mean field.
        field_true: ``(n, N, 3)`` the exact field.
        n_bins: bins of equal site counts (quantiles of sigma_B).

    Returns:
        ``{"sites": {...}, "snapshots": {...}, "bins": [...]}``: per site the
        correlation of sigma_B with the error ``|B_mean - B_ED|`` and, per bin of
        sigma_B, the number of sites, its sigma range and mean, and the RMS of the
        actual error (the number sigma_B should match); per snapshot the
        correlations of ``sigma_max`` with the largest site error and of
        ``sigma_rms`` with the RMS site error.
    """
    err = np.linalg.norm(field_pred - field_true, axis=-1)          # (n, N)
    out: Dict[str, Any] = {"n_snapshots": int(err.shape[0]), "n_sites": int(err.size)}
    if err.size == 0:
        return {**out, "sites": _corr([], []), "snapshots": {}, "bins": []}
    out["sites"] = _corr(sigma, err)
    out["snapshots"] = {"max": _corr(sigma.max(axis=1), err.max(axis=1)),
                        "rms": _corr(np.sqrt((sigma ** 2).mean(axis=1)),
                                     np.sqrt((err ** 2).mean(axis=1)))}
    s, e = sigma.ravel(), err.ravel()
    edges = np.unique(np.quantile(s, np.linspace(0, 1, n_bins + 1)))
    bins = []
    for j in range(len(edges) - 1):
        last = j == len(edges) - 2
        m = (s >= edges[j]) & ((s <= edges[j + 1]) if last else (s < edges[j + 1]))
        if m.any():
            bins.append({"sigma_from": float(edges[j]), "sigma_to": float(edges[j + 1]),
                         "n_sites": int(m.sum()), "sigma_mean": float(s[m].mean()),
                         "error_rms": float(np.sqrt((e[m] ** 2).mean()))})
    out["bins"] = bins
    return out


def _rmse(pred: np.ndarray, true: np.ndarray) -> Optional[float]:
    return float(np.sqrt(((pred - true) ** 2).mean())) if pred.size else None


def _heldout(committee, paths: List[str]) -> List[Dict[str, Any]]:
    from ..datasets import read_arrays, read_graph
    rows = []
    for p in paths:
        arr = read_arrays(p)
        pred = predict(committee, read_graph(p), arr["spin"])
        err = np.linalg.norm(pred["field"] - arr["field"], axis=-1)
        n_sites = arr["spin"].shape[1] if arr["spin"].ndim == 3 else 1
        e_err = (pred["energy"] - np.asarray(arr["energy"], float)) / n_sites
        rows.append({"path": str(p), "n": int(len(arr["spin"])),
                     "rmse_field": _rmse(pred["field"], arr["field"]),
                     "rmse_energy_per_site": float(np.sqrt((e_err ** 2).mean())) if e_err.size
                     else None,
                     "sse": float(((pred["field"] - arr["field"]) ** 2).sum()),
                     "sse_energy_per_site": float((e_err ** 2).sum()),
                     "count": int(arr["field"].size),
                     "error_site_rms": float(np.sqrt((err ** 2).mean())) if err.size else None,
                     "sigma_rms": float(np.sqrt((pred["sigma"] ** 2).mean()))
                     if err.size else None})
    return rows


def heldout_scores(committee, paths: List[str]) -> Dict[str, Any]:
    """RMSE(B) and RMSE(E/N) of the committee's mean on every held-out file, and pooled.

    Args:
        committee: the committee (eval mode).
        paths: the held-out data files (all their samples are scored).

    Returns:
        ``{"files": [per-file rows], "rmse_field", "rmse_energy_per_site"}``.
    """
    rows = _heldout(committee, paths)
    pooled = math.sqrt(sum(r["sse"] for r in rows) / max(1, sum(r["count"] for r in rows)))
    n = sum(r["n"] for r in rows)
    pooled_e = math.sqrt(sum(r["sse_energy_per_site"] for r in rows) / n) if n else None
    return {"files": rows, "rmse_field": pooled, "rmse_energy_per_site": pooled_e}


def _walls(run_dir: Path, k: int, names) -> Dict[str, float]:
    from ._files import read_json, round_dir
    out = {}
    for name in names:
        rec = round_dir(run_dir, k) / f"{name}.json"
        if rec.exists():
            out[name] = read_json(rec)["wall_s"]
    return out


def round_report(loop, k: int, stop: Optional[str]) -> Dict[str, Any]:
    """The report of round ``k`` of the loop ``loop`` (see the module docstring)."""
    from ._files import ROUND0_STAGES, STAGES, read_json, round_dir
    rd = round_dir(loop.run_dir, k)
    rep: Dict[str, Any] = {"round": k, "stop": stop}
    walls = _walls(loop.run_dir, k, ROUND0_STAGES if k == 0 else STAGES)
    if k == 0:
        seed = read_json(rd / "seed.json")
        rep.update({"ed_labels": seed["ed_labels"], "ed_wall_s": seed["wall_s"],
                    "seed_counts": seed["counts"], "data": seed["data"]})
    else:
        score = read_json(rd / "score.json")
        rep.update({key: score[key] for key in ("n_scored", "n_accurate", "n_candidate",
                                                 "n_failed", "share_accurate", "trust",
                                                 "by_group")})
        rep["explore_files"] = [f["path"] for f in read_json(rd / "explore.json")["files"]]
        rep["ed_labels"], rep["ed_wall_s"] = 0, 0.0
        if (rd / "select.json").exists():
            sel = read_json(rd / "select.json")
            rep["n_selected"], rep["n_audit"] = sel["n_selected"], sel.get("n_audit", 0)
            rep["n_exact_minima"] = sel.get("n_exact_minima", 0)
            if (rd / "label.json").exists():
                lab = read_json(rd / "label.json")
                rep["ed_labels"], rep["ed_wall_s"] = lab["ed_labels"], lab["wall_s"]
                rep["labels"] = lab["by_size"]
                rep["before_training"] = _before_training(loop, k, lab, sel)
    if (rd / "train.json").exists():
        tr = read_json(rd / "train.json")
        metrics = tr.get("metrics") or {}
        rep["committee"] = {"path": tr["committee"], "init_from": tr["init_from"],
                            "n_training_files": len(tr["data"]), "trust": tr.get("trust"),
                            "val_rmse_field": metrics.get("val_rmse_field"),
                            "val_error_site_rms": metrics.get("val_error_site_rms"),
                            "val_sigma_error_correlation":
                                metrics.get("val_sigma_error_correlation"),
                            "members": metrics.get("members")}
        rep.update(committee_scores(tr["committee"], loop.cfg["validation"], tr["data"]))
    rep["stage_wall_s"] = walls            # the report stage's own time: wall_s of report.json
    return rep


def committee_scores(path, validation: List[str], data: List[str]) -> Dict[str, Any]:
    """A new committee's scores in its round report or final record: ``heldout``
    (:func:`heldout_scores` on the ``validation`` files, if any) and ``symmetry``
    (:func:`symmetry_scores` on its training files ``data``)."""
    from ..pretrained import load_model
    committee = load_model(str(path)).eval()
    out = {"heldout": heldout_scores(committee, validation)} if validation else {}
    out["symmetry"] = symmetry_scores(committee, data)
    return out


def symmetry_scores(committee, paths: List[str], n_states: int = SYMMETRY_STATES
                    ) -> Optional[Dict[str, Any]]:
    """The committee's mean energy on the ``n_states`` lowest-energy labels (per site) of the
    smallest supercell in ``paths`` against their exactly degenerate images
    (:func:`ecnn_pyg.testing.symmetry_energy_error`: lattice rotations and mirrors that fit
    the supercell, time reversal); the largest difference per site of each kind over the
    states, evaluated in float64 (a copy of the committee). ``None`` without labels."""
    import copy
    import torch
    import yaml
    from ..datasets import read_arrays, read_graph, read_meta
    from ..testing import symmetry_energy_error
    graphs = {path: read_graph(path) for path in paths}
    if not graphs:
        return None
    n_sites = min(int(g.num_nodes) for g in graphs.values())
    files = [p for p, g in graphs.items() if int(g.num_nodes) == n_sites]
    graph = graphs[files[0]]
    lattice = read_meta(files[0]).get("lattice_yaml")
    lattice = yaml.safe_load(lattice) if lattice else None
    arrays = [read_arrays(p) for p in files]
    spins = np.concatenate([a["spin"] for a in arrays])
    energy = np.concatenate([a["energy"] for a in arrays])
    worst = {"rotations": 0.0, "mirrors": 0.0, "time_reversal": 0.0}
    lowest = np.argsort(energy, kind="stable")[:n_states]
    committee = copy.deepcopy(committee).double()
    for i in lowest:
        s = torch.as_tensor(spins[i], dtype=torch.float64)
        for kind, v in symmetry_energy_error(committee, graph, s, lattice).items():
            worst[kind] = max(worst[kind], v)
    return {"n_states": int(len(lowest)), "n_sites": int(graph.num_nodes),
            "energy_per_site": [float(energy[i]) / graph.num_nodes for i in lowest], **worst}


def _before_training(loop, k: int, lab: Mapping[str, Any], sel: Mapping[str, Any]
                     ) -> Dict[str, Any]:
    """The exploring committee (round k-1) against the exact labels of round k.

    The candidates (trained on from this round) and the audit (accurate and failed
    snapshots labelled for this check only) are pooled for the calibration; the errors
    are given per class too.
    """
    from ..datasets import read_arrays, read_graph
    from ..pretrained import load_model
    committee = load_model(str(loop.committee_path(k - 1))).eval()
    audit_classes: Dict[str, List[str]] = {}
    for row in sel.get("audit") or []:
        audit_classes.setdefault(row["size"], []).append(row["class"])
    # the trained labels: candidates, the minima of select.minima and the exact minima of
    # exact_minima (in the order of select)
    trained_classes: Dict[str, List[str]] = {}
    for row in sel.get("selected") or []:
        trained_classes.setdefault(row["size"], []).append(
            "exact minimum" if row.get("exact") else
            "minimum" if row.get("minimum") else "candidate")
    parts = [(p, None) for p in lab["files"]] + [(p, "audit") for p in lab.get("audit_files", [])]
    per_size: Dict[str, Dict[str, list]] = {}
    energy_errors: Dict[str, List[float]] = {}
    for path, kind in parts:
        size = Path(path).stem.split("_", 1)[1]
        arr = read_arrays(path)
        pred = predict(committee, read_graph(path), arr["spin"])
        classes = (trained_classes.get(size) or ["candidate"] * len(arr["spin"])) \
            if kind is None else audit_classes[size]
        d = per_size.setdefault(size, {"pred": [], "true": [], "sigma": [], "class": []})
        d["pred"].append(pred["field"])
        d["true"].append(arr["field"])
        d["sigma"].append(pred["sigma"])
        d["class"] += classes
        n_sites = arr["spin"].shape[1]
        for c, e_pred, e_true in zip(classes, pred["energy"], arr["energy"]):
            energy_errors.setdefault(c, []).append((float(e_pred) - float(e_true)) / n_sites)
    by_size, flat = {}, {"pred": [], "true": [], "sigma": [], "class": []}
    for size, d in per_size.items():
        pred, true, sigma = (np.concatenate(d[key]) for key in ("pred", "true", "sigma"))
        by_size[size] = {"n": int(len(pred)), "rmse_field": _rmse(pred, true),
                         "calibration": calibration(sigma, pred, true)}
        flat["pred"].append(pred.reshape(-1, 3))
        flat["true"].append(true.reshape(-1, 3))
        flat["sigma"].append(sigma.reshape(-1))
        flat["class"] += [c for c in d["class"] for _ in range(sigma.shape[1])]
    pred, true = np.concatenate(flat["pred"]), np.concatenate(flat["true"])
    sigma, cls = np.concatenate(flat["sigma"]), np.asarray(flat["class"])
    err = np.linalg.norm(pred - true, axis=-1)
    by_class = {}
    for c in ("accurate", "candidate", "failed", "minimum", "exact minimum"):
        m = cls == c
        if m.any():
            de = np.asarray(energy_errors[c])
            by_class[c] = {"sites": int(m.sum()), "snapshots": int(len(de)),
                           "rmse_field": _rmse(pred[m], true[m]),
                           "error_site_rms": float(np.sqrt((err[m] ** 2).mean())),
                           "sigma_rms": float(np.sqrt((sigma[m] ** 2).mean())),
                           "rmse_energy_per_site": float(np.sqrt((de ** 2).mean()))}
    # the sites of every size pooled (the per-snapshot correlations are per size, in by_size)
    pooled = calibration(sigma[None, :], pred[None], true[None])
    pooled.pop("snapshots", None)
    if len(by_size) == 1:
        pooled["snapshots"] = next(iter(by_size.values()))["calibration"]["snapshots"]
    pooled["n_snapshots"] = int(sum(v["n"] for v in by_size.values()))
    cand = by_class.get("candidate") or {}
    return {"rmse_field": cand.get("rmse_field"), "error_site_rms": cand.get("error_site_rms"),
            "by_class": by_class, "calibration": pooled, "by_size": by_size}


def _fmt(v, spec: str = ".4g") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def write_round_markdown(path: Path, rep: Mapping[str, Any]) -> None:
    """``report.md``: the round's report for a reader."""
    from ._files import write_text
    k = rep["round"]
    lines = [f"# Round {k}", ""]
    if k == 0:
        lines += [f"Seed data: {rep['ed_labels']} exact labels ({rep['seed_counts']}) in "
                  f"{_fmt(rep['ed_wall_s'], '.1f')} s; files: {', '.join(rep['data'])}.", ""]
    else:
        t = rep["trust"]
        lines += [f"Exploration: {rep['n_scored']} snapshots scored by sigma_{t['statistic']} "
                  f"with trust levels lower {_fmt(t['lower'])} ({t['lower_from']}), upper "
                  f"{_fmt(t['upper'])} ({t['upper_from']}).", "",
                  f"| | accurate | candidate | failed |", "|---|---|---|---|",
                  f"| all | {rep['n_accurate']} | {rep['n_candidate']} | {rep['n_failed']} |"]
        for g in rep["by_group"]:
            lines.append(f"| {g['size']} {g['start']} H_z={g['zeeman']:g} T={g['temperature']:g} "
                         f"| {g['accurate']} | {g['candidate']} | {g['failed']} |")
        lines += ["", f"Share accurate: {_fmt(rep['share_accurate'], '.3f')}; selected "
                  f"{rep.get('n_selected', 0)}"
                  + (f" (of them {rep['n_exact_minima']} exact minima of random starts)"
                     if rep.get("n_exact_minima") else "")
                  + f", audited {rep.get('n_audit', 0)}; exact labels "
                  f"{rep['ed_labels']} in "
                  f"{_fmt(rep['ed_wall_s'], '.1f')} s.", ""]
        bt = rep.get("before_training")
        if bt:
            cal = bt["calibration"]
            on_candidates = (f"on the candidates RMSE(B) {_fmt(bt['rmse_field'])}, RMS site "
                             f"error |B_mean - B_ED| {_fmt(bt['error_site_rms'])}; "
                             if bt["rmse_field"] is not None else "")
            lines += [f"Exploring committee on the new labels (before training on them): "
                      f"{on_candidates}correlation of sigma_B with the site error: Pearson "
                      f"{_fmt(cal['sites']['pearson'], '.3f')}, Spearman "
                      f"{_fmt(cal['sites']['spearman'], '.3f')}.", "",
                      "| class | sites | RMS sigma_B | actual RMS error | RMSE(E/N) |",
                      "|---|---|---|---|---|"]
            for c, row in bt["by_class"].items():
                name = c if c in ("candidate", "minimum", "exact minimum") else f"{c} (audit)"
                lines.append(f"| {name} | {row['sites']} | {_fmt(row['sigma_rms'])} | "
                             f"{_fmt(row['error_site_rms'])} | "
                             f"{_fmt(row.get('rmse_energy_per_site'), '.2e')} |")
            lines += ["", "| sigma_B bin | sites | mean sigma_B | actual RMS error |",
                      "|---|---|---|---|"]
            for b in cal["bins"]:
                lines.append(f"| {_fmt(b['sigma_from'])} - {_fmt(b['sigma_to'])} | "
                             f"{b['n_sites']} | {_fmt(b['sigma_mean'])} | "
                             f"{_fmt(b['error_rms'])} |")
            lines.append("")
    com = rep.get("committee")
    if com:
        lines += [f"Committee {com['path']}: validation RMSE(B) of the mean "
                  f"{_fmt(com['val_rmse_field'])}; default trust levels {com['trust']}.", ""]
    sym = rep.get("symmetry")
    if sym:
        lines += [f"Symmetry: the committee prices its {sym['n_states']} lowest-energy "
                  f"training labels ({sym['n_sites']} sites) and their exactly degenerate "
                  f"images apart by up to {_fmt(sym['rotations'], '.2e')} (lattice rotations), "
                  f"{_fmt(sym['mirrors'], '.2e')} (mirrors) and "
                  f"{_fmt(sym['time_reversal'], '.2e')} (time reversal S -> -S) per site.", ""]
    if rep.get("heldout"):
        ho = rep["heldout"]
        lines += [f"Held-out RMSE(B) of the mean (pooled): {_fmt(ho['rmse_field'])}, RMSE(E/N) "
                  f"{_fmt(ho.get('rmse_energy_per_site'))}"
                  + "".join(f"; {r['path']}: {_fmt(r['rmse_field'])}, "
                            f"{_fmt(r.get('rmse_energy_per_site'))}" for r in ho["files"])
                  + ".", ""]
    lines += ["Wall time per stage (s): " + ", ".join(
        f"{name} {_fmt(v, '.1f')}" for name, v in rep["stage_wall_s"].items()) + "."]
    if rep.get("stop"):
        lines += ["", f"Stop: {rep['stop']}."]
    write_text(path, "\n".join(lines) + "\n")


def _largest(sym: Optional[Mapping[str, Any]]) -> Optional[float]:
    """The largest of a :func:`symmetry_scores` record's three differences."""
    return max(sym[k] for k in ("rotations", "mirrors", "time_reversal")) if sym else None


def summary_rows(run_dir: Path) -> List[Dict[str, Any]]:
    """One row per round with a report (:data:`SUMMARY_COLUMNS`)."""
    from ._files import read_json, round_dir
    rows = []
    k = 0
    while (round_dir(run_dir, k) / "report.json").exists():
        rep = read_json(round_dir(run_dir, k) / "report.json")
        walls = dict(rep.get("stage_wall_s") or {})
        walls["report"] = rep.get("wall_s")            # the report stage's own time
        trust = rep.get("trust") or {}
        bt = rep.get("before_training") or {}
        rows.append({
            "round": k, "ed_labels": rep.get("ed_labels"), "ed_wall_s": rep.get("ed_wall_s"),
            "lower": trust.get("lower"), "upper": trust.get("upper"),
            "scored": rep.get("n_scored"), "accurate": rep.get("n_accurate"),
            "candidate": rep.get("n_candidate"), "failed": rep.get("n_failed"),
            "share_accurate": rep.get("share_accurate"), "selected": rep.get("n_selected"),
            "rmse_before": bt.get("rmse_field"),
            "corr_sigma_error": ((bt.get("calibration") or {}).get("sites") or {}).get("pearson"),
            "rmse_accurate": ((bt.get("by_class") or {}).get("accurate") or {}).get("rmse_field"),
            "val_rmse": (rep.get("committee") or {}).get("val_rmse_field"),
            "heldout_rmse": (rep.get("heldout") or {}).get("rmse_field"),
            "heldout_rmse_e": (rep.get("heldout") or {}).get("rmse_energy_per_site"),
            "symmetry_e": _largest(rep.get("symmetry")),
            "wall_s": sum(v for v in walls.values() if v is not None),
            "stop": rep.get("stop")})
        k += 1
    return rows


def latest_committee(run_dir: Path) -> Optional[Path]:
    """The committee of the last round whose training finished, or the final training's
    (config ``final``) once it has finished; ``None`` before round 0's.

    Args:
        run_dir: the learning run's directory.

    Returns:
        ``run_dir/round_NNN/committee/committee.pt`` of the highest such round, or ``None``.
    """
    from ._files import round_dir
    latest, k = None, 0
    while round_dir(run_dir, k).exists():
        if (round_dir(run_dir, k) / "train.json").exists():
            latest = round_dir(run_dir, k) / "committee" / "committee.pt"
        if (round_dir(run_dir, k) / "final.json").exists():
            latest = round_dir(run_dir, k) / "final" / "committee.pt"
        k += 1
    return latest


def _final_records(run_dir: Path, rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The records of the finished final trainings (``round_NNN/final.json``), in round order,
    each with ``round`` and ``superseded`` (the run went on past that round, e.g. when it was
    continued with a larger ``stop.max_rounds``: the time was spent, the committee is not the
    latest)."""
    from ._files import read_json
    last = rows[-1]["round"] if rows else -1
    out = []
    for path in sorted(Path(run_dir).glob("round_*/final.json")):
        k = int(path.parent.name.split("_")[1])
        out.append({**read_json(path), "round": k, "superseded": k < last})
    return out


def _sections(dynamics) -> List[Mapping[str, Any]]:
    """A final record's ``exact_dynamics``: a list of sections (one mapping in records
    written before there could be several; ``None`` for none)."""
    if dynamics is None:
        return []
    return [dynamics] if isinstance(dynamics, Mapping) else list(dynamics)


def write_summary(run_dir: Path, final: Optional[str] = None) -> None:
    """``summary.json`` and ``summary.md`` of a run directory, from its rounds' reports."""
    from ._files import write_json, write_text
    rows = summary_rows(Path(run_dir))
    model = latest_committee(Path(run_dir))
    finals = _final_records(Path(run_dir), rows)
    fin = finals[-1] if finals and not finals[-1]["superseded"] else None
    keys = ("round", "committee", "init_from", "metrics", "heldout", "symmetry", "wall_s")
    write_json(Path(run_dir) / "summary.json",
               {"rounds": rows, "finished": final,
                "final_training": fin and {k: fin.get(k) for k in keys},
                "superseded_final_trainings": [{k: f.get(k) for k in keys}
                                               for f in finals if f["superseded"]],
                "committee": model and str(model.relative_to(run_dir))})
    cols = list(SUMMARY_COLUMNS)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c), ".4g") for c in cols) + " |")
    # the rounds' labels and those of every final training's exact dynamics
    total_labels = sum(r["ed_labels"] or 0 for r in rows) + sum(
        d.get("n_labels", 0) for f in finals for d in _sections(f.get("exact_dynamics")))
    rounds_wall = sum(r["wall_s"] or 0 for r in rows)
    superseded = [f for f in finals if f["superseded"]]
    wall = rounds_wall + sum(f["wall_s"] or 0 for f in finals)
    lines += ["", f"ED labels in all: {total_labels}; wall time in all: {_fmt(wall, '.1f')} s"
              + (f" (rounds {_fmt(rounds_wall, '.1f')} s"
                 + "".join(f", final training after round {f['round']} "
                           f"{_fmt(f['wall_s'], '.1f')} s" for f in finals) + ")"
                 if finals else "") + "."]
    for f in superseded:
        lines.append(f"The final training after round {f['round']} is superseded: the run went "
                     f"on to more rounds; its time is counted above, its committee is not the "
                     f"latest.")
    if fin:
        ho = fin.get("heldout") or {}
        lines.append(f"Final training after round {fin['round']} ({len(fin['data'])} data "
                     f"files, from {fin['init_from']}): "
                     f"validation RMSE(B) of the mean "
                     f"{_fmt((fin.get('metrics') or {}).get('val_rmse_field'))}, held-out RMSE(B) "
                     f"{_fmt(ho.get('rmse_field'))}, RMSE(E/N) "
                     f"{_fmt(ho.get('rmse_energy_per_site'))}"
                     + (f", largest energy difference per site between a low-energy label "
                        f"and a degenerate image {_fmt(_largest(fin['symmetry']), '.2e')}"
                        if fin.get("symmetry") else "")
                     + f"; {_fmt(fin['wall_s'], '.1f')} s.")
    if model:
        lines.append(f"Latest committee (the model to use): {model}; in summary.json, "
                     "`committee` is this path relative to the run directory.")
    if final:
        lines.append(f"Finished: {final}.")
    write_text(Path(run_dir) / "summary.md", "\n".join(lines) + "\n")
