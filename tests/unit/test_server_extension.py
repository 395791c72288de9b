"""ipybridge.server: kernel websocket connections turn Nagle off when they connect."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
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
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    for content, expected in [
        (f'{{"port": 41234, "pid": {os.getpid()}}}', 41234),
        (f'{{"port": 41234, "pid": {dead.pid}}}', None),  # left by a kernel killed with SIGKILL
        ('{"port": 41234}', None),
        ('{"port": "41234"}', None),
        ('{"port": 70000}', None),
        ('{"port": true}', None),
        ("[1]", None),
        ("not json", None),
    ]:
        announced.write_text(content)
        assert server.announced_port(kernel) == expected, content
    assert server.announced_port(type("Remote", (), {})()) is None  # a kernel without a local connection file


def test_the_relay_bridges_only_to_an_endpoint_that_greets_like_one() -> None:
    assert server.is_endpoint_greeting('{"ipb": 1, "nonce": "abc"}')
    for other in [
        None,
        b'{"ipb": 1, "nonce": "abc"}',
        "HTTP/1.1 200 OK",
        '{"ipb": 2, "nonce": "a"}',
        '{"ipb": 1}',
        "[]",
    ]:
        assert not server.is_endpoint_greeting(other), other
