"""simulate's physics checks and reports: the model's Hamiltonian, Q and n_sk, the energies in
the trajectory file, units, the time step, progress bars and the memory guard."""
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

import ecnn_pyg.simulate as S
from ecnn_pyg import lattice_graph, pretrained
from ecnn_pyg.cli import main
from ecnn_pyg.dynamics import SIB, SpinSystem, TimestepWarning, check_timestep, random_spins

ROOT = Path(__file__).resolve().parent.parent

#: exact field on a small triangular cell (the paper's Hamiltonian)
ED = {"lattice": "triangular", "size": [6, 6], "hoppings": {"t1": 1.0, "t3": -0.85},
      "J": -1.0, "mu": -3.5, "integrator": "sib", "dt": 0.5, "alpha": 1.0, "temperature": 0.0,
      "zeeman": 0.005, "n_steps": 12, "save_every": 5, "seed": 3}
#: the shipped triangular model on its own Hamiltonian, as configs/triangular_simulate.yaml
MODEL = {"lattice": "triangular", "size": [12, 12], "hoppings": {"t1": 1.0, "t3": -0.85},
         "source": "model", "model": "triangular-paper", "integrator": "sib", "dt": 5.0,
         "alpha": 1.0, "zeeman": 0.006, "n_steps": 2, "save_every": 1, "seed": 1,
         "dtype": "float32"}


def run(tmp_path, base, name="t.h5", **kw):
    return S.simulate({**base, "output": str(tmp_path / name), **kw}, progress=False)


def cli(tmp_path, base, name="c", *extra, **kw):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**base, "output": str(tmp_path / f"{name}.h5"), **kw}))
    return main(["simulate", "--config", str(path), "--quiet", *extra])


# --------------------------------------------------------------- the model's Hamiltonian
def test_model_on_other_hoppings_is_refused_unless_allowed(tmp_path, capsys):
    t2 = {"t1": 1.0, "t2": 0.5, "t3": -0.85}
    with pytest.raises(ValueError, match=r"hopping t2 = 0.5 \(model: 0\).*"
                                         r"allow_hamiltonian_mismatch"):
        run(tmp_path, MODEL, "t2.h5", hoppings=t2)
    assert not (tmp_path / "t2.h5").exists()                 # refused before any file
    assert cli(tmp_path, MODEL, "t2", hoppings=t2) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "hopping t2 = 0.5" in err and "Traceback" not in err
    with pytest.raises(ValueError, match=r"J = -2 \(model: -1\)"):
        run(tmp_path, MODEL, "j.h5", J=-2.0)
    with pytest.raises(ValueError, match=r"mu = -3 \(model: mu = -3.5\)"):
        run(tmp_path, MODEL, "mu.h5", mu=-3.0)
    with pytest.raises(ValueError, match=r"lattice 'square' \(model: 'triangular'\)"):
        run(tmp_path, MODEL, "sq.h5", lattice="square", hoppings={"t1": 1.0})
    # told to: it runs, with a warning, and no magnetic cell taken from the card
    with pytest.warns(S.HamiltonianMismatchWarning, match="hopping t2"):
        path = run(tmp_path, MODEL, "t2.h5", hoppings=t2, n_steps=0,
                   allow_hamiltonian_mismatch=True)
    assert S.magnetic_cell_of(path) is None


def test_model_on_its_own_hamiltonian_runs_without_a_word(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # no mismatch, no time-step warning (dt = 5)
        # J and mu given equal to the model's are fine; a shell given at its default too
        path = run(tmp_path, MODEL, J=-1.0, mu=-3.5, hoppings={"t1": 1.0, "t2": 0.0, "t3": -0.85})
    assert S.read_runs(path)[0]["step"] == 2


def test_hamiltonian_differences_compare_the_filling():
    trained = pretrained.info("square-paper")["trained_on"]       # 864 electrons on 900 sites
    sq = {"lattice": "square", "size": [30, 30], "hoppings": {"t1": 1.0}, "J": 7.0,
          "electrons": None, "filling": None, "mu": None, "el_temperature": 0.0}
    assert S.hamiltonian_differences(sq, trained) == []
    assert S.hamiltonian_differences({**sq, "filling": 0.48}, trained) == []
    assert S.hamiltonian_differences({**sq, "size": [10, 10], "electrons": 96}, trained) == []
    assert S.hamiltonian_differences({**sq, "filling": 0.5}, trained) == \
        ["filling 0.5 (model: 0.48)"]
    assert S.hamiltonian_differences({**sq, "el_temperature": 0.1}, trained) == \
        ["el_temperature = 0.1 (model: 0)"]
    assert S.hamiltonian_differences(sq, {}) == []                  # nothing recorded


def test_hamiltonian_differences_compare_a_recorded_lattice_definition():
    from ecnn_pyg.lattice import load_lattice
    tri = {"lattice": "triangular", "size": [12, 12], "hoppings": {"t1": 1.0, "t3": -0.85},
           "J": None, "electrons": None, "filling": None, "mu": None, "el_temperature": 0.0}
    card = pretrained.info("triangular-paper")["trained_on"]
    same = {**card, "lattice": "mine",          # a renamed copy of the same lattice
            "lattice_definition": {**load_lattice("triangular").to_dict(), "name": "mine"}}
    assert S.hamiltonian_differences(tri, same) == []
    other = {**card, "lattice_definition": load_lattice("kagome").to_dict()}
    assert "is not the model's lattice" in S.hamiltonian_differences(tri, other)[0]


# --------------------------------------------------------------- Q and n_sk
def test_q_always_n_sk_only_where_the_magnetic_cell_is_known(tmp_path, capsys, monkeypatch):
    import ecnn_pyg.plot as plot
    honeycomb = {**ED, "lattice": "honeycomb", "size": [4, 4], "hoppings": {"t1": 1.0},
                 "J": 2.0, "mu": -1.0, "zeeman": [0.0, 0.01], "n_steps": 2}
    titles, quantities = [], []
    real_texture, real_diagram = plot.spin_texture, plot.phase_diagram
    monkeypatch.setattr(plot, "spin_texture", lambda *a, **k: (titles.append(k["title"]),
                                                              real_texture(*a, **k))[1])
    monkeypatch.setattr(plot, "phase_diagram", lambda *a, **k: (quantities.append(k["quantity"]),
                                                                real_diagram(*a, **k))[1])
    assert cli(tmp_path, honeycomb, "hc", plot=True) == 0
    out = capsys.readouterr().out
    assert "Q=" in out and "n_sk=" not in out
    assert S.magnetic_cell_of(tmp_path / "hc.h5") is None
    assert all("Q = " in t and "n_sk" not in t for t in titles) and quantities == ["Q"]
    # the same run with its magnetic cell given
    titles.clear(), quantities.clear()
    assert cli(tmp_path, honeycomb, "hc2", plot=True, sites_per_magnetic_cell=8) == 0
    assert "n_sk=" in capsys.readouterr().out and quantities == ["n_sk"]
    assert S.magnetic_cell_of(tmp_path / "hc2.h5") == 8


def test_the_shipped_triangular_model_takes_its_magnetic_cell_from_its_card(tmp_path, capsys):
    assert pretrained.info("triangular-paper")["sites_per_magnetic_cell"] == 48
    assert cli(tmp_path, MODEL, "tri") == 0
    assert "n_sk=" in capsys.readouterr().out
    assert S.magnetic_cell_of(tmp_path / "tri.h5") == 48


@pytest.mark.parametrize("cell", [0, -48])
def test_a_magnetic_cell_of_no_sites_is_refused(tmp_path, capsys, cell):
    with pytest.raises(ValueError, match="sites_per_magnetic_cell must be a positive integer"):
        run(tmp_path, ED, sites_per_magnetic_cell=cell)
    assert not (tmp_path / "t.h5").exists()
    assert cli(tmp_path, ED, "c", sites_per_magnetic_cell=cell) == 2
    assert "sites_per_magnetic_cell" in capsys.readouterr().err
    with pytest.raises(ValueError, match="positive integer"):
        S.plot_runs(run(tmp_path, ED, "ok.h5", n_steps=0), sites_per_magnetic_cell=cell)


def test_phase_diagram_of_q(tmp_path):
    from ecnn_pyg.plot import phase_diagram
    fig = phase_diagram([0.0, 0.01], [2.0, 0.0], [0.1, 0.3], quantity="Q")
    assert fig.axes[0].get_ylabel() == "$|Q|$"
    with pytest.raises(ValueError, match="quantity must be 'n_sk' or 'Q'"):
        phase_diagram([0.0], [1.0], [0.1], quantity="nsk")


# --------------------------------------------------------------- energies in the file
def test_energies_of_every_snapshot_are_saved(tmp_path):
    from ecnn_pyg.ed import KondoED
    path = run(tmp_path, ED)
    r = S.read_runs(path)[0]
    assert r["energy"].shape == r["energy_electronic"].shape == r["energy_zeeman"].shape == (4,)
    assert np.allclose(r["energy"], r["energy_electronic"] + r["energy_zeeman"])
    assert np.allclose(r["energy_zeeman"], -0.005 * r["spin"][..., 2].sum(-1), atol=1e-6)
    ed = KondoED(lattice_graph("triangular", 6, ED["hoppings"]), J=-1.0, mu=-3.5)
    exact = ed.energy_field(r["spin"].astype(np.float64))[0]
    assert np.allclose(r["energy_electronic"], exact, atol=1e-5)
    assert np.all(np.diff(r["energy"]) < 0)              # T = 0, alpha = 1: it relaxes
    with h5py.File(path, "r") as f:                      # the file says what each holds
        assert "total energy" in f["run_000/energy"].attrs["description"]
        assert "1/t1" in f["run_000/time"].attrs["description"]


def test_learned_energies_are_saved(tmp_path):
    path = run(tmp_path, MODEL)
    r = S.read_runs(path)[0]
    graph = lattice_graph("triangular", 12, MODEL["hoppings"])
    model = pretrained.load("triangular-paper")
    with torch.no_grad():
        want = [float(model(graph, torch.from_numpy(s), compute_field=False)["energy"])
                for s in r["spin"]]
    assert np.allclose(r["energy_electronic"], want, rtol=1e-4)
    assert np.isfinite(r["energy"]).all()


def test_a_file_without_energies_is_extended_with_them(tmp_path):
    path = run(tmp_path, ED, n_steps=10)
    with h5py.File(path, "r+") as f:                     # as an older version wrote it
        for key in ("energy", "energy_electronic", "energy_zeeman"):
            del f["run_000"][key]
    r = S.read_runs(run(tmp_path, ED, n_steps=12))[0]
    assert len(r["energy"]) == 4
    assert np.isnan(r["energy"][:3]).all() and np.isfinite(r["energy"][3])


# --------------------------------------------------------------- units
def test_units_of_time_are_stated(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "hbar = 1" in text and "1/t1" in text and "dt" in text
    readme = (ROOT / "README.md").read_text()
    assert "1/t1" in readme and "hbar = 1" in readme


# --------------------------------------------------------------- the time step
def test_a_time_step_far_beyond_the_suggested_one_is_warned_about(tmp_path):
    with pytest.warns(TimestepWarning, match=r"dt = 1e\+06 .* suggest_timestep"):
        run(tmp_path, ED, dt=1e6, n_steps=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TimestepWarning)
        run(tmp_path, ED, "ok.h5", n_steps=1)             # dt = 0.5


def test_check_timestep():
    field = torch.tensor([[0.0, 0.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", TimestepWarning)
        assert check_timestep(0.5, field) == pytest.approx(0.1)
        assert check_timestep(1e6, torch.zeros(1, 3)) == float("inf")   # no time scale
    with pytest.warns(TimestepWarning, match="rad of precession per step"):
        check_timestep(2.0, field)


# --------------------------------------------------------------- progress
def test_run_shows_progress_when_asked(capsys):
    spins = random_spins(4, seed=0)
    system = SpinSystem(None, zeeman=0.1)
    SIB(dt=0.1, alpha=0.5).run(spins, system, 7)
    assert "7/7" not in capsys.readouterr().err
    SIB(dt=0.1, alpha=0.5).run(spins, system, 7, progress=True)
    assert "7/7" in capsys.readouterr().err
    with pytest.raises(TypeError, match="progress must be True or False"):
        SIB(dt=0.1).run(spins, system, 1, progress="yes")


def test_readme_api_example_shows_progress():
    readme = (ROOT / "README.md").read_text()
    api = readme.split("## The Python API", 1)[1].split("```", 2)[1]
    assert "progress=True" in api


# --------------------------------------------------------------- memory
def test_an_absurd_size_is_refused_with_the_estimate(tmp_path, capsys):
    with pytest.raises(MemoryError, match=r"needs about .* available.*ignore_memory_check"):
        run(tmp_path, MODEL, "big.h5", size=[100000, 100000])
    assert not (tmp_path / "big.h5").exists()
    assert cli(tmp_path, MODEL, "big", size=[100000, 100000]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "needs about" in err and "Traceback" not in err
    assert S.memory_estimate({**MODEL, "source": "ed", "size": [100, 100], "twists": None,
                              "mu": -3.5}) > 20e9        # a 20000 x 20000 complex matrix, x4


def test_the_memory_guard_is_overridden_when_told(tmp_path, monkeypatch, capsys):
    import ecnn_pyg.runtime as runtime
    need = S.memory_estimate({**MODEL, "source": "model"})
    assert 1e6 < need < 2e8                              # 12 x 12: the graph and one evaluation
    monkeypatch.setattr(runtime, "available_memory", lambda: need // 2)
    with pytest.raises(MemoryError, match="needs about"):
        run(tmp_path, MODEL)
    run(tmp_path, MODEL, n_steps=0, ignore_memory_check=True)
    assert cli(tmp_path, MODEL, "c", "--ignore-memory-check", n_steps=0) == 0
