"""Tests of the equivariant network (ecnn_pyg.nn) with the helpers of ecnn_pyg.testing."""
import networkx as nx
import pytest
import torch

import ecnn_pyg
from ecnn_pyg import keys as K
from ecnn_pyg import testing as T
from ecnn_pyg.nn import (ECNN, DEFAULT_CONFIG, ModelInputError, NormActivation, NormSwish,
                         SelfInteraction, SpinConv, build_neighbors)

HOP = {"square": {"t1": 1.0}, "triangular": {"t1": 1.0, "t3": -0.85}}


def custom_graph():
    """A small open custom lattice: a 3x3 square patch with one diagonal."""
    g = nx.Graph()
    for i in range(3):
        for j in range(3):
            g.add_node((i, j), pos=(float(i), float(j)))
    for i in range(3):
        for j in range(3):
            if i < 2:
                g.add_edge((i, j), (i + 1, j), hopping=1.0)
            if j < 2:
                g.add_edge((i, j), (i, j + 1), hopping=1.0)
    g.add_edge((0, 0), (1, 1), hopping=0.5)
    return ecnn_pyg.from_networkx(g)


def make(lattice, L=6, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    if lattice == "custom":
        data = custom_graph()
        model = ECNN(lattice=None, num_bond_types=int(data[K.BOND_TYPE].max()) + 1,
                     num_shells=int(data[K.BOND_SHELL].max()) + 1, **kw)
    else:
        data = ecnn_pyg.lattice_graph(lattice, L, HOP[lattice])
        model = ECNN(lattice=lattice, **kw)
    model = model.to(dtype)
    spins = T.random_spins(data.num_nodes, dtype=dtype, generator=torch.Generator().manual_seed(seed + 1))
    return model, data, spins


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("lattice", ["square", "triangular", "custom"])
def test_rotation_equivariance(lattice, dtype):
    model, data, spins = make(lattice, dtype=dtype)
    err = T.assert_rotation_equivariant(model, data, spins)
    assert set(err) == {K.ENERGY, K.LOCAL_ENERGY, K.FIELD}


@pytest.mark.parametrize("lattice", ["square", "triangular"])
def test_translation_permutes_outputs(lattice):
    model, data, spins = make(lattice)
    T.assert_translation_equivariant(model, data, spins)


@pytest.mark.parametrize("lattice", ["square", "triangular"])
def test_periodic_cell_equals_tiled_lattice(lattice):
    """Message passing on a periodic 6 x 6 cell equals it on the 18 x 12 lattice tiling it.

    (Even though 4 blocks reach beyond the cell: the basis of training on a small cell with
    labels of the tiled lattice, experiments/triangular_fig4/30_train_stage4.yaml.)
    """
    model, data, spins = make(lattice, L=6)
    big = ecnn_pyg.lattice_graph(lattice, (18, 12), HOP[lattice])
    tiled = spins.view(6, 6, 3)[torch.arange(18)[:, None] % 6, torch.arange(12)[None, :] % 6]
    out, out_big = model(data, spins), model(big, tiled.reshape(-1, 3))
    assert torch.allclose(out[K.ENERGY].sum() * 6, out_big[K.ENERGY].sum(), rtol=1e-12)
    torch.testing.assert_close(out[K.FIELD], out_big[K.FIELD].view(18, 12, 3)[:6, :6].reshape(-1, 3),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lattice,order", [("square", 4), ("triangular", 6)])
def test_point_group(lattice, order):
    assert len(ecnn_pyg.rotation_permutations(ecnn_pyg.lattice_graph(lattice, 6, HOP[lattice]))) \
        == order
    model, data, spins = make(lattice, weight_sharing="shell")
    err = T.point_group_error(model, data, spins)
    assert max(err.values()) < 1e-10, err
    model, data, spins = make(lattice, weight_sharing="type")
    err_type = T.point_group_error(model, data, spins)
    print(f"{lattice}: C{order} error with per-bond-type weights {err_type}, "
          f"with shell-shared weights {err}")
    assert err_type[K.ENERGY] > 1e-6   # per-type weights break the point group in general


@pytest.mark.parametrize("lattice", ["square", "triangular", "custom"])
def test_field_is_minus_gradient(lattice):
    model, data, spins = make(lattice, L=5, channels=4, num_blocks=2)
    T.assert_field_is_gradient(model, data, spins, tol=1e-7,
                               generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("num_blocks", [1, 2])
def test_field_is_strictly_local(num_blocks):
    # num_blocks + 1 convolutions of one hop each: the field at a site depends on the spins
    # within 2 (num_blocks + 1) hops and on none beyond (experiments/triangular_accuracy/field_locality.py)
    L, reach = 16, 2 * (num_blocks + 1)
    model, data, spins = make("square", L=L, channels=4, num_blocks=num_blocks)
    i, j = torch.arange(L * L) // L, torch.arange(L * L) % L
    hops = torch.minimum(i, L - i) + torch.minimum(j, L - j)       # from site 0, periodic
    other = T.random_spins(L * L, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    b0 = model(data, spins)[K.FIELD][0]
    far = torch.where((hops > reach)[:, None], other, spins)
    torch.testing.assert_close(model(data, far)[K.FIELD][0], b0, rtol=0, atol=1e-13)
    edge = torch.where((hops == reach)[:, None], other, spins)
    assert (model(data, edge)[K.FIELD][0] - b0).abs().max() > 1e-6


def test_batch_equals_per_graph():
    torch.manual_seed(0)
    model = ECNN(lattice="square").double()
    graphs = [ecnn_pyg.lattice_graph("square", 4, HOP["square"]),
              ecnn_pyg.lattice_graph("square", (6, 5), HOP["square"])]
    spins = [T.random_spins(g.num_nodes) for g in graphs]
    err = T.batch_error(model, graphs, spins)
    assert max(err.values()) < 1e-12, err
    # custom graphs (the generic gather path) batch too
    model = ECNN(lattice=None, num_bond_types=8).double()
    err = T.batch_error(model, [custom_graph(), custom_graph()], [T.random_spins(9)] * 2)
    assert max(err.values()) < 1e-12, err


def test_time_reversal_option():
    model, data, spins = make("triangular", time_reversal=True)
    assert str(model.irreps_spin) == "1x1o"
    err = T.time_reversal_error(model, data, spins)
    assert max(err.values()) < 1e-12, err
    T.assert_rotation_equivariant(model, data, spins)
    model, data, spins = make("triangular")
    assert T.time_reversal_error(model, data, spins)[K.ENERGY] > 1e-6


def test_negative_control_breaks_equivariance():
    model, data, spins = make("square")

    def zeeman_like(graph, s):           # an S_z term: not rotation invariant
        out = model(graph, s)
        return {K.ENERGY: out[K.ENERGY] + 0.1 * s[:, 2].sum(), K.FIELD: out[K.FIELD] - 0.1 *
                torch.tensor([0.0, 0.0, 1.0], dtype=s.dtype)}
    with pytest.raises(AssertionError, match="not rotation equivariant"):
        T.assert_rotation_equivariant(zeeman_like, data, spins)
    # a deliberately broken layer: random tensor-product coefficients
    broken, _, _ = make("square")
    conv = broken.blocks[1].conv
    conv._tp64 = [torch.randn_like(a) for a in conv._tp64]
    conv._tp_cache.clear()
    with pytest.raises(AssertionError, match="not rotation equivariant"):
        T.assert_rotation_equivariant(broken, data, spins)
    # a translation-breaking model fails the translation check
    with pytest.raises(AssertionError, match="not translation equivariant"):
        T.assert_translation_equivariant(
            lambda g, s: {K.ENERGY: (s[:, 0] * torch.arange(len(s))).sum()[None]}, data, spins)


@pytest.mark.parametrize("lattice", ["square", "triangular", "custom"])
def test_fused_equals_propagate(lattice):
    model, data, spins = make(lattice, L=5)
    a, b = model(data, spins), model(data, spins, fused=False)
    for key in (K.ENERGY, K.LOCAL_ENERGY, K.FIELD):
        assert torch.allclose(a[key], b[key], atol=1e-12), key


def test_grid_conv_equals_gather():
    torch.manual_seed(0)
    data = ecnn_pyg.lattice_graph("triangular", (6, 5), HOP["triangular"])
    grid = build_neighbors(data.edge_index, data[K.BOND_TYPE], data.num_nodes, data[K.CELL],
                           data[K.SIZE])
    gather = build_neighbors(data.edge_index, data[K.BOND_TYPE], data.num_nodes,
                             allow_grid=False)
    assert grid.grid == (6, 5) and gather.grid is None and not gather.padded
    conv = SpinConv(3, 5, 2, 2, num_weights=18).double()
    x = [torch.randn(2 * l + 1, 3, data.num_nodes, dtype=torch.float64) for l in range(3)]
    sh = torch.randn(3, data.num_nodes, dtype=torch.float64)
    assert torch.equal(grid.weight, grid.slot_type + 1)
    for a, b, c in zip(conv(x, sh, grid), conv(x, sh, gather), conv(x, sh, gather.to_edges())):
        assert torch.allclose(a, b, atol=1e-12) and torch.allclose(a, c, atol=1e-12)


def test_training_field_loss_backpropagates():
    model, data, spins = make("square", L=4, dtype=torch.float32)
    model.train()
    out = model(data, spins)
    assert out[K.FIELD].requires_grad
    loss = out[K.FIELD].pow(2).mean() + out[K.ENERGY].pow(2).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.numel())
    assert model.blocks[0].conv.weight[1].grad.abs().sum() > 0
    model.eval()
    assert not model(data, spins)[K.FIELD].requires_grad


def test_shapes_and_repr():
    model, data, spins = make("triangular", L=5, dtype=torch.float32)
    out = model(data, spins)
    n = data.num_nodes
    assert out[K.ENERGY].shape == (1,) and out[K.LOCAL_ENERGY].shape == (n,)
    assert out[K.FIELD].shape == (n, 3) and out[K.FIELD].dtype == torch.float32
    assert torch.allclose(out[K.ENERGY], out[K.LOCAL_ENERGY].sum())
    conv = model.blocks[1].conv
    assert repr(conv) == ("SpinConv(8x0e+8x1e+8x2e -> 8x0e+8x1e+8x2e, filter=1x0e+1x1e, "
                          "paths=9, weights=18)")
    assert "NormSwish(8x0e+8x1e+8x2e, swish)" in repr(model.blocks[0].act)
    assert repr(SelfInteraction(8, 4)) == "SelfInteraction(8x0e -> 4x0e)"
    assert "lattice='triangular'" in repr(model)
    assert len(model.blocks) == 4 and not model.blocks[0].skip and model.blocks[1].skip
    for act in (NormSwish(2, 2), NormActivation(2, 2)):
        y = act([torch.randn(1, 2, 5), torch.randn(3, 2, 5), torch.randn(5, 2, 5)])
        assert [t.shape for t in y] == [(1, 2, 5), (3, 2, 5), (5, 2, 5)]
    assert repr(NormActivation(2, 1)) == "NormActivation(2x0e+2x1e, SiLU, bias=False)"
    assert out[K.ENERGY].shape == model(data, spins.double(), compute_field=False)[K.ENERGY].shape
    conv.reset_parameters()


def test_bad_inputs():
    model, data, spins = make("square", L=4)
    with pytest.raises(ModelInputError, match=r"\(16, 3\)"):
        model(data, spins[:, :2])
    with pytest.raises(ModelInputError, match=r"\(16, 3\)"):
        model(data, spins[:-1])
    tri = ecnn_pyg.lattice_graph("triangular", 5, HOP["triangular"])
    with pytest.raises(ModelInputError, match="8 bond types.*'triangular' with 18"):
        model(tri, T.random_spins(tri.num_nodes))
    small = ECNN(lattice=None, num_bond_types=2).double()
    with pytest.raises(ModelInputError, match="2 bond types"):
        small(custom_graph(), T.random_spins(9))
    with pytest.raises(ValueError, match="unknown ECNN config keys"):
        ECNN.from_config({"chanels": 8})
    with pytest.raises(ValueError, match="weight_sharing"):
        ECNN(weight_sharing="offset")


def test_config_and_yaml(tmp_path):
    model = ECNN.from_yaml("configs/model_paper.yaml")
    cfg = model.config
    assert cfg["channels"] == 8 and cfg["lmax"] == 2 and cfg["num_blocks"] == 4
    assert cfg["num_bond_types"] == 8 and cfg["lattice"] == "square"
    assert set(cfg) == set(DEFAULT_CONFIG)
    again = ECNN.from_config(cfg)
    assert sum(p.numel() for p in again.parameters()) == sum(p.numel() for p in model.parameters())
    shell = ECNN.from_config(lattice="triangular", weight_sharing="shell", channels=4)
    assert shell.blocks[1].conv.weight[0].shape[0] == 1 + 3


def test_fan_in_is_the_neighbourhood_whatever_the_weight_sharing():
    """A site sums itself and one neighbour per bond type (18 on the triangular lattice), also
    when the bonds of a shell share one weight: normalised by 1 + 3 shells instead, a
    shell-shared network started 50 times too large and never trained at lr 0.01."""
    for sharing in ("type", "shell"):
        model = ECNN(lattice="triangular", weight_sharing=sharing)
        convs = [b.conv for b in model.blocks] + [model.output.conv]
        assert {c.avg_num_neighbors for c in convs} == {19.0}
    custom = ECNN(lattice=None, num_shells=2, weight_sharing="shell")    # no bond types known
    assert custom.blocks[0].conv.avg_num_neighbors == 3.0
    assert ECNN(lattice="square", neighborhood="paper").blocks[0].conv.avg_num_neighbors == 9.0
    assert ECNN(lattice="triangular", weight_sharing="shell",
                avg_num_neighbors=7.0).blocks[0].conv.avg_num_neighbors == 7.0
    # the output of a shell-shared network at initialisation is of the labels' size
    model, data, spins = make("triangular", L=12, weight_sharing="shell", energy_scale=0.05)
    assert float(model(data, spins)[K.FIELD].detach().pow(2).mean().sqrt()) < 0.2


def test_field_check_catches_a_wrong_field():
    model, data, spins = make("square", L=4, channels=2, num_blocks=1)

    def wrong(graph, s):
        out = model(graph, s)
        return {K.ENERGY: out[K.ENERGY], K.FIELD: 1.1 * out[K.FIELD]}
    with pytest.raises(AssertionError, match="not -dE/dS"):
        T.assert_field_is_gradient(wrong, data, spins, generator=torch.Generator().manual_seed(0))


def test_field_under_no_grad():
    model, data, spins = make("square", L=4, channels=2, num_blocks=1)
    with torch.no_grad():
        out = model(data, spins)
    assert out[K.FIELD].shape == (16, 3) and not out[K.FIELD].requires_grad


def test_blocked_tensor_product_matches(monkeypatch):
    import ecnn_pyg.nn._tp as tp
    model, data, spins = make("triangular", L=5, channels=3, num_blocks=2)
    ref = model(data, spins)
    monkeypatch.setattr(tp, "BLOCK", 7)          # blocks that straddle channels
    out = model(data, spins)
    for key in (K.ENERGY, K.FIELD):
        assert torch.allclose(out[key], ref[key], atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("lattice", ["square", "triangular", "custom"])
def test_cuda_matches_cpu(lattice):
    """Energies and fields on a CUDA device equal the CPU ones (float64), for the grid
    path (periodic Bravais lattices), the gather path (custom graph) and a batch."""
    from torch_geometric.data import Batch
    model, data, spins = make(lattice)
    cpu = model(data, spins)
    gpu_model = model.to("cuda")
    gpu = gpu_model(data.to("cuda"), spins.to("cuda"))
    for key in (K.ENERGY, K.LOCAL_ENERGY, K.FIELD):
        assert gpu[key].is_cuda
        assert torch.allclose(gpu[key].cpu(), cpu[key], atol=1e-10, rtol=1e-10), key
    model.cpu()
    batch = Batch.from_data_list([data.cpu(), data.cpu()])
    both = torch.cat([spins, -spins])
    ref = model(batch, both)
    out = model.to("cuda")(batch.to("cuda"), both.to("cuda"))
    assert torch.allclose(out[K.FIELD].cpu(), ref[K.FIELD], atol=1e-10, rtol=1e-10)
    assert torch.allclose(out[K.ENERGY].cpu(), ref[K.ENERGY], atol=1e-10, rtol=1e-10)


# ------------------------------------------------ the published architecture (ecnn4klm)

PAPER = dict(neighborhood="paper", activation="norm_nobias", residual="before_activation",
             sh_normalization="integral")


@pytest.mark.parametrize("lattice", ["square", "triangular"])
def test_paper_architecture_symmetries(lattice):
    model, data, spins = make(lattice, **PAPER)
    assert model.blocks[0].conv.weight[0].shape[0] == {"square": 9, "triangular": 13}[lattice]
    T.assert_rotation_equivariant(model, data, spins)
    T.assert_translation_equivariant(model, data, spins)
    a, b = model(data, spins), model(data, spins, fused=False)
    for key in (K.ENERGY, K.LOCAL_ENERGY, K.FIELD):
        assert torch.allclose(a[key], b[key], atol=1e-12), key
    T.assert_field_is_gradient(model, data, spins, tol=1e-7,
                               generator=torch.Generator().manual_seed(3))


@pytest.mark.filterwarnings("ignore::ecnn_pyg.graph.PeriodicImageWarning")   # the 2 x 3 cell
def test_paper_architecture_batches_and_grid():
    torch.manual_seed(0)
    model = ECNN(lattice="triangular", **PAPER).double()
    graphs = [ecnn_pyg.lattice_graph("triangular", 5, HOP["triangular"]),
              ecnn_pyg.lattice_graph("triangular", (6, 5), HOP["triangular"])]
    err = T.batch_error(model, graphs, [T.random_spins(g.num_nodes) for g in graphs])
    assert max(err.values()) < 1e-12, err
    # a 2 x 3 cell, where the offsets of 2 cells wrap around, equals the 6 x 6 lattice tiling it
    cell = ecnn_pyg.lattice_graph("triangular", (2, 3), {"t1": 1.0})
    big = ecnn_pyg.lattice_graph("triangular", (6, 6), {"t1": 1.0})
    spins = T.random_spins(6)
    tiled = spins.view(2, 3, 3)[torch.arange(6)[:, None] % 2, torch.arange(6)[None, :] % 3]
    out, out_big = model(cell, spins), model(big, tiled.reshape(-1, 3))
    assert model.adjacency(cell).grid == (2, 3)
    torch.testing.assert_close(out[K.ENERGY] * 6, out_big[K.ENERGY], rtol=1e-12, atol=0)
    torch.testing.assert_close(out[K.FIELD], out_big[K.FIELD].view(6, 6, 3)[:2, :3].reshape(-1, 3),
                               rtol=1e-12, atol=1e-12)


def test_paper_neighborhood_slots():
    """Slot k of site (i1, i2) holds site (i1 + d1, i2 + d2) mod L, one weight per slot,
    independent of the graph's hoppings."""
    from ecnn_pyg.nn import PAPER_NEIGHBORHOODS, offset_neighbors
    for lattice, hop in (("square", {"t1": 1.0, "t2": 0.5}), ("triangular", {"t1": 1.0})):
        data = ecnn_pyg.lattice_graph(lattice, (5, 4), hop)
        model = ECNN(lattice=lattice, **PAPER)
        nb = model.adjacency(data)
        off = PAPER_NEIGHBORHOODS[lattice]
        assert nb.grid == (5, 4) and torch.equal(nb.weight, torch.arange(len(off)))
        for k, (d1, d2) in enumerate(off):
            for i1, i2 in ((0, 0), (4, 3), (2, 1)):
                assert int(nb.index[k, i1 * 4 + i2]) == ((i1 + d1) % 5) * 4 + (i2 + d2) % 4
    assert PAPER_NEIGHBORHOODS["square"][:5] == ((0, 0),) * 5
    assert set(PAPER_NEIGHBORHOODS["triangular"][7:]) == \
        {(2 * a, 2 * b) for a, b in PAPER_NEIGHBORHOODS["triangular"][1:7]}
    # rows of a batch index their own graph
    cell = torch.tensor([[0, 0], [0, 1], [0, 0], [1, 0]])
    nb = offset_neighbors(cell, torch.tensor([[1, 2], [2, 1]]), [(0, 1), (1, 0)],
                          torch.tensor([0, 2, 4]))
    assert nb.grid is None and nb.index.tolist() == [[1, 0, 2, 3], [0, 1, 3, 2]]
    with pytest.raises(ValueError, match="row-major"):
        offset_neighbors(cell.flip(0), torch.tensor([[1, 2], [2, 1]]), [(0, 1)],
                         torch.tensor([0, 2, 4]))
    with pytest.raises(ValueError, match="one site per cell"):
        offset_neighbors(cell, torch.tensor([[3, 3]]), [(0, 1)])


def test_paper_architecture_options_refused():
    with pytest.raises(ValueError, match="neighborhood='paper' is defined for the lattices"):
        ECNN(lattice="honeycomb", neighborhood="paper")
    with pytest.raises(ValueError, match="weight_sharing='shell' applies to"):
        ECNN(lattice="square", neighborhood="paper", weight_sharing="shell")
    for key, bad in (("activation", "relu"), ("residual", "inside"),
                     ("sh_normalization", "norm"), ("neighborhood", "ring")):
        with pytest.raises(ValueError, match=f"{key} must be one of"):
            ECNN(**{key: bad})
    model, data, spins = make("square", **PAPER)
    tri = ecnn_pyg.lattice_graph("triangular", 5, HOP["triangular"])
    with pytest.raises(ModelInputError, match="built for lattice 'square'.*'triangular'"):
        model(tri, T.random_spins(tri.num_nodes))
    # the published neighbourhood needs the cells of a lattice_graph (a custom graph has none)
    bare = custom_graph().__class__(edge_index=data.edge_index, num_nodes=data.num_nodes,
                                    bond_type=data[K.BOND_TYPE])
    with pytest.raises(ModelInputError, match="cell coordinates"):
        model(bare, spins)


def test_paper_architecture_differs_from_default():
    """Each published choice changes the function (the options are not no-ops)."""
    torch.manual_seed(0)
    base, data, spins = make("square")
    ref = base(data, spins)[K.ENERGY]
    state = base.state_dict()
    for key, value in (("activation", "norm_nobias"), ("residual", "before_activation"),
                       ("sh_normalization", "integral")):
        other = ECNN(lattice="square", **{key: value}).double()
        other.load_state_dict(state, strict=False)
        assert (other(data, spins)[K.ENERGY] - ref).abs().max() > 1e-6, key


def test_norm_activation_semantics():
    """e3nn's NormActivation without bias: a scalar x becomes sign(x) SiLU(|x|), a vector v
    becomes v SiLU(|v|) / |v|; NormSwish keeps SiLU(x) on scalars."""
    x = torch.tensor([[[-2.0, 0.5, 0.0]]], dtype=torch.float64)
    v = torch.tensor([[[3.0]], [[0.0]], [[4.0]]], dtype=torch.float64)
    y0, y1 = NormActivation(1, 1)([x, v])
    silu = torch.nn.functional.silu
    assert torch.allclose(y0, torch.sign(x) * silu(x.abs()))
    assert torch.allclose(y1, v * silu(torch.tensor(5.0)) / 5.0)
    assert torch.allclose(NormSwish(1, 1)([x, v])[0], silu(x))


def test_adjacency_cache():
    model, data, spins = make("square", L=4)
    a = model.adjacency(data)
    assert model.adjacency(data) is a                      # cached for the same graph
    other = ecnn_pyg.lattice_graph("square", 4, HOP["square"])
    assert model.adjacency(other) is not a                 # another graph replaces it
    data.edge_index[0, 0] = data.edge_index[0, 0]          # in-place change bumps the version
    assert model.adjacency(data) is not a
    model.reset_cache()
    assert model._cached_adj is None
    uncached = ECNN(lattice="square", cached=False)
    assert uncached.adjacency(data) is not uncached.adjacency(data)
    assert "cached" not in uncached.config
    paper = ECNN(lattice="square", **PAPER)
    b = paper.adjacency(data)
    assert paper.adjacency(data) is b


def test_architecture_configs():
    """configs/model_paper.yaml is the package default; configs/model_ecnn4klm.yaml the
    published architecture (the import's config)."""
    from ecnn_pyg.ecnn4klm import published_config
    default = ECNN.from_yaml("configs/model_paper.yaml")
    assert default.config == ECNN().config
    for lattice in ("square", "triangular"):
        pub = ECNN.from_yaml("configs/model_ecnn4klm.yaml", lattice=lattice)
        assert pub.config == ECNN.from_config(published_config(lattice)).config
        assert pub.config["neighborhood"] == "paper"


def _chirality_model(graph, c=0.01):
    """E = c * sum of the scalar chirality S_i . (S_j x S_k) over every triangle of the
    triangular lattice, counterclockwise: odd under time reversal and under every mirror,
    invariant under the rotations."""
    # a1 = (1, 0), a2 = (-1/2, sqrt(3)/2): the triangles (r, r + a1, r + a1 + a2) and
    # (r, r + a1 + a2, r + a2), both counterclockwise
    a1 = ecnn_pyg.translation_permutation(graph, (1, 0))
    a2 = ecnn_pyg.translation_permutation(graph, (0, 1))
    a12 = ecnn_pyg.translation_permutation(graph, (1, 1))

    def model(_, s):
        up = (s * torch.cross(s[a1], s[a12], dim=1)).sum()
        down = (s * torch.cross(s[a12], s[a2], dim=1)).sum()
        return {K.ENERGY: (c * (up + down)).view(1)}
    return model


def test_symmetry_energy_error_closed_form():
    data = ecnn_pyg.lattice_graph("triangular", 6, HOP["triangular"])
    spins = T.random_spins(36, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    model = _chirality_model(data)
    e = float(model(data, spins)[K.ENERGY]) / 36
    assert abs(e) > 1e-4
    err = T.symmetry_energy_error(model, data, spins)
    # a mirror or time reversal flips every triangle's chirality: E -> -E
    assert err["time_reversal"] == pytest.approx(2 * abs(e), rel=1e-12)
    assert err["mirrors"] == pytest.approx(2 * abs(e), rel=1e-12)
    assert err["rotations"] < 1e-14


def test_symmetry_energy_error_of_the_network():
    # 1o spins and shell-shared weights hold every symmetry of the Hamiltonian exactly;
    # the paper's axial spins with weights per bond direction hold none of them
    model, data, spins = make("triangular", time_reversal=True, weight_sharing="shell")
    err = T.symmetry_energy_error(model, data, spins)
    assert max(err.values()) < 1e-13, err
    model, data, spins = make("triangular", time_reversal=True)
    err = T.symmetry_energy_error(model, data, spins)
    assert err["time_reversal"] < 1e-13 and err["mirrors"] > 1e-7 and err["rotations"] > 1e-7
    model, data, spins = make("triangular")
    assert min(T.symmetry_energy_error(model, data, spins).values()) > 1e-7
