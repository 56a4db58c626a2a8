"""The tutorial notebooks run without error and show their figures.

The default run executes each notebook with the small-size switch
``ECNN_PYG_SMALL=1`` (seconds each). The sizes the notebooks present to the
reader run under the ``tutorials_full`` marker, deselected by default (it is
also ``slow``); CI runs them as a separate job::

    python -m pytest -q -m tutorials_full tests/test_tutorials.py

Each full-size notebook must finish within :data:`FULL_SIZE_LIMIT_S`; its wall
time is printed (``-s``) so a slowdown is seen before the limit is hit.
"""
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

TUTORIALS = sorted((Path(__file__).resolve().parent.parent / "tutorials").glob("*.ipynb"))
IDS = [p.stem for p in TUTORIALS]

#: seconds one full-size notebook may take (each takes 10-90 s on an idle 2-core machine)
FULL_SIZE_LIMIT_S = 420


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _images(nb):
    """Number of PNG images the executed notebook shows."""
    return sum("image/png" in out.get("data", {}) for c in _code(nb) for out in c.get("outputs", []))


def _draws(nb):
    """Whether the notebook draws a figure (uses pyplot, the plot module or a parity plot)."""
    return any(w in c.source for c in _code(nb) for w in ("plt.", "plot.", "parity_plot("))


def _execute(path, monkeypatch, tmp_path, small, timeout):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if small:
        monkeypatch.setenv("ECNN_PYG_SMALL", "1")
    else:
        monkeypatch.delenv("ECNN_PYG_SMALL", raising=False)
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in _code(nb)), \
        f"{path.name}: strip outputs before committing"
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    if _draws(nb):
        assert _images(nb) > 0, f"{path.name}: draws figures but shows none inline"
    return nb, elapsed


def test_tutorials_found():
    assert len(TUTORIALS) == 5


@pytest.mark.parametrize("path", TUTORIALS, ids=IDS)
def test_notebook_keeps_the_inline_backend(path):
    """A notebook that switches matplotlib's backend (``matplotlib.use``) shows no figure."""
    nb = nbformat.read(path, as_version=4)
    assert not any("matplotlib.use(" in c.source for c in _code(nb)), \
        f"{path.name}: matplotlib.use(...) replaces the inline backend; figures would not show"
    if _draws(nb):
        assert any("%matplotlib inline" in c.source for c in _code(nb)), \
            f"{path.name}: draws figures without %matplotlib inline"


@pytest.mark.parametrize("path", TUTORIALS, ids=IDS)
def test_tutorial_runs(path, monkeypatch, tmp_path):
    _execute(path, monkeypatch, tmp_path, small=True, timeout=600)


@pytest.mark.slow
@pytest.mark.tutorials_full
@pytest.mark.parametrize("path", TUTORIALS, ids=IDS)
def test_tutorial_runs_full_size(path, monkeypatch, tmp_path):
    _, elapsed = _execute(path, monkeypatch, tmp_path, small=False, timeout=FULL_SIZE_LIMIT_S)
    print(f"\n{path.name}: full size in {elapsed:.0f} s")
    assert elapsed < FULL_SIZE_LIMIT_S
