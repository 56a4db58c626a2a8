"""ecnn_pyg: equivariant neural networks for spin dynamics of itinerant magnets.

* :mod:`ecnn_pyg.lattice`, :mod:`ecnn_pyg.graph`: lattices as PyTorch Geometric graphs;
* :mod:`ecnn_pyg.ed`: exact diagonalization of the Kondo lattice model;
* :mod:`ecnn_pyg.generate`, :mod:`ecnn_pyg.datasets`: resumable HDF5 data sets;
* :mod:`ecnn_pyg.nn`: the equivariant convolution and the ECNN model;
* :mod:`ecnn_pyg.dynamics`, :mod:`ecnn_pyg.observables`, :mod:`ecnn_pyg.plot`:
  stochastic LLG, topological charge and structure factor, pictures;
* :mod:`ecnn_pyg.pretrained`: the shipped models (``square-paper``, ``triangular-paper``);
* :mod:`ecnn_pyg.committee`: committees of models, their mean field and uncertainty;
* :mod:`ecnn_pyg.minimize`: energy minima of spin configurations (L-BFGS on unit spins,
  exact or learned energies);
* :mod:`ecnn_pyg.runtime`: an opt-in process setting,
  :func:`ecnn_pyg.runtime.keep_freed_memory` (glibc keeps freed memory for
  reuse: half the time of a 576 x 576 evaluation on CPU). Importing the
  package changes nothing in the process; the ``ecnn-pyg`` command line and
  the benchmarks call it.

The names below are imported on first use: ``import ecnn_pyg`` is instant and
loads torch only when a name that needs it is used.
"""
from __future__ import annotations

import importlib

from ._version import __version__

#: public name -> module that defines it; imported on first use (PEP 562), so that
#: ``import ecnn_pyg`` (and the command line's ``--help``) does not load torch
_EXPORTS = {
    "Bond": "lattice", "Lattice": "lattice", "LatticeError": "lattice",
    "available_lattices": "lattice", "load_lattice": "lattice",
    "lattice_graph": "graph", "from_networkx": "graph", "to_networkx": "graph",
    "site_permutation": "graph", "translation_permutation": "graph",
    "rotation_permutations": "graph",
    "SpinError": "spins", "KondoED": "ed", "SpinDataset": "datasets", "ECNN": "nn",
}
_SUBMODULES = ("committee", "dynamics", "minimize", "nn", "observables", "pretrained", "runtime", "testing")
#: submodules that ``import ecnn_pyg`` made attributes before the imports were lazy
#: (as the public ones above, loaded on first access); any other submodule is an
#: attribute once imported, as usual
_LOADED_BEFORE = ("checkpoint", "config", "datasets", "ed", "graph", "keys", "lattice",
                  "models", "spins")

__all__ = ["__version__", *_EXPORTS, *_SUBMODULES]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBMODULES or name in _LOADED_BEFORE:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
