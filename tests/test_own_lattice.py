"""A lattice of one's own, end to end: its symmetry group is derived from the file, the model
takes its lattice (bond types, shells) from the data, the checkpoint carries the definition,
the energy's constant is calibrated when only fields are trained, and the chain lattice file
-> generate -> train -> evaluate -> simulate runs by CLI commands alone (the shipped
configs/mylattice_*.yaml at tiny sizes)."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import ecnn_pyg as ep
from ecnn_pyg import keys as K
from ecnn_pyg.checkpoint import load_checkpoint, save_checkpoint
from ecnn_pyg.cli import main
from ecnn_pyg.config import ConfigError
from ecnn_pyg.ed import KondoED
from ecnn_pyg.graph import symmetry_permutations
from ecnn_pyg.lattice import Lattice, lattice_reference
from ecnn_pyg.models import checkpoint_lattice, model_from_checkpoint
from ecnn_pyg.spins import random_spins
from ecnn_pyg.training import load_training_parts, train

ROOT = Path(__file__).resolve().parent.parent
TINY = {"channels": 2, "num_blocks": 1, "lmax": 1}

pytestmark = pytest.mark.usefixtures("one_thread")

T2 = [{"from": b, "to": b, "offset": o} for b in (0, 1) for o in ([1, 0], [0, 1], [1, -1])]


def honeycomb_t2(name="honeycomb_t2", t2_bonds=T2) -> dict:
    spec = yaml.safe_load((ep.lattice.LATTICES_DIR / "honeycomb.yaml").read_text())
    spec["name"] = name
    spec["hoppings"]["t2"] = {"default": 0.3, "bonds": t2_bonds}
    return spec


def _rotation_angle(op) -> float:
    return float(np.degrees(np.arctan2(op.rotation[1, 0], op.rotation[0, 0])) % 360)


# ------------------------------------------------------------------------- symmetry groups

@pytest.mark.parametrize("name,order,rotations", [
    ("square", 8, 4), ("triangular", 12, 6), ("honeycomb", 12, 6), ("kagome", 12, 6),
    ("cubic", 48, 24)])
def test_symmetry_group_is_derived_from_the_lattice(name, order, rotations):
    """C4v on the square, C6v on the triangular, honeycomb and kagome lattices (O_h cubic)."""
    lat = ep.load_lattice(name)
    ops = lat.symmetries()
    assert len(ops) == order and sum(op.proper for op in ops) == rotations
    assert ops[0].is_identity and not any(op.is_identity for op in ops[1:])
    for op in ops:                                  # orthogonal, integer on the cells
        np.testing.assert_allclose(op.rotation @ op.rotation.T, np.eye(lat.dim), atol=1e-9)
    if lat.dim == 2:
        angles = sorted(_rotation_angle(op) for op in ops if op.proper)
        np.testing.assert_allclose(angles, np.arange(rotations) * 360 / rotations, atol=1e-6)
    # a group modulo lattice translations: f -> M f + t composed is another operation
    def member(M, t):
        return any((op.matrix == M).all() and np.allclose(t - op.translation,
                                                          np.rint(t - op.translation), atol=1e-6)
                   for op in ops)
    for a in ops:
        for b in ops:
            assert member(a.matrix @ b.matrix, a.matrix @ b.translation + a.translation)
    # and every operation permutes the sites of a supercell
    g = ep.lattice_graph(lat, 3 if lat.n_basis > 1 or lat.dim == 3 else 4)
    perms = {tuple(p.tolist()) for _, p in symmetry_permutations(g, lat)}
    assert len(perms) == order and all(sorted(p) == list(range(g.num_nodes)) for p in perms)


def test_symmetries_do_not_depend_on_the_choice_of_primitive_vectors():
    """The square lattice given by the vectors (1, 0), (7, 1) still has C4v."""
    bonds = [{"from": 0, "to": 0, "offset": [1, 0]}, {"from": 0, "to": 0, "offset": [-7, 1]}]
    lat = Lattice("skewed_square", [[1, 0], [7, 1]], [[0, 0]], {"t1": {"bonds": bonds}})
    assert len(lat.symmetries()) == 8 and len(lat.point_group()) == 4
    with pytest.raises(ep.LatticeError, match="too skewed"):
        Lattice("too_skewed", [[1, 0], [3000, 1]], [[0, 0]],
                {"t1": {"bonds": bonds[:1]}}).symmetries()


@pytest.mark.parametrize("spec", ["kagome", "honeycomb", "own"])
def test_every_symmetry_leaves_the_exact_energy_and_field_invariant(spec):
    lat = ep.load_lattice(honeycomb_t2() if spec == "own" else spec)
    g = ep.lattice_graph(lat, 3)
    ed = KondoED(g, J=2.0, electrons=g.num_nodes // 2)
    s = random_spins(g.num_nodes, 2, generator=np.random.default_rng(1))
    e, f = ed.energy_field(s)
    found = symmetry_permutations(g, lat)
    assert len(found) == 12
    for _, perm in found:
        p = perm.numpy()
        e2, f2 = ed.energy_field(s[:, p])
        np.testing.assert_allclose(e2, e, atol=1e-9)
        np.testing.assert_allclose(f2, f[:, p], atol=1e-8)


def test_a_shell_that_breaks_a_symmetry_removes_it():
    """Negative control: t2 on sublattice A only breaks the A <-> B operations (C6 -> C3)."""
    spec = honeycomb_t2("haldane_a", [b for b in T2 if b["from"] == 0])
    lat = ep.load_lattice(spec)
    ops = lat.symmetries()
    assert sum(op.proper for op in ops) == 3 and all(op.sublattice == (0, 1) for op in ops)
    # and the removed 60 degree rotation does change the exact energy of that lattice
    full = ep.load_lattice(honeycomb_t2())
    c6 = [op for op in full.symmetries() if op.proper and abs(_rotation_angle(op) - 60) < 1e-6][0]
    g = ep.lattice_graph(lat, 3)
    perm = ep.graph.symmetry_permutation(g, c6).numpy()
    ed = KondoED(g, J=2.0, electrons=9)
    s = random_spins(18, 1, generator=np.random.default_rng(2))
    assert abs(ed.energy_field(s[:, perm])[0][0] - ed.energy_field(s)[0][0]) > 1e-4


LOW = {"name": "low", "vectors": [[1.0, 0.0], [0.31, 1.13]],
       "basis": [[0.0, 0.0], [0.21, 0.07], [0.55, 0.33]],
       "hoppings": {"t1": {"default": 1.0, "bonds": [{"from": 0, "to": 1, "offset": [0, 0]},
                                                     {"from": 1, "to": 2, "offset": [0, 0]},
                                                     {"from": 2, "to": 0, "offset": [1, 0]}]},
                    "t2": {"default": 0.5, "bonds": [{"from": 0, "to": 2, "offset": [0, 1]},
                                                     {"from": 1, "to": 1, "offset": [1, 0]}]}}}


def test_a_lattice_without_symmetry_trains_without_augmentation_and_says_so(tmp_path, capsys):
    lat = ep.load_lattice(LOW)
    assert [op.is_identity for op in lat.symmetries()] == [True]
    path = tmp_path / "low.yaml"
    path.write_text(yaml.safe_dump(LOW))
    from ecnn_pyg.generate import generate
    data = generate({"output": str(tmp_path / "low.h5"), "lattice": str(path), "size": [3, 3],
                     "J": 1.0, "electrons": 14, "seed": 3, "splits": {"train": 4, "val": 2}},
                    progress=False)
    for augment in (True, "point_group"):
        train({"data": str(data), "run_dir": str(tmp_path / f"r{augment}"), "max_epochs": 1,
               "augment": augment, "progress": False, "plot_every": 0, "model_config": TINY})
        out = capsys.readouterr().out
        assert "lattice 'low' has no" in out and "augmentation is off" in out


def test_a_model_lattice_other_than_the_data_is_refused(square_data, tmp_path):
    with pytest.raises(ConfigError, match="is not the lattice of the data"):
        train({"data": str(square_data), "run_dir": str(tmp_path / "r"), "max_epochs": 1,
               "progress": False, "model_config": {**TINY, "lattice": "triangular"}})


# ------------------------------------------------------------------------- energy offset

def _mean_energy_error(ckpt_path, data):
    model = model_from_checkpoint(load_checkpoint(ckpt_path))
    _, parts = load_training_parts(data, "train", "val")
    err = []
    for part in parts:
        b = torch.from_numpy(part.train[K.SPIN]).to(next(model.parameters()).dtype)
        for i in range(len(b)):
            out = model(part.graph, b[i], compute_field=False)
            err.append((part.train[K.ENERGY][i] - float(out[K.ENERGY].detach().sum())) / part.n_sites)
    return float(np.mean(err))


def test_field_only_training_calibrates_the_energy_constant(square_data, tmp_path, capsys):
    """A loss on fields alone leaves the energy's constant free: every run calibrates it."""
    rd = tmp_path / "r"
    train({"data": str(square_data), "run_dir": str(rd), "max_epochs": 3, "lr": 0.03,
           "optimizer": "adam", "progress": False, "plot_every": 0, "model_config": TINY})
    assert "energies are not trained" in capsys.readouterr().out
    for name in ("best.pt", "last.pt"):
        assert abs(_mean_energy_error(rd / name, square_data)) < 1e-5
    assert load_checkpoint(rd / "best.pt")["energy_calibration"]
    # trained energies are left to the loss, and nothing is said
    train({"data": str(square_data), "run_dir": str(tmp_path / "e"), "max_epochs": 1,
           "energy_weight": 1.0, "progress": False, "plot_every": 0, "model_config": TINY})
    assert "not trained" not in capsys.readouterr().out


# ------------------------------------------------------------------------- checkpoints

def test_old_checkpoints_without_the_definition_still_load(tmp_path):
    model = ep.nn.ECNN(**TINY)
    old = {"model_type": "ecnn", "model_config": model.config, "model_state": model.state_dict(),
           "dtype": "float32", "data": {"lattice": "square", "size": [4, 4]}}
    assert old["model_config"]["lattice"] == "square"            # a built-in stays a name
    save_checkpoint(tmp_path / "old.pt", old)
    assert model_from_checkpoint(load_checkpoint(tmp_path / "old.pt")).lattice == "square"
    assert checkpoint_lattice(old).name == "square"
    # the former custom-lattice recipe: no lattice, counts by hand, the data's name only
    custom = ep.nn.ECNN(lattice=None, num_bond_types=18, num_shells=2, **TINY)
    ck = {**old, "model_config": custom.config, "model_state": custom.state_dict(),
          "data": {"lattice": "honeycomb_t2"}}
    assert model_from_checkpoint(ck).num_bond_types == 18
    assert checkpoint_lattice(ck) is None                          # evaluate asks for --lattice


def test_a_model_built_from_a_file_keeps_its_definition(tmp_path):
    path = tmp_path / "hc.yaml"
    path.write_text(yaml.safe_dump(honeycomb_t2()))
    model = ep.nn.ECNN(lattice=str(path), **TINY)
    assert isinstance(model.config["lattice"], dict) and model.num_bond_types == 18
    path.unlink()
    again = ep.nn.ECNN.from_config(model.config)                    # no file needed
    assert again.num_bond_types == 18 and again.lattice == "honeycomb_t2"
    # a built-in given by its path is referred to by name
    assert ep.nn.ECNN(lattice=str(ep.lattice.LATTICES_DIR / "kagome.yaml"),
                      **TINY).config["lattice"] == "kagome"
    assert lattice_reference(Lattice.from_dict(honeycomb_t2(name="honeycomb"))) != "honeycomb"


# ------------------------------------------------------------------------- the CLI chain

def test_own_lattice_file_to_simulate_by_cli_commands_alone(tmp_path, monkeypatch, capsys):
    """lattices -> generate -> train (default augment: true) -> evaluate -> simulate, with the
    lattice file given by a relative and an absolute path, then deleted before evaluating."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    lattice_file = tmp_path / "mine" / "honeycomb_t2.yaml"
    lattice_file.write_text(yaml.safe_dump(honeycomb_t2(), sort_keys=False))
    cfg = lambda name: str(ROOT / "configs" / f"mylattice_{name}.yaml")
    tiny = ["max_epochs=2", "model_config.channels=2", "model_config.num_blocks=1",
            "model_config.lmax=1", "batch_size=4", "plot_every=0"]

    assert main(["lattices", "mine/honeycomb_t2.yaml"]) == 0
    assert main(["generate", "--config", cfg("generate"), "--quiet", "--set",
                 "lattice=mine/honeycomb_t2.yaml", "size=[3, 3]", "output=data/hc.h5",
                 "splits={train: 8, val: 4}"]) == 0
    # the lattice from the data; then named by a relative and by an absolute path
    assert main(["train", "--config", cfg("train"), "--quiet", "--set", "data=data/hc.h5",
                 "run_dir=runs/hc", *tiny]) == 0
    for how, ref in (("rel", "mine/honeycomb_t2.yaml"), ("abs", str(lattice_file))):
        assert main(["train", "--config", cfg("train"), "--quiet", "--set", "data=data/hc.h5",
                     f"run_dir=runs/{how}", f"model_config.lattice={ref}", *tiny]) == 0
    # resumed with the same config (the lattice still comes from the data)
    assert main(["train", "--config", cfg("train"), "--quiet", "--resume", "--set",
                 "data=data/hc.h5", "run_dir=runs/hc", *tiny, "max_epochs=3"]) == 0
    assert main(["train", "--config", cfg("train"), "--quiet", "--resume", "--set",
                 "data=data/hc.h5", "run_dir=runs/rel", "model_config.lattice=mine/honeycomb_t2.yaml",
                 *tiny, "max_epochs=3"]) == 0
    out = capsys.readouterr().out
    assert "energies are not trained" in out and "augmentation is off" not in out
    ck = load_checkpoint("runs/hc/best.pt")
    assert ck["model_config"]["lattice"]["name"] == "honeycomb_t2"
    assert ck["model_config"]["num_bond_types"] == 18 and ck["model_config"]["num_shells"] == 2
    assert load_checkpoint("runs/abs/best.pt")["model_config"] == \
        {**ck["model_config"], "energy_shift": load_checkpoint("runs/abs/best.pt")[
            "model_config"]["energy_shift"]}

    shutil.rmtree(tmp_path / "mine")                     # the lattice file is gone
    assert main(["evaluate", "--model", "runs/hc/best.pt", "--data", "data/hc.h5",
                 "--plot", "parity.png"]) == 0
    np.save("s.npy", random_spins(18, 2, generator=np.random.default_rng(0)))
    assert main(["evaluate", "--model", "runs/hc/best.pt", "--spins", "s.npy",
                 "--out", "pred.npz"]) == 0
    pred = np.load("pred.npz")
    assert pred["field"].shape == (2, 18, 3) and np.isfinite(pred["field"]).all()
    assert main(["simulate", "--config", cfg("simulate"), "--quiet", "--set",
                 "model=runs/hc/best.pt", "size=[3, 3]", "n_steps=20", "save_every=10",
                 "output=runs/llg.h5", "plot=false"]) == 0
    runs = ep.simulate.read_runs("runs/llg.h5")
    assert len(runs) == 1 and np.isfinite(runs[0]["spin"]).all()
    assert runs[0]["spin"].shape[-2:] == (18, 3)
