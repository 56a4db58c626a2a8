"""ecnn_pyg.minimize: L-BFGS on unit spins reaches the closed-form minima.

* a free spin turns along the field;
* the classical Heisenberg triangle, E = J (S1.S2 + S2.S3 + S3.S1) - H.(S1 + S2 + S3), has
  the minimum energy -3J/2 - H^2/(2J) with total spin H/J along H (H < 3J): the 120-degree
  state at H = 0, canted towards H above;
* with exact diagonalization or a model as the energy, the torque vanishes at the result
  and the energy never rises; bad input is refused with a message.
"""
import numpy as np
import pytest
import torch

from ecnn_pyg.minimize import model_energy_field, relax, torque
from ecnn_pyg.spins import SpinError


def heisenberg_triangle(j):
    bonds = ((0, 1), (1, 2), (2, 0))

    def energy_field(s):
        e = j * sum(s[a] @ s[b] for a, b in bonds)
        b = -j * (s.sum(0)[None, :] - s)          # -dE/dS_i = -J sum of the two others
        return float(e), b
    return energy_field


def test_free_spin_turns_along_the_field():
    def none(s):
        return 0.0, np.zeros_like(s)
    h = np.array([0.3, -0.2, 0.5])
    s, nit = relax(none, np.array([[0.01, 0.0, -1.0]]), h, gtol=1e-10)
    assert nit >= 1
    np.testing.assert_allclose(s[0], h / np.linalg.norm(h), atol=1e-6)


@pytest.mark.parametrize("hz", [0.0, 0.4, 1.5])
def test_heisenberg_triangle_closed_form(hz):
    j = 1.0
    rng = np.random.default_rng(3)
    ef = heisenberg_triangle(j)
    start = rng.normal(size=(3, 3))
    s, _ = relax(ef, start, hz, gtol=1e-10)
    e = ef(s)[0] - hz * s[:, 2].sum()
    assert e == pytest.approx(-1.5 * j - hz ** 2 / (2 * j), abs=1e-9)
    np.testing.assert_allclose(s.sum(0), [0.0, 0.0, hz / j], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-12)
    assert torque(ef, s, hz).max() < 1e-5
    if hz == 0.0:                                  # the 120-degree state
        for a, b in ((0, 1), (1, 2), (2, 0)):
            assert s[a] @ s[b] == pytest.approx(-0.5, abs=1e-5)


def test_exact_energy_relaxes_to_a_stationary_point(tiny_ed):
    graph, ed = tiny_ed
    rng = np.random.default_rng(0)
    start = rng.normal(size=(graph.num_nodes, 3))
    start /= np.linalg.norm(start, axis=1, keepdims=True)
    hz = 0.05
    s, _ = relax(ed.energy_field, start, hz)
    e0 = ed.energy(start) - hz * start[:, 2].sum()
    e1 = ed.energy(s) - hz * s[:, 2].sum()
    assert e1 < e0
    assert torque(ed.energy_field, s, hz).max() < 1e-4
    start_copy = start.copy()
    relax(ed.energy_field, start, hz, maxiter=2)
    np.testing.assert_array_equal(start, start_copy)       # the start is not changed


def test_model_energy_field_is_the_models_float64_energy(tiny_model):
    graph, model = tiny_model
    ef = model_energy_field(model, graph)
    rng = np.random.default_rng(1)
    s0 = rng.normal(size=(graph.num_nodes, 3))
    s0 /= np.linalg.norm(s0, axis=1, keepdims=True)
    e, b = ef(s0)
    out = model(graph, torch.from_numpy(s0))
    assert out["field"].dtype == torch.float64
    assert e == pytest.approx(float(out["energy"].sum().detach()), rel=1e-12)
    np.testing.assert_allclose(b, out["field"].detach().numpy())
    s, _ = relax(ef, s0, 0.1)
    assert ef(s)[0] - 0.1 * s[:, 2].sum() < e - 0.1 * s0[:, 2].sum()
    assert torque(ef, s, 0.1).max() < 1e-3


def test_bad_input_is_refused():
    ef = heisenberg_triangle(1.0)
    good = np.eye(3)
    with pytest.raises(SpinError, match=r"shape \(N, 3\)"):
        relax(ef, np.ones((3, 2)))
    with pytest.raises(SpinError, match="NaN"):
        relax(ef, np.array([[np.nan, 0, 1], [0, 0, 1], [1, 0, 0]]))
    with pytest.raises(SpinError, match="zero length"):
        relax(ef, np.array([[0.0, 0, 0], [0, 0, 1], [1, 0, 0]]))
    with pytest.raises(ValueError, match="zeeman must be"):
        relax(ef, good, [0.0, 1.0])
    with pytest.raises(ValueError, match="zeeman must be"):
        relax(ef, good, float("nan"))
    with pytest.raises(ValueError, match="gtol"):
        relax(ef, good, gtol=0.0)
    with pytest.raises(ValueError, match="maxiter"):
        relax(ef, good, maxiter=0)


@pytest.fixture
def tiny_ed():
    import ecnn_pyg as ep
    from ecnn_pyg.ed import KondoED
    g = ep.lattice_graph("triangular", 4, {"t1": 1.0})
    return g, KondoED(g, J=2.0, electrons=12)


@pytest.fixture
def tiny_model():
    import ecnn_pyg as ep
    from ecnn_pyg.nn import ECNN
    torch.manual_seed(0)
    g = ep.lattice_graph("triangular", 4, {"t1": 1.0})
    return g, ECNN(lattice="triangular", channels=2, lmax=1, num_blocks=1)
