"""Frame sources: FuncAnimation and figure/function sources, numpy video."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.animation import FuncAnimation

from ipybridge.player.sources import (
    FigureSource,
    FrameOutOfRange,
    FrameValues,
    VideoSource,
    figure_lock,
    from_animation,
    to_rgba,
)

X = np.linspace(0, 10, 200)


def wave_figure():
    fig, ax = plt.subplots(figsize=(3.2, 2.4), dpi=50)
    (line,) = ax.plot(X, np.sin(X))
    ax.set_xlim(0, 10)
    ax.set_ylim(-2, 2)
    return fig, ax, line


def test_frame_values_of_every_kind():
    assert FrameValues(5).length == 5
    assert FrameValues(5)[4] == 4
    assert FrameValues([3.5, "a"])[1] == "a"
    assert FrameValues(np.array([0.5, 1.5]))[1] == 1.5
    endless = FrameValues(None)
    assert endless.length is None
    assert endless[123456] == 123456
    gen = FrameValues(x * 10 for x in range(3))
    assert gen.length is None
    assert gen[2] == 20
    assert gen[0] == 0  # revisiting an earlier frame of a generator works
    with pytest.raises(FrameOutOfRange, match="3 frames"):
        gen[3]
    assert gen.length == 3  # learned when the generator ran out
    assert FrameValues(lambda: iter("xyz"))[2] == "z"
    with pytest.raises(FrameOutOfRange, match=r"5 frames \(0\.\.4\)"):
        FrameValues(5)[5]
    with pytest.raises(FrameOutOfRange):
        FrameValues(5)[-1]
    with pytest.raises(TypeError):
        FrameValues(object())


def test_figure_source_draws_func_of_each_frame_and_closes_the_figure_in_pyplot():
    fig, _ax, line = wave_figure()
    calls = []

    def update(i, scale):
        calls.append(i)
        line.set_ydata(scale * np.sin(X - i))

    init = []
    source = FigureSource(fig, update, frames=4, init_func=lambda: init.append(1), fargs=(1.5,))
    assert fig not in [plt.figure(n) for n in plt.get_fignums()]  # not shown again by the inline backend
    first = source.render(2)
    assert first.shape == (120, 160, 4)
    assert first.dtype == np.uint8
    assert (calls, init) == ([0, 1, 2], [1])  # sequential: frame 2 is the state after frames 0, 1, 2
    again = source.render(0)
    assert (calls, init) == ([0, 1, 2, 0], [1, 1])  # behind the state: replayed from init_func
    assert not np.array_equal(first, again)
    assert np.array_equal(source.render(2), first)
    calls.clear()
    pure = FigureSource(fig, update, frames=4, init_func=lambda: init.append(1), fargs=(1.5,), pure=True)
    assert pure.pure
    assert np.array_equal(pure.render(2), first)
    pure.render(0)
    assert calls == [2, 0]  # pure: one call per frame, any order
    with pytest.raises(FrameOutOfRange):
        source.render(4)


def test_blit_draws_only_returned_artists_over_the_background():
    fig, ax, line = wave_figure()
    ax.set_title("background")

    def update(i):
        line.set_ydata(np.sin(X - i))
        return (line,)

    blit = FigureSource(fig, update, frames=10, blit=True)
    frames = [blit.render(i) for i in (0, 3, 7, 3)]
    assert line.get_animated()
    assert np.array_equal(frames[1], frames[3])
    # The blitted frame is a full draw of the same state, up to the line now
    # being drawn over the axes frame instead of under it.
    fig2, ax2, line2 = wave_figure()
    ax2.set_title("background")

    def update2(i):
        line2.set_ydata(np.sin(X - i))

    full = FigureSource(fig2, update2, frames=10)
    differ = (full.render(7) != frames[2]).any(axis=-1).mean()
    assert differ < 0.01
    assert (frames[0] != frames[1]).any(axis=-1).mean() > 0.01


def test_blit_needs_artists_returned():
    fig, _ax, line = wave_figure()
    with pytest.raises(RuntimeError, match="blit=True"):  # matplotlib's own check, as it makes the animation
        FigureSource(fig, lambda i: line.set_ydata(np.sin(X - i)), frames=3, blit=True)


def test_blit_background_follows_axes_limits():
    fig, ax, line = wave_figure()

    def update(i):
        line.set_ydata(np.sin(X - i))
        return (line,)

    source = FigureSource(fig, update, frames=3, blit=True)
    before = source.render(1)
    ax.set_ylim(-5, 5)
    after = source.render(1)
    assert not np.array_equal(before, after)


def test_func_animation_source_honours_init_func_fargs_frames_and_blit():
    fig, _ax, line = wave_figure()
    seen = []

    def init():
        seen.append("init")
        line.set_ydata(np.zeros_like(X))
        return (line,)

    def update(value, k):
        seen.append(value)
        line.set_ydata(np.sin(k * X - value))
        return (line,)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Animation was deleted without rendering" etc.
        anim = FuncAnimation(fig, update, frames=[0.0, 0.5, 1.0], init_func=init, fargs=(2.0,), blit=True, interval=40)
        source, fps = from_animation(anim)
        del anim
    assert fps == 25.0
    assert source.blit
    assert source.length == 3
    seen.clear()
    source.render(2)
    assert seen == ["init", 0.0, 0.5, 1.0]  # as Animation.save calls them


def test_func_animation_frames_int_generator_and_none():
    fig, _ax, line = wave_figure()

    def update(i):
        line.set_ydata(np.sin(X - i))

    assert from_animation(FuncAnimation(fig, update, frames=7))[0].length == 7
    endless = from_animation(FuncAnimation(fig, update, frames=None, cache_frame_data=False))[0]
    assert endless.length is None
    endless.render(500)

    def gen():
        yield from (0.1, 0.2)

    lazy = from_animation(FuncAnimation(fig, update, frames=gen, cache_frame_data=False))[0]
    assert lazy.length is None
    lazy.render(1)
    with pytest.raises(FrameOutOfRange):
        lazy.render(2)
    assert lazy.length == 2


def test_func_animation_timer_does_not_start_on_our_draws():
    fig, _ax, _line = wave_figure()
    drawn = []
    anim = FuncAnimation(fig, lambda i: drawn.append(i), frames=5)
    source, _ = from_animation(anim)
    source.render(3)
    assert drawn == [0, 0, 1, 2, 3]  # init (the first value), then frames 0..3; matplotlib's _start stayed out
    assert anim.event_source is None or not getattr(anim.event_source, "_timer", None)


def test_figure_lock_is_per_figure_and_held_while_drawing():
    fig, _ax, line = wave_figure()
    other, *_ = wave_figure()
    held = []

    def update(i):
        held.append(figure_lock(fig)._is_owned())  # type: ignore[attr-defined]
        line.set_ydata(np.sin(X - i))

    FigureSource(fig, update, frames=2).render(1)
    assert held == [True, True, True]
    assert figure_lock(fig) is figure_lock(fig)
    assert figure_lock(fig) is not figure_lock(other)


def test_video_source_gray_rgb_rgba_uint8_and_float():
    gray = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    rgba = VideoSource(gray).render(1)
    assert rgba.shape == (3, 4, 4)
    assert np.array_equal(rgba[..., 0], gray[1])
    assert np.array_equal(rgba[..., 2], gray[1])
    assert (rgba[..., 3] == 255).all()
    rgb = np.random.default_rng(0).integers(0, 256, (3, 5, 6, 3), dtype=np.uint8)
    assert np.array_equal(VideoSource(rgb).render(2)[..., :3], rgb[2])
    four = np.random.default_rng(1).integers(0, 256, (1, 2, 2, 4), dtype=np.uint8)
    assert np.array_equal(VideoSource(four).render(0), four[0])
    floats = np.array([[[0.0, 0.5], [1.0, 2.0]]])
    assert VideoSource(floats).render(0)[..., 0].tolist() == [[0, 128], [255, 255]]
    assert to_rgba(np.array([[np.nan]]))[0, 0, 0] == 0
    with pytest.raises(FrameOutOfRange):
        VideoSource(gray).render(2)
    with pytest.raises(ValueError, match="shape"):
        VideoSource(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        VideoSource(np.zeros((2, 3, 3, 2)))
