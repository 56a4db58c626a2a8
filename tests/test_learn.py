"""Committee active learning (``ecnn-pyg learn``): selection, config checks, the loop end to end,
and its resumability (a stop after any stage, then a rerun, gives the uninterrupted result)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ecnn_pyg.config import ConfigError
from ecnn_pyg.learn import classify, learn, load_learn_config, select_candidates
from ecnn_pyg.learn.select import ACCURATE, CANDIDATE, FAILED

ROOT = Path(__file__).resolve().parent.parent
QUIET = dict(log=lambda _: None)


# --------------------------------------------------------------------------- selection


def test_classes_follow_the_trust_levels():
    s = [0.0, 0.099, 0.1, 0.2, 0.2999, 0.3, 5.0, float("nan"), float("inf")]
    got = classify(s, 0.1, 0.3)
    assert got.tolist() == [ACCURATE, ACCURATE, CANDIDATE, CANDIDATE, CANDIDATE, FAILED, FAILED,
                            FAILED, FAILED]
    assert classify([1e9], 0.1, float("inf")).tolist() == [CANDIDATE]     # no upper level
    with pytest.raises(ValueError, match="above the lower"):
        classify(s, 0.3, 0.1)
    with pytest.raises(ValueError, match="lower trust level"):
        classify(s, -1.0, 0.1)


def test_selection_takes_exactly_the_candidates_when_they_fit():
    rng = np.random.default_rng(3)
    scores = rng.uniform(0, 1, 200)
    groups = [(i % 3, i % 5) for i in range(200)]
    got = select_candidates(scores, groups, 0.25, 0.6, max_count=1000, seed=1)
    want = np.flatnonzero((scores >= 0.25) & (scores < 0.6))
    assert got.tolist() == want.tolist()
    # a candidate more than K: the cap holds, and only candidates are taken
    k = len(want) - 1
    got = select_candidates(scores, groups, 0.25, 0.6, max_count=k, seed=1)
    assert len(got) == k and set(got) <= set(want)


def test_selection_spreads_over_groups_and_is_deterministic():
    # group "a" has 50 candidates, "b" 5, "c" 3; K = 12: every group gets its share
    scores = np.full(58, 0.5)
    groups = ["a"] * 50 + ["b"] * 5 + ["c"] * 3
    got = select_candidates(scores, groups, 0.1, 1.0, max_count=12, seed=7)
    taken = [groups[i] for i in got]
    assert len(got) == 12 and taken.count("c") == 3 and taken.count("b") == 4 \
        and taken.count("a") == 5
    assert select_candidates(scores, groups, 0.1, 1.0, 12, seed=7).tolist() == got.tolist()
    other = [select_candidates(scores, groups, 0.1, 1.0, 12, seed=s).tolist() for s in range(5)]
    assert len({tuple(o) for o in other}) > 1           # the seed chooses among equals
    # K smaller than the number of groups: one per group at most
    got = select_candidates(scores, groups, 0.1, 1.0, max_count=2, seed=0)
    assert len({groups[i] for i in got}) == 2
    # accurate and failed snapshots are never taken, however small the candidate set
    scores = np.array([0.05, 0.5, 2.0, 0.5])
    assert select_candidates(scores, ["a", "a", "b", "b"], 0.1, 1.0, 10).tolist() == [1, 3]
    with pytest.raises(ValueError, match="max_count"):
        select_candidates(scores, ["a"] * 4, 0.1, 1.0, 0)
    with pytest.raises(ValueError, match="length"):
        select_candidates(scores, ["a"] * 3, 0.1, 1.0, 1)


def test_final_t0_snapshots_are_the_last_of_every_cold_run_not_failed():
    from ecnn_pyg.learn.select import final_t0_snapshots
    #            file 0: run 0 (T=0), run 1 (T=0.005)   file 1: run 0 (T=0), run 1 (T=0)
    arrays = {"traj":        [0, 0, 0, 0, 1, 1, 1, 1, 1],
              "run":         [0, 0, 1, 1, 0, 0, 1, 1, 1],
              "snapshot":    [2, 1, 1, 2, 1, 3, 3, 2, 1],
              "temperature": [0, 0, .005, .005, 0, 0, 0, 0, 0],
              "class": [ACCURATE, CANDIDATE, CANDIDATE, CANDIDATE, CANDIDATE, ACCURATE,
                        FAILED, CANDIDATE, CANDIDATE]}
    # file 0 run 0 ends at index 0 (snapshot 2, listed first); file 1 run 0 at index 5;
    # file 1 run 1 ends failed (index 6) and is left out; T > 0 runs never count
    assert final_t0_snapshots(arrays).tolist() == [0, 5]


# --------------------------------------------------------------------------- the config

TINY_TRAIN = {"model_config": {"channels": 4, "num_blocks": 2, "lmax": 1},
              "max_epochs": 2, "batch_size": 4, "optimizer": "adam", "lr": 0.01,
              "plot_every": 0, "progress": False, "early_stopping_patience": None,
              "dtype": "float64", "energy_weight": 0.1}


def small_config(run_dir, **sections):
    """A 6 x 6 square-lattice loop with a 2-member committee: seconds per round."""
    cfg = {"run_dir": str(run_dir), "seed": 0, "lattice": "square", "hoppings": {"t1": 1.0},
           "J": 3.0, "electrons": 30,
           "committee": {"members": 2, "train": dict(TINY_TRAIN),
                         "retrain": {"max_epochs": 1}},
           "seed_data": {"random": {"size": [6, 6], "n_train": 12, "n_val": 4}},
           "explore": {"sizes": [[6, 6]], "starts": ["random"], "zeeman": [0.0, 0.5],
                       "temperatures": [0.0], "dt": 0.2, "n_steps": 4, "save_every": 2,
                       "snapshots": "1:"},
           "select": {"lower": 0.01, "max_per_round": 3},
           "stop": {"accurate_share": 1.0, "max_rounds": 2}}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def test_the_small_config_is_complete(tmp_path):
    cfg = load_learn_config(small_config(tmp_path / "run"))
    assert cfg["select"] == {"lower": 0.01, "upper": None, "statistic": "rms",
                             "max_per_round": 3, "audit": 0, "minima": False,
                             "relax_minima": False}
    assert cfg["explore"]["sizes"] == [[6, 6]] and cfg["committee"]["members"] == 2
    assert cfg["seed_data"]["random"]["twists"] is None
    got = load_learn_config(small_config(tmp_path / "run"), {"select.lower": 0.01,
                                                            "stop.max_rounds": 7})
    assert got["select"]["lower"] == 0.01 and got["stop"]["max_rounds"] == 7


BAD = [
    ({"select": {"lower": 0.3, "upper": 0.1}}, "select.upper .* must be above select.lower"),
    ({"select": {"lower": 0.3, "upper": 0.3}}, "must be above"),
    ({"committee": {"members": 1}}, "committee.members must be >= 2"),
    ({"explore": {"starts": ["random", "spiral"]}}, "unknown start 'spiral'"),
    ({"explore": {"starts": ["nowhere.npy"]}}, "'nowhere.npy' does not exist"),
    ({"explore": {"starts": ["random", "random"]}}, "lists a start twice"),
    ({"electrons": None}, "exactly one of electrons, filling"),
    ({"J": None}, "config key 'J' .*is required"),
    ({"select": {"max_per_round": 0}}, "select.max_per_round must be >= 1"),
    ({"select": {"audit": -1}}, "select.audit must be >= 0"),
    ({"select": {"statistic": "mean"}}, "select.statistic"),
    ({"select": {"minima": "yes"}}, "select: config key 'minima'"),
    ({"select": {"relax_minima": True}}, "select.relax_minima: true needs select.minima: true"),
    ({"select": {"minima": True, "relax_minima": 1}}, "select: config key 'relax_minima'"),
    ({"stop": {"accurate_share": 1.5}}, "stop.accurate_share"),
    ({"seed_data": {"random": None}}, "seed_data needs random, ed_llg or paths"),
    ({"seed_data": {"random": {"size": [6, 6], "n_train": 4}}}, "validation samples"),
    ({"committee": {"train": {"lr": -1.0}}}, "committee.train: config key 'lr'"),
    ({"committee": {"train": {"data": "x.h5"}}}, "set by the learning loop"),
    ({"explore": {"sizes": [[6, 6], [8, 8]]}}, "electrons counts the electrons of one"),
    ({"explore": {"twists": {"8x8": 2}}}, "'8x8' is not one of the exploration sizes"),
    ({"validation": ["missing.h5"]}, "'missing.h5' is not an existing data file"),
    ({"zzz": 1}, "unknown config key"),
    ({"final": {"data": ["x.h5"]}}, "final: give training keys over committee.train"),
    ({"processes": 0}, "processes must be >= 1"),
    ({"explore": {"drive": "first"}}, "explore.drive must be 'mean'"),
    ({"explore": {"replicas": 0}}, "explore.replicas .* must be >= 1, got 0"),
    ({"exact_minima": {"starts": -1}}, "exact_minima.starts must be >= 0"),
    ({"exact_minima": {"starts": 1, "size": [8, 8]}}, "exact_minima.size 8x8 is not one of"),
    ({"exact_minima": {"starts": 1, "maxiter": 0}}, "exact_minima.maxiter must be >= 1"),
    ({"exact_minima": {"starts": 1, "final_weight": -1.0}, "final": {"max_epochs": 1}},
     "exact_minima.final_weight must be a finite number >= 0"),
    ({"exact_minima": {"starts": 1, "final_weight": 4.0}},
     "exact_minima.final_weight weights the exact minima in the final training: it needs final"),
    ({"exact_minima": {"final_weight": 4.0}, "final": {"max_epochs": 1}},
     "it needs final .* and exact_minima.starts > 0"),
    ({"final": {"max_epochs": 0}}, "final: config key 'max_epochs'"),
    ({"final": {"weight_by_energy": 0.0}}, "final: config key 'weight_by_energy' must be > 0"),
    ({"final": {"data_weights": {"seed_random.h5": 0.0}}}, "final: .*finite weight > 0"),
    ({"final": {"data_weights": {"seed_edllg.h5": 4.0}}},
     r"final: config key 'data_weights' names 'seed_edllg.h5', which is no file of 'data' "
     r".*\['seed_random.h5', 'labels_6x6.h5'\]"),
]


@pytest.mark.parametrize("change,message", BAD, ids=[m for _, m in BAD])
def test_bad_configs_fail_before_anything_is_written(tmp_path, change, message):
    cfg = small_config(tmp_path / "run")
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        elif value is None and key in ("J", "electrons"):
            cfg.pop(key)
        else:
            cfg[key] = value
    with pytest.raises(ConfigError, match=message):
        learn(cfg, log=lambda _: None)
    assert not (tmp_path / "run").exists()


def test_held_out_and_seed_files_must_have_the_runs_hamiltonian(tmp_path, heldout):
    cfg = small_config(tmp_path / "run", validation=[str(heldout)])
    assert load_learn_config(cfg)["validation"] == [str(heldout)]
    for change, message in (({"J": 4.0}, "another Hamiltonian .*J = 3.0"),
                            ({"hoppings": {"t1": 1.0, "t2": 0.3}}, "hoppings")):
        with pytest.raises(ConfigError, match=message):
            learn({**cfg, **change}, **QUIET)
        with pytest.raises(ConfigError, match="seed_data.paths: .*another Hamiltonian"):
            learn({**small_config(tmp_path / "run", seed_data={"paths": [str(heldout)]}),
                   **change}, **QUIET)
    assert not (tmp_path / "run").exists()


def test_missing_hamiltonian_in_a_yaml_file_names_the_key(tmp_path):
    cfg = small_config(tmp_path / "run")
    del cfg["J"]
    path = tmp_path / "bad_learn.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="config key 'J' .* is required"):
        learn(str(path), log=lambda _: None)
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- the loop


def _records(run_dir):
    """``ROUND/STAGE`` of every finished stage, in the order the loop runs them."""
    from ecnn_pyg.learn import ROUND0_STAGES, STAGES
    out = []
    for rd in sorted(Path(run_dir).glob("round_*")):
        k = int(rd.name.split("_")[1])
        out += [f"{k}/{s}" for s in (ROUND0_STAGES if k == 0 else STAGES)
                if (rd / f"{s}.json").exists()]
    return out


def full_config(run_dir, heldout):
    """The small loop with every kind of seed data, twisted labels and a held-out set."""
    return small_config(
        run_dir, validation=[str(heldout)],
        seed_data={"random": {"size": [6, 6], "n_train": 12, "n_val": 4},
                   "ed_llg": {"size": [6, 6], "zeeman": [0.5], "temperature": 0.2, "dt": 0.2,
                              "n_steps": 4, "save_every": 1, "snapshots": "1:", "n_val": 1}},
        explore={"twists": {"6x6": 2}})


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    from ecnn_pyg.generate import generate
    path = tmp_path_factory.mktemp("heldout") / "heldout.h5"
    generate({"output": str(path), "lattice": "square", "size": [6, 6], "hoppings": {"t1": 1.0},
              "J": 3.0, "electrons": 30, "seed": 99, "splits": {"test": 4}}, progress=False)
    return path


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, heldout):
    run_dir = tmp_path_factory.mktemp("learn") / "a"
    learn(full_config(run_dir, heldout), **QUIET)
    return run_dir


def test_label_bias_groups_every_trained_label_by_its_source(uninterrupted, capsys):
    """experiments/triangular_fig4/label_bias.py: every label the run trained on (seed and
    rounds, not the audits) falls in one group named by its seed kind or its exploration
    cell, temperature, start and kind, and each error is the model's E/N minus the label's."""
    import runpy
    import h5py
    from ecnn_pyg.datasets import read_arrays, read_graph
    from ecnn_pyg.learn._files import read_json
    from ecnn_pyg.pretrained import load_model
    from ecnn_pyg.training import evaluate_arrays
    script = Path(__file__).resolve().parent.parent / "experiments/triangular_fig4/label_bias.py"
    ns = runpy.run_path(str(script), run_name="label_bias")
    errors = ns["main"](["--learn", str(uninterrupted)])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(str(uninterrupted / "round_002"))   # the latest committee
    trained = read_json(uninterrupted / "round_002" / "train.json")["data"]
    n_labels = 0
    for path in trained:
        with h5py.File(path, "r") as f:
            n_labels += int(f["energy"].shape[0])
    assert sum(len(v) for v in errors.values()) == n_labels
    assert len(errors["seed: random configurations"]) == 16
    selected = [e for k in (1, 2) for e in
                read_json(uninterrupted / f"round_00{k}" / "select.json")["selected"]]
    for t in {e["temperature"] for e in selected}:
        for start in {e["start"] for e in selected}:
            here = [e for e in selected if e["temperature"] == t and e["start"] == start
                    and not e.get("minimum") and e["class"] != "exact minimum"]
            name = f"6x6, T = {t:g}, {start}: snapshot"
            assert len(errors.get(name, [])) == len(here)
            if here:
                assert any(ln.startswith(name) and f" {len(here):6d} " in ln for ln in out)
    # the errors of one file, computed directly
    model = load_model(uninterrupted).eval()
    path = uninterrupted / "round_000" / "seed_random.h5"
    arr = read_arrays(path, "val")
    graph = read_graph(path)
    pred = evaluate_arrays(model, graph, torch.from_numpy(arr["spin"]))["energy"]
    want = (pred - arr["energy"]) / graph.num_nodes
    np.testing.assert_allclose(errors["seed: random configurations"][12:], want, atol=1e-12)


def test_scratch_starts_tiles_the_lowest_relaxed_state_of_each_field(uninterrupted, tmp_path,
                                                                       capsys):
    """experiments/triangular_fig4/scratch_starts.py: the final states of every round's
    T = 0 runs relaxed to the committee's minima (zero torque), the lowest per explored field
    tiled periodically, and one start per |n_sk| class; with --exact-twists, the exact energy
    of each relaxed state."""
    import runpy
    import h5py
    from ecnn_pyg.datasets import read_graph
    from ecnn_pyg.ed import KondoED
    from ecnn_pyg.pretrained import load_model
    script = Path(__file__).resolve().parent.parent / "experiments/triangular_fig4/scratch_starts.py"
    ns = runpy.run_path(str(script), run_name="scratch_starts")
    main = ns["main"]
    main(["--learn", str(uninterrupted), "--cell", "6", "--size", "12", "--exact-twists", "2",
          "--out", str(tmp_path / "start_h{}.npy"), "--out-class", str(tmp_path / "nsk{}.npy")])
    out = capsys.readouterr().out
    table, starts = out.splitlines()[:-1], json.loads(out.splitlines()[-1])
    assert table[0].startswith("round_001, round_002 of")
    assert any("|n_sk| classes found" in ln for ln in table)
    rows = [r for k in (1, 2) for r in ns["final_states"](uninterrupted / f"round_00{k}", "6x6")]
    assert len(table) > len(rows) and {r["round"] for r in rows} == {"round_001", "round_002"}
    model = load_model(uninterrupted).double().eval()
    with h5py.File(uninterrupted / "round_002/explore/6x6_random.h5", "r") as f:
        graph = read_graph(f)
    ns["relaxed"](model, graph, rows)
    ed = KondoED(graph, J=3.0, electrons=30, twists=2)
    for h in (0.0, 0.5):
        here = [r for r in rows if r["zeeman"] == h]
        best = min(here, key=lambda r: r["e_min"])
        assert best["torque"] < 1e-4                  # a minimum: S parallel to B + H_z z
        assert best["e_min"] <= min(r["e"] for r in here) + 1e-9     # relaxing lowers E
        got = np.load(tmp_path / f"start_h{h:g}.npy").reshape(12, 12, 3)
        cell = best["spin_min"].reshape(6, 6, 3)
        for i in (0, 6):
            for j in (0, 6):
                np.testing.assert_allclose(got[i:i + 6, j:j + 6], cell, atol=1e-6)
        s = best["spin_min"]
        e_ed = (ed.energy(s) - h * s[:, 2].sum()) / 36
        assert starts[f"{h:g}"]["e"] == pytest.approx(best["e_min"], abs=1e-7)
        line = next(ln for ln in table if f" {h:7.4f} " in ln and f"{best['e_min']:12.7f}" in ln)
        assert f"{e_ed:12.7f}" in line
    # one start per class: the state of that class lying lowest against the other classes
    classes = {abs(round(r["n_sk_min"])) for r in rows}
    assert {k for k in starts if k.startswith("nsk")} == {f"nsk{c}" for c in classes}
    for c in classes:
        def margin(r):
            other = [q["e_min"] for q in rows if q["zeeman"] == r["zeeman"]
                     and abs(round(q["n_sk_min"])) != c]
            return r["e_min"] - min(other) if other else -np.inf
        mine = [r for r in rows if abs(round(r["n_sk_min"])) == c]
        assert starts[f"nsk{c}"]["margin"] == pytest.approx(min(margin(r) for r in mine))
        got = np.load(tmp_path / f"nsk{c}.npy")
        assert got.shape == (144, 3) and abs(round(starts[f"nsk{c}"]["n_sk"])) == c
    main(["--learn", str(uninterrupted), "--cell", "6", "--size", "12", "--rounds", "last",
          "--random", "2", "--out", str(tmp_path / "last_h{}.npy"),
          "--out-class", str(tmp_path / "last{}.npy")])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("round_002 of") and "2 random configurations per field" in out[0]
    fresh = [ln for ln in out if ln.split()[:1] == ["random"]]      # round column "random"
    assert len(fresh) == 4 and {ln.split()[3] for ln in fresh} == {"0.0000", "0.5000"}
    assert len([ln for ln in out[1:] if ln.split()[:1] == ["round_002"]]) == len(
        ns["final_states"](uninterrupted / "round_002", "6x6"))
    # the exact minima a round labelled (exact_minima) are read as states too
    run = tmp_path / "with_exact"
    shutil.copytree(uninterrupted, run)
    (run / "round_002" / "exact_minima").mkdir()
    np.save(run / "round_002" / "exact_minima" / "0.5_0.npy", rows[0]["spin"])
    (run / "round_002" / "exact_minima" / "0.5_0.json").write_text(json.dumps(
        {"size": "6x6", "zeeman": 0.5, "m_z": float(rows[0]["spin"][:, 2].mean())}))
    main(["--learn", str(run), "--cell", "6", "--size", "12", "--rounds", "last",
          "--out", str(tmp_path / "x_h{}.npy"), "--out-class", str(tmp_path / "x{}.npy")])
    out = capsys.readouterr().out.splitlines()
    exact = [ln for ln in out if ln.split()[1:3] == ["exact", "x0.5_0"]]
    assert len(exact) == 1 and exact[0].split()[3] == "0.5000"
    with pytest.raises(SystemExit, match="not a multiple"):
        main(["--learn", str(uninterrupted), "--cell", "6", "--size", "13"])
    main(["--learn", str(uninterrupted), "--cell", "6", "--size", "12", "--fields", "0.5",
          "--out", str(tmp_path / "f_h{}.npy"), "--out-class", str(tmp_path / "f{}.npy")])
    assert json.loads(capsys.readouterr().out.splitlines()[-1]).keys() >= {"0.5"}
    assert not (tmp_path / "f_h0.npy").exists() and (tmp_path / "f_h0.5.npy").exists()
    # --model: relaxed with another committee (here round 1's) instead of the run's latest
    first = uninterrupted / "round_001" / "committee" / "committee.pt"
    main(["--learn", str(uninterrupted), "--model", str(first), "--cell", "6", "--size", "12",
          "--fields", "0.5", "--out", str(tmp_path / "m_h{}.npy"),
          "--out-class", str(tmp_path / "m{}.npy")])
    out = capsys.readouterr().out.splitlines()
    assert f"minima of the committee {first} " in out[0]
    mine = [dict(r) for r in rows if r["zeeman"] == 0.5]
    ns["relaxed"](load_model(first).double().eval(), graph, mine)
    assert json.loads(out[-1])["0.5"]["e"] == pytest.approx(min(r["e_min"] for r in mine),
                                                            abs=1e-7)
    assert json.loads(out[-1])["0.5"]["e"] != pytest.approx(starts["0.5"]["e"], abs=1e-7)
    with pytest.raises(SystemExit, match=r"--fields \[0.3\]: not explored"):
        main(["--learn", str(uninterrupted), "--cell", "6", "--fields", "0.3"])
    with pytest.raises(SystemExit, match="--random must be >= 0"):
        main(["--learn", str(uninterrupted), "--random", "-1"])
    with pytest.raises(SystemExit, match="--tilt must be >= 0"):
        main(["--learn", str(uninterrupted), "--random", "1", "--tilt", "-0.5"])
    # --tilt: unit spins leaning towards +z; tilt 0 keeps the uniform draws of the same seed
    plain = ns["random_rows"]([0.1], 2000, 2, seed=5)
    assert np.array_equal(plain[1]["spin"], ns["random_rows"]([0.1], 2000, 2, 5, 0.0)[1]["spin"])
    tilted = ns["random_rows"]([0.1], 2000, 2, seed=5, tilt=0.5)
    assert [r["start"] for r in plain + tilted] == ["random"] * 2 + ["tilted"] * 2
    for r, q in zip(plain, tilted):
        np.testing.assert_allclose(np.linalg.norm(q["spin"], axis=1), 1.0, atol=1e-12)
        assert abs(r["spin"][:, 2].mean()) < 0.05 and q["spin"][:, 2].mean() > 0.3
        shifted = r["spin"] + [0.0, 0.0, 0.5]
        np.testing.assert_allclose(q["spin"], shifted / np.linalg.norm(shifted, axis=1,
                                                                       keepdims=True))
    with pytest.raises(SystemExit, match="no finished exploration"):
        main(["--learn", str(tmp_path)])


def test_scratch_crystals_relaxes_each_start_at_each_field(uninterrupted, tmp_path, capsys):
    """experiments/triangular_fig4/scratch_crystals.py: each start's cell relaxed afresh at
    every field to the committee's minimum (never above the start's energy), priced exactly,
    and the crossings of the lowest states of two classes interpolated linearly."""
    import runpy
    from ecnn_pyg.ed import KondoED
    import ecnn_pyg as ep
    from ecnn_pyg.minimize import model_energy_field, relax
    from ecnn_pyg.pretrained import load_model
    exp = Path(__file__).resolve().parent.parent / "experiments/triangular_fig4"
    ns = runpy.run_path(str(exp / "scratch_crystals.py"), run_name="scratch_crystals")
    crossings = runpy.run_path(str(exp / "exact_transitions.py"))["crossings"]
    # linear energies: n_sk = 2 and 1 cross at 0.005, 1 and 0 beyond the fields
    fields = [0.001 * i for i in range(11)]
    best = {h: {2: -0.1 * h, 1: 0.001 - 0.3 * h, 0: 0.004 - 0.5 * h} for h in fields}
    got = crossings(best)
    assert [(lo, hi) for lo, hi, _ in got] == [(2, 1)] and got[0][2] == pytest.approx(0.005)
    rng = np.random.default_rng(4)
    starts = []
    for k in range(2):
        cell = rng.normal(size=(6, 6, 3))
        cell /= np.linalg.norm(cell, axis=-1, keepdims=True)
        path = tmp_path / f"start{k}.npy"
        np.save(path, np.tile(cell, (2, 2, 1)).reshape(-1, 3))        # 6-periodic on 12 x 12
        starts.append((str(path), cell.reshape(-1, 3)))
    np.testing.assert_array_equal(ns["cell_of"](np.load(starts[0][0]), 6), starts[0][1])
    ns["main"](["--learn", str(uninterrupted), "--cell", "6", "--fields", "0.5",
                "--exact-twists", "2", "--starts", *[p for p, _ in starts]])
    out = capsys.readouterr().out.splitlines()
    rows = [ln.split() for ln in out[2:] if ln.split()[1].startswith("start")]
    assert len(rows) == 2 and {r[0] for r in rows} == {"0.5000"}
    cfg = yaml.safe_load((uninterrupted / "config.yaml").read_text())
    graph = ep.lattice_graph(cfg["lattice"], 6, cfg["hoppings"])
    ef = model_energy_field(load_model(uninterrupted), graph)
    ed = KondoED(graph, J=cfg["J"], electrons=cfg["electrons"], twists=2)
    for r in rows:
        h, s0 = float(r[0]), dict(starts)[str(tmp_path / (r[1] + ".npy"))]
        e_start = (ef(s0)[0] - h * s0[:, 2].sum()) / 36
        e_nn, e_ed = float(r[4]), float(r[5])
        assert e_nn <= e_start + 1e-7                 # relaxing never raises the energy
        assert float(r[6]) == pytest.approx(e_nn - e_ed, rel=0.05, abs=1e-7)
        s = relax(ef, s0, h)[0]                        # the same minimum, priced exactly
        assert e_ed == pytest.approx((ed.energy(s) - h * s[:, 2].sum()) / 36, abs=2e-7)
    assert any("energies of these states cross" in ln or "no crossing" in ln for ln in out)
    # --no-relax: the starts themselves, priced by the committee and exactly
    ns["main"](["--learn", str(uninterrupted), "--cell", "6", "--fields", "0.5",
                "--exact-twists", "2", "--no-relax", "--starts", starts[0][0]])
    lines = capsys.readouterr().out.splitlines()
    row = [ln.split() for ln in lines[2:]][0]
    assert "states as given" in lines[0] and not any("cross" in ln for ln in lines)
    s0 = starts[0][1]
    assert float(row[4]) == pytest.approx((ef(s0)[0] - 0.5 * s0[:, 2].sum()) / 36, abs=1e-7)
    assert float(row[5]) == pytest.approx((ed.energy(s0) - 0.5 * s0[:, 2].sum()) / 36, abs=1e-7)
    with pytest.raises(SystemExit, match="not found"):
        ns["main"](["--learn", str(uninterrupted), "--starts", str(tmp_path / "none.npy")])
    with pytest.raises(SystemExit, match="multiple of 5"):
        ns["cell_of"](np.load(starts[0][0]), 5)


def _copy_run(src, dst):
    """A finished run directory copied under another name (its stored run_dir follows)."""
    import yaml
    shutil.copytree(src, dst)
    stored = yaml.safe_load((dst / "config.yaml").read_text())
    (dst / "config.yaml").write_text(yaml.safe_dump({**stored, "run_dir": str(dst)}))
    return yaml.safe_load((dst / "config.yaml").read_text())


def test_explore_driven_by_members_in_turn(uninterrupted, heldout, tmp_path):
    """explore.drive may change when a run is continued; 'member': file i is driven by member
    i mod M (simulate's committee_member), the committee still scores its snapshots."""
    import h5py
    from ecnn_pyg.learn.loop import _started_member
    from ecnn_pyg.simulate import read_runs
    rd = tmp_path / "member"
    _copy_run(uninterrupted, rd)
    cfg = full_config(rd, heldout)
    cfg["explore"] = {**cfg["explore"], "drive": "member",
                      "starts": ["random", "ferromagnet"]}
    with pytest.raises(ConfigError, match=r"explore.starts differ .*explore.drive, explore.zeeman, explore.temperatures, "
                       r"explore.replicas, select.minima, select.relax_minima may change"):
        learn(cfg, rounds=3, until="3/explore", **QUIET)
    cfg = full_config(rd, heldout)
    cfg["explore"] = {**cfg["explore"], "drive": "member"}
    learn(cfg, rounds=3, until="3/explore", **QUIET)
    record = json.loads((rd / "round_003" / "explore.json").read_text())
    assert record["drive"] == "member"
    assert [f["committee_member"] for f in record["files"]] == [0]
    for f in record["files"]:
        assert _started_member(Path(f["path"])) == f["committee_member"]
        assert all(len(r["sigma_rms"]) == 3 for r in read_runs(f["path"]))
    with h5py.File(rd / "round_002" / "explore" / "6x6_random.h5", "r") as f:
        assert json.loads(f.attrs["committee_member"]) is None     # rounds 1-2: the mean
    assert _started_member(rd / "round_002" / "explore" / "6x6_random.h5") is None


def test_explore_fields_and_random_replicas_may_change_on_continuation(uninterrupted,
                                                                      heldout, tmp_path):
    """explore.zeeman, temperatures and replicas may change when a run is continued: the next
    round explores the new fields, with `replicas` random starts each (own spins and noise),
    the deterministic starts once; a finished round keeps its files."""
    from ecnn_pyg.simulate import read_runs
    rd = tmp_path / "replicas"
    _copy_run(uninterrupted, rd)
    before = (rd / "round_002" / "explore" / "6x6_random.h5").read_bytes()
    cfg = full_config(rd, heldout)
    cfg["explore"] = {**cfg["explore"], "starts": ["random", "ferromagnet"]}
    with pytest.raises(ConfigError, match=r"explore.starts differ"):
        learn(cfg, rounds=3, until="3/explore", **QUIET)
    cfg = full_config(rd, heldout)
    cfg["explore"] = {**cfg["explore"], "zeeman": [0.0, 0.25, 0.5], "replicas": 3}
    learn(cfg, rounds=3, until="3/explore", **QUIET)
    runs = read_runs(rd / "round_003" / "explore" / "6x6_random.h5")
    assert [float(r["zeeman"]) for r in runs] == [0.0] * 3 + [0.25] * 3 + [0.5] * 3
    firsts = np.stack([r["spin"][0] for r in runs])
    assert all(not np.allclose(firsts[i], firsts[j]) for i in range(9) for j in range(i))
    assert (rd / "round_002" / "explore" / "6x6_random.h5").read_bytes() == before
    assert len(read_runs(rd / "round_002" / "explore" / "6x6_random.h5")) == 2
    # the loop goes on from the new exploration: its T = 0 minima are one per run
    cfg["select"] = {**cfg["select"], "minima": True}
    learn(cfg, rounds=3, until="3/select", **QUIET)
    assert json.loads((rd / "round_003" / "select.json").read_text())["n_minima"] == 9


def test_stage_clock_is_saved_while_the_stage_runs(tmp_path):
    """A stage killed without its finally (SIGKILL) keeps the time it had spent to within a
    period of the heartbeat that rewrites its clock file."""
    import time
    from ecnn_pyg.learn.loop import _Heartbeat
    ticks = []
    beat = _Heartbeat(lambda: ticks.append(time.time()), period=0.05)
    time.sleep(0.4)
    beat.stop()
    n = len(ticks)
    assert 3 <= n <= 9
    time.sleep(0.15)
    assert len(ticks) == n                      # stopped


def test_minima_are_labelled_beside_the_candidates(uninterrupted, heldout, tmp_path):
    """select.minima may be switched on when a run made without it is continued: the last
    snapshot of every T = 0 run is labelled and trained on whatever its class, and the report
    gives the exploring committee's energy error on those minima."""
    from ecnn_pyg.datasets import read_arrays, read_graph
    from ecnn_pyg.learn.report import predict
    from ecnn_pyg.learn.select import final_t0_snapshots
    from ecnn_pyg.pretrained import load_model
    rd = tmp_path / "minima"
    stored = _copy_run(uninterrupted, rd)
    stored["select"].pop("minima")                 # a run directory of an older release
    (rd / "config.yaml").write_text(yaml.safe_dump(stored))
    cfg = full_config(rd, heldout)
    cfg["select"] = {**cfg["select"], "minima": True}
    learn(cfg, rounds=3, until="3/report", **QUIET)
    r = rd / "round_003"
    scores = dict(np.load(r / "scores.npz"))
    minima = final_t0_snapshots(scores)
    assert len(minima) == 2                        # two T = 0 runs (H_z = 0, 0.5), none failed
    sel = json.loads((r / "select.json").read_text())
    assert sel["n_minima"] == 2
    assert sorted(row["index"] for row in sel["selected"] if row["minimum"]) == minima.tolist()
    for row in sel["selected"]:
        if not row["minimum"]:
            assert row["class"] == "candidate"
    labels = read_arrays(r / "labels_6x6.h5")
    assert len(labels["spin"]) == sel["n_selected"] >= 2
    tr = json.loads((r / "train.json").read_text())
    assert str(r / "labels_6x6.h5") in tr["data"]
    # the committee of round 2 on the labelled minima, before training on them
    rep = json.loads((r / "report.json").read_text())
    row = rep["before_training"]["by_class"]["minimum"]
    pick = [i for i, s in enumerate(sel["selected"]) if s["minimum"]]
    pred = predict(load_model(rd / "round_002" / "committee" / "committee.pt").eval(),
                   read_graph(r / "labels_6x6.h5"), labels["spin"][pick])
    de = (pred["energy"] - labels["energy"][pick]) / 36
    assert row["snapshots"] == 2 and row["sites"] == 72
    assert row["rmse_energy_per_site"] == pytest.approx(float(np.sqrt((de ** 2).mean())))
    assert "| minimum |" in (r / "report.md").read_text()


def test_relaxed_minima_are_the_exploring_committees_minima(uninterrupted, heldout, tmp_path):
    """select.relax_minima: the minima are relaxed to the exploring committee's nearest energy
    minimum (zero torque, lower energy) before they are labelled; each relaxation is kept, so
    a rerun of the stage does not redo it and labels the same spins."""
    from ecnn_pyg.datasets import read_arrays, read_graph
    from ecnn_pyg.minimize import model_energy_field, torque
    from ecnn_pyg.pretrained import load_model
    from ecnn_pyg.simulate import read_runs
    rd = tmp_path / "relaxed"
    _copy_run(uninterrupted, rd)
    cfg = full_config(rd, heldout)
    cfg["select"] = {**cfg["select"], "minima": True, "relax_minima": True}
    learn(cfg, rounds=3, until="3/label", **QUIET)
    r = rd / "round_003"
    sel = json.loads((r / "select.json").read_text())
    labels = read_arrays(r / "labels_6x6.h5")
    graph = read_graph(r / "labels_6x6.h5")
    ef = model_energy_field(load_model(rd / "round_002" / "committee" / "committee.pt"), graph)
    files = json.loads((r / "explore.json").read_text())["files"]
    relaxed = [(j, row) for j, row in enumerate(sel["selected"]) if row["minimum"]]
    assert len(relaxed) == 2
    for j, row in relaxed:
        s = labels["spin"][j]
        h = row["zeeman"]
        start = np.asarray(read_runs(files[row["file"]]["path"])[row["run"]]["spin"][row["snapshot"]],
                           dtype=np.float64)
        assert torque(ef, s, h).max() < 1e-4 < torque(ef, start, h).max()
        assert row["relaxed"]["torque_max"] == pytest.approx(torque(ef, s, h).max(), abs=1e-9)
        e = [(ef(x)[0] - h * x[:, 2].sum()) / 36 for x in (start, s)]
        assert row["relaxed"]["energy_change_per_site"] == pytest.approx(e[1] - e[0], abs=1e-9)
        assert e[1] < e[0]
    for j, row in enumerate(sel["selected"]):
        if not row["minimum"]:                     # candidates are labelled as explored
            assert "relaxed" not in row
    # the stage again: the kept relaxations are reused, the labels are the same
    kept = {p.name: p.stat().st_mtime_ns for p in (r / "relaxed").iterdir()}
    assert len(kept) == 4
    for name in ("select.json", "label.json", "labels_6x6.h5"):
        (r / name).unlink()
    learn(cfg, rounds=3, until="3/label", **QUIET)
    assert {p.name: p.stat().st_mtime_ns for p in (r / "relaxed").iterdir()} == kept
    np.testing.assert_array_equal(read_arrays(r / "labels_6x6.h5")["spin"], labels["spin"])


def test_exact_minima_of_random_starts_are_labelled(uninterrupted, heldout, tmp_path):
    """exact_minima may be added when a run is continued: per field, `starts` random spins are
    relaxed to the nearest exact energy minimum (zero torque of the ED field plus H, lower
    energy than the start) and labelled after the candidates; the report gives the exploring
    committee's error on them; each relaxation is kept, so a rerun redoes none."""
    from ecnn_pyg.datasets import read_arrays, read_graph
    from ecnn_pyg.ed import KondoED
    from ecnn_pyg.minimize import torque
    rd = tmp_path / "exact"
    _copy_run(uninterrupted, rd)
    cfg = full_config(rd, heldout)
    cfg["exact_minima"] = {"starts": 2, "zeeman": [0.0, 0.4], "tilt": 0.5}
    learn(cfg, rounds=3, until="3/report", **QUIET)
    r = rd / "round_003"
    sel = json.loads((r / "select.json").read_text())
    assert sel["n_exact_minima"] == 4
    rows = sel["selected"]
    exact = [j for j, row in enumerate(rows) if row.get("exact")]
    assert exact == list(range(len(rows) - 4, len(rows)))      # after the candidates
    assert [rows[j]["zeeman"] for j in exact] == [0.0, 0.0, 0.4, 0.4]
    labels = read_arrays(r / "labels_6x6.h5")
    graph = read_graph(r / "labels_6x6.h5")
    ed = KondoED(graph, J=3.0, electrons=30, twists=2)        # the labels' lattice
    assert len(labels["spin"]) == len(rows)
    for j in exact:
        h, info = rows[j]["zeeman"], rows[j]["exact"]
        s = np.load(r / "exact_minima" / f"{h:g}_{info['start']}.npy")
        np.testing.assert_allclose(labels["spin"][j], s, atol=1e-6)
        assert torque(ed.energy_field, s, h).max() < 1e-5 and info["torque_max"] < 1e-5
        # the label is the ED of the relaxed state (the relaxation's lattice is the labels')
        assert info["energy_per_site"] == pytest.approx(
            (labels["energy"][j] - h * labels["spin"][j][:, 2].sum()) / 36, abs=1e-6)
        start = np.random.default_rng([cfg["seed"], 3, int(round(h * 1e6)),
                                       info["start"]]).normal(size=(36, 3))
        start[:, 2] += 0.5
        start /= np.linalg.norm(start, axis=1, keepdims=True)
        assert info["energy_per_site"] < (ed.energy(start) - h * start[:, 2].sum()) / 36
    assert not np.allclose(labels["spin"][exact[0]], labels["spin"][exact[1]])
    rep = json.loads((r / "report.json").read_text())
    assert rep["before_training"]["by_class"]["exact minimum"]["snapshots"] == 4
    assert "| exact minimum |" in (r / "report.md").read_text()
    # the stage again: the kept relaxations are reused, the labels are the same
    kept = {p.name: p.stat().st_mtime_ns for p in (r / "exact_minima").iterdir()}
    assert len(kept) == 8
    for name in ("select.json", "label.json", "labels_6x6.h5", "report.json"):
        (r / name).unlink()
    learn(cfg, rounds=3, until="3/label", **QUIET)
    assert {p.name: p.stat().st_mtime_ns for p in (r / "exact_minima").iterdir()} == kept
    np.testing.assert_array_equal(read_arrays(r / "labels_6x6.h5")["spin"], labels["spin"])


def test_relaxations_spread_over_processes_give_the_one_process_result(
        uninterrupted, heldout, tmp_path, monkeypatch):
    """``processes: 2``: the committee's minima (select.relax_minima) and the exact minima of
    a round are relaxed by two torchrun ranks that claim them one by one (a stale claim of a
    stopped attempt is cleared, a finished one is not redone), and every result is the
    one-process run's."""
    monkeypatch.setenv("ECNN_PYG_DIST_TIMEOUT", "120")
    runs = {}
    for processes in (1, 2):
        rd = tmp_path / f"p{processes}"
        _copy_run(uninterrupted, rd)
        cfg = {**full_config(rd, heldout), "processes": processes,
               "exact_minima": {"starts": 2, "zeeman": [0.0, 0.4], "tilt": 0.5}}
        cfg["select"] = {**cfg["select"], "minima": True, "relax_minima": True}
        learn(cfg, rounds=3, until="3/score", **QUIET)
        r = rd / "round_003"
        if processes == 2:               # a stale claim and a finished relaxation are left
            (r / "exact_minima").mkdir()
            (r / "exact_minima" / "0_0.claim").touch()
            shutil.copy(tmp_path / "p1" / "round_003" / "exact_minima" / "0.4_1.json",
                        r / "exact_minima")
            shutil.copy(tmp_path / "p1" / "round_003" / "exact_minima" / "0.4_1.npy",
                        r / "exact_minima")
            kept = (r / "exact_minima" / "0.4_1.json").stat().st_mtime_ns
        learn(cfg, rounds=3, until="3/select", **QUIET)
        runs[processes] = {f"{p.parent.name}/{p.name}": p for folder in ("relaxed", "exact_minima")
                           for p in (r / folder).iterdir()}
    assert (tmp_path / "p2" / "round_003" / "relax.json").is_file()         # the ranks ran
    assert not (tmp_path / "p1" / "round_003" / "relax.json").exists()
    assert sorted(runs[1]) == sorted(runs[2]) and len(runs[1]) == 2 * 2 + 8   # no claims left
    assert (tmp_path / "p2" / "round_003" / "exact_minima" / "0.4_1.json").stat().st_mtime_ns \
        == kept
    for name, path in runs[1].items():
        if name.endswith(".npy"):
            np.testing.assert_array_equal(np.load(path), np.load(runs[2][name]), err_msg=name)
    sel = [json.loads((tmp_path / f"p{p}" / "round_003" / "select.json").read_text())
           for p in (1, 2)]
    strip = [[{k: v for k, v in row.items() if k not in ("relaxed", "exact")}
              for row in s["selected"]] for s in sel]
    assert strip[0] == strip[1] and sel[1]["n_exact_minima"] == 4


def test_final_training_added_to_a_finished_run(uninterrupted, tmp_path, monkeypatch):
    """``final`` may be added when a finished run is continued: one more, longer training on
    every label from the latest committee's weights; it becomes the run's latest committee.
    A crash inside it and a rerun end with the same weights."""
    from ecnn_pyg.pretrained import load_model
    from ecnn_pyg.training.trainer import Trainer
    rd = tmp_path / "run"
    cfg = {**_copy_run(uninterrupted, rd), "final": {"max_epochs": 2, "weight_by_energy": 0.01,
                                                      "data_weights": {"seed_ed_llg.h5": 3.0}}}
    logs = []
    learn(cfg, log=logs.append)
    rounds = [m for m in logs if m.startswith("round")]
    assert rounds[0] == "round 2: final ..." and rounds[1].startswith("round 2: final done")
    assert len(rounds) == 2                         # the finished rounds are not redone
    fin = json.loads((rd / "round_002" / "final.json").read_text())
    # every label the rounds trained on (the audit's never), from round 2's committee
    assert fin["data"] == json.loads((rd / "round_002" / "train.json").read_text())["data"]
    assert fin["init_from"] == str(rd / "round_002" / "committee" / "committee.pt")
    summary = json.loads((rd / "summary.json").read_text())
    assert summary["committee"] == str(Path("round_002") / "final" / "committee.pt")
    assert summary["final_training"]["heldout"]["rmse_field"] > 0
    assert summary["final_training"]["symmetry"]["time_reversal"] > 0
    member = yaml.safe_load((rd / "round_002" / "final" / "member_1" / "config.yaml").read_text())
    assert member["weight_by_energy"] == 0.01 and member["max_epochs"] == 2
    assert member["data_weights"] == {"seed_ed_llg.h5": 3.0}
    text = (rd / "summary.md").read_text()
    assert "Final training after round 2" in text and "superseded" not in text
    assert summary["final_training"]["round"] == 2 and summary["superseded_final_trainings"] == []
    walls = [r["wall_s"] for r in summary["rounds"]]
    assert f"wall time in all: {sum(walls) + fin['wall_s']:.1f} s" in text
    # the run continued past its final training (here: a third round's report): that final
    # is named superseded, its time still counted, and no longer reported as the final
    from ecnn_pyg.learn.report import write_summary
    more = tmp_path / "more"
    shutil.copytree(rd, more)
    (more / "round_003").mkdir()
    shutil.copy(more / "round_002" / "report.json", more / "round_003" / "report.json")
    write_summary(more)
    text, summary = (more / "summary.md").read_text(), json.loads((more / "summary.json").read_text())
    assert "The final training after round 2 is superseded" in text
    assert "Final training after round" not in text and summary["final_training"] is None
    assert [f["round"] for f in summary["superseded_final_trainings"]] == [2]
    assert f"wall time in all: {sum(walls + walls[2:]) + fin['wall_s']:.1f} s" in text
    final, before = load_model(rd), load_model(rd / "round_002" / "committee" / "committee.pt")
    assert len(final) == len(before)
    assert not all(torch.equal(a, b) for a, b in zip(final.state_dict().values(),
                                                      before.state_dict().values()))
    logs.clear()
    learn(cfg, log=logs.append)                       # done: nothing is trained again
    assert not [m for m in logs if "final ..." in m]
    rec = json.loads((rd / "round_002" / "final.json").read_text())
    assert rec["settings"] == {"final": cfg["final"], "exact_dynamics": None,
                               "exact_minima_weight": 0.0}
    del rec["settings"]                               # a record of an older version: the
    (rd / "round_002" / "final.json").write_text(json.dumps(rec))   # member config decides
    learn(cfg, log=logs.append)
    assert not [m for m in logs if "final ..." in m]
    # other final settings: the finished final is set aside (kept) and trained again from
    # round 2's committee with the new ones
    changed = {**cfg, "final": {**cfg["final"], "weight_by_energy": 0.02}}
    learn(changed, log=logs.append)
    moved = [m for m in logs if "trained again" in m]
    assert len(moved) == 1 and "'weight_by_energy': 0.01" in moved[0]
    old = rd / "round_002" / "final.replaced_1"
    assert str(old) in moved[0] and (rd / "round_002" / "final.replaced_1.json").is_file()
    kept = load_model(old / "committee.pt").state_dict().values()
    assert all(torch.equal(a, b) for a, b in zip(final.state_dict().values(), kept))
    fin2 = json.loads((rd / "round_002" / "final.json").read_text())
    assert fin2["settings"]["final"]["weight_by_energy"] == 0.02
    assert fin2["init_from"] == str(rd / "round_002" / "committee" / "committee.pt")
    member = yaml.safe_load((rd / "round_002" / "final" / "member_0" / "config.yaml").read_text())
    assert member["weight_by_energy"] == 0.02
    assert json.loads((rd / "summary.json").read_text())["final_training"]["round"] == 2
    assert not all(torch.equal(a, b) for a, b in zip(final.state_dict().values(),
                                                      load_model(rd).state_dict().values()))
    # interrupted inside member 1's second epoch, then continued
    rd2 = tmp_path / "crashed"
    cfg2 = {**_copy_run(uninterrupted, rd2), "final": dict(cfg["final"])}
    real, calls = Trainer.train_epoch, []

    def crashing(self, epoch):
        calls.append(epoch)
        if len(calls) == 4:
            raise RuntimeError("injected fault")
        return real(self, epoch)
    monkeypatch.setattr(Trainer, "train_epoch", crashing)
    with pytest.raises(RuntimeError, match="injected fault"):
        learn(cfg2, **QUIET)
    monkeypatch.setattr(Trainer, "train_epoch", real)
    assert not (rd2 / "round_002" / "final.json").exists()
    learn(cfg2, **QUIET)
    again = load_model(rd2)
    assert all(torch.equal(a, b) for a, b in zip(final.state_dict().values(),
                                                  again.state_dict().values()))


def test_exact_minima_weighted_in_the_final_training(uninterrupted, tmp_path):
    """exact_minima.final_weight: the final training gets the rounds' exact minima once more,
    copied bit for bit from their labels into one file of that data weight (no new ED); a
    changed weight sets the final training aside and redoes it, the copy is kept."""
    from ecnn_pyg.datasets import read_arrays
    rd = tmp_path / "run"
    cfg = _copy_run(uninterrupted, rd)
    expected = {key: [] for key in ("spin", "energy", "field")}
    for k in (1, 2):                   # the last two states of each round as its exact minima
        path = rd / f"round_00{k}" / "select.json"
        sel = json.loads(path.read_text())
        for row in sel["selected"][-2:]:
            row["class"] = "exact minimum"
        path.write_text(json.dumps(sel))
        labels = read_arrays(rd / f"round_00{k}" / "labels_6x6.h5", "train")
        assert len(labels["energy"]) == len(sel["selected"])
        for key in expected:
            expected[key].append(labels[key][-2:])
    cfg = {**cfg, "exact_minima": {"starts": 1, "final_weight": 4.0}, "final": {"max_epochs": 1}}
    learn(cfg, **QUIET)
    r2 = rd / "round_002"
    copy = r2 / "exact_minima_6x6.h5"
    fin = json.loads((r2 / "final.json").read_text())
    assert fin["exact_minima"] == {"file": str(copy), "n_labels": 4, "weight": 4.0}
    assert fin["data"][-1] == str(copy) and fin["settings"]["exact_minima_weight"] == 4.0
    got = read_arrays(copy)
    for key, parts in expected.items():
        assert np.array_equal(got[key], np.concatenate(parts))
    member = yaml.safe_load((r2 / "final" / "member_0" / "config.yaml").read_text())
    assert member["data_weights"] == {str(copy): 4.0} and member["data"][-1] == str(copy)
    made = copy.stat().st_mtime_ns
    learn({**cfg, "exact_minima": {"starts": 1, "final_weight": 2.0}}, **QUIET)
    assert (r2 / "final.replaced_1.json").is_file() and copy.stat().st_mtime_ns == made
    member = yaml.safe_load((r2 / "final" / "member_0" / "config.yaml").read_text())
    assert member["data_weights"] == {str(copy): 2.0}


def test_two_rounds_end_to_end(uninterrupted):
    from ecnn_pyg.datasets import read_arrays, read_meta
    from ecnn_pyg.learn.select import CLASSES
    from ecnn_pyg.pretrained import load_model
    rd = uninterrupted
    assert _records(rd) == ["0/seed", "0/train", "0/report"] + [
        f"{k}/{s}" for k in (1, 2) for s in ("explore", "score", "select", "label", "train",
                                             "report")]
    summary = json.loads((rd / "summary.json").read_text())
    assert summary["finished"] == "max_rounds" and len(summary["rounds"]) == 3
    assert summary["committee"] == str(Path("round_002") / "committee" / "committee.pt")
    latest = load_model(rd)                     # the run directory stands for its latest committee
    assert len(latest) == len(load_model(rd / summary["committee"]))
    assert all(torch.equal(a, b) for a, b in zip(
        latest.state_dict().values(), load_model(rd / summary["committee"]).state_dict().values()))
    assert "| round |" in (rd / "summary.md").read_text()
    seed = json.loads((rd / "round_000" / "seed.json").read_text())
    assert seed["counts"] == {"random": 16, "ed_llg": 4} and seed["ed_labels"] == 20
    assert len(read_arrays(rd / "round_000" / "seed_ed_llg.h5", "val")["spin"]) == 1
    assert [r["heldout_rmse"] > 0 for r in summary["rounds"]] == [True] * 3
    assert [r["heldout_rmse_e"] > 0 for r in summary["rounds"]] == [True] * 3
    # the held-out errors are those evaluate reports for the committee's mean
    from ecnn_pyg import keys as K
    from ecnn_pyg.datasets import read_graph
    from ecnn_pyg.metrics import ErrorAccumulator
    from ecnn_pyg.training import evaluate_arrays
    ho = json.loads((rd / "round_002" / "report.json").read_text())["heldout"]["files"][0]
    arr, acc = read_arrays(ho["path"]), ErrorAccumulator()
    t = {k: torch.from_numpy(arr[k]) for k in (K.SPIN, K.FIELD, K.ENERGY)}
    evaluate_arrays(load_model(rd), read_graph(ho["path"]), t[K.SPIN], t[K.FIELD], t[K.ENERGY],
                    accumulator=acc)
    m = acc.compute()
    assert ho["rmse_field"] == pytest.approx(m["rmse_field"], rel=1e-6)
    assert ho["rmse_energy_per_site"] == pytest.approx(m["rmse_energy_per_site"], rel=1e-6)
    for k in (1, 2):
        r = rd / f"round_{k:03d}"
        rep = json.loads((r / "report.json").read_text())
        scores = np.load(r / "scores.npz")
        # the classes follow the levels, every selected snapshot is a candidate, K holds
        lower, upper = rep["trust"]["lower"], rep["trust"]["upper"]
        assert rep["trust"]["lower_from"] == "config" and rep["trust"]["upper_from"] == "committee"
        assert rep["trust"]["statistic"] == "rms"
        cls = classify(scores["sigma_rms"], lower, upper)
        assert cls.tolist() == scores["class"].tolist()
        assert rep["n_scored"] == 4 and rep["n_candidate"] == int((cls == CANDIDATE).sum())
        assert rep["n_accurate"] + rep["n_candidate"] + rep["n_failed"] == 4
        sel = json.loads((r / "select.json").read_text())
        assert sel["n_selected"] == min(3, rep["n_candidate"]) == rep["n_selected"]
        assert {row["zeeman"] for row in sel["selected"]} == {0.0, 0.5}    # spread over fields
        for row in sel["selected"]:
            assert lower <= row["sigma_rms"] < upper
        # the exact labels are those of the selected snapshots, and count as ED cost
        labels = read_arrays(r / "labels_6x6.h5")
        assert len(labels["spin"]) == sel["n_selected"] == rep["ed_labels"]
        assert np.allclose(labels["spin"], np.load(r / "selected_6x6.npy"))
        assert rep["labels"]["6x6"]["twists"] == 2
        assert read_meta(r / "labels_6x6.h5")["model"]["twists"] == [2, 2]   # 12 x 12 labels
        # the committee before training on them, and how sigma_B predicted its error
        bt = rep["before_training"]
        assert bt["rmse_field"] > 0 and bt["calibration"]["n_sites"] == 36 * sel["n_selected"]
        assert sum(b["n_sites"] for b in bt["calibration"]["bins"]) == 36 * sel["n_selected"]
        assert set(rep["stage_wall_s"]) == {"explore", "score", "select", "label", "train"}
        # the new committee starts from the previous one and trains on all data so far
        tr = json.loads((r / "train.json").read_text())
        assert tr["init_from"].endswith(f"round_{k - 1:03d}/committee/committee.pt")
        assert len(tr["data"]) == 2 + k          # random and ED-LLG seed data, labels so far
        assert rep["heldout"]["files"][0]["n"] == 4
        assert rep["committee"]["val_rmse_field"] > 0
        assert (r / "report.md").read_text().startswith(f"# Round {k}")
    committee = load_model(str(rd / "round_002" / "committee" / "committee.pt"))
    assert len(committee) == 2
    # the symmetry check: the committee's mean energy of the lowest-energy training labels
    # against their mirror images and time reverses, recomputed here
    from ecnn_pyg.graph import symmetry_permutations
    sym = json.loads((rd / "round_002" / "report.json").read_text())["symmetry"]
    data = json.loads((rd / "round_002" / "train.json").read_text())["data"]
    spins = np.concatenate([read_arrays(p)["spin"] for p in data])
    energy = np.concatenate([read_arrays(p)["energy"] for p in data])
    low = np.argsort(energy)[:4]
    assert sym["n_states"] == 4 and sym["energy_per_site"] == pytest.approx(energy[low] / 36)
    committee.double()
    graph = read_graph(data[0])
    ops = symmetry_permutations(graph)
    e = {(i, j): float(committee(graph, torch.from_numpy(spins[i][p.numpy()]))["energy"].detach())
         for i in low for j, (_, p) in enumerate(ops)}
    mirror = max(abs(e[i, j] - e[i, 0]) / 36 for i in low for j, (op, _) in enumerate(ops)
                 if not op.proper)
    reverse = max(abs(float(committee(graph, torch.from_numpy(-spins[i]))["energy"].detach()) - e[i, 0])
                  / 36 for i in low)
    assert sym["mirrors"] == pytest.approx(mirror, rel=1e-6) and mirror > 1e-8
    assert sym["time_reversal"] == pytest.approx(reverse, rel=1e-6) and reverse > 1e-8
    assert summary["rounds"][2]["symmetry_e"] == max(sym[k] for k in
                                                     ("rotations", "mirrors", "time_reversal"))
    assert "Symmetry: the committee prices" in (rd / "round_002" / "report.md").read_text()


def test_a_converged_round_is_audited_and_not_trained(tmp_path):
    """All snapshots accurate (a lower level above every score): the round converges; the
    audit labels two accurate snapshots to check sigma_B there, and they are never trained on."""
    rd = tmp_path / "run"
    learn(small_config(rd, select={"lower": 50.0, "upper": 100.0, "audit": 2}), **QUIET)
    from ecnn_pyg.learn import ROUND0_STAGES
    assert _records(rd) == [f"0/{s}" for s in ROUND0_STAGES] + [
        f"1/{s}" for s in ("explore", "score", "select", "label", "report")]
    rep = json.loads((rd / "round_001" / "report.json").read_text())
    assert rep["stop"] == "converged" and rep["share_accurate"] == 1.0
    assert rep["n_selected"] == 0 and rep["n_audit"] == 2 == rep["ed_labels"]
    bt = rep["before_training"]
    assert bt["rmse_field"] is None and set(bt["by_class"]) == {"accurate"}
    assert bt["by_class"]["accurate"]["sites"] == 2 * 36 and bt["calibration"]["n_sites"] == 72
    sel = json.loads((rd / "round_001" / "select.json").read_text())
    assert {row["zeeman"] for row in sel["audit"]} == {0.0, 0.5}           # spread over fields
    assert [row["class"] for row in sel["audit"]] == ["accurate"] * 2
    assert json.loads((rd / "round_001" / "label.json").read_text())["files"] == []
    summary = json.loads((rd / "summary.json").read_text())
    assert summary["finished"] == "converged" and summary["rounds"][1]["rmse_accurate"] > 0
    assert "accurate (audit)" in (rd / "round_001" / "report.md").read_text()


def _state(run_dir):
    """What a run produced, for comparison: weights, data, scores, selections, reports."""
    from ecnn_pyg.checkpoint import load_checkpoint
    from ecnn_pyg.datasets import read_arrays
    out = {}
    for r in sorted(Path(run_dir).glob("round_*")):
        ck = load_checkpoint(r / "committee" / "committee.pt")
        out[f"{r.name}/weights"] = [{k: v.clone() for k, v in m["model_state"].items()}
                                    for m in ck["members"]]
        for h5 in sorted(r.glob("*.h5")):
            if "traj" not in h5.name:
                out[f"{r.name}/{h5.name}"] = read_arrays(h5)
        if (r / "scores.npz").exists():
            out[f"{r.name}/scores"] = dict(np.load(r / "scores.npz"))
        for name in ("select.json", "report.json"):
            if (r / name).exists():
                out[f"{r.name}/{name}"] = _without_times(
                    json.loads((r / name).read_text()), str(run_dir))
    out["summary"] = _without_times(json.loads((Path(run_dir) / "summary.json").read_text()),
                                    str(run_dir))
    return out


def _without_times(obj, run_dir):
    if isinstance(obj, dict):
        return {k: _without_times(v, run_dir) for k, v in obj.items() if "wall" not in k}
    if isinstance(obj, list):
        return [_without_times(v, run_dir) for v in obj]
    if isinstance(obj, str):
        return obj.replace(run_dir, "<run>")
    return obj


def _same(a, b, where=""):
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif torch.is_tensor(a):
        assert torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    else:
        assert a == b, where


def test_a_stop_after_every_stage_then_a_rerun_gives_the_uninterrupted_result(
        uninterrupted, heldout, tmp_path, monkeypatch):
    """Stopped after each stage in turn (``until``), and once in the middle of a committee's
    training (an exception in an epoch of round 1's second member), the rerun run ends with
    the same weights, data, scores, selections and reports as the uninterrupted run."""
    from ecnn_pyg.training.trainer import Trainer
    stages = _records(uninterrupted)
    rd = tmp_path / "b"
    cfg = full_config(rd, heldout)
    for stage in stages:
        if stage == "1/train":          # a crash inside the stage, then the stop after it
            real, calls = Trainer.train_epoch, []

            def crashing(self, epoch):
                calls.append(epoch)
                if len(calls) == 2:         # member 0 done (1 epoch), member 1 in its epoch
                    raise RuntimeError("injected fault")
                return real(self, epoch)
            monkeypatch.setattr(Trainer, "train_epoch", crashing)
            with pytest.raises(RuntimeError, match="injected fault"):
                learn(cfg, until=stage, **QUIET)
            monkeypatch.setattr(Trainer, "train_epoch", real)
            assert not (rd / "round_001" / "train.json").exists()
        learn(cfg, until=stage, **QUIET)
        assert _records(rd) == stages[:stages.index(stage) + 1], stage
    learn(cfg, **QUIET)                 # nothing left but the summary's last line
    assert _records(rd) == stages
    _same(_state(uninterrupted), _state(rd))
    # a finished run is not redone, and more rounds continue it
    before = (rd / "round_001" / "scores.npz").stat().st_mtime_ns
    learn(cfg, **QUIET)
    assert (rd / "round_001" / "scores.npz").stat().st_mtime_ns == before


def test_processes_spread_the_llg_runs_and_give_the_one_process_result(
        uninterrupted, heldout, tmp_path, monkeypatch):
    """``processes: 2``: the ED-LLG seed runs and the explorations run under torchrun, two
    gloo ranks on localhost, with their runs spread over the ranks, and so do the committee
    trainings (a member per rank) and the exact labels (samples round-robin); every
    trajectory, label, weight, score and report is the one-process run's."""
    monkeypatch.setenv("ECNN_PYG_DIST_TIMEOUT", "120")         # a dead rank fails, never hangs
    rd = tmp_path / "p2"
    learn({**full_config(rd, heldout), "processes": 2}, **QUIET)
    _same(_state(uninterrupted), _state(rd))
    from ecnn_pyg.simulate import read_runs
    for traj in ("round_000/seed_ed_llg_traj.h5", "round_001/explore/6x6_random.h5"):
        for a, b in zip(read_runs(uninterrupted / traj), read_runs(rd / traj)):
            assert np.array_equal(a["spin"], b["spin"]) and a["name"] == b["name"], traj
    assert (rd / "round_001" / "explore" / "6x6_random.simulate.yaml").is_file()
    assert (rd / "round_001" / "committee.train.yaml").is_file()        # trained by torchrun
    assert (rd / "round_001" / "labels_6x6.generate.yaml").is_file()    # labelled by torchrun
    assert (rd / "round_000" / "seed_ed_llg.generate.yaml").is_file()


@pytest.mark.slow
def test_sigkill_inside_stages_then_a_rerun_gives_the_uninterrupted_result(
        uninterrupted, heldout, tmp_path):
    """Real kills (SIGKILL of the command-line process) as soon as a file of a stage appears:
    in the seed data, in a member's training, in an exploration, in the labels; each rerun
    continues, and the end is the uninterrupted run's."""
    import signal
    import subprocess
    import sys
    import time
    rd = tmp_path / "k"
    path = tmp_path / "k_learn.yaml"
    path.write_text(yaml.safe_dump(full_config(rd, heldout)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    kills = 0
    for trigger in ("round_000/seed_random.h5", "round_000/committee/member_1/last.pt",
                    "round_001/explore/6x6_random.h5", "round_001/committee/member_0/last.pt",
                    "round_002/labels_6x6.h5"):
        proc = subprocess.Popen([sys.executable, "-m", "ecnn_pyg.cli", "learn", "--config",
                                 str(path)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        t0 = time.time()
        while proc.poll() is None and not (rd / trigger).exists() and time.time() - t0 < 600:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    assert kills >= 3
    with pytest.warns(RuntimeWarning, match="taking over the lock"):    # the killed run's
        learn(full_config(rd, heldout), **QUIET)
    _same(_state(uninterrupted), _state(rd))


def test_a_continued_run_must_keep_its_settings(uninterrupted, heldout):
    cfg = full_config(uninterrupted, heldout)
    cfg["select"] = {"lower": 0.02, "max_per_round": 3}
    with pytest.raises(ConfigError, match=r"select\.lower differ"):
        learn(cfg, **QUIET)
    cfg = full_config(uninterrupted, heldout)
    with pytest.raises(ValueError, match="until must be a stage"):
        learn(cfg, until="1/nothing", **QUIET)
    from ecnn_pyg.locking import OutputLockedError, output_lock
    with output_lock(uninterrupted / "learn", what="learning run"):     # a second loop
        with pytest.raises(OutputLockedError):
            learn(cfg, **QUIET)
    said = []
    before = sorted(p.stat().st_mtime_ns for p in uninterrupted.glob("round_*/*.json"))
    learn(cfg, until="1/label", log=said.append)      # a stage already done: nothing runs
    assert "already done" in said[-1]
    assert sorted(p.stat().st_mtime_ns for p in uninterrupted.glob("round_*/*.json")) == before


def test_cli_status_and_errors(uninterrupted, heldout, tmp_path, capsys):
    from ecnn_pyg.cli import main
    path = tmp_path / "square_learn.yaml"
    path.write_text(yaml.safe_dump(full_config(uninterrupted, heldout)))
    assert main(["learn", "--config", str(path), "--status"]) == 0
    out = capsys.readouterr().out
    assert "round   2: explore" in out and "| round |" in out
    bad = tmp_path / "bad_learn.yaml"
    bad.write_text(yaml.safe_dump(small_config(tmp_path / "x", committee={"members": 1})))
    assert main(["learn", "--config", str(bad)]) == 2
    assert "committee.members must be >= 2" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


EXACT_DYNAMICS = {"size": [6, 6], "twists": 1, "zeeman": [0.5], "temperature": 0.2, "dt": 0.2,
                  "n_steps": 4, "save_every": 2, "snapshots": "1:"}


def test_exact_dynamics_start_from_the_lowest_minimum_of_each_class(uninterrupted, tmp_path):
    """exact_dynamics: before the final training, ED-LLG from the latest committee's lowest
    labelled minimum of every |n_sk| class (Zeeman term at the mean field), labelled with
    the exploration's twists and trained on; other exact_dynamics settings set the final
    and these data aside and redo both, other final settings only the training."""
    import torch
    from ecnn_pyg.datasets import read_arrays
    from ecnn_pyg.ed import KondoED
    from ecnn_pyg.graph import lattice_graph
    from ecnn_pyg.minimize import model_energy_field
    from ecnn_pyg.observables import skyrmion_number
    from ecnn_pyg.pretrained import load_model
    from ecnn_pyg.simulate import read_runs
    rd = tmp_path / "run"
    cfg = _copy_run(uninterrupted, rd)
    # every other state labelled in the rounds taken as a minimum (T = 0 minima in a real run)
    for k in (1, 2):
        path = rd / f"round_00{k}" / "select.json"
        sel = json.loads(path.read_text())
        for i, row in enumerate(sel["selected"]):
            row["minimum"] = i % 2 == 0
        path.write_text(json.dumps(sel))
    cfg = {**cfg, "select": {**cfg["select"], "minima": True}, "final": {"max_epochs": 1},
           "exact_dynamics": EXACT_DYNAMICS}
    before = load_model(rd)                         # round 2's committee, the latest
    learn(cfg, **QUIET)
    r2 = rd / "round_002"
    starts = json.loads((r2 / "exact_dynamics_6x6" / "starts.json").read_text())
    assert starts["committee"] == str(r2 / "committee" / "committee.pt") and starts["zeeman"] == 0.5
    graph = lattice_graph("square", [6, 6], {"t1": 1.0})
    energy = model_energy_field(before, graph)
    best = {}
    for k in (1, 2):
        rows = json.loads((rd / f"round_00{k}" / "select.json").read_text())["selected"]
        spins = np.load(rd / f"round_00{k}" / "selected_6x6.npy")
        for row, s in zip(rows, spins):
            if row["minimum"]:
                e = (energy(s)[0] - 0.5 * s[:, 2].sum()) / len(s)
                c = str(int(round(abs(float(skyrmion_number(torch.from_numpy(s), graph))))))
                if c not in best or e < best[c][0]:
                    best[c] = (e, s)
    assert sorted(starts["starts"]) == sorted(best)
    for c, (e, s) in best.items():
        assert starts["starts"][c]["energy_per_site"] == pytest.approx(e, abs=1e-12)
        assert np.array_equal(np.load(r2 / "exact_dynamics_6x6" / f"start_nsk{c}.npy"), s)
        runs = read_runs(r2 / "exact_dynamics_6x6" / f"nsk{c}.h5")
        assert len(runs) == 1 and np.allclose(runs[0]["spin"][0], s, atol=1e-6)
    # the snapshots (all but each run's first) labelled on the labels' lattice (twists 2)
    labels = read_arrays(r2 / "exact_dynamics_6x6.h5")
    assert len(labels["energy"]) == 2 * len(best)
    ed = KondoED(graph, J=3.0, electrons=30, twists=2)
    e, b = ed.energy_field(labels["spin"][-1])
    assert labels["energy"][-1] == pytest.approx(e) and np.allclose(labels["field"][-1], b)
    fin = json.loads((r2 / "final.json").read_text())
    assert fin["data"][-1] == str(r2 / "exact_dynamics_6x6.h5")
    assert fin["exact_dynamics"][0]["n_labels"] == 2 * len(best)
    rounds = json.loads((rd / "summary.json").read_text())["rounds"]
    assert (f"ED labels in all: {sum(r['ed_labels'] for r in rounds) + 2 * len(best)};"
            in (rd / "summary.md").read_text())
    assert fin["settings"]["exact_dynamics"][0]["temperature"] == 0.2
    # other final settings: the training again, the dynamics kept
    learn({**cfg, "final": {"max_epochs": 2}}, **QUIET)
    assert (r2 / "final.replaced_1.json").is_file() and (r2 / "final.replaced_1").is_dir()
    assert not list(r2.glob("final.replaced_1.exact_dynamics*"))
    kept = read_arrays(r2 / "exact_dynamics_6x6.h5")
    assert all(np.array_equal(kept[key], labels[key]) for key in labels)
    member = r2 / "final" / "member_0" / "config.yaml"
    assert yaml.safe_load(member.read_text())["data_weights"] is None
    # a record made before the sections had a weight is one of weight 1: nothing again
    record = r2 / "final.json"
    rec = json.loads(record.read_text())
    for sec in rec["settings"]["exact_dynamics"]:
        del sec["weight"]
    record.write_text(json.dumps(rec))
    learn({**cfg, "final": {"max_epochs": 2}}, **QUIET)
    assert not (r2 / "final.replaced_2.json").exists()
    # another weight of the labels: the training again with it, the dynamics kept
    learn({**cfg, "final": {"max_epochs": 2},
           "exact_dynamics": {**EXACT_DYNAMICS, "weight": 3.0}}, **QUIET)
    assert (r2 / "final.replaced_2.json").is_file()
    assert not list(r2.glob("final.replaced_2.exact_dynamics*"))
    weights = yaml.safe_load(member.read_text())["data_weights"]
    assert weights == {str(r2 / "exact_dynamics_6x6.h5"): 3.0}
    kept = read_arrays(r2 / "exact_dynamics_6x6.h5")
    assert all(np.array_equal(kept[key], labels[key]) for key in labels)
    # other exact_dynamics settings: both again, the old ones kept beside the old final
    learn({**cfg, "final": {"max_epochs": 2},
           "exact_dynamics": {**EXACT_DYNAMICS, "temperature": 0.1}}, **QUIET)
    assert (r2 / "final.replaced_3.json").is_file()
    assert (r2 / "final.replaced_3.exact_dynamics_6x6.h5").is_file()
    assert (r2 / "final.replaced_3.exact_dynamics_6x6" / "starts.json").is_file()
    assert json.loads((r2 / "final.json").read_text())["settings"]["exact_dynamics"][0][
        "temperature"] == 0.1
    for c in best:
        assert float(read_runs(r2 / "exact_dynamics_6x6" / f"nsk{c}.h5")[0]["temperature"]) == 0.1


@pytest.mark.parametrize("change, message", [
    ({"final": None}, "exact_dynamics labels data for the final training: set final"),
    ({"exact_dynamics": {**EXACT_DYNAMICS, "size": [8, 8]}},
     "exact_dynamics.size 8x8 is not one of explore.sizes"),
    ({"exact_dynamics": {**EXACT_DYNAMICS, "temperature": -0.1}},
     "exact_dynamics: temperatures must be >= 0"),
    ({"exact_dynamics": {**EXACT_DYNAMICS, "dt": 0.0}}, r"exact_dynamics.dt must be > 0"),
    ({"exact_dynamics": {**EXACT_DYNAMICS, "weight": 0.0}},
     r"exact_dynamics.weight must be a finite number > 0 \(the data weight of its labels"),
    ({"exact_dynamics": {**EXACT_DYNAMICS, "weight": float("nan")}},
     r"exact_dynamics.weight must be a finite number > 0"),
    ({"select": {"minima": False}}, "exact_dynamics starts from the minima the rounds labelled"),
    ({"exact_dynamics": {**EXACT_DYNAMICS, "initial": "spiral"}},
     "exact_dynamics.initial must be 'minima' .* or one of random, triple-q"),
    ({"exact_dynamics": []}, "exact_dynamics must be a section .* or a non-empty list"),
    ({"exact_dynamics": [EXACT_DYNAMICS, {**EXACT_DYNAMICS, "temperature": 0.1}]},
     r"exact_dynamics\[0\] and exact_dynamics\[1\] have the same size and start "
     r"\(exact_dynamics_6x6\)"),
    ({"exact_dynamics": [EXACT_DYNAMICS, {**EXACT_DYNAMICS, "initial": "ferro", "dt": -1.0}]},
     r"exact_dynamics\[1\].dt must be > 0"),
])
def test_bad_exact_dynamics_is_refused_before_any_work(tmp_path, change, message):
    cfg = small_config(tmp_path / "r", final={"max_epochs": 1}, select={"minima": True},
                       exact_dynamics=EXACT_DYNAMICS)
    cfg = {**cfg, **{k: v for k, v in change.items() if k != "select"}}
    if "select" in change:
        cfg["select"] = {**cfg["select"], **change["select"]}
    with pytest.raises(ConfigError, match=message):
        learn(cfg, **QUIET)
    assert not (tmp_path / "r").exists()


def test_exact_dynamics_sections_each_labelled_for_the_final_training(uninterrupted, tmp_path):
    """A list of exact_dynamics sections: each one's ED-LLG and labels under its own name,
    a named start (no minima needed) one file with a run per field from that start, and the
    final training on every section's labels."""
    from ecnn_pyg.datasets import read_arrays
    from ecnn_pyg.simulate import read_runs
    rd = tmp_path / "run"
    cfg = _copy_run(uninterrupted, rd)
    ferro = {**EXACT_DYNAMICS, "initial": "ferromagnet", "zeeman": [0.0, 0.5], "n_steps": 2}
    cfg = {**cfg, "final": {"max_epochs": 1}, "exact_dynamics": [ferro]}
    assert not cfg["select"]["minima"]          # a named start needs no minima
    learn(cfg, **QUIET)
    r2 = rd / "round_002"
    runs = read_runs(r2 / "exact_dynamics_6x6_ferro" / "ferro.h5")
    assert [float(r["zeeman"]) for r in runs] == [0.0, 0.5]
    for r in runs:                      # each run starts from the ferromagnet, T > 0 moves it
        assert np.allclose(r["spin"][0], [0.0, 0.0, 1.0]) and len(r["spin"]) == 2
        assert not np.allclose(r["spin"][1], [0.0, 0.0, 1.0])
    labels = read_arrays(r2 / "exact_dynamics_6x6_ferro.h5")
    assert np.allclose(labels["spin"], np.concatenate([r["spin"][1:] for r in runs]), atol=1e-6)
    fin = json.loads((r2 / "final.json").read_text())
    assert [d["file"] for d in fin["exact_dynamics"]] == [str(r2 / "exact_dynamics_6x6_ferro.h5")]
    assert fin["exact_dynamics"][0]["n_labels"] == 2 and fin["data"][-1].endswith("_ferro.h5")
    # a second section added: both labelled, the first's files again from scratch beside
    # the set-aside ones (its settings are part of the section list that changed)
    for k in (1, 2):
        path = rd / f"round_00{k}" / "select.json"
        sel = json.loads(path.read_text())
        for row in sel["selected"]:
            row["minimum"] = True
        path.write_text(json.dumps(sel))
    learn({**cfg, "select": {**cfg["select"], "minima": True},
           "exact_dynamics": [EXACT_DYNAMICS, ferro]}, **QUIET)
    assert (r2 / "final.replaced_1.exact_dynamics_6x6_ferro.h5").is_file()
    fin = json.loads((r2 / "final.json").read_text())
    files = [str(r2 / "exact_dynamics_6x6.h5"), str(r2 / "exact_dynamics_6x6_ferro.h5")]
    assert [d["file"] for d in fin["exact_dynamics"]] == files and fin["data"][-2:] == files
    again = read_arrays(r2 / "exact_dynamics_6x6_ferro.h5")   # the same noise: the same states
    assert np.array_equal(again["spin"], labels["spin"])
    assert (f"ED labels in all: {sum(r['ed_labels'] for r in json.loads((rd / 'summary.json').read_text())['rounds']) + sum(d['n_labels'] for d in fin['exact_dynamics'])};"
            in (rd / "summary.md").read_text())
