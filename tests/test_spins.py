"""Spins: the one random sampler and the one validation helper, shared by the package."""
import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import ecnn_pyg
from ecnn_pyg import dynamics, observables, spins, testing
from ecnn_pyg.spins import SpinError, as_spin_batch, check_spins, random_spins

PACKAGE = Path(ecnn_pyg.__file__).resolve().parent


def _defs(name):
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                out.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return out


@pytest.mark.parametrize("name", ["random_spins", "check_spins", "as_spin_batch"])
def test_one_definition_in_the_package(name):
    assert _defs(name) == [d for d in _defs(name) if d.startswith("spins.py")], _defs(name)
    assert len(_defs(name)) == 1, _defs(name)


def test_public_paths_are_re_exports():
    assert dynamics.random_spins is testing.random_spins is spins.random_spins
    assert dynamics.check_spins is spins.check_spins
    assert dynamics.SpinError is ecnn_pyg.SpinError is SpinError


def test_numpy_draws_are_those_of_the_generator():
    # data sets and simulation starts are reproducible from their seeds
    v = np.random.default_rng(7).standard_normal((3, 10, 3))
    expected = v / np.linalg.norm(v, axis=-1, keepdims=True)
    got = random_spins(10, 3, generator=np.random.default_rng(7))
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    assert np.array_equal(got, expected)
    assert random_spins(10, generator=np.random.default_rng(7)).shape == (10, 3)


def test_torch_draws():
    a = random_spins(20, seed=3)
    assert a.dtype == torch.float64 and a.shape == (20, 3)
    assert torch.allclose(a.norm(dim=-1), torch.ones(20, dtype=torch.float64))
    assert torch.equal(a, random_spins(20, seed=3))
    assert not torch.equal(a, random_spins(20, seed=4))
    x = torch.randn((20, 3), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.equal(a, x / x.norm(dim=-1, keepdim=True))
    b = random_spins(20, 2, seed=3, dtype=torch.float32)
    assert b.dtype == torch.float32 and b.shape == (2, 20, 3)
    # a torch generator draws what the same seed draws
    c = random_spins(20, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, c)


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_sites=0), "n_sites must be a positive integer"),
    (dict(n_sites=4, n_replicas=2.5), "n_replicas must be a positive integer"),
    (dict(n_sites=4, seed=1, generator=torch.Generator()), "a seed or a generator"),
    (dict(n_sites=4, generator=np.random.default_rng(0), dtype=torch.float32), "torch draws"),
    (dict(n_sites=4, generator="rng"), "torch.Generator or a numpy"),
])
def test_random_spins_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_spins(**kwargs)


def test_same_messages_for_torch_and_numpy():
    s = random_spins(6, 2, seed=0)
    s[1, 4, 0] = float("nan")
    with pytest.raises(SpinError, match=r"NaN or inf \(sample 1, site 4\)"):
        check_spins(s)
    with pytest.raises(SpinError, match=r"NaN or inf \(sample 1, site 4\)"):
        as_spin_batch(s.numpy(), 6)
    s = random_spins(6, seed=0)
    s[2] *= 1.5
    with pytest.raises(SpinError, match=r"unit vectors.*site 2 has \|S\| = 1.5"):
        check_spins(s)
    with pytest.raises(SpinError, match=r"unit vectors.*sample 0, site 2 has \|S\| = 1.5"):
        as_spin_batch(s.numpy(), 6)
    assert np.allclose(np.linalg.norm(as_spin_batch(s.numpy(), 6, normalize=True)[0], axis=-1), 1)
    with pytest.raises(SpinError, match="zero length"):
        as_spin_batch(np.zeros((6, 3)), 6, normalize=True)
    with pytest.raises(SpinError, match="have 5 sites but the graph has 6"):
        check_spins(random_spins(5, seed=0), n_sites=6)
    # observables go through the same helper
    g = ecnn_pyg.lattice_graph("square", 6)
    s = random_spins(36, seed=0)
    s[7] *= 2
    with pytest.raises(SpinError, match=r"unit vectors.*site 7 has \|S\| = 2"):
        observables.topological_charge(s, g)
