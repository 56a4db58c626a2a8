"""The lattice split over ranks: general graphs, observables reduced over ranks, slab-only graphs.

Local ranks (gloo, every collective with a timeout) from
:func:`ecnn_pyg.distributed.testing.run_ranks`, against one process:

* a general graph (open boundaries, an irregular networkx graph) partitioned
  by recursive coordinate bisection: fields to 1e-12, ``ecnn-pyg simulate``
  with ``periodic: false`` on 2 and 3 ranks equal to the single-process file
  (100 damped steps, T = 0 and T > 0, to 1e-9);
* magnetization, topological charge and energy summed over the ranks' own
  parts equal the whole lattice's (1e-12), for slabs and for graph parts;
* ranks > 0 of a periodic supercell split into slabs never build the whole
  lattice's graph;
* the replicas of a config spread over the ranks (one file equal to the
  serial one, resumable);
* the backend choice (gloo on CPU, NCCL with CUDA, the override).
"""
import os

import h5py
import networkx as nx
import numpy as np
import pytest
import torch

import ecnn_pyg
from ecnn_pyg import distributed as dist
from ecnn_pyg import keys as K
from ecnn_pyg.distributed import comm
from ecnn_pyg.distributed.llg import GraphPartition, SlabDecomposition, lattice_info, lattice_reach
from ecnn_pyg.distributed.partition import boundary_sites, partition_graph
from ecnn_pyg.distributed.testing import run_ranks
from ecnn_pyg.distributed.tiling import TilingError, cell_reach
from ecnn_pyg.nn import ECNN
from ecnn_pyg.observables import magnetization, topological_charge, triangulation
from ecnn_pyg.spins import random_spins

from _simulate_runs import simulate_cli, write_checkpoint, write_config

HOP = {"t1": 1.0}
SIZE = [12, 12]


def _model(num_blocks=1, lattice="square", **kw):
    torch.manual_seed(0)
    return ECNN(lattice=lattice, channels=2, lmax=1, num_blocks=num_blocks,
                output_channels=[2, 1], **kw).double().eval()


def _spins(n, seed=5):
    return random_spins(n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _irregular():
    """A 10 x 10 grid with a hole, a few diagonals and jittered positions (networkx)."""
    g = nx.grid_2d_graph(10, 10)
    g.remove_nodes_from([(4, 4), (4, 5), (5, 4), (5, 5), (0, 9)])
    g.add_edges_from([((1, 1), (2, 2)), ((6, 7), (7, 8)), ((8, 1), (9, 2))])
    g = nx.convert_node_labels_to_integers(g, ordering="sorted", label_attribute="xy")
    pos = {i: (g.nodes[i]["xy"][0] + 0.03 * np.sin(7 * i), g.nodes[i]["xy"][1]
               + 0.03 * np.cos(5 * i)) for i in g}
    nx.set_node_attributes(g, pos, "pos")
    for i in g:
        del g.nodes[i]["xy"]
    cg = ecnn_pyg.from_networkx(g)
    torch.manual_seed(0)
    model = ECNN(lattice=None, num_bond_types=int(cg[K.BOND_TYPE].max()) + 1, channels=2,
                 lmax=1, num_blocks=1, output_channels=[2, 1]).double().eval()
    return cg, model


def _graph_and_model(kind):
    if kind in ("open", "periodic"):    # a periodic supercell in 2D parts (not slabs)
        return ecnn_pyg.lattice_graph("square", SIZE, HOP, periodic=kind == "periodic"), \
            _model()
    return _irregular()


# ----------------------------------------------------------------- the partition
@pytest.mark.parametrize("parts", [2, 3, 4, 7])
def test_partition_is_balanced_compact_and_deterministic(parts):
    g = ecnn_pyg.lattice_graph("triangular", (12, 10), {"t1": 1.0}, periodic=False)
    p = partition_graph(g, parts)
    sizes = [len(x) for x in p]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == g.num_nodes
    assert np.array_equal(np.sort(np.concatenate(p)), np.arange(g.num_nodes))
    assert all(np.array_equal(a, b) for a, b in zip(p, partition_graph(g, parts)))
    # compact: far fewer boundary sites than the same sizes dealt out round-robin
    dealt = [np.arange(r, g.num_nodes, parts) for r in range(parts)]
    assert boundary_sites(g, p) < (0.5 if parts <= 4 else 0.7) * boundary_sites(g, dealt)
    if parts == 2:                  # one straight cut across the long axis: 2 x 10 sites
        assert boundary_sites(g, p) <= 2 * 10 + 2


def test_partition_without_positions_and_bad_counts():
    g = ecnn_pyg.lattice_graph("square", (6, 6), HOP, periodic=False)
    del g.pos
    p = partition_graph(g, 3)
    assert sorted(len(x) for x in p) == [12, 12, 12]
    with pytest.raises(ValueError, match="1 to 36 parts"):
        partition_graph(g, 37)


# ----------------------------------------------------------------- fields and observables
def _graph_fields(kind):
    graph, model = _graph_and_model(kind)
    spins = _spins(graph.num_nodes)
    ref = model(graph, spins)["field"].detach()
    part = GraphPartition(model, graph, dist.rank(), dist.world_size(), triangulation(graph))
    own = spins[part.own]
    field = part.field_source(model)(own)
    return float((field - ref[part.own]).abs().max()), part.num_own, part.halo_sites()


@pytest.mark.parametrize("world,kind", [(2, "open"), (3, "open"), (3, "irregular"),
                                        (4, "periodic")])
def test_graph_partition_fields_equal_whole_graph(world, kind):
    res = run_ranks(world, _graph_fields, kind)
    assert max(r[0] for r in res) < 1e-12, res
    n = _graph_and_model(kind)[0].num_nodes
    assert sum(r[1] for r in res) == n and max(r[1] for r in res) - min(r[1] for r in res) <= 1


def _reduced_observables(kind):
    # every rank's share of M, E and Q, summed with all_reduce, against the whole lattice
    if kind in ("slabs", "honeycomb"):
        lat = "square" if kind == "slabs" else "honeycomb"
        graph = ecnn_pyg.lattice_graph(lat, SIZE, HOP)
        model = _model(lattice=lat)
        cfg = {"lattice": lat, "size": SIZE, "hoppings": HOP}
        part = SlabDecomposition(model, None, dist.rank(), dist.world_size(),
                                 info=lattice_info(cfg))
        tri = triangulation(graph).numpy()
        part.set_triangles(tri[part.owner_of(tri[:, 0]) == dist.rank()])
    else:
        graph, model = _graph_and_model(kind)
        tri = triangulation(graph)
        part = GraphPartition(model, graph, dist.rank(), dist.world_size(), tri)
    spins = _spins(graph.num_nodes, seed=11)
    sums = dist.all_reduce_sum(part.partial_observables(spins[part.own], model))
    ref_e = float(model(graph, spins, compute_field=False)["energy"].double().sum())
    return (float((sums[:3] / graph.num_nodes - magnetization(spins)).abs().max()),
            abs(float(sums[3]) - ref_e),
            abs(float(sums[4]) / (4 * np.pi) - float(topological_charge(spins, tri))))


@pytest.mark.parametrize("world,kind", [(2, "slabs"), (3, "slabs"), (2, "honeycomb"),
                                        (3, "open"), (2, "irregular")])
def test_observables_reduced_over_ranks_equal_whole_lattice(world, kind):
    res = run_ranks(world, _reduced_observables, kind)
    assert res[0] == res[-1]                       # every rank has the sums
    assert max(res[0]) < 1e-12, res


def test_lattice_reach_without_the_graph():
    for lat, hop in (("triangular", {"t1": 1.0, "t3": -0.85}), ("square", HOP),
                     ("honeycomb", {"t1": 1.0})):
        g = ecnn_pyg.lattice_graph(lat, 9, hop)
        info = lattice_info({"lattice": lat, "size": 9, "hoppings": hop})
        m = _model(lattice=lat)
        assert lattice_reach(m, info) == cell_reach(m, g)
    assert lattice_info({"lattice": "square", "size": 9, "hoppings": HOP,
                         "periodic": False}) is None
    with pytest.raises(TilingError, match="published fixed neighbourhood"):
        g = ecnn_pyg.lattice_graph("triangular", 6, {"t1": 1.0}, periodic=False)
        GraphPartition(_model(lattice="triangular", neighborhood="paper"), g, 0, 2)


# ----------------------------------------------------------------- simulate
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("model") / "model.pt", _model(), HOP, SIZE)


def _config(tmp, name, ckpt, **kw):
    kw.setdefault("temperature", [0.0, 0.05])
    return write_config(tmp, name, ckpt, {"size": SIZE, "hoppings": HOP}, **kw)


_cli = simulate_cli


def _assert_same_file(a, b, atol=1e-9):
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        names = sorted(n for n in fa if n.startswith("run_"))
        assert names == sorted(n for n in fb if n.startswith("run_"))
        for name in names:
            keys = sorted(k for k in fa[name] if isinstance(fa[name][k], h5py.Dataset))
            assert keys == sorted(k for k in fb[name] if isinstance(fb[name][k], h5py.Dataset))
            for key in keys:
                np.testing.assert_allclose(fa[name][key][()], fb[name][key][()], rtol=0,
                                           atol=atol, err_msg=f"{name}/{key}")
            for slot in ("state_a", "state_b"):
                if slot in fa[name]:
                    np.testing.assert_allclose(fa[name][slot]["spin"][()],
                                               fb[name][slot]["spin"][()], rtol=0, atol=atol)
                    assert np.array_equal(fa[name][slot]["rng"][()], fb[name][slot]["rng"][()])
    return names


@pytest.fixture(scope="module")
def open_one(tmp_path_factory, ckpt):
    tmp = tmp_path_factory.mktemp("open1")
    cfg, out = _config(tmp, "one", ckpt, periodic=False)
    assert _cli(cfg) == 0
    with h5py.File(out, "r") as f:          # the charge is there (Delaunay of the open lattice)
        assert np.isfinite(f["run_000"]["charge"][()]).all()
    return out


def test_simulate_general_graph_on_two_ranks(tmp_path, ckpt, open_one):
    cfg, out = _config(tmp_path, "two", ckpt, periodic=False, parallel="domain")
    assert run_ranks(2, _cli, cfg) == [0, 0]
    assert _assert_same_file(open_one, out) == ["run_000", "run_001"]
    assert sorted(os.listdir(tmp_path)) == ["two.h5", "two.yaml"]


def test_simulate_general_graph_on_three_ranks_resumed(tmp_path, ckpt, open_one):
    cfg, out = _config(tmp_path, "three", ckpt, periodic=False, parallel="domain")
    assert run_ranks(3, _cli, cfg, "--set", "n_steps=50") == [0, 0, 0]
    assert run_ranks(3, _cli, cfg) == [0, 0, 0]
    _assert_same_file(open_one, out)


def _simulate_recording_graphs(config):
    # which lattice graphs this rank builds (sites), while it runs the command
    import ecnn_pyg.graph as graph_module
    import ecnn_pyg.simulate as sim
    built = []
    original = graph_module.lattice_graph

    def recording(*args, **kw):
        g = original(*args, **kw)
        built.append(int(g.num_nodes))
        return g
    graph_module.lattice_graph = sim.lattice_graph = recording
    try:
        code = _cli(config)
    finally:
        graph_module.lattice_graph = sim.lattice_graph = original
    return code, built


def test_ranks_build_only_their_slab(tmp_path, ckpt):
    from ecnn_pyg.distributed import tiling
    tiling._PATCHES.clear()
    cfg, out = _config(tmp_path, "slabs", ckpt, size=[24, 6], temperature=0.05, n_steps=4,
                       save_every=2, parallel="domain")
    res = run_ranks(3, _simulate_recording_graphs, cfg)
    assert [code for code, _ in res] == [0, 0, 0]
    assert max(res[0][1]) == 24 * 6                 # rank 0 builds the lattice (for the file)
    for _, built in res[1:]:
        assert built and max(built) <= (8 + 2 * 4) * 6, built   # a slab of 8 rows + halo 2 x 4
    cfg1, out1 = _config(tmp_path, "one", ckpt, size=[24, 6], temperature=0.05, n_steps=4,
                         save_every=2)
    assert _cli(cfg1) == 0
    _assert_same_file(out1, out)


def test_replicas_spread_over_ranks(tmp_path, ckpt):
    kw = dict(size=[6, 6], zeeman=[0.0, 0.02], temperature=0.05, replicas=3, n_steps=20,
              save_every=10)
    cfg1, out1 = _config(tmp_path, "serial", ckpt, **kw)
    assert _cli(cfg1) == 0
    cfg2, out2 = _config(tmp_path, "ranks", ckpt, **kw)
    assert run_ranks(2, _cli, cfg2, "--set", "n_steps=10") == [0, 0]        # interrupted
    assert run_ranks(2, _cli, cfg2) == [0, 0]                               # resumed
    names = _assert_same_file(out1, out2, atol=0)
    assert len(names) == 6
    with h5py.File(out1, "r") as f:                 # the replicas are distinct runs
        assert f["run_000"].attrs["zeeman"] == f["run_002"].attrs["zeeman"] == 0.0
        assert not np.allclose(f["run_000"]["spin"][-1], f["run_001"]["spin"][-1])
    cfg3, _ = _config(tmp_path, "bad", ckpt, **{**kw, "replicas": 0})
    assert _cli(cfg3) == 2


# ----------------------------------------------------------------- backends
def test_backend_selection(monkeypatch):
    monkeypatch.delenv("ECNN_PYG_DIST_BACKEND", raising=False)
    assert comm.backend_for(None) == "gloo"
    assert comm.backend_for("cpu") == "gloo"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_nccl_available", lambda: True)
    assert comm.backend_for("cuda") == "cpu:gloo,cuda:nccl"
    assert comm.backend_for("cpu") == "gloo"
    monkeypatch.setattr(torch.distributed, "is_nccl_available", lambda: False)
    assert comm.backend_for("cuda") == "gloo"           # a CUDA build without NCCL
    monkeypatch.setenv("ECNN_PYG_DIST_BACKEND", "nccl")
    assert comm.backend_for("cpu") == "nccl"
    monkeypatch.setenv("ECNN_PYG_DIST_BACKEND", "mpi")
    with pytest.raises(ValueError, match="ECNN_PYG_DIST_BACKEND must be one of"):
        comm.backend_for("cpu")


def _backend_in_use():
    return torch.distributed.get_backend()


def test_backend_override_reaches_the_process_group():
    assert run_ranks(2, _backend_in_use, env={"ECNN_PYG_DIST_BACKEND": "gloo"}) == ["gloo"] * 2
    res = run_ranks(2, _backend_in_use, env={"ECNN_PYG_DIST_BACKEND": "smoke"},
                    expect_failure=True)
    assert all("ECNN_PYG_DIST_BACKEND must be one of" in res[r] for r in (0, 1)), res


@pytest.mark.slow
def test_two_node_launch_on_localhost(tmp_path, ckpt):
    # two torchrun invocations, one per "node", meeting at a c10d rendezvous on localhost
    import subprocess
    import sys
    from ecnn_pyg.distributed.testing import free_port
    cfg1, out1 = _config(tmp_path, "one", ckpt, temperature=0.05, n_steps=20, save_every=10)
    assert _cli(cfg1) == 0
    cfg, out = _config(tmp_path, "nodes", ckpt, temperature=0.05, n_steps=20, save_every=10,
                       parallel="domain")
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ECNN_PYG_DIST_TIMEOUT": "120"}
    procs = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
                               "--nproc-per-node", "1", "--node-rank", str(node),
                               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"localhost:{port}",
                               "--rdzv-id", "ecnn-two-nodes", "-m", "ecnn_pyg.cli", "simulate",
                               "--config", cfg, "--quiet"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for node in (0, 1)]
    try:
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], [o[1][-3000:] for o in outs]
    _assert_same_file(out1, out)


def test_simulate_cli_starts_the_group_for_the_config_device(tmp_path, monkeypatch, ckpt):
    from ecnn_pyg.cli.simulate import _device_of
    cfg, _ = _config(tmp_path, "dev", ckpt)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert _device_of(cfg, {}) is None                       # one process: no group
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert _device_of(cfg, {}) == "cpu"
    assert _device_of(cfg, {"device": "cuda"}) == "cuda"     # -> NCCL where CUDA is available


def test_rank0_refusal_before_the_split_stops_the_slab_ranks(tmp_path, ckpt, capfd):
    # ranks > 0 of a slab run skip the whole lattice (and its initial state): when rank 0
    # refuses the config there, they stop with a clear error instead of waiting
    cfg, out = _config(tmp_path, "bad", ckpt, size=[24, 6], initial=str(tmp_path / "no.npy"),
                       parallel="domain")
    res = run_ranks(3, _cli, cfg, timeout=90, collective_timeout=30, expect_failure=True)
    assert res[0] == 2
    assert all(res[r] != 0 for r in (1, 2)), res
    assert "cannot read" in capfd.readouterr().err
    assert not os.path.exists(out)


def _die_in_exchange():
    graph, model = _graph_and_model("open")
    part = GraphPartition(model, graph, dist.rank(), dist.world_size())
    dist.barrier("setting up")
    if dist.rank() == 1:
        os._exit(3)
    part.exchange(_spins(graph.num_nodes)[part.own])


def test_dead_rank_stops_the_graph_exchange_with_a_clear_error():
    res = run_ranks(2, _die_in_exchange, timeout=60, collective_timeout=10, expect_failure=True)
    assert "exited with code 3" in res[1]
    assert "DistributedError" in res[0] and "exchanging halo spins" in res[0], res[0]
