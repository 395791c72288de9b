"""The direct transport's kernel half: a real endpoint on its thread, real websocket clients.

Hostile clients (no token, a wrong one, another kernel's, an unknown widget or
view, a browser page from elsewhere, oversize or slow, too many) are refused,
nothing runs, and the comm keeps working. A connection that drops mid-call
falls back to the comm with every call answered once and run once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tornado.httpclient
import tornado.iostream
import tornado.websocket

from ipybridge import _direct
from ipybridge._core import BridgeCore
from ipybridge._direct import DirectEndpoint, DirectRoutes, pack, unpack, unpack_text

from .fakepage import FakePage, envelope

WIDGET = "comm-id-1"


@pytest.fixture
def endpoint() -> Iterator[DirectEndpoint]:
    endpoint = DirectEndpoint()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def page() -> FakePage:
    return FakePage()


@pytest.fixture
def core(endpoint: DirectEndpoint, page: FakePage) -> Iterator[BridgeCore]:
    core = BridgeCore(page.send)
    routes = DirectRoutes(core, endpoint, WIDGET, ["loopback"])
    core.direct = routes
    core.outbox.route = routes.split
    core.receive(*envelope({"type": "hello"}))
    yield core
    core.close()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


async def connect(endpoint: DirectEndpoint, origin: str | None = None) -> Any:
    headers = {"Origin": origin} if origin else {}
    request = tornado.httpclient.HTTPRequest(f"ws://127.0.0.1:{endpoint.port}{_direct.PATH}", headers=headers)
    ws = await tornado.websocket.websocket_connect(request, max_message_size=64 << 20)
    greeting = json.loads(await ws.read_message())  # the endpoint speaks first: a nonce for a proof
    assert set(greeting) == {"ipb", "nonce"}
    ws.nonce = greeting["nonce"]
    return ws


def proof(secret: str, nonce: str) -> str:
    return hmac.new(secret.encode(), nonce.encode(), "sha256").hexdigest()


def hello(endpoint: DirectEndpoint, **changes: Any) -> str:
    return json.dumps({"ipb": 1, "token": endpoint.secret, "widget": WIDGET, "view": "v1", **changes})


async def authenticated(endpoint: DirectEndpoint, use: bool = True, fetch: bool = False) -> Any:
    """A connection that authenticated (and, with ``use``, that the page started using, as js/direct.js does;
    with ``fetch``, saying it fetches big buffers from the endpoint, as the page does on the loopback route)."""
    ws = await connect(endpoint)
    await ws.write_message(hello(endpoint))
    ready = unpack(await ws.read_message())[0]["msgs"]
    assert len(ready) == 1, ready
    assert is_marker(ready[0], "direct"), ready
    ws.conn = ready[0]["conn"]
    if use:
        use_item = {"type": "transport", "transport": "direct", **({"fetch": True} if fetch else {})}
        await ws.write_message(pack(*envelope(use_item)), binary=True)
    return ws


def is_marker(item: dict[str, Any], transport: str, view: str = "v1") -> bool:
    """A ``transport`` item switching ``view`` (it also names its connection, ``conn``)."""
    return (
        item.get("type") == "transport"
        and item.get("view") == view
        and item.get("transport") == transport
        and isinstance(item.get("conn"), int)
    )


async def read_items(ws: Any) -> tuple[list[dict[str, Any]], list[memoryview]]:
    message = await ws.read_message()
    assert message is not None, "the connection closed"
    # A message without buffers comes as text (its envelope's JSON), one with buffers as binary.
    content, buffers = (unpack_text(message), []) if isinstance(message, str) else unpack(message)
    return content["msgs"], buffers


def call_item(ident: int, name: str, *args: Any) -> dict[str, Any]:
    return {"type": "call", "id": ident, "name": name, "args": list(args), "kwargs": {}}


# ---------------------------------------------------------------- framing
def test_pack_and_unpack_are_inverse_and_refuse_malformed_messages() -> None:
    content = {"ipb": 1, "msgs": [{"type": "result", "id": 1, "value": {"$ipb": "bytes", "i": 0}}]}
    data = pack(content, [b"abc", memoryview(b"")])
    back, buffers = unpack(data)
    assert back == content
    assert [bytes(b) for b in buffers] == [b"abc", b""]
    assert data.index(b"abc") % 8 == 0  # the page views a float64 array in the message without a copy
    for bad in [b"", b"\x05\x00\x00\x00{}", b"\x02\x00\x00\x00{}", data[:-1], data + b"x", b"\x02\x00\x00\x00[]"]:
        with pytest.raises(ValueError, match=r"header|sizes"):
            unpack(bad)
    # The header is UTF-8 JSON, JSON whitespace may pad it; anything else after it, or other bytes, is refused.
    head = json.dumps([{"ipb": 1, "msgs": [{"type": "call", "name": "é"}]}, []], ensure_ascii=False).encode()
    for padded in [head + b" \n", b"\n\t " + head, b" " + head + b" "]:
        assert unpack(len(padded).to_bytes(4, "little") + padded)[0]["msgs"][0]["name"] == "é"
    for tail in [b"x", b" 1", b"\x0b"]:
        with pytest.raises(ValueError, match="not JSON"):
            unpack(len(head + tail).to_bytes(4, "little") + head + tail)
    latin1 = head.decode().encode("latin-1")
    with pytest.raises(ValueError, match="not JSON"):
        unpack(len(latin1).to_bytes(4, "little") + latin1)


def test_a_message_without_buffers_goes_both_ways_as_text_and_a_bad_one_gets_a_protocol_error(
    endpoint: DirectEndpoint, core: BridgeCore
) -> None:
    core.expose(lambda a, b: a + b, "add")
    core.expose(lambda n: np.arange(n, dtype=np.uint8), "bytes_of")

    async def scenario() -> list[Any]:
        ws = await authenticated(endpoint)
        got = []
        content, _ = envelope(call_item(1, "add", 2, 3))
        await ws.write_message(json.dumps(content))  # text: the envelope's JSON
        got.append(await ws.read_message())
        await ws.write_message(pack(*envelope(call_item(2, "bytes_of", 3))), binary=True)
        got.append(await ws.read_message())
        for bad in ["{", "[1, 2]", '{"ipb": 1, "msgs": [{"type": "call", "view": "v1", "id": 3}]} x']:
            await ws.write_message(bad)
            got.append(await ws.read_message())
        await ws.write_message(json.dumps(envelope(call_item(4, "add", 1, 1))[0]))  # still open, still served
        got.append(await ws.read_message())
        ws.close()
        return got

    answer, array, *bad, last = run(scenario())
    assert isinstance(answer, str)
    assert unpack_text(answer)["msgs"] == [{"type": "result", "view": "v1", "id": 1, "value": 5}]
    assert isinstance(array, bytes)  # buffers: binary
    content, buffers = unpack(array)
    assert content["msgs"][0]["id"] == 2
    assert [bytes(b) for b in buffers] == [b"\x00\x01\x02"]
    for message in bad:
        (item,) = unpack_text(message)["msgs"]
        assert item["type"] == "protocol_error", item
    assert unpack_text(last)["msgs"][0]["value"] == 2


def test_only_loopback_origins_are_browsers_we_accept() -> None:
    for origin in ["http://127.0.0.1:8888", "http://localhost:8888", "https://[::1]:1", "http://127.1.2.3"]:
        assert _direct.is_loopback_origin(origin), origin
    for origin in ["http://evil.example", "http://127.0.0.1.evil.example", "null", "file://", "http://10.0.0.1"]:
        assert not _direct.is_loopback_origin(origin), origin


# ------------------------------------------------------------- happy path
def test_a_view_moves_to_the_direct_path_with_a_marker_in_comm_order(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    core.expose(lambda a, b: a + b, "add")

    async def scenario() -> None:
        ws = await authenticated(endpoint)
        page.wait_for(lambda i: is_marker(i, "direct"))
        await ws.write_message(pack(*envelope(call_item(1, "add", 2, 3))), binary=True)
        items, _ = await read_items(ws)
        assert items == [{"type": "result", "view": "v1", "id": 1, "value": 5}]
        core.emit("tick", b"\x01\x02")
        items, buffers = await read_items(ws)
        assert items[0]["type"] == "event"
        assert [bytes(b) for b in buffers] == [b"\x01\x02"]
        ws.close()

    run(scenario())
    # Nothing doubled on the comm: only what the connection carried (the page skips those it read), named so.
    comm = [i for i, _ in page.items() if i.get("type") in ("result", "event")]
    assert all(i["type"] == "event" and isinstance(i["resent"], int) and i["n"] == 1 for i in comm), comm
    assert core.direct.transport() in ("direct", "comm")


# ---------------------------------------------------------------- hostile
def hostile_cases(endpoint: DirectEndpoint, other: DirectEndpoint) -> dict[str, Any]:
    return {
        "no token": json.dumps({"ipb": 1, "widget": WIDGET, "view": "v1"}),
        "wrong token": hello(endpoint, token="x" * len(endpoint.secret)),
        "another kernel's token": hello(endpoint, token=other.secret),
        "unknown widget": hello(endpoint, widget="not-a-widget"),
        "a view that never said hello": hello(endpoint, view="v-stranger"),
        "binary first message": pack(*envelope(call_item(1, "boom"))),
        "oversize first message": hello(endpoint, pad="x" * (_direct.AUTH_BYTES + 1)),
        "not JSON": "{",
        "wrong protocol": hello(endpoint, ipb=2),
        "a wrong proof": json.dumps({"ipb": 1, "proof": "0" * 64, "widget": WIDGET, "view": "v1"}),
        "a proof for another nonce": json.dumps(
            {"ipb": 1, "proof": proof(endpoint.secret, "another"), "widget": WIDGET, "view": "v1"}
        ),
        "a proof with another kernel's secret": "PROOF-OTHER",
    }


def test_hostile_clients_are_refused_nothing_runs_and_the_comm_keeps_working(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    ran = threading.Event()
    core.expose(lambda: ran.set(), "boom")
    other = DirectEndpoint()
    try:
        cases = hostile_cases(endpoint, other)
        other_secret = other.secret
    finally:
        other.stop()

    async def attempt(first: str | bytes) -> Any:
        ws = await connect(endpoint)
        if first == "PROOF-OTHER":
            first = json.dumps({"ipb": 1, "proof": proof(other_secret, ws.nonce), "widget": WIDGET, "view": "v1"})
        await ws.write_message(first, binary=isinstance(first, bytes))
        # then a call, as if authenticated: it must not run
        with_call = pack(*envelope(call_item(7, "boom")))
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):
            await ws.write_message(with_call, binary=True)
        return await ws.read_message()

    for name, first in cases.items():
        refused_before = endpoint.refused
        assert run(attempt(first)) is None, name  # closed without a word
        # A long first frame is cut off by the protocol and counted when the connection's thread ends it:
        # after the client saw the close, not necessarily before.
        deadline = time.monotonic() + 10
        while endpoint.refused != refused_before + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert endpoint.refused == refused_before + 1, name
    assert not ran.is_set()
    assert not any(i.get("type") == "transport" for i, _ in page.items())
    core.expose(lambda: "still here", "ping")
    core.receive(*envelope(call_item(1, "ping")))
    assert page.value_of(page.answer("v1", 1)) == "still here"


def test_a_page_from_another_origin_is_refused_at_the_handshake(endpoint: DirectEndpoint, core: BridgeCore) -> None:
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        run(connect(endpoint, origin="http://evil.example"))
    assert info.value.code == 403

    async def local_page() -> None:  # a page of this machine may try (it still needs the token)
        ws = await connect(endpoint, origin="http://localhost:8888")
        ws.close()

    run(local_page())


def test_a_client_that_never_authenticates_is_closed(
    endpoint: DirectEndpoint, core: BridgeCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_direct, "AUTH_TIMEOUT_S", 0.2)

    async def silent() -> Any:
        ws = await connect(endpoint)
        return await ws.read_message()

    assert run(silent()) is None


def test_connections_are_bounded(endpoint: DirectEndpoint, core: BridgeCore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_direct, "MAX_UNAUTHENTICATED", 3)

    async def many() -> None:
        open_ = [await connect(endpoint) for _ in range(3)]
        with pytest.raises(tornado.httpclient.HTTPClientError) as info:
            await connect(endpoint)
        assert info.value.code == 503
        for ws in open_:
            ws.close()
        # the count goes down again: an authenticated view still gets in
        for _ in range(100):
            if endpoint.unauthenticated == 0:
                break
            await asyncio.sleep(0.02)
        ws = await authenticated(endpoint)
        ws.close()

    run(many())


def test_an_oversize_message_after_authentication_closes_the_connection(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    ran = threading.Event()
    core.expose(lambda data: ran.set(), "sink")

    async def scenario() -> Any:
        ws = await authenticated(endpoint)
        big = pack(*envelope(call_item(1, "sink", b"x" * (_direct.FRAME_BYTES + 1))))
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):  # closed while still writing
            await ws.write_message(big, binary=True)
        return await ws.read_message()

    assert run(scenario()) is None
    assert not ran.is_set()
    page.wait_for(lambda i: is_marker(i, "comm"))


def test_malformed_direct_messages_get_a_protocol_error(endpoint: DirectEndpoint, core: BridgeCore) -> None:
    async def scenario() -> list[dict[str, Any]]:
        ws = await authenticated(endpoint)
        await ws.write_message(b"\x00\x00", binary=True)
        items, _ = await read_items(ws)
        ws.close()
        return items

    items = run(scenario())
    assert items[0]["type"] == "protocol_error"


# --------------------------------------------------------------- fallback
def expose_slow(core: BridgeCore) -> tuple[threading.Event, list[int]]:
    """Expose ``slow(n)``: records ``n``, waits until released (at most 10 s), answers ``n * 10``."""
    release = threading.Event()
    runs: list[int] = []

    def slow(n: int) -> int:
        runs.append(n)
        release.wait(10)
        return n * 10

    core.expose(slow)
    return release, runs


def test_a_drop_mid_call_answers_once_over_the_comm_and_runs_once(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    release, runs = expose_slow(core)
    core.expose(lambda: "fast", "fast")

    async def scenario() -> None:
        ws = await authenticated(endpoint)
        await ws.write_message(pack(*envelope(call_item(1, "fast"))), binary=True)
        await read_items(ws)  # answered on the direct path...
        await ws.write_message(pack(*envelope(call_item(2, "slow", 4))), binary=True)
        for _ in range(200):
            if runs:
                break
            await asyncio.sleep(0.01)
        ws.close()  # ...then the socket dies while 2 runs

    run(scenario())
    # The page sends again over the comm what it has no answer for, marked as a fallback;
    # a page that missed the answer to 1 (lost in the socket) asks again too.
    content, buffers = envelope(call_item(1, "fast"), call_item(2, "slow", 4), call_item(3, "fast"))
    core.receive({**content, "direct": "lost"}, buffers)
    release.set()
    assert page.value_of(page.answer("v1", 2)) == 40
    assert page.value_of(page.answer("v1", 1)) == "fast"  # remembered, not run again
    assert page.value_of(page.answer("v1", 3)) == "fast"
    page.wait_for(lambda i: is_marker(i, "comm"))
    assert runs == [4]
    answers = [(i["id"], i["type"]) for i, _ in page.items() if i.get("type") in ("result", "error")]
    assert sorted(answers) == [(1, "result"), (2, "result"), (3, "result")]


def test_a_tiny_call_runs_on_the_reading_thread_and_a_long_one_hands_the_reading_on(
    endpoint: DirectEndpoint, core: BridgeCore
) -> None:
    """One thread wake per call, without ever leaving the connection unread behind a call that takes long."""
    release, runs = expose_slow(core)
    core.expose(lambda: threading.current_thread().name, "where")

    async def ping() -> str:
        return "pong"

    core.expose(ping)
    answers: dict[int, Any] = {}

    async def answer(ws: Any, ident: int) -> Any:
        while ident not in answers:
            items, _ = await read_items(ws)
            answers.update({i["id"]: i for i in items if i.get("type") in ("result", "error")})
        return answers[ident]

    async def scenario() -> None:
        ws = await authenticated(endpoint)
        await ws.write_message(pack(*envelope(call_item(1, "where"))), binary=True)
        assert (await answer(ws, 1))["value"] == "ipybridge-direct-conn"  # the reading thread ran it
        assert endpoint.handoffs == 0
        await ws.write_message(pack(*envelope(call_item(2, "slow", 1))), binary=True)
        await ws.write_message(pack(*envelope(call_item(3, "ping"))), binary=True)
        assert (await answer(ws, 3))["value"] == "pong"  # read and answered while slow(1) holds that thread
        assert runs == [1]
        assert 2 not in answers
        assert endpoint.handoffs == 1
        # A page timeout: the call is given up on, the worker freed, later calls answered while it still hangs.
        await ws.write_message(pack(*envelope({"type": "cancel", "id": 2, "reason": "timeout"})), binary=True)
        await ws.write_message(pack(*envelope(call_item(4, "where"))), binary=True)
        assert (await answer(ws, 4))["type"] == "result"
        assert 2 not in answers
        release.set()
        await ws.write_message(pack(*envelope(call_item(5, "where"))), binary=True)
        await answer(ws, 5)
        assert 2 not in answers  # cancelled: its answer is dropped
        ws.close()

    run(scenario())
    assert core._worker.jobs_run_here >= 3


def test_a_call_that_finds_the_worker_busy_waits_for_it_and_runs_on_the_worker(
    endpoint: DirectEndpoint, core: BridgeCore
) -> None:
    gate = threading.Event()
    order: list[str] = []

    def before() -> None:
        gate.wait(10)
        order.append("before")

    def where() -> str:
        order.append("call")
        return threading.current_thread().name

    core._worker.submit(before)  # what a cell's or another message's call would hold it with
    core.expose(where)

    async def scenario() -> Any:
        ws = await authenticated(endpoint)
        await ws.write_message(pack(*envelope(call_item(1, "where"))), binary=True)
        deadline = time.monotonic() + 10
        while ("v1", 1) not in core._running and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert ("v1", 1) in core._running  # received...
        assert order == []  # ...and waiting for the worker, in order
        gate.set()
        while True:
            items, _ = await read_items(ws)
            for item in items:
                if item.get("type") in ("result", "error"):
                    ws.close()
                    return item

    answer = run(scenario())
    assert answer["value"].startswith("ipybridge-worker"), answer
    assert order == ["before", "call"]
    stats = core.debug_stats()
    assert stats["requests_received"] == stats["answers_posted"] == 1
    assert stats["running"] == 0


def test_a_call_on_the_reading_thread_that_calls_javascript_gets_the_reply_over_the_same_connection(
    endpoint: DirectEndpoint, core: BridgeCore
) -> None:
    """call_js(...).result() in a def: the reply comes on the connection whose reading thread runs that def."""

    def ask(n: int) -> int:
        return int(core.call_js("double", [n], timeout=10).result()) + 1

    core.expose(ask)

    async def scenario() -> Any:
        ws = await authenticated(endpoint)
        await ws.write_message(pack(*envelope(call_item(1, "ask", 20))), binary=True)
        while True:
            items, _ = await read_items(ws)
            for item in items:
                if item.get("type") == "call":
                    reply = {"type": "reply", "id": item["id"], "ok": True, "value": item["args"][0] * 2}
                    await ws.write_message(pack(*envelope(reply)), binary=True)
                if item.get("type") in ("result", "error") and item.get("id") == 1:
                    ws.close()
                    return item

    assert run(scenario())["value"] == 41
    assert core._worker.jobs_run_here == 1
    assert endpoint.handoffs == 1  # at once, when it started waiting


def test_calls_nest_both_ways_over_the_direct_path_while_a_def_on_the_reading_thread_waits(
    endpoint: DirectEndpoint, core: BridgeCore
) -> None:
    """def ask -> JS handler -> def double (and back): the page's handler calls Python before it replies."""

    def ask(n: int) -> int:
        return int(core.call_js("viaPython", [n], timeout=10).result()) + 1

    def double(n: int) -> list[Any]:
        return [n * 2, threading.current_thread().name]

    core.expose(ask)
    core.expose(double)

    async def scenario() -> tuple[Any, Any]:
        ws = await authenticated(endpoint)
        await ws.write_message(pack(*envelope(call_item(1, "ask", 20))), binary=True)
        js_call = None
        nested = None
        while True:
            items, _ = await read_items(ws)
            for item in items:
                if item.get("type") == "call":  # the JS handler: calls Python, then replies with its result
                    js_call = item
                    await ws.write_message(pack(*envelope(call_item(2, "double", item["args"][0]))), binary=True)
                if item.get("type") == "result" and item.get("id") == 2:
                    nested = item["value"]
                    assert js_call is not None
                    reply = {"type": "reply", "id": js_call["id"], "ok": True, "value": nested[0]}
                    await ws.write_message(pack(*envelope(reply)), binary=True)
                if item.get("type") in ("result", "error") and item.get("id") == 1:
                    ws.close()
                    return item, nested

    outer, nested = run(scenario())
    assert outer["value"] == 41
    # The nested call ran while ask waited, on the thread that read it (the worker was free meanwhile).
    assert nested == [40, "ipybridge-direct-conn"]
    assert core._worker.jobs_run_here == 2


def test_output_and_events_sent_on_a_connection_that_drops_come_again_over_the_comm_after_its_switch(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    go_on = threading.Event()

    def chatty() -> str:
        print("one")
        core.emit("tick", 1)
        go_on.wait(10)
        print("two")
        return "done"

    core.expose(chatty)
    got: list[dict[str, Any]] = []
    conn: list[int] = []

    async def scenario() -> None:
        ws = await authenticated(endpoint)
        conn.append(ws.conn)
        await ws.write_message(pack(*envelope(call_item(1, "chatty"))), binary=True)
        while len([i for i in got if i["type"] in ("output", "event")]) < 2:
            got.extend((await read_items(ws))[0])
        ws.close()  # the page may not have read them: the kernel cannot tell

    run(scenario())
    numbered = [i for i in got if i["type"] in ("output", "event")]
    assert [i["n"] for i in numbered] == [1, 2]  # numbered per connection, in the order sent
    assert "view" not in numbered[1]  # an event goes to every view
    page.wait_for(lambda i: is_marker(i, "comm"))
    go_on.set()
    assert page.value_of(page.answer("v1", 1)) == "done"
    after = [i for i, _ in page.items() if i.get("type") in ("output", "event", "result")]
    # Right after the switch: what the connection carried, named and numbered, for this view; then the rest.
    assert [(i["type"], i["n"], i["resent"], i["view"]) for i in after[:2]] == [
        ("output", 1, conn[0], "v1"),
        ("event", 2, conn[0], "v1"),
    ]
    assert after[0]["text"] == "one\n"
    assert [(i["type"], i.get("text")) for i in after[2:]] == [("output", "two\n"), ("result", None)]


def test_the_comm_only_path_runs_each_request_once_when_no_view_connects(core: BridgeCore, page: FakePage) -> None:
    runs: list[int] = []
    core.expose(lambda n: runs.append(n) or n, "one")
    core.receive(*envelope(call_item(1, "one", 1), call_item(2, "one", 2)))
    page.answer("v1", 2)
    page.answer("v1", 1)
    core.receive(*envelope(call_item(1, "one", 1), call_item(3, "one", 3)))  # an id again: answered already
    page.answer("v1", 3)
    assert runs == [1, 2, 3]
    assert sorted(i["id"] for i, _ in page.items() if i.get("type") == "result") == [1, 2, 3]
    assert core.direct.transport() == "comm"


# ------------------------------------------------- races (issue 14's stall)
def test_nothing_goes_to_a_connection_the_page_has_not_started_using(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    """A page that authenticated and then gave up (its 3 s connect timeout) must still get every answer.

    The kernel used to move the view at authentication: answers to calls the page had sent over the
    comm went to a socket the page had already dropped, and the page waited for them forever
    (test_soak: 64 calls pending). And an item routed there could arrive before "ready".
    """
    release = threading.Event()
    core.expose(lambda: release.wait(10) and "late", "slow")

    async def scenario() -> list[Any]:
        core.receive(*envelope(call_item(1, "slow")))  # over the comm, before any connection
        ws = await authenticated(endpoint, use=False)  # ready arrived... and the page timed out meanwhile
        core.emit("tick", 1)
        release.set()
        page.answer("v1", 1)
        page.wait_for(lambda i: i.get("type") == "event")
        ws.close()
        got = []
        while (message := await ws.read_message()) is not None:
            got.append(message)
        return got

    assert run(scenario()) == []  # nothing but "ready" on the socket
    assert page.value_of(page.answer("v1", 1)) == "late"
    assert not any(i.get("type") == "transport" for i, _ in page.items())  # the view never switched


def test_a_request_sent_over_the_comm_before_the_switch_runs_once_and_is_answered_after_a_drop(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    """Its answer left on the socket after the switch and died with it: the page asks again over the comm."""
    release, runs = expose_slow(core)

    async def scenario() -> None:
        core.receive(*envelope(call_item(1, "slow", 1)))
        ws = await authenticated(endpoint)
        page.wait_for(lambda i: is_marker(i, "direct"))
        release.set()
        items, _ = await read_items(ws)  # the answer went directly... and the page never read it
        assert items[0]["id"] == 1
        ws.close()

    run(scenario())
    content, buffers = envelope(call_item(1, "slow", 1))
    core.receive({**content, "direct": "lost"}, buffers)
    assert page.value_of(page.answer("v1", 1)) == 10
    assert runs == [1]


def test_a_lost_notice_before_the_kernel_reads_use_keeps_the_view_on_the_comm(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    """The page's socket failed right after it sent ``use``; the comm's notice may come first."""
    core.expose(lambda: "ok", "ping")
    routes: DirectRoutes = core.direct

    async def scenario() -> None:
        ws = await authenticated(endpoint, use=False)
        core.receive({"ipb": 1, "msgs": [], "direct": "lost", "view": "v1"}, [])
        await ws.write_message(pack(*envelope({"type": "transport", "transport": "direct"})), binary=True)
        assert await ws.read_message() is None  # closed, and nothing routed to it

    run(scenario())
    core.receive(*envelope(call_item(1, "ping")))
    assert page.value_of(page.answer("v1", 1)) == "ok"
    assert not any(i.get("type") == "transport" for i, _ in page.items())
    assert routes.transport() == "comm"


class FakeConn:
    """A stand-in for an authenticated connection (what DirectRoutes touches)."""

    def __init__(self, view: str) -> None:
        self.view = view
        self.state = "open"
        self.conn_id = 0
        self.sent: list[bytes] = []
        self.shut_calls = 0

    def send(self, content: dict[str, Any], buffers: list[memoryview]) -> None:
        self.sent.append(pack(content, buffers))

    def shut(self) -> None:
        self.shut_calls += 1


def test_switches_posted_from_two_threads_reach_the_page_in_the_order_they_happened(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """attach (endpoint thread) and detach (comm thread, a 'lost' notice) of one connection at once.

    Posting the ``direct`` item was outside the lock that recorded the switch: a detach could post its
    ``comm`` item first, and the kernel then routed the view to the connection the page had left.
    """
    routes: DirectRoutes = core.direct
    conn = FakeConn("v1")
    conn.conn_id = routes.opened(conn)  # type: ignore[arg-type]
    posting = threading.Event()
    go_on = threading.Event()
    real_post = core.post

    def slow_post(item: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        if item.get("type") == "transport" and item.get("transport") == "direct":
            posting.set()
            go_on.wait(10)
        real_post(item, *args, **kwargs)

    monkeypatch.setattr(core, "post", slow_post)
    attacher = threading.Thread(target=routes.attach, args=("v1", conn))
    attacher.start()
    assert posting.wait(10)
    detacher = threading.Thread(target=routes.detach, args=("v1", conn))
    detacher.start()
    detacher.join(0.5)  # it must wait for the attach to finish posting (if it does not, it is done by now)
    go_on.set()
    attacher.join(10)
    detacher.join(10)
    core.outbox.flush()
    markers = [i["transport"] for i, _ in page.items() if i.get("type") == "transport"]
    assert markers == ["direct", "comm"]
    assert routes._live == {}
    assert routes.transport() == "comm"
    core.emit("after", 1)
    core.outbox.flush()
    assert page.wait_for(lambda i: i.get("type") == "event")["name"] == "after"  # over the comm
    assert conn.sent == []


def test_concurrent_attach_and_detach_keep_every_connections_items_between_its_markers(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    """Many connections of one view attached and detached from two threads while results flow."""
    routes: DirectRoutes = core.direct
    stop = threading.Event()
    posted: list[int] = []

    def traffic() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            posted.append(n)
            core.post({"type": "output", "view": "v1", "id": n, "stream": "stdout", "text": str(n)})

    def churn() -> None:
        for _ in range(200):
            conn = FakeConn("v1")
            conn.conn_id = routes.opened(conn)  # type: ignore[arg-type]
            t = threading.Thread(target=routes.attach, args=("v1", conn))
            t.start()
            routes.detach("v1", conn)  # type: ignore[arg-type]
            t.join(10)
            routes.detach("v1", conn)  # type: ignore[arg-type]  (closed later too: nothing more)

    conns: list[FakeConn] = []
    real_opened = routes.opened

    def opened(conn: Any) -> int:
        conns.append(conn)
        return real_opened(conn)

    routes.opened = opened  # type: ignore[method-assign]
    pump = threading.Thread(target=traffic)
    pump.start()
    churn()
    stop.set()
    pump.join(10)
    core.outbox.flush()
    # Per connection: at most one "direct", then exactly one "comm"; never a "comm" before its "direct".
    seen: dict[int, list[str]] = {}
    for item, _ in page.items():
        if item.get("type") == "transport":
            seen.setdefault(item["conn"], []).append(item["transport"])
    assert all(marks == ["direct", "comm"] for marks in seen.values()), seen
    assert (routes._live, routes._used, routes._markers) == ({}, {}, {})
    # every output went somewhere exactly once: over the comm, or to the connection live at the time...
    direct = {c.conn_id: [i for data in c.sent for i in unpack(data)[0]["msgs"]] for c in conns}
    outputs = [i for i, _ in page.items() if i.get("type") == "output"]
    on_comm = [i["id"] for i in outputs if "resent" not in i]
    assert sorted([i["id"] for sent in direct.values() for i in sent] + on_comm) == posted
    # ...and what a connection carried came again over the comm, numbered as it was sent there (the newest
    # RESENT_BYTES of it: a busy connection's oldest items are not kept)
    for conn_id, sent in direct.items():
        again = [(i["id"], i["n"]) for i in outputs if i.get("resent") == conn_id]
        assert again == [(i["id"], i["n"]) for i in sent][len(sent) - len(again) :], conn_id
        assert len(again) == len(sent) or len(again) * 128 > _direct.RESENT_BYTES // 2, conn_id
    assert routes.transport() == "comm"


def test_call_js_waiting_for_a_view_that_dropped_is_sent_again_to_it_over_the_comm(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    async def scenario() -> None:
        ws = await authenticated(endpoint)
        page.wait_for(lambda i: is_marker(i, "direct"))
        future = core.call_js("greet", ["a"], timeout=None)
        items, _ = await read_items(ws)
        assert items[0]["type"] == "call"
        ws.close()
        resent = page.wait_for(lambda i: i.get("type") == "call" and i.get("view") == "v1")
        assert resent["id"] == items[0]["id"]
        core.receive(*envelope({"type": "reply", "id": resent["id"], "ok": True, "value": "hi a"}))
        assert future.result(5) == "hi a"

    run(scenario())


def test_a_proof_of_the_secret_authenticates_without_sending_it(endpoint: DirectEndpoint, core: BridgeCore) -> None:
    async def scenario() -> list[dict[str, Any]]:
        ws = await connect(endpoint)
        await ws.write_message(
            json.dumps({"ipb": 1, "proof": proof(endpoint.secret, ws.nonce), "widget": WIDGET, "view": "v1"})
        )
        items, _ = await read_items(ws)
        ws.close()
        return items

    (ready,) = run(scenario())
    assert is_marker(ready, "direct")


def test_an_answer_remembered_again_is_counted_once(endpoint: DirectEndpoint, core: BridgeCore) -> None:
    # admit() re-posts a remembered answer to a page that fell back; its flush remembers it again.
    import collections

    import numpy as np

    routes: DirectRoutes = core.direct
    routes._remembered["v1"] = collections.OrderedDict({5: None})
    entry = ({"type": "result", "view": "v1", "id": 5, "value": None}, [memoryview(np.zeros(1000, np.uint8))])
    routes._remember_answer("v1", 5, entry)
    once = routes._bytes
    assert once > 1000
    for _ in range(2):
        routes._remember_answer("v1", 5, entry)
    assert routes._bytes == once
    assert routes._answer_bytes == {("v1", 5): once}


def test_an_answer_is_kept_as_json_once_sent_and_sent_again_the_same_in_either_form(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    # The routes remember an answer as its item when they route it, and keep it as JSON text once it was sent
    # (keep_sent): a page that falls back in between gets it again all the same.
    import collections

    routes: DirectRoutes = core.direct
    routes._remembered["v1"] = collections.OrderedDict({5: None, 6: None})
    values = {5: {"a": [1.5, "é", None]}, 6: [True, {"$ipb": "bytes", "i": 0}]}
    buffer = memoryview(b"\x01\x02\x03")
    routes._remember_answer("v1", 5, ({"type": "result", "view": "v1", "id": 5, "value": values[5]}, []))
    routes.keep_sent()
    routes._remember_answer("v1", 6, ({"type": "result", "view": "v1", "id": 6, "value": values[6]}, [buffer]))
    kept5, kept6 = routes._remembered["v1"][5], routes._remembered["v1"][6]
    assert isinstance(kept5[0], str)
    assert json.loads(kept5[0])["value"] == values[5]
    assert isinstance(kept6[0], dict)  # not sent yet
    assert routes._answer_bytes[("v1", 5)] == len(kept5[0]) + 64
    content, buffers = envelope(call_item(5, "never-run"), call_item(6, "never-run"))
    core.receive(content, buffers)  # over the comm: answered again, not run
    assert page.value_of(page.answer("v1", 5)) == values[5]
    assert page.value_of(page.answer("v1", 6)) == [True, b"\x01\x02\x03"]
    assert not any(i.get("type") == "error" for i, _ in page.items())


def test_a_cell_blocked_on_call_js_over_a_dropped_connection_fails_at_once_instead_of_hanging(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ipykernel without subshells: comm messages reach the kernel on the main thread, which the cell holds."""
    import time

    from ipybridge import _core

    monkeypatch.setattr(_core, "_kernel", lambda: object())
    core.delivered_on_main = True
    connected = threading.Event()
    got_call = threading.Event()
    drop = threading.Event()

    async def page_side() -> None:
        ws = await authenticated(endpoint)
        page.wait_for(lambda i: is_marker(i, "direct"))
        connected.set()
        items, _ = await read_items(ws)
        assert items[0]["type"] == "call"
        got_call.set()
        await asyncio.get_running_loop().run_in_executor(None, drop.wait, 10)
        ws.close()  # the connection dies while the cell waits

    side = threading.Thread(target=run, args=(page_side(),))
    side.start()
    assert connected.wait(20)
    future = core.call_js("greet", ["a"], timeout=None)

    def drop_once_blocked() -> None:
        got_call.wait(20)
        for _ in range(2000):  # until the cell blocks (bounded)
            if future.blocking_on_direct:
                break
            time.sleep(0.005)
        drop.set()

    threading.Thread(target=drop_once_blocked).start()
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="greet"):
        future.result(20)  # on the main thread, as in a cell
    assert time.monotonic() - started < 10
    side.join(20)


def test_a_long_first_message_is_refused_on_its_header_without_reading_it(
    endpoint: DirectEndpoint, core: BridgeCore
) -> None:
    """Before authentication a frame may be AUTH_BYTES long, not the 9 MiB an authenticated page may send."""
    ran = threading.Event()
    core.expose(lambda data: ran.set(), "sink")

    async def scenario() -> Any:
        ws = await connect(endpoint)
        with contextlib.suppress(tornado.websocket.WebSocketClosedError, tornado.iostream.StreamClosedError):
            await ws.write_message(b"x" * (8 << 20), binary=True)
        assert await ws.read_message() is None
        return ws.close_code

    refused = endpoint.refused
    # Cut off on the frame's header: tornado says 1009 "message too big" and aborts, so the client may see
    # no close frame at all. A first message read whole and then refused gets 1008.
    assert run(scenario()) in (1009, None)
    # Counted when the connection ends (its thread sees the page's end of it, or CLOSE_GRACE_S passes): after
    # the page saw the close frame, not necessarily before.
    deadline = time.monotonic() + 10
    while endpoint.refused != refused + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert endpoint.refused == refused + 1
    assert not ran.is_set()


def test_a_page_that_reads_too_slowly_goes_back_to_the_comm_instead_of_filling_the_kernel(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_direct, "WRITE_BUFFER_BYTES", 4 << 20)
    payload = b"x" * (1 << 20)

    async def scenario() -> None:
        ws = await authenticated(endpoint)  # ...and then never reads
        page.wait_for(lambda i: is_marker(i, "direct"))
        conn = core.direct._used["v1"]
        most = 0
        for _ in range(200):  # 200 MiB: far more than the socket buffers hold
            core.emit("chunk", payload)
            core.outbox.flush()
            most = max(most, conn._buffered)
        # Closed by the kernel (tornado waits up to 5 s for the close handshake): the view is on the comm.
        page.wait_for(lambda i: is_marker(i, "comm"), timeout=30)
        assert most <= _direct.WRITE_BUFFER_BYTES
        ws.close()

    run(scenario())
    core.emit("after", 1)
    assert page.wait_for(lambda i: i.get("type") == "event" and i["name"] == "after")  # over the comm


# ------------------------------------------------- writes from any thread, dispatch over direct
async def answers(ws: Any, count: int, got: dict[int, dict[str, Any]] | None = None) -> dict[int, dict[str, Any]]:
    """Read until ``got`` (the answers read so far, by id) holds ``count`` answers. Fails on a second answer to one id."""
    got = {} if got is None else got
    while len(got) < count:
        items, _ = await read_items(ws)
        for item in items:
            if item.get("type") in ("result", "error"):
                assert item["id"] not in got, f"answered twice: {item}"
                got[item["id"]] = item
    return got


def test_frames_written_by_many_threads_arrive_whole_and_in_each_threads_order(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    """Answers are written by the threads that make them: no frame is torn or reordered, also when the socket
    is full (the page does not read for a while) and while tornado answers pings on the endpoint's thread."""
    threads, per_thread = 4, 40

    async def scenario() -> None:
        ws = await authenticated(endpoint)
        page.wait_for(lambda i: is_marker(i, "direct"))
        conn = core.direct._used["v1"]

        def writer(t: int) -> None:
            for seq in range(per_thread):
                size = (1 << 20) if seq % 7 == 0 else 100 * seq  # some frames far bigger than a socket buffer
                conn.send_packed(pack({"ipb": 1, "msgs": [{"type": "event", "t": t, "seq": seq}]}, [b"x" * size]))

        workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for _ in range(20):  # tornado's own frames (pongs) go through the same lock, on its thread
            ws.ping(b"p")
            await asyncio.sleep(0.005)
        last = dict.fromkeys(range(threads), -1)
        for _ in range(threads * per_thread):
            items, buffers = await read_items(ws)  # unpack() checks every frame is whole
            item = items[0]
            assert item["seq"] == last[item["t"]] + 1, (item, last)
            last[item["t"]] = item["seq"]
            assert buffers[0].nbytes == ((1 << 20) if item["seq"] % 7 == 0 else 100 * item["seq"])
        for w in workers:
            w.join(10)
        assert conn._buffered == 0
        ws.close()

    run(scenario())


def test_calls_over_direct_run_in_order_and_a_blocked_def_stalls_neither_the_endpoint_nor_other_views(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    release, runs = expose_slow(core)
    order: list[int] = []
    core.expose(lambda n: order.append(n) or n, "note")

    async def fast_async(n: int) -> int:
        return -n

    core.expose(fast_async)
    core.receive(*envelope({"type": "hello"}, view="v2"))

    async def scenario() -> None:
        ws = await authenticated(endpoint)
        await ws.write_message(pack(*envelope(call_item(1, "note", 1), call_item(2, "slow", 2))), binary=True)
        await ws.write_message(pack(*envelope(call_item(3, "note", 3))), binary=True)
        for _ in range(500):
            if runs:
                break
            await asyncio.sleep(0.01)
        assert runs == [2]
        # slow() holds the widget's worker: the endpoint still reads and answers what does not need it,
        # on this connection and on another view's...
        await ws.write_message(pack(*envelope(call_item(4, "fast_async", 4))), binary=True)
        got: dict[int, dict[str, Any]] = {}
        while 4 not in got:
            await answers(ws, len(got) + 1, got)
        assert got[4]["value"] == -4
        ws2 = await connect(endpoint)
        await ws2.write_message(hello(endpoint, view="v2"))
        await read_items(ws2)
        await ws2.write_message(pack(*envelope({"type": "transport", "transport": "direct"}, view="v2")), binary=True)
        await ws2.write_message(pack(*envelope(call_item(1, "fast_async", 5), view="v2")), binary=True)
        assert (await answers(ws2, 1))[1]["value"] == -5
        # ...and the page's messages are read meanwhile: a call made after 3 still runs after 3.
        await ws.write_message(pack(*envelope(call_item(5, "note", 5))), binary=True)
        assert order == [1]
        release.set()
        await answers(ws, 5, got)
        assert {i: got[i]["value"] for i in (1, 2, 3, 5)} == {1: 1, 2: 20, 3: 3, 5: 5}
        assert order == [1, 3, 5]
        ws.close()
        ws2.close()

    run(scenario())


def test_a_split_call_cut_off_by_a_drop_is_forgotten_and_sent_again_over_the_comm_runs_once(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    """Parts that came over a connection that dropped can never be finished: their memory goes with it."""
    from .test_limits import split

    sums: list[float] = []
    core.expose(lambda a: sums.append(float(a.sum())) or int(a.size), "sink")
    values = np.arange(200_000, dtype=np.float64)  # 1.6 MB, in parts of 256 KiB
    content, buffers = envelope(call_item(5, "sink", values))

    async def scenario() -> None:
        ws = await authenticated(endpoint)
        for part in split(content, buffers, 256 << 10, ident=40)[:3]:
            await ws.write_message(pack(*part), binary=True)
        for _ in range(500):
            if core.parts.pending_bytes:
                break
            await asyncio.sleep(0.01)
        assert core.parts.pending_bytes > 0  # the whole message's room is reserved
        ws.close()

    run(scenario())
    page.wait_for(lambda i: is_marker(i, "comm"))
    assert core.parts.pending_bytes == 0
    # The page sends the call again over the comm, as parts of a new message.
    for part_content, part_buffers in split(content, buffers, 256 << 10, ident=41):
        core.receive({**part_content, "direct": "lost"}, part_buffers)
    assert page.value_of(page.answer("v1", 5)) == 200_000
    assert sums == [float(values.sum())]


async def fetch_bulk(endpoint: DirectEndpoint, key: str, origin: str | None = None) -> tornado.httpclient.HTTPResponse:
    client = tornado.httpclient.AsyncHTTPClient()
    url = f"http://127.0.0.1:{endpoint.port}{_direct.BULK_PATH}{key}"
    return await client.fetch(url, headers={"Origin": origin} if origin else {}, raise_error=False)


def test_big_answers_are_fetched_once_from_the_endpoint_by_a_page_that_said_it_fetches(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    values = np.arange(_direct.BULK_BYTES // 8 + 5, dtype=np.float64)
    core.expose(lambda: [b"abc", values], "big")

    async def scenario() -> None:
        ws = await authenticated(endpoint, fetch=True)
        page.wait_for(lambda i: is_marker(i, "direct"))
        await ws.write_message(pack(*envelope(call_item(1, "big"))), binary=True)
        message = await ws.read_message()
        head_length = int.from_bytes(message[:4], "little")
        assert len(message) == 4 + head_length  # nothing inline
        content, sizes, key = json.loads(message[4:])
        assert sizes == [3, values.nbytes]
        assert (await fetch_bulk(endpoint, "not-a-key")).code == 404
        assert (await fetch_bulk(endpoint, key, origin="https://evil.example")).code == 404  # another site
        response = await fetch_bulk(endpoint, key, origin="http://127.0.0.1:8888")
        assert response.code == 200
        assert response.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8888"
        offsets, length = _direct.bulk_offsets(sizes)
        assert offsets == [0, 8]  # each buffer 8-aligned in the body
        assert len(response.body) == length
        assert response.body[:3] == b"abc"
        np.testing.assert_array_equal(np.frombuffer(response.body[8:], dtype=np.float64), values)
        assert (await fetch_bulk(endpoint, key)).code == 404  # once
        assert content["msgs"][0]["id"] == 1
        assert core.direct._used["v1"]._buffered == 0  # fetched: no longer counted as unread
        ws.close()

    run(scenario())


def test_a_def_blocked_in_call_js_result_gets_its_answer_over_the_same_connection(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    def ask(name: str) -> str:
        return "page says " + core.call_js("greet", [name], timeout=10).result(10)

    core.expose(ask)
    core.expose(lambda: "nested", "inner")

    async def scenario() -> None:
        ws = await authenticated(endpoint)
        await ws.write_message(pack(*envelope(call_item(1, "ask", "Ada"))), binary=True)
        while True:
            items, _ = await read_items(ws)
            calls = [i for i in items if i.get("type") == "call"]
            if calls:
                break
        assert calls[0]["name"] == "greet"
        # The page's handler calls back into Python (the worker is held by ask(): it serves this meanwhile)...
        await ws.write_message(pack(*envelope(call_item(2, "inner"))), binary=True)
        assert (await answers(ws, 1))[2]["value"] == "nested"
        # ...then replies on the same connection, which the endpoint reads while ask() waits.
        reply = {"type": "reply", "id": calls[0]["id"], "ok": True, "value": "hi " + calls[0]["args"][0]}
        await ws.write_message(pack(*envelope(reply)), binary=True)
        assert (await answers(ws, 1))[1]["value"] == "page says hi Ada"
        ws.close()

    run(scenario())


def test_an_interrupt_answers_a_running_def_over_the_direct_connection(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    started = threading.Event()

    def spin() -> None:
        started.set()
        while True:  # pure Python: the interrupt lands here
            pass

    core.expose(spin)
    core.expose(lambda: "after", "after")

    async def scenario() -> None:
        ws = await authenticated(endpoint)
        await ws.write_message(pack(*envelope(call_item(1, "spin"))), binary=True)
        assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        core.interrupt()
        got = await answers(ws, 1)
        assert got[1]["type"] == "error"
        assert got[1]["error"]["ename"] == "KeyboardInterrupt"
        await ws.write_message(pack(*envelope(call_item(2, "after"))), binary=True)
        assert (await answers(ws, 1))[2]["value"] == "after"
        ws.close()

    run(scenario())


def test_a_page_that_does_not_fetch_gets_big_answers_inline_and_unfetched_ones_go_with_the_connection(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    values = np.arange(_direct.BULK_BYTES // 8 + 5, dtype=np.float64)
    core.expose(lambda: values, "big")

    async def scenario() -> None:
        relayed = await authenticated(endpoint)  # through the relay: no fetch
        page.wait_for(lambda i: is_marker(i, "direct"))
        await relayed.write_message(pack(*envelope(call_item(1, "big"))), binary=True)
        items, buffers = await read_items(relayed)
        assert items[0]["id"] == 1
        np.testing.assert_array_equal(np.frombuffer(buffers[0], dtype=np.float64), values)
        relayed.close()
        page.wait_for(lambda i: is_marker(i, "comm"))

    run(scenario())
    core.receive(*envelope({"type": "hello"}, view="v2"))

    async def unfetched() -> None:
        ws = await connect(endpoint)
        await ws.write_message(hello(endpoint, view="v2"))
        await ws.read_message()
        await ws.write_message(
            pack(*envelope({"type": "transport", "transport": "direct", "fetch": True}, view="v2")), binary=True
        )
        page.wait_for(lambda i: is_marker(i, "direct", view="v2"))
        conn = core.direct._used["v2"]
        await ws.write_message(pack(*envelope(call_item(2, "big"), view="v2")), binary=True)
        message = await ws.read_message()
        key = json.loads(message[4:])[2]
        assert conn._buffered >= values.nbytes  # counted as unread until fetched
        ws.close()
        page.wait_for(lambda i: is_marker(i, "comm", view="v2"))
        for _ in range(100):
            if conn._buffered == 0:
                break
            await asyncio.sleep(0.02)
        assert conn._buffered == 0
        assert (await fetch_bulk(endpoint, key)).code == 404  # gone with its connection

    run(unfetched())


# --------------------------------------------------------------- the socket layer
class RawClient:
    """A websocket client on a plain socket, with the ``websockets`` library's sans-I/O client protocol: it sends
    what browsers may but tornado's client does not (fragmented messages, nothing at all, no handshake)."""

    def __init__(self, endpoint: DirectEndpoint) -> None:
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.sock = socket.create_connection(("127.0.0.1", endpoint.port), timeout=10)
        self.proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{endpoint.port}{_direct.PATH}"), max_size=None)
        self.proto.send_request(self.proto.connect())
        self.flush()
        self.events: list[Any] = []
        response = self.next_event()
        assert response.status_code == 101, response
        self.nonce = json.loads(self.next_event().data)["nonce"]

    def flush(self) -> None:
        for data in self.proto.data_to_send():
            if data:
                self.sock.sendall(data)

    def next_event(self) -> Any:
        """The next response or frame from the endpoint; None when the connection ended."""
        while not self.events:
            data = self.sock.recv(1 << 20)
            if not data:
                self.proto.receive_eof()
                return None
            self.proto.receive_data(data)
            self.events += self.proto.events_received()
            self.flush()
        return self.events.pop(0)

    def send_fragments(self, pieces: list[bytes], text: bool = False) -> None:
        first, *rest = pieces
        (self.proto.send_text if text else self.proto.send_binary)(first, fin=not rest)
        for i, piece in enumerate(rest):
            self.proto.send_continuation(piece, fin=i == len(rest) - 1)
        self.flush()


def test_fragmented_messages_are_joined_and_bounded_as_a_whole(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 6455 lets a client split a message into frames: the endpoint joins them, and the bound on one message
    (FRAME_BYTES) holds for the whole message, not per frame."""
    ran: list[int] = []
    core.expose(lambda data: ran.append(len(data)) or len(data), "sink")
    monkeypatch.setattr(_direct, "FRAME_BYTES", 64 << 10)
    client = RawClient(endpoint)
    hello_text = hello(endpoint).encode()
    client.send_fragments([hello_text[:10], hello_text[10:20], hello_text[20:]], text=True)
    ready = unpack(client.next_event().data)[0]["msgs"][0]
    assert is_marker(ready, "direct"), ready
    client.send_fragments([pack(*envelope({"type": "transport", "transport": "direct"}))])
    message = pack(*envelope(call_item(1, "sink", b"x" * 40_000)))
    client.send_fragments([message[:7], message[7:30_000], message[30_000:]])
    event = client.next_event()
    assert event.opcode.name == "TEXT"  # an answer without buffers: its envelope's JSON
    answer = unpack_text(event.data.decode())["msgs"][0]
    assert (answer["id"], answer["value"]) == (1, 40_000)
    # 3 x 30 kB frames: each under the bound, the message over it
    too_big = pack(*envelope(call_item(2, "sink", b"y" * 90_000)))
    client.send_fragments([too_big[:30_000], too_big[30_000:60_000], too_big[60_000:]])
    close = client.next_event()
    assert close.opcode.name == "CLOSE", close
    assert int.from_bytes(close.data[:2], "big") == 1009, close  # message too big
    assert client.next_event() is None
    assert ran == [40_000]
    page.wait_for(lambda i: is_marker(i, "comm"))


def test_answers_of_every_frame_length_class_arrive_whole(endpoint: DirectEndpoint, core: BridgeCore) -> None:
    """The kernel frames its messages itself: 7-bit, 16-bit and 64-bit payload lengths (RFC 6455, 5.2)."""
    sizes = [0, 1, 125, 126, 127, 65_535, 65_536, 65_537, 3 << 20]

    async def scenario() -> None:
        ws = await authenticated(endpoint, use=False)
        conn = core.direct._conns[ws.conn]
        for n in sizes:
            conn.send_packed(bytes([n % 251]) * n)
        for n in sizes:
            assert await ws.read_message() == bytes([n % 251]) * n, n
        ws.close()

    run(scenario())


def test_sockets_that_never_finish_a_handshake_are_closed_and_bounded(
    endpoint: DirectEndpoint, core: BridgeCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_direct, "AUTH_TIMEOUT_S", 0.5)
    monkeypatch.setattr(_direct, "MAX_HANDSHAKES", 2)
    silent = [socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) for _ in range(2)]
    for _ in range(500):  # both accepted (bounded wait)
        if endpoint.handshakes == 2:
            break
        time.sleep(0.01)
    extra = socket.create_connection(("127.0.0.1", endpoint.port), timeout=10)
    started = time.monotonic()
    assert extra.recv(10) == b""  # over the bound: closed at once
    assert time.monotonic() - started < 0.5
    for sock in silent:
        assert sock.recv(10) == b""  # closed at the deadline, without a word
        sock.close()
    extra.close()
    # Trickling the request a byte at a time does not move the deadline (it is the accept's, not per read).
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as sock:
        started = time.monotonic()
        with contextlib.suppress(OSError):  # closed while trickling
            for byte in b"GET /ipybridge/direct HTTP/1.1\r\nHost: 127.0.0.1\r\n" * 10:
                sock.send(bytes([byte]))
                time.sleep(0.02)
                if time.monotonic() - started > 3:
                    break
        assert sock.recv(10) == b""
        assert time.monotonic() - started < 2
    for request in [b"POST /ipybridge/direct HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01 not http\r\n\r\n"]:
        with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as sock:
            sock.sendall(request)
            assert not sock.recv(1 << 16).startswith(b"HTTP/1.1 101")
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as sock:
        sock.sendall(b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(1 << 16).startswith(b"HTTP/1.1 404")
    for _ in range(500):
        if endpoint.handshakes == 0:
            break
        time.sleep(0.01)
    assert endpoint.handshakes == 0

    async def still_served() -> None:
        ws = await authenticated(endpoint)
        ws.close()

    run(still_served())


def test_stopping_the_endpoint_ends_its_connections_and_their_views_go_back_to_the_comm(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage
) -> None:
    before = set(threading.enumerate())

    def ours() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t not in before and t.name.startswith("ipybridge-direct")]

    async def scenario() -> Any:
        ws = await authenticated(endpoint)
        page.wait_for(lambda i: is_marker(i, "direct"))
        assert ours()  # the connection's thread
        endpoint.stop()
        return await ws.read_message()

    assert run(scenario()) is None
    page.wait_for(lambda i: is_marker(i, "comm"))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", endpoint.port), timeout=2)
    for _ in range(500):  # its connection's threads ended (bounded wait)
        if not ours():
            break
        time.sleep(0.01)
    assert not ours()


def test_without_a_send_that_never_blocks_every_frame_goes_through_the_writing_thread(
    endpoint: DirectEndpoint, core: BridgeCore, page: FakePage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows sockets have no MSG_DONTWAIT (nor poll): the same calls, big answers and deadlines work there."""
    monkeypatch.setattr(_direct, "_DONTWAIT", None)
    monkeypatch.delattr(_direct.select, "poll", raising=False)
    monkeypatch.setattr(_direct, "AUTH_TIMEOUT_S", 0.5)
    core.expose(lambda n: b"z" * n, "blob")

    async def scenario() -> None:
        ws = await authenticated(endpoint)
        for ident, n in enumerate([10, 5 << 20, 0, 70_000], start=1):
            await ws.write_message(pack(*envelope(call_item(ident, "blob", n))), binary=True)
        got = await answers(ws, 4)
        assert sorted(got) == [1, 2, 3, 4]
        assert all(item["type"] == "result" for item in got.values()), got
        silent = await connect(endpoint)  # the authentication deadline still holds
        assert await silent.read_message() is None
        ws.close()

    run(scenario())
