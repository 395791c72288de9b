"""Per-call capture of stdout, stderr and display() — by context, never by swap.

In an IPython kernel, ``sys.stdout``/``sys.stderr`` (ipykernel ``OutStream``)
and the display publisher address every message to a *parent header* held in
a :mod:`contextvars` variable (``set_thread_parent``). A capture sets a parent
header of its own in the call's context and registers, once per process, a
hook that takes the messages addressed to it. A cell running at the same time
keeps its own parent, so its output is untouched; nothing is swapped.

Outside ipykernel (plain Python, tests), ``sys.stdout``/``sys.stderr`` get a
routing stream, installed once, that writes to the current capture when there
is one and to the original stream otherwise.
"""

from __future__ import annotations

import contextvars
import io
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

StreamSink = Callable[[str, str], None]  # (stream name, text)
DisplaySink = Callable[[dict[str, Any]], None]  # display_data content

_PREFIX = "ipybridge-capture:"
_sinks: dict[str, tuple[StreamSink, DisplaySink | None]] = {}
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("ipybridge_capture", default=None)
_setup_lock = threading.Lock()
_hooked_streams: set[int] = set()
_display_hooked = threading.local()


def _sink_for(msg: dict[str, Any]) -> tuple[StreamSink, DisplaySink | None] | None:
    parent = msg.get("parent_header") or {}
    msg_id = parent.get("msg_id", "")
    if isinstance(msg_id, str) and msg_id.startswith(_PREFIX):
        return _sinks.get(msg_id, (_drop, None))
    return None


def _drop(_stream: str, _text: str) -> None:
    """Output of a capture that already ended: it belongs to no cell, drop it."""


def _stream_hook(msg: dict[str, Any]) -> dict[str, Any] | None:
    sinks = _sink_for(msg)
    if sinks is None:
        return msg
    content = msg.get("content", {})
    sinks[0](content.get("name", "stdout"), content.get("text", ""))
    return None


def _display_hook(msg: dict[str, Any]) -> dict[str, Any] | None:
    sinks = _sink_for(msg)
    if sinks is None:
        return msg
    if sinks[1] is not None and msg.get("msg_type") in ("display_data", "update_display_data"):
        sinks[1](msg.get("content", {}))
    return None


def _is_outstream(stream: Any) -> bool:
    return hasattr(stream, "set_thread_parent") and hasattr(stream, "register_hook") and hasattr(stream, "pub_thread")


def _display_pub() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    pub = getattr(shell, "display_pub", None)
    return pub if pub is not None and hasattr(pub, "set_thread_parent") else None


def _hook_outstream(stream: Any) -> None:
    """Register the stream hook on the stream's IO thread (hooks are thread-local there)."""
    if id(stream) in _hooked_streams:
        return
    done = threading.Event()

    def register() -> None:
        stream.register_hook(_stream_hook)
        done.set()

    stream.pub_thread.schedule(register)
    done.wait(5)
    _hooked_streams.add(id(stream))


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


def _prepare() -> tuple[list[Any], Any]:
    """Return (ipykernel streams to address, display publisher or None)."""
    with _setup_lock:
        streams = []
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if _is_outstream(stream):
                _hook_outstream(stream)
                streams.append(stream)
            elif not isinstance(stream, _RoutingStream) and stream is not None:
                setattr(sys, name, _RoutingStream(name, stream))
        pub = _display_pub()
    if pub is not None and not getattr(_display_hooked, pub.__class__.__name__, False):
        pub.register_hook(_display_hook)  # thread-local: once per thread that captures
        setattr(_display_hooked, pub.__class__.__name__, True)
    return streams, pub


class _Header(dict):  # type: ignore[type-arg]
    """A capture's parent header that notices being used by a write.

    ``OutStream.write`` files text under ``frozenset(parent.items())``; a header
    whose ``items`` was never called saw no write, so its streams need no flush
    (a flush is a round trip to the IO thread: two thirds of a tiny call's cost).
    """

    written = False

    def items(self) -> Any:
        self.written = True
        return super().items()


_write_detection: bool | None = None  # does this ipykernel reveal writes? (checked once)


def _writes_detectable(stream: Any) -> bool:
    """Check once, on the real stream, that a write under a header calls its ``items``."""
    global _write_detection
    if _write_detection is None:
        probe = _Header(msg_id=_PREFIX + "probe", msg_type="ipybridge_capture")
        token = stream.set_thread_parent({"header": probe})
        try:
            probe.written = False  # set_thread_parent itself may copy the header
            stream.write("")
        finally:
            stream.reset_thread_parent(token)
        _write_detection = probe.written
    return _write_detection


@contextmanager
def capture(on_stream: StreamSink, on_display: DisplaySink | None = None) -> Iterator[None]:
    """Send what the code in this context prints/displays to the given sinks."""
    streams, pub = _prepare()
    capture_id = _PREFIX + uuid.uuid4().hex
    _sinks[capture_id] = (on_stream, on_display)
    header = _Header(msg_id=capture_id, msg_type="ipybridge_capture", session="", username="", version="5.3")
    detect = bool(streams) and _writes_detectable(streams[0])
    token = _current.set(capture_id)
    tokens = [(s, s.set_thread_parent({"header": header})) for s in streams]
    pub_token = pub.set_thread_parent({"header": header}) if pub is not None else None
    header.written = False
    try:
        yield
    finally:
        try:
            if header.written or not detect:
                for stream, _ in tokens:
                    stream.flush()  # deliver what was printed before the call's result
        finally:
            for stream, stream_token in tokens:
                stream.reset_thread_parent(stream_token)
            if pub is not None:
                pub.reset_thread_parent(pub_token)
            _current.reset(token)
            _sinks.pop(capture_id, None)
