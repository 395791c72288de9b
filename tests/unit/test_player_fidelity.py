"""What the Player's kernel sends for frame k is, pixel for pixel, what matplotlib draws at frame k.

Every animation of tests/animation_zoo.py (one per kind and pattern users write)
is played through a PlayerCore over a fake page with a lossless codec, in the
orders a page asks (forward, Last, slider seeks, Reverse), and compared with the
frames Animation.save draws for the same code run afresh.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from ipybridge.player import codecs
from ipybridge.player.widget import PlayerCore, _make_source

from .fakepage import FakePage, envelope

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from animation_zoo import ZOO, Entry, as_animation, player_of
from mpl_reference import reference_frames, window_frames


def reference(entry: Entry, scale: float = 1.0) -> list[np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if entry.reference == "window":
            return window_frames(lambda: as_animation(entry.make()), entry.frames, scale)
        return reference_frames(lambda: as_animation(entry.make()), entry.frames, scale)


def make_source(*args, pure=None, **kwargs):
    fig_args = {k: kwargs.pop(k) for k in ("frames", "init_func", "fargs") if k in kwargs}
    blit = kwargs.pop("blit", False)
    assert not kwargs
    source, _fps, _loop = _make_source(
        args[0], args[1] if len(args) > 1 else None, fig_args.get("frames"), fig_args.get("init_func"),
        fig_args.get("fargs"), blit, pure,
    )  # fmt: skip
    return source


class Page:
    """A page asking a PlayerCore for frames one at a time, decoding what comes back."""

    def __init__(self, entry: Entry) -> None:
        self.fake = FakePage()
        self.core = PlayerCore(self.fake.send)
        self.core.source = player_of(entry, make_source)
        self.core.receive(*envelope({"type": "hello"}))
        self.ident = 0

    def frame(self, index: int, scale: float = 1.0) -> np.ndarray:
        self.ident += 1
        ident = self.ident
        self.core.receive(*envelope({"type": "frame", "id": ident, "index": index, "gen": 0, "codec": "raw",
                                     "quality": 85, "urgent": True, "scale": scale}))  # fmt: skip
        item = self.fake.wait_for(lambda i: i.get("id") == ident and i["type"] in ("frame", "frame_error"))
        assert item["type"] == "frame", item
        for it, bufs in self.fake.items():
            if it is item:
                data = bufs[item.get("b0", 0)]
                return codecs.decode(codecs.Encoded(item["codec"], item["width"], item["height"], bytes(data)))
        raise AssertionError("frame not found")

    def close(self) -> None:
        self.core.close()


def assert_same(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {got.shape} != matplotlib's {want.shape}"
    differ = int((got != want).any(axis=-1).sum())
    assert differ == 0, f"{what}: {differ} pixels differ from matplotlib's frame"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("name", list(ZOO))
def test_every_frame_equals_matplotlibs_in_every_order_a_page_asks(name):
    entry = ZOO[name]
    want = reference(entry)
    n = entry.frames
    assert len(want) == n
    page = Page(entry)
    try:
        for k in range(n):  # Play
            assert_same(page.frame(k), want[k], f"{name} frame {k} (playing)")
        order = [n - 1, n // 2, 1, n - 2, *range(n - 1, -1, -1)]  # Last, slider seeks, Reverse
        for k in order:
            assert_same(page.frame(k), want[k], f"{name} frame {k} (after Last/seek/Reverse)")
    finally:
        page.close()


@pytest.mark.parametrize("name", [n for n, e in ZOO.items() if e.replays])
def test_a_seek_past_frames_never_shown_fast_forwards_and_a_seek_back_replays(name):
    entry = ZOO[name]
    want = reference(entry)
    n = entry.frames
    page = Page(entry)
    try:
        for k in [n - 1, 2, n // 2, 0, n - 2, n - 3]:  # Last first, then back to frames never drawn
            assert_same(page.frame(k), want[k], f"{name} frame {k} (seeking)")
    finally:
        page.close()


@pytest.mark.parametrize("name", ["wave_blit_init", "imshow_and_pcolormesh", "artist_images_blit", "timed_subclass"])
def test_frames_at_device_pixel_ratio_2_equal_matplotlibs_at_twice_the_dpi(name):
    entry = ZOO[name]
    want = reference(entry, scale=2.0)
    page = Page(entry)
    try:
        one = page.frame(0)
        for k in (0, 3, 1):
            got = page.frame(k, 2.0)
            assert got.shape[:2] == (2 * one.shape[0], 2 * one.shape[1])
            assert_same(got, want[k], f"{name} frame {k} at ratio 2")
    finally:
        page.close()


def test_calls_are_matplotlibs_blit_or_not_init_or_not():
    """Logged calls after the animation is made: exactly those Animation.save makes."""
    for blit in (False, True):
        for with_init in (False, True):
            logs = []
            for run in ("matplotlib", "player"):
                log: list = []
                fig, ax = plt.subplots(figsize=(2, 1.5), dpi=40)
                (ln,) = ax.plot([0, 1], [0, 1])

                def update(i, log=log, ln=ln):
                    log.append(i)
                    return (ln,)

                def init(log=log, ln=ln):
                    log.append("init")
                    return (ln,)

                kwargs = {"frames": 4, "blit": blit, "init_func": init if with_init else None}
                if run == "matplotlib":
                    anim = matplotlib.animation.FuncAnimation(fig, update, **kwargs)
                    log.append("|")
                    reference_frames(lambda anim=anim: anim)
                else:
                    source = make_source(fig, update, **kwargs)
                    log.append("|")
                    for k in range(4):
                        source.render(k)
                logs.append(log)
            assert logs[0] == logs[1], (blit, with_init, logs)
            assert logs[1][logs[1].index("|") + 1 :] == ["init" if with_init else 0, 0, 1, 2, 3]


def test_pyplot_is_the_animations_while_drawing_and_no_figure_leaks():
    fig, ax = plt.subplots()
    other, other_ax = plt.subplots()
    seen = []

    def update(i):
        seen.append((plt.gcf() is fig, plt.gca() is ax))
        plt.figure()  # a figure made inside a frame stays there: pyplot's list never sees it
        plt.plot([0, i])

    source = make_source(fig, update, frames=3)
    assert plt.get_fignums() == [other.number]  # the Player's figure is closed in pyplot
    source.render(2)
    assert seen == [(True, True)] * 4  # init (frame 0), then frames 0, 1, 2
    assert plt.get_fignums() == [other.number]
    assert plt.gcf() is other  # the caller's pyplot state is untouched
    assert plt.gca() is other_ax


def test_reverse_after_last_replays_once_per_window_not_once_per_frame():
    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=40)
    (ln,) = ax.plot([0, 1], [0, 1])
    calls = []

    def update(i):
        calls.append(i)
        ln.set_ydata([0, (i % 7) / 7])

    n = 200
    page = Page.__new__(Page)
    page.fake = FakePage()
    page.core = PlayerCore(page.fake.send)
    page.core.source = make_source(fig, update, frames=n)
    page.core.receive(*envelope({"type": "hello"}))
    page.ident = 0
    try:
        page.frame(n - 1)  # Last: fast-forwarded, one draw
        assert len(calls) == n + 1
        for k in range(n - 2, -1, -1):  # Reverse, frame by frame
            page.frame(k)
        replays = calls.count(0) // 2 - 1  # each pass calls update(0) twice: as init, then for frame 0 ...
        assert 1 <= replays <= n // 32 + 2, replays
        assert len(calls) < 8 * n, len(calls)  # ... instead of ~n*n/2 calls without the kept frames
    finally:
        page.close()


def test_modes_each_kind_of_source_gets_and_how_to_choose():
    entry = ZOO["artist_line_lists"]
    assert make_source(entry.make()).pure  # an ArtistAnimation's frames are which artists are visible
    assert not make_source(as_animation(ZOO["wave_no_init"].make())).pure  # FuncAnimation: sequential
    assert make_source(as_animation(ZOO["wave_no_init"].make()), pure=True).pure
    fig, func, kwargs = ZOO["pure_function"].make()
    source = make_source(fig, func, **kwargs, pure=True)
    assert source.pure
    assert source.value(3) == 3
    with pytest.raises(TypeError, match="pure"):
        _make_source(np.zeros((2, 3, 4)), None, None, None, None, False, True)
    with pytest.raises(TypeError, match="Animation"):
        _make_source(object(), None, None, None, None, False, None)


def test_a_frame_that_raises_is_never_drawn_half_applied():
    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=40)
    (ln,) = ax.plot([0, 1], [0, 1])
    calls = []

    def update(i):
        calls.append(i)
        ln.set_ydata([0, i])
        if i == 3:
            raise ZeroDivisionError("frame three")

    source = make_source(fig, update, frames=6)
    for _attempt in range(2):
        with pytest.raises(ZeroDivisionError):
            source.render(3)
    assert calls == [0, 0, 1, 2, 3, 0, 0, 1, 2, 3]  # each attempt replays from init
    with pytest.raises(ZeroDivisionError):
        source.render(5)  # matplotlib cannot get past frame 3 either
    good = source.render(2)
    want = reference_frames(lambda: matplotlib.animation.FuncAnimation(*_fresh_line(), frames=3))[2]
    assert_same(good, want, "frame 2 after frame 3 raised")


def _fresh_line():
    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=40)
    (ln,) = ax.plot([0, 1], [0, 1])
    return fig, lambda i: ln.set_ydata([0, i])
