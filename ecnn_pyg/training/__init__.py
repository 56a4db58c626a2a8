"""Training of the ECNN (and of the IFNN baseline) on ED data sets."""
from .trainer import *  # noqa: F401,F403
from .trainer import __all__  # noqa: F401
