"""The command line: ``ecnn-pyg train``, ``evaluate`` and ``export`` end to end on tiny data."""
import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import ecnn_pyg
import ecnn_pyg as ep
from ecnn_pyg import keys as K
from ecnn_pyg.ed import KondoED
from ecnn_pyg.spins import random_spins
from ecnn_pyg.checkpoint import load_checkpoint
from ecnn_pyg.cli import COMMANDS, main
from ecnn_pyg.datasets import read_arrays, read_graph
from ecnn_pyg.generate import generate
from ecnn_pyg.pretrained import load_model
from ecnn_pyg.training import evaluate_arrays, train

TINY_ECNN = {"channels": 2, "num_blocks": 1, "lmax": 1}

pytestmark = pytest.mark.usefixtures("one_thread")


def _spins(n_sites, seed, n):
    s = np.random.default_rng(seed).normal(size=(n, n_sites, 3))
    return s / np.linalg.norm(s, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def data(square_data):
    return square_data


def _run(data, run_dir, **model_config):
    return Path(train({"data": str(data), "run_dir": str(run_dir), "max_epochs": 1,
                       "batch_size": 3, "optimizer": "adam", "progress": False,
                       "plot_every": 0, "model_config": {**TINY_ECNN, **model_config}}))


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    return _run(data, tmp_path_factory.mktemp("runs") / "r")


def test_every_command_has_help(capsys):
    assert {"train", "evaluate", "export"} <= set(COMMANDS)
    for cmd in COMMANDS:
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
    text = capsys.readouterr().out
    assert "--resume" in text and "--checkpoint" in text
    assert main([]) == 0 and "export" in capsys.readouterr().out


def test_train_and_evaluate(data, tmp_path, capsys):
    rd = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {data}\nrun_dir: {rd}\nmax_epochs: 1\nbatch_size: 3\n"
                   "optimizer: adam\nmodel_config: {channels: 2, num_blocks: 1, lmax: 1}\n")
    assert main(["train", "--config", str(cfg), "--quiet", "--set", "plot_every=0"]) == 0
    assert main(["train", "--config", str(cfg), "--resume", "--quiet",
                 "--set", "max_epochs=2"]) == 0
    assert len(list(csv.DictReader(open(rd / "log.csv")))) == 2
    # predictions for spins of shape (n, L1, L2, 3), the size given
    np.save(tmp_path / "s.npy", _spins(36, 1, 3).reshape(3, 6, 6, 3))
    out = tmp_path / "o.npz"
    assert main(["evaluate", "--model", str(rd / "best.pt"), "--spins",
                 str(tmp_path / "s.npy"), "--out", str(out), "--size", "6", "6"]) == 0
    res = np.load(out)
    assert res["energy"].shape == (3,) and res["field"].shape == (3, 36, 3)
    # (n, sites, 3) on a larger supercell than trained on, size given
    np.save(tmp_path / "s2.npy", _spins(64, 2, 2))
    assert main(["evaluate", "--model", str(rd / "best.pt"), "--spins",
                 str(tmp_path / "s2.npy"), "--out", str(tmp_path / "o2.npz"),
                 "--size", "8", "8"]) == 0
    assert np.load(tmp_path / "o2.npz")["field"].shape == (2, 64, 3)
    # scoring on the data set: metrics and parity plot
    png = tmp_path / "parity.png"
    capsys.readouterr()
    assert main(["evaluate", "--model", str(rd / "best.pt"), "--data", str(data),
                 "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert "rmse_field_transverse" in text and png.stat().st_size > 1000
    # clear errors, exit code 2
    assert main(["evaluate", "--model", str(tmp_path / "nope.pt"), "--spins",
                 str(tmp_path / "s.npy"), "--out", str(tmp_path / "o3.npz")]) == 2
    assert "neither a checkpoint file nor a pretrained model name" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.ones((2, 16, 3)))
    assert main(["evaluate", "--model", str(rd / "best.pt"), "--spins",
                 str(tmp_path / "bad.npy"), "--out", str(tmp_path / "o4.npz")]) == 2
    assert "unit vectors" in capsys.readouterr().err
    assert main(["train", "--quiet"]) == 2
    assert "give --config" in capsys.readouterr().err


def test_evaluate_a_pretrained_model_by_name(tmp_path):
    np.save(tmp_path / "s.npy", _spins(36, 1, 2).reshape(2, 6, 6, 3))
    assert main(["evaluate", "--model", "square-paper", "--spins", str(tmp_path / "s.npy"),
                 "--out", str(tmp_path / "o.npz"), "--size", "6", "6"]) == 0
    res = np.load(tmp_path / "o.npz")
    assert res["field"].shape == (2, 36, 3)
    direct = evaluate_arrays(load_model("square-paper"), ecnn_pyg.lattice_graph("square", 6),
                             torch.from_numpy(_spins(36, 1, 2)))
    np.testing.assert_allclose(res["field"], direct[K.FIELD], atol=1e-6)


# ------------------------------------------------------------------------------ export
def _export(run, data, out, *extra):
    return main(["export", "--checkpoint", str(run / "best.pt"), "--data", *map(str, data),
                 "--name", "tiny", "--out", str(out), *extra])


def test_export_writes_model_and_card(run, data, tmp_path, capsys):
    out = tmp_path / "exported"
    assert _export(run, [data], out, "--command", "ecnn-pyg train --config c.yaml",
                   "--notes", "a tiny test model") == 0
    assert sorted(p.name for p in out.iterdir()) == ["tiny.pt", "tiny.yaml"]
    text = capsys.readouterr().out
    assert "energy_shift +=" in text and "val (3 samples)" in text
    ck = load_checkpoint(out / "tiny.pt")
    for key in ("optimizer_state", "scheduler_state", "rng_state"):
        assert key not in ck, key
    assert ck["exported_from"] == str(run / "best.pt") and ck["data"]["size"] == [4, 4]
    card = yaml.safe_load((out / "tiny.yaml").read_text())
    assert card["name"] == "tiny" and card["model_type"] == "ecnn"
    assert card["command"] == "ecnn-pyg train --config c.yaml"
    assert card["notes"] == "a tiny test model"
    assert card["model_config"] == ck["model_config"]
    assert card["metrics"]["train"]["samples"] == 6 and card["metrics"]["val"]["samples"] == 3
    # the card's metrics are those of the exported model
    model = load_model(out / "tiny.pt")
    val = read_arrays(data, "val")
    res = evaluate_arrays(model, read_graph(data), torch.from_numpy(val[K.SPIN]),
                          torch.from_numpy(val[K.FIELD]), torch.from_numpy(val[K.ENERGY]))
    for key in ("rmse_field", "rmse_field_transverse", "rmse_energy_per_site"):
        assert card["metrics"]["val"][key] == pytest.approx(res["metrics"][key], rel=1e-6), key
    # the exported model is what evaluate and the simulate config load
    np.save(tmp_path / "s.npy", _spins(16, 3, 2))
    assert main(["evaluate", "--model", str(out / "tiny.pt"), "--spins",
                 str(tmp_path / "s.npy"), "--out", str(tmp_path / "o.npz")]) == 0


@pytest.mark.parametrize("scale", [1.0, 0.05])
def test_export_calibrates_the_energy_constant(data, tmp_path, scale):
    """After export, the mean energy error on the training split vanishes, whatever the
    energy_scale; only energy_shift moves."""
    run = _run(data, tmp_path / "r", energy_scale=scale)
    assert _export(run, [data], tmp_path / "out") == 0
    model = load_model(tmp_path / "out" / "tiny.pt")
    before = load_checkpoint(run / "best.pt")["model_config"]
    assert model.energy_scale == scale
    assert {k: v for k, v in model.config.items() if k != "energy_shift"} == \
        {k: v for k, v in before.items() if k != "energy_shift"}
    assert model.config["energy_shift"] != before["energy_shift"]
    a = read_arrays(data, "train")
    res = evaluate_arrays(model, read_graph(data), torch.from_numpy(a[K.SPIN]))
    assert abs(float(np.mean(a[K.ENERGY] - res[K.ENERGY]))) / 16 < 1e-5


def test_export_of_several_data_files(run, data, tmp_path):
    extra = tmp_path / "extra.h5"
    generate({"output": str(extra), "lattice": "square", "size": [4, 4], "hoppings": {"t1": 1.0},
              "J": 7.0, "electrons": 14, "seed": 5, "splits": {"train": 2}}, progress=False)
    assert _export(run, [data, extra], tmp_path / "out") == 0
    card = yaml.safe_load((tmp_path / "out" / "tiny.yaml").read_text())
    assert card["metrics"]["train"]["samples"] == 8 and card["metrics"]["val"]["samples"] == 3


def test_export_refuses_the_installed_package_and_bad_input(run, data, tmp_path, capsys):
    package = Path(ecnn_pyg.__file__).resolve().parent
    before = sorted(p.name for p in package.rglob("*"))
    for inside in (package, package / "pretrained", package / "new" / "folder"):
        assert _export(run, [data], inside) == 2
        assert "inside the installed package" in capsys.readouterr().err
    assert sorted(p.name for p in package.rglob("*")) == before
    out = tmp_path / "out"
    assert _export(run, [data], out) == 0
    assert _export(run, [data], out) == 2                       # no silent overwrite
    assert "use --force" in capsys.readouterr().err
    assert _export(run, [data], out, "--force") == 0
    for name in ("../up", "tiny.pt", ""):
        assert main(["export", "--checkpoint", str(run / "best.pt"), "--data", str(data),
                     "--name", name, "--out", str(tmp_path / "o2")]) == 2
        assert "--name must be a plain name" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()
    assert main(["export", "--checkpoint", str(tmp_path / "nope.pt"), "--data", str(data),
                 "--name", "x", "--out", str(tmp_path / "o3")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:                         # --out is required
        main(["export", "--checkpoint", str(run / "best.pt"), "--data", str(data),
              "--name", "x"])
    assert e.value.code == 2


def test_cli_ed_matches_solver(tmp_path, rng, capsys):
    spins = random_spins(20, 2, generator=rng).reshape(2, 4, 5, 3)
    np.save(tmp_path / "s.npy", spins)
    out = tmp_path / "o.npz"
    args = ["ed", "--lattice", "square", "--size", "4", "5", "--t1", "1", "--J", "7",
            "--electrons", "19", "--spins", str(tmp_path / "s.npy"), "--out", str(out)]
    assert main(args) == 0
    res = np.load(out)
    e, b = KondoED(ep.lattice_graph("square", (4, 5)), J=7.0, electrons=19).energy_field(spins)
    assert np.allclose(res["energy"], e) and np.allclose(res["field"], b)
    assert res["field"].shape == (2, 20, 3)
    # existing output is not overwritten; bad spins give a one-line error
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    np.save(tmp_path / "s.npy", spins[..., :2])
    assert main(args[:-1] + [str(tmp_path / "o2.npz")]) == 2
    assert "spins must have shape" in capsys.readouterr().err
    # a single configuration (L1, L2, 3)
    np.save(tmp_path / "s1.npy", spins[0])
    assert main(args[:-3] + [str(tmp_path / "s1.npy"), "--out", str(tmp_path / "o3.npz")]) == 0
    assert np.allclose(np.load(tmp_path / "o3.npz")["energy"], e[:1])


def test_cli_generate_and_help(tmp_path, capsys, small_config):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(small_config))
    assert main(["generate", "--config", str(cfg), "--quiet", "--set", "seed=7"]) == 0
    out = capsys.readouterr().out
    assert "samples 6 of 6" in out and "d.h5" in out
    assert main(["generate", "--config", str(cfg), "--quiet", "--set", "sede=1"]) == 2
    assert "did you mean 'seed'" in capsys.readouterr().err
    for cmd in ([], ["generate"], ["ed"], ["lattices"]):
        with pytest.raises(SystemExit) as exc:
            main(cmd + ["--help"])
        assert exc.value.code == 0
    assert main(["lattices", "triangular"]) == 0
    assert "t3" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["generate", "train", "simulate", "learn"])
def test_repeated_set_options_add_up(command):
    """``--set a=1 --set b=2 c=3`` gives all three overrides (a later --set used to replace
    the earlier ones, silently dropping them)."""
    from ecnn_pyg.cli import build_parser
    args = build_parser().parse_args([command, "--config", "x.yaml", "--set", "a=1",
                                      "--set", "b=2", "c=3"])
    assert args.set == ["a=1", "b=2", "c=3"]
    assert build_parser().parse_args([command, "--config", "x.yaml"]).set == []
