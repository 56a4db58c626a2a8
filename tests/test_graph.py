"""Lattice graphs: edges, site order, boundaries, permutations, batching."""
import math

import networkx as nx
import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

import ecnn_pyg as ep
from ecnn_pyg import keys as K
from ecnn_pyg.ed import hopping_matrix
from ecnn_pyg.graph import PeriodicImageWarning
from ecnn_pyg.lattice import LatticeError

# lattice -> (size, expected degree, expected NN distance) with only t1
EXPECTED = {"square": (5, 4, 1.0), "triangular": (5, 6, 1.0), "honeycomb": (4, 3, 1 / math.sqrt(3)),
            "kagome": (4, 4, 0.5), "cubic": (4, 6, 1.0)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_degree_and_bond_length(name):
    size, degree, dist = EXPECTED[name]
    g = ep.lattice_graph(name, size)
    lat = ep.load_lattice(name)
    assert g.num_nodes == size ** lat.dim * lat.n_basis
    assert torch.all(torch.bincount(g.edge_index[1], minlength=g.num_nodes) == degree)
    assert torch.allclose(g[K.EDGE_VEC].norm(dim=1), torch.tensor(dist, dtype=torch.float64))
    # edge_vec is the minimum image vector: pos difference plus the cell shift
    src, dst = g.edge_index
    vec = g.pos[dst] - g.pos[src] + g[K.CELL_SHIFT].double() @ g.supercell[0]
    assert torch.allclose(vec, g[K.EDGE_VEC])
    # every edge has its reverse with the reverse bond type
    nb = len(lat.bonds) // 2
    fwd = {(int(a), int(b), int(t)) for a, b, t in zip(src, dst, g[K.BOND_TYPE])}
    for a, b, t in fwd:
        assert (b, a, (t + nb) % (2 * nb)) in fwd


def test_site_order_and_third_neighbours():
    g = ep.lattice_graph("triangular", (5, 6), {"t1": 1.0, "t3": -0.85})
    # site index i1 * L2 + i2 at position i1 a1 + i2 a2
    i1, i2 = 3, 5
    a1, a2 = np.array([1.0, 0.0]), np.array([-0.5, math.sqrt(3) / 2])
    assert np.allclose(g.pos[i1 * 6 + i2].numpy(), i1 * a1 + i2 * a2)
    assert torch.all(torch.bincount(g.edge_index[1]) == 12)       # 6 NN + 6 third neighbours
    t3 = g[K.HOPPING][g[K.BOND_SHELL] == 2]
    assert torch.allclose(t3, torch.tensor(-0.85, dtype=torch.float64))
    assert torch.allclose(g[K.EDGE_VEC][g[K.BOND_SHELL] == 2].norm(dim=1),
                          torch.tensor(2.0, dtype=torch.float64))


def test_open_boundaries_drop_wrapping_bonds():
    g = ep.lattice_graph("square", (3, 4), periodic=False)
    assert g.edge_index.shape[1] == 2 * (2 * 4 + 3 * 3)
    assert torch.all(g[K.CELL_SHIFT] == 0)
    gp = ep.lattice_graph("square", (3, 4), periodic=(True, False))
    assert gp.edge_index.shape[1] == 2 * (3 * 4 + 3 * 3)


def test_small_supercell_warns_or_refuses():
    with pytest.warns(PeriodicImageWarning, match="too small"):
        g = ep.lattice_graph("triangular", 2, {"t3": -0.85})
    assert (g.edge_index[0] == g.edge_index[1]).any()             # 2a bond returns home
    with pytest.raises(LatticeError, match="too small"):
        ep.lattice_graph("square", 2, min_image="error")


def test_point_groups():
    assert len(ep.load_lattice("square").point_group()) == 4
    assert len(ep.load_lattice("triangular").point_group()) == 6
    g = ep.lattice_graph("triangular", 6, {"t3": -0.85})
    rots = ep.rotation_permutations(g)
    assert len(rots) == 6
    # a rotation maps every bond of a shell onto a bond of the same shell
    pairs = {(int(a), int(b), int(s)) for a, b, s in zip(*g.edge_index, g[K.BOND_SHELL])}
    for _, perm in rots:
        inv = torch.argsort(perm)
        assert {(int(inv[a]), int(inv[b]), s) for a, b, s in pairs} == pairs
    # rectangular supercells keep only C2
    assert len(ep.rotation_permutations(ep.lattice_graph("square", (4, 6)))) == 2


def test_translation_permutation():
    g = ep.lattice_graph("square", (3, 5))
    perm = ep.translation_permutation(g, (1, 2))
    # new site at cell c holds the old spin from cell c - (1, 2)
    assert int(perm[1 * 5 + 2]) == 0
    assert sorted(perm.tolist()) == list(range(15))


def test_networkx_roundtrip_keeps_hamiltonian():
    g = ep.lattice_graph("honeycomb", 3)
    nxg = ep.to_networkx(g)
    assert nxg.number_of_edges() == g.edge_index.shape[1] // 2
    back = ep.from_networkx(nxg)
    assert np.allclose(hopping_matrix(back), hopping_matrix(g))


def test_custom_networkx_lattice():
    # Lieb lattice (3 x 3 cells, periodic) written by hand as a networkx graph
    L, G = 3, nx.Graph()
    def node(i, j, b):
        return (i % L, j % L, b)
    for i in range(L):
        for j in range(L):
            G.add_node(node(i, j, 0), pos=(i, j))
            G.add_node(node(i, j, 1), pos=(i + 0.5, j))
            G.add_node(node(i, j, 2), pos=(i, j + 0.5))
    for i in range(L):
        for j in range(L):
            G.add_edge(node(i, j, 0), node(i, j, 1), hopping=1.0, vec=(0.5, 0))
            G.add_edge(node(i, j, 1), node(i + 1, j, 0), hopping=1.0, vec=(0.5, 0))
            G.add_edge(node(i, j, 0), node(i, j, 2), hopping=1.0, vec=(0, 0.5))
            G.add_edge(node(i, j, 2), node(i, j + 1, 0), hopping=1.0, vec=(0, 0.5))
    g = ep.from_networkx(G, name="lieb")
    assert g.num_nodes == 27 and g.edge_index.shape[1] == 2 * 36
    assert int(g[K.BOND_TYPE].max()) + 1 == 4             # +-x, +-y
    # Lieb lattice: a flat band at zero energy, 1/3 of the states
    w = np.linalg.eigvalsh(hopping_matrix(g))
    assert np.sum(np.abs(w) < 1e-10) == 2 * L * L


def test_batching_different_lattices():
    lieb_like = ep.to_networkx(ep.lattice_graph("kagome", 2))
    gs = [ep.lattice_graph("square", 4), ep.lattice_graph("triangular", (5, 6), {"t3": -0.85}),
          ep.lattice_graph("honeycomb", 2, min_image="warn"), ep.from_networkx(lieb_like)]
    batch = Batch.from_data_list(gs)
    assert batch.num_graphs == 4 and batch.num_nodes == sum(g.num_nodes for g in gs)
    assert batch[K.LATTICE] == ["square", "triangular", "honeycomb", "custom"]
    for i, g in enumerate(gs):
        back = batch.get_example(i)
        assert torch.equal(back.edge_index, g.edge_index)
        assert torch.equal(back[K.BOND_TYPE], g[K.BOND_TYPE])
    # the batch is the disjoint union: its hopping matrix is block diagonal
    h = hopping_matrix(batch)
    off = 0
    for g in gs:
        n = 2 * g.num_nodes
        assert np.allclose(h[off:off + n, off:off + n], hopping_matrix(g))
        assert np.allclose(h[off:off + n, off + n:], 0)
        off += n


@pytest.mark.parametrize("lattice,size,hop", [("square", 2, {}), ("square", (1, 3), {}),
                                              ("triangular", (4, 5), {"t3": -0.85}),
                                              ("triangular", 2, {"t3": -0.85}),
                                              ("kagome", 1, {}), ("honeycomb", 1, {}),
                                              ("square", (2, 5), {"t2": 0.5})])
def test_periodic_image_counts_match_the_edges(lattice, size, hop):
    """The per-bond-class image check counts exactly the self-loops and repeated pairs."""
    with pytest.warns(PeriodicImageWarning) as rec:
        g = ep.lattice_graph(lattice, size, hop)
    src, dst = g.edge_index.numpy()
    pairs = src * g.num_nodes + dst
    msg = str(rec[0].message)
    assert f"{int((src == dst).sum())} bonds return" in msg
    assert f"{len(pairs) - len(np.unique(pairs))} site pairs" in msg
