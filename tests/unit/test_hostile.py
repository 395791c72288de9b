"""Random and malformed messages thrown at the dispatcher (hypothesis).

Whatever arrives: no exception escapes into the kernel, every request that
can be answered gets exactly one structured answer, and nothing that was not
exposed runs.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipybridge._core import BridgeCore

from .fakepage import FakePage

REQUESTS = ("call", "execute", "set", "get")
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_any = st.recursive(
    json_scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=15,
)
names = st.sampled_from(
    ["ok", "__class__", "__init__", "_private", "os.system", "eval", "ok.__globals__", "", "x" * 300]
) | st.text(max_size=12)
ids = st.integers(min_value=-5, max_value=2**60) | st.floats() | st.text(max_size=3) | st.none() | st.booleans()
tags = st.fixed_dictionaries(
    {"$ipb": st.sampled_from(["float", "bigint", "bytes", "ndarray", "dict", "pickle"])},
    optional={"v": json_any, "i": st.integers(-2, 5), "dtype": st.text(max_size=8), "shape": json_any},
)
items = st.fixed_dictionaries(
    {
        "type": st.sampled_from([*REQUESTS, "cancel", "reply", "hello", "bye", "frame", "nonsense"])
        | st.text(max_size=6)
    },
    optional={
        "view": st.just("v1") | json_scalars,
        "id": ids,
        "name": names | json_scalars,
        "args": st.lists(json_any | tags, max_size=3) | json_any,
        "kwargs": st.dictionaries(st.text(max_size=5), json_any | tags, max_size=3) | json_any,
        "code": st.text(max_size=20) | json_scalars,
        "value": json_any | tags,
        "ok": json_scalars,
        "reason": st.text(max_size=8),
    },
)
envelopes = st.one_of(
    st.fixed_dictionaries({"ipb": st.just(1), "msgs": st.lists(items, max_size=6)}),
    st.fixed_dictionaries({"ipb": json_scalars, "msgs": json_any}),
    json_any,
)


def answerable(item: Any) -> tuple[str, int] | None:
    if not isinstance(item, dict) or item.get("type") not in REQUESTS:
        return None
    view, ident = item.get("view"), item.get("id")
    if isinstance(view, str) and isinstance(ident, int) and not isinstance(ident, bool) and 0 <= ident < 2**53:
        return view, ident
    return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelope=envelopes, buffers=st.lists(st.binary(max_size=16), max_size=3))
def test_any_message_gets_structured_answers_and_runs_nothing_unexposed(envelope: Any, buffers: list[bytes]) -> None:
    page = FakePage()
    ran: list[Any] = []
    core = BridgeCore(page.send, namespace={"secret": 1})
    core.expose(lambda *a, **k: ran.append((a, k)) or "fine", "ok")
    wire = json.loads(json.dumps(envelope))  # only what JSON can carry reaches the kernel
    try:
        core.receive(wire, buffers)  # must not raise, whatever it is
        valid = (
            isinstance(wire, dict)
            and type(wire.get("ipb")) is int
            and wire["ipb"] == 1
            and isinstance(wire.get("msgs"), list)
        )
        msgs = wire["msgs"] if valid else []
        expected = {key for item in msgs if (key := answerable(item))}
        for view, ident in expected:
            answer = page.wait_for(
                lambda i, v=view, n=ident: i.get("view") == v and i.get("id") == n and i["type"] in ("result", "error")
            )
            if answer["type"] == "error":
                assert set(answer["error"]) == {"ename", "evalue", "traceback"}
                assert answer["error"]["ename"]
        calls_to_ok = sum(
            1 for item in msgs if isinstance(item, dict) and item.get("type") == "call" and item.get("name") == "ok"
        )
        assert len(ran) <= calls_to_ok  # nothing but the exposed function ever ran
        if not valid:
            page.wait_for(lambda i: i["type"] == "protocol_error")  # a refused envelope is said so
        assert core.namespace == {"secret": 1}  # no execute/set without permission
    finally:
        core.close()
