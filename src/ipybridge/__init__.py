"""ipybridge: JavaScript <-> Python calls, live animation and the classic
``kernel.execute`` API for today's Jupyter, built on anywidget."""

from __future__ import annotations

from ._version import __version__
from .bridge import Bridge
from .errors import BridgeClosedError, JavaScriptError
from .legacy import enable_legacy_api, load_ipython_extension
from .player import Player

__all__ = [
    "Bridge",
    "BridgeClosedError",
    "JavaScriptError",
    "Player",
    "__version__",
    "enable_legacy_api",
    "load_ipython_extension",
]
