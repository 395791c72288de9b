"""Per-call capture of stdout, stderr and display() — by context, never by swap.

A capture is a :mod:`contextvars` variable set in the call's own context (the
worker job for a ``def``, the task for an ``async def``); a cell running at the
same time has its own context and keeps its own output. Nothing replaces
``sys.stdout``/``sys.stderr`` or the display publisher.

* **Streams.** In an IPython kernel, ``sys.stdout``/``sys.stderr`` are
  ipykernel ``OutStream`` objects. Once per stream, ipybridge gives the stream
  object a subclass of its class whose ``write``, inside a capture, sends the
  text straight to the capture's sink, in write order; anywhere else the
  original ``write`` runs unchanged (see :func:`_route_writes`). Captured text never enters the
  stream's buffers. (It used to be filed there under a parent header of its own
  and taken back by an ``OutStream`` hook; but ``OutStream._flush`` in
  ipykernel 6-7 stops at the first message a hook consumes and drops every
  other buffer of that flush, so a cell printing while a call printed lost
  about one line in three.)
* **display().** The display publisher sends one message per call, so a
  parent header of the capture's own and a hook that takes the messages
  addressed to it lose nothing.
* **The main shell's parent.** With kernel subshells, every widget message
  the kernel handles on a subshell thread calls ``shell.set_parent``, which
  also replaces the *process-wide* fallback parent of the streams and
  publishers: the one threads a cell started write under. Their lines then
  went to the widget message instead of their cell. :func:`protect_cell_parent`
  makes ``set_parent`` on a subshell thread set the calling context's parent
  only.

Outside ipykernel (plain Python, tests), ``sys.stdout``/``sys.stderr`` get a
routing stream, installed once, that writes to the current capture when there
is one and to the original stream otherwise.
"""

from __future__ import annotations

import contextvars
import io
import itertools
import sys
import threading
import types
import uuid
from collections.abc import Callable
from typing import Any

StreamSink = Callable[[str, str], None]  # (stream name, text)
DisplaySink = Callable[[dict[str, Any]], None]  # display_data content

_PREFIX = "ipybridge-capture:"
_sinks: dict[str, tuple[StreamSink, DisplaySink | None]] = {}
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("ipybridge_capture", default=None)
_setup_lock = threading.Lock()
_display_hooked = threading.local()
_WRAPPED = "_ipybridge_routes_captures"


def _sink_for(msg: dict[str, Any]) -> tuple[StreamSink, DisplaySink | None] | None:
    parent = msg.get("parent_header") or {}
    msg_id = parent.get("msg_id", "")
    if isinstance(msg_id, str) and msg_id.startswith(_PREFIX):
        return _sinks.get(msg_id, (_drop, None))
    return None


def _drop(_stream: str, _text: str) -> None:
    """A display of a capture that already ended: its call answered, nobody waits for it."""


def _display_hook(msg: dict[str, Any]) -> dict[str, Any] | None:
    sinks = _sink_for(msg)
    if sinks is None:
        return msg
    if sinks[1] is not None and msg.get("msg_type") in ("display_data", "update_display_data"):
        sinks[1](msg.get("content", {}))
    return None


def _is_outstream(stream: Any) -> bool:
    return hasattr(stream, "set_thread_parent") and hasattr(stream, "pub_thread") and hasattr(stream, "session")


def _route_writes(stream: Any, name: str) -> None:
    """Make one ``OutStream`` send text written inside a capture to the capture's sink.

    The stream's class becomes a subclass whose ``write`` is a data descriptor:
    reading ``stream.write`` gives a router that sends text written inside a
    capture to its sink and anything else to the ``write`` it wraps. That
    ``write`` is the class's own, or whatever someone assigned to
    ``stream.write``: IPython 9 does so around every cell (``_tee``, its output
    history) and puts back at the end what it read at the start. A plain
    instance attribute of ours would be lost to that dance (a call then prints
    into the cell's parent); the descriptor keeps routing in front of it.
    ``isinstance`` checks and every other method are unchanged.
    """
    cls = type(stream)
    if getattr(cls, _WRAPPED, False):
        return
    assigned = vars(stream).pop("write", None)  # a cell running now has teed it
    stream.__class__ = _routed_class(cls, name)
    if assigned is not None:
        stream.write = assigned


class _Router:
    """``stream.write`` of a routed stream: captured text to its sink, the rest to ``inner``."""

    __slots__ = ("assigned", "inner", "name", "stream")

    def __init__(self, stream: Any, inner: Callable[[str], Any], name: str, *, assigned: bool) -> None:
        self.stream = stream
        self.inner = inner
        self.name = name
        self.assigned = assigned  # inner is a write someone assigned, not the class's own

    def __call__(self, text: str) -> Any:
        capture_id = _current.get()
        sinks = _sinks.get(capture_id) if capture_id is not None else None
        if sinks is None:
            return self.inner(text)
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        sinks[0](self.name, text)
        return len(text)


class _RoutedWrite:
    """The ``write`` data descriptor of a routed stream class (see :func:`_route_writes`)."""

    def __init__(self, base_write: Callable[..., Any], name: str) -> None:
        self.base_write = base_write
        self.name = name

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        attributes = vars(obj)
        assigned = attributes.get(_ASSIGNED_WRITE)
        router: _Router | None = attributes.get(_ROUTER)  # one per inner write: print() looks it up per call
        if router is None or (router.inner is not assigned if assigned is not None else router.assigned):
            inner = assigned if assigned is not None else types.MethodType(self.base_write, obj)
            router = _Router(obj, inner, self.name, assigned=assigned is not None)
            attributes[_ROUTER] = router
        return router

    def __set__(self, obj: Any, value: Any) -> None:
        while isinstance(value, _Router) and value.stream is obj:
            value = value.inner  # putting back what was read: unwrap, never stack routers
        if isinstance(value, types.MethodType) and value.__self__ is obj and value.__func__ is self.base_write:
            vars(obj).pop(_ASSIGNED_WRITE, None)
        else:
            vars(obj)[_ASSIGNED_WRITE] = value

    def __delete__(self, obj: Any) -> None:
        vars(obj).pop(_ASSIGNED_WRITE, None)


_ASSIGNED_WRITE = "_ipybridge_assigned_write"
_ROUTER = "_ipybridge_router"
_routed_classes: dict[tuple[type, str], type] = {}


def _routed_class(base: type, name: str) -> type:
    key = (base, name)
    if key not in _routed_classes:
        write = _RoutedWrite(base.write, name)  # type: ignore[attr-defined]
        _routed_classes[key] = type(
            base.__name__, (base,), {"write": write, _WRAPPED: True, "__module__": base.__module__}
        )
    return _routed_classes[key]


class _RoutingStream(io.TextIOBase):
    """Fallback outside ipykernel: route writes made inside a capture."""

    def __init__(self, name: str, target: Any) -> None:
        self._name = name
        self._target = target

    def write(self, text: str) -> int:
        capture = _current.get()
        sinks = _sinks.get(capture) if capture else None
        if sinks is None:
            return int(self._target.write(text) or 0)
        sinks[0](self._name, text)
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def _prepare() -> Any:
    """Route this process's standard streams; return the display publisher (or None).

    Cheap when nothing changed since the last call (the same stream objects and
    publisher): it runs once per call, so the set-up is redone only when someone
    replaced ``sys.stdout``/``sys.stderr`` or the shell's publisher meanwhile.
    """
    global _prepared
    shell = _shell()
    raw_pub = getattr(shell, "display_pub", None) if shell is not None else None
    known = _prepared
    if known is None or known[0] is not sys.stdout or known[1] is not sys.stderr or known[2] is not raw_pub:
        with _setup_lock:
            for name in ("stdout", "stderr"):
                stream = getattr(sys, name)
                if _is_outstream(stream):
                    _route_writes(stream, name)
                elif not isinstance(stream, _RoutingStream) and stream is not None:
                    setattr(sys, name, _RoutingStream(name, stream))
            pub = raw_pub if raw_pub is not None and hasattr(raw_pub, "set_thread_parent") else None
            known = _prepared = (sys.stdout, sys.stderr, raw_pub, pub)
    pub = known[3]
    if pub is not None and not getattr(_display_hooked, pub.__class__.__name__, False):
        pub.register_hook(_display_hook)  # thread-local: once per thread that captures
        setattr(_display_hooked, pub.__class__.__name__, True)
    return pub


#: (sys.stdout, sys.stderr, the shell's display_pub, the publisher captures use) as of the last _prepare.
_prepared: tuple[Any, Any, Any, Any] | None = None
_shell_class: Any = None


def _shell() -> Any:
    """The running IPython shell, or None: what ``get_ipython()`` returns, read without its per-call import.

    It runs once per call (a profile of sequential calls put ``get_ipython`` at ~6% of the worker's time):
    traitlets keeps a singleton's instance on every class of its MRO, so InteractiveShell's is the kernel's.
    """
    global _shell_class
    if _shell_class is None:
        try:
            from IPython.core.interactiveshell import InteractiveShell
        except ImportError:
            return None
        _shell_class = InteractiveShell
    return getattr(_shell_class, "_instance", None)


def protect_cell_parent() -> None:
    """Keep the parent header that threads started by a cell write under (see the module doc).

    ``set_parent`` of the standard streams, the display publisher and the display
    hook sets the calling context's parent *and* a process-wide fallback. Called
    on a kernel subshell thread (a widget message), the fallback is left alone:
    it belongs to the main shell, whose cell may have threads printing. Idempotent.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    with _setup_lock:
        targets = [sys.stdout, sys.stderr, getattr(shell, "display_pub", None), getattr(shell, "displayhook", None)]
        for target in targets:
            if target is None or not hasattr(target, "set_thread_parent") or not hasattr(target, "set_parent"):
                continue
            if getattr(target.set_parent, _WRAPPED, False):
                continue
            _keep_main_fallback(target)


def _keep_main_fallback(target: Any) -> None:
    original = target.set_parent
    try:
        from ipykernel.subshell import SubshellThread
    except ImportError:  # an ipykernel without subshells: nothing to protect
        return

    def set_parent(parent: Any) -> None:
        if isinstance(threading.current_thread(), SubshellThread):
            target.set_thread_parent(parent)
        else:
            original(parent)

    setattr(set_parent, _WRAPPED, True)
    target.set_parent = set_parent


class capture:  # noqa: N801 - used as a function: ``with capture(on_stream, on_display):``
    """Send what the code in this context prints/displays to the given sinks, in order.

    A class rather than a generator context manager: it is entered once per call.
    """

    __slots__ = ("_id", "_on_display", "_on_stream", "_pub", "_pub_token", "_token")

    def __init__(self, on_stream: StreamSink, on_display: DisplaySink | None = None) -> None:
        self._on_stream = on_stream
        self._on_display = on_display

    def __enter__(self) -> None:
        pub = self._pub = _prepare()
        capture_id = self._id = f"{_PREFIX}{_RUN}-{next(_capture_ids)}"
        _sinks[capture_id] = (self._on_stream, self._on_display)
        self._token = _current.set(capture_id)
        if pub is not None:
            header = {"msg_id": capture_id, "msg_type": "ipybridge_capture", "session": "", "username": "",
                      "version": "5.3"}  # fmt: skip
            self._pub_token = pub.set_thread_parent({"header": header})

    def __exit__(self, *exc_info: object) -> None:
        if self._pub is not None:
            self._pub.reset_thread_parent(self._pub_token)
        _current.reset(self._token)
        _sinks.pop(self._id, None)


#: Capture ids: unique in this process (a parent header's msg_id, the key of its sinks).
_RUN = uuid.uuid4().hex[:12]
_capture_ids = itertools.count(1)
