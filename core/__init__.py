"""Loupe: the engine and Python API of the labeling dashboard.

Nothing here imports streamlit or prints; the CLI (:mod:`core.cli`) and the
pages call these functions.
"""

__version__ = "0.1.0"
