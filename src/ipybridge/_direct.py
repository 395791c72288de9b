"""The direct transport: the same protocol over a websocket between page and kernel.

The comm (anywidget custom messages) crosses the Jupyter server's message path,
ZMQ and the kernel's shell dispatch for every message. The direct transport
carries the same envelopes (docs/protocol.md, "Direct transport") over a
websocket to an endpoint inside the kernel process, served by tornado on its
own thread (``ipybridge-direct``), listening on 127.0.0.1 only. The comm stays
the control channel and the fallback: the endpoint is offered in ``welcome``;
a page that cannot reach it keeps using the comm.

Security: a connection is accepted only with this kernel process's secret
(handed to pages over the comm, compared in constant time), or with a proof
of it (the HMAC-SHA256 of a nonce the endpoint sends first: what the page uses
on the loopback route, so the secret never goes to whatever listens there) for a widget of
this process and a view that said ``hello`` over the comm; a browser Origin
must be a loopback origin (the Jupyter server's relay sends none); the first
message must arrive within :data:`AUTH_TIMEOUT_S` and be small; every message
is bounded (:data:`FRAME_BYTES`); connections are bounded in number.

Routing: :class:`DirectRoutes` (one per :class:`~ipybridge._core.BridgeCore`)
decides, when the outbox flushes, which items go over which view's
connection and which over the comm. A view switches with a ``transport`` item
sent over the comm in outbox order, so the page can keep kernel order across
the two channels. Requests that came over a connection are remembered with
their answers (bounded), so a page that lost its connection mid-call and sends
them again over the comm gets each answer once and nothing runs twice.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
import struct
import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ._protocol import PROTOCOL_VERSION, envelope, simple_error

if TYPE_CHECKING:
    from ._core import BridgeCore

log = logging.getLogger("ipybridge")

#: URL path of the kernel's endpoint (also what the server's relay connects to).
PATH = "/ipybridge/direct"
#: A connection that has not authenticated within this long is closed.
AUTH_TIMEOUT_S = 5.0
#: The first (authentication) message may be at most this big.
AUTH_BYTES = 4096
#: The most one websocket message may carry: one 8 MiB part plus its header.
#: Bigger page messages travel as ``part`` items here too (docs/protocol.md, "Large messages").
FRAME_BYTES = 9 << 20
#: Open connections per kernel process (each rendered view uses one).
MAX_CONNECTIONS = 256
#: Connections per kernel process that have not authenticated yet.
MAX_UNAUTHENTICATED = 16
#: Requests remembered per view that used the direct path (ids and answers, for the fallback).
REMEMBERED_REQUESTS = 4096
#: Bytes of remembered answers per widget; older answers are forgotten first.
REMEMBERED_BYTES = 32 << 20
#: Environment variable that turns the direct path off for a kernel (``0``, ``false``, ``no``, ``off``).
ENV_SWITCH = "IPYBRIDGE_DIRECT"
_HEADER = struct.Struct("<I")
_FORGOTTEN = object()  # a remembered request whose answer was dropped to stay within REMEMBERED_BYTES


# ------------------------------------------------------------------ framing
def pack(content: Any, buffers: Sequence[Any]) -> bytes:
    """One websocket message: u32 LE length of a JSON ``[envelope, sizes]`` header, the header, the buffers."""
    views = [memoryview(b).cast("B") for b in buffers]
    head = json.dumps([content, [v.nbytes for v in views]], separators=(",", ":")).encode()
    if views:  # JSON may end in spaces: the first buffer starts 8-aligned, so the page views a float64 array in place
        head += b" " * (-(_HEADER.size + len(head)) % 8)
    return b"".join([_HEADER.pack(len(head)), head, *views])


def unpack(data: bytes | bytearray | memoryview) -> tuple[Any, list[memoryview]]:
    """The envelope and buffers of one websocket message; ``ValueError`` when it is malformed."""
    view = memoryview(data).cast("B")
    if view.nbytes < _HEADER.size:
        raise ValueError("a direct message needs a 4-byte header length")
    (head_bytes,) = _HEADER.unpack_from(view)
    end = _HEADER.size + head_bytes
    if end > view.nbytes:
        raise ValueError("the header is longer than the message")
    try:
        head = json.loads(bytes(view[_HEADER.size : end]))
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"the header is not JSON: {exc}") from None
    if not isinstance(head, list) or len(head) != 2 or not isinstance(head[1], list):
        raise ValueError("the header must be [envelope, sizes]")
    content, sizes = head
    if not all(type(n) is int and n >= 0 for n in sizes) or end + sum(sizes) != view.nbytes:
        raise ValueError("the buffer sizes do not add up to the message")
    buffers = []
    offset = end
    for n in sizes:
        buffers.append(view[offset : offset + n])
        offset += n
    return content, buffers


def is_loopback_origin(origin: str | None) -> bool:
    """Whether a browser Origin is a page served from this machine's loopback interface."""
    if origin is None:
        return True  # not a browser (the server's relay, a test client): the secret still applies
    try:
        host = urlparse(origin).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def enabled_by_environment() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in {"0", "false", "no", "off"}


# ---------------------------------------------------------------- endpoint
class DirectEndpoint:
    """The kernel process's websocket endpoint: one per process, started on first use."""

    _instance: DirectEndpoint | None = None
    _failed = False
    _lock = threading.Lock()

    @classmethod
    def get(cls) -> DirectEndpoint | None:
        """The running endpoint, started now if needed; None when it is off or cannot start."""
        if cls._instance is not None or cls._failed:
            return cls._instance
        with cls._lock:
            if cls._instance is None and not cls._failed:
                try:
                    cls._instance = cls()
                except Exception:
                    log.warning("ipybridge: the direct transport could not start; using the comm", exc_info=True)
                    cls._failed = True
        return cls._instance

    def __init__(self) -> None:
        import tornado.httpserver
        import tornado.netutil
        import tornado.web

        self.secret = secrets.token_urlsafe(32)
        self.widgets: weakref.WeakValueDictionary[str, DirectRoutes] = weakref.WeakValueDictionary()
        self.connections = 0  # touched on the endpoint's thread only
        self.unauthenticated = 0
        self.refused = 0  # connections refused (diagnostic, for tests)
        self.loop = asyncio.new_event_loop()
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port: int = sockets[0].getsockname()[1]
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                app = tornado.web.Application(
                    [(PATH, _DirectHandler, {"endpoint": self})],
                    websocket_max_message_size=FRAME_BYTES,
                )
                self._server = tornado.httpserver.HTTPServer(app, max_body_size=AUTH_BYTES)
                self._server.add_sockets(sockets)
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="ipybridge-direct", daemon=True)
        self.thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        self.announcement = _announce(self.port)
        atexit.register(self.stop)

    def register(self, key: str, routes: DirectRoutes) -> None:
        self.widgets[key] = routes

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the process is exiting
            self.loop.call_soon_threadsafe(fn, *args)

    def check_secret(self, token: Any) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token.encode(), self.secret.encode())

    def check_proof(self, nonce: str, proof: Any) -> bool:
        """Whether ``proof`` is the hex HMAC-SHA256 of this connection's nonce keyed with the secret."""
        expected = hmac.new(self.secret.encode(), nonce.encode(), "sha256").hexdigest()
        return isinstance(proof, str) and hmac.compare_digest(proof.encode(), expected.encode())

    def stop(self) -> None:
        if self.announcement:
            with contextlib.suppress(OSError):
                os.unlink(self.announcement)
            self.announcement = None

        def close() -> None:
            self._server.stop()
            self.loop.stop()

        self.call_soon(close)


def _announce(port: int) -> str | None:
    """Tell this kernel's Jupyter server (its relay) the endpoint's port, next to the connection file."""
    path = announcement_path(_connection_file())
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"port": port, "pid": os.getpid()}, f)
    except OSError:
        return None
    return path


def announcement_path(connection_file: str | None) -> str | None:
    """Where a kernel with this connection file announces its direct endpoint (read by ipybridge.server)."""
    if not connection_file:
        return None
    folder, name = os.path.split(os.path.abspath(connection_file))
    return os.path.join(folder, f"ipybridge-direct-{name}")


def _connection_file() -> str | None:
    try:
        from ipykernel.kernelapp import IPKernelApp
    except ImportError:
        return None
    if not IPKernelApp.initialized():
        return None
    return getattr(IPKernelApp.instance(), "abs_connection_file", None)


def _handler_base() -> type:
    import tornado.websocket

    return tornado.websocket.WebSocketHandler


class _DirectHandler(_handler_base()):  # type: ignore[misc]
    """One page view's connection; lives on the endpoint's thread."""

    def initialize(self, endpoint: DirectEndpoint) -> None:
        self.endpoint = endpoint
        self.routes: DirectRoutes | None = None
        self.view: str | None = None
        self.counted = False
        self.abandoned = False  # the page went back to the comm: send this view nothing more here
        self.refused = False

    def check_origin(self, origin: str) -> bool:
        allowed = is_loopback_origin(origin)
        if not allowed:
            self.endpoint.refused += 1
            log.info("ipybridge: refused a direct connection from origin %r", origin)
        return allowed

    async def get(self, *args: Any, **kwargs: Any) -> None:
        endpoint = self.endpoint
        if endpoint.connections >= MAX_CONNECTIONS or endpoint.unauthenticated >= MAX_UNAUTHENTICATED:
            endpoint.refused += 1
            self.set_status(503)
            self.finish("too many connections")
            return
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.endpoint.connections += 1
        self.endpoint.unauthenticated += 1
        self.counted = True
        self.set_nodelay(True)
        self.nonce = secrets.token_urlsafe(16)
        self.write_message(json.dumps({"ipb": PROTOCOL_VERSION, "nonce": self.nonce}))  # for a proof
        self.endpoint.loop.call_later(AUTH_TIMEOUT_S, self._auth_deadline)

    def _auth_deadline(self) -> None:
        if self.routes is None and self.ws_connection is not None:
            self._refuse("no authentication in time")

    def _refuse(self, why: str) -> None:
        if self.refused:
            return
        self.refused = True
        self.endpoint.refused += 1
        log.info("ipybridge: refused a direct connection: %s", why)
        self.close(1008, "refused")

    def on_message(self, message: str | bytes) -> None:
        if self.refused:
            return  # closing: whatever else it sent is dropped unread
        if self.routes is None:
            self._authenticate(message)
            return
        if isinstance(message, str):
            self._refuse("text after authentication")
            return
        try:
            content, buffers = unpack(message)
        except ValueError as exc:
            self.routes.core.post(
                {"type": "protocol_error", "view": self.view, "error": simple_error("ProtocolError", str(exc))}
            )
            return
        self.routes.core.receive(content, buffers, channel="direct")

    def _authenticate(self, message: str | bytes) -> None:
        if not isinstance(message, str) or len(message) > AUTH_BYTES:
            self._refuse("the first message must be a short text")
            return
        try:
            hello = json.loads(message)
        except ValueError:
            hello = None
        if not isinstance(hello, dict) or hello.get("ipb") != PROTOCOL_VERSION:
            self._refuse("malformed authentication")
            return
        if "proof" in hello:
            accepted = self.endpoint.check_proof(self.nonce, hello["proof"])
        else:
            accepted = self.endpoint.check_secret(hello.get("token"))
        if not accepted:
            self._refuse("wrong token")
            return
        key, view = hello.get("widget"), hello.get("view")
        routes = self.endpoint.widgets.get(key) if isinstance(key, str) else None
        if routes is None or not isinstance(view, str) or not routes.knows_view(view):
            self._refuse("unknown widget or view")
            return
        self.endpoint.unauthenticated -= 1
        self.routes, self.view = routes, view
        routes.attach(view, self)

    def on_close(self) -> None:
        if not self.counted:
            return
        self.counted = False
        self.endpoint.connections -= 1
        if self.routes is None:
            self.endpoint.unauthenticated -= 1
        elif self.view is not None:
            self.routes.detach(self.view, self)

    # kernel -> page (any thread)
    def send_packed(self, data: bytes) -> None:
        self.endpoint.call_soon(self._write, data)

    def _write(self, data: bytes) -> None:
        if self.ws_connection is None or self.abandoned:
            return  # the page falls back and asks again for what it did not get
        try:
            future = self.write_message(data, binary=True)
        except Exception:  # noqa: BLE001 - closed meanwhile: same as above
            return
        future.add_done_callback(_ignore_result)

    def shut(self) -> None:
        self.endpoint.call_soon(self._shut)

    def _shut(self) -> None:
        if self.ws_connection is not None:
            self.close(1000, "closed")


def _ignore_result(future: Any) -> None:
    with contextlib.suppress(BaseException):
        future.result()


# ------------------------------------------------------------------ routes
class DirectRoutes:
    """Which channel each view of one widget uses, and what the fallback needs to remember."""

    def __init__(self, core: BridgeCore, endpoint: DirectEndpoint, key: str, routes: Sequence[str]) -> None:
        self.core = core
        self.endpoint = endpoint
        self.key = key
        self.routes = list(routes)
        self._lock = threading.Lock()
        self._live: dict[str, _DirectHandler] = {}  # views on the direct path (as of the outbox's last flush)
        self._switches: dict[str, deque[_DirectHandler | None]] = {}  # posted, not yet flushed
        self._remembered: dict[str, OrderedDict[int, Any]] = {}  # views that used the direct path
        self._answer_bytes: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._bytes = 0
        self.last_view: str | None = None
        endpoint.register(key, self)

    # ------------------------------------------------------------ to page
    def offer(self) -> dict[str, Any]:
        """What ``welcome`` tells a view: where and how to connect."""
        return {
            "port": self.endpoint.port,
            "token": self.endpoint.secret,
            "widget": self.key,
            "routes": [r for r in self.routes if r != "relay" or self.endpoint.announcement],
        }

    def knows_view(self, view: str) -> bool:
        return view in self.core.views and not self.core.closed

    def attach(self, view: str, conn: _DirectHandler) -> None:
        """A view authenticated on ``conn`` (endpoint thread): move it off the comm."""
        with self._lock:
            self._remembered.setdefault(view, OrderedDict())
            self._switches.setdefault(view, deque()).append(conn)
            self.last_view = view
        marker = {"type": "transport", "view": view, "transport": "direct"}
        self.core.post(marker)  # over the comm, in order with what the view was sent before
        conn.send_packed(pack(envelope([marker]), []))  # "ready": the page may send here now

    def detach(self, view: str, conn: _DirectHandler) -> None:
        """``conn`` closed, or the page used the comm again: the view goes back to the comm."""
        with self._lock:
            if conn.abandoned:
                return
            conn.abandoned = True
            self._switches.setdefault(view, deque()).append(None)
        self.core.post({"type": "transport", "view": view, "transport": "comm"})
        conn.shut()
        # call_js calls still waiting for this view may have died with the socket: send them again, to this
        # view only, over the comm (the page drops a call it already started).
        for call in self.core.pending_js_calls(view):
            self.core.post({**call.item, "view": view}, call.buffers)

    def transport(self) -> str | None:
        view = self.last_view
        if view is None or view not in self.core.views:
            return "comm" if self.core.views else None
        conn = self._live.get(view)
        pending = self._switches.get(view)
        if pending:
            conn = pending[-1]
        return "direct" if conn is not None and not conn.abandoned else "comm"

    def split(
        self, items: list[tuple[dict[str, Any], list[memoryview]]]
    ) -> list[tuple[Callable[[dict[str, Any], list[memoryview]], None] | None, list[Any]]]:
        """Items in outbox order -> [(send or None for the comm, items)], switching views at their markers."""
        comm: list[Any] = []
        per_conn: dict[_DirectHandler, list[Any]] = {}
        views = list(self.core.views)  # one copy: the comm and endpoint threads add and remove views meanwhile
        with self._lock:
            for entry in items:
                item = entry[0]
                kind, view = item.get("type"), item.get("view")
                if kind == "transport" and view is not None and self._switches.get(view):
                    conn = self._switches[view].popleft()
                    if conn is None:
                        self._live.pop(view, None)
                    else:
                        self._live[view] = conn
                    comm.append(entry)
                    continue
                if kind in ("result", "error") and view in self._remembered:
                    self._remember_answer(view, item.get("id"), entry)
                if view is not None:
                    conn = self._live.get(view)
                    if conn is not None and not conn.abandoned:
                        per_conn.setdefault(conn, []).append(entry)
                    else:
                        comm.append(entry)
                    continue
                live = {c for c in self._live.values() if not c.abandoned}
                for conn in live:
                    per_conn.setdefault(conn, []).append(entry)
                # A protocol_error for no view answers a message nobody could read: it may have come over
                # the comm from a page that is not on the direct path, so it goes there too.
                if (
                    not live
                    or kind == "protocol_error"
                    or len(live) < len(self._live)
                    or any(v not in self._live for v in views)
                ):
                    comm.append(entry)
        out: list[Any] = [(None, comm)] if comm else []
        out += [(_sender(conn), group) for conn, group in per_conn.items()]
        return out

    def _remember_answer(self, view: str, ident: Any, entry: tuple[dict[str, Any], list[memoryview]]) -> None:
        remembered = self._remembered[view]
        if ident not in remembered:
            return
        size = sum(b.nbytes for b in entry[1]) + 256
        remembered[ident] = entry
        # An answer sent again (admit() re-posts it after a fallback) replaces its own count, not adds to it.
        self._bytes -= self._answer_bytes.pop((view, ident), 0)
        self._answer_bytes[(view, ident)] = size
        self._bytes += size
        while self._bytes > REMEMBERED_BYTES and self._answer_bytes:
            (old_view, old_id), old_size = self._answer_bytes.popitem(last=False)
            self._bytes -= old_size
            if old_id in self._remembered.get(old_view, {}):
                self._remembered[old_view][old_id] = _FORGOTTEN

    # ------------------------------------------------------------ from page
    def heard_on_comm(self, content: Any) -> None:
        """A page message came over the comm marked ``"direct": "lost"``: its view fell back to the comm.

        The page marks what it sends over the comm after losing its connection, so a view is moved
        back at once even when the kernel has not yet seen the connection close.
        """
        if not isinstance(content, dict) or content.get("direct") != "lost":
            return
        msgs = content.get("msgs")
        if not isinstance(msgs, list):
            return
        views: set[str] = {m["view"] for m in msgs[:16] if isinstance(m, dict) and isinstance(m.get("view"), str)}
        for view in views:
            conn = self._current_conn(view)
            if conn is not None:
                self.detach(view, conn)

    def _current_conn(self, view: str) -> _DirectHandler | None:
        with self._lock:
            pending = self._switches.get(view)
            conn = pending[-1] if pending else self._live.get(view)
        return conn if conn is not None and not conn.abandoned else None

    def admit(self, items: list[Any], channel: str, is_request: Callable[[Any], bool]) -> list[Any]:
        """Drop requests already received on the other channel; answer again those already answered."""
        if not self._remembered:
            return items
        out = []
        again: list[tuple[dict[str, Any], list[memoryview]]] = []
        with self._lock:
            for item in items:
                view, ident = getattr(item, "view", None), getattr(item, "id", None)
                remembered = self._remembered.get(view) if isinstance(view, str) else None
                if remembered is None or not isinstance(view, str) or ident is None or not is_request(item):
                    out.append(item)
                    continue
                if ident not in remembered:
                    remembered[ident] = None
                    while len(remembered) > REMEMBERED_REQUESTS:
                        old_id, old = remembered.popitem(last=False)
                        if old is not None and old is not _FORGOTTEN:
                            self._bytes -= self._answer_bytes.pop((view, old_id), 0)
                    out.append(item)
                    continue
                answer = remembered[ident]
                if answer is _FORGOTTEN:
                    error = simple_error(
                        "ConnectionError",
                        "the answer was lost with the direct connection and is too old to send again",
                    )
                    again.append(({"type": "error", "view": view, "id": ident, "error": error}, []))
                elif answer is not None and channel == "comm":
                    again.append(answer)
                # None: still running; its answer goes to the view's current channel
        for item, buffers in again:
            self.core.outbox.post(item, buffers)
        return out

    def forget(self, view: str) -> None:
        with self._lock:
            self._remembered.pop(view, None)
            for key in [k for k in self._answer_bytes if k[0] == view]:
                self._bytes -= self._answer_bytes.pop(key)
        conn = self._current_conn(view)
        if conn is not None:
            self.detach(view, conn)

    def close(self) -> None:
        with self._lock:
            conns = {*self._live.values(), *(c for q in self._switches.values() for c in q if c is not None)}
            self._live.clear()
        for conn in conns:
            conn.abandoned = True
            conn.shut()


def _sender(conn: _DirectHandler) -> Callable[[dict[str, Any], list[memoryview]], None]:
    def send(content: dict[str, Any], buffers: list[memoryview]) -> None:
        conn.send_packed(pack(content, buffers))

    return send
