"""SerialWorker.run_here: a job run on the thread that received it, with the worker's semantics intact.

The direct transport's reading thread runs a tiny call itself when the widget's
worker is idle (one thread wake per call instead of two). These tests hold it to
what a queued job guarantees: one job at a time, in order, interruptible, given
up on when stuck, and able to wait for the page (wait_serving) without blocking
the worker or the thread it borrowed.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ipybridge import _runtime
from ipybridge._runtime import SerialWorker


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def worker() -> Iterator[SerialWorker]:
    worker = SerialWorker("test-worker")
    yield worker
    worker.stop()


def test_an_idle_worker_runs_the_job_on_the_calling_thread(worker: SerialWorker) -> None:
    ran: list[str] = []
    assert worker.run_here(lambda: ran.append(threading.current_thread().name), lambda _thread: None)
    assert ran == [threading.current_thread().name]
    assert worker.jobs_run_here == 1
    assert worker.threads_started == 0  # no worker thread was needed
    assert worker.running() is None


def test_a_busy_worker_runs_nothing_here_and_the_order_holds(worker: SerialWorker) -> None:
    """A job running or queued on the worker: run_here declines, and the caller queues behind it."""
    order: list[str] = []
    gate = threading.Event()
    worker.submit(lambda: (gate.wait(10), order.append("queued first")))
    wait_until(lambda: worker.running() is not None, "the first job starting")
    assert not worker.run_here(lambda: order.append("here"), lambda _thread: None)
    worker.submit(lambda: order.append("queued second"))
    gate.set()
    wait_until(lambda: len(order) == 2, "both queued jobs")
    assert order == ["queued first", "queued second"]
    wait_until(lambda: worker.running() is None, "the worker to be idle")
    assert worker.run_here(lambda: order.append("here"), lambda _thread: None)
    assert order[-1] == "here"


def test_jobs_submitted_while_a_job_runs_here_wait_for_it(worker: SerialWorker) -> None:
    order: list[str] = []
    release = threading.Event()
    started = threading.Event()

    def here() -> None:
        started.set()
        release.wait(10)
        order.append("here")

    runner = threading.Thread(target=lambda: worker.run_here(here, lambda _thread: None))
    runner.start()
    assert started.wait(10)
    worker.submit(lambda: order.append("submitted"))  # the worker thread takes it and must wait
    wait_until(lambda: worker._free_waiters == 1, "the worker thread waiting with the submitted job")
    assert order == []
    release.set()
    runner.join(10)
    wait_until(lambda: len(order) == 2, "the submitted job")
    assert order == ["here", "submitted"]


def test_a_job_run_here_that_waits_lets_the_worker_serve_and_resumes_first(worker: SerialWorker) -> None:
    """Like call_js(...).result() in a def: the page's handler calls another def, which must run meanwhile."""
    order: list[str] = []
    blocked = threading.Event()
    answer: concurrent.futures.Future[int] = concurrent.futures.Future()

    def asks_the_page() -> None:
        order.append("asks")
        assert _runtime.wait_serving(answer, 10)  # what BridgeCore's call_js futures do
        order.append(f"got {answer.result()}")

    def on_block(_thread: threading.Thread) -> None:
        blocked.set()

    runner = threading.Thread(target=lambda: worker.run_here(asks_the_page, on_block))
    runner.start()
    assert blocked.wait(10)  # told at once: the thread it borrowed must not be counted on meanwhile
    served = threading.Event()
    worker.submit(lambda: (order.append("served meanwhile"), served.set()))
    assert served.wait(10)  # the worker is not held by the waiting job
    gate = threading.Event()
    worker.submit(lambda: (gate.wait(10), order.append("long job")))
    wait_until(lambda: order[-1:] == ["served meanwhile"] and worker.running() is not None, "the long job")
    worker.submit(lambda: order.append("queued later"))
    answer.set_result(42)
    # The waiting job resumes only when the worker's job of the moment ends: it waits to take the worker back.
    wait_until(lambda: worker._reclaiming == 1, "the waiting job asking for the worker back")
    assert "got 42" not in order
    gate.set()
    runner.join(10)
    wait_until(lambda: len(order) == 5, "every job")
    assert order == ["asks", "served meanwhile", "long job", "got 42", "queued later"]


def test_a_kernel_interrupt_reaches_a_job_run_here(worker: SerialWorker) -> None:
    outcome: list[str] = []

    def spin() -> None:
        with worker.interruptible():
            try:
                while True:
                    pass
            except KeyboardInterrupt:
                outcome.append("interrupted")

    runner = threading.Thread(target=lambda: worker.run_here(spin, lambda _thread: None))
    runner.start()
    wait_until(lambda: worker.running() is spin, "spin starting")
    worker.interrupt()
    runner.join(10)
    assert outcome == ["interrupted"]
    assert worker.running() is None


def test_a_stuck_job_run_here_is_abandoned_and_its_thread_freed_for_other_work(worker: SerialWorker) -> None:
    """Given up on (a page timeout) and stuck in C: later jobs run, and the borrowed thread's work goes on."""
    stuck = threading.Event()
    blocked = threading.Event()

    def hangs() -> None:
        stuck.wait(10)  # in C: no KeyboardInterrupt can stop it

    runner = threading.Thread(target=lambda: worker.run_here(hangs, lambda _thread: blocked.set()))
    runner.start()
    wait_until(lambda: worker.running() is hangs, "the hung job starting")
    worker.release_later(hangs, after=0.05)
    assert blocked.wait(10)  # abandoned: whatever its thread served goes on elsewhere
    later: list[str] = []
    worker.submit(lambda: later.append(threading.current_thread().name))
    wait_until(lambda: bool(later), "a later job")
    assert later == ["test-worker"]
    assert runner.is_alive()  # still stuck, in the background
    stuck.set()
    runner.join(10)
    assert worker.run_here(lambda: later.append("here again"), lambda _thread: None)
    assert later[-1] == "here again"


def _held_then_next_message(worker: SerialWorker) -> list[str]:
    """A reading thread runs a job here, then at once the next message's; a job is submitted in between."""
    order: list[str] = []
    release = threading.Event()
    started = threading.Event()

    def held() -> None:
        started.set()
        release.wait(10)
        order.append("held")

    def reading_thread() -> None:
        worker.run_here(held, lambda _thread: None)
        if not worker.run_here(lambda: order.append("later"), lambda _thread: None):
            worker.submit(lambda: order.append("later"))

    runner = threading.Thread(target=reading_thread)
    runner.start()
    assert started.wait(10)
    worker.submit(lambda: order.append("submitted"))  # the worker thread takes it, and waits for "held"
    wait_until(lambda: worker._free_waiters > 0, "the worker thread waiting with its job")
    release.set()
    runner.join(10)
    wait_until(lambda: len(order) == 3, "all three jobs")
    return order


def test_a_job_the_worker_took_and_waits_to_run_is_not_overtaken_by_a_later_one_run_here(
    worker: SerialWorker,
) -> None:
    # The overtaking needs the worker thread to be slower than the reading thread to get going: try often.
    for _ in range(20):
        assert _held_then_next_message(worker) == ["held", "submitted", "later"]
