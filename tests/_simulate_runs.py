"""Shared by the distributed simulate tests: a model checkpoint, a simulate config, the CLI.

Not a test module (no ``test_`` prefix); the tests import it from their own folder.
"""
from pathlib import Path

import yaml

from ecnn_pyg.checkpoint import save_checkpoint


def write_checkpoint(path: Path, model, hoppings: dict, size) -> str:
    """``model`` (square lattice, float64) saved as a checkpoint trained on ``size``."""
    save_checkpoint(path, {"model_type": "ecnn", "model_config": dict(model.config),
                           "model_state": model.state_dict(), "dtype": "float64",
                           "data": {"lattice": "square", "hoppings": hoppings, "size": size}})
    return str(path)


def write_config(tmp: Path, name: str, ckpt: str, base: dict, **kw):
    """A float64 ML-LLG config ``tmp/name.yaml`` (100 steps, saves every 50) on the
    lattice of ``base`` (``size``, ``hoppings``) with ``kw`` changed; returns
    ``(config path, output path)``."""
    cfg = {"output": str(tmp / f"{name}.h5"), "lattice": "square", **base, "source": "model", "model": ckpt, "integrator": "sib",
           "dt": 0.2, "alpha": 0.5, "temperature": 0.0, "zeeman": 0.01, "n_steps": 100,
           "save_every": 50, "seed": 3, "dtype": "float64", **kw}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path), cfg["output"]


def simulate_cli(config: str, *extra) -> int:
    """``ecnn-pyg simulate --config CONFIG --quiet EXTRA``; its exit code."""
    from ecnn_pyg.cli import main
    return main(["simulate", "--config", config, "--quiet", *extra])
