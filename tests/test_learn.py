"""Committee active learning (``ecnn-pyg learn``): selection, config checks, the loop end to end,
and its resumability (a stop after any stage, then a rerun, gives the uninterrupted result)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ecnn_pyg.config import ConfigError
from ecnn_pyg.learn import classify, learn, load_learn_config, select_candidates
from ecnn_pyg.learn.select import ACCURATE, CANDIDATE, FAILED

ROOT = Path(__file__).resolve().parent.parent


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
           "explore": {"sizes": [[6, 6]], "starts": ["random", "ferromagnet"],
                       "zeeman": [0.0, 0.5], "temperatures": [0.0], "dt": 0.2, "n_steps": 6,
                       "save_every": 2, "snapshots": "1:"},
           "select": {"max_per_round": 5},
           "stop": {"accurate_share": 1.0, "max_rounds": 2}}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def test_the_small_config_is_complete(tmp_path):
    cfg = load_learn_config(small_config(tmp_path / "run"))
    assert cfg["select"] == {"lower": None, "upper": None, "statistic": "max",
                             "max_per_round": 5}
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
    ({"electrons": None}, "exactly one of electrons, filling"),
    ({"J": None}, "config key 'J' .*is required"),
    ({"select": {"max_per_round": 0}}, "select.max_per_round must be >= 1"),
    ({"select": {"statistic": "mean"}}, "select.statistic"),
    ({"stop": {"accurate_share": 1.5}}, "stop.accurate_share"),
    ({"seed_data": {"random": None}}, "seed_data needs random, ed_llg or paths"),
    ({"seed_data": {"random": {"size": [6, 6], "n_train": 4}}}, "validation samples"),
    ({"committee": {"train": {"lr": -1.0}}}, "committee.train: config key 'lr'"),
    ({"committee": {"train": {"data": "x.h5"}}}, "set by the learning loop"),
    ({"explore": {"sizes": [[6, 6], [8, 8]]}}, "electrons counts the electrons of one"),
    ({"explore": {"twists": {"8x8": 2}}}, "'8x8' is not one of the exploration sizes"),
    ({"validation": ["missing.h5"]}, "'missing.h5' is not an existing data file"),
    ({"zzz": 1}, "unknown config key"),
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


def test_missing_hamiltonian_in_a_yaml_file_names_the_key(tmp_path):
    cfg = small_config(tmp_path / "run")
    del cfg["J"]
    path = tmp_path / "bad_learn.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="config key 'J' .* is required"):
        learn(str(path), log=lambda _: None)
    assert not (tmp_path / "run").exists()
