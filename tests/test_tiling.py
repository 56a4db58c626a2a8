"""Tiled evaluation: energies and fields region by region with halos equal the whole lattice."""
import warnings

import networkx as nx
import numpy as np
import pytest
import torch

import ecnn_pyg
from ecnn_pyg import keys as K
from ecnn_pyg.distributed.tiling import (TiledEvaluator, TilingError, cell_reach, halo_width,
                                         parse_bytes, receptive_hops, sites_for_memory,
                                         tile_options)
from ecnn_pyg.dynamics import model_field_source
from ecnn_pyg.nn import ECNN
from ecnn_pyg.spins import random_spins

TRI = {"t1": 1.0, "t3": -0.85}
PAPER = dict(neighborhood="paper", activation="norm_nobias", residual="before_activation",
             sh_normalization="integral")


def _model(lattice="triangular", dtype=torch.float64, num_blocks=2, **kw):
    torch.manual_seed(0)
    m = ECNN(lattice=lattice, channels=2, lmax=1, num_blocks=num_blocks,
             output_channels=[2, 1], **kw).eval()
    return m.to(dtype)


def _spins(n, dtype=torch.float64, seed=1):
    return random_spins(n, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def _err(a, b):
    a, b = ({k: v.detach() for k, v in x.items()} for x in (a, b))
    return max(float((a[K.FIELD] - b[K.FIELD]).abs().max()),
               float((a[K.LOCAL_ENERGY] - b[K.LOCAL_ENERGY]).abs().max()),
               float((a[K.ENERGY] - b[K.ENERGY]).abs().max()))


def test_halo_follows_model_and_graph():
    g = ecnn_pyg.lattice_graph("triangular", 24, TRI)
    m = _model(num_blocks=2)
    assert receptive_hops(m) == 3                   # num_blocks + 1 convolutions
    assert cell_reach(m, g) == (2, 2)               # t3 bonds reach 2 cells
    assert halo_width(m, g) == (12, 12)             # 2 (num_blocks + 1) x reach for the field
    assert halo_width(m, g, field=False) == (6, 6)
    g1 = ecnn_pyg.lattice_graph("triangular", 24, {"t1": 1.0})
    assert halo_width(_model(num_blocks=1), g1) == (4, 4)


@pytest.mark.parametrize("tiles", [(2, 1), (1, 2), (2, 2), (3, 1)])
def test_tiles_equal_whole_lattice_float64(tiles):
    g = ecnn_pyg.lattice_graph("triangular", (30, 26), TRI)
    m = _model()
    s = _spins(g.num_nodes)
    ev = TiledEvaluator(m, g, tiles=tiles)
    assert ev.num_tiles == tiles[0] * tiles[1]
    assert _err(ev(s), m(g, s)) < 1e-12


def test_published_neighbourhood_and_basis_lattices():
    g = ecnn_pyg.lattice_graph("triangular", (28, 14), TRI)
    m = _model(**PAPER)
    s = _spins(g.num_nodes)
    assert _err(TiledEvaluator(m, g, tiles=(2, 1))(s), m(g, s)) < 1e-12
    # two sites per cell: the tiles go through the gather path
    g = ecnn_pyg.lattice_graph("honeycomb", (16, 6))
    m = _model("honeycomb", num_blocks=1)
    s = _spins(g.num_nodes)
    ev = TiledEvaluator(m, g, tiles=(2, 1))
    assert ev.info is not None and ev.info.n_basis == 2
    assert _err(ev(s), m(g, s)) < 1e-12


def test_general_graphs_through_induced_subgraphs():
    g = ecnn_pyg.lattice_graph("triangular", (48, 8), TRI, periodic=False)
    m = _model(num_blocks=1)
    s = _spins(g.num_nodes)
    ev = TiledEvaluator(m, g, max_sites=300)
    assert ev.info is None and ev.num_tiles >= 2 and ev.sites_per_tile <= 300
    assert _err(ev(s), m(g, s)) < 1e-12
    # a networkx graph: a long ladder with a few extra rungs
    nxg = nx.ladder_graph(60)
    nx.set_node_attributes(nxg, {i: (float(i % 60), float(i // 60)) for i in nxg}, "pos")
    cg = ecnn_pyg.from_networkx(nxg)
    m = ECNN(lattice=None, num_bond_types=int(cg[K.BOND_TYPE].max()) + 1, channels=2,
             lmax=1, num_blocks=1, output_channels=[2, 1]).double().eval()
    s = _spins(cg.num_nodes)
    ev = TiledEvaluator(m, cg, max_sites=40)
    assert ev.num_tiles >= 3
    assert _err(ev(s), m(cg, s)) < 1e-12


def test_float32_to_rounding():
    g = ecnn_pyg.lattice_graph("triangular", (30, 26), TRI)
    m = _model(dtype=torch.float32)
    s = _spins(g.num_nodes, torch.float32)
    ref = {k: v.detach() for k, v in m(g, s).items()}
    out = TiledEvaluator(m, g, tiles=(2, 2))(s)
    scale = float(ref[K.FIELD].abs().max())
    assert float((out[K.FIELD] - ref[K.FIELD]).abs().max()) < 1e-5 * scale
    assert abs(float(out[K.ENERGY] - ref[K.ENERGY])) < 1e-5 * abs(float(ref[K.ENERGY])) + 1e-4


def test_a_thinner_halo_is_wrong():
    # negative control: one cell less of halo than derived changes the field
    g = ecnn_pyg.lattice_graph("triangular", (30, 26), TRI)
    m = _model()
    s = _spins(g.num_nodes)
    ev = TiledEvaluator(m, g, tiles=(2, 1))
    ev.halo = tuple(h - 1 for h in ev.halo)
    ev.tiles = ev._bravais_tiles()
    assert float((ev(s)[K.FIELD] - m(g, s)[K.FIELD]).abs().max()) > 1e-6


def test_budget_picks_tiles_and_refuses_too_small():
    g = ecnn_pyg.lattice_graph("triangular", (60, 40), TRI)
    m = _model(num_blocks=1)                        # halo 8 cells
    ev = TiledEvaluator(m, g, max_sites=1200)
    assert ev.num_tiles > 1 and ev.sites_per_tile <= 1200
    s = _spins(g.num_nodes)
    assert _err(ev(s), m(g, s)) < 1e-12
    with pytest.raises(TilingError, match=r"halo is 8x8 cells.*289 sites"):
        TiledEvaluator(m, g, max_sites=200)
    with pytest.raises(TilingError, match="more parts than cells"):
        TiledEvaluator(m, g, tiles=(61, 1))
    with pytest.raises(TilingError, match="max_sites must be a positive integer"):
        TiledEvaluator(m, g, max_sites=0)


def test_memory_options():
    m = _model()
    assert parse_bytes("8GB") == 8 * 2 ** 30 and parse_bytes("512 MiB") == 2 ** 29
    assert parse_bytes(1e6) == 10 ** 6
    with pytest.raises(ValueError, match="like '8GB'"):
        parse_bytes("eight gigabytes")
    assert sites_for_memory("1GB", m) > sites_for_memory("100MB", m) > 0
    assert tile_options({}, m) == {}
    assert tile_options({"max_tile_sites": 500}, m) == {"max_sites": 500}
    with pytest.raises(ValueError, match="not both"):
        tile_options({"max_tile_sites": 5, "memory_budget": "1GB"}, m)


def test_field_source_option_equals_untiled():
    g = ecnn_pyg.lattice_graph("triangular", (40, 20), TRI)
    m = _model(num_blocks=1)                        # halo 8 cells: 3 slabs of 14 + 16 rows
    s = torch.stack([_spins(g.num_nodes, seed=k) for k in range(2)])      # two replicas
    tiled = model_field_source(m, g, max_sites=600)
    assert tiled.evaluator.num_tiles == 3
    assert float((tiled(s) - model_field_source(m, g)(s)).abs().max()) < 1e-12


def test_simulate_with_a_tile_budget_writes_the_same_file(tmp_path):
    import h5py
    from ecnn_pyg.checkpoint import save_checkpoint
    from ecnn_pyg.simulate import simulate
    m = _model("square", num_blocks=1)
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, {"model_type": "ecnn", "model_config": dict(m.config),
                           "model_state": m.state_dict(), "dtype": "float64",
                           "data": {"lattice": "square", "hoppings": {"t1": 1.0}}})
    cfg = {"lattice": "square", "size": [16, 6], "hoppings": {"t1": 1.0}, "source": "model",
           "model": str(ckpt), "dt": 0.2, "alpha": 0.5, "temperature": 0.05, "zeeman": 0.01,
           "n_steps": 10, "save_every": 5, "seed": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = simulate({**cfg, "output": str(tmp_path / "a.h5")}, progress=False)
        b = simulate({**cfg, "output": str(tmp_path / "b.h5"), "max_tile_sites": 60},
                     progress=False)
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for key in ("spin", "magnetization", "energy"):
            np.testing.assert_allclose(fa["run_000"][key][()], fb["run_000"][key][()],
                                       rtol=0, atol=1e-12)


def test_evaluate_command_with_a_tile_budget(tmp_path):
    from ecnn_pyg.checkpoint import save_checkpoint
    from ecnn_pyg.cli import main
    m = _model("square", num_blocks=1)
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, {"model_type": "ecnn", "model_config": dict(m.config),
                           "model_state": m.state_dict(), "dtype": "float64",
                           "data": {"lattice": "square", "hoppings": {"t1": 1.0},
                                    "size": [20, 8]}})
    spins = tmp_path / "s.npy"
    np.save(spins, torch.stack([_spins(160, seed=k) for k in range(2)]).numpy())
    args = ["evaluate", "--model", str(ckpt), "--spins", str(spins), "--size", "20", "8"]
    assert main(args + ["--out", str(tmp_path / "a.npz")]) == 0
    assert main(args + ["--out", str(tmp_path / "b.npz"), "--max-tile-sites", "80"]) == 0
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    np.testing.assert_allclose(a["field"], b["field"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(a["energy"], b["energy"], rtol=0, atol=1e-11)
    assert main(args + ["--out", str(tmp_path / "c.npz"), "--max-tile-sites", "20"]) == 2
