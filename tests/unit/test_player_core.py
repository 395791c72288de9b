"""The Player's kernel half over a fake comm: requests, frames, errors, cancel, stats."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ipybridge.player import codecs
from ipybridge.player.sources import VideoSource
from ipybridge.player.widget import PlayerCore

from .fakepage import FakePage, envelope

VIDEO = np.random.default_rng(0).integers(0, 256, (6, 8, 10, 3), dtype=np.uint8)


class SlowSource:
    """Frames that wait for a go-ahead, to test cancellation deterministically."""

    length = 100

    def __init__(self) -> None:
        self.go = threading.Event()
        self.started = threading.Event()
        self.rendered: list[int] = []

    def render(self, index: int) -> np.ndarray:
        self.started.set()
        self.go.wait(10)
        self.rendered.append(index)
        if index == 5:
            raise ZeroDivisionError("frame five divides by zero")
        return np.zeros((2, 2, 4), np.uint8)


@pytest.fixture
def page() -> FakePage:
    return FakePage()


@pytest.fixture
def core(page: FakePage):
    core = PlayerCore(page.send)
    core.source = VideoSource(VIDEO)
    core.receive(*envelope({"type": "hello"}))
    yield core
    core.close()


def request(core, ident, index, codec="auto", **extra):
    core.receive(
        *envelope({"type": "frame", "id": ident, "index": index, "gen": 0, "codec": codec, "quality": 80, **extra})
    )


def frame_of(page: FakePage, ident: int):
    item = page.wait_for(lambda i: i.get("id") == ident and i["type"] in ("frame", "frame_error"))
    for it, bufs in page.items():
        if it is item or it == item:
            data = bufs[0] if bufs else b""
            return item, (bufs[item["b0"]] if "b0" in item else data)
    raise AssertionError


def test_frames_arrive_encoded_and_decode_exactly(core, page):
    for ident, (index, codec) in enumerate([(0, "auto"), (3, "png"), (5, "raw")], start=1):
        request(core, ident, index, codec)
    for ident, index in ((1, 0), (2, 3), (3, 5)):
        item, data = frame_of(page, ident)
        assert item["type"] == "frame"
        assert item["index"] == index
        assert item["view"] == "v1"
        assert (item["width"], item["height"], item["length"]) == (10, 8, 6)
        image = codecs.decode(codecs.Encoded(item["codec"], item["width"], item["height"], data))
        assert np.array_equal(image[..., :3], VIDEO[index])
        assert (image[..., 3] == 255).all()
    stats = core.stats()
    assert stats["frames_rendered"] == 3
    assert stats["bytes_per_frame"] > 0
    assert stats["render_ms"] >= 0
    assert stats["encode_ms"] > 0
    assert stats["displayed_fps"] == 0.0


def test_out_of_range_and_raising_frames_are_errors_and_the_core_goes_on(page):
    core = PlayerCore(page.send)
    source = SlowSource()
    source.go.set()
    core.source = source
    core.receive(*envelope({"type": "hello"}))
    request(core, 1, 5)
    request(core, 2, 6)
    item, _ = frame_of(page, 1)
    assert item["type"] == "frame_error"
    assert item["index"] == 5
    assert item["error"]["ename"] == "ZeroDivisionError"
    assert "frame five divides by zero" in item["error"]["evalue"]
    assert any("raise ZeroDivisionError" in line for line in item["error"]["traceback"])
    assert frame_of(page, 2)[0]["type"] == "frame"
    core.source = VideoSource(VIDEO)
    request(core, 3, 99)
    item, _ = frame_of(page, 3)
    assert item["error"]["ename"] == "FrameOutOfRange"
    assert "6 frames (0..5)" in item["error"]["evalue"]
    assert core.stats()["errors"] == 2
    core.close()


def test_cancelled_requests_are_not_drawn(page):
    core = PlayerCore(page.send)
    source = SlowSource()
    core.source = source
    core.receive(*envelope({"type": "hello"}))
    request(core, 1, 10)
    assert source.started.wait(5)  # frame 10 is being drawn
    request(core, 2, 11)
    request(core, 3, 12)
    core.receive(*envelope({"type": "frame_cancel", "ids": [2, "junk"]}))
    source.go.set()
    frame_of(page, 1)
    frame_of(page, 3)
    assert source.rendered == [10, 12]
    assert not [i for i, _ in page.items() if i.get("id") == 2]
    core.close()


def test_malformed_requests_get_a_protocol_error(core, page):
    core.receive(*envelope({"type": "frame", "id": 1, "index": "x", "gen": 0, "codec": "auto", "quality": 1}))
    core.receive(*envelope({"type": "frame", "id": 2, "index": 0, "gen": 0, "codec": "gif", "quality": 1}))
    page.wait_for(lambda i: i["type"] == "protocol_error" and "codec" in i["error"]["evalue"])
    page.wait_for(lambda i: len([j for j, _ in page.items() if j["type"] == "protocol_error"]) == 2)


def test_page_stats_are_merged_into_stats(core):
    core.receive(*envelope({"type": "player_stats", "stats": {"displayed_fps": 59.5, "cache_frames": 12, "bad": [1]}}))
    stats = core.stats()
    assert stats["displayed_fps"] == 59.5
    assert stats["page_cache_frames"] == 12
    assert "page_bad" not in stats


def test_requests_from_a_view_that_left_are_dropped(page):
    core = PlayerCore(page.send)
    source = SlowSource()
    core.source = source
    core.receive(*envelope({"type": "hello"}))
    request(core, 1, 1)
    assert source.started.wait(5)
    request(core, 2, 2)
    core.receive(*envelope({"type": "bye"}))
    source.go.set()
    core.receive(*envelope({"type": "hello"}, view="v2"))
    core.receive(*envelope({"type": "frame", "id": 9, "index": 9, "gen": 0, "codec": "raw", "quality": 80}, view="v2"))
    frame_of(page, 9)
    assert source.rendered == [1, 9]  # frame 2 of the departed view was never drawn
    assert not [i for i, _ in page.items() if i["type"] == "frame" and i["view"] == "v1"]
    core.close()


def frame_messages(page: FakePage) -> list[list[int]]:
    """The frame ids of each message the kernel sent, in order (messages without frames left out)."""
    with page._cond:
        sent = list(page.sent)
    out = [[item["id"] for item in content["msgs"] if item["type"] == "frame"] for content, _ in sent]
    return [ids for ids in out if ids]


def gated_core(page: FakePage, monkeypatch: pytest.MonkeyPatch) -> tuple[PlayerCore, SlowSource]:
    """A core whose frames wait for ``source.go``; no hold timer, so only the batching rules decide."""
    from ipybridge.player import widget

    monkeypatch.setattr(widget, "BATCH_HOLD_S", 60.0)
    core = PlayerCore(page.send)
    source = SlowSource()
    core.source = source
    core.receive(*envelope({"type": "hello"}))
    return core, source


def frame_request(ident: int, index: int, **extra: object) -> dict[str, object]:
    return {"type": "frame", "id": ident, "index": index, "gen": 0, "codec": "raw", "quality": 80, **extra}


def test_frames_asked_for_together_leave_together(page, monkeypatch):
    core, source = gated_core(page, monkeypatch)
    core.receive(*envelope(*[frame_request(i, 20 + i) for i in range(1, 5)]))
    source.go.set()
    page.wait_for(lambda i: i.get("id") == 4 and i["type"] == "frame")
    assert frame_messages(page) == [[1, 2, 3, 4]]  # sent when nothing more was left to draw
    core.close()


def test_an_urgent_frame_leaves_at_once_and_batches_are_bounded(page, monkeypatch):
    from ipybridge.player import widget

    core, source = gated_core(page, monkeypatch)
    requests = [frame_request(1, 20, urgent=True)] + [frame_request(i, 20 + i) for i in range(2, 13)]
    core.receive(*envelope(*requests))
    source.go.set()
    page.wait_for(lambda i: i.get("id") == 12 and i["type"] == "frame")
    messages = frame_messages(page)
    assert messages[0] == [1]  # the frame the page waits for did not wait for company
    assert max(len(ids) for ids in messages) <= widget.BATCH_FRAMES
    assert [i for ids in messages for i in ids] == list(range(1, 13))
    assert len(messages) == 3  # [1], then 8, then the last 3 when nothing was left to draw
    core.close()


class SecondFrameWaits:
    """Frame 1 draws at once; frame 2 waits for ``go``."""

    length = 10

    def __init__(self) -> None:
        self.go = threading.Event()

    def render(self, index: int) -> np.ndarray:
        if index == 2:
            self.go.wait(10)
        return np.zeros((2, 2, 4), np.uint8)


def test_a_held_frame_leaves_after_the_hold_time(page, monkeypatch):
    from ipybridge.player import widget

    monkeypatch.setattr(widget, "BATCH_HOLD_S", 0.05)
    core = PlayerCore(page.send)
    core.source = source = SecondFrameWaits()
    core.receive(*envelope({"type": "hello"}))
    core.receive(*envelope(frame_request(1, 1), frame_request(2, 2)))
    # Frame 1 is held for company while frame 2 draws, but not for longer than the hold.
    page.wait_for(lambda i: i.get("id") == 1 and i["type"] == "frame", timeout=5)
    assert frame_messages(page) == [[1]]
    source.go.set()
    page.wait_for(lambda i: i.get("id") == 2 and i["type"] == "frame", timeout=5)
    core.close()


def test_a_bad_scale_gets_a_protocol_error_and_draws_nothing(core, page):
    bad = ["2", True, float("nan"), float("inf"), -1, 0, 0.1, 1e9, None, [2]]
    for ident, scale in enumerate(bad, start=1):
        request(core, ident, 0, scale=scale)
    page.wait_for(lambda i: len([j for j, _ in page.items() if j["type"] == "protocol_error"]) == len(bad))
    assert all("scale" in j["error"]["evalue"] for j, _ in page.items() if j["type"] == "protocol_error")
    assert core.stats()["frames_rendered"] == 0
    request(core, 99, 1, scale=2)  # a video's frames are its pixels: painted at scale 1
    item, _ = frame_of(page, 99)
    assert (item["width"], item["height"], item["scale"]) == (10, 8, 1.0)


class AheadSource:
    """A source that works ahead (prefetch/cancel/collect), counting frames started and not yet handed over."""

    length = 10
    pure = True

    def __init__(self) -> None:
        self.open = 0
        self.lock = threading.Lock()

    def prefetch(self, index, encoding=None):
        with self.lock:
            self.open += 1

    def cancel(self, index, encoding=None):
        with self.lock:
            self.open -= 1

    def collect(self, index, encoding=None):
        with self.lock:
            self.open -= 1
        return np.zeros((2, 2, 4), np.uint8)

    def render(self, index, scale=1.0):
        return np.zeros((2, 2, 4), np.uint8)


def test_a_cancel_while_the_render_thread_takes_up_a_request_leaves_no_frame_started(page):
    core = PlayerCore(page.send)
    source = core.source = AheadSource()
    core.receive(*envelope({"type": "hello"}))
    taken_up = core._collecting

    def cancel_right_after(key):  # the page's frame_cancel lands just after the render thread took the request up
        wanted = taken_up(key)
        core.receive(*envelope({"type": "frame_cancel", "ids": [key[1]]}))
        return wanted

    core._collecting = cancel_right_after
    try:
        for ident in range(1, 4):
            request(core, ident, ident)
        done = threading.Event()
        core._worker.submit(done.set)
        assert done.wait(10)
        assert source.open == 0  # every frame started was collected or cancelled
    finally:
        core.close()


def test_frame_follows_the_page_while_playing_without_a_message_back():
    """Over the direct transport the page does not sync ``frame`` while playing; its stats (every second)
    carry the frame it painted, and the kernel's ``frame`` follows them, sending nothing back."""
    import ipybridge

    p = ipybridge.Player(np.zeros((20, 4, 6, 3), dtype=np.uint8))
    sent = []
    p._send = lambda msg, buffers=None: sent.append(msg)  # what ipywidgets would send to the page
    # ipywidgets sends state only on a comm with a kernel: make this one look connected, whatever the other
    # tests left behind (a comm whose kernel is None would make "nothing sent" true for any code).
    if getattr(p.comm, "kernel", True) is None:
        p.comm.kernel = object()
    seen = []
    p.observe(lambda change: seen.append(change["new"]), "frame")
    core = p._player_core
    view = "v-stats"

    def stats(frame):
        core.receive(*envelope({"type": "player_stats", "stats": {"frame": frame, "displayed_fps": 30}}, view=view))

    stats(7)
    assert p.frame == 0  # paused: the page syncs frame itself when it stops
    p.playing = True
    sent.clear()
    stats(7)
    assert (p.frame, seen) == (7, [7])
    assert sent == []  # the page painted it: nothing to tell the page
    stats(25)  # out of range: ignored
    assert p.frame == 7
    with p._state_lock:  # the page's own changes being applied on another thread: that report is skipped
        t = threading.Thread(target=stats, args=(9,))
        t.start()
        t.join(10)
    assert p.frame == 7
    stats(9)
    assert p.frame == 9
    p.frame = 3  # a seek from Python still goes to the page
    assert any(m.get("state", {}).get("frame") == 3 for m in sent)
    p.close()


def test_a_report_made_before_the_page_saw_a_python_seek_is_not_followed():
    """``p.frame = 3`` while playing over the direct transport: a stats report the page made before that seek
    reached it (it painted frame 15 then) must not set ``frame`` back to 15; one made after it is followed."""
    import ipybridge

    p = ipybridge.Player(np.zeros((20, 4, 6, 3), dtype=np.uint8))
    sent = []
    p._send = lambda msg, buffers=None: sent.append(msg)
    if getattr(p.comm, "kernel", True) is None:
        p.comm.kernel = object()
    core = p._player_core

    def stats(frame, seq):
        core.receive(*envelope({"type": "player_stats", "stats": {"frame": frame, "seq": seq}}, view="v-seek"))

    p.playing = True
    stats(10, 0)
    assert p.frame == 10
    sent.clear()
    p.frame = 3  # Python seeks
    states = [m.get("state", {}) for m in sent]
    frame_at = next(i for i, s in enumerate(states) if s.get("frame") == 3)
    seq_at = next(i for i, s in enumerate(states) if "_frame_seq" in s)
    assert frame_at < seq_at  # the page has the frame by the time it reports the new seq
    seq = states[seq_at]["_frame_seq"]
    assert seq == 1
    stats(15, 0)  # painted before the page saw the seek
    assert p.frame == 3
    stats(5, seq)  # after it
    assert p.frame == 5
    sent.clear()
    p.frame = 5  # no change: no seek, the seq stays (the page could never report a seq it is not sent)
    assert p._frame_seq == seq
    assert not sent
    stats(6, seq)
    assert p.frame == 6
    p.close()
