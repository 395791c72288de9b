"""Where a cell may wait for the page: recognised hosts, with a fake marimo runtime."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import types

import pytest

from ipybridge._core import BridgeCore

from .fakepage import FakePage, envelope


@pytest.fixture
def fake_marimo(monkeypatch: pytest.MonkeyPatch) -> threading.Thread:
    """A marimo whose kernel runs cells (and delivers page messages) on the current thread."""
    cell_thread = threading.current_thread()
    module = types.ModuleType("marimo")
    module.running_in_notebook = lambda: threading.current_thread() is cell_thread  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "marimo", module)
    return cell_thread


def test_blocking_in_a_marimo_cell_fails_at_once(fake_marimo: threading.Thread) -> None:
    page = FakePage()
    core = BridgeCore(page.send)
    try:
        core.receive(*envelope({"type": "hello"}))  # delivered on the cell thread, as marimo does
        future = core.call_js("title", [], 5)
        start = time.monotonic()
        with pytest.raises(RuntimeError, match="cannot wait in a marimo cell for the page's answer"):
            future.result(timeout=5)

        async def awaiting() -> None:
            await future

        with pytest.raises(RuntimeError, match="marimo delivers widget messages to the kernel only between cells"):
            asyncio.run(awaiting())
        assert time.monotonic() - start < 1
    finally:
        core.close()


def test_a_thread_started_by_a_marimo_cell_may_block(fake_marimo: threading.Thread) -> None:
    """Off the cell's thread the answer can arrive: a helper thread waits for it as usual."""
    page = FakePage()
    core = BridgeCore(page.send)
    try:
        core.receive(*envelope({"type": "hello"}))
        future = core.call_js("title", [], 5)
        outcome: list[object] = []
        errors: list[BaseException] = []

        def wait() -> None:
            try:
                outcome.append(future.result(timeout=0.2))
            except BaseException as exc:
                errors.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        waiter.join(5)
        assert not outcome
        assert [type(e) for e in errors] == [TimeoutError]  # it waited: no RuntimeError
    finally:
        core.close()


def test_outside_any_host_blocking_is_allowed() -> None:
    page = FakePage()
    core = BridgeCore(page.send)
    try:
        core.receive(*envelope({"type": "hello"}))
        with pytest.raises(TimeoutError):
            core.call_js("title", [], None).result(timeout=0.1)
    finally:
        core.close()
