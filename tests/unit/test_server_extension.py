"""ipybridge.server: kernel websocket connections turn Nagle off when they connect."""

from __future__ import annotations

import logging
from typing import Any

from ipybridge import server


class Handler:
    def __init__(self) -> None:
        self.ws_connection = object()
        self.nodelay: bool | None = None

    def set_nodelay(self, value: bool) -> None:
        self.nodelay = value


class Connection:
    def __init__(self, handler: Handler) -> None:
        self.websocket_handler = handler
        self.connected = False

    def connect(self) -> str:
        self.connected = True
        return "connected"


class App:
    def __init__(self) -> None:
        self.web_app = type("WebApp", (), {"settings": {"kernel_websocket_connection_class": Connection}})()
        self.log = logging.getLogger("test")


def test_extension_point_names_the_module() -> None:
    assert server._jupyter_server_extension_points() == [{"module": "ipybridge.server"}]


def test_connections_set_nodelay_then_connect_as_before() -> None:
    app = App()
    server._load_jupyter_server_extension(app)
    cls: Any = app.web_app.settings["kernel_websocket_connection_class"]
    assert issubclass(cls, Connection)
    handler = Handler()
    connection = cls(handler)
    assert connection.connect() == "connected"
    assert connection.connected
    assert handler.nodelay is True


def test_loading_twice_wraps_once() -> None:
    app = App()
    server._load_jupyter_server_extension(app)
    first = app.web_app.settings["kernel_websocket_connection_class"]
    server._load_jupyter_server_extension(app)
    assert app.web_app.settings["kernel_websocket_connection_class"] is first
