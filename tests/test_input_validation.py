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
    # in a fresh process the refusal comes before torch (and SciPy) are loaded
    out = _python(f"import sys\nfrom ecnn_pyg.cli import main\n"
                  f"rc = main(['ed', '--size', '100', '100', '--t1', '1', '--J', '7', "
                  f"'--electrons', '10000', '--spins', {str(tmp_path / 's.npy')!r}, "
                  f"'--out', {str(tmp_path / 'o.npz')!r}])\n"
                  f"print(rc, 'torch' in sys.modules, 'scipy' in sys.modules)\n")
    assert out == ["2", "False", "False"]


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


# ------------------------------------------------------------------ the model's inputs
@pytest.mark.parametrize("bad", [float("nan"), 5.0, 0.0, float("inf")])
def test_ecnn_refuses_spins_that_are_not_finite_unit_vectors(bad):
    import torch
    from ecnn_pyg.nn import ECNN, ModelInputError
    g = ecnn_pyg.lattice_graph("square", 4, {"t1": 1.0})
    model = ECNN("square", channels=2, num_blocks=1, lmax=1)
    s = torch.from_numpy(_unit((16, 3))).float()
    s[5] *= bad
    with pytest.raises(ModelInputError, match="site 5 has"):
        model(g, s)
    s[5] /= bad if bad not in (0.0, float("nan"), float("inf")) else 1.0
    model.spin_tolerance = None                 # the documented opt-out
    model(g, torch.from_numpy(_unit((16, 3))).float() * 1.5)


def test_ecnn_accepts_unit_spins_within_the_tolerance():
    import torch
    from ecnn_pyg.nn import ECNN
    g = ecnn_pyg.lattice_graph("square", 4, {"t1": 1.0})
    model = ECNN("square", channels=2, num_blocks=1, lmax=1)
    out = model(g, torch.from_numpy(_unit((16, 3)) * (1 + 1e-3)).float())
    assert torch.isfinite(out["field"]).all()


# ------------------------------------------------------------------ checkpoints
def _tiny_checkpoint(path, lattice="square", size=(4, 4), nan=False, dtype="float32"):
    import torch
    from ecnn_pyg.checkpoint import save_checkpoint
    from ecnn_pyg.nn import ECNN
    torch.manual_seed(0)
    model = ECNN(lattice, channels=2, num_blocks=1, lmax=1)
    state = model.state_dict()
    if nan:
        key = next(k for k, v in state.items() if v.is_floating_point() and v.numel())
        state[key] = state[key].clone()
        state[key].view(-1)[0] = float("nan")
    return save_checkpoint(path, {"model_type": "ecnn", "model_config": model.config,
                                  "model_state": state, "dtype": dtype,
                                  "data": {"lattice": lattice, "size": list(size),
                                           "hoppings": {"t1": 1.0}}})


def test_checkpoint_with_nan_weights_is_refused(tmp_path, capsys):
    from ecnn_pyg.checkpoint import CheckpointError, load_checkpoint
    p = _tiny_checkpoint(tmp_path / "nan.pt", nan=True)
    with pytest.raises(CheckpointError, match="not finite.*best.pt"):
        load_checkpoint(p)
    np.save(tmp_path / "s.npy", _unit((2, 16, 3)))
    rc = main(["evaluate", "--model", str(p), "--spins", str(tmp_path / "s.npy"),
               "--out", str(tmp_path / "o.npz")])
    assert rc == 2 and "not finite" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int64", "Tensor", 32])
def test_checkpoint_dtype_must_be_float32_or_float64(tmp_path, dtype):
    from ecnn_pyg.checkpoint import CheckpointError, validate_checkpoint
    ckpt = {"format": "ecnn_pyg-checkpoint", "format_version": 1,
            "package_version": ecnn_pyg.__version__, "model_type": "ecnn",
            "model_config": {}, "model_state": {}, "dtype": dtype}
    with pytest.raises(CheckpointError, match="dtype must be one of"):
        validate_checkpoint(ckpt)


def test_evaluate_refuses_non_finite_predictions(tmp_path, capsys, monkeypatch):
    import ecnn_pyg.training
    p = _tiny_checkpoint(tmp_path / "m.pt")
    np.save(tmp_path / "s.npy", _unit((2, 16, 3)))

    def nan_predictions(model, graph, spin, *a, **kw):
        return {"energy": np.array([0.0, np.nan]), "field": np.zeros((2, 16, 3))}
    monkeypatch.setattr(ecnn_pyg.training, "evaluate_arrays", nan_predictions)
    rc = main(["evaluate", "--model", str(p), "--spins", str(tmp_path / "s.npy"),
               "--out", str(tmp_path / "o.npz")])
    assert rc == 2 and "not finite" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


# ------------------------------------------------------------------ evaluate's options
def test_evaluate_refuses_a_batch_size_below_one(tmp_path, capsys):
    p = _tiny_checkpoint(tmp_path / "m.pt")
    np.save(tmp_path / "s.npy", _unit((2, 16, 3)))
    for bad in ("-1", "0", "x"):
        with pytest.raises(SystemExit) as exit_:
            main(["evaluate", "--model", str(p), "--spins", str(tmp_path / "s.npy"),
                  "--out", str(tmp_path / "o.npz"), "--batch-size", bad])
        assert exit_.value.code == 2
        assert "--batch-size: must be a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()
    from ecnn_pyg.training import evaluate_arrays
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_arrays(None, None, None, batch_size=-1)


def test_evaluate_never_guesses_the_spin_shape(tmp_path, capsys):
    p = _tiny_checkpoint(tmp_path / "m.pt", size=(6, 6))
    # one 16 x 16 configuration: not 16 configurations of a guessed 4 x 4 lattice (the
    # model's lattice is 6 x 6, so (16, 16, 3) fits neither (36, 3) nor (n, 36, 3))
    np.save(tmp_path / "one.npy", _unit((16, 16, 3)))
    args = ["evaluate", "--model", str(p), "--spins", str(tmp_path / "one.npy")]
    assert main(args + ["--out", str(tmp_path / "a.npz")]) == 2
    err = capsys.readouterr().err
    assert "(n_sites=36, 3) or (n_samples, 36, 3)" in err and "--size" in err
    assert not (tmp_path / "a.npz").exists()
    # ... unless the size says so
    assert main(args + ["--out", str(tmp_path / "b.npz"), "--size", "16", "16"]) == 0
    assert np.load(tmp_path / "b.npz")["field"].shape == (1, 256, 3)
    # (2, 63, 3) is not a lattice of the model
    np.save(tmp_path / "odd.npy", _unit((2, 63, 3)))
    assert main(["evaluate", "--model", str(p), "--spins", str(tmp_path / "odd.npy"),
                 "--out", str(tmp_path / "c.npz")]) == 2
    assert "do not fit a lattice of 36 sites" in capsys.readouterr().err


def test_one_spin_shape_convention_for_ed_and_evaluate_with_a_basis(tmp_path, capsys):
    """Honeycomb (2 sites per cell), 12 x 12: spins (2, 288, 3) work in both commands."""
    p = _tiny_checkpoint(tmp_path / "h.pt", lattice="honeycomb", size=(12, 12))
    spins = _unit((2, 288, 3))
    np.save(tmp_path / "s.npy", spins)
    np.save(tmp_path / "s5.npy", spins.reshape(2, 12, 12, 2, 3))
    ev = ["evaluate", "--model", str(p), "--lattice", "honeycomb", "--size", "12", "12"]
    assert main(ev + ["--spins", str(tmp_path / "s.npy"), "--out", str(tmp_path / "e.npz")]) == 0
    assert main(ev + ["--spins", str(tmp_path / "s5.npy"),
                      "--out", str(tmp_path / "e5.npz")]) == 0
    # without --size: the model's training size, 12 x 12 (not one 2 x 288 cell)
    assert main(["evaluate", "--model", str(p), "--spins", str(tmp_path / "s.npy"),
                 "--out", str(tmp_path / "e0.npz")]) == 0
    fields = [np.load(tmp_path / f)["field"] for f in ("e.npz", "e5.npz", "e0.npz")]
    assert all(f.shape == (2, 288, 3) for f in fields)
    np.testing.assert_array_equal(fields[0], fields[1])
    np.testing.assert_array_equal(fields[0], fields[2])
    assert main(["ed", "--lattice", "honeycomb", "--size", "12", "12", "--t1", "1", "--J", "2",
                 "--electrons", "288", "--spins", str(tmp_path / "s.npy"),
                 "--out", str(tmp_path / "ed.npz")]) == 0
    assert np.load(tmp_path / "ed.npz")["field"].shape == (2, 288, 3)
    # the same file on another size is refused in both, naming the expected shapes
    capsys.readouterr()
    assert main(ev[:-2] + ["6", "6", "--spins", str(tmp_path / "s.npy"),
                           "--out", str(tmp_path / "x.npz")]) == 2
    assert "(n_sites=72, 3)" in capsys.readouterr().err


def test_evaluate_outputs_follow_one_rule(tmp_path, square_data, capsys, monkeypatch):
    """An existing parity plot (the default name in the current folder) is kept without
    --force, as --out is, and both are checked before the model is loaded."""
    import ecnn_pyg.pretrained
    monkeypatch.chdir(tmp_path)
    (tmp_path / "parity_val.png").write_bytes(b"keep me")
    loads = []
    real = ecnn_pyg.pretrained.load_model_and_checkpoint
    monkeypatch.setattr(ecnn_pyg.pretrained, "load_model_and_checkpoint",
                        lambda *a, **k: loads.append(a) or real(*a, **k))
    p = _tiny_checkpoint(tmp_path / "m.pt")
    assert main(["evaluate", "--model", str(p), "--data", str(square_data)]) == 2
    assert "parity_val.png' exists; use --force" in capsys.readouterr().err
    assert (tmp_path / "parity_val.png").read_bytes() == b"keep me" and loads == []
    assert main(["evaluate", "--model", str(p), "--data", str(square_data), "--force"]) == 0
    assert (tmp_path / "parity_val.png").stat().st_size > 1000 and len(loads) == 1


def test_evaluate_checks_unwritable_outputs_before_the_model(tmp_path, readonly_dir, capsys,
                                                            monkeypatch, square_data):
    import ecnn_pyg.pretrained
    monkeypatch.setattr(ecnn_pyg.pretrained, "load_model_and_checkpoint",
                        lambda *a, **k: pytest.fail("the model was loaded"))
    np.save(tmp_path / "s.npy", _unit((2, 16, 3)))
    assert main(["evaluate", "--model", "square-paper", "--spins", str(tmp_path / "s.npy"),
                 "--out", str(readonly_dir / "o.npz")]) == 2
    assert "not writable" in capsys.readouterr().err
    assert main(["evaluate", "--model", "square-paper", "--data", str(square_data),
                 "--plot", str(readonly_dir / "p.png")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_shipped_models_are_listed(capsys):
    names = ecnn_pyg.pretrained.available()
    assert len(names) >= 2
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in names) and "RMSE(B)" in out
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    help_text = capsys.readouterr().out
    assert all(n in help_text for n in names)


# ------------------------------------------------------------------ devices and threads
@pytest.mark.parametrize("spec,match", [("banana", "unknown device"), ("meta", "not supported"),
                                       (True, "must be a name"), (-1, "must be a name")])
def test_resolve_device_refuses_unknown_devices(spec, match):
    with pytest.raises(ValueError, match=match):
        runtime.resolve_device(spec)
    assert str(runtime.resolve_device("cpu")) == "cpu"


def test_resolve_device_refuses_cuda_without_cuda(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="use device 'cpu'"):
        runtime.resolve_device("cuda")


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_set_threads_refuses_non_positive_counts(n):
    with pytest.raises(ValueError, match="positive integer"):
        runtime.set_threads(n)


def _python(code, **env):
    import subprocess
    import sys
    base = {k: v for k, v in os.environ.items()
            if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                         runtime.THREADS_ENV)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**base, **env}, timeout=300)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().splitlines()[-1].split()     # the last line printed


def test_help_and_argument_errors_do_not_import_torch():
    """``ecnn-pyg --help``, a command's ``--help`` and a usage error answer without torch."""
    out = _python(
        "import sys\n"
        "from ecnn_pyg.cli import main\n"
        "for argv in (['--help'], ['evaluate', '--help'], ['simulate', '--help'], ['ed']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print([m for m in ('torch', 'torch_geometric', 'e3nn', 'h5py', 'scipy', 'numpy') "
        "if m in sys.modules])\n")
    assert out == ["[]"]


def test_the_command_line_uses_one_thread_unless_told():
    """One process (torch loads once): the default, --threads, the package's variable, and
    a user's OMP_NUM_THREADS, which the command line leaves alone."""
    out = _python(
        "import os\nfrom ecnn_pyg.cli import main\n"
        "main(['lattices'])\nimport torch\nr = [torch.get_num_threads(), "
        "os.environ['OPENBLAS_NUM_THREADS']]\n"
        "main(['lattices', '--threads', '2'])\nr.append(torch.get_num_threads())\n"
        "os.environ['ECNN_PYG_NUM_THREADS'] = '3'\nmain(['lattices'])\n"
        "r.append(torch.get_num_threads())\n"
        "del os.environ['ECNN_PYG_NUM_THREADS']\nos.environ['OMP_NUM_THREADS'] = '2'\n"
        "main(['lattices'])\nr.append(torch.get_num_threads())\n"
        "print(*r)\n")
    assert out == ["1", "1", "2", "3", "3"]


@pytest.mark.parametrize("setting,match", [("device=banana", "unknown device 'banana'"),
                                           ("num_threads=-1", "num_threads must be a positive"),
                                           ("num_threads=0", "num_threads must be a positive")])
def test_simulate_refuses_devices_and_thread_counts_that_cannot_be_meant(tmp_path, capsys,
                                                                        setting, match):
    out = tmp_path / "t.h5"
    rc = main(["simulate", "--quiet", "--set", setting, f"output={out}"])
    err = capsys.readouterr().err
    assert rc == 2 and match in err and "Traceback" not in err
    assert not out.exists()


def test_simulate_refuses_cuda_without_cuda(tmp_path, capsys, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["simulate", "--quiet", "--set", "device=cuda", f"output={tmp_path / 't.h5'}"]) == 2
    assert "use device 'cpu'" in capsys.readouterr().err


def test_an_empty_spin_file_is_refused_everywhere(tmp_path, capsys):
    np.save(tmp_path / "empty.npy", np.zeros((0, 2304, 3)))
    with pytest.raises(SpinError, match="empty"):
        as_spin_batch(np.zeros((0, 16, 3)), 16)
    rc = main(["simulate", "--quiet", "--set", f"initial={tmp_path / 'empty.npy'}",
               f"output={tmp_path / 't.h5'}"])
    err = capsys.readouterr().err
    assert rc == 2 and "empty" in err and "Traceback" not in err


def test_import_ecnn4klm_checks_its_output_first(tmp_path, readonly_dir, capsys):
    rc = main(["import-ecnn4klm", "--checkpoint", str(tmp_path / "missing.cpt"),
               "--lattice", "square", "--out", str(readonly_dir / "m.pt")])
    assert rc == 2 and "not writable" in capsys.readouterr().err


# --------------------------------------------------------------- lattice files and sizes
def _square_spec():
    import yaml
    return yaml.safe_load((Path(ecnn_pyg.lattice.LATTICES_DIR) / "square.yaml").read_text())


@pytest.mark.parametrize("edit, match", [
    (lambda s: s["hoppings"]["t2"].update(bonds=5), "'bonds' of shell 't2' must be a non-empty list"),
    (lambda s: s["hoppings"]["t2"].update(bonds=[]), "'bonds' of shell 't2' must be a non-empty list"),
    (lambda s: s["vectors"][0].__setitem__(0, float("nan")), "'vectors' must be finite"),
    (lambda s: s["basis"][0].__setitem__(0, float("inf")), "'basis' must be finite"),
    (lambda s: s["hoppings"]["t1"]["bonds"][0].update({"from": 0.5}), "must be {from: int"),
    (lambda s: s["hoppings"]["t1"]["bonds"][0].update(offset=[1.5, 0]), "must be {from: int"),
    (lambda s: s["hoppings"]["t1"]["bonds"][0].update(offset=[True, 0]), "must be {from: int"),
    (lambda s: s["hoppings"]["t1"].update(default=float("nan")), "finite real number"),
    (lambda s: s["hoppings"]["t1"].update(default="one"), "finite real number"),
])
def test_lattice_file_values_that_cannot_be_meant_are_refused(tmp_path, capsys, edit, match):
    """A malformed lattice file is a one-line error naming the key, never a traceback or a
    silently truncated value (offset 1.5 was read as 1, a NaN vector was accepted)."""
    import yaml
    spec = _square_spec()
    edit(spec)
    with pytest.raises(ecnn_pyg.lattice.LatticeError, match=match):
        ecnn_pyg.lattice.Lattice.from_dict(spec)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["lattices", str(path)]) == 2
    assert match.split("'")[0] in capsys.readouterr().err


@pytest.mark.parametrize("size", [[8, 8.5], [8, True], [8, "8"], [8, -1], [8], 0])
def test_a_supercell_size_that_is_not_positive_integers_is_refused(size):
    with pytest.raises(ecnn_pyg.lattice.LatticeError, match="positive integers"):
        ecnn_pyg.lattice_graph("square", size)


def test_integer_valued_sizes_are_accepted():
    assert ecnn_pyg.lattice_graph("square", [4, 4.0]).num_nodes == 16


def test_generate_refuses_a_size_beyond_memory_before_building_the_graph(tmp_path, capsys):
    out = tmp_path / "x.h5"
    t0 = time.perf_counter()
    assert main(["generate", "--set", "size=[100000, 100000]", f"output={out}"]) == 2
    err = capsys.readouterr().err
    assert "TiB" in err and "available" in err and "ignore_memory_check" in err
    assert time.perf_counter() - t0 < 30 and not out.exists()


@pytest.mark.parametrize("key,value", [("spins_from", "spins.npy"), ("snapshots", "2:")])
def test_generate_refuses_a_spin_file_that_its_sampler_would_ignore(tmp_path, key, value):
    """spins_from without sampler: file labelled random spins instead of the file's, exit 0."""
    from ecnn_pyg.generate import generate
    np.save(tmp_path / "spins.npy", random_spins(16, seed=0).numpy()[None])
    cfg = {"lattice": "square", "size": [4, 4], "J": 3.0, "electrons": 10,
           "splits": {"train": 1}, "output": str(tmp_path / "d.h5"),
           key: str(tmp_path / value) if key == "spins_from" else value}
    with pytest.raises(ValueError, match=rf"{key} is read only by sampler: file"):
        generate(cfg, progress=False)
    assert not (tmp_path / "d.h5").exists()


def test_generate_refuses_spin_files_off_the_unit_sphere(tmp_path):
    """|S| = 5 spins were rescaled to unit length without a word; float32 rounding still is."""
    from ecnn_pyg.generate import generate
    from ecnn_pyg.spins import SpinError
    s = random_spins(16, seed=0).numpy()[None].astype(np.float64)
    cfg = {"lattice": "square", "size": [4, 4], "J": 3.0, "electrons": 10, "sampler": "file",
           "splits": {"train": 1}, "output": str(tmp_path / "d.h5"),
           "spins_from": str(tmp_path / "s.npy")}
    np.save(tmp_path / "s.npy", 5 * s)
    with pytest.raises(SpinError, match="unit length|\\|S\\|"):
        generate(cfg, progress=False)
    assert not (tmp_path / "d.h5").exists()
    np.save(tmp_path / "s.npy", (s * (1 + 1e-5)).astype(np.float32))     # rounding: accepted
    from ecnn_pyg.datasets import read_arrays
    spins = read_arrays(generate(cfg, progress=False))["spin"]
    assert np.allclose(np.linalg.norm(spins, axis=-1), 1, atol=1e-6)


def test_an_output_below_a_file_names_the_file(tmp_path):
    """An output path through an existing file was reported as 'File exists'."""
    from ecnn_pyg.locking import OutputNotWritableError, check_writable
    (tmp_path / "runs").write_text("not a folder")
    for out in (tmp_path / "runs" / "x.h5", tmp_path / "runs" / "a" / "b" / "x.h5"):
        with pytest.raises(OutputNotWritableError, match=r"runs' is a file, not a folder"):
            check_writable(out, "data set")
    assert (tmp_path / "runs").read_text() == "not a folder"
