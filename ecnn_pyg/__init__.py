"""ecnn_pyg: equivariant neural networks for spin dynamics of itinerant magnets.

Lattices become PyTorch Geometric graphs (:mod:`ecnn_pyg.graph`), exact
diagonalization of the Kondo lattice model gives training data
(:mod:`ecnn_pyg.ed`, :mod:`ecnn_pyg.datasets`).
"""
__version__ = "0.1.0"

from .lattice import Bond, Lattice, LatticeError, available_lattices, load_lattice
from .graph import (lattice_graph, from_networkx, to_networkx, site_permutation,
                    translation_permutation, rotation_permutations)

__all__ = ["__version__", "Bond", "Lattice", "LatticeError", "available_lattices",
           "load_lattice", "lattice_graph", "from_networkx", "to_networkx",
           "site_permutation", "translation_permutation", "rotation_permutations"]
