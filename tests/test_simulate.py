"""Resumable LLG simulations: the runs, their observables, interruption and extension."""
import numpy as np
import pytest

import ecnn_pyg.simulate as S
from ecnn_pyg.cli import main
from ecnn_pyg.config import ConfigError
from ecnn_pyg.datasets import DataFileError

BASE = {"lattice": "triangular", "size": [6, 6], "hoppings": {"t1": 1.0, "t3": -0.85},
        "J": -1.0, "mu": -3.5, "integrator": "sib", "dt": 0.5, "alpha": 1.0,
        "temperature": [0.0, 0.01], "zeeman": 0.005, "n_steps": 12, "save_every": 5, "seed": 3}


def cfg(tmp_path, name="t.h5", **kw):
    return {**BASE, "output": str(tmp_path / name), **kw}


def test_sweep_runs_and_observables(tmp_path):
    path = S.simulate(cfg(tmp_path), progress=False)
    runs = S.read_runs(path)
    assert [(r["zeeman"], r["temperature"]) for r in runs] == [(0.005, 0.0), (0.005, 0.01)]
    for r in runs:
        assert r["step"] == 12
        assert np.allclose(r["time"], [0, 2.5, 5.0, 6.0])           # every 5 steps and the end
        assert r["spin"].shape == (4, 36, 3)
        assert np.allclose(np.linalg.norm(r["spin"], axis=-1), 1, atol=1e-6)
        assert np.allclose(r["magnetization"], r["spin"].mean(1), atol=1e-6)
        assert np.allclose(r["charge"], np.round(r["charge"]), atol=1e-6)   # periodic: integer Q


def test_interrupted_run_continues_exactly(tmp_path, monkeypatch):
    ref = S.read_runs(S.simulate(cfg(tmp_path, "ref.h5"), progress=False))
    real = S.field_source
    calls = {"n": 0}

    def flaky(c, graph):
        src = real(c, graph)

        def source(spins):
            calls["n"] += 1
            if calls["n"] == 33:               # 2 calls per step: mid second run
                raise KeyboardInterrupt
            return src(spins)
        return source

    monkeypatch.setattr(S, "field_source", flaky)
    with pytest.raises(KeyboardInterrupt):
        S.simulate(cfg(tmp_path), progress=False)
    part = S.read_runs(tmp_path / "t.h5")                        # the file stays readable
    assert part[0]["step"] == 12 and 0 <= part[1]["step"] < 12
    monkeypatch.setattr(S, "field_source", real)
    done = S.read_runs(S.simulate(cfg(tmp_path), progress=False))
    for a, b in zip(done, ref):
        assert np.array_equal(a["spin"], b["spin"]) and np.array_equal(a["time"], b["time"])


def test_extending_n_steps(tmp_path):
    S.simulate(cfg(tmp_path, n_steps=10), progress=False)
    ext = S.read_runs(S.simulate(cfg(tmp_path, n_steps=12), progress=False))
    ref = S.read_runs(S.simulate(cfg(tmp_path, "ref.h5"), progress=False))
    for a, b in zip(ext, ref):
        assert a["step"] == 12 and np.array_equal(a["spin"], b["spin"])


def test_bad_configs(tmp_path):
    S.simulate(cfg(tmp_path), progress=False)
    with pytest.raises(DataFileError, match="different settings.*alpha"):
        S.simulate(cfg(tmp_path, alpha=0.5), progress=False)
    with pytest.raises(ConfigError, match="'dt' .* is required"):
        S.simulate({k: v for k, v in cfg(tmp_path).items() if k != "dt"}, progress=False)
    with pytest.raises(ValueError, match="dt must be a finite number > 0"):
        S.simulate(cfg(tmp_path, "n.h5", dt=-0.1), progress=False)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        S.simulate(cfg(tmp_path, "n.h5", temperature=-1.0), progress=False)
    with pytest.raises(ValueError, match="unknown integrator"):
        S.simulate(cfg(tmp_path, "n.h5", integrator="euler"), progress=False)


def test_cli_simulate(tmp_path, capsys):
    import yaml
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg(tmp_path, temperature=0.0)))
    assert main(["simulate", "--config", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "run_000: H_z=0.005 T=0 steps=12 snapshots=4" in out


def test_generate_from_trajectory_snapshots(tmp_path):
    """ED-LLG snapshots become a data set (the triangular protocol's sampler)."""
    from ecnn_pyg.datasets import SpinDataset
    from ecnn_pyg.ed import KondoED
    from ecnn_pyg.generate import generate
    import ecnn_pyg as ep
    traj = S.simulate(cfg(tmp_path), progress=False)
    data = generate({"output": str(tmp_path / "d.h5"), "lattice": "triangular", "size": [6, 6],
                     "hoppings": {"t1": 1.0, "t3": -0.85}, "J": -1.0, "mu": -3.5,
                     "sampler": "file", "spins_from": str(traj),
                     "splits": {"train": 5, "val": 3}}, progress=False)
    snaps = np.concatenate([r["spin"] for r in S.read_runs(traj)])
    val = SpinDataset(data, "val")
    assert np.allclose(val[0].spin.numpy(), snaps[5], atol=1e-6)
    ed = KondoED(ep.lattice_graph("triangular", 6, {"t3": -0.85}), J=-1.0, mu=-3.5)
    e, b = ed.energy_field(val[0].spin.numpy())
    assert np.allclose(val[0].field.numpy(), b) and val[0].energy.item() == pytest.approx(e)
    # the same slice of every run: here the last two snapshots of each of the two runs
    late = generate({"output": str(tmp_path / "late.h5"), "lattice": "triangular", "size": [6, 6],
                     "hoppings": {"t1": 1.0, "t3": -0.85}, "J": -1.0, "mu": -3.5,
                     "sampler": "file", "spins_from": str(traj), "snapshots": "2:",
                     "splits": {"val": 4}}, progress=False)
    runs = S.read_runs(traj)
    assert [len(r["spin"]) for r in runs] == [4, 4]
    want = np.concatenate([r["spin"][2:] for r in runs])
    from ecnn_pyg.datasets import read_arrays
    assert np.allclose(read_arrays(late, "val")["spin"], want, atol=1e-6)
    with pytest.raises(ValueError, match="start:stop:step"):
        generate({"output": str(tmp_path / "f.h5"), "lattice": "triangular", "size": [6, 6],
                  "J": -1.0, "mu": -3.5, "sampler": "file", "spins_from": str(traj),
                  "snapshots": "a:b", "splits": {"train": 1}}, progress=False)
    assert not (tmp_path / "f.h5").exists()
    with pytest.raises(ValueError, match="holds 8 configurations"):
        generate({"output": str(tmp_path / "e.h5"), "lattice": "triangular", "size": [6, 6],
                  "J": -1.0, "mu": -3.5, "sampler": "file", "spins_from": str(traj),
                  "splits": {"train": 9}}, progress=False)


def test_pictures_of_runs_and_phase_diagram(tmp_path, capsys):
    """plot: true draws every run's last state; a field sweep also gets the phase diagram."""
    import yaml
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg(tmp_path, "sw.h5", zeeman=[0.0, 0.004, 0.008],
                                       temperature=0.0, n_steps=4, plot=True,
                                       sites_per_magnetic_cell=48)))
    assert main(["simulate", "--config", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    names = ["sw_run_000.png", "sw_run_001.png", "sw_run_002.png", "sw_phase_diagram.png"]
    for name in names:
        png = tmp_path / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert str(png) in out
    assert "n_sk=" in out
    # two temperatures, one field each: pictures of the runs, no phase diagram
    written = S.plot_runs(S.simulate(cfg(tmp_path, "t2.h5"), progress=False))
    assert sorted(p.name for p in written) == ["t2_run_000.png", "t2_run_001.png"]


def test_default_config_is_the_shipped_model_skyrmion_run():
    from ecnn_pyg.config import load_config
    c = load_config(S.DEFAULT_CONFIG, S.SIMULATE_SCHEMA)
    assert c["source"] == "model" and c["model"] == "triangular-paper" and c["plot"]
    assert c["temperature"] == 0.0 and 0.00325 < c["zeeman"] < 0.0065   # the n_sk = 1 phase
    assert c["size"][0] % 12 == 0 and c["size"][1] % 12 == 0             # commensurate


def test_triple_q_initial_state(tmp_path):
    from ecnn_pyg import lattice_graph
    from ecnn_pyg.spins import triple_q
    path = S.simulate(cfg(tmp_path, size=[12, 12], initial="triple-q", n_steps=0,
                          temperature=0.0), progress=False)
    run = S.read_runs(path)[0]
    g = lattice_graph("triangular", 12, {"t3": -0.85})
    assert np.allclose(run["spin"][0], triple_q(g), atol=1e-6)
    assert run["charge"][0] == pytest.approx(-3.0)          # 144 / 48 cells, core down


def test_initial_state_from_another_trajectory(tmp_path):
    first = S.simulate(cfg(tmp_path, "a.h5"), progress=False)
    last = S.read_runs(first)[1]["spin"][-1]
    path = S.simulate(cfg(tmp_path, "b.h5", initial=f"{first}#1", n_steps=0,
                          temperature=0.0), progress=False)
    assert np.allclose(S.read_runs(path)[0]["spin"][0], last, atol=1e-6)
    with pytest.raises(ValueError, match="RUN_INDEX"):
        S.simulate(cfg(tmp_path, "c.h5", initial=f"{first}#7"), progress=False)
    assert not (tmp_path / "c.h5").exists()          # refused before the output is created


def test_ed_with_twists_is_the_tiled_lattice_dynamics(tmp_path):
    """T = 0 ED-LLG of a 6 x 6 cell with twists 2 equals that of the 12 x 12 lattice tiling it."""
    from ecnn_pyg.spins import triple_q
    import ecnn_pyg as ep
    small = ep.lattice_graph("triangular", 6, BASE["hoppings"])
    s0 = triple_q(small, m=0.5)
    s0 = s0 + 0.05 * np.random.default_rng(0).normal(size=s0.shape)   # not a fixed point
    s0 /= np.linalg.norm(s0, axis=1, keepdims=True)
    np.save(tmp_path / "s6.npy", s0)
    i = np.arange(12) % 6
    np.save(tmp_path / "s12.npy", s0.reshape(6, 6, 3)[i[:, None], i[None, :]].reshape(-1, 3))
    kw = dict(temperature=0.0, n_steps=6)
    a = S.read_runs(S.simulate(cfg(tmp_path, "a.h5", twists=2, initial=str(tmp_path / "s6.npy"),
                                   **kw), progress=False))[0]["spin"][-1]
    b = S.read_runs(S.simulate(cfg(tmp_path, "b.h5", size=[12, 12], initial=str(tmp_path / "s12.npy"),
                                   **kw), progress=False))[0]["spin"][-1]
    assert np.abs(a - s0).max() > 1e-3                                   # the spins moved
    np.testing.assert_allclose(a, b.reshape(12, 12, 3)[:6, :6].reshape(-1, 3), atol=1e-10)
