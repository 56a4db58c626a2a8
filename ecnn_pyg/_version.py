"""The package version, in a module of its own that imports nothing.

Modules that record the version (data files, trajectories, checkpoints)
import it from here: ``from ._version import __version__``. Importing it from
the package (``from . import __version__``) would make them depend on
``ecnn_pyg/__init__.py``, which imports most of the package (an import cycle).
"""
__version__ = "0.1.0"
