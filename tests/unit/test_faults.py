"""Calls that hang or are interrupted never wedge the bridge (BridgeCore over a fake comm)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from ipybridge import _runtime
from ipybridge._core import BridgeCore

from .fakepage import FakePage, envelope


@pytest.fixture
def page() -> FakePage:
    return FakePage()


@pytest.fixture
def core(page: FakePage) -> Iterator[BridgeCore]:
    core = BridgeCore(page.send)
    core.receive(*envelope({"type": "hello"}))
    yield core
    core.close()


def call(core: BridgeCore, ident: int, name: str, *args: object) -> None:
    core.receive(*envelope({"type": "call", "id": ident, "name": name, "args": list(args)}))


def wait_until(condition: object, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.01)  # polling, bounded by the deadline


def test_a_timed_out_call_stuck_in_c_does_not_block_later_calls(core: BridgeCore, page: FakePage) -> None:
    release = threading.Event()
    threads: list[str] = []
    core.expose(lambda: release.wait(), "hang")  # blocked in C, like time.sleep
    core.expose(lambda: threads.append(threading.current_thread().name) or "next", "other")
    call(core, 1, "hang")
    wait_until(lambda: core._worker.running() is not None, "the hung call starting")
    core.receive(*envelope({"type": "cancel", "id": 1, "reason": "timeout"}))
    call(core, 2, "other")
    assert page.value_of(page.answer("v1", 2)) == "next"
    assert threads == ["ipybridge-worker-2"]
    # The abandoned call finishes later; its answer is dropped, the new thread keeps serving.
    release.set()
    call(core, 3, "other")
    assert page.value_of(page.answer("v1", 3)) == "next"
    assert not [i for i, _ in page.items() if i.get("id") == 1 and i["type"] in ("result", "error")]


def test_interrupt_stops_a_python_loop_and_rejects_queued_calls(core: BridgeCore, page: FakePage) -> None:
    state = {"stopped_by": "", "queued_ran": False}

    def spin() -> None:
        try:
            while True:
                pass
        except KeyboardInterrupt:
            state["stopped_by"] = "KeyboardInterrupt"
            raise

    def queued() -> None:
        state["queued_ran"] = True

    core.expose(spin)
    core.expose(queued)
    core.expose(lambda: 42, "answer")
    call(core, 1, "spin")
    call(core, 2, "queued")
    wait_until(lambda: core._worker.running() is not None, "spin starting")
    _runtime.kernel_interrupted()
    for ident in (1, 2):
        error = page.answer("v1", ident)["error"]
        assert error["ename"] == "KeyboardInterrupt"
    wait_until(lambda: state["stopped_by"] == "KeyboardInterrupt", "the loop seeing KeyboardInterrupt")
    call(core, 3, "answer")
    assert page.value_of(page.answer("v1", 3)) == 42
    assert state["queued_ran"] is False
    assert core._worker.threads_started == 1  # Python code stops at once: no new thread needed
    # Exactly one answer per call.
    answers = [i for i, _ in page.items() if i["type"] in ("result", "error")]
    assert sorted(i["id"] for i in answers) == [1, 2, 3]


def test_interrupt_cancels_an_async_call(core: BridgeCore, page: FakePage) -> None:
    state = {"cancelled": False}

    async def slow() -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise
        return "late"

    core.expose(slow)
    call(core, 1, "slow")
    wait_until(lambda: ("v1", 1) in core._running, "the task starting")
    _runtime.kernel_interrupted()
    assert page.answer("v1", 1)["error"]["ename"] == "KeyboardInterrupt"
    wait_until(lambda: state["cancelled"], "the task being cancelled")


def test_interrupt_leaves_a_call_stuck_in_c_behind(core: BridgeCore, page: FakePage) -> None:
    release = threading.Event()
    core.expose(lambda: release.wait(), "hang")
    core.expose(lambda: "ok", "ok")
    call(core, 1, "hang")
    wait_until(lambda: core._worker.running() is not None, "the hung call starting")
    _runtime.kernel_interrupted()
    assert page.answer("v1", 1)["error"]["ename"] == "KeyboardInterrupt"
    call(core, 2, "ok")
    assert page.value_of(page.answer("v1", 2)) == "ok"
    assert core._worker.threads_started == 2
    release.set()


def test_interrupt_with_nothing_running_changes_nothing(core: BridgeCore, page: FakePage) -> None:
    core.expose(lambda: "ok", "ok")
    handled = _runtime.interrupts_handled
    _runtime.kernel_interrupted()
    wait_until(lambda: _runtime.interrupts_handled > handled, "the interrupt being handled")
    call(core, 1, "ok")
    assert page.value_of(page.answer("v1", 1)) == "ok"
    assert core._worker.threads_started == 1
