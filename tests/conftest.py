import numpy as np
import pytest
import torch


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def one_thread():
    """Tiny models: one thread is faster (and leaves the other core to other jobs)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


#: a 5 x 5 triangular data set of 6 exact samples (4 train, 2 val), seconds to generate
SMALL_DATA = {"lattice": "triangular", "size": [5, 5], "hoppings": {"t1": 1.0, "t3": -0.4},
              "J": -1.0, "mu": -1.5, "seed": 7, "splits": {"train": 4, "val": 2}}


@pytest.fixture
def small_config(tmp_path):
    """Generate config of :data:`SMALL_DATA` writing ``tmp_path / "d.h5"``."""
    return {**SMALL_DATA, "output": str(tmp_path / "d.h5")}


@pytest.fixture
def small_dataset(small_config):
    """Path of the generated :data:`SMALL_DATA` set."""
    from ecnn_pyg.generate import generate
    return generate(small_config, progress=False)


def _square_set(path, seed, splits):
    from ecnn_pyg.generate import generate
    generate({"output": str(path), "lattice": "square", "size": [4, 4], "hoppings": {"t1": 1.0},
              "J": 7.0, "electrons": 14, "seed": seed, "splits": splits}, progress=False)
    return path


@pytest.fixture(scope="session")
def square_data(tmp_path_factory):
    """A 4 x 4 square data set (J = 7, 14 electrons; 6 train, 3 val) for training tests."""
    return _square_set(tmp_path_factory.mktemp("data") / "sq6.h5", 1, {"train": 6, "val": 3})


@pytest.fixture(scope="session")
def square_data_other(tmp_path_factory):
    """Another set of square_data's model, file name ``other.h5`` (other spins: seed 2;
    4 train, 2 val): a second file of the same training data."""
    return _square_set(tmp_path_factory.mktemp("data2") / "other.h5", 2, {"train": 4, "val": 2})


# ------------------------------------------------- a generate run killed at a known point

#: samples a held run writes before it waits
HELD = 3
# the sampler labels samples 0..HELD-1, then touches the file named by $READY and sleeps in
# sample HELD: a kill then lands mid-run at a known point, however fast the machine is
_HELD_GENERATE = f"""
import os, sys, time
from ecnn_pyg import generate as G
from ecnn_pyg.cli import main
calls = []
def held(n, rng):
    calls.append(n)
    if len(calls) > {HELD}:
        open(os.environ["READY"], "w").close()
        time.sleep(600)
    return G.SAMPLERS["uniform"](n, rng)
G.SAMPLERS["held"] = held
sys.exit(main(sys.argv[1:]))
"""


def start_held_generate(cfg, tmp_path, *, popen=None, **kw):
    """``ecnn-pyg generate`` of ``cfg`` (``sampler: held``) in a subprocess, started from the
    config file it writes in ``tmp_path``; returns ``(process, config path)`` once it has
    written ``HELD`` samples and waits in the next. ``kw`` go to ``popen``
    (``subprocess.Popen`` unless given)."""
    import os
    import subprocess
    import sys
    import time
    import yaml
    path, ready = tmp_path / "c.yaml", tmp_path / "ready"
    path.write_text(yaml.safe_dump(cfg))
    kw.setdefault("stderr", subprocess.PIPE)
    proc = (popen or subprocess.Popen)(
        [sys.executable, "-c", _HELD_GENERATE, "generate", "--quiet", "--config", str(path)],
        env={**kw.pop("env", os.environ), "READY": str(ready)}, **kw)
    deadline = time.time() + 300
    while not ready.exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise AssertionError(f"the held run did not reach sample {HELD}: "
                                 f"{proc.communicate()[1]}")
        time.sleep(0.05)
    return proc, path
