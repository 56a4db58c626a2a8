"""Checkpoint files: atomic writes, refused corrupted / truncated / foreign files, versions."""
import ast
import os
from pathlib import Path

import pytest
import torch

import ecnn_pyg
from ecnn_pyg import __version__
from ecnn_pyg.checkpoint import (FORMAT, FORMAT_VERSION, CheckpointError, load_checkpoint,
                                 save_checkpoint, validate_checkpoint)
from ecnn_pyg.models import build_model

TINY_ECNN = {"channels": 2, "num_blocks": 1, "lmax": 1}


def _state(**extra):
    model = build_model("ecnn", TINY_ECNN)
    return {"model_type": "ecnn", "model_config": model.config, "model_state": model.state_dict(),
            "dtype": "float32", **extra}


@pytest.fixture
def good(tmp_path):
    return save_checkpoint(tmp_path / "good.pt", _state(epoch=3))


def test_checkpoint_imports_no_other_package_module():
    """checkpoint.py is the leaf of the model-loading stack: of the package it imports only
    __version__ (and, if ever needed, the config errors)."""
    path = Path(ecnn_pyg.__file__).parent / "checkpoint.py"
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if node.level or module.startswith("ecnn_pyg"):
                found.append((module, sorted(a.name for a in node.names)))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("ecnn_pyg")]
    allowed = {(".", ("__version__",)), ("ecnn_pyg", ("__version__",)), ("._version", ("__version__",)),
               (".config", ("ConfigError",)), ("ecnn_pyg.config", ("ConfigError",))}
    stray = [(m, names) for m, names in found if (m, tuple(names)) not in allowed]
    assert not stray, f"checkpoint.py imports package modules: {stray}"
    assert found, "the walk should at least see the __version__ import"


def test_roundtrip_adds_format_fields(good):
    ck = load_checkpoint(good)
    assert ck["format"] == FORMAT and ck["format_version"] == FORMAT_VERSION
    assert ck["package_version"] == __version__ and ck["epoch"] == 3
    for k, v in _state()["model_state"].items():
        assert ck["model_state"][k].shape == v.shape, k


def test_atomic_save_leaves_no_temp_and_a_normal_mode(tmp_path):
    path = save_checkpoint(tmp_path / "sub" / "c.pt", _state())
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_interrupted_save_keeps_the_old_file(good, monkeypatch):
    """A write that fails half-way leaves the previous checkpoint intact and no temp file."""
    before = good.read_bytes()
    real_save = torch.save

    def failing_save(obj, f, *a, **kw):
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt
    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(good, _state(epoch=4))
    monkeypatch.setattr(torch, "save", real_save)
    assert good.read_bytes() == before
    assert [p.name for p in good.parent.iterdir()] == [good.name]
    assert load_checkpoint(good)["epoch"] == 3


def test_save_refuses_an_incomplete_state(tmp_path):
    with pytest.raises(CheckpointError, match="lacks 'model_state'"):
        save_checkpoint(tmp_path / "c.pt", {"model_type": "ecnn", "model_config": {}})
    with pytest.raises(CheckpointError, match="model_type must be a string"):
        save_checkpoint(tmp_path / "c.pt", {"model_type": 1, "model_config": {},
                                            "model_state": {}})
    assert list(tmp_path.iterdir()) == []


def test_corrupted_truncated_and_foreign_files_are_refused(good, tmp_path):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        load_checkpoint(truncated)
    flipped = bytearray(good.read_bytes())
    mid = len(flipped) // 2
    flipped[mid:mid + 64] = b"\x00" * 64
    (tmp_path / "flipped.pt").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(tmp_path / "flipped.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a checkpoint: not a torch.save file"):
        load_checkpoint(tmp_path / "text.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "empty.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an ecnn_pyg checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match="not an ecnn_pyg checkpoint"):
        load_checkpoint(tmp_path / "tensor.pt")
    # arbitrary Python objects are never unpickled (weights_only)
    torch.save({**load_checkpoint(good), "extra": Path("x")}, tmp_path / "objects.pt")
    with pytest.raises(CheckpointError, match="Python objects other than tensors"):
        load_checkpoint(tmp_path / "objects.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


def test_version_checks(good, tmp_path):
    ck = load_checkpoint(good)
    ck["package_version"] = "9.9.0"
    torch.save(ck, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="written by ecnn_pyg '9.9.0'"):
        load_checkpoint(tmp_path / "future.pt")
    assert load_checkpoint(tmp_path / "future.pt", strict_version=False)["epoch"] == 3
    # another patch release of the same major.minor is accepted
    major, minor = __version__.split(".")[:2]
    ck["package_version"] = f"{major}.{minor}.99"
    torch.save(ck, tmp_path / "patch.pt")
    assert load_checkpoint(tmp_path / "patch.pt")["epoch"] == 3
    ck["format_version"] = 99
    torch.save(ck, tmp_path / "fmt.pt")
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(tmp_path / "fmt.pt", strict_version=False)


def test_validate_checkpoint_names_what_is_missing():
    base = {"format": FORMAT, "format_version": FORMAT_VERSION, "package_version": __version__}
    with pytest.raises(CheckpointError, match="lacks 'model_type'"):
        validate_checkpoint(dict(base), source="x.pt")
    with pytest.raises(CheckpointError, match="model_config must be a dict"):
        validate_checkpoint({**base, "model_type": "ecnn", "model_config": [1],
                             "model_state": {}})
    with pytest.raises(CheckpointError, match="not an ecnn_pyg checkpoint"):
        validate_checkpoint([1, 2])
    ok = {**base, "model_type": "ecnn", "model_config": {}, "model_state": {}}
    assert validate_checkpoint(ok) is ok
