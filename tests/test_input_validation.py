"""Inputs that cannot be meant are refused with a clear message, before any work.

The memory guard (estimate, available memory, override), numbers given as
bools, complex spins, unreadable or empty spin files, and output paths that
cannot be written (checked before the computation).
"""
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import ecnn_pyg
from ecnn_pyg import runtime
from ecnn_pyg.cli import main
from ecnn_pyg.ed import EDError, KondoED, ed_memory_bytes
from ecnn_pyg.runtime import InsufficientMemoryError, available_memory, check_memory
from ecnn_pyg.spins import SpinError, as_spin_batch, random_spins

pytestmark = pytest.mark.usefixtures("one_thread")


def _unit(shape, seed=0):
    s = np.random.default_rng(seed).normal(size=shape)
    return s / np.linalg.norm(s, axis=-1, keepdims=True)


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder this process cannot write to (chmod; as root, which ignores it, /sys)."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    candidates = [d, Path("/sys")]
    for c in candidates:
        try:
            tempfile.TemporaryFile(dir=c).close()
        except OSError:
            yield c
            d.chmod(0o755)
            return
    d.chmod(0o755)
    pytest.skip("no folder that this process cannot write to")


# ------------------------------------------------------------------ the memory guard
def test_available_memory_reads_meminfo(monkeypatch):
    avail = available_memory()
    assert avail is not None and avail > 0
    # the fallback when /proc/meminfo cannot be read
    monkeypatch.setattr(runtime, "_meminfo_available", lambda: None)
    assert available_memory() > 0


def test_check_memory_refuses_with_the_figures():
    avail = available_memory()
    with pytest.raises(InsufficientMemoryError) as err:
        check_memory(10 * avail, "a test computation")
    msg = str(err.value)
    assert isinstance(err.value, MemoryError)
    assert "a test computation" in msg and "available" in msg and "allow=True" in msg
    assert runtime.format_bytes(10 * avail) in msg and runtime.format_bytes(avail) in msg
    assert err.value.needed == 10 * avail
    check_memory(10 * avail, "overridden", allow=True)         # the override
    assert check_memory(1, "small") == pytest.approx(avail, rel=0.5)


def test_ed_memory_estimate():
    # four complex (2N x 2N) matrices; the canonical twisted ED keeps one more per sector
    assert ed_memory_bytes(100) == 4 * 16 * 200 ** 2
    assert ed_memory_bytes(100, np.complex64) == 4 * 8 * 200 ** 2
    assert ed_memory_bytes(100, sectors=9, keep_sectors=True) == 13 * 16 * 200 ** 2


def test_kondo_ed_refuses_a_size_beyond_memory(monkeypatch):
    g = ecnn_pyg.lattice_graph("square", 20, {"t1": 1.0})       # needs 41 MB
    monkeypatch.setattr(runtime, "available_memory", lambda: 10 * 2 ** 20)
    with pytest.raises(InsufficientMemoryError, match="ignore_memory_check=True"):
        KondoED(g, J=7.0, electrons=400)
    KondoED(g, J=7.0, electrons=400, ignore_memory_check=True)


def test_cli_ed_refuses_size_100_at_once(tmp_path, capsys):
    """The 20000 x 20000 complex ED of a 100 x 100 lattice: refused in well under a second.

    The estimate is 23.8 GiB; refused on any machine with less available.
    """
    if (available_memory() or 0) > ed_memory_bytes(100 * 100):
        pytest.skip("this machine has memory for the 100 x 100 ED")
    np.save(tmp_path / "s.npy", _unit((10000, 3)))
    t = time.perf_counter()
    rc = main(["ed", "--size", "100", "100", "--t1", "1", "--J", "7", "--electrons", "10000",
               "--spins", str(tmp_path / "s.npy"), "--out", str(tmp_path / "o.npz")])
    took = time.perf_counter() - t
    err = capsys.readouterr().err
    assert rc == 2 and took < 10, took
    assert "23.8 GiB" in err and "available" in err and "--ignore-memory-check" in err
    assert "Traceback" not in err and not (tmp_path / "o.npz").exists()


# ------------------------------------------------------------------ numbers and spins
@pytest.mark.parametrize("key,value", [("electrons", True), ("J", True), ("mu", False),
                                       ("filling", True), ("J", 1 + 2j), ("J", "7")])
def test_ed_refuses_bools_and_non_numbers(key, value):
    g = ecnn_pyg.lattice_graph("square", 4, {"t1": 1.0})
    kw = {"J": 7.0, "electrons": 14}
    if key in ("mu", "filling"):
        kw.pop("electrons")
    kw[key] = value
    with pytest.raises(EDError, match=f"{key} must be a finite real number"):
        KondoED(g, **kw)


def test_complex_spins_are_refused_not_truncated():
    s = _unit((4, 3)).astype(np.complex128) * (1 + 0.5j)
    with pytest.raises(SpinError, match="imaginary part"):
        as_spin_batch(s, 4)
    with pytest.raises(SpinError, match="real numbers"):
        as_spin_batch(np.ones((4, 3), dtype=bool), 4)
    # real integer and float input is still accepted
    assert as_spin_batch(np.tile([0, 0, 1], (4, 1)), 4)[0].dtype == np.float64


def _ed_args(tmp_path, spins_file, out, *extra):
    return ["ed", "--size", "4", "4", "--t1", "1", "--J", "7", "--electrons", "14",
            "--spins", str(spins_file), "--out", str(out), *extra]


def test_cli_ed_refuses_empty_and_complex_spin_files(tmp_path, capsys):
    np.save(tmp_path / "empty.npy", np.zeros((0, 16, 3)))
    assert main(_ed_args(tmp_path, tmp_path / "empty.npy", tmp_path / "o.npz")) == 2
    assert "holds no spins" in capsys.readouterr().err
    np.save(tmp_path / "c.npy", _unit((16, 3)).astype(np.complex64))
    assert main(_ed_args(tmp_path, tmp_path / "c.npy", tmp_path / "o.npz")) == 2
    assert "imaginary part" in capsys.readouterr().err
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    assert main(_ed_args(tmp_path, tmp_path / "junk.npy", tmp_path / "o.npz")) == 2
    assert "cannot read spins" in capsys.readouterr().err


def test_cli_ed_checks_the_output_path_before_computing(tmp_path, readonly_dir, capsys,
                                                        monkeypatch):
    np.save(tmp_path / "s.npy", _unit((16, 3)))
    calls = []
    monkeypatch.setattr(KondoED, "energy_field", lambda self, s: calls.append(s))
    out = readonly_dir / "sub" / "o.npz"
    assert main(_ed_args(tmp_path, tmp_path / "s.npy", out)) == 2
    err = capsys.readouterr().err
    assert "not writable" in err and "Traceback" not in err and calls == []
