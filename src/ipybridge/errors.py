"""Public exceptions."""

from __future__ import annotations


class JavaScriptError(Exception):
    """A JavaScript handler called with ``Bridge.call_js`` threw (or none exists).

    ``name`` is the JavaScript error's name (``"TypeError"``), ``message`` its
    message, ``stack`` its stack trace as the browser formats it, and
    ``handler`` the name of the handler that was called (also in ``str(exc)``).
    """

    def __init__(self, name: str, message: str, stack: str = "", handler: str | None = None) -> None:
        text = f"{name}: {message}" if name else message
        if handler is not None:
            text += f" (JavaScript handler {handler!r})"
        super().__init__(text)
        self.name = name
        self.message = message
        self.stack = stack
        self.handler = handler


class BridgeClosedError(Exception):
    """The widget was closed (or its kernel went away) while a call was pending."""
