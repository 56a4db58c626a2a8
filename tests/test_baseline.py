"""The IFNN baseline (Zhang & Chern 2021): descriptor tables, invariance, field = -dE/dS."""
import numpy as np
import pytest
import torch

from ecnn_pyg.baseline import IFNN, descriptor_tables
from ecnn_pyg.graph import lattice_graph, rotation_permutations
from ecnn_pyg.nn import ModelInputError
from ecnn_pyg.testing import (assert_field_is_gradient, assert_rotation_equivariant,
                              assert_translation_equivariant, batch_error, random_rotation,
                              random_spins)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def graph():
    return lattice_graph("square", 6, {"t1": 1.0})


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return IFNN(hidden=[16, 8]).eval()


def test_descriptor_count():
    t = descriptor_tables("square", 26, 9)
    assert t.num_neighbors == 88
    assert t.num_shells == 15
    assert len(t.pairs) == 466          # C(29, 2) = 406 inner pairs + 60 centre-outer pairs
    assert len(t.chiral) == 88
    assert t.num_descriptors == 554
    assert IFNN(hidden=[8]).mlp[0].in_features == 554
    # shells: orbits of D4, ordered by distance
    d2 = (t.offsets ** 2).sum(1)
    assert sorted(np.bincount(t.shells).tolist()) == [4] * 8 + [8] * 7
    assert all(len(set(d2[t.shells == s])) == 1 for s in range(15))


def test_default_architecture_float64():
    m = IFNN()
    widths = [l.out_features for l in m.mlp if isinstance(l, torch.nn.Linear)]
    assert widths == [1024, 512, 256, 128, 64, 1]
    assert m.mlp[0].weight.dtype == torch.float64


def test_descriptors_spin_rotation_invariant(model, graph):
    s = random_spins(36, generator=torch.Generator().manual_seed(1))
    R = random_rotation(generator=torch.Generator().manual_seed(2))
    d0 = model.descriptors(graph, s)
    d1 = model.descriptors(graph, s @ R.T)
    assert d0.shape == (36, 554)
    torch.testing.assert_close(d1, d0, rtol=0, atol=1e-12)
    assert_rotation_equivariant(model, graph, s)


def test_descriptors_under_lattice_rotation(model, graph):
    """A lattice rotation permutes each site's descriptors (as multisets per kind)."""
    s = random_spins(36, generator=torch.Generator().manual_seed(3))
    d0 = model.descriptors(graph, s)
    for _, perm in rotation_permutations(graph):
        d1 = model.descriptors(graph, s[perm])
        for part in (slice(0, 466), slice(466, 554)):
            torch.testing.assert_close(d1[:, part].sort(1).values,
                                       d0[perm][:, part].sort(1).values, rtol=0, atol=1e-12)


def test_translation_and_batching(model, graph):
    s = random_spins(36, generator=torch.Generator().manual_seed(4))
    assert_translation_equivariant(model, graph, s)
    g2 = lattice_graph("square", [4, 6], {"t1": 1.0})
    s2 = random_spins(24, generator=torch.Generator().manual_seed(5))
    err = batch_error(model, [graph, g2], [s, s2])
    assert max(err.values()) < 1e-12


def test_field_is_minus_gradient(model, graph):
    s = random_spins(36, generator=torch.Generator().manual_seed(6))
    assert_field_is_gradient(model, graph, s, tol=1e-6, n_checks=8,
                             generator=torch.Generator().manual_seed(7))


def test_refuses_other_lattice(model):
    g = lattice_graph("triangular", 6, {"t1": 1.0})
    with pytest.raises(ModelInputError, match="lattice"):
        model(g, random_spins(36))
