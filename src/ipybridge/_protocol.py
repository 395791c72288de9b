"""The ipybridge wire protocol: message shapes and validation (pure, no I/O).

The full description, with examples, is ``docs/protocol.md``. In short, every
comm custom message is one *envelope*::

    {"ipb": 1, "msgs": [item, ...]}        + binary buffers shared by the items

Items from the page carry the id of the view that sent them (``view``).
Page -> kernel item types: ``hello``, ``bye``, ``call``, ``execute``, ``set``,
``get``, ``cancel``, ``reply`` (answer to a ``call`` from Python) and, for the
Player, ``frame`` / ``stats``. Kernel -> page: ``welcome``, ``result``,
``error``, ``output``, ``event``, ``call``, ``cancel`` and ``frame``.

Validation never raises past :func:`parse_envelope`: each bad item becomes a
:class:`BadItem` carrying what could be recovered (its view and id) so the
caller can answer it with a structured error.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._serialize import DecodeError, OwnedBuffer, decode

PROTOCOL_VERSION = 1
MAX_ID = 2**53 - 1
MAX_NAME_LENGTH = 256
MAX_ITEMS_PER_ENVELOPE = 10_000
MAX_VIEW_LENGTH = 256
#: Default of ``max_message_bytes``: the most one page message may carry, JSON and buffers together.
DEFAULT_MAX_MESSAGE_BYTES = 64 << 20
#: The page never sends one websocket message above this: a stock jupyter_server closes the whole
#: kernel websocket on a message above 10 MiB. Bigger messages travel as ``part`` items.
PART_BYTES = 8 << 20
#: Unfinished split messages one widget keeps at most; more evict the oldest.
MAX_PENDING_MESSAGES = 16
#: Item types the kernel answers with ``result``/``error``: the ids a refused message must answer.
REQUEST_TYPES = frozenset({"call", "execute", "set", "get"})


@dataclass(frozen=True)
class Hello:
    view: str


@dataclass(frozen=True)
class Bye:
    view: str


@dataclass(frozen=True)
class Call:
    view: str
    id: int
    name: str
    args: list[Any]
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Execute:
    view: str
    id: int
    code: str


@dataclass(frozen=True)
class SetVar:
    view: str
    id: int
    name: str
    value: Any


@dataclass(frozen=True)
class GetVar:
    view: str
    id: int
    name: str


@dataclass(frozen=True)
class Cancel:
    view: str
    id: int
    reason: str


@dataclass(frozen=True)
class Reply:
    """The page's answer to a ``call_js`` from Python."""

    view: str
    id: int
    ok: bool
    value: Any = None
    error: dict[str, str] = field(default_factory=dict)
    missing: bool = False  # the view has no handler of that name


@dataclass(frozen=True)
class Custom:
    """An item type owned by a widget built on the bridge (e.g. the Player)."""

    view: str
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class BadItem:
    view: str | None
    id: int | None
    ename: str
    evalue: str


Item = Hello | Bye | Call | Execute | SetVar | GetVar | Cancel | Reply | Custom | BadItem


class ProtocolError(ValueError):
    pass


def is_valid_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID


def _name(raw: dict[str, Any], key: str = "name") -> str:
    """A name from the page: any string (an odd one is answered like any unknown name), never another type."""
    name = raw.get(key)
    if not isinstance(name, str):
        raise ProtocolError(f"'{key}' must be a string, not {type(name).__name__}")
    return name


def shown_name(name: str) -> str:
    """``repr`` of a name from the page for an error message, shortened when it is very long."""
    if len(name) <= MAX_NAME_LENGTH:
        return repr(name)
    return f"{name[:60]!r}... ({len(name)} characters)"


def parse_envelope(content: Any, buffers: Sequence[Any], custom_types: frozenset[str] = frozenset()) -> list[Item]:
    """Validate one comm message from the page; return its items.

    Raises :class:`ProtocolError` only when the envelope itself is unusable
    (then no item can be answered individually).
    """
    if not isinstance(content, dict) or type(content.get("ipb")) is not int or content["ipb"] != PROTOCOL_VERSION:
        version = content.get("ipb") if isinstance(content, dict) else None
        raise ProtocolError(
            f"not an ipybridge v{PROTOCOL_VERSION} message (ipb={version!r}); "
            "is the page running another version of ipybridge?"
        )
    msgs = content.get("msgs")
    if not isinstance(msgs, list):
        raise ProtocolError("'msgs' must be a list")
    if len(msgs) > MAX_ITEMS_PER_ENVELOPE:
        raise ProtocolError(f"more than {MAX_ITEMS_PER_ENVELOPE} items in one message")
    return [parse_item(raw, buffers, custom_types) for raw in msgs]


def parse_item(raw: Any, buffers: Sequence[Any], custom_types: frozenset[str] = frozenset()) -> Item:
    view: str | None = None
    ident: int | None = None
    try:
        if not isinstance(raw, dict):
            raise ProtocolError(f"an item must be an object, not {type(raw).__name__}")
        view = raw.get("view") if isinstance(raw.get("view"), str) else None
        ident = raw.get("id") if is_valid_id(raw.get("id")) else None
        if view is None:
            raise ProtocolError("'view' must be a string")
        if len(view) > MAX_VIEW_LENGTH:
            view = None
            raise ProtocolError(f"'view' is longer than {MAX_VIEW_LENGTH} characters")
        kind = raw.get("type")
        if kind == "hello":
            return Hello(view)
        if kind == "bye":
            return Bye(view)
        if kind in custom_types:
            return Custom(view, kind, raw)
        if ident is None:
            raise ProtocolError(f"'id' must be an integer in [0, 2**53), not {raw.get('id')!r}")
        if kind == "call":
            args = decode(raw.get("args", []), buffers)
            kwargs = decode(raw.get("kwargs", {}), buffers)
            if not isinstance(args, list):
                raise ProtocolError("'args' must be a list")
            if not isinstance(kwargs, dict):
                raise ProtocolError("'kwargs' must be an object")
            return Call(view, ident, _name(raw), args, kwargs)
        if kind == "execute":
            code = raw.get("code")
            if not isinstance(code, str):
                raise ProtocolError("'code' must be a string")
            return Execute(view, ident, code)
        if kind == "set":
            if "value" not in raw:
                raise ProtocolError("'set' needs a 'value'")
            return SetVar(view, ident, _name(raw), decode(raw["value"], buffers))
        if kind == "get":
            return GetVar(view, ident, _name(raw))
        if kind == "cancel":
            reason = raw.get("reason", "abort")
            if reason not in ("abort", "timeout"):
                raise ProtocolError("'reason' must be 'abort' or 'timeout'")
            return Cancel(view, ident, reason)
        if kind == "reply":
            ok = raw.get("ok")
            if not isinstance(ok, bool):
                raise ProtocolError("'ok' must be a boolean")
            if ok:
                return Reply(view, ident, True, decode(raw.get("value"), buffers))
            error = raw.get("error")
            if not isinstance(error, dict):
                raise ProtocolError("a failed reply needs an 'error' object")
            clean = {k: str(error.get(k, ""))[:100_000] for k in ("name", "message", "stack")}
            return Reply(view, ident, False, None, clean, missing=raw.get("missing") is True)
        raise ProtocolError(f"unknown message type {kind!r}")
    except (ProtocolError, DecodeError) as exc:
        return BadItem(view, ident, type(exc).__name__ if isinstance(exc, DecodeError) else "ProtocolError", str(exc))
    except RecursionError:
        return BadItem(view, ident, "ProtocolError", "message nested too deeply")


def envelope(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"ipb": PROTOCOL_VERSION, "msgs": items}


def simple_error(ename: str, evalue: str) -> dict[str, Any]:
    return {"ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]}


# ------------------------------------------------------------------ parts
@dataclass(frozen=True)
class Refusal:
    """A page message the kernel will not handle: answer each of ``ids`` (or the view) with this error."""

    view: str | None
    ids: tuple[int, ...]
    ename: str
    evalue: str


def request_ids(msgs: Any, view: str | None = None) -> tuple[tuple[str, int], ...]:
    """(view, id) of every request item in ``msgs`` that could be answered individually."""
    found = []
    for raw in msgs if isinstance(msgs, list) else ():
        if isinstance(raw, dict) and raw.get("type") in REQUEST_TYPES and is_valid_id(raw.get("id")):
            item_view = raw.get("view")
            if isinstance(item_view, str) and len(item_view) <= MAX_VIEW_LENGTH and view in (None, item_view):
                found.append((item_view, raw["id"]))
    return tuple(found)


def megabytes(n: int) -> str:
    """``n`` bytes as people read them (the page words its own errors the same way)."""
    if n >= 2**20:
        return f"{n / 2**20:.1f} MiB"
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} bytes"


@dataclass
class _Partial:
    view: str
    sizes: list[int]
    total: int
    count: int
    ids: tuple[int, ...]
    channel: str = "comm"  # where its parts come from: "comm" or "direct"
    #: The message's JSON text and buffers, each in memory of its own, filled as parts arrive (allocated
    #: when the first part is taken; what they may hold is reserved then, see :meth:`PartAssembler._make_room`).
    pieces: list[OwnedBuffer] = field(default_factory=list)
    piece: int = 0  # the piece being filled
    filled: int = 0  # bytes of it filled
    received: int = 0
    next_seq: int = 0

    def take(self, chunk: memoryview) -> None:
        """Copy one part's bytes to where they belong: each byte is copied once, the part is not kept."""
        used = 0
        while used < len(chunk):
            while self.filled == len(self.pieces[self.piece]):  # the next piece (zero-length ones take nothing)
                self.piece, self.filled = self.piece + 1, 0
            n = min(len(chunk) - used, len(self.pieces[self.piece]) - self.filled)
            self.pieces[self.piece][self.filled : self.filled + n] = chunk[used : used + n]
            used, self.filled = used + n, self.filled + n
        self.received += len(chunk)


class PartAssembler:
    """Joins page messages that were split into ``part`` items, in bounded memory.

    A part is ``{"type": "part", "view", "id", "seq", "count"}`` with exactly one
    buffer (its slice of the message); part 0 also carries ``sizes`` (byte sizes
    of the message's JSON text and of each of its buffers) and ``ids`` (the
    message's request ids, so a refused message can still answer each request).
    The declared size of an unfinished message is reserved when its first part
    arrives: a message over ``limit`` is refused at once, and unfinished messages
    together stay under ``2 * limit`` and :data:`MAX_PENDING_MESSAGES` (the oldest
    is dropped, its requests answered). ``drop_view`` forgets a view's parts.
    """

    def __init__(self) -> None:
        self._partials: OrderedDict[tuple[str, int], _Partial] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def pending_bytes(self) -> int:
        with self._lock:
            return sum(p.total for p in self._partials.values())

    def add(
        self, raw: dict[str, Any], buffers: Sequence[Any], limit: int, channel: str = "comm"
    ) -> tuple[tuple[Any, list[memoryview]] | None, list[Refusal]]:
        """Take one part (from ``channel``); return the whole message once its last part is in, and any refusals."""
        view = raw.get("view")
        if not isinstance(view, str) or len(view) > MAX_VIEW_LENGTH:
            return None, [Refusal(None, (), "ProtocolError", "a part needs a 'view' string")]
        ident, seq, count = raw.get("id"), raw.get("seq"), raw.get("count")
        if (
            not (isinstance(ident, int) and isinstance(seq, int) and isinstance(count, int))
            or not (is_valid_id(ident) and is_valid_id(seq) and is_valid_id(count) and seq < count)
            or len(buffers) != 1
        ):
            return None, [Refusal(view, (), "ProtocolError", "a part needs an id, 0 <= seq < count and one buffer")]
        chunk = memoryview(buffers[0]).cast("B")  # copied into the message's pieces at once, not kept
        key = (view, ident)
        refusals: list[Refusal] = []
        with self._lock:
            if seq == 0:
                refusals += self._drop(key, "ProtocolError", "the message was restarted before it was complete")
                started = self._start(view, raw, count, limit)
                if isinstance(started, Refusal):
                    return None, [*refusals, started]
                refusals += self._make_room(started.total, limit)
                started.pieces = [OwnedBuffer(size) for size in started.sizes]
                started.channel = channel
                self._partials[key] = started
            partial = self._partials.get(key)
            if partial is None:
                return None, refusals  # the rest of a message already refused or dropped: nothing to answer
            if seq != partial.next_seq or partial.received + len(chunk) > partial.total:
                refusals += self._drop(key, "ProtocolError", "parts out of order or larger than declared")
                return None, refusals
            partial.take(chunk)
            partial.next_seq += 1
            if partial.next_seq < partial.count:
                return None, refusals
            del self._partials[key]
        if partial.received != partial.total:
            return None, [*refusals, Refusal(view, partial.ids, "ProtocolError", "parts smaller than declared")]
        joined = _join(partial)
        if isinstance(joined, Refusal):
            return None, [*refusals, joined]
        return joined, refusals

    def _start(self, view: str, raw: dict[str, Any], count: int, limit: int) -> _Partial | Refusal:
        ids_raw, sizes = raw.get("ids", []), raw.get("sizes")
        ids = tuple(i for i in ids_raw if is_valid_id(i))[:MAX_ITEMS_PER_ENVELOPE] if isinstance(ids_raw, list) else ()
        if (
            not isinstance(sizes, list)
            or not 1 <= len(sizes) <= MAX_ITEMS_PER_ENVELOPE
            or not all(is_valid_id(n) for n in sizes)
        ):
            return Refusal(view, ids, "ProtocolError", "part 0 needs 'sizes': the byte sizes of the JSON and buffers")
        total = sum(sizes)
        if total > limit:
            return Refusal(
                view,
                ids,
                "MessageTooLargeError",
                f"the message is {megabytes(total)}, over the {megabytes(limit)} this widget accepts "
                "(max_message_bytes in Python); nothing of it was run",
            )
        if count > total + 1:
            return Refusal(view, ids, "ProtocolError", "more parts than bytes")
        return _Partial(view, sizes, total, count, ids)

    def _make_room(self, incoming: int, limit: int) -> list[Refusal]:
        refusals: list[Refusal] = []
        pending = sum(p.total for p in self._partials.values())
        while self._partials and (pending + incoming > 2 * limit or len(self._partials) >= MAX_PENDING_MESSAGES):
            key, oldest = next(iter(self._partials.items()))
            pending -= oldest.total
            refusals += self._drop(
                key,
                "MessageTooLargeError",
                "dropped unfinished: too many large messages were arriving at once "
                f"(at most {MAX_PENDING_MESSAGES}, {megabytes(2 * limit)} together); send it again",
            )
        return refusals

    def _drop(self, key: tuple[str, int], ename: str, evalue: str) -> list[Refusal]:
        partial = self._partials.pop(key, None)
        return [] if partial is None else [Refusal(partial.view, partial.ids, ename, evalue)]

    def drop_view(self, view: str, channel: str | None = None) -> None:
        """Forget a view's unfinished messages (only those whose parts came from ``channel``, if given)."""
        with self._lock:
            for key in [k for k, p in self._partials.items() if k[0] == view and channel in (None, p.channel)]:
                del self._partials[key]

    def clear(self) -> None:
        with self._lock:
            self._partials.clear()


def _join(partial: _Partial) -> tuple[Any, list[memoryview]] | Refusal:
    """The message's JSON and buffers, from the pieces its parts filled.

    Each buffer has its own :class:`OwnedBuffer` (writable, allocator-aligned),
    so an array decoded from it needs no further copy.
    """
    pieces, partial.pieces = partial.pieces, []
    try:
        content = json.loads(pieces[0])
    except (ValueError, RecursionError) as exc:
        return Refusal(partial.view, partial.ids, "ProtocolError", f"the joined message is not JSON: {exc}"[:500])
    return content, [memoryview(buffer) for buffer in pieces[1:]]
