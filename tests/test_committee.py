"""Committees (ecnn_pyg.committee): statistics, checkpoints, training, evaluate and simulate."""
import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import ecnn_pyg as ep
import ecnn_pyg.committee as C
from ecnn_pyg import keys as K
from ecnn_pyg import simulate as S
from ecnn_pyg.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ecnn_pyg.cli import main
from ecnn_pyg.committee import (Committee, SnapshotUncertainty, UncertaintyWarning,
                                committee_field_stats, save_committee, train_committee)
from ecnn_pyg.config import ConfigError
from ecnn_pyg.datasets import DataFileError
from ecnn_pyg.pretrained import load_model, load_model_and_checkpoint
from ecnn_pyg.spins import random_spins

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"channels": 2, "num_blocks": 1, "lmax": 1}
SQUARE = {"lattice": "square", "hoppings": {"t1": 1.0}, "size": [4, 4],
          "model": {"J": 7.0, "electrons": 14}}


def _members(n=3, lattice="square", dtype=torch.float32):
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        out.append(ep.ECNN(lattice=lattice, **TINY).to(dtype).eval())
    return out


def _ckpt(model, data=SQUARE):
    from ecnn_pyg.checkpoint import FORMAT, FORMAT_VERSION
    return {"format": FORMAT, "format_version": FORMAT_VERSION,
            "package_version": ep.__version__, "model_type": "ecnn", "model_config": model.config,
            "model_state": model.state_dict(), "dtype": "float32", "data": dict(data)}


def _train_cfg(data, run_dir, **kw):
    return {"data": str(data), "run_dir": str(run_dir), "max_epochs": 2, "batch_size": 3,
            "optimizer": "adam", "lr": 0.01, "progress": False, "plot_every": 0,
            "early_stopping_patience": None, "model_config": dict(TINY), **kw}


@pytest.fixture(scope="module")
def trained(square_data, tmp_path_factory):
    """A committee of two tiny members trained (2 epochs) on the 4 x 4 square data.

    On one thread, as the tests that retrain it and compare bit for bit (``one_thread``): the
    thread count changes the sums' order, and pytest may set a module fixture up before or
    after the function fixtures of the test that first asks for it."""
    run_dir = tmp_path_factory.mktemp("committee") / "c2"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_committee(_train_cfg(square_data, run_dir), members=2)
    finally:
        torch.set_num_threads(n)


# ----------------------------------------------------------------------------- statistics
def test_mean_and_sigma_are_the_members_statistics():
    members = _members(3)
    committee = Committee(members).eval()
    graph = ep.lattice_graph("square", 6)
    spins = random_spins(graph.num_nodes, seed=3, dtype=torch.float32)
    out = committee(graph, spins)
    outs = [m(graph, spins) for m in members]
    f = np.stack([o["field"].detach().double().numpy() for o in outs])          # (M, N, 3)
    e = np.array([float(o["energy"].detach()) for o in outs])
    loc = np.stack([o["local_energy"].detach().double().numpy() for o in outs])
    mean = f.mean(0)
    sigma = np.sqrt(np.mean([np.sum((fm - mean) ** 2, axis=1) for fm in f], axis=0))
    np.testing.assert_allclose(out["field"].detach().numpy(), mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out["field_sigma"].detach().numpy(), sigma, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out["local_energy"].detach().numpy(), loc.mean(0), atol=1e-6)
    np.testing.assert_allclose(float(out["energy"].detach()), e.mean(), rtol=1e-6)
    np.testing.assert_allclose(float(out["energy_sigma"].detach()), e.std(), rtol=1e-4)
    assert sigma.max() > 1e-3                          # members really differ
    st = committee_field_stats(committee, graph, spins)
    assert st["sigma_max"] == pytest.approx(sigma.max(), rel=1e-5)
    assert st["sigma_mean"] == pytest.approx(sigma.mean(), rel=1e-5)
    assert st["sigma_rms"] == pytest.approx(np.sqrt(np.mean(sigma ** 2)), rel=1e-5)
    no_field = committee(graph, spins, compute_field=False)
    assert "field" not in no_field and "field_sigma" not in no_field
    # where an ECNN runs: a field source (mean field), the tiling's reach, .to(float64)
    src = ep.dynamics.model_field_source(committee, graph)
    np.testing.assert_allclose(src(spins).numpy(), mean, rtol=1e-6, atol=1e-7)
    from ecnn_pyg.distributed.tiling import receptive_hops
    assert receptive_hops(committee) == receptive_hops(members[0]) == 2
    assert next(committee.to(torch.float64).parameters()).dtype == torch.float64
    assert ep.committee.Committee is Committee                  # ecnn_pyg.committee, lazily


def test_tiled_sigma_equals_the_untiled_one():
    committee = Committee(_members(2)).eval()
    graph = ep.lattice_graph("square", 12)
    spins = random_spins(graph.num_nodes, seed=4, dtype=torch.float32)
    a = committee_field_stats(committee, graph, spins)
    b = committee_field_stats(committee, graph, spins, max_sites=100)
    np.testing.assert_allclose(b["sigma"].numpy(), a["sigma"].numpy(), atol=1e-6)


def test_fewer_than_two_members_are_refused(tmp_path, square_data, capsys):
    m = _members(1)
    for bad in ([], m):
        with pytest.raises(ValueError, match="M >= 2"):
            Committee(bad)
    with pytest.raises(ValueError, match="M >= 2"):
        save_committee(tmp_path / "c.pt", [_ckpt(m[0])])
    with pytest.raises(ValueError, match="M >= 2"):
        train_committee(_train_cfg(square_data, tmp_path / "r"), members=1)
    assert not (tmp_path / "r").exists()
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--config", "x.yaml", "--committee", "1"])
    assert exit_.value.code == 2 and "M >= 2" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="committee.*>= 2"):
        ep.training.train(_train_cfg(square_data, tmp_path / "r", committee=1))
    with pytest.raises(ConfigError, match="train_committee"):     # one Trainer is not a committee
        ep.training.train(_train_cfg(square_data, tmp_path / "r", committee=3))


def test_members_of_different_lattices_are_refused():
    with pytest.raises(ValueError, match="lattice"):
        Committee(_members(1) + _members(1, lattice="triangular"))
    with pytest.raises(ValueError, match="dtype"):
        Committee(_members(1) + _members(1, dtype=torch.float64))


# ----------------------------------------------------------------------------- checkpoints
def test_a_committee_file_loads_as_a_committee(tmp_path):
    members = _members(3)
    path = save_committee(tmp_path / "c.pt", [_ckpt(m) for m in members],
                          trust={"lower": 0.01, "upper": 0.05}, metrics={"val_rmse_field": 0.1})
    model, ckpt = load_model_and_checkpoint(path)
    assert isinstance(model, Committee) and len(model) == 3 and not model.training
    assert model.trust == {"lower": 0.01, "upper": 0.05}
    assert ckpt["kind"] == "committee" and ckpt["metrics"]["val_rmse_field"] == 0.1
    assert model.trained_on["hoppings"] == {"t1": 1.0}
    graph = ep.lattice_graph("square", 6)
    spins = random_spins(graph.num_nodes, seed=1, dtype=torch.float32)
    a, b = Committee(members)(graph, spins), model(graph, spins)
    assert torch.equal(a["field"], b["field"]) and torch.equal(a["field_sigma"], b["field_sigma"])
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "committee.pt").write_bytes(path.read_bytes())
    assert isinstance(load_model(folder), Committee)            # the run folder stands for it
    single = save_checkpoint(tmp_path / "one.pt", _ckpt(members[0]))
    assert type(load_model(single)) is ep.ECNN                  # single models as before
    bad = _ckpt(members[1])
    bad["model_state"] = {k: v.clone() for k, v in bad["model_state"].items()}
    next(iter(bad["model_state"].values()))[...] = float("nan")
    save_checkpoint(tmp_path / "nan.pt", {"kind": "committee", "model_type": "committee",
                                          "model_config": {}, "model_state": {},
                                          "members": [_ckpt(members[0]), bad]})
    with pytest.raises(CheckpointError, match="member 1.*not finite"):
        load_model(tmp_path / "nan.pt")
    with pytest.raises(ValueError, match="trust level 'upper'"):
        save_committee(tmp_path / "t.pt", [_ckpt(m) for m in members], trust={"upper": -1})


# ----------------------------------------------------------------------------- training
def test_trained_committee_records_metrics_and_trust(trained, square_data):
    info = C.read_committee_info(trained)
    assert info["members"] == 2
    met = info["metrics"]
    assert met["split"] == "val" and met["val_samples"] == 3
    assert len(met["members"]) == 2 and [x["seed"] for x in met["members"]] == [0, 1]
    for key in ("val_rmse_field", "val_rmse_energy_per_site", "val_sigma_mean", "val_sigma_q90",
                "val_sigma_max", "val_sigma_error_correlation", "val_error_site_rms",
                "val_snapshot_sigma_max_median", "val_snapshot_sigma_mean_median"):
        assert np.isfinite(met[key]), key
    assert met["val_sigma_mean"] <= met["val_snapshot_sigma_max_median"] <= met["val_sigma_max"]
    # the default rule: lower = RMS over validation sites of |B_mean - B_ED|, upper = 3 x lower
    assert info["trust"]["lower"] == pytest.approx(met["val_error_site_rms"])
    assert info["trust"]["upper"] == pytest.approx(C.UPPER_TRUST_FACTOR * met["val_error_site_rms"])
    # the mean's RMSE from the members' own predictions on the validation split
    from ecnn_pyg.datasets import read_arrays, read_graph
    arr, graph = read_arrays(square_data, "val"), read_graph(square_data)
    preds = [ep.training.evaluate_arrays(load_model(trained.parent / f"member_{m}" / "best.pt"),
                                         graph, torch.from_numpy(arr[K.SPIN]))[K.FIELD]
             for m in range(2)]
    err = np.mean(preds, axis=0) - arr[K.FIELD]
    assert met["val_rmse_field"] == pytest.approx(np.sqrt(np.mean(err ** 2)), rel=1e-5)
    assert met["val_error_site_rms"] == pytest.approx(np.sqrt(np.mean(np.sum(err ** 2, -1))),
                                                      rel=1e-5)
    seeds = [load_checkpoint(trained.parent / f"member_{m}" / "best.pt")["train_config"]["seed"]
             for m in range(2)]
    assert seeds == [0, 1]


def test_interrupted_committee_training_resumes_to_the_same_result(trained, square_data,
                                                                   tmp_path, monkeypatch):
    from ecnn_pyg.training import trainer as T
    run_dir = tmp_path / "c2"
    cfg = _train_cfg(square_data, run_dir)
    real_run, real_epoch = T.Trainer.run, T.Trainer.train_epoch
    calls, stops = [], []
    monkeypatch.setattr(T.Trainer, "run", lambda self: calls.append(self.run_dir.name)
                        or real_run(self))

    def epoch(self, e):                      # Ctrl-C in member 1's second epoch
        if self.run_dir.name == "member_1" and e == 2 and not stops:
            stops.append(e)
            raise KeyboardInterrupt
        return real_epoch(self, e)
    monkeypatch.setattr(T.Trainer, "train_epoch", epoch)
    with pytest.raises(KeyboardInterrupt):
        train_committee(cfg, members=2)
    assert (run_dir / "member_0" / "done.json").exists() and not (run_dir / "committee.pt").exists()
    assert load_checkpoint(run_dir / "member_1" / "last.pt")["epoch"] == 1
    assert not (run_dir / "member_1" / "done.json").exists()
    before = (run_dir / "member_0" / "best.pt").stat().st_mtime_ns
    out = train_committee(cfg, members=2)
    assert calls == ["member_0", "member_1", "member_1"]            # member 0 not redone
    assert (run_dir / "member_0" / "best.pt").stat().st_mtime_ns == before
    a, b = load_checkpoint(out), load_checkpoint(trained)
    for ma, mb in zip(a["members"], b["members"]):
        for k, v in ma["model_state"].items():
            assert torch.equal(v, mb["model_state"][k]), k
    assert a["trust"] == b["trust"]
    calls.clear()
    assert train_committee(cfg, members=2) == out and calls == []   # finished: returns at once
    with pytest.raises(ConfigError, match="already holds a committee"):
        train_committee(cfg, members=2, resume=False)


def test_a_committee_starts_from_the_members_of_another(trained, square_data, tmp_path):
    out = train_committee(_train_cfg(square_data, tmp_path / "r", max_epochs=1, lr=1e-6),
                          members=2, init_from=trained.parent)
    before, after = load_checkpoint(trained)["members"], load_checkpoint(out)["members"]
    for m in range(2):         # member m from member m (a tiny lr: the weights barely move)
        init = load_checkpoint(tmp_path / "r" / "init" / f"member_{m}.pt")["model_state"]
        for k, v in before[m]["model_state"].items():
            assert torch.equal(init[k], v), k
            assert torch.allclose(after[m]["model_state"][k], v, atol=1e-4), k
    first = [next(iter(a["model_state"].values())) for a in after]
    assert not torch.allclose(first[0], first[1])                 # two members, two seeds
    with pytest.raises(ValueError, match="fewer than the 3"):
        train_committee(_train_cfg(square_data, tmp_path / "r3"), members=3, init_from=trained)
    with pytest.raises(ConfigError, match="is a committee"):      # one Trainer: one member's
        ep.training.train(_train_cfg(square_data, tmp_path / "one", init_from=str(trained)))
    # a committee as the config's own init_from: member m from member m too
    train_committee(_train_cfg(square_data, tmp_path / "k", max_epochs=1, lr=1e-6,
                               init_from=str(trained.parent)), members=2)
    for m in range(2):
        a = load_checkpoint(tmp_path / "k" / "init" / f"member_{m}.pt")["model_state"]
        b = load_checkpoint(tmp_path / "r" / "init" / f"member_{m}.pt")["model_state"]
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_train_committee_from_the_config_key(square_data, tmp_path):
    import yaml
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_train_cfg(square_data, tmp_path / "r", max_epochs=1,
                                             committee=2)))
    assert main(["train", "--config", str(cfg), "--quiet"]) == 0
    assert isinstance(load_model(tmp_path / "r"), Committee)
    assert main(["train", "--config", str(cfg), "--quiet"]) == 0          # finished: kept


def _train_on_rank(config, fail_rank=None):
    """``ecnn-pyg train --config`` on a rank: its exit code and the members it trained."""
    from ecnn_pyg import distributed as dist
    from ecnn_pyg.training import trainer as T
    calls, real_run = [], T.Trainer.run

    def run(self):
        calls.append(self.run_dir.name)
        return real_run(self)
    T.Trainer.run = run
    if fail_rank == dist.rank():
        def epoch(self, e):
            raise ValueError("this member failed")
        T.Trainer.train_epoch = epoch
    return main(["train", "--config", config, "--quiet"]), calls


def test_committee_members_spread_over_torchrun_ranks(trained, square_data, tmp_path):
    """Under torchrun rank r trains members r, r + 2, ...; the committee is the one-process
    committee (same weights, metrics and trust levels). A member that fails on one rank
    stops the other with a clear error instead of leaving it waiting."""
    import yaml
    from ecnn_pyg.distributed.testing import run_ranks
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_train_cfg(square_data, tmp_path / "r", committee=2)))
    assert run_ranks(2, _train_on_rank, str(cfg)) == [(0, ["member_0"]), (0, ["member_1"])]
    a, b = load_checkpoint(tmp_path / "r" / "committee.pt"), load_checkpoint(trained)
    for ma, mb in zip(a["members"], b["members"]):
        for k, v in ma["model_state"].items():
            assert torch.equal(v, mb["model_state"][k]), k
    assert a["trust"] == b["trust"]
    assert a["metrics"]["val_rmse_field"] == b["metrics"]["val_rmse_field"]
    assert run_ranks(2, _train_on_rank, str(cfg)) == [(0, []), (0, [])]     # finished: kept
    cfg.write_text(yaml.safe_dump(_train_cfg(square_data, tmp_path / "f", committee=2)))
    out = run_ranks(2, _train_on_rank, str(cfg), 1)
    assert out == [(1, ["member_0"]), (2, ["member_1"])]
    assert (tmp_path / "f" / "member_0" / "done.json").exists()         # kept for the rerun
    assert not (tmp_path / "f" / "committee.pt").exists()


# ----------------------------------------------------------------------------- evaluate
def test_evaluate_reports_the_committee_uncertainty(trained, square_data, tmp_path, capsys):
    assert main(["evaluate", "--model", str(trained), "--data", str(square_data),
                 "--plot", str(tmp_path / "p.png")]) == 0
    out = capsys.readouterr().out
    rep = json.loads(out[:out.rindex("}") + 1])
    met = C.read_committee_info(trained)["metrics"]
    assert rep["members"] == 2 and rep["rmse_field"] == pytest.approx(met["val_rmse_field"])
    assert rep["sigma_mean"] == pytest.approx(met["val_sigma_mean"])
    assert -1 <= rep["sigma_error_correlation"] <= 1
    spins = random_spins(2 * 36, seed=5).reshape(2, 36, 3).numpy()
    np.save(tmp_path / "s.npy", spins)
    assert main(["evaluate", "--model", str(trained.parent), "--spins", str(tmp_path / "s.npy"),
                 "--size", "6", "6", "--out", str(tmp_path / "o.npz")]) == 0
    res = np.load(tmp_path / "o.npz")
    committee = load_model(trained)
    graph = ep.lattice_graph("square", 6)
    st = committee_field_stats(committee, graph, torch.from_numpy(spins[1]).float())
    np.testing.assert_allclose(res["field_sigma"][1], st["sigma"].numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res["field"][1], st["field"].numpy(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- simulate
def _sim(trained, tmp_path, name="t.h5", **kw):
    cfg = {"output": str(tmp_path / name), "lattice": "square", "size": [6, 6],
           "hoppings": {"t1": 1.0}, "source": "model", "model": str(trained), "dt": 0.2,
           "alpha": 0.5, "temperature": 0.05, "n_steps": 4, "save_every": 2, "seed": 2,
           "dtype": "float32"}
    cfg.update(kw)
    return cfg


def test_simulate_records_sigma_of_every_snapshot(trained, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncertaintyWarning)
        path = S.simulate(_sim(trained, tmp_path, trust_upper=1e3), progress=False)
    committee = load_model(trained)
    graph = ep.lattice_graph("square", 6)
    with h5py.File(path, "r") as f:
        g = f["run_000"]
        assert g["sigma_max"].shape == g["energy"].shape == (3,)
        assert g.attrs["trust_upper"] == 1e3
        assert g.attrs["trust_lower"] == pytest.approx(committee.trust["lower"])
        for i, s in enumerate(g["spin"][()]):
            st = committee_field_stats(committee, graph, torch.from_numpy(s))
            assert g["sigma_max"][i] == pytest.approx(st["sigma_max"], rel=1e-5)
            assert g["sigma_mean"][i] == pytest.approx(st["sigma_mean"], rel=1e-5)
            assert g["sigma_rms"][i] == pytest.approx(st["sigma_rms"], rel=1e-5)
    run = S.read_runs(path)[0]
    assert len(run["sigma_max"]) == 3 and run["trust_upper"] == 1e3
    # resume: extending the run equals running it to the end at once
    S.simulate(_sim(trained, tmp_path, trust_upper=1e3, n_steps=6), progress=False)
    whole = S.simulate(_sim(trained, tmp_path, "w.h5", trust_upper=1e3, n_steps=6),
                       progress=False)
    a, b = S.read_runs(path)[0], S.read_runs(whole)[0]
    np.testing.assert_array_equal(a["sigma_max"], b["sigma_max"])
    np.testing.assert_array_equal(a["spin"], b["spin"])


def test_one_member_drives_and_the_committee_scores(trained, tmp_path):
    """committee_member k: the trajectory of member k alone; sigma_B still the committee's."""
    import yaml
    member_ckpt = sorted(Path(trained).parent.glob("member_*/best.pt"))[1]
    driven = S.simulate(_sim(trained, tmp_path, "m.h5", committee_member=1, trust_upper=1e3),
                        progress=False)
    alone = S.simulate(_sim(str(member_ckpt), tmp_path, "alone.h5"), progress=False)
    mean = S.simulate(_sim(trained, tmp_path, "mean.h5", trust_upper=1e3), progress=False)
    a, b, c = (S.read_runs(p)[0] for p in (driven, alone, mean))
    np.testing.assert_allclose(a["spin"], b["spin"], atol=1e-6)       # the member's dynamics
    np.testing.assert_allclose(a["energy"], b["energy"], rtol=1e-6)   # and its energies
    assert np.abs(a["spin"][-1] - c["spin"][-1]).max() > 1e-4         # not the mean's
    committee, graph = load_model(trained), ep.lattice_graph("square", 6)
    for i, s in enumerate(a["spin"]):
        st = committee_field_stats(committee, graph, torch.from_numpy(s))
        assert a["sigma_rms"][i] == pytest.approx(st["sigma_rms"], rel=1e-5)
    assert "sigma_rms" not in b
    # the driver is part of the file's identity: a resume with another one is refused
    with pytest.raises(DataFileError, match="committee_member"):
        S.simulate(_sim(trained, tmp_path, "m.h5", committee_member=0, n_steps=6),
                   progress=False)
    for bad, message in [(2, "one of 0 ... 1 .*has 2 members"), (-1, "committee_member must")]:
        with pytest.raises(ValueError, match=message):
            S.simulate(_sim(trained, tmp_path, "x.h5", committee_member=bad), progress=False)
    with pytest.raises(ValueError, match="needs a committee model"):
        S.simulate(_sim(str(member_ckpt), tmp_path, "x.h5", committee_member=0), progress=False)
    assert not (tmp_path / "x.h5").exists()
    cfg = yaml.safe_load(h5py.File(driven, "r").attrs["config"])
    assert cfg["committee_member"] == 1


def test_uncertainty_warning_fires_once_above_the_upper_level(trained, tmp_path):
    with pytest.warns(UncertaintyWarning, match="sigma_max") as rec:
        S.simulate(_sim(trained, tmp_path, trust_upper=1e-9), progress=False)
    assert sum(issubclass(w.category, UncertaintyWarning) for w in rec) == 1   # 3 snapshots
    committee = load_model(trained)
    graph = ep.lattice_graph("square", 6)
    spins = random_spins(36, seed=0, dtype=torch.float32)
    sigma_max = committee_field_stats(committee, graph, spins)["sigma_max"]
    unc = SnapshotUncertainty(committee, graph, upper=sigma_max * 1.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncertaintyWarning)
        assert unc(spins)["sigma_max"] == pytest.approx(sigma_max)      # below: silent
    unc = SnapshotUncertainty(committee, graph, upper=sigma_max * 0.99)
    with pytest.warns(UncertaintyWarning):
        unc(spins)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncertaintyWarning)
        unc(spins)                                                       # once only
    with pytest.raises(ValueError, match="trust_upper"):
        S.simulate(_sim(trained, tmp_path, "x.h5", trust_upper=-1.0), progress=False)


def test_cli_simulate_with_a_committee_plots_its_uncertainty(trained, tmp_path, capsys):
    import yaml
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(_sim(trained, tmp_path, "c.h5", plot=True, trust_upper=1e3,
                                       lattice=None)))          # the committee's lattice
    assert main(["simulate", "--config", str(cfg), "--quiet"]) == 0
    assert (tmp_path / "c_uncertainty.png").stat().st_size > 0
    assert "sigma_max=" in capsys.readouterr().out                  # in the run's summary
    assert len(S.read_runs(tmp_path / "c.h5")[0]["sigma_mean"]) == 3


def _cli_simulate(config):
    return main(["simulate", "--config", config, "--quiet"])


def test_committee_sigma_under_torchrun_equals_one_process(tmp_path):
    import yaml
    from ecnn_pyg.distributed.testing import run_ranks
    members = [_ckpt(m) for m in _members(2, dtype=torch.float64)]
    for ck in members:
        ck["dtype"] = "float64"
    model = save_committee(tmp_path / "c.pt", members, trust={"lower": 1e-7, "upper": 1e-6})
    files = {}
    for mode in ("one", "domain", "runs"):          # the lattice in slabs; the runs over ranks
        cfg = {"output": str(tmp_path / f"{mode}.h5"), "lattice": "square", "size": [12, 6],
               "hoppings": {"t1": 1.0}, "source": "model", "model": str(model), "dt": 0.2,
               "alpha": 0.5, "temperature": [0.0, 0.05], "n_steps": 4, "save_every": 2,
               "seed": 3, "dtype": "float64", **({} if mode == "one" else {"parallel": mode})}
        (tmp_path / f"{mode}.yaml").write_text(yaml.safe_dump(cfg))
        if mode == "one":
            with pytest.warns(UncertaintyWarning):
                assert _cli_simulate(str(tmp_path / "one.yaml")) == 0
        else:
            assert run_ranks(2, _cli_simulate, str(tmp_path / f"{mode}.yaml")) == [0, 0]
        files[mode] = S.read_runs(cfg["output"])
    for mode in ("domain", "runs"):
        for a, b in zip(files["one"], files[mode]):
            np.testing.assert_allclose(b["sigma_max"], a["sigma_max"], rtol=1e-9)
            np.testing.assert_allclose(b["sigma_mean"], a["sigma_mean"], rtol=1e-9)
            assert len(a["sigma_max"]) == 3 and b["trust_upper"] == 1e-6


# ----------------------------------------------------------------------------- export
def test_export_ships_a_committee(trained, square_data, tmp_path, capsys):
    """`ecnn-pyg export` of a committee file (it failed with "unknown type 'committee'")."""
    import yaml
    assert main(["export", "--checkpoint", str(trained), "--data", str(square_data),
                 "--name", "sq-committee", "--out", str(tmp_path / "models")]) == 0
    pt, card = tmp_path / "models" / "sq-committee.pt", tmp_path / "models" / "sq-committee.yaml"
    shipped, original = load_model(pt), load_model(trained)
    assert isinstance(shipped, C.Committee) and len(shipped) == 2
    assert shipped.trust == pytest.approx(original.trust)
    info = yaml.safe_load(card.read_text())
    assert info["model_type"] == "committee" and info["members"] == 2
    assert len(info["member_val_rmse_field"]) == 2
    # fields are unchanged (only each member's energy constant is calibrated), and no member
    # keeps optimizer state
    graph = ep.lattice_graph("square", 6)
    s = random_spins(36, seed=1).float()
    a, b = committee_field_stats(shipped, graph, s), committee_field_stats(original, graph, s)
    torch.testing.assert_close(a["field"], b["field"])
    torch.testing.assert_close(a["sigma"], b["sigma"])
    assert all("optimizer_state" in m for m in torch.load(trained, weights_only=False)["members"])
    assert all("optimizer_state" not in m for m in torch.load(pt, weights_only=False)["members"])
