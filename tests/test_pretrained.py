"""The shipped models: golden values of their energy and field, the registry of names."""
import numpy as np
import pytest
import torch

from ecnn_pyg import keys as K
from ecnn_pyg import pretrained
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
