"""Message-size limit and split messages (``part`` items), at the dispatcher, plus hostile-page holes
found by the Voila e2e tests (tests/e2e/test_voila.py)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipybridge._core import BridgeCore
from ipybridge._protocol import DEFAULT_MAX_MESSAGE_BYTES, MAX_PENDING_MESSAGES, PartAssembler
from ipybridge.player.sources import MAX_LOOKAHEAD, FrameOutOfRange, FrameValues
from ipybridge.player.widget import PlayerCore

from .fakepage import FakePage, envelope

SHARED = json.loads((Path(__file__).parents[1] / "shared" / "wire_examples.json").read_text())
LIMIT = 1 << 20  # small limits keep the tests fast; the logic does not depend on the size


@pytest.fixture
def page() -> FakePage:
    return FakePage()


@pytest.fixture
def core(page: FakePage):
    core = BridgeCore(page.send)
    core.message_limit = lambda: LIMIT
    core.receive(*envelope({"type": "hello"}))
    yield core
    core.close()


def split(content: dict[str, Any], buffers: list[bytes], part_bytes: int, ident: int, view: str = "v1") -> list[Any]:
    """What js/protocol.js splitIntoParts sends: one (content, [chunk]) per part."""
    text = json.dumps(content, separators=(",", ":")).encode()
    stream = b"".join([text, *buffers])
    count = max(1, math.ceil(len(stream) / part_bytes))
    ids = [i["id"] for i in content["msgs"] if i.get("type") in ("call", "execute", "set", "get")]
    parts = []
    for seq in range(count):
        item: dict[str, Any] = {"type": "part", "view": view, "id": ident, "seq": seq, "count": count}
        if seq == 0:
            item |= {"sizes": [len(text), *map(len, buffers)], "ids": ids}
        parts.append(({"ipb": 1, "msgs": [item]}, [stream[seq * part_bytes : (seq + 1) * part_bytes]]))
    return parts


def test_the_shared_example_joins_back_into_its_message() -> None:
    for example in SHARED["parts"]:
        assembler = PartAssembler()
        results = [assembler.add(part["item"], [bytes.fromhex(part["chunk"])], LIMIT) for part in example["parts"]]
        assert all(refusals == [] for _, refusals in results)
        assert all(whole is None for whole, _ in results[:-1])
        content, buffers = results[-1][0]  # type: ignore[misc]
        assert content == json.loads(example["json"])
        assert [bytes(b).hex() for b in buffers] == example["buffers"]
        assert assembler.pending_bytes == 0


def test_a_split_call_is_joined_and_answered(core: BridgeCore, page: FakePage) -> None:
    core.expose(lambda a: [a.dtype.name, a.shape[0], float(a.sum())], "total")
    data = np.arange(50_000, dtype=np.float64)
    content, buffers = envelope({"type": "call", "id": 7, "name": "total", "args": [data], "kwargs": {}})
    parts = split(content, buffers, 64 << 10, ident=99)
    assert len(parts) > 5
    for part in parts:
        core.receive(*part)
    assert page.value_of(page.answer("v1", 7)) == ["float64", 50_000, float(data.sum())]
    assert core.parts.pending_bytes == 0


def test_a_split_message_over_the_limit_is_refused_at_its_first_part(core: BridgeCore, page: FakePage) -> None:
    ran = []
    core.expose(lambda b: ran.append(b), "keep")
    content, buffers = envelope(
        {"type": "call", "id": 1, "name": "keep", "args": [b"x" * (LIMIT + 1)], "kwargs": {}},
        {"type": "call", "id": 2, "name": "keep", "args": [1], "kwargs": {}},
    )
    parts = split(content, buffers, 256 << 10, ident=50)
    core.receive(*parts[0])
    for answer in (page.answer("v1", 1), page.answer("v1", 2)):
        assert answer["error"]["ename"] == "MessageTooLargeError"
        assert "1.0 MiB" in answer["error"]["evalue"]
        assert "max_message_bytes" in answer["error"]["evalue"]
    assert core.parts.pending_bytes == 0  # nothing was kept
    for part in parts[1:]:
        core.receive(*part)  # the rest is dropped without a word
    core.expose(lambda: "alive", "ping")
    core.receive(*envelope({"type": "call", "id": 3, "name": "ping", "args": [], "kwargs": {}}))
    assert page.value_of(page.answer("v1", 3)) == "alive"
    assert ran == []
    assert len([i for i, _ in page.items() if i.get("type") == "error"]) == 2


def test_a_whole_message_with_buffers_over_the_limit_is_refused(core: BridgeCore, page: FakePage) -> None:
    core.expose(lambda b: len(b), "size")
    core.receive(*envelope({"type": "call", "id": 4, "name": "size", "args": [b"y" * (LIMIT + 1)], "kwargs": {}}))
    assert page.answer("v1", 4)["error"]["ename"] == "MessageTooLargeError"
    core.receive(*envelope({"type": "call", "id": 5, "name": "size", "args": [b"y" * 10], "kwargs": {}}))
    assert page.value_of(page.answer("v1", 5)) == 10
    core.outbox.flush()
    stats = core.debug_stats()  # a refused request still counts as received and answered
    assert stats["requests_received"] == stats["answers_posted"] == 2


def test_unfinished_messages_stay_bounded_and_the_oldest_is_answered(core: BridgeCore, page: FakePage) -> None:
    """A hostile page starts many big messages and never finishes them."""
    for n in range(40):
        content, buffers = envelope({"type": "call", "id": 1000 + n, "name": "x", "args": [b"z" * (LIMIT // 2)]})
        core.receive(*split(content, buffers, 4096, ident=n)[0])
        assert core.parts.pending_bytes <= 2 * LIMIT
        assert len(core.parts._partials) <= MAX_PENDING_MESSAGES
    evicted = page.answer("v1", 1000)["error"]
    assert evicted["ename"] == "MessageTooLargeError"
    assert "unfinished" in evicted["evalue"]


def test_parts_out_of_order_too_long_or_not_json_are_protocol_errors(core: BridgeCore, page: FakePage) -> None:
    content, buffers = envelope({"type": "call", "id": 11, "name": "x", "args": [b"a" * 5000]})
    parts = split(content, buffers, 1024, ident=1)
    core.receive(*parts[0])
    core.receive(*parts[2])  # skipped part 1
    assert page.answer("v1", 11)["error"]["ename"] == "ProtocolError"

    content, buffers = envelope({"type": "call", "id": 12, "name": "x", "args": [b"a" * 5000]})
    parts = split(content, buffers, 1024, ident=2)
    core.receive(*parts[0])
    core.receive(parts[1][0], [parts[1][1][0] * 10])  # more bytes than declared
    assert page.answer("v1", 12)["error"]["ename"] == "ProtocolError"

    deep = b"[" * 100_000 + b"]" * 100_000  # not even Python's json can read it: no crash, an answer
    part = {"type": "part", "view": "v1", "id": 3, "seq": 0, "count": 1, "sizes": [len(deep)], "ids": [13]}
    core.receive({"ipb": 1, "msgs": [part]}, [deep])
    assert page.answer("v1", 13)["error"]["ename"] == "ProtocolError"

    bad_parts = [
        {"type": "part", "view": "v1", "id": -1, "seq": 0, "count": 1, "sizes": [1]},
        {"type": "part", "view": "v1", "id": 4, "seq": 2, "count": 1, "sizes": [1]},
        {"type": "part", "view": "v1", "id": 4, "seq": 0, "count": 1, "sizes": "many"},
        {"type": "part", "view": "v1", "id": 4, "seq": 0, "count": 1, "sizes": [-5]},
        {"type": "part", "view": 5, "id": 4, "seq": 0, "count": 1, "sizes": [1]},
    ]
    for bad in bad_parts:
        core.receive({"ipb": 1, "msgs": [bad]}, [b"x"])
    page.wait_for(lambda i: len([j for j, _ in page.items() if j["type"] == "protocol_error"]) == len(bad_parts))
    assert core.parts.pending_bytes == 0


def test_a_views_unfinished_parts_are_dropped_on_bye_and_close(core: BridgeCore) -> None:
    content, buffers = envelope({"type": "call", "id": 1, "name": "x", "args": [b"a" * 5000]})
    core.receive(*split(content, buffers, 1024, ident=1)[0])
    assert core.parts.pending_bytes > 0
    core.receive(*envelope({"type": "bye"}))
    assert core.parts.pending_bytes == 0
    core.receive(*split(content, buffers, 1024, ident=2)[0])
    core.close()
    assert core.parts.pending_bytes == 0


def test_welcome_tells_the_page_the_limit() -> None:
    page = FakePage()
    core = BridgeCore(page.send)
    core.receive(*envelope({"type": "hello"}))
    assert page.wait_for(lambda i: i["type"] == "welcome")["limits"] == {"message_bytes": DEFAULT_MAX_MESSAGE_BYTES}
    core.close()


def test_the_limit_is_set_per_class_or_per_widget_and_the_views_are_told() -> None:
    from ipybridge import Bridge

    first, second = Bridge(), Bridge()
    page = FakePage()
    first._core.outbox._send = page.send
    try:
        assert first._core.message_limit() == DEFAULT_MAX_MESSAGE_BYTES
        Bridge.max_message_bytes = 256 << 20  # every Bridge
        assert first._core.message_limit() == second._core.message_limit() == 256 << 20
        first._core.receive(*envelope({"type": "hello"}))
        first.max_message_bytes = 2 << 20  # one Bridge; its views learn it at once
        assert second._core.message_limit() == 256 << 20
        page.wait_for(lambda i: i["type"] == "welcome" and i["limits"]["message_bytes"] == 2 << 20)
        with pytest.raises(TypeError):
            first.max_message_bytes = "64MB"
        with pytest.raises(ValueError, match="at least 1024"):
            first.max_message_bytes = 0
        assert first.max_message_bytes == 2 << 20
    finally:
        del Bridge.max_message_bytes  # back to BridgeWidget's default
        first.close()
        second.close()
    assert Bridge().max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES


def test_player_frame_ids_must_be_request_ids() -> None:
    page = FakePage()
    core = PlayerCore(page.send)
    core.receive(*envelope({"type": "hello"}))
    for ident in (-4, 2**60, True, 2.5):
        core.receive(*envelope({"type": "frame", "id": ident, "index": 0, "gen": 0, "codec": "raw", "quality": 80}))
    page.wait_for(lambda i: len([j for j, _ in page.items() if j["type"] == "protocol_error"]) == 4)
    assert not [i for i, _ in page.items() if i["type"] in ("frame", "frame_error")]
    core.close()


def test_an_endless_iterator_is_never_advanced_far_for_one_request() -> None:
    values = FrameValues(itertools.count())
    assert values[10] == 10
    with pytest.raises(FrameOutOfRange, match="out of reach"):
        values[10**30]
    assert values[11 + MAX_LOOKAHEAD - 1] == 11 + MAX_LOOKAHEAD - 1  # within reach of what was produced


part_fields = st.fixed_dictionaries(
    {"type": st.just("part")},
    optional={
        "view": st.sampled_from(["v1", "v2"]) | st.integers() | st.none(),
        "id": st.integers(-2, 5) | st.floats() | st.text(max_size=2),
        "seq": st.integers(-1, 4) | st.none(),
        "count": st.integers(-1, 5) | st.text(max_size=2),
        "sizes": st.lists(st.integers(-5, 3 * LIMIT), max_size=4) | st.text(max_size=3),
        "ids": st.lists(st.integers(-2, 2**60) | st.text(max_size=2), max_size=4) | st.integers(),
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(st.tuples(part_fields, st.lists(st.binary(max_size=64), max_size=2)), max_size=30))
def test_any_parts_never_raise_and_stay_bounded(parts: list[tuple[dict[str, Any], list[bytes]]]) -> None:
    page = FakePage()
    core = BridgeCore(page.send)
    core.message_limit = lambda: LIMIT
    try:
        for item, buffers in parts:
            core.receive({"ipb": 1, "msgs": [item]}, buffers)  # must not raise
            assert core.parts.pending_bytes <= 2 * LIMIT
            assert len(core.parts._partials) <= MAX_PENDING_MESSAGES
    finally:
        core.close()


def test_an_array_from_a_split_message_is_writable_and_needs_no_copy_after_joining(
    core: BridgeCore, page: FakePage
) -> None:
    seen: list[np.ndarray] = []
    core.expose(lambda a: seen.append(a) or float(a.sum()), "keep")
    values = np.arange(40_000, dtype=np.float64)
    content, buffers = envelope({"type": "call", "id": 9, "name": "keep", "args": [values], "kwargs": {}})
    for part in split(content, buffers, 50_000, ident=5):
        core.receive(*part)
    assert page.value_of(page.answer("v1", 9)) == float(values.sum())
    (received,) = seen
    np.testing.assert_array_equal(received, values)
    assert received.flags.writeable
    assert received.flags.aligned
    assert not received.flags.owndata  # it uses the joined buffer made for it, not a second copy
    received[0] = 7.0  # and the function may change it


def test_each_part_is_copied_into_its_message_as_it_arrives_and_not_kept() -> None:
    """The receiving socket may reuse a part's memory once it is handed over: the joined message owns its bytes."""
    assembler = PartAssembler()
    values = np.arange(30_000, dtype=np.float64)
    content, buffers = envelope({"type": "call", "id": 1, "name": "f", "args": [values], "kwargs": {}})
    results = []
    for part_content, (chunk,) in split(content, buffers, 40_000, ident=3):
        received = bytearray(chunk)  # the socket's buffer for this part...
        results.append(assembler.add(part_content["msgs"][0], [received], LIMIT))
        received[:] = b"\xff" * len(received)  # ...reused for the next message
    joined, refusals = results[-1]
    assert refusals == []
    assert joined is not None
    assert joined[0] == content
    np.testing.assert_array_equal(np.frombuffer(joined[1][0], dtype=np.float64), values)


def test_a_views_unfinished_messages_from_one_channel_can_be_forgotten_and_the_others_kept() -> None:
    assembler = PartAssembler()
    content, buffers = envelope({"type": "call", "id": 1, "name": "f", "args": [b"x" * 5000], "kwargs": {}})
    first_direct = split(content, buffers, 1000, ident=1)[0]
    first_comm = split(content, buffers, 1000, ident=2)[0]
    assembler.add(first_direct[0]["msgs"][0], first_direct[1], LIMIT, "direct")
    assembler.add(first_comm[0]["msgs"][0], first_comm[1], LIMIT, "comm")
    reserved = assembler.pending_bytes
    assembler.drop_view("v1", "direct")
    assert assembler.pending_bytes == reserved // 2  # the comm's message goes on
    assembler.drop_view("v1")
    assert assembler.pending_bytes == 0
