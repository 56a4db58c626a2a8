"""ecnn_pyg: equivariant neural networks for spin dynamics of itinerant magnets.

* :mod:`ecnn_pyg.lattice`, :mod:`ecnn_pyg.graph`: lattices as PyTorch Geometric graphs;
* :mod:`ecnn_pyg.ed`: exact diagonalization of the Kondo lattice model;
* :mod:`ecnn_pyg.generate`, :mod:`ecnn_pyg.datasets`: resumable HDF5 data sets;
* :mod:`ecnn_pyg.nn`: the equivariant convolution and the ECNN model;
* :mod:`ecnn_pyg.dynamics`, :mod:`ecnn_pyg.observables`, :mod:`ecnn_pyg.plot`:
  stochastic LLG, topological charge and structure factor, pictures;
* :mod:`ecnn_pyg.pretrained`: the shipped models (``square-paper``, ``triangular-paper``);
* :mod:`ecnn_pyg.runtime`: an opt-in process setting,
  :func:`ecnn_pyg.runtime.keep_freed_memory` (glibc keeps freed memory for
  reuse: half the time of a 576 x 576 evaluation on CPU). Importing the
  package changes nothing in the process; the ``ecnn-pyg`` command line and
  the benchmarks call it.
"""
from ._version import __version__

from .lattice import Bond, Lattice, LatticeError, available_lattices, load_lattice
from .graph import (lattice_graph, from_networkx, to_networkx, site_permutation,
                    translation_permutation, rotation_permutations)
from .spins import SpinError
from .ed import KondoED
from .datasets import SpinDataset
from .nn import ECNN
from . import dynamics, nn, observables, pretrained, runtime, testing

__all__ = ["__version__", "Bond", "Lattice", "LatticeError", "available_lattices",
           "load_lattice", "lattice_graph", "from_networkx", "to_networkx",
           "site_permutation", "translation_permutation", "rotation_permutations",
           "SpinError", "KondoED", "SpinDataset", "ECNN", "dynamics", "nn", "observables",
           "pretrained", "runtime", "testing"]
