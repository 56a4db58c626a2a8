"""``ecnn_pyg.train``: the training API under its short name (see :mod:`ecnn_pyg.training`).

``from ecnn_pyg.train import train, Trainer, evaluate_arrays`` keeps working;
the code lives in the :mod:`ecnn_pyg.training` package.
"""
from .training import *  # noqa: F401,F403
from .training import __all__  # noqa: F401
