"""Faults: concurrent writers, full disks, torn saves, damaged files, Ctrl-C, read-only outputs.

Each test injects the fault (a second process, an ``OSError`` from a write, a
file-size limit, an exception between two writes, a truncated or altered file,
SIGINT) and checks that nothing is lost and nothing wrong is accepted.
"""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from ecnn_pyg.locking import (OutputLockedError, OutputNotWritableError, lock_path, output_lock,
                              read_lock)

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
