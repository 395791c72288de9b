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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._serialize import DecodeError, decode

PROTOCOL_VERSION = 1
MAX_ID = 2**53 - 1
MAX_NAME_LENGTH = 256
MAX_ITEMS_PER_ENVELOPE = 10_000


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
    name = raw.get(key)
    if not isinstance(name, str) or not name:
        raise ProtocolError(f"'{key}' must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise ProtocolError(f"'{key}' is longer than {MAX_NAME_LENGTH} characters")
    return name


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
