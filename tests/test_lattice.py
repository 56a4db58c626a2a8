"""Lattice definitions: the built-in files shipped in the package, loading, validation."""
import os
import subprocess
from pathlib import Path

import pytest
import torch

import ecnn_pyg as ep
from ecnn_pyg import lattice as L
from ecnn_pyg.lattice import LatticeError

REPO = Path(__file__).resolve().parent.parent
BUILTIN = {"cubic", "honeycomb", "kagome", "square", "triangular"}


def test_builtin_lattices_live_in_the_package():
    assert L.LATTICES_DIR == Path(L.__file__).resolve().parent / "lattices"
    assert set(ep.available_lattices()) == BUILTIN
    for name in BUILTIN:
        assert (L.LATTICES_DIR / f"{name}.yaml").is_file()


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_builtin_lattice_loads(name):
    lat = ep.load_lattice(name)
    assert lat.name == name
    # the file round-trips through to_dict/from_dict
    again = L.Lattice.from_dict(lat.to_dict())
    assert again.bonds == lat.bonds and again.shells == lat.shells
    # and builds a periodic graph of a size every lattice supports
    g = ep.lattice_graph(lat, 4)
    assert g.num_nodes == 4 ** lat.dim * lat.n_basis and g.edge_index.shape[1] > 0


@pytest.mark.skipif(not (REPO / "graphs").exists() and not (REPO / "graphs").is_symlink(),
                    reason="not a source checkout")
def test_top_level_graphs_is_a_relative_link_to_the_package_folder():
    graphs = REPO / "graphs"
    assert graphs.is_symlink(), "graphs/ must be a link to ecnn_pyg/lattices (one source of truth)"
    target = os.readlink(graphs)
    assert not os.path.isabs(target), f"graphs -> {target} must be a relative link"
    assert graphs.resolve() == L.LATTICES_DIR
    assert sorted(p.name for p in graphs.glob("*.yaml")) == sorted(f"{n}.yaml" for n in BUILTIN)
    # loading by the documented path gives the built-in lattice
    assert ep.load_lattice(graphs / "triangular.yaml").bonds == ep.load_lattice("triangular").bonds


def test_graphs_is_committed_as_a_symlink():
    try:
        out = subprocess.run(["git", "ls-files", "-s", "graphs"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    if not out.strip():
        pytest.skip("graphs is not tracked in this checkout")
    assert out.split()[0] == "120000", f"graphs must be committed as a symlink, git has: {out}"


def test_setup_cfg_ships_the_lattice_files():
    cfg = REPO / "setup.cfg"
    if not cfg.exists():
        pytest.skip("not a source checkout")
    import configparser
    parser = configparser.ConfigParser()
    parser.read(cfg)
    data = {k: v for k, v in parser["options.package_data"].items()}
    assert "lattices/*.yaml" in data.get("ecnn_pyg", ""), data


def test_unknown_and_malformed_lattices(tmp_path):
    with pytest.raises(LatticeError, match="unknown lattice 'hexagon'.*square"):
        ep.load_lattice("hexagon")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nvectors: [[1, 0], [0, 1]]\nbasis: [[0, 0]]\n"
                   "hoppings: {t1: {bonds: [{from: 0, to: 3, offset: [1, 0]}]}}\n")
    with pytest.raises(LatticeError, match="basis site 3"):
        ep.load_lattice(bad)
    bad.write_text("name: x\nvectors: [[1, 0], [0, 1]]\nhoppings: {}\n")
    with pytest.raises(LatticeError, match="missing keys \\['basis'\\]"):
        ep.load_lattice(bad)
    bad.write_text("name: x\nvectors: [[1, 0], [2, 0]]\nbasis: [[0, 0]]\n"
                   "hoppings: {t1: {bonds: [{from: 0, to: 0, offset: [1, 0]}]}}\n")
    with pytest.raises(LatticeError, match="linearly dependent"):
        ep.load_lattice(bad)
    bad.write_text("name: [unclosed\n")
    with pytest.raises(LatticeError, match="not valid YAML"):
        ep.load_lattice(bad)
    with pytest.raises(LatticeError, match="no hopping shell 't9'"):
        ep.lattice_graph("square", 4, {"t9": 1.0})


def test_user_lattice_file_roundtrip(tmp_path):
    lat = ep.load_lattice("kagome")
    path = tmp_path / "my_kagome.yaml"
    path.write_text(lat.to_yaml())
    g1, g2 = ep.lattice_graph(lat, 3), ep.lattice_graph(path, 3)
    assert torch.equal(g1.edge_index, g2.edge_index)
