"""The package's convolution and activations equal the same operations written with e3nn.

``SpinConv`` computes its tensor product with matrices built from
``e3nn.o3.wigner_3j`` and a blocked autograd function of its own; here it is
compared, in float64, with ``e3nn.o3.TensorProduct`` of the slot-concatenated
neighbour features and the central spin's harmonics (all allowed ``"uvw"``
paths, e3nn's default normalizations), for several channel counts, degrees,
filter degrees, both spin parities and both harmonics normalizations. The
autograd function is checked by ``gradcheck`` / ``gradgradcheck``, and single
layers by e3nn's ``assert_equivariant`` through the e3nn-layout adapter.
"""
import contextlib
import math

import e3nn.nn
import pytest
import torch
from e3nn import o3
from e3nn.util.test import assert_equivariant

import ecnn_pyg
from ecnn_pyg import keys as K
from ecnn_pyg.nn import (E3nnLayout, InteractionBlock, Neighbors, NormActivation, NormSwish,
                         OutputBlock, SpinConv, build_neighbors, from_e3nn, irreps_of, to_e3nn)
from ecnn_pyg.nn._tp import central_tensor_product

DT = torch.float64
HOP = {"square": {"t1": 1.0, "t2": 0.4}, "triangular": {"t1": 1.0, "t3": -0.85}}


@contextlib.contextmanager
def float64_default():
    """Build e3nn modules in float64: their Wigner 3j constants are made in the default dtype
    (built in float32 and cast, they would be float32-accurate only)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(DT)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def e3nn_tensor_product(conv: SpinConv, num_slots: int) -> o3.TensorProduct:
    """The e3nn TensorProduct of ``num_slots`` concatenated copies of the input irreps with
    Y_{0..lmax_filter} of the central spin: every allowed 'uvw' path, e3nn's defaults
    (``_optimize_einsums=False`` only skips e3nn's search for a faster contraction order)."""
    cat = conv.irreps_in * num_slots
    filt, out = conv.irreps_filter, conv.irreps_out
    ins = [(i, j, k, "uvw", True) for i, (_, a) in enumerate(cat)
           for j, (_, b) in enumerate(filt) for k, (_, c) in enumerate(out) if c in a * b]
    with float64_default():
        return o3.TensorProduct(cat, filt, out, ins, internal_weights=False,
                                shared_weights=True, _optimize_einsums=False)


def e3nn_weights(conv: SpinConv, slot_weight: torch.Tensor) -> torch.Tensor:
    """The package's weights in the order of e3nn's instructions (slot-major, l_i, l_f, l_o)."""
    blocks = []
    c = conv.channels_out
    for wid in slot_weight.tolist():
        for li, plist in enumerate(conv.path_list):
            for p, _ in enumerate(plist):
                blocks.append(conv.weight[li][wid, :, p * c:(p + 1) * c].reshape(-1))
    return torch.cat(blocks)


def e3nn_conv(conv: SpinConv, x, spin, nb: Neighbors, tp=None):
    """SpinConv written with e3nn: gather slots, concatenate, TensorProduct with Y(S_r)."""
    tp = tp or e3nn_tensor_product(conv, nb.num_slots)
    xe = to_e3nn(x)
    xe = torch.cat([xe, xe.new_zeros(1, xe.shape[1])])              # padding index N
    cat = torch.cat([xe[nb.index[k]] for k in range(nb.num_slots)], 1)
    y = o3.spherical_harmonics(list(range(conv.lmax_filter + 1)), spin, normalize=False,
                               normalization=conv.sh_normalization)
    return tp(cat, y, e3nn_weights(conv, nb.weight))


def random_inputs(conv: SpinConv, n: int, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = [torch.randn(2 * l + 1, conv.channels_in, n, generator=g, dtype=DT)
         for l in range(conv.lmax_in + 1)]
    spin = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=DT), dim=1)
    return x, spin


def self_only(n: int) -> Neighbors:
    """The neighbourhood of the site alone (the per-site tensor product)."""
    return Neighbors(torch.arange(n).view(1, n), torch.tensor([-1]), False,
                     weight=torch.tensor([0]))


CASES = [  # (channels_in, channels_out, lmax_in, lmax_out, lmax_filter, spin_parity)
    (1, 8, 2, 2, 1, 1), (3, 5, 2, 2, 1, -1), (8, 8, 2, 2, 1, 1), (4, 2, 3, 1, 1, 1),
    (2, 3, 1, 3, 1, -1), (5, 4, 2, 2, 0, 1), (2, 6, 2, 0, 1, 1), (3, 3, 3, 3, 1, -1)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "cin{}-cout{}-li{}-lo{}-lf{}-p{}".format(*c))
@pytest.mark.parametrize("sh_normalization", ["component", "integral"])
def test_per_site_tensor_product_equals_e3nn(case, sh_normalization):
    c_in, c_out, li, lo, lf, parity = case
    torch.manual_seed(1)
    n = 7
    conv = SpinConv(c_in, c_out, li, lo, num_weights=0, lmax_filter=lf, spin_parity=parity,
                    sh_normalization=sh_normalization).to(DT)
    x, spin = random_inputs(conv, n)
    ours = to_e3nn(conv(x, math.sqrt(3) * spin.t(), self_only(n)))
    ref = e3nn_conv(conv, x, spin, self_only(n))
    assert ref.shape == (n, conv.irreps_out.dim)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)
    # the per-edge form (propagate with messages) equals it too
    conv.fuse = False
    torch.testing.assert_close(to_e3nn(conv(x, math.sqrt(3) * spin.t(), self_only(n))), ref,
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("lattice", ["square", "triangular"])
@pytest.mark.parametrize("case", CASES[:5], ids=lambda c: "cin{}-cout{}-li{}-lo{}-lf{}-p{}"
                         .format(*c))
def test_spinconv_layer_equals_e3nn(lattice, case):
    """A whole layer on a periodic lattice (grid conv2d, gather and per-edge forms)."""
    c_in, c_out, li, lo, lf, parity = case
    torch.manual_seed(2)
    data = ecnn_pyg.lattice_graph(lattice, (5, 5), HOP[lattice])
    grid = build_neighbors(data.edge_index, data[K.BOND_TYPE], data.num_nodes, data[K.CELL],
                           data[K.SIZE])
    gather = build_neighbors(data.edge_index, data[K.BOND_TYPE], data.num_nodes,
                             allow_grid=False)
    assert grid.grid is not None and gather.grid is None
    n_types = int(data[K.BOND_TYPE].max()) + 1
    conv = SpinConv(c_in, c_out, li, lo, num_weights=n_types, lmax_filter=lf,
                    spin_parity=parity, avg_num_neighbors=grid.num_slots).to(DT)
    x, spin = random_inputs(conv, data.num_nodes, seed=3)
    ref = e3nn_conv(conv, x, spin, gather)
    y1 = math.sqrt(3) * spin.t()
    for adj in (grid, gather, gather.to_edges()):
        torch.testing.assert_close(to_e3nn(conv(x, y1, adj)), ref, rtol=0, atol=1e-12)


def test_padded_table_equals_e3nn():
    """An open custom graph: slots padded with a zero feature."""
    import networkx as nx
    g = nx.path_graph(5)
    nx.set_node_attributes(g, {i: (float(i), 0.0) for i in g}, "pos")
    nx.set_edge_attributes(g, 1.0, "hopping")
    data = ecnn_pyg.from_networkx(g)
    nb = build_neighbors(data.edge_index, data[K.BOND_TYPE], data.num_nodes)
    assert nb.padded
    conv = SpinConv(3, 4, 2, 2, num_weights=int(data[K.BOND_TYPE].max()) + 1,
                    avg_num_neighbors=nb.num_slots).to(DT)
    x, spin = random_inputs(conv, data.num_nodes)
    torch.testing.assert_close(to_e3nn(conv(x, math.sqrt(3) * spin.t(), nb)),
                               e3nn_conv(conv, x, spin, nb), rtol=0, atol=1e-12)


def test_negative_control_wrong_layer_differs_from_e3nn():
    """A deliberately wrong layer (one Clebsch-Gordan matrix perturbed) fails the comparison."""
    torch.manual_seed(4)
    n = 6
    conv = SpinConv(3, 4, 2, 2, num_weights=0).to(DT)
    x, spin = random_inputs(conv, n)
    ref = e3nn_conv(conv, x, spin, self_only(n))
    conv._tp64 = [a.clone() for a in conv._tp64]
    conv._tp64[1][5, 2] += 0.05
    conv._tp_cache.clear()
    err = (to_e3nn(conv(x, math.sqrt(3) * spin.t(), self_only(n))) - ref).abs().max()
    assert err > 1e-4
    with pytest.raises(AssertionError):
        torch.testing.assert_close(to_e3nn(conv(x, math.sqrt(3) * spin.t(), self_only(n))), ref,
                                   rtol=0, atol=1e-12)
    # and a wrong weight order (l_f and l_o paths of one degree swapped) too
    good = SpinConv(3, 4, 2, 2, num_weights=0).to(DT)
    w = good.weight[1]
    with torch.no_grad():
        w[:, :, :4], w[:, :, 4:8] = w[:, :, 4:8].clone(), w[:, :, :4].clone()
    assert (to_e3nn(good(x, math.sqrt(3) * spin.t(), self_only(n))) -
            e3nn_conv(conv, x, spin, self_only(n))).abs().max() > 1e-3


# ------------------------------------------------------------ the autograd function

def tp_inputs(lmax_in=2, lmax_out=2, c=2, n=3, parity=1, seed=0):
    conv = SpinConv(3, c, lmax_in, lmax_out, num_weights=0, spin_parity=parity).to(DT)
    mats = conv._tp(DT, torch.device("cpu"))
    g = torch.Generator().manual_seed(seed)
    ms = [torch.randn(2 * li + 1, len(p) * c, n, generator=g, dtype=DT, requires_grad=True)
          if p else None for li, p in enumerate(conv.path_list)]
    y1 = torch.randn(3, n, generator=g, dtype=DT, requires_grad=True)
    return mats, ms, y1


@pytest.mark.parametrize("parity", [1, -1])
@pytest.mark.parametrize("block", [None, 2])
def test_gradcheck_central_tensor_product(parity, block, monkeypatch):
    import ecnn_pyg.nn._tp as tp
    if block:
        monkeypatch.setattr(tp, "BLOCK", block)       # several blocks per channel
    mats, ms, y1 = tp_inputs(parity=parity)
    present = [m for m in ms if m is not None]

    def f(y1, *ms_present):
        it = iter(ms_present)
        full = [next(it) if m is not None else None for m in ms]
        return tuple(central_tensor_product(mats, 2, 2, y1, full))

    assert torch.autograd.gradcheck(f, (y1, *present))
    assert torch.autograd.gradgradcheck(f, (y1, *present))


@pytest.mark.filterwarnings("ignore::ecnn_pyg.graph.PeriodicImageWarning")   # a 3 x 2 cell
def test_gradcheck_spinconv_layer():
    """The layer, both forms, with respect to features, spins and weights."""
    data = ecnn_pyg.lattice_graph("square", (3, 2), {"t1": 1.0})
    nb = build_neighbors(data.edge_index, data[K.BOND_TYPE], data.num_nodes, data[K.CELL],
                         data[K.SIZE])
    assert nb.grid is not None
    torch.manual_seed(5)
    conv = SpinConv(2, 1, 2, 1, num_weights=8).to(DT)
    x, spin = random_inputs(conv, data.num_nodes)
    x = [t.requires_grad_(True) for t in x]
    y1 = (math.sqrt(3) * spin.t()).requires_grad_(True)
    for adj in (nb, nb.to_edges()):
        def f(y1, *xs):
            return tuple(conv(list(xs), y1, adj))
        assert torch.autograd.gradcheck(f, (y1, *x))
        assert torch.autograd.gradgradcheck(f, (y1, *x))


def test_gradgrad_matches_e3nn():
    """The second derivative the field loss uses: d/dW of a loss on dE/dS equals e3nn's."""
    torch.manual_seed(6)
    n = 6
    conv = SpinConv(2, 1, 2, 0, num_weights=0).to(DT)
    x, spin = random_inputs(conv, n)
    tp = e3nn_tensor_product(conv, 1)

    def loss(energy_fn):
        s = spin.clone().requires_grad_(True)
        e = energy_fn(s).pow(2).sum()
        (g,) = torch.autograd.grad(e, s, create_graph=True)
        return g.pow(2).sum()

    ours = loss(lambda s: conv(x, math.sqrt(3) * s.t(), self_only(n))[0])
    (g_ours,) = torch.autograd.grad(ours, conv.weight[1])
    w = e3nn_weights(conv, torch.tensor([0])).detach().requires_grad_(True)
    ref = loss(lambda s: tp(to_e3nn(x), o3.spherical_harmonics([0, 1], s, normalize=False,
                                                                 normalization="component"), w))
    (g_ref,) = torch.autograd.grad(ref, w)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=0)
    # the l_i = 1 block of the gradient, in e3nn's order: (l_f, l_o) = (1, 0) is the 2nd path
    p = [pl for pl in conv.path_list]
    start = sum(2 * len(pl) for pl in p[:1])            # C_in * C_out = 2 per path
    torch.testing.assert_close(g_ours[0].reshape(-1), g_ref[start:start + 2], rtol=1e-10,
                               atol=1e-14)


# ------------------------------------------------------------------- activations

@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("parity", [1, -1])
def test_norm_activation_equals_e3nn(bias, parity):
    torch.manual_seed(7)
    act = NormActivation(3, 2, parity, bias=bias).to(DT)
    with float64_default():
        ref = e3nn.nn.NormActivation(act.irreps_in, torch.nn.SiLU(), bias=bias)
    if bias:
        with torch.no_grad():
            act.bias.normal_()
            # e3nn's biases: one per irrep of irreps_in (channel-major within a degree)
            ref.biases.copy_(act.bias[:, :, 0].reshape(-1))
    x = torch.randn(11, act.irreps_in.dim, dtype=DT)
    torch.testing.assert_close(to_e3nn(act(from_e3nn(x, 3, 2))), ref(x), rtol=1e-13,
                               atol=1e-13)


def test_norm_swish_is_not_e3nns_norm_activation():
    """The package default differs from e3nn's NormActivation on the scalars (its negative
    scalars are swish(x), not -swish(|x|))."""
    x = torch.randn(20, irreps_of(2, 1).dim, dtype=DT)
    ours = to_e3nn(NormSwish(2, 1).to(DT)(from_e3nn(x, 2, 1)))
    with float64_default():
        ref = e3nn.nn.NormActivation(irreps_of(2, 1), torch.nn.SiLU(), bias=False)(x)
    scalars = slice(0, 2)
    assert (ours[:, scalars] - ref[:, scalars]).abs().max() > 1e-2


# ------------------------------------------------------------ single-layer equivariance

def _lattice_adj(lattice="triangular"):
    data = ecnn_pyg.lattice_graph(lattice, (5, 5), HOP[lattice])
    return build_neighbors(data.edge_index, data[K.BOND_TYPE], data.num_nodes, data[K.CELL],
                           data[K.SIZE]), data.num_nodes


@pytest.mark.parametrize("parity", [1, -1])
@pytest.mark.parametrize("layer", ["conv", "block", "block_paper", "output", "output_paper"])
def test_single_layer_assert_equivariant(layer, parity):
    torch.manual_seed(8)
    nb, n = _lattice_adj()
    kw = dict(num_weights=18, spin_parity=parity)
    mod = {"conv": lambda: SpinConv(3, 4, 2, 2, **kw),
           "block": lambda: InteractionBlock(3, 3, 2, 2, skip=True, **kw),
           "block_paper": lambda: InteractionBlock(3, 3, 2, 2, skip=True, activation="norm_nobias",
                                                   residual="before_activation",
                                                   sh_normalization="integral", **kw),
           "output": lambda: OutputBlock(3, 2, **kw),
           "output_paper": lambda: OutputBlock(3, 2, activation="norm_nobias", **kw)}[layer]()
    for p in mod.parameters():                 # non-zero biases too
        torch.nn.init.normal_(p)
    adapter = E3nnLayout(mod, nb).to(DT)
    assert adapter.irreps_in[1] == o3.Irreps("1x1e" if parity == 1 else "1x1o")
    g = torch.Generator().manual_seed(9)
    x = torch.randn(n, adapter.irreps_in[0].dim, generator=g, dtype=DT)
    spin = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=DT), dim=1)
    # tolerance relative to the output; e3nn's Wigner D of a random rotation (from its Euler
    # angles) is itself orthogonal to only ~1e-11 for some angles
    tol = 1e-9 * float(adapter(x, spin).detach().abs().max())
    with float64_default():                    # e3nn's Wigner D matrices in float64
        errors = assert_equivariant(adapter, args_in=[x, spin], tolerance=tol, ntrials=3)
    assert max(float(e.max()) for e in errors.values()) < tol


@pytest.mark.parametrize("act", [NormSwish(3, 2), NormActivation(3, 2)])
def test_activation_assert_equivariant(act):
    adapter = E3nnLayout(act).to(DT)
    with float64_default():
        assert_equivariant(adapter, args_in=[torch.randn(5, adapter.irreps_in[0].dim, dtype=DT)],
                           tolerance=1e-12)


def test_negative_control_assert_equivariant_fails():
    """A layer whose tensor product mixes the components of l_o = 1 wrongly is caught."""
    torch.manual_seed(10)
    nb, n = _lattice_adj()
    conv = SpinConv(3, 4, 2, 2, num_weights=18).to(DT)
    conv._tp64 = [torch.randn_like(a) for a in conv._tp64]
    conv._tp_cache.clear()
    adapter = E3nnLayout(conv, nb)
    x = torch.randn(n, conv.irreps_in.dim, dtype=DT)
    spin = torch.nn.functional.normalize(torch.randn(n, 3, dtype=DT), dim=1)
    with pytest.raises(AssertionError, match="equivariance error"), float64_default():
        assert_equivariant(adapter, args_in=[x, spin], tolerance=1e-10)


def test_e3nn_layout_round_trip_and_errors():
    x = [torch.randn(2 * l + 1, 3, 4) for l in range(3)]
    e = to_e3nn(x)
    assert e.shape == (4, irreps_of(3, 2).dim)
    # e3nn's layout: channel-major within a degree
    assert torch.equal(e[2, 3 + 2 * 3 + 1], x[1][1, 2, 2])
    back = from_e3nn(e, 3, 2)
    assert all(torch.equal(a, b) for a, b in zip(x, back))
    with pytest.raises(ValueError, match=r"shape \(N, 27\)"):
        from_e3nn(torch.zeros(4, 26), 3, 2)
    with pytest.raises(TypeError, match="Neighbors table or Edges"):
        SpinConv(1, 1, 1, 1, 0)([torch.zeros(1, 1, 2), torch.zeros(3, 1, 2)],
                                torch.zeros(3, 2), torch.zeros(2, 2, dtype=torch.long))
