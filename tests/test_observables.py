"""Observables: Berg-Lüscher topological charge, triangulations, S(q), magnetization."""
import math
import warnings

import numpy as np
import pytest
import torch

import ecnn_pyg.spins as spins_mod
from ecnn_pyg import lattice_graph
from ecnn_pyg.dynamics import SpinError, random_spins
from ecnn_pyg.observables import (TRIPLE_Q_CELL_SITES, charge_density, magnetization,
                                  reciprocal_vectors, scalar_chirality, skyrmion_number,
                                  solid_angles, structure_factor, topological_charge,
                                  triangulation)


def graph(name, L, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lattice_graph(name, L, **kw)


def skyrmion(pos, R=7.0, vorticity=1, core=-1, helicity=0.0, center=None):
    """Compact skyrmion: theta = pi (1 - r/R) inside R (core down for core=-1), 0 outside."""
    pos = np.asarray(pos)
    d = pos - (pos.mean(0) if center is None else center)
    r = np.linalg.norm(d, axis=1)
    phi = vorticity * np.arctan2(d[:, 1], d[:, 0]) + helicity
    th = np.where(r < R, np.pi * (1 - r / R), 0.0)
    if core == 1:
        th = np.pi - th
    return torch.from_numpy(np.stack([np.sin(th) * np.cos(phi), np.sin(th) * np.sin(phi),
                                      np.cos(th)], 1))


TRIPLE_Q = [math.pi / 3 * np.array([math.cos(t), math.sin(t)])
            for t in (0.0, 2 * math.pi / 3, 4 * math.pi / 3)]


def triple_q(pos, m=0.0, kind="bloch"):
    """The package's skyrmion-crystal ansatz as a tensor (core down, charge -1 per cell)."""
    return torch.from_numpy(spins_mod.triple_q(pos, m=m, kind=kind))


# ----------------------------------------------------------------- triangulations
def test_triangular_triangles_are_the_elementary_ones():
    g = graph("triangular", 6)
    tri = triangulation(g).numpy()
    assert tri.shape == (2 * 36, 3)
    L2 = 6

    def idx(i1, i2):
        return (i1 % 6) * L2 + (i2 % 6)

    expected = set()
    for i1 in range(6):
        for i2 in range(6):
            r = idx(i1, i2)
            expected.add((r, idx(i1 + 1, i2), idx(i1 + 1, i2 + 1)))
            expected.add((r, idx(i1 + 1, i2 + 1), idx(i1, i2 + 1)))
    assert {tuple(t) for t in tri} == expected


@pytest.mark.parametrize("name,L", [("square", 5), ("triangular", 6), ("honeycomb", 4),
                                    ("kagome", 4)])
def test_periodic_triangulation_is_counter_clockwise_and_complete(name, L):
    g = graph(name, L)
    tri = triangulation(g).numpy()
    n = g.num_nodes
    assert tri.shape == (2 * n, 3)                     # Euler: F = 2V on a torus
    pos = g.pos.numpy()
    sc = g.supercell[0].numpy()
    inv = np.linalg.inv(sc)

    def min_image(d):
        f = d @ inv
        return (f - np.round(f)) @ sc

    d1 = min_image(pos[tri[:, 1]] - pos[tri[:, 0]])
    d2 = min_image(pos[tri[:, 2]] - pos[tri[:, 0]])
    area = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    assert (area > 0).all()
    # the triangles tile the supercell exactly
    assert area.sum() / 2 == pytest.approx(abs(np.linalg.det(sc)))
    # every triangle is distinct as a set of sites
    assert len({tuple(sorted(t)) for t in tri}) == len(tri)


def test_open_boundaries_and_delaunay_fallback():
    g = graph("square", 20, periodic=False)
    tri = triangulation(g)
    assert tri.shape == (2 * 19 * 19, 3)
    q = float(topological_charge(skyrmion(g.pos.numpy()), g))
    assert q == pytest.approx(-1.0, abs=1e-9)          # the texture fits inside
    # Delaunay on positions (open) gives the same covering area
    tri_d = triangulation(g, method="delaunay")
    assert tri_d.shape == tri.shape
    with pytest.raises(ValueError, match="'cells' needs a one-site-per-cell"):
        triangulation(graph("honeycomb", 3), method="cells")
    with pytest.raises(ValueError, match="method must be"):
        triangulation(g, method="voronoi")


# ----------------------------------------------------------------- topological charge
@pytest.mark.parametrize("name,L", [("square", 20), ("triangular", 24)])
@pytest.mark.parametrize("helicity", [0.0, math.pi / 2])            # Néel, Bloch
def test_analytic_skyrmion_charge_and_sign(name, L, helicity):
    g = graph(name, L)
    pos = g.pos.numpy()
    # sign convention: core down in an up background (a skyrmion in a field +z) -> Q = -1
    assert float(topological_charge(skyrmion(pos, helicity=helicity), g)) == \
        pytest.approx(-1.0, abs=1e-9)
    assert float(topological_charge(skyrmion(pos, helicity=helicity, core=1), g)) == \
        pytest.approx(1.0, abs=1e-9)
    # antiskyrmion (vorticity -1) and a vorticity-2 (biskyrmion-like) texture
    assert float(topological_charge(skyrmion(pos, vorticity=-1), g)) == pytest.approx(1.0)
    assert float(topological_charge(skyrmion(pos, vorticity=2), g)) == pytest.approx(-2.0)
    # time reversal flips Q, a proper global rotation keeps it
    s = skyrmion(pos, helicity=helicity)
    assert float(topological_charge(-s, g)) == pytest.approx(1.0)
    rot = torch.from_numpy(_random_rotation(0))
    assert float(topological_charge(s @ rot.T, g)) == pytest.approx(-1.0)


def _random_rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


@pytest.mark.parametrize("name,L", [("square", 8), ("triangular", 12), ("honeycomb", 5),
                                    ("kagome", 4)])
def test_charge_is_integer_for_random_periodic_configurations(name, L):
    g = graph(name, L)
    q = topological_charge(random_spins(g.num_nodes, 20, seed=1), g)
    assert q.shape == (20,)
    assert torch.allclose(q, q.round(), atol=1e-9)
    assert q.abs().max() > 0.5                         # random textures do carry charge
    assert (solid_angles(random_spins(g.num_nodes, seed=2), g).abs() <= 2 * math.pi).all()


def test_charge_density_and_chirality_maps():
    g = graph("triangular", 12)
    s = triple_q(g.pos.numpy(), m=0.2)
    rho = charge_density(s, g)
    assert rho.shape == (144,)
    assert float(rho.sum()) == pytest.approx(float(topological_charge(s, g)))
    chi_t = scalar_chirality(s, g, per="triangle")
    assert chi_t.shape == (288,)
    chi = scalar_chirality(s, g)
    assert chi.shape == (144,)
    tri = triangulation(g)
    counts = torch.bincount(tri.flatten(), minlength=144)
    assert (counts == 6).all()
    # per site: the mean over the six touching triangles
    assert float(chi.sum()) == pytest.approx(float(chi_t.sum()) * 3 / 6)
    # precomputed triangles and batches give the same
    rb = charge_density(torch.stack([s, -s]), tri)
    assert torch.allclose(rb[0], rho) and torch.allclose(rb[1], -rho)
    with pytest.raises(ValueError, match="per must be"):
        scalar_chirality(s, g, per="bond")


# ----------------------------------------------------------------- triple-Q state
@pytest.mark.parametrize("L", [12, 36])
def test_triple_q_structure_factor_peaks_and_skyrmion_number(L):
    g = graph("triangular", L)
    s = triple_q(g.pos.numpy())
    sq, q = structure_factor(s, g)
    assert sq.shape == (L, L) and q.shape == (L, L, 2)
    assert float(sq.sum()) == pytest.approx(L * L)     # sum rule, unit spins
    flat, qf = sq.reshape(-1), q.reshape(-1, 2)
    top = torch.argsort(flat, descending=True)[:6]
    peaks = {tuple(np.round(v, 9)) for v in qf[top].numpy()}
    expected = {tuple(np.round(s_ * v, 9) + 0.0) for v in TRIPLE_Q for s_ in (1, -1)}
    assert peaks == expected
    assert torch.allclose(flat[top], flat[top[0]].expand(6))       # C6-symmetric weights
    assert float(flat[top].sum()) > 0.8 * L * L                     # and they dominate
    assert float(flat[torch.argsort(flat, descending=True)[6]]) < 0.25 * float(flat[top[0]])
    # one skyrmion per 48-site magnetic cell, core down: n_sk = -1 (+1 reversed)
    assert float(skyrmion_number(s, g)) == pytest.approx(-1.0)
    assert float(skyrmion_number(-s, g)) == pytest.approx(1.0)
    for m in (0.0, 0.3, 1.0):
        assert float(skyrmion_number(triple_q(g.pos.numpy(), m=m, kind="neel"), g)) == \
            pytest.approx(-1.0)
    assert float(topological_charge(s, g)) == pytest.approx(-L * L / TRIPLE_Q_CELL_SITES)
    assert float(skyrmion_number(s, g, sites_per_magnetic_cell=L * L)) == \
        pytest.approx(-L * L / 48)
    # a graph works as positions, the core (r = 0) points down; bad input is refused
    assert np.allclose(spins_mod.triple_q(g)[0], [0.0, 0.0, -1.0])
    with pytest.raises(ValueError, match="kind"):
        spins_mod.triple_q(g, kind="spiral")
    with pytest.raises(ValueError, match="finite"):
        spins_mod.triple_q(np.zeros((4, 1)))


def test_structure_factor_conventions():
    g = graph("triangular", 6)
    b = reciprocal_vectors(g)
    a = np.array([[1.0, 0.0], [-0.5, math.sqrt(3) / 2]])
    assert np.allclose(a @ b.T, 2 * math.pi * np.eye(2))
    ferro = torch.zeros(36, 3, dtype=torch.float64)
    ferro[:, 2] = 1
    sq, q = structure_factor(ferro, g)
    i0 = torch.nonzero(q.norm(dim=-1) < 1e-12)
    assert i0.tolist() == [[3, 3]]                     # centered grid: q = 0 in the middle
    assert float(sq[3, 3]) == pytest.approx(36.0) and float(sq.sum()) == pytest.approx(36.0)
    sq_raw, q_raw = structure_factor(ferro, g, centered=False)
    assert float(sq_raw[0, 0]) == pytest.approx(36.0) and float(q_raw[0, 0].norm()) == 0.0
    sqc, _ = structure_factor(ferro, g, components=True)
    assert sqc.shape == (6, 6, 3) and float(sqc[3, 3, 2]) == pytest.approx(36.0)
    # batched and numpy inputs
    sqb, _ = structure_factor(torch.stack([ferro, ferro]), g)
    assert sqb.shape == (2, 6, 6)
    sqn, qn = structure_factor(ferro.numpy(), g)
    assert isinstance(sqn, np.ndarray) and isinstance(qn, np.ndarray)
    with pytest.raises(ValueError, match="one-site-per-cell"):
        structure_factor(random_spins(graph("honeycomb", 3).num_nodes, seed=0),
                         graph("honeycomb", 3))


# ----------------------------------------------------------------- magnetization, inputs
def test_magnetization():
    s = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    assert torch.allclose(magnetization(s), torch.tensor([0.5, 0.0, 0.5]))
    m = magnetization(np.stack([s.numpy(), -s.numpy()]))
    assert isinstance(m, np.ndarray) and m.shape == (2, 3)


def test_numpy_in_numpy_out():
    g = graph("square", 6)
    s = random_spins(36, seed=0).numpy()
    assert isinstance(topological_charge(s, g), np.ndarray)
    assert isinstance(charge_density(s, g), np.ndarray)


def test_bad_inputs():
    g = graph("square", 6)
    with pytest.raises(SpinError, match="36"):
        topological_charge(random_spins(30, seed=0), g)
    with pytest.raises(SpinError, match="unit vectors"):
        topological_charge(2 * random_spins(36, seed=0), g)
    bad = random_spins(36, seed=0)
    bad[3, 0] = float("nan")
    with pytest.raises(SpinError, match="NaN"):
        topological_charge(bad, g)
    with pytest.raises(SpinError, match="shape"):
        magnetization(torch.zeros(36, 2))
    with pytest.raises(ValueError, match=r"integer array \(T, 3\)"):
        solid_angles(random_spins(36, seed=0), torch.zeros(5, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="out of range"):
        solid_angles(random_spins(36, seed=0), torch.tensor([[0, 1, 99]]))
    with pytest.raises(ValueError, match="positive integer"):
        skyrmion_number(random_spins(36, seed=0), g, sites_per_magnetic_cell=0)
    with pytest.raises(ValueError, match="2D lattice graph"):
        triangulation(graph("cubic", 3))
