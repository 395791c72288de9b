"""The kernel half of the protocol, free of widgets: dispatch, outbox, call_js.

:class:`BridgeCore` is driven by two functions: ``receive(content, buffers)``
for each comm message from the page, and the ``send(content, buffers)`` it was
given to talk back. The widget (``bridge.py``) wires these to the comm; the
unit tests wire them to a fake comm.
"""

from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import inspect
import itertools
import keyword
import linecache
import logging
import os
import sys
import threading
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _runtime
from ._capture import capture
from ._protocol import (
    DEFAULT_MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    BadItem,
    Bye,
    Call,
    Cancel,
    Custom,
    Execute,
    GetVar,
    Hello,
    Item,
    PartAssembler,
    ProtocolError,
    Refusal,
    Reply,
    SetVar,
    envelope,
    megabytes,
    parse_envelope,
    request_ids,
    shown_name,
    simple_error,
)
from ._serialize import SerializationError, encode
from .errors import BridgeClosedError, JavaScriptError

log = logging.getLogger("ipybridge")

Send = Callable[[dict[str, Any], list[memoryview]], None]
#: Splits queued items between channels: [(send, or None for the comm; items)].
Route = Callable[[list[tuple[dict[str, Any], list[memoryview]]]], list[tuple[Send | None, list[Any]]]]
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
#: A reply waiting for the rest of its message's calls is sent after at most this long.
DEFERRED_FLUSH_S = 0.01
#: How long printed text may wait for more before it leaves (seconds).
OUTPUT_FLUSH_S = 0.01
#: A message bigger than this is flushed at once instead of waiting for company.
FLUSH_BYTES = 4 << 20


def error_payload(exc: BaseException) -> dict[str, Any]:
    """``{ename, evalue, traceback}`` of an exception, without ipybridge's own frames."""
    import traceback

    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR + os.sep)
    ]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)] if frames else []
    lines += traceback.format_exception_only(type(exc), exc)
    return {
        "ename": type(exc).__name__,
        "evalue": str(exc),
        "traceback": [line.rstrip("\n") for line in lines],
    }


class JSFuture(concurrent.futures.Future):  # type: ignore[type-arg]
    """Result of :meth:`Bridge.call_js`: await it, or block with ``.result(timeout)``.

    Blocking never deadlocks on ipybridge's own threads: on a widget's worker
    (a ``def`` exposed function) the wait runs the calls queued meanwhile, so
    the page's handler may call back into Python; on ipybridge's event loop it
    raises at once (``await`` it there). A timeout raises :class:`TimeoutError`
    naming the handler.
    """

    def __init__(self, core: BridgeCore, name: str = "") -> None:
        super().__init__()
        self._core = core
        self.name = name
        #: A cell blocks on it where only the direct path can deliver the answer meanwhile
        #: (``_direct.DirectRoutes.detach`` fails it if that path goes away).
        self.blocking_on_direct = False

    def __await__(self) -> Any:
        if not self.done():
            self._core.check_can_wait()
        return asyncio.wrap_future(self).__await__()

    def result(self, timeout: float | None = None) -> Any:
        self._wait(timeout)
        return super().result(0)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        return super().exception(0)

    def _wait(self, timeout: float | None) -> None:
        if self.done():
            return
        if _runtime.in_loop_thread():
            raise RuntimeError(
                f"call_js({self.name!r}).result() would block ipybridge's event loop, which runs the async "
                f"functions the page may call while it answers: use `await b.call_js({self.name!r}, ...)` "
                "in an async def"
            )
        self.blocking_on_direct = self._core.check_can_block()
        try:
            with _runtime.internal():
                self._core.outbox.flush()  # the call leaves now, whatever else is busy
                done = _runtime.wait_serving(self, timeout)
        finally:
            self.blocking_on_direct = False
        if not done:
            raise TimeoutError(f"JavaScript handler {self.name!r} did not answer within {timeout:g} s")


@dataclass
class _JSCall:
    future: JSFuture
    name: str
    item: dict[str, Any]
    buffers: list[memoryview]
    targets: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)


_NO_KWARGS: Mapping[str, Any] = types.MappingProxyType({})


class _CallOutput:
    """Where one request's prints and displays go: ``output`` items for its view and id."""

    __slots__ = ("core", "ident", "view")

    def __init__(self, core: BridgeCore, view: str, ident: int) -> None:
        self.core = core
        self.view = view
        self.ident = ident

    def stream(self, stream: str, text: str) -> None:
        if text:
            # Held up to OUTPUT_FLUSH_S so that the pieces of one print() ("text", "\n") and a burst of
            # lines reach onOutput together, as ipykernel's own stream buffering does; the call's answer
            # flushes at once what is held, before it.
            self.core.post(
                {"type": "output", "view": self.view, "id": self.ident, "stream": stream, "text": text},
                delay=OUTPUT_FLUSH_S,
            )

    def display(self, content: dict[str, Any]) -> None:
        """A ``display()`` in the request: its text/plain form, as a line of stdout."""
        text = content.get("data", {}).get("text/plain")
        if text:
            self.stream("stdout", str(text) + "\n")


class _SyncCall:
    """A sync request for the worker (the job itself): ``fn(*args, **kwargs)`` with its output captured, answered.

    One object per request, with no closures and no reference cycles: thousands of requests a second must
    leave nothing for the cyclic garbage collector, whose full collections pause the whole kernel.
    :meth:`cancel` (the page gave up) drops its answer.
    """

    __slots__ = ("args", "cancelled", "core", "envelope", "fn", "ident", "kwargs", "view", "what")

    def __init__(
        self,
        core: BridgeCore,
        view: str,
        ident: int,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        what: str,
        envelope: _Envelope | None,
    ) -> None:
        self.core = core
        self.view = view
        self.ident = ident
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.what = what
        self.envelope = envelope
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __call__(self) -> None:
        core, view, ident = self.core, self.view, self.ident
        try:
            if self.cancelled or core.closed:
                return
            output = _CallOutput(core, view, ident)
            try:
                with capture(output.stream, output.display), core._worker.interruptible():
                    value = self.fn(*self.args, **self.kwargs)
            except BaseException as exc:  # noqa: BLE001 - SystemExit etc. become the call's error
                if not self.cancelled:
                    core._reply_error_to(view, ident, exc, delay=None)
                return
            if not self.cancelled:
                core._reply_value(view, ident, value, delay=None, what=self.what)
        finally:
            core._running.pop((view, ident), None)
            # Send now when this message is done; else within DEFERRED_FLUSH_S. A call answered at once
            # so costs no wake-up of the event loop thread (the deadline is only set when needed).
            envelope = self.envelope
            if envelope is not None:
                sent = envelope.done()
            elif core._worker.idle() and not core._open_envelopes.value:  # else it leaves with theirs
                core.outbox.flush()
                sent = True
            else:
                sent = False
            if not sent:
                core.outbox.deadline(DEFERRED_FLUSH_S)


_ANSWER_TYPES = frozenset({"result", "error"})
#: Page items that must each get exactly one answer.
_REQUEST_TYPES = (Call, Execute, SetVar, GetVar)


def _is_request(item: Item) -> bool:
    """An item that gets exactly one result or error (a malformed one with a view and id too)."""
    if isinstance(item, BadItem):
        return item.view is not None and item.id is not None
    return isinstance(item, _REQUEST_TYPES)


def _size(buffers: Sequence[memoryview]) -> int:
    return sum(b.nbytes for b in buffers)


class Outbox:
    """Collects kernel->page items and sends them in as few messages as possible."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._items: list[tuple[dict[str, Any], list[memoryview]]] = []
        self._bytes = 0
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._scheduled: float | None = None  # delay of the pending flush
        self._generation = 0  # bumped by every flush: a deadline timer from before is stale
        #: Answers (``result``/``error`` items with an id) posted so far; a diagnostic, see BridgeCore.debug_stats.
        self.answers_posted = 0
        #: Splits a flush between channels (the direct transport, ``_direct.DirectRoutes.split``);
        #: a send of None is the comm. None: everything goes to the comm.
        self.route: Route | None = None

    def post(self, item: dict[str, Any], buffers: list[memoryview] | None = None, delay: float | None = 0.0) -> None:
        """Queue an item; it leaves within ``delay`` seconds (None: the caller sets a deadline, see ``deadline``)."""
        buffers = buffers or []
        with self._lock:
            last = self._items[-1][0] if self._items else None
            if (
                item.get("type") == "output"
                and last is not None
                and last.get("type") == "output"
                and (last["view"], last["id"], last["stream"]) == (item["view"], item["id"], item["stream"])
            ):
                last["text"] += item["text"]
                return
            self._items.append((item, buffers))
            self._bytes += _size(buffers)
            if item.get("type") in _ANSWER_TYPES:
                self.answers_posted += 1
            big = self._bytes >= FLUSH_BYTES
            schedule = not big and delay is not None and (self._scheduled is None or delay < self._scheduled)
            if schedule:
                self._scheduled = delay
            generation = self._generation
        if big:
            self.flush()
        elif schedule and delay is not None:
            self._schedule(delay, generation)

    def deadline(self, delay: float) -> None:
        """Make what is queued leave within ``delay`` seconds."""
        with self._lock:
            schedule = bool(self._items) and (self._scheduled is None or delay < self._scheduled)
            if schedule:
                self._scheduled = delay
            generation = self._generation
        if schedule:
            self._schedule(delay, generation)

    def _schedule(self, delay: float, generation: int) -> None:
        loop = _runtime.event_loop()
        if delay <= 0:
            loop.call_soon_threadsafe(self._flush_if_current, generation)
        else:
            loop.call_soon_threadsafe(loop.call_later, delay, self._flush_if_current, generation)

    def _flush_if_current(self, generation: int) -> None:
        if generation == self._generation:
            self.flush()

    def flush(self) -> None:
        with self._send_lock:
            with self._lock:
                items, self._items = self._items, []
                self._bytes = 0
                self._scheduled = None
                self._generation += 1
            if not items:
                return
            groups: list[tuple[Send | None, list[Any]]] = [(None, items)]
            if self.route is not None:
                try:
                    groups = self.route(items)
                except Exception:  # the items are out of the queue: never lose them, the comm takes them all
                    log.exception("ipybridge could not route %d item(s); sending them over the comm", len(items))
            for send, group in groups:
                wire: list[dict[str, Any]] = []
                buffers: list[memoryview] = []
                for item, item_buffers in group:
                    if item_buffers:
                        item = {**item, "b0": len(buffers)}
                        buffers.extend(item_buffers)
                    wire.append(item)
                try:
                    (send or self._send)(envelope(wire), buffers)
                except Exception:
                    log.exception("ipybridge could not send %d item(s) to the page", len(wire))


class _OpenCount:
    """How many page messages still have sync work in progress (thread-safe)."""

    __slots__ = ("_lock", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    @property
    def value(self) -> int:
        return self._value

    def add(self, delta: int) -> int:
        with self._lock:
            self._value += delta
            return self._value


class _Envelope:
    """The sync jobs of one page message: their answers leave together when all are done.

    When it is done while other page messages are still being worked on, its
    answers wait for theirs (at most DEFERRED_FLUSH_S, the outbox's deadline):
    the answers to several page messages then leave in one message, and the
    page's next calls in one message too. Without this, batches that the
    deadline split under load never merge again, and a long run of concurrent
    calls decays towards a few calls per message (benchmarks/soak.py measured
    35 -> 6 calls per message over 30,000 calls with 64 in flight).
    """

    __slots__ = ("_lock", "_open", "_outbox", "_pending", "jobs")

    def __init__(self, outbox: Outbox, open_envelopes: _OpenCount) -> None:
        self._outbox = outbox
        self._open = open_envelopes
        self._pending = 1  # held by receive() until every item is dispatched
        self._lock = threading.Lock()
        self.jobs: list[Callable[[], None]] = []  # its sync jobs, for the worker once every item is read
        open_envelopes.add(1)

    def add(self) -> None:
        with self._lock:
            self._pending += 1

    def done(self) -> bool:
        """One job of this message finished; False when its answers now wait for other messages' (set a deadline).

        Only the last job of a message decides: before it, the answers wait for that one (no deadline, and so
        no wake-up of the event loop thread per message); then they leave now when no other message is being
        worked on, else with the others, within the deadline the caller sets.
        """
        with self._lock:
            self._pending -= 1
            if self._pending:
                return True
        if self._open.add(-1) == 0:
            self._outbox.flush()
            return True
        return False


class BridgeCore:
    """Dispatch of page messages to exposed functions; events and calls to the page."""

    #: Item types handled by :meth:`handle_custom` (the Player adds its own).
    custom_types: frozenset[str] = frozenset()

    def __init__(
        self,
        send: Send,
        *,
        allow_execute: bool = False,
        namespace: dict[str, Any] | None = None,
        name: str = "ipybridge",
    ) -> None:
        self.outbox = Outbox(send)
        self.allow_execute = bool(allow_execute)
        self._namespace = namespace
        self.functions: dict[str, Callable[..., Any]] = {}
        self._kinds: dict[str, tuple[Callable[..., Any], bool]] = {}  # name -> (its function, is it async)
        self.views: set[str] = set()
        self._lock = threading.RLock()
        self._before_view: list[tuple[dict[str, Any], list[memoryview]]] = []
        self._js_calls: dict[int, _JSCall] = {}
        self._js_ids = itertools.count(1)
        self._running: dict[tuple[str, int], Any] = {}
        self._worker = _runtime.SerialWorker(f"{name}-worker")
        self._receiving = threading.local()  # .envelope: the message receive() dispatches on this thread
        self._open_envelopes = _OpenCount()  # page messages whose sync work is not done yet
        self.closed = False
        self._requests_received = 0
        self._messages_received = 0
        #: Split page messages being joined (``part`` items).
        self.parts = PartAssembler()
        #: The most one page message may carry (bytes); the widget points this at its ``max_message_bytes``.
        self.message_limit: Callable[[], int] = lambda: DEFAULT_MAX_MESSAGE_BYTES
        #: True: page messages arrive on the main thread (no subshells); None: not seen yet.
        self.delivered_on_main: bool | None = None
        self._delivery_seen = threading.Event()
        #: The thread the host last delivered a page message on.
        self._delivery_thread: threading.Thread | None = None
        #: The direct transport's routes for this widget (``_direct.DirectRoutes``), None when off.
        self.direct: Any = None
        _runtime.on_interrupt(self)

    # ----------------------------------------------------------------- expose
    def expose(self, fn: Callable[..., Any], name: str | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"expose() needs a callable, not {type(fn).__name__}")
        name = name if name is not None else getattr(fn, "__name__", None)
        if not isinstance(name, str) or not name or name == "<lambda>":
            raise ValueError("give the function a name: expose(fn, name='...')")
        self.functions[name] = fn
        self._kinds.pop(name, None)  # what was known of the function it replaces (and that function) goes

    def expose_many(self, functions: Mapping[str, Callable[..., Any]] | Iterable[Callable[..., Any]]) -> None:
        if isinstance(functions, Mapping):
            for name, fn in functions.items():
                self.expose(fn, name)
        else:
            for fn in functions:
                self.expose(fn)

    @property
    def namespace(self) -> dict[str, Any]:
        if self._namespace is None:
            try:
                from IPython import get_ipython

                shell = get_ipython()
            except ImportError:
                shell = None
            self._namespace = shell.user_ns if shell is not None else {}
        return self._namespace

    # --------------------------------------------------------------- receive
    def receive(self, content: Any, buffers: Sequence[Any], channel: str = "comm", runner: Any = None) -> None:
        """Handle one message from the page (any thread); ``channel`` is ``"comm"`` or ``"direct"``.

        ``runner`` (a direct connection, on its reading thread) may run the message's sync job itself when the
        message carries just one and the worker is idle (``run_inline``, see SerialWorker.run_here): a tiny
        call then costs no wake-up of the worker thread. Several jobs go to the worker together, as always.
        """
        direct = self.direct
        if channel == "comm":
            self.delivered_on_main = threading.current_thread() is threading.main_thread()
            self._delivery_thread = threading.current_thread()
            self._delivery_seen.set()
            if direct is not None:
                direct.heard_on_comm(content)
        if _is_part(content):
            whole, refusals = self.parts.add(content["msgs"][0], buffers, self.message_limit(), channel)
            self._refuse(refusals)
            if whole is None:
                return
            content, buffers = whole
        elif buffers and (size := sum(memoryview(b).nbytes for b in buffers)) > (limit := self.message_limit()):
            # Only a page that ignores the limit it was told sends this (ours splits and checks first).
            msgs = content.get("msgs") if isinstance(content, dict) else None
            reason = (
                f"the message carries {megabytes(size)} of buffers, over the {megabytes(limit)} this widget "
                "accepts (max_message_bytes in Python); nothing of it was run"
            )
            refusals = [Refusal(view, (ident,), "MessageTooLargeError", reason) for view, ident in request_ids(msgs)]
            self._refuse(refusals or [Refusal(None, (), "MessageTooLargeError", reason)])
            return
        try:
            items = parse_envelope(content, buffers, self.custom_types)
        except ProtocolError as exc:
            self.post({"type": "protocol_error", "view": None, "error": simple_error("ProtocolError", str(exc))})
            return
        except RecursionError:
            self.post(
                {
                    "type": "protocol_error",
                    "view": None,
                    "error": simple_error("ProtocolError", "message nested too deeply"),
                }
            )
            return
        if direct is not None:
            items = direct.admit(items, channel, _is_request)
        if runner is not None and len(items) == 1 and type(items[0]) is Call and self._call_here(items[0], runner):
            return
        requests = sum(map(_is_request, items))
        with self._lock:
            self._messages_received += 1
            self._requests_received += requests
        envelope = _Envelope(self.outbox, self._open_envelopes)
        self._receiving.envelope = envelope
        try:
            for item in items:
                try:
                    self._handle(item)
                except Exception as exc:  # noqa: PERF203 - one bad item must not break the others or the kernel
                    log.exception("ipybridge failed to handle %r", item)
                    self._reply_error_to(getattr(item, "view", None), getattr(item, "id", None), exc)
        finally:
            self._receiving.envelope = None
            # The message's sync jobs go to the worker together, once all its items are read: the worker
            # wakes once per message and does not contend with this thread for the GIL while it reads.
            jobs, envelope.jobs = envelope.jobs, []  # each job refers to its envelope: no cycle left behind
            if runner is not None and len(jobs) == 1:
                # This message's hold goes first (its one job is pending: nothing leaves yet), so the job's own
                # done() is the last: run here, it sends its answer before the lending thread's bookkeeping.
                envelope.done()
                if not runner.run_inline(self._worker, jobs[0]):
                    self._worker.submit(jobs[0])
            else:
                for job in jobs:
                    self._worker.submit(job)
                if not envelope.done():  # its jobs all ran already, and other messages are still being worked on
                    self.outbox.deadline(DEFERRED_FLUSH_S)

    def _call_here(self, item: Call, runner: Any) -> bool:
        """A message that is one call of an exposed ``def``, read by a direct connection's thread: run it there.

        The short way of :meth:`receive` for the commonest message: when the widget's worker is idle the
        connection's reading thread runs the call itself (``runner.run_inline``) and sends its answer as soon
        as it returns; else the call goes to the worker as it would in a message of its own. False (nothing
        done) for anything else (a name not exposed, an ``async def``): :meth:`receive` handles it.
        """
        fn = self.functions.get(item.name)
        if fn is None:
            return False
        try:
            if self._is_async(item.name, fn):
                return False
        except Exception:  # noqa: BLE001 - a callable that cannot be inspected: the long way answers the error
            return False
        with self._lock:
            self._messages_received += 1
            self._requests_received += 1
        job = _SyncCall(self, item.view, item.id, fn, item.args, item.kwargs or _NO_KWARGS, f"{item.name}()", None)
        self._running[(item.view, item.id)] = job
        if runner.run_inline(self._worker, job):
            return True
        # The worker is busy: the call waits for it, its answer for the other messages' (see _Envelope). The
        # envelope's one count stands for the job: its done() is the last, whenever the worker runs it.
        job.envelope = _Envelope(self.outbox, self._open_envelopes)
        self._worker.submit(job)
        return True

    def _refuse(self, refusals: list[Refusal]) -> None:
        with self._lock:  # refused requests were received too: debug_stats stays balanced
            self._requests_received += sum(len(refusal.ids) for refusal in refusals)
        for refusal in refusals:
            error = simple_error(refusal.ename, refusal.evalue)
            if not refusal.ids:
                self.post({"type": "protocol_error", "view": refusal.view, "error": error})
            for ident in refusal.ids:
                self.post({"type": "error", "view": refusal.view, "id": ident, "error": error})

    def _handle(self, item: Item) -> None:
        if isinstance(item, Call):
            self._handle_call(item)
        elif isinstance(item, Reply):
            self._handle_reply(item)
        elif isinstance(item, Hello):
            self._handle_hello(item.view)
        elif isinstance(item, Bye):
            self._handle_bye(item.view)
        elif isinstance(item, Cancel):
            handle = self._running.get((item.view, item.id))
            if handle is not None:
                self._cancel(handle)
        elif isinstance(item, (Execute, SetVar, GetVar)):
            what = {Execute: "execute", SetVar: "set", GetVar: "get"}[type(item)]
            if not self.allow_execute:
                self._reply_error_to(
                    item.view,
                    item.id,
                    PermissionError(
                        f"bridge.{what}() is disabled: create the Bridge with allow_execute=True "
                        "to let this page run code and read or write variables"
                    ),
                )
            else:
                self._submit_sync(item.view, item.id, self._namespace_op, (item,), what=f"bridge.{what}()")
        elif isinstance(item, Custom):
            self.handle_custom(item)
        elif isinstance(item, BadItem):
            if item.view is not None and item.id is not None:
                self.post(
                    {"type": "error", "view": item.view, "id": item.id, "error": simple_error(item.ename, item.evalue)}
                )
            else:
                self.post({"type": "protocol_error", "view": item.view, "error": simple_error(item.ename, item.evalue)})

    def handle_custom(self, item: Custom) -> None:
        """Subclasses handle their own item types here."""

    def _handle_hello(self, view: str) -> None:
        with self._lock:
            self.views.add(view)
            waiting, self._before_view = self._before_view, []
            for call in self._js_calls.values():
                if not call.targets:
                    call.targets.add(view)
        self.post(self._welcome(view))
        for queued_item, queued_buffers in waiting:
            self.outbox.post(queued_item, queued_buffers)
        self.on_view_ready(view)

    def debug_stats(self) -> dict[str, int]:
        """Counters for soak tests and debugging (not part of the public API).

        ``messages_received`` counts page messages (envelopes that parsed),
        ``requests_received`` page requests (call/execute/set/get, and
        malformed items that carry a view and an id), ``answers_posted`` the
        results and errors posted for them: equal when idle, unless the page
        cancelled a call (timeout/abort drops its answer). ``running`` and
        ``js_calls`` are per-call bookkeeping that must return to 0 when idle.
        """
        with self._lock:
            return {
                "messages_received": self._messages_received,
                "requests_received": self._requests_received,
                "answers_posted": self.outbox.answers_posted,
                "running": len(self._running),
                "js_calls": len(self._js_calls),
                "queued_before_view": len(self._before_view),
                "views": len(self.views),
            }

    def _welcome(self, view: str) -> dict[str, Any]:
        welcome = {"type": "welcome", "view": view, "limits": {"message_bytes": self.message_limit()}}
        if self.direct is not None:
            welcome["direct"] = self.direct.offer()
        return welcome

    def announce_limits(self) -> None:
        """Tell every view the current limits (they also come with each view's welcome)."""
        for view in list(self.views):
            self.post(self._welcome(view))

    def on_view_ready(self, view: str) -> None:
        """Subclasses may send a view its initial state here."""

    def _handle_bye(self, view: str) -> None:
        with self._lock:
            self.views.discard(view)
            orphans = []
            for call in self._js_calls.values():
                call.targets.discard(view)
                if not call.targets and not call.future.done():
                    orphans.append(call)
            for call in orphans:  # wait for the next view, as before the first one
                self._before_view.append((call.item, call.buffers))
        for key in [k for k in self._running if k[0] == view]:
            self._cancel(self._running.get(key))
        self.parts.drop_view(view)
        if self.direct is not None:
            self.direct.forget(view)

    # ---------------------------------------------------------------- calls
    def _handle_call(self, item: Call) -> None:
        fn = self.functions.get(item.name)
        if fn is None:
            self._reply_error_to(item.view, item.id, NameError(self._not_exposed(item.name)))
            return
        if self._is_async(item.name, fn):
            self._spawn_async(item, fn)
        else:
            self._submit_sync(item.view, item.id, fn, item.args, item.kwargs, f"{item.name}()")

    def _is_async(self, name: str, fn: Callable[..., Any]) -> bool:
        """Whether ``fn``, exposed as ``name``, is async (known per name, as long as the name keeps its function)."""
        kind = self._kinds.get(name)
        if kind is None or kind[0] is not fn:  # first call of this name, or another function under it now
            kind = self._kinds[name] = (fn, _is_async(fn))
        return kind[1]

    def _not_exposed(self, name: str) -> str:
        message = f"no Python function named {shown_name(name)} is exposed by this Bridge"
        close = [known for known in self.functions if known.strip() == name.strip() and known != name]
        if close:
            message += f" (did you mean {close[0]!r}?)"
        elif not self.functions:
            message += " (it exposes none: use @bridge.expose)"
        return message

    def _output_sink(self, view: str, ident: int) -> Callable[[str, str], None]:
        return _CallOutput(self, view, ident).stream

    def _submit_sync(
        self,
        view: str,
        ident: int,
        fn: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        what: str = "the request",
    ) -> None:
        """Queue ``fn(*args, **kwargs)`` for the worker; its value or exception answers request ``ident``."""
        envelope: _Envelope | None = getattr(self._receiving, "envelope", None)
        job = _SyncCall(self, view, ident, fn, args, kwargs or _NO_KWARGS, what, envelope)
        self._running[(view, ident)] = job
        if envelope is not None:
            envelope.add()
            envelope.jobs.append(job)  # submitted when receive() has read the whole message
        else:
            self._worker.submit(job)

    def _cancel(self, handle: Any) -> None:
        """The page gave up on a call: drop its answer; free the worker if it is stuck in it."""
        _cancel_handle(handle)
        if isinstance(handle, _SyncCall) and self._worker.running() is handle:
            self._worker.release_later(handle)

    def interrupt(self) -> None:
        """The kernel was interrupted: every running or queued call fails with KeyboardInterrupt.

        The page hears it at once; the functions themselves get a KeyboardInterrupt
        where Python code runs (a worker stuck in C is left behind, see SerialWorker).
        """
        if self.closed:
            return
        for (view, ident), handle in list(self._running.items()):
            if self._running.pop((view, ident), None) is None:
                continue  # finished meanwhile: it answered on its own
            _cancel_handle(handle)
            self._reply_error_to(view, ident, KeyboardInterrupt("the kernel was interrupted"))
        self._worker.interrupt()
        self.outbox.flush()

    def _spawn_async(self, item: Call, fn: Callable[..., Any]) -> None:
        key = (item.view, item.id)
        finished = False

        async def run() -> None:
            nonlocal finished
            try:
                output = _CallOutput(self, item.view, item.id)
                with capture(output.stream, output.display):
                    value = await fn(*item.args, **item.kwargs)
            except asyncio.CancelledError:
                return  # the page gave up (timeout/abort): a late result is dropped
            except BaseException as exc:  # noqa: BLE001 - any failure becomes the call's error
                self._reply_error_to(item.view, item.id, exc)
            else:
                self._reply_value(item.view, item.id, value, what=f"{item.name}()")
            finally:
                with self._lock:
                    finished = True
                    self._running.pop(key, None)

        # Never wait for the loop here: this thread must stay free to receive the page's
        # replies, which a busy loop may be waiting for.
        future = asyncio.run_coroutine_threadsafe(run(), _runtime.event_loop())
        with self._lock:
            if not finished:
                self._running[key] = future

    def _reply_value(
        self, view: str, ident: int, value: Any, delay: float | None = 0.0, what: str = "the request"
    ) -> None:
        buffers: list[memoryview] = []
        try:
            tree = encode(value, buffers)
        except SerializationError as exc:
            error = TypeError(f"the result of {what} cannot be sent to JavaScript: {exc}")
            self._reply_error_to(view, ident, error, delay)
            return
        except RecursionError:
            error = TypeError(f"the result of {what} is nested too deeply to send to JavaScript")
            self._reply_error_to(view, ident, error, delay)
            return
        self.post({"type": "result", "view": view, "id": ident, "value": tree}, buffers, delay)

    def _reply_error_to(
        self, view: str | None, ident: int | None, exc: BaseException, delay: float | None = 0.0
    ) -> None:
        if view is None or ident is None:
            self.post({"type": "protocol_error", "view": view, "error": error_payload(exc)}, delay=delay)
        else:
            self.post({"type": "error", "view": view, "id": ident, "error": error_payload(exc)}, delay=delay)

    def post(self, item: dict[str, Any], buffers: list[memoryview] | None = None, delay: float | None = 0.0) -> None:
        if not self.closed:
            self.outbox.post(item, buffers, delay)

    # ---------------------------------------------------------- namespace
    def _namespace_op(self, item: Execute | SetVar | GetVar) -> Any:
        ns = self.namespace
        if isinstance(item, SetVar):
            if not item.name.isidentifier() or keyword.iskeyword(item.name):
                raise ValueError(f"bridge.set(): {shown_name(item.name)} is not a valid Python variable name")
            ns[item.name] = item.value
            return None
        if isinstance(item, GetVar):
            try:
                return ns[item.name]
            except KeyError:
                raise NameError(f"bridge.get(): name {shown_name(item.name)} is not defined") from None
        return self._execute(item)

    def _execute(self, item: Execute) -> dict[str, Any]:
        stdout: list[str] = []
        stderr: list[str] = []
        displays: list[dict[str, Any]] = []
        stream_out = self._output_sink(item.view, item.id)

        def on_stream(stream: str, text: str) -> None:
            (stderr if stream == "stderr" else stdout).append(text)
            stream_out(stream, text)

        with capture(on_stream, lambda content: displays.append(content.get("data", {}))):
            value = run_code(item.code, self.namespace)
            result = format_result(value)
        return {"result": result, "stdout": "".join(stdout), "stderr": "".join(stderr), "display": displays}

    # ------------------------------------------------------------- to page
    def emit(self, name: str, payload: Any = None) -> None:
        with _runtime.internal():  # called from user code: no interrupt lands in the bookkeeping
            self._emit(name, payload)

    def _emit(self, name: str, payload: Any) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"emit() needs a non-empty string event name, not {name!r}")
        buffers: list[memoryview] = []
        item = {"type": "event", "name": name, "payload": encode(payload, buffers)}
        self._send_or_queue(item, buffers)

    def _send_or_queue(self, item: dict[str, Any], buffers: list[memoryview]) -> None:
        with self._lock:
            if not self.views:
                self._before_view.append((item, buffers))
                return
        self.post(item, buffers)

    def call_js(self, name: str, args: Sequence[Any], timeout: float | None) -> JSFuture:
        with _runtime.internal():  # called from user code: no interrupt lands in the bookkeeping
            return self._call_js(name, args, timeout)

    def _call_js(self, name: str, args: Sequence[Any], timeout: float | None) -> JSFuture:
        if not isinstance(name, str) or not name:
            raise TypeError(f"call_js() needs a non-empty string handler name, not {name!r}")
        future = JSFuture(self, name)
        if self.closed:
            future.set_exception(BridgeClosedError(f"cannot call JavaScript handler {name!r}: the Bridge is closed"))
            return future
        buffers: list[memoryview] = []
        ident = next(self._js_ids)
        item = {"type": "call", "id": ident, "name": name, "args": encode(list(args), buffers)}
        call = _JSCall(future, name, item, buffers)
        with self._lock:
            self._js_calls[ident] = call
            call.targets.update(self.views)
        future.add_done_callback(lambda _: self._js_calls.pop(ident, None))
        if timeout is not None:
            loop = _runtime.event_loop()
            loop.call_soon_threadsafe(loop.call_later, timeout, self._expire, ident, timeout)
        self._send_or_queue(item, buffers)
        return future

    def pending_js_calls(self, view: str) -> list[_JSCall]:
        """``call_js`` calls sent to ``view`` and not answered yet."""
        with self._lock:
            return [c for c in self._js_calls.values() if view in c.targets and not c.future.done()]

    def _expire(self, ident: int, timeout: float) -> None:
        call = self._js_calls.get(ident)
        if call is not None and _settle(
            call.future, exc=TimeoutError(f"JavaScript handler {call.name!r} did not answer within {timeout} s")
        ):
            with self._lock:
                self._before_view = [(i, b) for i, b in self._before_view if i is not call.item]
            self.post({"type": "cancel", "id": ident})

    def _handle_reply(self, item: Reply) -> None:
        call = self._js_calls.get(item.id)
        if call is None:
            return  # late, duplicate or unknown: the first answer already won
        if item.ok:
            _settle(call.future, value=item.value)
            return
        if item.missing:
            with self._lock:
                call.missing.add(item.view)
                if not call.targets <= call.missing:
                    return  # another view may still have the handler
        _settle(
            call.future,
            exc=JavaScriptError(
                item.error.get("name", "Error"),
                item.error.get("message", ""),
                item.error.get("stack", ""),
                handler=call.name,
            ),
        )

    def check_can_wait(self) -> None:
        """Raise instead of hanging when a cell awaits an answer the host cannot deliver meanwhile.

        marimo hands page messages to widgets on the thread that runs cells, between cells:
        whether a cell blocks or awaits, the answer can only arrive after the cell ends.
        """
        if _in_marimo_cell() and self._delivery_thread in (None, threading.current_thread()):
            raise RuntimeError(
                "cannot wait in a marimo cell for the page's answer: marimo delivers widget messages "
                "to the kernel only between cells, so it would arrive after this cell ends. Call "
                "call_js from an exposed function (async def ...: await bridge.call_js(...)) or a thread."
            )

    def check_can_block(self) -> bool:
        """Raise instead of deadlocking when a cell blocks on an answer from the page.

        Answers can arrive while a cell blocks only where the host delivers them on another
        thread: ipykernel >= 7 with kernel subshells. ipykernel without subshells and marimo
        deliver them on the thread the cell occupies. Returns True when only the direct path
        can deliver the answer meanwhile.
        """
        self.check_can_wait()
        if threading.current_thread() is not threading.main_thread() or _kernel() is None:
            return False  # off the kernel's main thread (or no kernel): the answer can arrive
        if self.direct is not None and self.direct.transport() == "direct":
            # Answers arrive on the direct transport's thread, not behind this cell (if that connection
            # drops meanwhile, the wait fails at once: see DirectRoutes.detach).
            return self.delivered_on_main is not False
        if self.delivered_on_main is None and _kernel_has_subshells():
            self._delivery_seen.wait(2.0)
        if self.delivered_on_main is not False:
            raise RuntimeError(
                "cannot block this cell waiting for the page: this frontend delivers widget "
                "messages on the kernel's main thread, which the waiting cell occupies "
                "(kernel subshells need JupyterLab >= 4.4 or Notebook >= 7.4 with ipykernel >= 7). "
                "Use `await bridge.call_js(...)` in the cell instead of .result()."
            )
        return False

    # ---------------------------------------------------------------- close
    def kernel_closing(self, restart: bool) -> None:
        """The kernel received a ``shutdown_request`` (control thread): tell every view at once.

        The frontend learns of a shutdown when the Jupyter server has shut the kernel down, which can take
        seconds; views told now close (reject pending calls, the Player shows that the kernel is gone) within
        a round trip. Never blocks: the item leaves on ipybridge's event loop thread.
        """
        if not self.closed and self.views:
            self.post({"type": "closing", "view": None, "restart": restart})

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for call in list(self._js_calls.values()):
            _settle(
                call.future,
                exc=BridgeClosedError(f"JavaScript handler {call.name!r} cannot answer: the Bridge was closed"),
            )
        for handle in list(self._running.values()):
            _cancel_handle(handle)
        self.parts.clear()
        self._worker.stop()
        if self.direct is not None:
            self.direct.close()


def _is_part(content: Any) -> bool:
    """Whether a page message is one ``part`` of a split message (a part always travels alone)."""
    if not isinstance(content, dict) or type(content.get("ipb")) is not int or content["ipb"] != PROTOCOL_VERSION:
        return False
    msgs = content.get("msgs")
    return isinstance(msgs, list) and len(msgs) == 1 and isinstance(msgs[0], dict) and msgs[0].get("type") == "part"


def _is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` gives a coroutine (an ``async def``, or an object whose ``__call__`` is one)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def _settle(future: concurrent.futures.Future[Any], value: Any = None, exc: BaseException | None = None) -> bool:
    try:
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)
        return True
    except concurrent.futures.InvalidStateError:
        return False


def _cancel_handle(handle: Any) -> None:
    """Cancel a running call: an async call's future (cancels its task), a task, or a queued sync call."""
    if isinstance(handle, asyncio.Task):
        handle.get_loop().call_soon_threadsafe(handle.cancel)
    elif handle is not None:
        handle.cancel()


def _kernel() -> Any:
    """The running ipykernel, or None outside a kernel."""
    try:
        from ipykernel.kernelbase import Kernel
    except ImportError:
        return None
    return Kernel.instance() if Kernel.initialized() else None


def _in_marimo_cell() -> bool:
    """Whether this thread runs marimo cells (marimo's kernel thread, or a thread it lent its context)."""
    marimo = sys.modules.get("marimo")
    if marimo is None:
        return False
    try:
        return bool(marimo.running_in_notebook())
    except Exception:  # noqa: BLE001 - another marimo version: assume a plain thread
        return False


def _kernel_has_subshells() -> bool:
    return bool(getattr(_kernel(), "_supports_kernel_subshells", False))


_EXECUTE_FILENAME = "<bridge-execute>"


def run_code(code: str, namespace: dict[str, Any]) -> Any:
    """Run ``code`` like a notebook cell; return the value of its last expression."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is not None:
        code = shell.transform_cell(code)
    linecache.cache[_EXECUTE_FILENAME] = (len(code), None, code.splitlines(True), _EXECUTE_FILENAME)
    tree = ast.parse(code, _EXECUTE_FILENAME, "exec")
    last: ast.Expression | None = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body[-1].value)
        del tree.body[-1]
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    body = compile(tree, _EXECUTE_FILENAME, "exec", flags=flags)
    _run(eval(body, namespace))  # noqa: S307 - allow_execute=True is the author's opt-in
    if last is None:
        return None
    return _run(eval(compile(last, _EXECUTE_FILENAME, "eval", flags=flags), namespace))  # noqa: S307


def _run(value: Any) -> Any:
    if inspect.iscoroutine(value):  # top-level await: run it on ipybridge's loop
        return asyncio.run_coroutine_threadsafe(value, _runtime.event_loop()).result()
    return value


def format_result(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is not None:
        data, _metadata = shell.display_formatter.format(value)
        return dict(data)
    return {"text/plain": repr(value)}
