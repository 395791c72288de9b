"""Public exceptions."""

from __future__ import annotations


class JavaScriptError(Exception):
    """A JavaScript handler called with ``Bridge.call_js`` threw (or none exists).

    ``name`` is the JavaScript error's name (``"TypeError"``), ``message`` its
    message and ``stack`` its stack trace as the browser formats it.
    """

    def __init__(self, name: str, message: str, stack: str = "") -> None:
        super().__init__(f"{name}: {message}" if name else message)
        self.name = name
        self.message = message
        self.stack = stack


class BridgeClosedError(Exception):
    """The widget was closed (or its kernel went away) while a call was pending."""
