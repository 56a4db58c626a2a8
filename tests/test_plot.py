"""Plots: headless (Agg canvas), return Figures, write PNGs, refuse bad input."""
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from ecnn_pyg import lattice_graph, plot
from ecnn_pyg.dynamics import random_spins

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tri():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lattice_graph("triangular", 12)


def _png(path):
    assert path.exists() and path.read_bytes()[:8] == PNG


def test_spin_texture(tmp_path, tri):
    s = random_spins(tri.num_nodes, seed=0)
    fig = plot.spin_texture(s, tri, path=tmp_path / "tex.png", title="random")
    assert isinstance(fig, Figure)
    _png(tmp_path / "tex.png")
    # positions instead of a graph, numpy spins, a (1, N, 3) batch, an existing axes
    fig2 = plot.spin_texture(s.numpy()[None], tri.pos.numpy(), arrow_stride=2)
    ax = fig2.axes[0]
    assert plot.spin_texture(s, tri, ax=ax, arrows=False) is fig2


def test_charge_density_and_structure_factor_maps(tmp_path, tri):
    s = random_spins(tri.num_nodes, 3, seed=1)
    plot.charge_density_map(s[0], tri, path=tmp_path / "rho.png")
    _png(tmp_path / "rho.png")
    plot.structure_factor_map(s, tri, path=tmp_path / "sub" / "sq.png", log=True)
    _png(tmp_path / "sub" / "sq.png")


def test_phase_diagram(tmp_path):
    h = [0.008, 0.002, 0.004, 0.006]
    fig = plot.phase_diagram(h, [0, -2, 1, 1], [0.3, 0.05, 0.1, 0.2], path=tmp_path / "pd.png",
                             n_sk_err=[0, 0, 0, 0], m_z_err=np.full(4, 0.01),
                             title="Fig. 4a")
    _png(tmp_path / "pd.png")
    assert len(fig.axes) == 2                          # |n_sk| and |M_z| axes
    line = fig.axes[0].lines[0]
    assert np.allclose(line.get_xdata(), sorted(h))
    assert np.allclose(line.get_ydata(), [2, 1, 1, 0])  # absolute values, sorted by field


def test_bad_inputs(tri):
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        plot.spin_texture(random_spins(tri.num_nodes, 2, seed=0), tri)
    with pytest.raises(ValueError, match="positions must have shape"):
        plot.spin_texture(random_spins(5, seed=0), tri)
    bad = random_spins(tri.num_nodes, seed=0)
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        plot.spin_texture(bad, tri)
    with pytest.raises(ValueError, match="equal length"):
        plot.phase_diagram([0.1, 0.2], [1], [0.1, 0.2])
    with pytest.raises(ValueError, match="shape"):
        plot.structure_factor_map(torch.zeros(4), tri)


def test_import_is_headless_and_leaves_the_backend_alone():
    code = ("import os; os.environ.pop('DISPLAY', None); import matplotlib; "
            "matplotlib.use('svg'); import ecnn_pyg.plot; "
            "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_parity_plot_leaves_pyplot_alone(tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    from ecnn_pyg.metrics import parity_plot
    before = matplotlib.get_backend()
    try:
        plt.switch_backend("svg")           # a user's backend, not Agg
        open_figs = plt.get_fignums()
        rng = np.random.default_rng(0)
        exact = rng.normal(size=(50, 3))
        out = parity_plot(exact + 0.01 * rng.normal(size=(50, 3)), exact, tmp_path / "p.png")
        _png(out)
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == open_figs     # no pyplot figure made or left open
        with pytest.raises(ValueError, match="same, non-zero size.*4 predicted and 6 exact"):
            parity_plot(np.zeros(4), np.zeros(6), tmp_path / "q.png")
    finally:
        plt.switch_backend(before)
