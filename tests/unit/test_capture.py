"""Per-call capture on an ipykernel-like stream: routing survives IPython's own patching of ``write``."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from ipybridge import _capture


class FakeOutStream:
    """The parts of ipykernel's OutStream that capture relies on."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.written: list[str] = []
        self.pub_thread = object()
        self.session = object()

    def write(self, text: str) -> int:
        self.written.append(text)
        return len(text)

    def set_thread_parent(self, parent: Any) -> None:
        """Present on OutStream; unused here."""


@pytest.fixture
def streams(monkeypatch: pytest.MonkeyPatch) -> Callable[[], tuple[FakeOutStream, FakeOutStream]]:
    """Call it in the test body (pytest sets its own sys.stdout when the test's call phase starts)."""

    def install() -> tuple[FakeOutStream, FakeOutStream]:
        out, err = FakeOutStream("stdout"), FakeOutStream("stderr")
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)
        return out, err

    return install


def tee(stream: Any, seen: list[str]) -> Callable[[], None]:
    """What IPython 9's ``run_cell`` does around a cell: wrap ``stream.write``, put it back after."""
    original = stream.write

    def write(text: str) -> Any:
        seen.append(text)
        return original(text)

    stream.write = write

    def restore() -> None:
        stream.write = original

    return restore


def test_capture_routes_by_context_and_keeps_order_across_streams(
    streams: Callable[[], tuple[FakeOutStream, FakeOutStream]],
) -> None:
    out, err = streams()
    got: list[tuple[str, str]] = []
    print("cell before")
    with _capture.capture(lambda stream, text: got.append((stream, text))):
        print("one")
        print("two", file=sys.stderr)
        print("three")
    print("cell after")
    assert got == [
        ("stdout", "one"),
        ("stdout", "\n"),
        ("stderr", "two"),
        ("stderr", "\n"),
        ("stdout", "three"),
        ("stdout", "\n"),
    ]
    assert "".join(out.written) == "cell before\ncell after\n"
    assert err.written == []


def test_routing_survives_a_tee_that_started_before_and_ends_after(
    streams: Callable[[], tuple[FakeOutStream, FakeOutStream]],
) -> None:
    out, _ = streams()
    history: list[str] = []
    restore = tee(out, history)  # a cell starts before any call ever captured
    got: list[str] = []
    with _capture.capture(lambda _s, text: got.append(text)):
        print("call line")
    print("cell line")
    restore()  # the cell ends: IPython puts back the write it read at its start
    with _capture.capture(lambda _s, text: got.append(text)):
        print("later call line")
    restore_again = tee(out, history)  # the next cell
    with _capture.capture(lambda _s, text: got.append(text)):
        print("call during the next cell")
    restore_again()
    print("idle")
    assert "".join(got) == "call line\nlater call line\ncall during the next cell\n"
    assert "".join(out.written) == "cell line\nidle\n"
    assert "".join(history) == "cell line\n"  # the cell's history keeps the cell's lines only


def test_other_threads_and_other_contexts_are_not_captured(
    streams: Callable[[], tuple[FakeOutStream, FakeOutStream]],
) -> None:
    out, _ = streams()
    got: list[str] = []
    started = threading.Event()
    release = threading.Event()

    def cell_thread() -> None:
        started.set()
        release.wait(5)
        print("from a thread")

    worker = threading.Thread(target=cell_thread)
    worker.start()
    started.wait(5)
    with _capture.capture(lambda _s, text: got.append(text)):
        release.set()
        worker.join(5)
        print("captured")
    assert "".join(got) == "captured\n"
    assert "".join(out.written) == "from a thread\n"
