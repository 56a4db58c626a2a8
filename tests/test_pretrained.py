"""The shipped models: golden values of their energy and field, the registry of names, and the
one-way dependencies of the model-loading stack."""
import ast
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ecnn_pyg
from ecnn_pyg import keys as K
from ecnn_pyg import pretrained
from ecnn_pyg.checkpoint import CheckpointError
from ecnn_pyg.graph import lattice_graph

#: E and B of each shipped model on one fixed 12 x 12 configuration, evaluated in float64:
#: spins ``default_rng(0).normal(size=(144, 3))`` normalized, the graph of the hoppings the
#: model was trained with. The values were computed before the checkpoint / registry /
#: training modules were reorganized; a change of the shipped weights, of the model code or
#: of the way a checkpoint is rebuilt shows here.
GOLDEN = {
    "square-paper": {
        "lattice": "square",
        "hoppings": {"t1": 1.0, "t2": 0.0},
        "energy": -538.4198744302768,
        "rms_field": 1.8096001993568391,
        "field": {0: [0.4226258945307869, -0.5420892986308739, 2.6612132892930935],
                  71: [2.1764039382267057, -0.6365031225666619, 2.053824133205919],
                  143: [-1.2599788185771796, 2.590881880865732, -1.341565645520081]},
    },
    "triangular-paper": {
        "lattice": "triangular",
        "hoppings": {"t1": 1.0, "t2": 0.0, "t3": -0.85},
        "energy": -38.43543441181342,
        "rms_field": 0.031736367043880755,
        "field": {0: [0.018847824826603597, -0.00809514653530876, 0.057750634170585416],
                  71: [0.04276894964528193, -0.01990118681886989, 0.03456911279093263],
                  143: [-0.019795470240648826, 0.04347057552356906, -0.012057977425522875]},
    },
}


def _golden_spins() -> np.ndarray:
    s = np.random.default_rng(0).normal(size=(144, 3))
    return s / np.linalg.norm(s, axis=1, keepdims=True)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_energy_and_field(name, one_thread):
    """E and B of the shipped model on the fixed configuration equal the stored numbers."""
    gold = GOLDEN[name]
    model = pretrained.load(name).double()
    assert model.trained_on["hoppings"] == gold["hoppings"]
    graph = lattice_graph(gold["lattice"], 12, gold["hoppings"])
    out = model(graph, torch.from_numpy(_golden_spins()))
    energy = float(out[K.ENERGY].detach().sum())
    field = out[K.FIELD].detach().numpy()
    assert field.shape == (144, 3)
    assert energy == pytest.approx(gold["energy"], abs=1e-6)
    assert float(np.sqrt(np.mean(field ** 2))) == pytest.approx(gold["rms_field"], abs=1e-6)
    for site, b in gold["field"].items():
        np.testing.assert_allclose(field[site], b, rtol=0, atol=1e-6, err_msg=f"site {site}")


# ------------------------------------------------------------------ the registry of names
def test_registry_and_model_cards():
    assert pretrained.available() == sorted(pretrained.REGISTRY) == sorted(GOLDEN)
    with pytest.raises(KeyError, match="no pretrained model 'nope'; known:"):
        pretrained.path("nope")
    with pytest.raises(KeyError, match="no pretrained model"):
        pretrained.info("nope")
    for name in pretrained.available():
        assert pretrained.path(name).name == f"{name}.pt"
        card = pretrained.info(name)
        assert card["name"] == name and card["model_type"] == "ecnn"
        assert card["trained_on"]["lattice"] == GOLDEN[name]["lattice"]
        assert 0 < card["metrics"]["val"]["rmse_field"] < 0.05


def test_load_and_load_model_resolve_names_and_paths(tmp_path):
    model = pretrained.load("square-paper")
    assert not model.training and model.trained_on["size"] == [30, 30]
    assert next(model.parameters()).dtype == torch.float32
    by_name, ckpt = pretrained.load_model_and_checkpoint("square-paper")
    by_path = pretrained.load_model(pretrained.path("square-paper"))
    assert ckpt["model_type"] == "ecnn" and "optimizer_state" not in ckpt
    for k, v in model.state_dict().items():
        assert torch.equal(v, by_name.state_dict()[k]) and torch.equal(v, by_path.state_dict()[k])
    with pytest.raises(CheckpointError, match="neither a checkpoint file nor a pretrained model "
                                              "name \\(available: \\['square-paper'"):
        pretrained.load_model(tmp_path / "nope.pt")
    # an existing file wins over a pretrained name of the same spelling
    (tmp_path / "square-paper").write_text("not a model")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        pretrained.load_model(tmp_path / "square-paper")


# ------------------------------------------------------------- one-way dependencies
def _static_imports(path: Path, module: str, is_package: bool):
    """Absolute names of the modules a file imports (module level and inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = module.split(".")[:None if is_package else -1]
            if node.level:
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _package_modules():
    root = Path(ecnn_pyg.__file__).parent
    mods = {}
    for p in root.rglob("*.py"):
        parts = list(p.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_package else parts)] = (p, is_package)
    return mods


def test_pretrained_does_not_import_training(monkeypatch):
    mods = _package_modules()
    for name in ("ecnn_pyg.pretrained", "ecnn_pyg.models", "ecnn_pyg.checkpoint"):
        imported = _static_imports(*mods[name][:1], name, mods[name][1])
        bad = sorted(m for m in imported if m.startswith(("ecnn_pyg.train", "ecnn_pyg.cli")))
        assert not bad, f"{name} imports {bad}"
    # and at run time: loading a shipped model never (re)imports the training modules
    for name in [m for m in sys.modules if m.startswith("ecnn_pyg.train")]:
        monkeypatch.delitem(sys.modules, name)
    for attr in ("train", "training"):
        monkeypatch.delattr(ecnn_pyg, attr, raising=False)
    pretrained.load_model("triangular-paper")
    pretrained.info("triangular-paper")
    assert not [m for m in sys.modules if m.startswith("ecnn_pyg.train")]


def test_package_import_graph_has_no_cycle():
    """Module-level and function-level imports between the package's modules form a DAG
    (a module importing its own parent package, e.g. for ``__version__``, is not an edge)."""
    mods = _package_modules()
    graph = {}
    for name, (path, is_package) in mods.items():
        deps = {m for m in _static_imports(path, name, is_package) if m in mods}
        graph[name] = {d for d in deps if d != name and not name.startswith(d + ".")}
    state, cycles = {}, []

    def visit(u, stack):
        state[u] = "open"
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == "open":
                cycles.append(" -> ".join(stack[stack.index(v):] + [v]))
            elif v not in state:
                visit(v, stack)
        stack.pop()
        state[u] = "done"
    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert not cycles, "import cycles: " + "; ".join(cycles)
    # the model-loading stack is layered: checkpoint <- models <- pretrained <- training
    assert "ecnn_pyg.checkpoint" in graph["ecnn_pyg.models"]
    assert "ecnn_pyg.models" in graph["ecnn_pyg.pretrained"]
