r"""Equivariant neural network layers and the ECNN model.

One concept per module: :class:`SpinConv` (the equivariant convolution),
:class:`NormActivation`, :class:`SelfInteraction`, :class:`InteractionBlock`
and :class:`OutputBlock`, the :class:`ECNN` model, :func:`compute_field` and
the neighbour tables (:func:`build_neighbors`).
"""
from ._activation import NormActivation
from ._blocks import InteractionBlock, OutputBlock
from ._conv import SpinConv
from ._grad import compute_field
from ._linear import SelfInteraction
from ._model import DEFAULT_CONFIG, ECNN, ModelInputError
from ._neighbors import Neighbors, build_neighbors
from ._paths import irreps_of, paths, tp_matrices

__all__ = ["SpinConv", "NormActivation", "SelfInteraction", "InteractionBlock", "OutputBlock",
           "ECNN", "DEFAULT_CONFIG", "ModelInputError", "compute_field", "Neighbors",
           "build_neighbors", "irreps_of", "paths", "tp_matrices"]
