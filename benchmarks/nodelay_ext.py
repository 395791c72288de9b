"""A jupyter_server extension: TCP_NODELAY on kernel websockets (benchmark aid).

jupyter_server writes each kernel message to the browser as its own websocket
frame on a socket that keeps Nagle's algorithm on. A call answered by the
kernel produces three iopub frames in a row (status busy, the reply, status
idle); Nagle holds the reply back until the browser ACKs "busy", and the
browser delays that ACK (~40 ms on Linux), so every small round trip pays it.

This extension wraps whatever kernel websocket connection class the server
uses (the stock ZMQ one, or a gateway's) in a subclass that turns Nagle off
when the websocket opens. Nothing else changes. Load it with::

    PYTHONPATH=benchmarks jupyter lab --ServerApp.jpserver_extensions=nodelay_ext=True
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nodelay_ext"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    settings = serverapp.web_app.settings
    base = settings["kernel_websocket_connection_class"]
    if getattr(base, "_nodelay", False):
        return

    class NoDelayConnection(base):  # type: ignore[misc, valid-type]
        _nodelay = True

        def connect(self) -> Any:
            handler = self.websocket_handler
            if getattr(handler, "ws_connection", None) is not None:
                handler.set_nodelay(True)
            return super().connect()

    NoDelayConnection.__name__ = NoDelayConnection.__qualname__ = f"NoDelay{base.__name__}"
    settings["kernel_websocket_connection_class"] = NoDelayConnection
    serverapp.log.info("nodelay_ext: TCP_NODELAY on kernel websockets (%s)", NoDelayConnection.__name__)
