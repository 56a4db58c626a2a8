"""Exact diagonalization: analytic limits, Hellmann-Feynman field, symmetries, bad input."""
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import ecnn_pyg as ep
from ecnn_pyg.ed import EDError, KondoED
from ecnn_pyg.spins import SpinError, ferromagnet, random_spins


def bloch_bands(lattice, size, hoppings):
    """Analytic tight-binding dispersion eps(k) = -sum_bonds 2 t cos(k.d) on the supercell momenta."""
    lat = ep.load_lattice(lattice)
    t = lat.hopping_values(hoppings)
    m = np.stack(np.meshgrid(*[np.arange(L) for L in size], indexing="ij"), -1).reshape(-1, len(size))
    eps = np.zeros(len(m))
    for b in lat.bonds[:len(lat.bonds) // 2]:
        phase = 2 * np.pi * (m / np.array(size)) @ np.array(b.offset)
        eps -= 2 * t[b.shell] * np.cos(phase)
    return eps


CASES = [("square", (6, 6), {"t1": 1.0}), ("square", (4, 5), {"t1": 1.0, "t2": 0.3}),
         ("triangular", (6, 6), {"t1": 1.0, "t3": -0.85}),
         ("triangular", (2, 2), {"t1": 1.0, "t3": -0.85})]          # bonds meet their images


@pytest.mark.filterwarnings("ignore::ecnn_pyg.graph.PeriodicImageWarning")
@pytest.mark.parametrize("lattice,size,hop", CASES)
def test_J0_is_tight_binding_band_sum(lattice, size, hop, rng):
    g = ep.lattice_graph(lattice, size, hop)
    n = g.num_nodes
    levels = np.sort(np.repeat(bloch_bands(lattice, size, hop), 2))      # spin degenerate
    spins = random_spins(n, generator=rng)
    for ne in (0, n // 2, n, 2 * n - 1):
        assert KondoED(g, J=0.0, electrons=ne).energy(spins) == pytest.approx(levels[:ne].sum(), abs=1e-9)
    mu = -0.37
    assert KondoED(g, J=0.0, mu=mu).energy(spins) == pytest.approx((levels[levels < mu] - mu).sum(), abs=1e-9)


@pytest.mark.filterwarnings("ignore:the N_e-th")
@pytest.mark.parametrize("lattice,size,hop", CASES[:3])
def test_ferromagnet_bands_split_by_J(lattice, size, hop):
    J, g = 3.0, ep.lattice_graph(lattice, size, hop)
    eps = bloch_bands(lattice, size, hop)
    direction = np.array([0.3, -0.5, 0.8])
    ed = KondoED(g, J=J, electrons=g.num_nodes)
    w = np.linalg.eigvalsh(ed.hamiltonian(ferromagnet(g.num_nodes, direction)))
    assert np.allclose(w, np.sort(np.r_[eps - J / 2, eps + J / 2]), atol=1e-10)
    # majority electrons (spin parallel to S for J > 0) fill the lower band: <s> || S, so B || S
    e, b = ed.energy_field(ferromagnet(g.num_nodes, direction))
    assert e == pytest.approx(np.sort(np.r_[eps - J / 2, eps + J / 2])[:g.num_nodes].sum())
    bhat = b / np.linalg.norm(b, axis=1, keepdims=True)
    assert np.allclose(bhat, direction / np.linalg.norm(direction), atol=1e-10)


ENSEMBLES = [dict(electrons=30), dict(mu=-1.2), dict(mu=-1.2, temperature=0.2),
             dict(electrons=41, zeeman=0.3)]


@pytest.mark.parametrize("kw", ENSEMBLES)
def test_field_is_minus_gradient(kw, rng):
    g = ep.lattice_graph("triangular", (5, 6), {"t1": 1.0, "t3": -0.5})
    ed = KondoED(g, J=2.5, **kw)
    s = random_spins(g.num_nodes, generator=rng)
    _, b = ed.energy_field(s)
    h = 1e-5
    for site in rng.choice(g.num_nodes, 4, replace=False):
        # two tangent directions at the site; rotate the spin by +-h about them
        u = np.cross(s[site], rng.standard_normal(3)); u /= np.linalg.norm(u)
        for d in (u, np.cross(s[site], u)):
            sp, sm = s.copy(), s.copy()
            sp[site] = math.cos(h) * s[site] + math.sin(h) * d
            sm[site] = math.cos(h) * s[site] - math.sin(h) * d
            grad = (ed.energy(sp) - ed.energy(sm)) / (2 * h)
            assert -grad == pytest.approx(b[site] @ d, abs=2e-7)


def test_field_is_full_vector_J_s():
    # one site, one electron: the electron aligns with the spin (J > 0): B = J <s> = (J/2) S
    g = ep.from_networkx(__import__("networkx").path_graph(2))
    ed = KondoED(g, J=4.0, electrons=1)
    s = np.array([[0.0, 0.6, 0.8], [0.0, 0.6, 0.8]])
    e, b = ed.energy_field(s)
    # bonding orbital of the majority band: -t - J/2, electron spread over both sites
    assert e == pytest.approx(-1.0 - 2.0)
    assert np.allclose(b, 0.5 * 4.0 * 0.5 * s)


@pytest.mark.parametrize("kw", ENSEMBLES[:3])
def test_rotation_translation_time_reversal(kw, rng):
    g = ep.lattice_graph("square", (4, 6), {"t1": 1.0, "t2": -0.3})
    ed = KondoED(g, J=5.0, **kw)
    s = random_spins(g.num_nodes, generator=rng)
    e, b = ed.energy_field(s)
    R = Rotation.random(random_state=7).as_matrix()
    e_r, b_r = ed.energy_field(s @ R.T)
    assert e_r == pytest.approx(e, abs=1e-9)
    assert np.allclose(b_r, b @ R.T, atol=1e-9)
    perm = ep.translation_permutation(g, (1, 3)).numpy()
    e_t, b_t = ed.energy_field(s[perm])
    assert e_t == pytest.approx(e, abs=1e-9) and np.allclose(b_t, b[perm], atol=1e-9)
    e_m, b_m = ed.energy_field(-s)
    assert e_m == pytest.approx(e, abs=1e-9)
    assert np.allclose(b_m, -b, atol=1e-9)       # B is odd: E(-S) = E(S) => B(-S) = -B(S)


def test_spin_mirror_makes_skyrmion_and_antiskyrmion_degenerate(rng):
    """E(S_x -> -S_x) = E(S) (rotation by pi about x times time reversal), with Zeeman too;
    the mirror flips the topological charge, so skyrmion and antiskyrmion crystals are
    degenerate (README, tutorial 4)."""
    from ecnn_pyg.observables import topological_charge
    from ecnn_pyg.spins import triple_q
    g = ep.lattice_graph("triangular", 12, {"t1": 1.0, "t3": -0.85})
    mirror = np.diag([-1.0, 1.0, 1.0])
    ed = KondoED(g, J=-1.0, mu=-3.5, zeeman=0.005)
    for s in (random_spins(g.num_nodes, generator=rng), triple_q(g, m=0.5)):
        e, b = ed.energy_field(s)
        e_m, b_m = ed.energy_field(s @ mirror)
        assert e_m == pytest.approx(e, abs=1e-9)
        assert np.allclose(b_m, b @ mirror, atol=1e-9)
    s = triple_q(g, m=0.5)
    assert float(topological_charge(s, g)) == pytest.approx(-3.0)           # 3 cells, core down
    assert float(topological_charge(s @ mirror, g)) == pytest.approx(3.0)


def test_point_group_invariance(rng):
    g = ep.lattice_graph("triangular", 6, {"t1": 1.0, "t3": -0.85})
    ed = KondoED(g, J=-1.0, mu=-3.5)
    s = random_spins(g.num_nodes, generator=rng)
    e, b = ed.energy_field(s)
    for _, perm in ep.rotation_permutations(g):
        e_p, b_p = ed.energy_field(s[perm.numpy()])
        assert e_p == pytest.approx(e, abs=1e-9) and np.allclose(b_p, b[perm.numpy()], atol=1e-9)


def test_canonical_equals_grand_canonical_in_gap(rng):
    g = ep.lattice_graph("square", 6)
    s = random_spins(g.num_nodes, generator=rng)
    ne = 31
    can = KondoED(g, J=7.0, electrons=ne)
    w = np.linalg.eigvalsh(can.hamiltonian(s))
    mu = 0.5 * (w[ne - 1] + w[ne])
    e_c, b_c = can.energy_field(s)
    e_g, b_g = KondoED(g, J=7.0, mu=mu).energy_field(s)
    assert e_g == pytest.approx(e_c - mu * ne, abs=1e-9)
    assert np.allclose(b_g, b_c, atol=1e-9)
    # the Fermi function at low electron temperature goes to the T = 0 result
    e_t, b_t = KondoED(g, J=7.0, mu=mu, temperature=1e-4).energy_field(s)
    assert e_t == pytest.approx(e_g, abs=1e-6) and np.allclose(b_t, b_g, atol=1e-6)


def test_zeeman_term(rng):
    g = ep.lattice_graph("square", 4)
    s = random_spins(g.num_nodes, generator=rng)
    e0, b0 = KondoED(g, J=2.0, electrons=10).energy_field(s)
    e1, b1 = KondoED(g, J=2.0, electrons=10, zeeman=0.7).energy_field(s)
    assert e1 == pytest.approx(e0 - 0.7 * s[:, 2].sum())
    assert np.allclose(b1 - b0, [0, 0, 0.7])


def test_batch_and_lattice_shape(rng):
    g = ep.lattice_graph("square", (3, 4))
    ed = KondoED(g, J=3.0, filling=0.5)
    s = random_spins(12, 3, generator=rng)
    e, b = ed.energy_field(s)
    e2, b2 = ed.energy_field(s.reshape(3, 3, 4, 3))
    assert e.shape == (3,) and b.shape == (3, 12, 3)
    assert np.allclose(e, e2) and np.allclose(b, b2)
    e1, b1 = ed.energy_field(s[1])
    assert e1 == pytest.approx(e[1]) and np.allclose(b1, b[1])


TWIST_CASES = [dict(mu=-3.5), dict(mu=-3.5, temperature=0.05), dict(electrons=20),
               dict(mu=-2.0, zeeman=0.01)]


@pytest.mark.parametrize("kw", TWIST_CASES)
def test_twisted_sectors_equal_the_tiled_lattice(kw, rng):
    """twists=(2, 3) on 6 x 6 is the ED of the 12 x 18 lattice with the configuration tiled."""
    hop = {"t1": 1.0, "t3": -0.85}
    g, big = ep.lattice_graph("triangular", (6, 6), hop), ep.lattice_graph("triangular", (12, 18), hop)
    s = random_spins(36, generator=rng).reshape(6, 6, 3)
    tiled = s[np.arange(12)[:, None] % 6, np.arange(18)[None, :] % 6].reshape(-1, 3)
    kw_big = dict(kw, electrons=6 * kw["electrons"]) if "electrons" in kw else kw
    e, b = KondoED(g, J=-1.0, twists=(2, 3), **kw).energy_field(s.reshape(-1, 3))
    e_big, b_big = KondoED(big, J=-1.0, **kw_big).energy_field(tiled)
    assert e == pytest.approx(e_big / 6, abs=1e-11)
    np.testing.assert_allclose(b, b_big.reshape(12, 18, 3)[:6, :6].reshape(-1, 3), atol=1e-12)
    # one sector is the plain supercell; the twists change the answer
    plain = KondoED(g, J=-1.0, **kw)
    assert KondoED(g, J=-1.0, twists=1, **kw).energy(s) == pytest.approx(plain.energy(s), abs=1e-12)
    assert abs(e - plain.energy(s)) > 1e-3


def test_bad_input(rng):
    g = ep.lattice_graph("square", 4)
    ed = KondoED(g, J=1.0, electrons=8)
    with pytest.raises(SpinError, match=r"\(n_sites=16, 3\)"):
        ed.energy(np.ones((15, 3)))
    with pytest.raises(SpinError, match="must have shape"):
        ed.energy(np.ones((16, 2)))
    s = random_spins(16, generator=rng)
    s[3] = np.nan
    with pytest.raises(SpinError, match="NaN.*site 3"):
        ed.energy(s)
    s = random_spins(16, generator=rng)
    s[5] *= 1.1
    with pytest.raises(SpinError, match="unit vectors.*site 5"):
        ed.energy(s)
    with pytest.raises(EDError, match=r"integer in \[0, 32\]"):
        KondoED(g, J=1.0, electrons=33)
    with pytest.raises(EDError, match="must give an integer"):
        KondoED(g, J=1.0, filling=0.31)
    with pytest.raises(EDError, match="exactly one"):
        KondoED(g, J=1.0, electrons=3, mu=0.0)
    with pytest.raises(EDError, match="temperature must be >= 0"):
        KondoED(g, J=1.0, mu=0.0, temperature=-1)
    with pytest.raises(EDError, match="grand canonical"):
        KondoED(g, J=1.0, electrons=4, temperature=0.1)
    with pytest.raises(EDError, match="finite"):
        KondoED(g, J=float("nan"), electrons=4)
    with pytest.raises(EDError, match="twists must be 2 positive integers"):
        KondoED(g, J=1.0, electrons=4, twists=(2, 0))
    with pytest.raises(EDError, match="twists must be 2 positive integers"):
        KondoED(g, J=1.0, electrons=4, twists=(2, 2, 2))
