"""A jupyter_server extension: no Nagle delay on kernel websockets.

jupyter_server writes each kernel message to the browser as its own websocket
frame, on a socket that keeps Nagle's algorithm on. A widget message answered
by the kernel arrives as three small frames in a row (status busy, the reply,
status idle): Nagle holds the reply back until the browser acknowledges
"busy", and browsers delay that acknowledgement (about 40 ms on Linux). Every
small round trip between a page and its kernel pays it, for every widget.

Installed with ipybridge, this extension is enabled in the server's
environment (``etc/jupyter/jupyter_server_config.d/ipybridge.json``) and turns
Nagle off on kernel websockets (``TCP_NODELAY``, what tornado recommends for
websockets that carry small messages): a tiny call's round trip drops from
~48 ms to ~8 ms. Nothing else changes. Disable it with
``jupyter server extension disable ipybridge.server``.
"""

from __future__ import annotations

from typing import Any

_MARK = "_ipybridge_nodelay"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "ipybridge.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    settings = serverapp.web_app.settings
    base = settings.get("kernel_websocket_connection_class")
    if base is None or getattr(base, _MARK, False):
        return

    class NoDelayConnection(base):  # type: ignore[misc, valid-type]
        def connect(self) -> Any:
            handler = getattr(self, "websocket_handler", None)
            if handler is not None and getattr(handler, "ws_connection", None) is not None:
                handler.set_nodelay(True)
            return super().connect()

    setattr(NoDelayConnection, _MARK, True)
    NoDelayConnection.__name__ = NoDelayConnection.__qualname__ = f"NoDelay{base.__name__}"
    settings["kernel_websocket_connection_class"] = NoDelayConnection
    serverapp.log.info("ipybridge.server: TCP_NODELAY on kernel websockets (%s)", base.__name__)
