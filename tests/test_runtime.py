"""The allocator setting applied by ``import ecnn_pyg`` and its opt-out."""
import os
import subprocess
import sys

import pytest

CODE = "import ecnn_pyg; print(ecnn_pyg.runtime.allocator_tuned())"


def _run(**env):
    full = {k: v for k, v in os.environ.items()
            if k not in ("ECNN_PYG_MALLOC", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_",
                         "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", CODE], env=full, capture_output=True,
                          text=True, check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux only")
def test_import_keeps_freed_memory_unless_opted_out():
    import platform
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert _run() == "True"
    assert _run(ECNN_PYG_MALLOC="system") == "False"
    # glibc's own environment variables win: the package does not override them
    assert _run(MALLOC_MMAP_MAX_="65536") == "False"
