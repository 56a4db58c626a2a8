"""The allocator setting: opt-in, never applied by ``import ecnn_pyg``; the CLI opts in.

The process state is read from glibc itself: after a 64 MB ``malloc``,
``mallinfo2().hblks`` counts the blocks served by ``mmap``. With glibc's
defaults such a block is mmapped; with :func:`ecnn_pyg.runtime.keep_freed_memory`
in effect (``M_MMAP_MAX = 0``) it is not. Each case runs in a fresh interpreter.
"""
import ctypes
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

import ecnn_pyg.runtime

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc"
    or not hasattr(ctypes.CDLL(None), "mallinfo2"),
    reason="needs Linux with glibc >= 2.33 (mallopt, mallinfo2)")

#: ``mmapped()``: whether a 64 MB malloc is served by mmap in this process
PRELUDE = """
import ctypes, importlib.util
libc = ctypes.CDLL(None)
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena ordblks smblks hblks hblkhd usmblks "
                                               "fsmblks uordblks fordblks keepcost").split()]
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def mmapped():
    before = libc.mallinfo2().hblks
    block = libc.malloc(64 << 20)
    out = libc.mallinfo2().hblks > before
    libc.free(block)
    return out
def runtime_alone():
    # the runtime module by path, without importing the package (fast)
    spec = importlib.util.spec_from_file_location("runtime", RUNTIME)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
"""


def _run(body, **env):
    full = {k: v for k, v in os.environ.items()
            if k not in ("ECNN_PYG_MALLOC", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_",
                         "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")}
    full.update(env)
    code = f"RUNTIME = {str(Path(ecnn_pyg.runtime.__file__))!r}\n" + PRELUDE + body
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_import_leaves_the_allocator_alone_and_the_command_line_opts_in():
    body = """
import ecnn_pyg
print("STATE", ecnn_pyg.runtime.allocator_tuned(), mmapped())
from ecnn_pyg.cli import main
assert main([]) == 0          # no command: prints the help
print("STATE", ecnn_pyg.runtime.allocator_tuned(), mmapped())
"""
    out = [line.split()[1:] for line in _run(body) if line.startswith("STATE")]
    assert out == [["False", "True"], ["True", "False"]], out


def test_opt_in_keeps_freed_memory():
    body = "rt = runtime_alone(); print(mmapped(), rt.keep_freed_memory(), rt.allocator_tuned(), " \
           "mmapped())"
    assert _run(body)[-1].split() == ["True", "True", "True", "False"]


@pytest.mark.parametrize("env", [{"ECNN_PYG_MALLOC": "system"}, {"MALLOC_MMAP_MAX_": "65536"}])
def test_opt_in_respects_the_opt_out_and_glibc_variables(env):
    # ECNN_PYG_MALLOC=system, or glibc's own variables: the package does not override them
    body = "rt = runtime_alone(); print(rt.keep_freed_memory(), rt.allocator_tuned(), mmapped())"
    assert _run(body, **env)[-1].split() == ["False", "False", "True"]
