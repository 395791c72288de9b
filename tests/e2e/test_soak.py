"""A scaled-down soak (benchmarks/soak.py): thousands of concurrent calls and a few hundred frames.

Correctness only, never time: every call answered exactly once with its own
answer, nothing lost, every frame painted in order.
"""

from __future__ import annotations

from typing import Any

from benchmarks.soak import CANVAS, Soak
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from .harness import Jupyter

CALLS = 3000
IN_FLIGHT = 64
FRAMES = 300
#: Bound of the waits below; generous for 2 loaded cores (a healthy run takes seconds).
LONG_MS = 300_000


def wait_or_report(soak: Soak, condition: str, what: str, state: Any) -> None:
    try:
        soak.page.wait_for_function(condition, timeout=LONG_MS, polling=200)
    except PlaywrightTimeoutError:
        raise AssertionError(f"{what} did not finish within {LONG_MS / 1000:.0f} s: {state()}") from None


def test_soak_calls_answered_once_each_and_frames_painted_in_order(jupyter: Jupyter, ui: str) -> None:
    soak = Soak(jupyter, frames=FRAMES, cache_mb=8, log=print, ui=ui)

    soak.start_calls(CALLS, IN_FLIGHT)
    # A lost call keeps its worker waiting forever: the run never finishes and the report says how many.
    wait_or_report(soak, "() => window.__soak.state.t1 !== null", "the calls", soak.call_snapshot)
    calls = soak.call_snapshot()
    assert calls["examples"] == []  # wrong or rejected answers, with what came back
    assert (calls["made"], calls["correct"], calls["wrong"], calls["rejected"]) == (CALLS, CALLS, 0, 0)
    assert calls["diagnostics"] == {"unmatchedAnswers": 0, "pending": 0}  # none answered twice, none pending
    kernel = soak.page.evaluate("() => window.__soakProbe()")["bridge"]
    assert (kernel["requests_received"], kernel["answers_posted"]) == (CALLS, CALLS)

    soak.show_player()
    soak.play()
    wait_or_report(
        soak, f"() => document.querySelector('{CANVAS}').dataset.frame === '{FRAMES - 1}'", "playback", soak.paints
    )
    paints = soak.paints()
    assert paints["odd"] == []  # repeated or skipped frames, as [previous, painted, ms]
    assert (paints["writes"], paints["inOrder"], paints["last"]) == (FRAMES - 1, FRAMES - 1, FRAMES - 1)
