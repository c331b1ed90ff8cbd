"""lstm_lab: the tested package behind the open course on gated recurrence.

Every chapter notebook imports this package; the notebooks explain the ideas and
``lstm_lab`` holds the code, checked by unit tests. The public surface is small:

- :func:`get_device` picks a PyTorch device (``"auto"``: CUDA, then Apple MPS, then CPU).
- :func:`seed_everything` seeds Python, NumPy and PyTorch in one call.
- :mod:`lstm_lab.scratch` holds the NumPy implementations written from scratch.
- :mod:`lstm_lab.plotting` draws the book's figures.
"""

from lstm_lab.runtime import get_device, seed_everything

__version__ = "0.1.0"

__all__ = ["__version__", "get_device", "seed_everything"]
