"""``python -m ecnn_pyg.cli`` is ``ecnn-pyg``."""
import sys

from . import main

sys.exit(main())
