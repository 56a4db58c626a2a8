"""Faults: concurrent writers, full disks, torn saves, damaged files, Ctrl-C, read-only outputs.

Each test injects the fault (a second process, an ``OSError`` from a write, a
file-size limit, an exception between two writes, a truncated or altered file,
SIGINT) and checks that nothing is lost and nothing wrong is accepted.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import yaml

import ecnn_pyg.simulate as S
from ecnn_pyg import generate as G
from ecnn_pyg import keys as K
from ecnn_pyg.cli import main
from ecnn_pyg.datasets import (DataFileError, SpinDataset, damaged_samples, read_arrays,
                               read_meta)
from ecnn_pyg.generate import generate
from ecnn_pyg.locking import (OutputLockedError, OutputWriteError, lock_path, output_lock,
                              read_lock)
from conftest import HELD, start_held_generate

# a process that holds the lock of argv[1] until it is killed
HOLDER = """
import sys, time
from ecnn_pyg.locking import output_lock
with output_lock(sys.argv[1], what="test output"):
    print("locked", flush=True)
    time.sleep(600)
"""


def _hold(path):
    """A subprocess holding the lock of ``path`` (returned once the lock exists)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == "locked", proc.stderr.read()
    return proc


# ---------------------------------------------------------------- the lock itself

def test_lock_file_names_the_owner_and_is_removed(tmp_path):
    out = tmp_path / "x.h5"
    with output_lock(out, what="data set") as lock:
        assert lock == lock_path(out) == tmp_path / "x.h5.lock"
        owner = read_lock(out)
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        assert owner["time"] <= time.time() and owner["command"]
        # a second writer in the same process is refused too
        with pytest.raises(OutputLockedError, match=rf"data set '{out}'.*pid {os.getpid()}"):
            with output_lock(out, what="data set"):
                pass
        assert lock.exists()                    # the refused writer left the lock alone
    assert not lock.exists() and read_lock(out) is None
    assert sorted(os.listdir(tmp_path)) == []   # no temporary files left either


def test_lock_removed_on_exception(tmp_path):
    out = tmp_path / "x.h5"
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with output_lock(out):
                raise exc
        assert not lock_path(out).exists()


def test_second_process_is_refused_whatever_hdf5_does(tmp_path, monkeypatch):
    monkeypatch.setenv("HDF5_USE_FILE_LOCKING", "FALSE")
    out = tmp_path / "y.h5"
    proc = _hold(out)
    try:
        with pytest.raises(OutputLockedError, match=rf"pid {proc.pid} on host "
                                                    rf"{socket.gethostname()}.*kill {proc.pid}"):
            with output_lock(out):
                pass
    finally:
        proc.kill()
        proc.wait()
    # the holder was SIGKILLed: its lock is stale, taken over with a warning
    assert read_lock(out)["pid"] == proc.pid
    with pytest.warns(RuntimeWarning, match="taking over.*no longer runs"):
        with output_lock(out):
            assert read_lock(out)["pid"] == os.getpid()
    assert not lock_path(out).exists()


def test_stale_lock_of_a_dead_pid_is_taken_over(tmp_path):
    out = tmp_path / "z.h5"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    lock_path(out).write_text(json.dumps({"pid": int(dead), "host": socket.gethostname(),
                                          "time": 0, "command": "ecnn-pyg generate"}))
    with pytest.warns(RuntimeWarning, match=f"pid {dead}"):
        with output_lock(out):
            assert read_lock(out)["pid"] == os.getpid()


def test_reused_pid_is_recognised_as_stale(tmp_path):
    """A live pid that started after the lock was written is another process."""
    out = tmp_path / "r.h5"
    lock_path(out).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(),
                                          "start": "1", "time": 0}))
    with pytest.warns(RuntimeWarning, match="taking over"):
        with output_lock(out):
            pass


def test_lock_of_another_host_is_never_taken_over(tmp_path):
    out = tmp_path / "h.h5"
    lock_path(out).write_text(json.dumps({"pid": 1, "host": "elsewhere", "time": 0}))
    with pytest.raises(OutputLockedError, match=r"host elsewhere.*delete '.*h\.h5\.lock'"):
        with output_lock(out):
            pass
    assert lock_path(out).exists()
    lock_path(out).write_text("{garbage")        # unreadable: refused, never guessed stale
    with pytest.raises(OutputLockedError, match="unknown process"):
        with output_lock(out):
            pass


def test_disabled_lock_is_a_no_op(tmp_path):
    out = tmp_path / "d.h5"
    with output_lock(out, enabled=False):
        assert not lock_path(out).exists()
        with output_lock(out):                  # the writing rank takes it
            assert lock_path(out).exists()


# ---------------------------------------------------------------- generate: full disk, damage

#: a 5 x 5 triangular data set of 8 samples (the conftest's small set, longer)
DATA = {"lattice": "triangular", "size": [5, 5], "hoppings": {"t1": 1.0, "t3": -0.4},
        "J": -1.0, "mu": -1.5, "seed": 7, "splits": {"train": 6, "val": 2}}


def data_cfg(tmp_path, name="d.h5", **kw):
    return {**DATA, "output": str(tmp_path / name), **kw}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The arrays of an uninterrupted run of :data:`DATA`."""
    path = generate(data_cfg(tmp_path_factory.mktemp("ref")), progress=False)
    return read_arrays(path)


def assert_same(path, ref):
    got = read_arrays(path)
    for key in ref:
        assert np.array_equal(got[key], ref[key]), key


# generate under a file-size limit (a full disk for this process); SIGXFSZ ignored so a write
# past the limit fails with EFBIG as it would with ENOSPC
FSIZE = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from ecnn_pyg.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_full_disk_is_refused_before_any_work(tmp_path, reference):
    """A file that cannot fit fails at once with a clear error; no file, nothing counted.

    Before, the run went on past the failed writes (errors only printed by h5py),
    counted samples whose rows never reached the disk, left a truncated file and
    crashed with a segmentation fault.
    """
    cfg = data_cfg(tmp_path)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-c", FSIZE, "40000", "generate", "--quiet",
                           "--config", str(tmp_path / "c.yaml")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "error:" in proc.stderr and "ulimit -f" in proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert not os.path.exists(cfg["output"]) and not lock_path(cfg["output"]).exists()
    generate(cfg, progress=False)               # with room, the rerun makes the whole set
    assert_same(cfg["output"], reference)


def test_full_disk_mid_run_stops_cleanly_and_the_rerun_recovers(tmp_path, reference):
    """A real failed write mid-run (a file that grows sample by sample, as older versions made).

    The run stops with one error line (exit 1, no segmentation fault); HDF5 left
    the file shorter than its superblock records, and the rerun restores that
    length, finds the unwritten rows and recomputes them.
    """
    cfg = data_cfg(tmp_path)
    generate(cfg, progress=False)
    with h5py.File(cfg["output"], "r+") as f:        # the layout of older versions: rows grow
        for key in (K.SPIN, K.FIELD, K.ENERGY):
            f[key].resize(2, axis=0)
        f.attrs["n_done"] = 2
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    limit = os.path.getsize(cfg["output"]) + 3000   # room for about two more samples
    proc = subprocess.run([sys.executable, "-c", FSIZE, str(limit), "generate", "--quiet",
                           "--config", str(tmp_path / "c.yaml")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "error: cannot write sample" in proc.stderr and "File too large" in proc.stderr
    assert "Traceback" not in proc.stderr
    with pytest.warns(RuntimeWarning, match="cut short by a failed write"):
        generate(cfg, progress=False)
    assert damaged_samples(cfg["output"]) == {}
    assert_same(cfg["output"], reference)


def test_failed_write_is_not_counted_and_the_rerun_redoes_it(tmp_path, monkeypatch, reference):
    """A write failure mid-run (injected ENOSPC) stops the run; n_done counts what reached the file."""
    cfg = data_cfg(tmp_path)
    real, calls = h5py.File.flush, {"n": 0}

    def flush(self):
        calls["n"] += 1
        if calls["n"] == 2 * 4 + 1:             # 4 samples (rows, counter), then the 5th's rows
            raise OSError(28, "No space left on device")
        return real(self)

    monkeypatch.setattr(h5py.File, "flush", flush)
    with pytest.raises(OutputWriteError, match=r"cannot write sample 4 .*No space left.*disk may "
                                               r"be full.*4 samples counted.*rerun"):
        generate(cfg, progress=False)
    monkeypatch.setattr(h5py.File, "flush", real)
    assert read_meta(cfg["output"])["n_done"] == 4
    assert not lock_path(cfg["output"]).exists()
    part = read_arrays(cfg["output"])
    for key in part:
        assert np.array_equal(part[key], reference[key][:4])
    generate(cfg, progress=False)
    assert_same(cfg["output"], reference)


def test_damaged_samples_are_refused_and_recomputed(tmp_path, reference):
    """All-zero rows (a full disk of an older version) and NaN are named, then recomputed."""
    path = generate(data_cfg(tmp_path), progress=False)
    with h5py.File(path, "r+") as f:
        f[K.SPIN][2:4] = 0.0
        f[K.FIELD][2:4] = 0.0
        f[K.FIELD][7, 3, 1] = np.nan
        f[K.SPIN][5, 0] *= 1.01                 # not a unit spin
    with pytest.raises(DataFileError, match=r"damaged: samples 7 \(1\) have non-finite values; "
                                            r"samples 2-3 \(2\) have all-zero spins.*samples 5 "
                                            r"\(1\) have spins not of unit length"):
        SpinDataset(path, None)
    with pytest.raises(DataFileError, match=r"samples 7 \(1\) have non-finite"):
        SpinDataset(path, "val")
    bad = damaged_samples(path)
    assert {k: v.tolist() for k, v in bad.items()} == {
        "non-finite values": [7], "all-zero spins (never written)": [2, 3],
        "spins not of unit length": [5]}
    with pytest.warns(RuntimeWarning, match="damaged.*recomputing from sample 2"):
        generate(data_cfg(tmp_path), progress=False)
    assert damaged_samples(path) == {}
    assert_same(path, reference)


def test_counts_that_disagree_with_the_rows_are_refused(tmp_path, reference):
    path = generate(data_cfg(tmp_path), progress=False)
    with h5py.File(path, "r+") as f:
        f.attrs["n_done"] = 9
    with pytest.raises(DataFileError, match=r"n_done = 9 is not within 0\.\.8"):
        SpinDataset(path, None)
    with h5py.File(path, "r+") as f:
        f.attrs["n_done"] = 8
        for key in (K.SPIN, K.FIELD):
            f[key].resize(5, axis=0)            # rows lost, the counter kept
    with pytest.raises(DataFileError, match=r"claims 8 complete samples .* holds spin \(5, 25, 3\)"):
        read_arrays(path)
    with pytest.warns(RuntimeWarning, match="claims 8 complete samples but holds 5"):
        generate(data_cfg(tmp_path), progress=False)
    assert_same(path, reference)


def test_truncated_files_are_called_truncated(tmp_path):
    """HDF5's 'truncated file ... sblock' message is not a lock held by another process."""
    path = generate(data_cfg(tmp_path, splits={"train": 2}), progress=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for call in (lambda: SpinDataset(path), lambda: read_meta(path),
                 lambda: generate(data_cfg(tmp_path, splits={"train": 2}), progress=False)):
        with pytest.raises(DataFileError, match=r"is truncated .*cut short.*full disk") as err:
            call()
        assert "another process" not in str(err.value)
    assert path.read_bytes() == data[: len(data) // 2]      # left as it was
    import ecnn_pyg.simulate as S
    out = tmp_path / "t.h5"
    S.simulate(sim_cfg(tmp_path, n_steps=2), progress=False)
    out.write_bytes(out.read_bytes()[:3000])
    with pytest.raises(DataFileError, match="is truncated"):
        S.simulate(sim_cfg(tmp_path, n_steps=2), progress=False)


# ---------------------------------------------------------------- concurrent writers

def _ctrl_c_reaches(*args, **kw):
    """``subprocess.Popen`` of a run that a Ctrl-C reaches as it does a foreground command.

    A shell starts background jobs (``pytest ... &``, as CI runners and ``nohup`` scripts
    do) with SIGINT ignored, and a child inherits that: Python then installs no
    KeyboardInterrupt handler and the run ignores every Ctrl-C. The child gets SIGINT's
    default disposition back before it starts, as in an interactive terminal."""
    return subprocess.Popen(*args, preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                    signal.SIG_DFL), **kw)


def _interrupt(proc, timeout=90, again=15):
    """Ctrl-C, and again every ``again`` seconds until the process ends, as a user presses it
    again (a KeyboardInterrupt raised inside an extension's clean-up can be reported and
    dropped). Not sooner: after the run's clean-up the interpreter's shutdown (torch's
    teardown) takes 2-3 s on a busy 2-core machine, and a Ctrl-C then ends the process by
    SIGINT (exit status -2) instead of the 130 the run returned. Returns (stdout, stderr)."""
    deadline = time.time() + timeout
    while True:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.communicate(timeout=again)
        except subprocess.TimeoutExpired:
            if time.time() > deadline:
                proc.kill()
                raise


def _clean_interrupt(err):
    """The run did not end in a KeyboardInterrupt traceback (an ignored one inside an
    extension's clean-up may be reported above the end)."""
    return not err.rstrip().endswith("KeyboardInterrupt")


def test_second_generate_on_one_file_is_refused(tmp_path, monkeypatch, capsys):
    """With HDF5's locking off (NFS, Lustre), a second run is refused by the package's lock."""
    monkeypatch.setenv("HDF5_USE_FILE_LOCKING", "FALSE")
    cfg = data_cfg(tmp_path, sampler="held", splits={"train": 200})
    proc, cfg_path = start_held_generate(cfg, tmp_path, popen=_ctrl_c_reaches,
                                         stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        monkeypatch.setitem(G.SAMPLERS, "held", G.SAMPLERS["uniform"])
        with pytest.raises(OutputLockedError, match=rf"data set '{cfg['output']}' is being "
                                                    rf"written by pid {proc.pid}"):
            generate(cfg, progress=False)
        assert main(["generate", "--quiet", "--config", str(cfg_path)]) == 1
        assert f"is being written by pid {proc.pid}" in capsys.readouterr().err
        assert proc.poll() is None               # the first run goes on, undisturbed
    finally:
        out, err = _interrupt(proc)
    # Ctrl-C: the clean message, exit code 130, no traceback, the lock released
    assert proc.returncode == 130, err
    assert "interrupted" in out and "resume with: ecnn-pyg generate --config" in out
    assert _clean_interrupt(err), err
    assert not lock_path(cfg["output"]).exists()
    assert read_meta(cfg["output"])["n_done"] == HELD
    assert damaged_samples(cfg["output"]) == {}


# ---------------------------------------------------------------- simulate

SIM = {"lattice": "triangular", "size": [6, 6], "hoppings": {"t1": 1.0, "t3": -0.85},
       "J": -1.0, "mu": -3.5, "integrator": "sib", "dt": 0.5, "alpha": 1.0,
       "temperature": 0.01, "zeeman": 0.005, "n_steps": 6, "save_every": 2, "seed": 3}


def sim_cfg(tmp_path, name="t.h5", **kw):
    return {**SIM, "output": str(tmp_path / name), **kw}


def assert_same_runs(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x["step"] == y["step"]
        for key in ("spin", "time", "magnetization", "charge"):
            assert np.array_equal(x[key], y[key]), key


class Killed(BaseException):
    """A kill injected between two writes."""


#: every h5py call that writes
WRITES = [(h5py.Dataset, "__setitem__"), (h5py.Dataset, "resize"), (h5py.Dataset, "flush"),
          (h5py.AttributeManager, "__setitem__"), (h5py.Group, "create_dataset"),
          (h5py.Group, "require_group"), (h5py.Group, "create_group"),
          (h5py.Group, "__delitem__"), (h5py.File, "flush")]


def _raise_killed():
    raise Killed


def _inject_kill(m, at_step, k, kill=_raise_killed):
    """Call ``kill`` (raise :class:`Killed`) at the ``k``-th write of the save of step ``at_step``."""
    state = {"armed": False, "n": 0}
    for cls, name in WRITES:
        def wrapper(*args, _real=getattr(cls, name), **kw):
            if state["armed"]:
                state["n"] += 1
                if state["n"] == k:
                    kill()
            return _real(*args, **kw)
        m.setattr(cls, name, wrapper)
    real_save = S._save

    def save(g, step, *args, **kw):
        state["armed"] = step == at_step
        try:
            return real_save(g, step, *args, **kw)
        finally:
            state["armed"] = False
    m.setattr(S, "_save", save)
    return state


@pytest.mark.parametrize("at_step", [4])
def test_kill_at_every_point_of_a_save_resumes_bit_identical(tmp_path, monkeypatch, at_step):
    """A save cut short between any two writes: the resume equals the uninterrupted run.

    Before, the step counter was written after the state in a second flush: a
    kill between them resumed from the later state with the earlier label.
    """
    ref = S.read_runs(S.simulate(sim_cfg(tmp_path, "ref.h5"), progress=False))
    k = 0
    while True:
        k += 1
        out = f"k{k}.h5"
        with monkeypatch.context() as m:
            state = _inject_kill(m, at_step, k)
            try:
                S.simulate(sim_cfg(tmp_path, out), progress=False)
            except Killed:
                pass
            else:
                assert state["n"] < k
                break
        assert not lock_path(tmp_path / out).exists()
        part = S.read_runs(tmp_path / out)     # readable, and only what was committed
        assert part[0]["step"] in (at_step - SIM["save_every"], at_step)
        assert len(part[0]["time"]) == part[0]["step"] // SIM["save_every"] + 1
        done = S.read_runs(S.simulate(sim_cfg(tmp_path, out), progress=False))
        assert_same_runs(done, ref)
    assert k > 15                               # every write of the save was a kill point


def test_extending_twice_keeps_every_snapshot(tmp_path):
    """Before, a second extension dropped the snapshot where the first one ended."""
    for n in (5, 8, 12):
        runs = S.read_runs(S.simulate(sim_cfg(tmp_path, n_steps=n, save_every=4),
                                      progress=False))
    assert runs[0]["time"].tolist() == [0.0, 2.0, 2.5, 4.0, 6.0]
    assert runs[0]["step"] == 12


def test_second_simulate_on_one_output_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HDF5_USE_FILE_LOCKING", "FALSE")
    out = tmp_path / "t.h5"
    S.simulate(sim_cfg(tmp_path, n_steps=2), progress=False)
    before = out.read_bytes()
    proc = _hold(out)
    try:
        with pytest.raises(OutputLockedError, match=rf"trajectory file '{out}' is being written "
                                                    rf"by pid {proc.pid}"):
            S.simulate(sim_cfg(tmp_path, n_steps=4), progress=False)
    finally:
        proc.kill()
        proc.wait()
    assert out.read_bytes() == before


def test_replaced_model_file_is_refused_on_extension(tmp_path):
    from ecnn_pyg import pretrained
    from ecnn_pyg.checkpoint import load_checkpoint, save_checkpoint
    model = tmp_path / "m.pt"
    shutil.copy(pretrained.path("triangular-paper"), model)
    cfg = {"output": str(tmp_path / "ml.h5"), "lattice": "triangular", "size": [6, 6],
           "hoppings": {"t1": 1.0, "t3": -0.85}, "source": "model", "model": str(model),
           "dt": 1.0, "zeeman": 0.006, "n_steps": 1, "save_every": 1, "dtype": "float32"}
    S.simulate(cfg, progress=False)
    with h5py.File(cfg["output"], "r") as f:
        assert len(f.attrs["model_sha256"]) == 64
    S.simulate({**cfg, "n_steps": 2}, progress=False)       # same file: extended
    ckpt = load_checkpoint(model)
    key = next(iter(ckpt["model_state"]))
    ckpt["model_state"][key] = ckpt["model_state"][key] + 1e-3
    save_checkpoint(model, ckpt)
    before = (tmp_path / "ml.h5").read_bytes()
    with pytest.raises(DataFileError, match=r"model file of '.*m\.pt' changed since .* cannot "
                                            r"be continued with another model"):
        S.simulate({**cfg, "n_steps": 3}, progress=False)
    assert (tmp_path / "ml.h5").read_bytes() == before


def test_ctrl_c_in_simulate_is_a_clean_message(tmp_path):
    cfg = sim_cfg(tmp_path, n_steps=100000, save_every=5, temperature=0.0)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(cfg))
    proc = _ctrl_c_reaches([sys.executable, "-m", "ecnn_pyg.cli", "simulate", "--quiet",
                            "--config", str(tmp_path / "s.yaml")], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    def steps():
        try:
            return S.read_runs(cfg["output"])[0]["step"]
        except (OSError, IndexError, KeyError, DataFileError):    # not yet written
            return -1
    deadline = time.time() + 300
    while steps() < 5:
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
        time.sleep(0.1)
    out, err = _interrupt(proc)
    assert proc.returncode == 130, err
    assert "interrupted" in out and "resume with: ecnn-pyg simulate --config" in out
    assert _clean_interrupt(err), err
    assert not lock_path(cfg["output"]).exists()


# ---------------------------------------------------------------- read-only outputs

@pytest.mark.parametrize("command", ["generate", "simulate"])
def test_unwritable_output_folder_is_refused_before_any_work(command, tmp_path, monkeypatch,
                                                             capsys):
    """The folder refuses the probe file (EACCES, as for root on a read-only mount)."""
    from pathlib import Path

    def touch(self, *a, **kw):
        raise PermissionError(13, "Permission denied", str(self))

    def boom(*a, **kw):
        raise AssertionError("the computation started")
    monkeypatch.setattr(Path, "touch", touch)
    monkeypatch.setattr(G, "build_solver", boom)
    monkeypatch.setattr(S, "field_source", boom)
    monkeypatch.setattr(S, "lattice_graph", boom)
    cfg = {**(DATA if command == "generate" else SIM), "output": str(tmp_path / "ro" / "x.h5")}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main([command, "--quiet", "--config", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"ecnn-pyg {command}: error: cannot write the" in err and "Permission denied" in err
    assert not (tmp_path / "ro" / "x.h5").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("command", ["generate", "simulate"])
def test_read_only_output_folder_is_refused_before_any_work(command, tmp_path, monkeypatch,
                                                            capsys):
    def boom(*a, **kw):
        raise AssertionError("the computation started")
    monkeypatch.setattr(G, "build_solver", boom)
    monkeypatch.setattr(S, "field_source", boom)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        cfg = {**(DATA if command == "generate" else SIM), "output": str(ro / "x.h5")}
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
        assert main([command, "--quiet", "--config", str(tmp_path / "c.yaml")]) == 2
        assert "error: cannot write the" in capsys.readouterr().err
    finally:
        ro.chmod(0o755)


@pytest.mark.slow
@pytest.mark.parametrize("at_step", [0, 4])
def test_sigkill_at_every_point_of_a_save_resumes_bit_identical(tmp_path, at_step):
    """As the test above, with the process ended by ``os._exit`` (as SIGKILL does).

    Writes that HDF5 still held in memory are lost, not flushed by a clean close.
    Each kill is in a forked child; the parent resumes (taking over the dead
    child's lock) and compares with the uninterrupted run.
    """
    ref = S.read_runs(S.simulate(sim_cfg(tmp_path, "ref.h5"), progress=False))
    k = 0
    while True:
        k += 1
        out = f"k{k}.h5"
        pid = os.fork()
        if pid == 0:                            # the child: run until the k-th write, then die
            code = 3
            try:
                _inject_kill(pytest.MonkeyPatch(), at_step, k, kill=lambda: os._exit(9))
                S.simulate(sim_cfg(tmp_path, out), progress=False)
                code = 0                        # fewer than k writes: past the last point
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            break
        assert code == 9, f"child failed at write {k} (exit {code})"
        with pytest.warns(RuntimeWarning, match="taking over the lock"):
            done = S.read_runs(S.simulate(sim_cfg(tmp_path, out), progress=False))
        assert_same_runs(done, ref)
    assert k > 15
