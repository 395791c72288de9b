"""The direct transport: the same protocol over a websocket between page and kernel.

The comm (anywidget custom messages) crosses the Jupyter server's message path,
ZMQ and the kernel's shell dispatch for every message. The direct transport
carries the same envelopes (docs/protocol.md, "Direct transport") over a
websocket to an endpoint inside the kernel process, listening on 127.0.0.1
only: the thread ``ipybridge-direct`` accepts connections, each connection's
own thread reads it (the websocket protocol is the ``websockets`` library's
sans-I/O ``ServerProtocol``), and whichever thread has an answer writes it. A
tiny call that finds its widget's worker idle runs on the reading thread
itself, which then writes its answer: one thread wakes per call. A call there
that waits or takes long (:data:`HANDOFF_AFTER_S`) hands the reading to a new
thread, so the connection is always read. The comm stays
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
connection and which over the comm. A view switches when the page starts
using a connection (its first message there), with a ``transport`` item naming
that connection, sent over the comm in outbox order, so the page can keep kernel
order across the two channels; nothing is sent on a connection before that.
Every request of a view is remembered with how it was answered (bounded), so a
page that lost its connection and sends again everything it has no answer for
gets each answer once and nothing runs twice.
"""

from __future__ import annotations

import atexit
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import select
import socket
import struct
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ._protocol import PROTOCOL_VERSION, Hello, envelope, simple_error

if TYPE_CHECKING:
    from ._core import BridgeCore
    from ._runtime import SerialWorker

log = logging.getLogger("ipybridge")
_ws_log = logging.getLogger("ipybridge.websockets")  # the websocket protocol's own messages

#: URL path of the kernel's endpoint (also what the server's relay connects to).
PATH = "/ipybridge/direct"
#: A connection that has not authenticated within this long is closed.
AUTH_TIMEOUT_S = 5.0
#: The first (authentication) message may be at most this big.
AUTH_BYTES = 4096
#: The most one websocket message may carry: one 8 MiB part plus its header.
#: Bigger page messages travel as ``part`` items here too (docs/protocol.md, "Large messages").
FRAME_BYTES = 9 << 20
#: Bytes written to one connection and not yet taken by the page's socket; beyond this the page is too
#: slow for the direct path: the connection is closed and its view goes back to the comm (its requests
#: without an answer are sent again, answered from memory).
WRITE_BUFFER_BYTES = 64 << 20
#: Kernel->page messages carrying at least this many bytes of buffers go to a page on the loopback route
#: by reference: the message names a one-time URL on the endpoint and the page fetches the buffers there
#: (Chromium takes an HTTP body about twice as fast as a websocket message of the same size, and the
#: kernel writes it in slices of :data:`BULK_SLICE_BYTES` instead of packing a whole copy; issue 14).
BULK_BYTES = 4 << 20
#: The kernel writes a fetched body in slices of this size (one slice copied at a time).
BULK_SLICE_BYTES = 1 << 20
#: URL path (under the endpoint) of the buffers of one kernel->page message, by its one-time key.
BULK_PATH = PATH + "/bulk/"
#: Open connections per kernel process (each rendered view uses one).
MAX_CONNECTIONS = 256
#: Connections per kernel process that have not authenticated yet.
MAX_UNAUTHENTICATED = 16
#: Requests remembered per view that used the direct path (ids and answers, for the fallback).
REMEMBERED_REQUESTS = 4096
#: Bytes of remembered answers per widget; older answers are forgotten first.
REMEMBERED_BYTES = 32 << 20
#: Output and events sent over one connection that are kept to send again over the comm if the connection
#: drops before the page read them (the page skips those it had: each carries its number ``n``).
RESENT_TYPES = frozenset({"output", "event"})
#: Bytes of those items kept per connection (the newest; an older one lost with the socket is reported by the
#: page as a gap in the numbers).
RESENT_BYTES = 4 << 20
#: A call run on its connection's reading thread (SerialWorker.run_here) that still runs after this long
#: (seconds) hands the reading to a new thread: the page's later messages (cancels, replies to call_js,
#: async calls) are not held up behind it. One that waits in wait_serving hands it over at once.
HANDOFF_AFTER_S = 0.02
#: The watchdog that makes those hand-overs looks every HANDOFF_AFTER_S / 2 while calls run that way,
#: and sleeps (until the next one) after this long without any.
WATCH_IDLE_S = 2.0
#: Environment variable that turns the direct path off for a kernel (``0``, ``false``, ``no``, ``off``).
ENV_SWITCH = "IPYBRIDGE_DIRECT"
_HEADER = struct.Struct("<I")
#: Compact JSON (the page's messages are ours or our widget's; no cycles in them), and its reader, made once:
#: json.dumps(..., separators=...) builds an encoder per call.
_JSON_ENCODE = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
_JSON_DECODE = json.JSONDecoder().raw_decode
_JSON_SPACE = " \t\n\r"
_FORGOTTEN = object()  # a remembered request whose answer was dropped to stay within REMEMBERED_BYTES
_ON_COMM = object()  # a remembered request answered over the comm (delivered there: never sent again)


# ------------------------------------------------------------------ framing
def pack(content: Any, buffers: Sequence[Any]) -> bytes:
    """One websocket message: u32 LE length of a JSON ``[envelope, sizes]`` header, the header, the buffers."""
    if not buffers:
        head = _JSON_ENCODE([content, []]).encode()
        return _HEADER.pack(len(head)) + head
    views = [memoryview(b).cast("B") for b in buffers]
    head = _JSON_ENCODE([content, [v.nbytes for v in views]]).encode()
    # JSON may end in spaces: the first buffer starts 8-aligned, so the page views a float64 array in place.
    head += b" " * (-(_HEADER.size + len(head)) % 8)
    return b"".join([_HEADER.pack(len(head)), head, *views])


def pack_reference(content: Any, sizes: Sequence[int], key: str) -> bytes:
    """A websocket message whose buffers are fetched: the header ``[envelope, sizes, key]`` and nothing after it.

    The page GETs :data:`BULK_PATH` + ``key`` once; the body is the buffers back to back, each starting at a
    multiple of 8 bytes (:func:`bulk_offsets`).
    """
    head = json.dumps([content, list(sizes), key], separators=(",", ":")).encode()
    return _HEADER.pack(len(head)) + head


def bulk_offsets(sizes: Sequence[int]) -> tuple[list[int], int]:
    """Where each buffer starts in a fetched body, and the body's length.

    Each buffer starts 8-aligned, so the page views a float64 array in place.
    """
    offsets, end = [], 0
    for n in sizes:
        end += -end % 8
        offsets.append(end)
        end += n
    return offsets, end


def _read_json(text: str) -> Any:
    """One JSON value with only JSON whitespace around it; ValueError (or RecursionError) when it is not."""
    start = 0 if not text or text[0] not in _JSON_SPACE else len(text) - len(text.lstrip(_JSON_SPACE))
    value, stop = _JSON_DECODE(text, start)
    if stop != len(text) and text[stop:].strip(_JSON_SPACE):
        raise ValueError(f"extra data after the JSON at character {stop}")
    return value


def unpack_text(text: str) -> Any:
    """The envelope of a text message (a message without buffers is its envelope's JSON); ``ValueError`` if not JSON."""
    try:
        return _read_json(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"the message is not JSON: {exc}") from None


def unpack(data: bytes | bytearray | memoryview) -> tuple[Any, list[memoryview]]:
    """The envelope and buffers of one websocket message; ``ValueError`` when it is malformed.

    The header is UTF-8 JSON (what the page's TextEncoder makes); JSON whitespace may surround it.
    """
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    if view.nbytes < _HEADER.size:
        raise ValueError("a direct message needs a 4-byte header length")
    (head_bytes,) = _HEADER.unpack_from(view)
    end = _HEADER.size + head_bytes
    if end > view.nbytes:
        raise ValueError("the header is longer than the message")
    try:
        head = _read_json(str(view[_HEADER.size : end], "utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"the header is not JSON: {exc}") from None
    if type(head) is not list or len(head) != 2 or type(head[1]) is not list:
        raise ValueError("the header must be [envelope, sizes]")
    content, sizes = head
    if not sizes:
        if end != view.nbytes:
            raise ValueError("the buffer sizes do not add up to the message")
        return content, []
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
#: Sockets accepted whose HTTP request has not been read yet (each has a thread for at most AUTH_TIMEOUT_S);
#: beyond this a new one is closed at once.
MAX_HANDSHAKES = 64
#: Bytes read from a connection's socket at a time.
_RECV_BYTES = 1 << 18
#: After the kernel closes a connection, how long it waits for the page to close its side.
CLOSE_GRACE_S = 2.0
_EOF = object()  # in a connection's write queue: the close frame is out, end the TCP connection
_BULK_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


_OPEN: Any = None
_CLOSED: Any = None
_TEXT: Any = None
_BINARY: Any = None
_CONT: Any = None


def _load_websockets() -> None:
    """Import the websocket protocol; fail (the comm then carries everything) where the endpoint cannot run."""
    global _OPEN, _CLOSED, _TEXT, _BINARY, _CONT
    from websockets.frames import Opcode
    from websockets.protocol import State

    _OPEN, _CLOSED = State.OPEN, State.CLOSED
    _TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT


class DirectEndpoint:
    """The kernel process's websocket endpoint: one per process, started on first use.

    Sockets, threads and websocket framing are ipybridge's own, with the websocket protocol (handshake,
    frame parsing, pings, closing) from the ``websockets`` library's sans-I/O ``ServerProtocol``: the thread
    ``ipybridge-direct`` accepts connections; each connection has a thread that reads its socket (blocking)
    and hands each message to the Bridge as it is read. No event loop: a message costs one wake of that
    thread and a ``recv`` (tornado on its own loop cost ~4x the kernel CPU per message, issue 14). A tiny
    call often runs on that thread too (see the module doc); the thread ``ipybridge-direct-watch`` hands a
    connection's reading to a new thread when such a call takes long.
    """

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
        _load_websockets()  # fails here (the comm carries everything) when the library is missing

        self.secret = secrets.token_urlsafe(32)
        self.widgets: weakref.WeakValueDictionary[str, DirectRoutes] = weakref.WeakValueDictionary()
        self._counts = threading.Lock()  # the counts, bulk and open connections below
        self.connections = 0  # websocket connections open (authenticated or not)
        self.unauthenticated = 0  # of which not authenticated yet
        self.handshakes = 0  # sockets whose HTTP request is not read yet
        self.refused = 0  # connections refused (diagnostic, for tests)
        #: Buffers of kernel->page messages waiting to be fetched, by one-time key.
        self.bulk: dict[str, _Bulk] = {}
        self._open: set[_DirectHandler] = set()
        self._stopped = False
        #: Hand-overs of a connection's reading to a new thread (a diagnostic, for tests).
        self.handoffs = 0
        self._watch = threading.Condition()
        self._watcher: threading.Thread | None = None
        self._watch_asleep = False  # the watchdog waits for the next call run on a reading thread
        self._last_inline = 0.0  # when the last call run on a reading thread started (time.monotonic)
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port: int = self._listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, name="ipybridge-direct", daemon=True)
        self.thread.start()
        self.announcement = _announce(self.port)
        atexit.register(self.stop)

    def _accept(self) -> None:
        while not self._stopped:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                if self._stopped:
                    return
                time.sleep(0.05)  # out of file descriptors, say: try again soon, without spinning
                continue
            with self._counts:
                refuse = self._stopped or self.handshakes >= MAX_HANDSHAKES
                if refuse:
                    self.refused += 1
                else:
                    self.handshakes += 1
            if refuse:
                sock.close()
                continue
            conn = _DirectHandler(self, sock)
            threading.Thread(target=conn.run, name="ipybridge-direct-conn", daemon=True).start()

    def register(self, key: str, routes: DirectRoutes) -> None:
        self.widgets[key] = routes

    def inline_started(self, now: float) -> None:
        """A call starts on a connection's reading thread (that thread): make sure the watchdog looks."""
        self._last_inline = now
        if self._watch_asleep or self._watcher is None:
            with self._watch:
                if self._watcher is None and not self._stopped:
                    self._watcher = threading.Thread(target=self._watchdog, name="ipybridge-direct-watch", daemon=True)
                    self._watcher.start()
                self._watch_asleep = False
                self._watch.notify()

    def _watchdog(self) -> None:
        """Hand the reading of a connection whose reading thread runs a call for HANDOFF_AFTER_S to a new thread.

        It polls while calls run on reading threads, rather than being told of each (a wake-up and a GIL
        hand-over per call, which is what running calls there saves); after WATCH_IDLE_S without any it
        sleeps until inline_started wakes it.
        """
        while True:
            with self._watch:
                if self._stopped:
                    return
                if time.monotonic() - self._last_inline > WATCH_IDLE_S:
                    self._watch_asleep = True
                    # A call that started after the check above and saw _watch_asleep still False: look again.
                    while self._watch_asleep and not self._stopped:
                        if time.monotonic() - self._last_inline <= WATCH_IDLE_S:
                            self._watch_asleep = False
                            break
                        self._watch.wait()
                    continue
            time.sleep(HANDOFF_AFTER_S / 2)
            now = time.monotonic()
            with self._counts:
                conns = list(self._open)
            for conn in conns:
                try:
                    reader = conn.held_reader(now, HANDOFF_AFTER_S)
                    if reader is not None:
                        conn.hand_off(reader)
                except Exception:  # noqa: PERF203 - the watchdog must outlive any one connection
                    log.warning("ipybridge: the direct watchdog failed on a connection", exc_info=True)

    def check_secret(self, token: Any) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token.encode(), self.secret.encode())

    def check_proof(self, nonce: str, proof: Any) -> bool:
        """Whether ``proof`` is the hex HMAC-SHA256 of this connection's nonce keyed with the secret."""
        expected = hmac.new(self.secret.encode(), nonce.encode(), "sha256").hexdigest()
        return isinstance(proof, str) and hmac.compare_digest(proof.encode(), expected.encode())

    def stop(self) -> None:
        """Stop listening and end every connection (their views fall back to the comm)."""
        if self.announcement:
            with contextlib.suppress(OSError):
                os.unlink(self.announcement)
            self.announcement = None
        with self._counts:
            self._stopped = True
            conns = list(self._open)
        with self._watch:
            self._watch.notify()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        for conn in conns:
            conn.abort()


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


class _DirectHandler:
    """One connection to the endpoint (a page view's, a bulk fetch, or a refused one), served by its own thread."""

    def __init__(self, endpoint: DirectEndpoint, sock: socket.socket) -> None:
        from websockets.server import ServerProtocol

        self.endpoint = endpoint
        self.sock = sock
        self.proto = ServerProtocol(max_size=AUTH_BYTES, logger=_ws_log)
        #: Held around the protocol object: the reading thread feeds it, any thread may close it.
        self._proto_lock = threading.Lock()
        self.routes: DirectRoutes | None = None
        self.view: str | None = None
        self.nonce = ""
        self.counted = False
        self.refused = False
        #: Set when authenticated: this connection's number, named in its view's ``transport`` items.
        self.conn_id = 0
        #: "open" (authenticated, not used yet), "attached" (the page sends here; the view's items after its
        #: ``transport: direct`` item come here), "gone" (closed or given up: nothing is sent here any more).
        #: Changed under the routes' lock.
        self.state = "open"
        self._buffered = 0  # bytes given to send_packed and not yet written to the socket (or fetched)
        #: The page fetches big buffers from the endpoint (its "use" message said so): see BULK_BYTES.
        self.fetches = False
        self._buffered_lock = threading.Lock()
        #: Held while a frame is written or queued (any thread): frames never interleave, and keep their order.
        self._write_lock = threading.Lock()
        #: What the socket did not take at once, in order, for the writing thread: (data, size counted) or _EOF.
        self._pending: deque[Any] = deque()
        self._writing = False  # a thread writes self._pending
        self._writer: threading.Thread | None = None  # that thread, the last one started
        #: The socket is closed (under the write lock): nothing may use it any more, as its descriptor may
        #: already be another connection's.
        self._sock_closed = False
        self._writable = False  # the websocket is open for frames (set at the handshake, cleared at the close)
        self._fragments: list[bytes] = []  # a fragmented message being read
        self._fragment_opcode: Any = None
        self._deadline = time.monotonic() + AUTH_TIMEOUT_S  # to be authenticated by (from the accept)
        self._close_at: float | None = None  # closing: the page's end of the connection is awaited until then
        self._handshaking = True  # counted in the endpoint's handshakes
        #: The thread that reads the socket now (hand_off changes it; the one before then stops reading).
        self._thread: threading.Thread | None = None
        self._read_lock = threading.Lock()  # around _thread and taking frames off _events
        #: Frames read and not handled yet, for whichever thread reads next.
        self._events: deque[Any] = deque()
        self._recv_buffer: memoryview | None = None  # what the reading thread reads the socket into
        self._at_end = False  # the socket's end was read (or the protocol closed): handle _events, then end
        #: The reading thread that runs a call itself (run_inline), and since when (time.monotonic).
        self._inline_thread: threading.Thread | None = None
        self._inline_since = 0.0

    # ------------------------------------------------------------ reading (this connection's thread)
    def run(self) -> None:
        self._thread = threading.current_thread()
        self._read_with(self._serve)

    def _read_with(self, serve: Callable[[], None]) -> None:
        """Run a reading thread's ``serve`` (the first thread's ``_serve``, or, after hand_off, ``_read_loop``
        going on where the thread before stopped); the thread that reads last ends the connection."""
        try:
            serve()
        except Exception:  # a broken connection must not end the process's endpoint
            log.debug("ipybridge: a direct connection failed", exc_info=True)
        finally:
            if self._reads_here():  # not when it handed the reading to another thread
                self._ended()

    def _reads_here(self) -> bool:
        with self._read_lock:
            return self._thread is threading.current_thread()

    def _read_loop(self) -> None:
        """Handle the frames read, read more, until the connection ends or another thread reads it."""
        me = threading.current_thread()
        events = self._events
        while True:
            while True:
                with self._read_lock:
                    if self._thread is not me:
                        return  # handed off while this thread ran a call: the new thread reads on
                    if not events:
                        break
                    event = events.popleft()
                self._on_frame(event)
            self._flush_protocol()
            if self._at_end:
                return
            data = self._recv()
            if data is None:  # a deadline passed
                if self._close_at is None:
                    self._refuse("no authentication in time")
                return
            events.extend(self._feed(data))  # only the reading thread adds, and only here
            if not data or self.proto.state is _CLOSED:
                self._at_end = True

    def run_inline(self, worker: SerialWorker, job: Callable[[], None]) -> bool:
        """Run a call's job on this reading thread if its worker is idle (see SerialWorker.run_here)."""
        try:
            return worker.run_here(job, self.hand_off, self._held_by_call)
        finally:
            with self._read_lock:
                if self._inline_thread is threading.current_thread():
                    self._inline_thread = None

    def _held_by_call(self) -> None:
        """The worker took this reading thread's job (run_here's on_start): from now on the thread is held."""
        now = time.monotonic()
        self._inline_since = now
        self._inline_thread = threading.current_thread()
        self.endpoint.inline_started(now)

    def held_reader(self, now: float, at_least: float) -> threading.Thread | None:
        """The thread reading this connection, if it has been running a call for ``at_least`` seconds."""
        thread, since = self._inline_thread, self._inline_since
        if thread is None or thread is not self._thread or now - since < at_least:
            return None
        return thread

    def hand_off(self, reader: threading.Thread) -> None:
        """A new thread reads this connection from now on, if ``reader`` still does and runs a call (any thread).

        Also once the socket is aborted (not writable): its end must be read now, so that the view falls back
        to the comm (_ended) while the call runs.
        """
        with self._read_lock:
            if self._thread is not reader or self._inline_thread is not reader or self._sock_closed:
                return  # not held (any more), handed off already, or over
            thread = threading.Thread(
                target=self._read_with, args=(self._read_loop,), name="ipybridge-direct-conn", daemon=True
            )
            try:
                thread.start()  # it reads only once it is _thread: it waits for this lock first
            except RuntimeError:  # no thread to be had: the reading goes on when the call returns
                log.warning("ipybridge: could not start a thread to read a direct connection", exc_info=True)
                return
            self._thread = thread
        with self.endpoint._counts:
            self.endpoint.handoffs += 1

    def _serve(self) -> None:
        from websockets.http11 import Request

        endpoint = self.endpoint
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        events: list[Any] = []
        while not events:
            data = self._recv()
            if data is None:
                return
            events = self._feed(data)
            with self._proto_lock:
                out = self.proto.data_to_send()
            for chunk in out:  # an answer to a malformed request
                if chunk:
                    self.sock.sendall(chunk)
            if not events and (not data or self.proto.handshake_exc is not None):
                return  # not an HTTP request
        request, early = events[0], events[1:]  # frames a client sent before the handshake's answer
        assert isinstance(request, Request)
        with endpoint._counts:
            endpoint.handshakes -= 1
            self._handshaking = False
        path = request.path.split("?", 1)[0]
        if path.startswith(BULK_PATH):
            self._serve_bulk(request, path[len(BULK_PATH) :])
            return
        origin = request.headers.get("Origin")
        response = None
        if path != PATH:
            response = self.proto.reject(404, "Not Found\n")
        elif not is_loopback_origin(origin):
            log.info("ipybridge: refused a direct connection from origin %r", origin)
            response = self.proto.reject(403, "Forbidden\n")
        with endpoint._counts:
            if response is None and (
                endpoint._stopped
                or endpoint.connections >= MAX_CONNECTIONS
                or endpoint.unauthenticated >= MAX_UNAUTHENTICATED
            ):
                response = self.proto.reject(503, "too many connections\n")
            if response is None:
                response = self.proto.accept(request)  # or 400/426 for a request that is no websocket handshake
            if response.status_code == 101:
                endpoint.connections += 1
                endpoint.unauthenticated += 1
                endpoint._open.add(self)
                self.counted = True
            elif response.status_code in (403, 503):
                endpoint.refused += 1
        with self._proto_lock:
            self.proto.send_response(response)
            out = self.proto.data_to_send()
        for chunk in out:
            if chunk:
                self.sock.sendall(chunk)
        if not self.counted:
            return
        self._writable = True
        # Until it authenticates, a frame longer than AUTH_BYTES closes the connection on its header (1009),
        # before its payload is read (the protocol reads each frame's length against max_message_size).
        self.nonce = secrets.token_urlsafe(16)
        with self._proto_lock:
            self.proto.send_text(json.dumps({"ipb": PROTOCOL_VERSION, "nonce": self.nonce}).encode())  # for a proof
        self._events.extend(early)
        self._read_loop()

    def _recv(self) -> bytes | None:
        """The next bytes from the socket (b"" at its end); None when the authentication deadline passed."""
        if self.routes is None or self._close_at is not None:  # a deadline applies: wait for it at most
            deadline = self._close_at if self._close_at is not None else self._deadline
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not _readable(self.sock, remaining):
                return None
        if self._recv_buffer is None:
            # Read into a buffer kept for the connection (256 KiB from its first read on): recv(n) allocates
            # n bytes for every read, ~9 us for 256 KiB, a tenth of a tiny call's kernel time.
            self._recv_buffer = memoryview(bytearray(_RECV_BYTES))
        try:
            n = self.sock.recv_into(self._recv_buffer)
        except OSError:
            return b""
        return bytes(self._recv_buffer[:n])

    def _feed(self, data: bytes) -> list[Any]:
        with self._proto_lock:
            if data:
                self.proto.receive_data(data)
            else:
                self.proto.receive_eof()
            return self.proto.events_received()

    def _on_frame(self, frame: Any) -> None:
        """One frame the protocol read (pings, pongs and closing it answered itself): join a message's fragments."""
        if frame.opcode is _TEXT or frame.opcode is _BINARY:
            if not frame.fin:
                self._fragments, self._fragment_opcode = [frame.data], frame.opcode
                return
            data, opcode = frame.data, frame.opcode
        elif frame.opcode is _CONT:
            self._fragments.append(frame.data)
            if not frame.fin:
                return
            data, opcode = b"".join(self._fragments), self._fragment_opcode
            self._fragments = []
        else:
            return
        if opcode is _TEXT:
            try:
                message: str | bytes = data.decode()
            except UnicodeDecodeError:
                self._refuse("text that is not UTF-8")
                return
        else:
            message = data
        self.on_message(message)

    def _refuse(self, why: str) -> None:
        if self.refused:
            return
        self.refused = True
        with self.endpoint._counts:
            self.endpoint.refused += 1
        log.info("ipybridge: refused a direct connection: %s", why)
        self.close(1008, "refused")

    def on_message(self, message: str | bytes) -> None:
        if self.refused:
            return  # closing: whatever else it sent is dropped unread
        if self.routes is None:
            self._authenticate(message)
            return
        try:
            # A message without buffers may come as text: its envelope's JSON (no header, no sizes).
            content, buffers = (unpack_text(message), []) if isinstance(message, str) else unpack(message)
        except ValueError as exc:
            content, buffers, error = None, [], str(exc)
        msgs = content.get("msgs") if isinstance(content, dict) else None
        if self.state == "open" and self.view is not None:
            # The page's first message after "ready" says it uses this connection (a `transport` item):
            # only now are the view's items routed here, so nothing is ever sent on a connection the
            # page gave up on (a connect timeout, another route tried meanwhile). It says there too whether
            # it fetches big buffers from this endpoint (the loopback route; not through the relay).
            use = msgs[0] if isinstance(msgs, list) and msgs and isinstance(msgs[0], dict) else {}
            self.fetches = use.get("type") == "transport" and use.get("fetch") is True
            self.routes.attach(self.view, self)
        if content is None:
            self.routes.core.post(
                {"type": "protocol_error", "view": self.view, "error": simple_error("ProtocolError", error)}
            )
            return
        if isinstance(msgs, list) and any(isinstance(m, dict) and m.get("type") == "transport" for m in msgs):
            msgs = [m for m in msgs if not (isinstance(m, dict) and m.get("type") == "transport")]
            if not msgs:
                return
            content = {**content, "msgs": msgs}
        self.routes.core.receive(content, buffers, channel="direct", runner=self)

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
        with self.endpoint._counts:
            self.endpoint.unauthenticated -= 1
        _bound_messages(self.proto, FRAME_BYTES)
        self.routes, self.view = routes, view
        self.conn_id = routes.opened(self)
        # "ready": the page may send here now. Nothing else is sent here before the page uses it.
        ready = {"type": "transport", "view": view, "transport": "direct", "conn": self.conn_id}
        self.send_packed(pack(envelope([ready]), []))

    def _ended(self) -> None:
        """The connection is over (its thread ends here): close the socket, let its view fall back."""
        endpoint = self.endpoint
        with self._write_lock:
            self._writable = False
            pending, self._pending = list(self._pending), deque()
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)  # a write in progress on another thread fails now
            writer = self._writer
        for item in pending:
            if item is not _EOF:
                self._written(item[1])
        if writer is not None:
            writer.join(10)  # it writes outside the lock: the descriptor must not be reused under it
        with self._write_lock:
            self._sock_closed = True
            self.sock.close()
        with endpoint._counts:
            if self._handshaking:
                endpoint.handshakes -= 1
                self._handshaking = False
            endpoint._open.discard(self)
            counted, self.counted = self.counted, False
            if counted:
                endpoint.connections -= 1
                if self.routes is None:
                    endpoint.unauthenticated -= 1
                    if not self.refused:  # closed before authenticating (e.g. for a long first frame)
                        self.refused = True
                        endpoint.refused += 1
            bulks = [k for k, b in endpoint.bulk.items() if b.conn is self]
            dropped = [endpoint.bulk.pop(k) for k in bulks]
        for bulk in dropped:
            bulk.done()  # never fetched now: the page asks again over the comm
        if counted and self.routes is not None and self.view is not None:
            self.routes.detach(self.view, self)

    # ------------------------------------------------------------ bulk fetch (this connection's thread)
    def _serve_bulk(self, request: Any, key: str) -> None:
        """``GET /ipybridge/direct/bulk/<key>``: the buffers of one kernel->page message, once."""
        endpoint = self.endpoint
        origin = request.headers.get("Origin")
        bulk = None
        if _BULK_KEY.fullmatch(key) and is_loopback_origin(origin):
            with endpoint._counts:
                bulk = endpoint.bulk.pop(key, None)
        if bulk is None:  # unknown, fetched already, its connection gone, or a page of another site
            with endpoint._counts:
                endpoint.refused += 1
            self.sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        try:
            _, length = bulk_offsets([v.nbytes for v in bulk.views])
            head = [
                "HTTP/1.1 200 OK",
                "Content-Type: application/octet-stream",
                "Cache-Control: no-store",
                f"Content-Length: {length}",
                "Connection: close",
            ]
            if origin is not None:
                head += [f"Access-Control-Allow-Origin: {origin}", "Vary: Origin"]
            self.sock.settimeout(60.0)  # a page that stops reading the body does not hold this thread for ever
            self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            for piece in bulk.slices():
                self.sock.sendall(piece)  # straight from the buffer, one slice at a time
        except (OSError, UnicodeEncodeError):  # the page went away mid-body: it falls back and asks again
            log.debug("ipybridge: a direct fetch ended early", exc_info=True)
        finally:
            bulk.done()

    # ------------------------------------------------------------ kernel -> page (any thread)
    def send(self, content: dict[str, Any], buffers: list[memoryview]) -> None:
        """Send one envelope: as text when it has no buffers, else inline or with its buffers to fetch (BULK_BYTES).

        Text is the envelope's JSON, what the page's ``JSON.parse`` reads straight from the message event: a
        binary message would need a length header, a copy into a buffer and a ``TextDecoder`` on each side.
        """
        try:
            if not buffers:
                self.send_packed(_JSON_ENCODE(content).encode(), text=True)
                return
            views = [memoryview(b).cast("B") for b in buffers]
            total = sum(v.nbytes for v in views)
            if not self.fetches or total < BULK_BYTES:
                self.send_packed(pack(content, views))
                return
            key = secrets.token_urlsafe(32)
            bulk = _Bulk(self, views, total)
            self.send_packed(pack_reference(content, [v.nbytes for v in views], key), bulk=(key, bulk))
        finally:
            routes = self.routes
            if routes is not None and routes._unencoded:
                routes.keep_sent()  # the answers in it, now that they are on their way

    def send_packed(self, data: bytes, bulk: tuple[str, _Bulk] | None = None, text: bool = False) -> None:
        """Send one websocket message to the page: binary (``pack``'s bytes) or ``text``; any thread, never blocks.

        In order per connection: the frame goes straight to the socket when nothing is waiting for it and
        the socket takes it whole; else what is left waits in order for a thread that writes it (started
        for that, it ends when nothing waits).
        """
        size = len(data)
        extra = bulk[1].total if bulk else 0
        with self._buffered_lock:
            over = self._buffered > 0 and self._buffered + size + extra > WRITE_BUFFER_BYTES
            if not over:
                self._buffered += size + extra
        if over:  # the page does not keep up: no unbounded buffer in the kernel
            self._too_slow()
            return
        self._write([_frame_header(size, _TEXT_FIN if text else _BINARY_FIN), data], size, bulk)

    def _write(self, parts: list[Any], size: int, bulk: tuple[str, _Bulk] | None = None) -> None:
        with self._write_lock:
            if not self._writable:
                self._written(size)
                if bulk:
                    bulk[1].done()
                return  # the page falls back and asks again for what it did not get
            if bulk:  # fetchable from now until fetched or this connection closes; counted as unread till then
                with self.endpoint._counts:
                    self.endpoint.bulk[bulk[0]] = bulk[1]
            if _DONTWAIT is None:  # no send that never blocks (Windows): the writing thread writes every frame
                self._pending.append((parts, size))
                if not self._writing:
                    self._start_writer()
                return
            if not self._pending and not self._writing:
                try:
                    sent = self.sock.sendmsg(parts, [], _DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:  # closed meanwhile: the reading thread notices
                    self._written(size)
                    return
                rest = _rest(parts, sent)
                if not rest:
                    self._written(size)
                    return
                self._pending.append((rest, size))
                self._start_writer()
            else:
                self._pending.append((parts, size))

    def _start_writer(self) -> None:
        """Start the thread that writes what waits (write lock held)."""
        self._writing = True
        self._writer = threading.Thread(target=self._write_pending, name="ipybridge-direct-write", daemon=True)
        self._writer.start()

    def _write_pending(self) -> None:
        """Write what waits, in order, blocking (this thread only); end when nothing waits."""
        while True:
            with self._write_lock:
                if not self._pending:
                    self._writing = False
                    return
                item = self._pending.popleft()
            if item is _EOF:
                self._shutdown(socket.SHUT_WR)
                continue
            parts, size = item
            try:
                for part in parts:
                    self.sock.sendall(part)
            except OSError:  # closed: the reading thread notices and drops the rest
                pass
            finally:
                self._written(size)

    def _flush_protocol(self) -> None:
        """Send what the protocol has to send (its frames: the nonce, pongs, a close), in order with the rest."""
        with self._proto_lock:  # held while queued: two threads' protocol frames keep the protocol's order
            for data in self.proto.data_to_send():
                if data:
                    self._write([data], 0)
                else:
                    self._end_output()

    def _end_output(self) -> None:
        """The close frame is out: end the TCP connection once it is written; wait a little for the page's end."""
        if self._close_at is None:
            self._close_at = time.monotonic() + CLOSE_GRACE_S
        with self._write_lock:
            self._writable = False
            if self._pending or self._writing:
                self._pending.append(_EOF)
                return
        self._shutdown(socket.SHUT_WR)

    def _shutdown(self, how: int) -> None:
        """End one or both directions of the connection (any thread), unless its socket is closed already."""
        with self._write_lock:
            if not self._sock_closed:
                with contextlib.suppress(OSError):
                    self.sock.shutdown(how)

    def _written(self, size: int) -> None:
        with self._buffered_lock:
            self._buffered -= size

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the websocket with ``code`` (any thread): a close frame, then the end of the connection."""
        with self._proto_lock:
            if self.proto.state is not _OPEN:
                return
            self.proto.fail(code, reason)  # a server ends the TCP connection right after its close frame
        self._flush_protocol()
        if threading.current_thread() is not self._thread:
            # The reading thread may wait in recv() with no deadline: end the reading side too.
            self._shutdown(socket.SHUT_RD)

    def _too_slow(self) -> None:
        log.info("ipybridge: a page reads its direct connection too slowly; its view goes back to the comm")
        self.abort()

    def abort(self) -> None:
        """End the connection now, without a close frame (any thread): its view goes back to the comm."""
        with self._write_lock:
            self._writable = False
        self._shutdown(socket.SHUT_RDWR)

    def shut(self) -> None:
        self.close(1000, "closed")


#: The flag of a send that never blocks (POSIX; None on Windows, where every frame goes to a writing thread).
_DONTWAIT: int | None = getattr(socket, "MSG_DONTWAIT", None) if hasattr(socket.socket, "sendmsg") else None


def _readable(sock: socket.socket, timeout: float) -> bool:
    """Whether ``sock`` has something to read (or its end) within ``timeout`` seconds."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    return bool(select.select([sock], [], [], timeout)[0])  # Windows


def _bound_messages(proto: Any, limit: int) -> None:
    """The most one incoming message may carry from now on (checked on each frame's header)."""
    if hasattr(proto, "max_message_size"):
        proto.max_message_size = limit
    else:  # websockets before 16
        proto.max_size = limit


_BINARY_FIN = 0x82  # a frame's first byte: FIN, and the binary or the text opcode
_TEXT_FIN = 0x81


def _frame_header(size: int, first: int = _BINARY_FIN) -> bytes:
    """The header of one final, unmasked websocket frame of ``size`` bytes (RFC 6455, 5.2).

    ``first``: its first byte, FIN and the opcode (``_BINARY_FIN`` or ``_TEXT_FIN``).
    """
    if size < 126:
        return bytes((first, size))
    if size < 1 << 16:
        return _FRAME16.pack(first, 126, size)
    return _FRAME64.pack(first, 127, size)


_FRAME16 = struct.Struct("!BBH")
_FRAME64 = struct.Struct("!BBQ")


def _rest(parts: list[Any], sent: int) -> list[Any]:
    """What is left of ``parts`` once ``sent`` bytes of them went out."""
    rest = []
    for part in parts:
        n = len(part) if not isinstance(part, memoryview) else part.nbytes
        if sent >= n:
            sent -= n
            continue
        rest.append(memoryview(part)[sent:] if sent else part)
        sent = 0
    return rest


class _Bulk:
    """The buffers of one kernel->page message, until the page fetches them or its connection closes."""

    def __init__(self, conn: _DirectHandler, views: list[memoryview], total: int) -> None:
        self.conn = conn
        self.views = views
        self.total = total
        self._done = False

    def slices(self) -> Any:
        """The body: the buffers back to back, 8-aligned (:func:`bulk_offsets`), in slices of BULK_SLICE_BYTES."""
        end = 0
        for view in self.views:
            pad = -end % 8
            if pad:
                yield b"\0" * pad
            for start in range(0, view.nbytes, BULK_SLICE_BYTES):
                yield view[start : start + BULK_SLICE_BYTES]
            end += pad + view.nbytes

    def done(self) -> None:
        """Fetched or dropped: no longer counted against the connection's unread bytes."""
        if not self._done:
            self._done = True
            self.views = []
            self.conn._written(self.total)


# ------------------------------------------------------------------ routes
class DirectRoutes:
    """Which channel each view of one widget uses, and what the fallback needs to remember.

    A view's kernel->page items change channel only at ``transport`` items. They travel over the comm in
    outbox order and name their connection (``conn``): ``direct`` when the page starts using that
    connection (its first message there), ``comm`` when the connection is gone. :meth:`split` applies them
    in outbox order, so exactly the view's items posted between the two go over that connection, all the
    others over the comm (docs/protocol.md, "Order across the two channels").
    """

    def __init__(self, core: BridgeCore, endpoint: DirectEndpoint, key: str, routes: Sequence[str]) -> None:
        self.core = core
        self.endpoint = endpoint
        self.key = key
        self.routes = list(routes)
        self._lock = threading.Lock()  # the state below
        # A connection's state change and its transport item are posted together: the items are then in the
        # order of the changes, whichever threads make them (the endpoint's, the comm's, a cell's).
        self._order = threading.Lock()
        self._next_conn = 0
        self._conns: dict[int, _DirectHandler] = {}  # authenticated and not gone
        self._used: dict[str, _DirectHandler] = {}  # view -> its attached connection, as of the last change
        self._markers: dict[int, _DirectHandler] = {}  # conn id -> connection, until split() passes its "comm"
        self._live: dict[str, _DirectHandler] = {}  # view -> connection, as of the outbox's last flush
        #: Per view: request id -> how it was answered (None: not yet; _ON_COMM; _FORGOTTEN; or the answer as
        #: (JSON text of its item, its buffers), sent directly and kept to send again; until keep_sent,
        #: (the item, its buffers)).
        self._remembered: dict[str, OrderedDict[int, Any]] = {}
        self._answer_bytes: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._sent: dict[_DirectHandler, _Sent] = {}  # output and events routed to a connection, numbered
        self._bytes = 0
        #: Answers remembered as items, to be turned into JSON text after they were sent (keep_sent).
        self._unencoded: list[tuple[str, int, tuple[dict[str, Any], tuple[memoryview, ...]]]] = []
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

    def opened(self, conn: _DirectHandler) -> int:
        """A connection authenticated (the connection's thread): its number. Nothing is routed to it yet."""
        with self._lock:
            self._next_conn += 1
            self._conns[self._next_conn] = conn
            return self._next_conn

    def attach(self, view: str, conn: _DirectHandler) -> None:
        """The page started using ``conn`` for ``view`` (the connection's thread): move the view off the comm."""
        with self._order:
            with self._lock:
                accept = conn.state == "open" and view not in self._used and self.knows_view(view)
                if accept:
                    conn.state = "attached"
                    self._used[view] = conn
                    self._markers[conn.conn_id] = conn
                    self._remembered.setdefault(view, OrderedDict())
                    self.last_view = view
                else:  # given up meanwhile, a second connection for one view, or a view that said bye
                    conn.state = "gone"
                    self._conns.pop(conn.conn_id, None)
            if not accept:
                conn.shut()
                return
            self.core.post({"type": "transport", "view": view, "transport": "direct", "conn": conn.conn_id})

    def detach(self, view: str, conn: _DirectHandler) -> None:
        """``conn`` closed, or the page went back to the comm: the view's items go over the comm again."""
        with self._order:
            with self._lock:
                was = conn.state
                conn.state = "gone"
                self._conns.pop(conn.conn_id, None)
                if self._used.get(view) is conn:
                    del self._used[view]
            conn.shut()
            if was != "attached":
                return  # never used: nothing was routed to it
            # A message whose parts came over it cannot be finished (the page sends its requests again):
            # its memory goes now, not when newer messages need the room.
            self.core.parts.drop_view(view, "direct")
            self.core.post({"type": "transport", "view": view, "transport": "comm", "conn": conn.conn_id})
        # call_js calls still waiting for this view may have died with the socket: send them again, to this
        # view only, over the comm (the page drops a call it already started).
        from ._core import _settle

        for call in self.core.pending_js_calls(view):
            if call.future.blocking_on_direct and not any(v in self._used for v in call.targets):
                # A cell blocks on it, and this frontend hands comm messages to the kernel on the thread that
                # cell occupies: the answer could only come after the cell, so the wait fails now.
                _settle(
                    call.future,
                    exc=ConnectionError(
                        f"JavaScript handler {call.name!r} cannot answer this blocked cell: the page's direct "
                        "connection to the kernel closed during the wait, and this frontend delivers comm "
                        "messages only after the cell ends. Use `await bridge.call_js(...)` to wait without "
                        "blocking the cell."
                    ),
                )
                continue
            self.core.post({**call.item, "view": view}, call.buffers)

    def transport(self) -> str | None:
        view = self.last_view
        if view is None or view not in self.core.views:
            return "comm" if self.core.views else None
        return "direct" if view in self._used else "comm"

    def split(
        self, items: list[tuple[dict[str, Any], list[memoryview]]]
    ) -> list[tuple[Callable[[dict[str, Any], list[memoryview]], None] | None, list[Any]]]:
        """Items in outbox order -> [(send or None for the comm, items)], switching views at their markers."""
        comm: list[Any] = []
        per_conn: dict[_DirectHandler, list[Any]] = {}
        views: list[str] | None = None  # the core's views, copied once if needed (other threads change them)
        with self._lock:
            for entry in items:
                item = entry[0]
                kind, view = item.get("type"), item.get("view")
                if kind == "transport" and view is not None:
                    marked = self._markers.get(item.get("conn"))  # type: ignore[arg-type]
                    comm.append(entry)
                    if marked is not None:
                        if item.get("transport") == "direct":
                            self._live[view] = marked
                        else:
                            if self._live.get(view) is marked:
                                del self._live[view]
                            del self._markers[marked.conn_id]
                            comm.extend(self._resend(marked, view))  # right after the switch: before anything newer
                    continue
                if view is not None:
                    conn = self._live.get(view)
                    if kind in ("result", "error"):
                        self._remember_answer(view, item.get("id"), entry if conn is not None else None)
                    if conn is not None:
                        per_conn.setdefault(conn, []).append(
                            self._numbered(conn, entry) if kind in RESENT_TYPES else entry
                        )
                    else:
                        comm.append(entry)
                    continue
                if views is None:
                    views = list(self.core.views)
                live = set(self._live.values())
                for conn in live:
                    per_conn.setdefault(conn, []).append(self._numbered(conn, entry) if kind in RESENT_TYPES else entry)
                # A protocol_error for no view answers a message nobody could read: it may have come over
                # the comm from a page that is not on the direct path, so it goes there too.
                if not live or kind == "protocol_error" or any(v not in self._live for v in views):
                    comm.append(entry)
        out: list[Any] = [(None, comm)] if comm else []
        out += [(conn.send, group) for conn, group in per_conn.items()]
        return out

    def _numbered(
        self, conn: _DirectHandler, entry: tuple[dict[str, Any], list[memoryview]]
    ) -> tuple[dict[str, Any], list[memoryview]]:
        """``entry`` as sent over ``conn``: numbered, and kept (the newest RESENT_BYTES) to send again if it drops."""
        sent = self._sent.get(conn)
        if sent is None:
            sent = self._sent[conn] = _Sent()
        sent.n += 1
        item, buffers = entry
        numbered = ({**item, "n": sent.n}, buffers)
        size = sum(b.nbytes for b in buffers) + len(item.get("text") or "") + 128
        if size <= RESENT_BYTES:
            sent.items.append((numbered, size))
            sent.bytes += size
            while sent.bytes > RESENT_BYTES:
                sent.bytes -= sent.items.popleft()[1]
        return numbered

    def _resend(self, conn: _DirectHandler, view: str) -> list[tuple[dict[str, Any], list[memoryview]]]:
        """What ``conn`` carried that the page may not have read, to go over the comm after its ``transport: comm``.

        Each item names the connection (``resent``) and keeps its number: the page skips those it read on
        the socket. A broadcast item (an event) names the view, so views still on the comm do not get it twice.
        """
        sent = self._sent.pop(conn, None)
        if sent is None:
            return []
        return [({**item, "view": view, "resent": conn.conn_id}, buffers) for (item, buffers), _ in sent.items]

    def _remember_answer(self, view: str, ident: Any, entry: tuple[dict[str, Any], list[memoryview]] | None) -> None:
        """Note how request ``ident`` was answered: ``entry`` sent directly (kept to send again), None: on the comm.

        Called under the lock, before the answer is sent. The item is kept as it is until :meth:`keep_sent`
        (after the send) turns it into JSON text: the encoding is not on the call's way to the page.
        """
        remembered = self._remembered.get(view)
        if remembered is None or ident not in remembered:
            return
        # An answer sent again (admit() re-posts it after a fallback) replaces its own count, not adds to it.
        self._bytes -= self._answer_bytes.pop((view, ident), 0)
        if entry is None:
            remembered[ident] = _ON_COMM  # the comm delivers it: never sent again
            return
        item, buffers = entry
        kept = (item, tuple(buffers))
        size = (sum(b.nbytes for b in buffers) if buffers else 0) + 64  # + the JSON's length (keep_sent)
        remembered[ident] = kept
        self._unencoded.append((view, ident, kept))
        self._answer_bytes[(view, ident)] = size
        self._bytes += size
        if self._bytes > REMEMBERED_BYTES:
            self._forget_over()

    def keep_sent(self) -> None:
        """Turn the answers remembered since the last call into JSON text (any thread; after they were sent).

        Kept as text, not as the items' dicts: thousands of answers a second kept as dicts would each add
        containers to the garbage collector's oldest generation and make its full collections (pauses of the
        whole kernel) come with the call rate. Read back only when sent again (rare).
        """
        with self._lock:
            unencoded, self._unencoded = self._unencoded, []
            for view, ident, kept in unencoded:
                remembered = self._remembered.get(view)
                if remembered is None or remembered.get(ident) is not kept:
                    continue  # forgotten, or answered again meanwhile
                text = _JSON_ENCODE(kept[0])
                remembered[ident] = (text, kept[1])
                key = (view, ident)
                if key in self._answer_bytes:
                    self._answer_bytes[key] += len(text)
                    self._bytes += len(text)
            self._forget_over()

    def _forget_over(self) -> None:
        """Drop the oldest answers kept beyond REMEMBERED_BYTES (lock held)."""
        while self._bytes > REMEMBERED_BYTES and self._answer_bytes:
            (old_view, old_id), old_size = self._answer_bytes.popitem(last=False)
            self._bytes -= old_size
            if old_id in self._remembered.get(old_view, {}):
                self._remembered[old_view][old_id] = _FORGOTTEN

    # ------------------------------------------------------------ from page
    def heard_on_comm(self, content: Any) -> None:
        """A page message came over the comm marked ``"direct": "lost"``: its view fell back to the comm.

        The page marks what it sends over the comm after losing its connection (and says so at once, in a
        message of no items), so the view is moved back before the kernel reads the requests it sends
        again, even when the kernel has not yet seen the connection close.
        """
        if not isinstance(content, dict) or content.get("direct") != "lost":
            return
        views: set[str] = set()
        if isinstance(content.get("view"), str):
            views.add(content["view"])
        msgs = content.get("msgs")
        if isinstance(msgs, list):
            views.update(m["view"] for m in msgs[:16] if isinstance(m, dict) and isinstance(m.get("view"), str))
        for view in views:
            for conn in self._conns_of(view):
                self.detach(view, conn)

    def _conns_of(self, view: str) -> list[_DirectHandler]:
        """The view's connections that are not gone (its attached one, and any it may be about to use)."""
        with self._lock:
            return [c for c in self._conns.values() if c.view == view]

    def admit(self, items: list[Any], channel: str, is_request: Callable[[Any], bool]) -> list[Any]:
        """Drop requests already received (on either channel); answer again those answered directly.

        Every request of a view is remembered from its ``hello`` on, with how it was answered: a page that
        lost its connection sends again every request it has no answer for, and only those whose answer
        went over the lost connection are answered again (a request still running is answered once, when
        it finishes, over the comm; one answered over the comm was delivered there).
        """
        out = []
        again: list[tuple[dict[str, Any], list[memoryview]]] = []
        with self._lock:
            for item in items:
                view, ident = getattr(item, "view", None), getattr(item, "id", None)
                if isinstance(item, Hello):
                    self._remembered.setdefault(item.view, OrderedDict())
                remembered = self._remembered.get(view) if isinstance(view, str) else None
                if remembered is None or ident is None or not is_request(item):
                    out.append(item)
                    continue
                if ident not in remembered:
                    remembered[ident] = None
                    if len(remembered) > REMEMBERED_REQUESTS:
                        self._trim(view, remembered)  # type: ignore[arg-type]
                    out.append(item)
                    continue
                answer = remembered[ident]
                if answer is _FORGOTTEN:
                    error = simple_error(
                        "ConnectionError",
                        "the answer was lost with the direct connection and is too old to send again",
                    )
                    again.append(({"type": "error", "view": view, "id": ident, "error": error}, []))
                elif answer is not None and answer is not _ON_COMM and channel == "comm":
                    kept_item = answer[0]
                    item_again = json.loads(kept_item) if type(kept_item) is str else dict(kept_item)
                    again.append((item_again, list(answer[1])))
                # None: still running, its answer goes to the view's current channel; _ON_COMM: delivered
        for item, buffers in again:
            self.core.outbox.post(item, buffers)
        return out

    def _trim(self, view: str, remembered: OrderedDict[int, Any]) -> None:
        """Forget the oldest answered requests: down to 3/4 of REMEMBERED_REQUESTS (so this runs rarely).

        Requests never answered (still running, or cancelled by the page) are kept up to twice that.
        """
        target = len(remembered) - REMEMBERED_REQUESTS * 3 // 4
        drop: list[int] = []
        for old_id, state in remembered.items():
            if len(drop) >= target:
                break
            if state is not None:
                drop.append(old_id)
        for old_id in drop:
            del remembered[old_id]
            self._bytes -= self._answer_bytes.pop((view, old_id), 0)
        while len(remembered) > 2 * REMEMBERED_REQUESTS:
            old_id, _ = remembered.popitem(last=False)
            self._bytes -= self._answer_bytes.pop((view, old_id), 0)

    def forget(self, view: str) -> None:
        """The view said bye: close its connections, forget its requests."""
        with self._lock:
            self._remembered.pop(view, None)
            for key in [k for k in self._answer_bytes if k[0] == view]:
                self._bytes -= self._answer_bytes.pop(key)
        for conn in self._conns_of(view):
            self.detach(view, conn)

    def close(self) -> None:
        with self._lock:
            conns = list(self._conns.values())
            for conn in conns:
                conn.state = "gone"
            self._conns.clear()
            self._used.clear()
            self._live.clear()
            self._sent.clear()
        for conn in conns:
            conn.shut()


class _Sent:
    """Output and event items routed to one connection: how many, and the newest RESENT_BYTES of them."""

    __slots__ = ("bytes", "items", "n")

    def __init__(self) -> None:
        self.n = 0
        self.items: deque[tuple[tuple[dict[str, Any], list[memoryview]], int]] = deque()
        self.bytes = 0
