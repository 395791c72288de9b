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
~48 ms to ~8 ms.

It also serves the relay of ipybridge's direct transport (docs/protocol.md,
"Direct transport"): a websocket route ``{base_url}ipybridge/direct/<kernel_id>``,
authenticated and authorized like the kernel's own websocket (the user must be
allowed to execute in kernels), that relays to the direct endpoint of that
kernel on 127.0.0.1. The page names a kernel and a port; the relay connects
only when the kernel is one of this server's and the port is the one that
kernel announced next to its connection file, so the page can never make the
server open a connection anywhere else. Disable both with
``jupyter server extension disable ipybridge.server``.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

_MARK = "_ipybridge_nodelay"
#: The relay's bound on one websocket message (the direct path sends parts of at most 8 MiB).
RELAY_FRAME_BYTES = 9 << 20
#: The relay pings the page this often, and closes when a pong is this late (seconds).
RELAY_PING_S = 30.0
#: How long the relay waits for the kernel's endpoint to accept and greet (seconds).
RELAY_CONNECT_S = 5.0


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "ipybridge.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    _add_relay(serverapp)
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


def announced_port(kernel: Any) -> int | None:
    """The direct endpoint port a kernel of this server announced, or None.

    None also when the announcing process is gone: a kernel killed with SIGKILL leaves its file
    behind, and its port may belong to another program by now.
    """
    from ._direct import announcement_path

    path = announcement_path(getattr(kernel, "connection_file", None))
    if path is None:
        return None
    try:
        with open(path) as f:
            announced = json.load(f)
        port, pid = announced.get("port"), announced.get("pid")
    except (OSError, ValueError, AttributeError):
        return None
    if type(port) is not int or not 0 < port < 65536 or type(pid) is not int or not _alive(pid):
        return None
    return port


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs as this user (a kernel this server started does)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError:  # gone, or another user's
        return False
    return True


def is_endpoint_greeting(message: Any) -> bool:
    """Whether the first message of an upstream connection is an ipybridge endpoint's ``{"ipb", "nonce"}``."""
    if not isinstance(message, str) or len(message) > 256:
        return False
    try:
        greeting = json.loads(message)
    except ValueError:
        return False
    return isinstance(greeting, dict) and greeting.get("ipb") == 1 and isinstance(greeting.get("nonce"), str)


def _add_relay(serverapp: Any) -> None:
    from jupyter_core.utils import ensure_async
    from jupyter_server.auth.decorator import ws_authenticated
    from jupyter_server.base.handlers import JupyterHandler
    from jupyter_server.base.websocket import WebSocketMixin
    from jupyter_server.utils import url_path_join
    from tornado import web
    from tornado.httpclient import HTTPClientError
    from tornado.ioloop import IOLoop
    from tornado.websocket import WebSocketClosedError, WebSocketError, WebSocketHandler, websocket_connect

    from ._direct import PATH

    class DirectRelayHandler(WebSocketMixin, WebSocketHandler, JupyterHandler):  # type: ignore[misc]
        """Page <-> kernel direct endpoint, through the Jupyter server (same origin, its auth)."""

        auth_resource = "kernels"
        upstream: Any = None
        greeting: str | None = None

        def set_default_headers(self) -> None:
            """No HTML security headers on a websocket (as jupyter_server's kernel websocket)."""

        @property
        def max_message_size(self) -> int:
            return RELAY_FRAME_BYTES

        @ws_authenticated
        async def get(self, kernel_id: str) -> None:
            authorized = await ensure_async(
                self.authorizer.is_authorized(self, self.current_user, "execute", "kernels")
            )
            if not authorized:
                raise web.HTTPError(403)
            if kernel_id not in self.kernel_manager:
                raise web.HTTPError(404)
            port = announced_port(self.kernel_manager.get_kernel(kernel_id))
            if port is None or self.get_argument("port", "") != str(port):
                raise web.HTTPError(403, "not a direct endpoint announced by this kernel")
            try:
                self.upstream = await websocket_connect(
                    f"ws://127.0.0.1:{port}{PATH}", connect_timeout=RELAY_CONNECT_S, max_message_size=RELAY_FRAME_BYTES
                )
                # The endpoint speaks first: anything else on that port (a reused port) is not relayed to.
                self.greeting = await asyncio.wait_for(self.upstream.read_message(), RELAY_CONNECT_S)
            except (OSError, HTTPClientError, WebSocketError, asyncio.TimeoutError) as exc:
                if self.upstream is not None:
                    self.upstream.close()
                raise web.HTTPError(502, "the kernel's direct endpoint is not reachable") from exc
            if not is_endpoint_greeting(self.greeting):
                self.upstream.close()
                raise web.HTTPError(502, "not the kernel's direct endpoint")
            try:
                await super().get(kernel_id)  # returns when the connection ends, or at once when the handshake fails
            finally:
                self.upstream.close()  # a refused handshake (bad upgrade, cross origin) never reaches on_close

        # Keep-alive by tornado's own pings, in seconds. WebSocketMixin's are in milliseconds, and tornado
        # (>= 6.5) reads the same two properties for its pings and warns that the timeout exceeds the interval.
        @property
        def ping_interval(self) -> float:
            return RELAY_PING_S

        @property
        def ping_timeout(self) -> float:
            return RELAY_PING_S

        def open(self, *args: Any, **kwargs: Any) -> None:
            WebSocketHandler.open(self, *args, **kwargs)  # not WebSocketMixin.open: it pings in milliseconds
            self.set_nodelay(True)
            if self.greeting is not None:  # read from upstream to check it; the page needs its nonce
                self.write_message(self.greeting)
            stream = getattr(self.upstream, "stream", None)
            if stream is not None:
                stream.set_nodelay(True)
            IOLoop.current().add_callback(self._pump)

        async def _pump(self) -> None:
            upstream = self.upstream
            while True:
                message = await upstream.read_message()
                if message is None:
                    break
                try:
                    await self.write_message(message, binary=isinstance(message, bytes))
                except WebSocketClosedError:
                    break
            self.close()

        async def on_message(self, message: str | bytes) -> None:
            try:
                await self.upstream.write_message(message, binary=isinstance(message, bytes))
            except WebSocketClosedError:
                self.close()

        def on_close(self) -> None:
            if self.upstream is not None:
                self.upstream.close()

    route = url_path_join(serverapp.web_app.settings["base_url"], r"/ipybridge/direct/(?P<kernel_id>[\w-]+)")
    serverapp.web_app.add_handlers(".*$", [(route, DirectRelayHandler)])
