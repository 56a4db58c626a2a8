"""The registry of model types: schemas derived from the models' defaults, building, rebuilding."""
import pytest
import torch

from ecnn_pyg.baseline import IFNN
from ecnn_pyg.checkpoint import CheckpointError
from ecnn_pyg.config import ConfigError
from ecnn_pyg.models import (MODEL_TYPES, build_model, check_model_config, model_from_checkpoint,
                             model_schema, schema_from_defaults)
from ecnn_pyg.nn import ECNN

TINY_ECNN = {"channels": 2, "num_blocks": 1, "lmax": 1}


def test_registry_names_the_classes():
    assert MODEL_TYPES["ecnn"].cls is ECNN and MODEL_TYPES["ifnn"].cls is IFNN
    assert MODEL_TYPES["ecnn"].default_dtype == "float32"
    assert MODEL_TYPES["ifnn"].default_dtype == "float64"


@pytest.mark.parametrize("name", sorted(MODEL_TYPES))
def test_schema_is_the_model_defaults(name):
    """Every constructor default of the model, and nothing else, is in the schema: the
    defaults are written once, in the model class."""
    cls = MODEL_TYPES[name].cls
    schema = model_schema(name)
    assert list(schema) == list(cls.DEFAULT_CONFIG)
    assert {k: d for k, (_, d) in schema.items()} == dict(cls.DEFAULT_CONFIG)
    assert check_model_config(name, {}) == dict(cls.DEFAULT_CONFIG)
    assert set(MODEL_TYPES[name].nullable) <= set(cls.DEFAULT_CONFIG)


def test_types_come_from_the_default_values():
    with pytest.raises(ConfigError, match="model_config \\(ecnn\\).*'channels' must be int"):
        check_model_config("ecnn", {"channels": 2.5})
    with pytest.raises(ConfigError, match="'time_reversal' must be bool"):
        check_model_config("ecnn", {"time_reversal": 1})
    with pytest.raises(ConfigError, match="'energy_scale' must be float"):
        check_model_config("ecnn", {"energy_scale": "big"})
    with pytest.raises(ConfigError, match="did you mean 'channels'"):
        check_model_config("ecnn", {"chanels": 3})
    with pytest.raises(ConfigError, match="'hidden' must be list"):
        check_model_config("ifnn", {"hidden": 64})
    cfg = check_model_config("ecnn", {"energy_scale": 2, "output_channels": (4, 1)})
    assert cfg["energy_scale"] == 2.0 and isinstance(cfg["energy_scale"], float)
    assert cfg["output_channels"] == [4, 1]


def test_nullable_keys_accept_null():
    cfg = check_model_config("ecnn", {"lattice": None, "num_bond_types": 8, "num_shells": None,
                                      "avg_num_neighbors": 6})
    assert cfg["lattice"] is None and cfg["avg_num_neighbors"] == 6.0
    with pytest.raises(ConfigError, match="'num_bond_types' must be int or null"):
        check_model_config("ecnn", {"num_bond_types": "eight"})
    with pytest.raises(ConfigError, match="'channels' must be int"):
        check_model_config("ecnn", {"channels": None})


def test_a_key_added_to_the_model_defaults_is_accepted(monkeypatch):
    monkeypatch.setitem(ECNN.DEFAULT_CONFIG, "new_width", 3)
    monkeypatch.setitem(ECNN.DEFAULT_CONFIG, "new_option", None)
    assert model_schema("ecnn")["new_width"] == (int, 3)
    cfg = check_model_config("ecnn", {"new_width": 5, "new_option": "x"})
    assert cfg["new_width"] == 5 and cfg["new_option"] == "x"
    assert check_model_config("ecnn", {})["new_width"] == 3
    with pytest.raises(ConfigError, match="'new_width' must be int"):
        check_model_config("ecnn", {"new_width": "five"})


def test_schema_from_defaults_refuses_stray_nullable_keys():
    with pytest.raises(ValueError, match="nullable keys \\['b'\\]"):
        schema_from_defaults({"a": 1}, {"b": int})


def test_build_model_and_bad_types():
    model = build_model("ecnn", TINY_ECNN)
    assert isinstance(model, ECNN) and model.config["channels"] == 2
    assert isinstance(build_model("ifnn", {"hidden": [4]}), IFNN)
    with pytest.raises(ConfigError, match="unknown model type 'gnn'; available: \\['ecnn', 'ifnn'\\]"):
        build_model("gnn")
    with pytest.raises(ConfigError, match="must be a mapping"):
        check_model_config("ecnn", [1, 2])


def _ckpt(model, **kw):
    return {"model_type": "ecnn", "model_config": model.config, "model_state": model.state_dict(),
            "dtype": "float64", "data": {"lattice": "square", "size": [4, 4]}, **kw}


def test_model_from_checkpoint_rebuilds_the_model():
    torch.manual_seed(0)
    model = build_model("ecnn", TINY_ECNN).double()
    again = model_from_checkpoint(_ckpt(model))
    assert not again.training and next(again.parameters()).dtype == torch.float64
    assert again.trained_on == {"lattice": "square", "size": [4, 4]}
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


def test_model_from_checkpoint_errors():
    model = build_model("ecnn", TINY_ECNN)
    with pytest.raises(CheckpointError, match="'x.pt' holds a model of unknown type 'gnn'"):
        model_from_checkpoint(_ckpt(model, model_type="gnn"), source="x.pt")
    with pytest.raises(CheckpointError, match="model config does not build.*chanels"):
        model_from_checkpoint(_ckpt(model, model_config={"chanels": 2}))
    with pytest.raises(CheckpointError, match="weights do not fit"):
        model_from_checkpoint(_ckpt(model, model_config={**model.config, "channels": 3}))
    with pytest.raises(CheckpointError, match="dtype must be"):
        model_from_checkpoint(_ckpt(model, dtype="float16"))
