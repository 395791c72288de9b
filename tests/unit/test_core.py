"""BridgeCore over a fake comm: dispatch, batching, errors, cancellation, call_js."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from typing import Any

import numpy as np
import pytest

from ipybridge import BridgeClosedError, JavaScriptError
from ipybridge._core import BridgeCore

from .fakepage import FakePage, envelope


@pytest.fixture
def page() -> FakePage:
    return FakePage()


@pytest.fixture
def core(page: FakePage) -> BridgeCore:
    core = BridgeCore(page.send)
    core.receive(*envelope({"type": "hello"}))
    yield core
    core.close()


def call(core: BridgeCore, ident: int, name: str, *args: Any, **kwargs: Any) -> None:
    core.receive(*envelope({"type": "call", "id": ident, "name": name, "args": list(args), "kwargs": kwargs}))


def test_calls_return_values_and_arrays(core: BridgeCore, page: FakePage) -> None:
    core.expose(lambda a, b=0: a + b, "add")
    core.expose(lambda x: x * 2, "double")
    call(core, 1, "add", 1, b=2)
    call(core, 2, "double", np.arange(3.0))
    assert page.value_of(page.answer("v1", 1)) == 3
    np.testing.assert_array_equal(page.value_of(page.answer("v1", 2)), [0.0, 2.0, 4.0])


def test_errors_name_the_python_exception_without_ipybridge_frames(core: BridgeCore, page: FakePage) -> None:
    def boom() -> float:
        return 1 / 0

    core.expose(boom)
    call(core, 1, "boom")
    error = page.answer("v1", 1)["error"]
    assert (error["ename"], error["evalue"]) == ("ZeroDivisionError", "division by zero")
    assert any("return 1 / 0" in line for line in error["traceback"])
    assert not any("ipybridge" in line and "_core.py" in line for line in error["traceback"])


def test_only_exposed_names_are_callable(core: BridgeCore, page: FakePage) -> None:
    core.expose(lambda: 1, "ok")
    for ident, name in enumerate(["__class__", "__init__", "_core", "os.system", "eval", "ok.__globals__"], 1):
        call(core, ident, name)
        error = page.answer("v1", ident)["error"]
        assert error["ename"] == "NameError"
        assert repr(name) in error["evalue"]


def test_wrong_arguments_are_a_type_error(core: BridgeCore, page: FakePage) -> None:
    core.expose(lambda a: a, "one")
    call(core, 1, "one", 1, 2)
    assert page.answer("v1", 1)["error"]["ename"] == "TypeError"


def test_unserializable_result_is_an_error_not_a_hang(core: BridgeCore, page: FakePage) -> None:
    core.expose(lambda: {"x": object()}, "bad")
    call(core, 1, "bad")
    error = page.answer("v1", 1)["error"]
    assert error["ename"] == "TypeError"
    assert "object" in error["evalue"]


def test_output_is_captured_per_call_and_precedes_the_result(
    core: BridgeCore, page: FakePage, capsys: pytest.CaptureFixture[str]
) -> None:
    def noisy() -> int:
        print("hello from the call")
        return 1

    core.expose(noisy)
    print("before")
    call(core, 1, "noisy")
    page.answer("v1", 1)
    print("after")
    items = [item for item, _ in page.items() if item.get("id") == 1]
    assert items[-1]["type"] == "result"
    assert "".join(i["text"] for i in items[:-1] if i["type"] == "output") == "hello from the call\n"
    assert capsys.readouterr().out == "before\nafter\n"


def test_many_calls_are_batched_into_few_messages(core: BridgeCore, page: FakePage) -> None:
    core.expose(lambda i: i, "echo")
    items = [{"type": "call", "id": i, "name": "echo", "args": [i]} for i in range(1, 201)]
    before = len(page.sent)
    core.receive(*envelope(*items))
    for i in range(1, 201):
        assert page.value_of(page.answer("v1", i)) == i
    assert len(page.sent) - before <= 3  # 200 quick answers leave together, not one message each


def test_sync_calls_run_in_order_on_one_worker_thread(core: BridgeCore, page: FakePage) -> None:
    seen: list[tuple[int, str]] = []
    core.expose(lambda i: seen.append((i, threading.current_thread().name)), "note")
    core.receive(*envelope(*[{"type": "call", "id": i, "name": "note", "args": [i]} for i in range(1, 51)]))
    page.answer("v1", 50)
    assert [i for i, _ in seen] == list(range(1, 51))
    assert {name for _, name in seen} == {"ipybridge-worker"}


def test_async_calls_run_concurrently_and_cancel(core: BridgeCore, page: FakePage) -> None:
    state = {"cancelled": False, "running": 0, "max": 0}

    async def slow(seconds: float) -> str:
        state["running"] += 1
        state["max"] = max(state["max"], state["running"])
        try:
            await asyncio.sleep(seconds)
            return "done"
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise
        finally:
            state["running"] -= 1

    core.expose(slow)
    core.receive(*envelope(*[{"type": "call", "id": i, "name": "slow", "args": [0.2]} for i in range(1, 6)]))
    call(core, 9, "slow", 30)
    for i in range(1, 6):
        assert page.value_of(page.answer("v1", i)) == "done"
    assert state["max"] >= 5
    core.receive(*envelope({"type": "cancel", "id": 9, "reason": "timeout"}))
    deadline = time.monotonic() + 5
    while not state["cancelled"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert state["cancelled"]
    assert not [item for item, _ in page.items() if item.get("id") == 9]  # a late result is dropped


def test_execute_set_get_need_permission(page: FakePage) -> None:
    core = BridgeCore(page.send, namespace={})
    core.receive(*envelope({"type": "execute", "id": 1, "code": "1"}, {"type": "get", "id": 2, "name": "x"}))
    for ident in (1, 2):
        assert page.answer("v1", ident)["error"]["ename"] == "PermissionError"
    core.close()


def test_execute_runs_like_a_cell(page: FakePage) -> None:
    ns: dict[str, Any] = {}
    core = BridgeCore(page.send, allow_execute=True, namespace=ns)
    core.receive(*envelope({"type": "execute", "id": 1, "code": "x = 20\nprint('hi')\nx * 2 + 2"}))
    value = page.value_of(page.answer("v1", 1))
    assert value == {"result": {"text/plain": "42"}, "stdout": "hi\n", "stderr": "", "display": []}
    core.receive(
        *envelope({"type": "set", "id": 2, "name": "y", "value": [1, 2]}, {"type": "get", "id": 3, "name": "y"})
    )
    assert page.value_of(page.answer("v1", 3)) == [1, 2]
    assert ns["y"] == [1, 2]
    core.receive(
        *envelope({"type": "get", "id": 4, "name": "nope"}, {"type": "set", "id": 5, "name": "a b", "value": 1})
    )
    assert page.answer("v1", 4)["error"]["ename"] == "NameError"
    assert page.answer("v1", 5)["error"]["ename"] == "ValueError"
    core.close()


def test_emit_before_any_view_is_queued_then_delivered(page: FakePage) -> None:
    core = BridgeCore(page.send)
    core.emit("early", {"n": 1})
    core.outbox.flush()  # whatever was posted would leave now: the event must not be among it
    assert not any(item["type"] == "event" for item, _ in page.items())
    core.receive(*envelope({"type": "hello"}))
    event = page.wait_for(lambda i: i["type"] == "event")
    assert event["name"] == "early"
    core.close()


def test_call_js_resolves_with_the_first_answer(core: BridgeCore, page: FakePage) -> None:
    future = core.call_js("double", [21], timeout=None)
    sent = page.wait_for(lambda i: i["type"] == "call")
    core.receive(*envelope({"type": "reply", "id": sent["id"], "ok": True, "value": 42}))
    core.receive(*envelope({"type": "reply", "id": sent["id"], "ok": True, "value": 0}, view="v2"))
    assert future.result(timeout=5) == 42


def test_call_js_errors_timeouts_and_close(core: BridgeCore, page: FakePage) -> None:
    failing = core.call_js("fail", [], timeout=None)
    sent = page.wait_for(lambda i: i["type"] == "call" and i["name"] == "fail")
    core.receive(
        *envelope({"type": "reply", "id": sent["id"], "ok": False, "error": {"name": "RangeError", "message": "nope"}})
    )
    with pytest.raises(JavaScriptError) as info:
        failing.result(timeout=5)
    assert (info.value.name, info.value.message, info.value.handler) == ("RangeError", "nope", "fail")
    assert str(info.value) == "RangeError: nope (JavaScript handler 'fail')"
    with pytest.raises(TimeoutError, match=r"^JavaScript handler 'never' did not answer within 0.1 s$"):
        core.call_js("never", [], timeout=0.1).result(timeout=5)
    pending = core.call_js("pending", [], timeout=None)
    core.close()
    with pytest.raises(BridgeClosedError, match=r"^JavaScript handler 'pending' cannot answer: the Bridge was closed$"):
        pending.result(timeout=5)


def test_call_js_missing_handler_waits_for_all_views(core: BridgeCore, page: FakePage) -> None:
    core.receive(*envelope({"type": "hello"}, view="v2"))
    future = core.call_js("only_in_v2", [], timeout=None)
    sent = page.wait_for(lambda i: i["type"] == "call")
    missing = {
        "type": "reply",
        "id": sent["id"],
        "ok": False,
        "missing": True,
        "error": {"name": "ReferenceError", "message": "no"},
    }
    core.receive(*envelope(missing))
    assert not future.done()
    core.receive(*envelope({"type": "reply", "id": sent["id"], "ok": True, "value": "from v2"}, view="v2"))
    assert future.result(timeout=5) == "from v2"


def test_call_js_future_is_awaitable(core: BridgeCore, page: FakePage) -> None:
    async def main() -> Any:
        future = core.call_js("x", [], timeout=None)
        sent = page.wait_for(lambda i: i["type"] == "call")
        core.receive(*envelope({"type": "reply", "id": sent["id"], "ok": True, "value": 7}))
        return await future

    assert asyncio.run(main()) == 7


def test_closed_core_answers_nothing_and_refuses_js_calls(page: FakePage) -> None:
    core = BridgeCore(page.send)
    core.close()
    with pytest.raises(BridgeClosedError):
        core.call_js("x", [], timeout=None).result(timeout=1)


def test_debug_stats_count_requests_and_answers_and_return_to_idle(core: BridgeCore, page: FakePage) -> None:
    core.expose(lambda x: x, "echo")
    core.expose(lambda: 1 / 0, "boom")
    core.receive(
        *envelope(
            *({"type": "call", "id": i, "name": "echo", "args": [i], "kwargs": {}} for i in range(1, 51)),
            {"type": "call", "id": 51, "name": "boom", "args": [], "kwargs": {}},
            {"type": "call", "id": 52, "name": "missing", "args": [], "kwargs": {}},
            {"type": "call", "id": 53, "name": 7},  # malformed, but answerable
        )
    )
    for ident in range(1, 54):
        page.answer("v1", ident)
    stats = core.debug_stats()
    assert stats["messages_received"] == 2  # the hello and this one
    assert stats["requests_received"] == 53
    assert stats["answers_posted"] == 53
    # The worker forgets a call just after posting its answer: poll, bounded.
    deadline = time.monotonic() + 10
    while core.debug_stats()["running"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert core.debug_stats() | {"messages_received": 0, "requests_received": 0, "answers_posted": 0} == {
        "messages_received": 0,
        "requests_received": 0,
        "answers_posted": 0,
        "running": 0,
        "js_calls": 0,
        "queued_before_view": 0,
        "views": 1,
    }


def test_answers_to_page_messages_worked_on_together_leave_together(
    core: BridgeCore, page: FakePage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two batches of calls in the kernel at once (the second arrived while the first ran): one answer
    # message, so the page's next calls leave in one message too, and batches split under load merge again.
    import ipybridge._core

    monkeypatch.setattr(ipybridge._core, "DEFERRED_FLUSH_S", 30.0)  # only the batching rule decides
    release = threading.Event()
    core.expose(lambda: release.wait(10), "held")
    core.expose(lambda x: x, "echo")
    call(core, 1, "held")
    core.receive(*envelope(*({"type": "call", "id": i, "name": "echo", "args": [i], "kwargs": {}} for i in (2, 3))))
    before = len(page.sent)
    release.set()
    page.answer("v1", 3)
    answers = [[i["id"] for i in content["msgs"] if i["type"] == "result"] for content, _ in page.sent[before:]]
    assert answers == [[1, 2, 3]]


def _cyclic_garbage(run: Any) -> int:
    """How many objects ``run()`` leaves in reference cycles (freed only by the cyclic garbage collector)."""
    import gc

    gc.collect()
    gc.disable()
    try:
        run()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found = len(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    return found


def test_calls_leave_no_reference_cycles(core: BridgeCore, page: FakePage) -> None:
    # A busy page makes thousands of calls a second: objects a call leaves in reference cycles survive into the
    # collector's oldest generation and make its full collections (a pause of the whole kernel, ~100 ms in a
    # small one) come as often as the call rate allows. Each call's objects must be freed as it ends.
    def boom() -> None:
        raise ValueError("no")

    async def later(x: int) -> int:
        await asyncio.sleep(0)
        return x

    core.expose(lambda x: x, "echo")
    core.expose(lambda: print("a line"), "talk")
    core.expose(boom)
    core.expose(later)
    ident = iter(range(1, 10**6))

    def calls(n: int) -> None:
        for _ in range(n):
            ids = [next(ident) for _ in range(4)]
            core.receive(
                *envelope(
                    {"type": "call", "id": ids[0], "name": "echo", "args": [{"a": 1, "b": "x"}]},
                    {"type": "call", "id": ids[1], "name": "talk", "args": []},
                    {"type": "call", "id": ids[2], "name": "boom", "args": []},
                    {"type": "call", "id": ids[3], "name": "later", "args": [1]},
                )
            )
            for i in ids:
                page.answer("v1", i)
        page.sent.clear()

    calls(5)  # first use: caches, threads, imports
    few, many = _cyclic_garbage(lambda: calls(5)), _cyclic_garbage(lambda: calls(55))
    assert many - few < 50, f"{many - few} objects left in cycles by 200 more calls"


# ------------------------------------------- a message of one call, on a direct connection's reading thread
class ReadingThread:
    """What a direct connection gives BridgeCore.receive as ``runner``: it runs a lone call itself when it can."""

    def run_inline(self, worker: Any, job: Any) -> bool:
        return bool(worker.run_here(job, lambda _thread: None))


def direct_call(core: BridgeCore, ident: int, name: str, *args: Any) -> None:
    item = {"type": "call", "id": ident, "name": name, "args": list(args), "kwargs": {}}
    core.receive(*envelope(item), channel="direct", runner=ReadingThread())


def test_a_lone_call_that_finds_the_worker_busy_is_answered_when_the_worker_ran_it_whatever_the_timing(
    core: BridgeCore, page: FakePage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A def waits for the page on the worker (call_js(...).result()); the page calls another def meanwhile.

    The worker runs the second call, nested, while the first waits. Its answer must leave even when the worker
    ran it before the reading thread that submitted it got the CPU back (here: it waits for that on purpose).
    """
    from ipybridge import _runtime

    page_reply: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def ask() -> str:
        _runtime.wait_serving(page_reply, 10)
        return "asked"

    core.expose(ask)
    core.expose(lambda: "pong", "ping")
    call(core, 1, "ask")  # over the comm: it runs on the worker and waits there
    deadline = time.monotonic() + 10
    while core._worker.running() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert core._worker.running() is not None  # ask() holds the worker
    submit = core._worker.submit

    def submit_then_lose_the_cpu(job: Any) -> None:
        submit(job)
        end = time.monotonic() + 10
        while ("v1", 2) in core._running and time.monotonic() < end:
            time.sleep(0.001)

    monkeypatch.setattr(core._worker, "submit", submit_then_lose_the_cpu)
    direct_call(core, 2, "ping")
    pong = page.wait_for(lambda i: i.get("id") == 2 and i["type"] in ("result", "error"), timeout=2)
    assert page.value_of(pong) == "pong"  # not held until ask() returns
    page_reply.set_result(None)
    assert page.value_of(page.answer("v1", 1)) == "asked"


def test_a_lone_call_of_a_callable_that_cannot_be_inspected_is_answered_not_dropped(
    core: BridgeCore, page: FakePage
) -> None:
    class Odd:
        def __call__(self) -> int:
            return 1

        def __getattr__(self, name: str) -> Any:
            raise KeyError(name)  # inspect.iscoroutinefunction looks up attributes

    core.expose(Odd(), "odd")
    direct_call(core, 1, "odd")  # must not raise out of receive (that would end the connection)
    assert page.answer("v1", 1)["type"] in ("result", "error")


def test_exposing_a_name_again_lets_the_function_it_replaces_go(core: BridgeCore, page: FakePage) -> None:
    import gc
    import weakref

    class Big:
        pass

    def make() -> tuple[Any, weakref.ref[Big]]:
        big = Big()
        return (lambda: id(big)), weakref.ref(big)

    fn, ref = make()
    core.expose(fn, "f")
    direct_call(core, 1, "f")
    page.answer("v1", 1)
    core.expose(lambda: 0, "f")  # the cell that defined it ran again
    del fn
    gc.collect()
    assert ref() is None
