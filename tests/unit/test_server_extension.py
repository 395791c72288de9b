"""ipybridge.server: kernel websocket connections turn Nagle off when they connect."""

from __future__ import annotations

import logging
import re
from pathlib import Path
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


class WebApp:
    def __init__(self) -> None:
        self.settings: dict[str, Any] = {"kernel_websocket_connection_class": Connection, "base_url": "/hub/user/a/"}
        self.handlers: list[tuple[str, Any]] = []

    def add_handlers(self, _host: str, handlers: list[tuple[str, Any]]) -> None:
        self.handlers += handlers


class App:
    def __init__(self) -> None:
        self.web_app = WebApp()
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


def test_the_relay_route_is_under_the_base_url() -> None:
    app = App()
    server._load_jupyter_server_extension(app)
    [(route, _handler)] = app.web_app.handlers
    assert route.startswith("/hub/user/a/ipybridge/direct/")
    assert re.fullmatch(route, "/hub/user/a/ipybridge/direct/0c29e59f-d524-4f72-8a54-05da54fbaa23")
    assert not re.fullmatch(route, "/hub/user/a/ipybridge/direct/../../api")


def test_the_relay_reads_only_the_port_a_kernel_announced(tmp_path: Path) -> None:
    connection_file = tmp_path / "kernel-abc.json"
    kernel = type("Kernel", (), {"connection_file": str(connection_file)})()
    assert server.announced_port(kernel) is None  # nothing announced
    announced = tmp_path / "ipybridge-direct-kernel-abc.json"
    for content, expected in [
        ('{"port": 41234, "pid": 1}', 41234),
        ('{"port": "41234"}', None),
        ('{"port": 70000}', None),
        ('{"port": true}', None),
        ("[1]", None),
        ("not json", None),
    ]:
        announced.write_text(content)
        assert server.announced_port(kernel) == expected, content
    assert server.announced_port(type("Remote", (), {})()) is None  # a kernel without a local connection file
