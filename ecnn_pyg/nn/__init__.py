r"""Equivariant neural network layers and the ECNN model.

One concept per module: :class:`SpinConv` (the equivariant convolution), the
activations :class:`NormSwish` (the package default) and
:class:`NormActivation` (e3nn's semantics, the published code's),
:class:`SelfInteraction`, :class:`InteractionBlock` and :class:`OutputBlock`,
the :class:`ECNN` model, :func:`compute_field`, the adjacency of the
convolution (:class:`Neighbors` tables of :func:`build_neighbors` or
:func:`offset_neighbors`, :class:`Edges` lists) and the conversion to and
from e3nn's feature layout (:func:`to_e3nn`, :func:`from_e3nn`, the adapter
:class:`E3nnLayout`).
"""
from ._activation import NormActivation, NormSwish
from ._blocks import InteractionBlock, OutputBlock
from ._conv import Adjacency, SpinConv
from ._e3nn import E3nnLayout
from ._grad import compute_field
from ._linear import SelfInteraction
from ._model import DEFAULT_CONFIG, ECNN, PAPER_NEIGHBORHOODS, ModelInputError
from ._neighbors import Edges, Neighbors, build_neighbors, offset_neighbors
from ._paths import from_e3nn, irreps_of, paths, to_e3nn, tp_matrices

__all__ = ["SpinConv", "Adjacency", "NormSwish", "NormActivation", "SelfInteraction",
           "InteractionBlock", "OutputBlock", "ECNN", "DEFAULT_CONFIG", "PAPER_NEIGHBORHOODS",
           "ModelInputError", "compute_field", "Neighbors", "Edges", "build_neighbors",
           "offset_neighbors", "irreps_of", "paths", "tp_matrices", "to_e3nn", "from_e3nn",
           "E3nnLayout"]
