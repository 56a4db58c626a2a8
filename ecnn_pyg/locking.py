"""One writer per output: a lock file of the package's own next to every output.

HDF5's own file locking is often off (``HDF5_USE_FILE_LOCKING=FALSE`` is common
on NFS and Lustre) and does not cover directories, so every command that
writes an output takes :func:`output_lock` first. It creates ``<output>.lock``
atomically (a hard link of a complete temporary file, which also works on NFS)
holding the owner's pid, host, start time and command line::

    with output_lock("data/square.h5", what="data set"):
        ...                                   # the only writer of data/square.h5

A second writer, in this process or any other, gets :class:`OutputLockedError`
naming the owner. A lock left by a process that is gone (killed with SIGKILL,
a crash of the machine) on the same host is recognised (its pid no longer
runs, or runs a process started later) and taken over with a warning; a lock
of another host is never taken over, the message says how to remove it.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Union

__all__ = ["OutputLockedError", "OutputNotWritableError", "OutputWriteError", "output_lock", "lock_path",
           "read_lock", "check_writable"]


class OutputLockedError(RuntimeError):
    """The output is being written by another process (its lock file exists)."""


class OutputNotWritableError(ValueError):
    """The output file or its directory cannot be written (read-only, no permission)."""


class OutputWriteError(OSError):
    """Writing an output failed (a full disk, a quota, an I/O error); what was counted is intact."""


def lock_path(path: Union[str, Path]) -> Path:
    """The lock file of an output: ``<path>.lock`` next to it.

    Args:
        path: the output (a file or a directory).

    Returns:
        The path of its lock file.
    """
    path = Path(path)
    return path.with_name(path.name + ".lock")


def _proc_start(pid: int) -> Optional[str]:
    """Start time of process ``pid`` in clock ticks since boot (Linux), else ``None``."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None      # field 22 of stat


def _alive(pid: int, start: Optional[str]) -> bool:
    """Whether process ``pid`` runs, and is the one that started at ``start``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:         # it exists, owned by another user
        pass
    now = _proc_start(pid)
    return start is None or now is None or now == start


def read_lock(path: Union[str, Path]) -> Optional[dict]:
    """The owner recorded in the lock file of an output.

    Args:
        path: the output (not the lock file).

    Returns:
        ``{"pid", "host", "started", "command", ...}``, ``{}`` if the lock file
        is unreadable, or ``None`` if the output is not locked.
    """
    try:
        text = lock_path(path).read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        owner = json.loads(text)
    except ValueError:
        return {}
    return owner if isinstance(owner, dict) else {}


def _describe(owner: dict) -> str:
    if not owner:
        return "an unknown process (the lock file is unreadable)"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("time", 0)))
    return (f"pid {owner.get('pid')} on host {owner.get('host')} (started {started}: "
            f"{owner.get('command', '?')})")


def check_writable(path: Union[str, Path], what: str = "output") -> None:
    """Refuse early an output that cannot be written.

    Creates the missing parent directories, then checks that the directory
    (and the file, if it exists) is writable by creating and removing a
    temporary file, so a read-only place is reported before any computation.

    Args:
        path: the output file or directory.
        what: what the output is, for the message.

    Raises:
        OutputNotWritableError: if the directory cannot be created or written,
            or the existing file is read-only.
    """
    path = Path(path)
    for folder in (path.parent, *path.parent.parents):
        if folder.exists() and not folder.is_dir():
            raise OutputNotWritableError(f"cannot write the {what} '{path}': '{folder}' is a "
                                         "file, not a folder; choose another output path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(f".{path.name}.{os.getpid()}.probe")
        probe.touch()
        probe.unlink()
        if path.is_file():
            with open(path, "r+b"):
                pass
    except OSError as err:
        raise OutputNotWritableError(
            f"cannot write the {what} '{path}': {err.strerror or err} (check the permissions "
            "of the directory and the file, or choose another output path)") from err


@contextmanager
def output_lock(path: Union[str, Path], what: str = "output", *,
                enabled: bool = True) -> Iterator[Path]:
    """Be the only writer of ``path`` while the block runs.

    Creates ``<path>.lock`` (JSON: pid, host, start time, command line) next to
    the output, and removes it when the block ends, normally or by an
    exception (Ctrl-C included). The lock is advisory for this package's
    writers and independent of HDF5's file locking.

    Under ``torch.distributed`` only the rank that writes takes the lock: pass
    ``enabled=False`` on the others.

    Args:
        path: the output file (or run directory) to protect.
        what: what the output is ("data set", "trajectory file", "run
            directory"), for messages.
        enabled: ``False`` makes this a no-op (ranks that do not write).

    Yields:
        The path of the lock file.

    Raises:
        OutputLockedError: if another live process (or this one) holds the
            lock, or a process of another host does.
        OutputNotWritableError: if the lock file cannot be created (a
            read-only directory).
    """
    lock = lock_path(path)
    if not enabled:
        yield lock
        return
    me = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(),
          "start": _proc_start(os.getpid()), "command": " ".join(sys.argv) or sys.executable,
          "token": os.urandom(8).hex()}
    _acquire(Path(path), lock, me, what)
    try:
        yield lock
    finally:
        owner = read_lock(path)
        if owner and owner.get("token") == me["token"]:
            try:
                lock.unlink()
            except FileNotFoundError:
                pass


def _acquire(path: Path, lock: Path, me: dict, what: str) -> None:
    check_writable(path, what)
    tmp = lock.with_name(f".{lock.name}.{me['pid']}.{me['token']}")
    try:
        tmp.write_text(json.dumps(me))
    except OSError as err:
        raise OutputNotWritableError(f"cannot create the lock file '{lock}' of the {what}: "
                                     f"{err.strerror or err}") from err
    try:
        for _attempt in range(3):
            try:
                os.link(tmp, lock)              # atomic: fails if the lock exists
                return
            except FileExistsError:
                pass
            except OSError:                     # no hard links here: exclusive create
                try:
                    fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    pass
                else:
                    with os.fdopen(fd, "w") as f:
                        f.write(json.dumps(me))
                    return
            owner = read_lock(path)
            if owner is None:                   # released meanwhile: try again
                continue
            stale = (bool(owner) and owner.get("host") == me["host"]
                     and isinstance(owner.get("pid"), int) and owner["pid"] != me["pid"]
                     and not _alive(owner["pid"], owner.get("start")))
            if not stale:
                if owner and owner.get("host") == me["host"]:
                    how = ("wait for it to finish or stop it (Ctrl-C or kill "
                           f"{owner.get('pid')}), then rerun to resume")
                else:
                    how = ("wait for it to finish or stop it; if you are sure no process "
                           f"writes it any more, delete '{lock}' and rerun")
                raise OutputLockedError(f"the {what} '{path}' is being written by "
                                        f"{_describe(owner)}; {how}")
            warnings.warn(f"taking over the lock of the {what} '{path}' left by "
                          f"{_describe(owner)}, which no longer runs", RuntimeWarning,
                          stacklevel=4)
            # set the stale lock aside under a name of our own; if a new owner's lock was
            # set aside instead (another process took over first), put it back
            grave = lock.with_name(f".{lock.name}.stale.{me['token']}")
            try:
                os.rename(lock, grave)
            except FileNotFoundError:
                continue
            try:
                taken = json.loads(grave.read_text())
            except (OSError, ValueError):
                taken = {}
            if taken.get("token") != owner.get("token"):
                try:
                    os.link(grave, lock)
                except FileExistsError:
                    pass
            grave.unlink()
        raise OutputLockedError(f"could not lock the {what} '{path}': its lock file '{lock}' "
                                "keeps changing (several writers starting at once?); rerun")
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
