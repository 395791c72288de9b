"""Animations as users write them, one per kind and pattern, for comparing the Player with matplotlib.

Each entry of :data:`ZOO` builds its animation afresh in a new figure (the same
code run twice gives the same frames: random ones seed their generator as they
are built), and says how many frames to compare and whether a replay from
``init_func`` reproduces the state (``replays``: the animation resets what it
keeps in ``init_func``, or keeps nothing). Self-contained (matplotlib, numpy):
the e2e tests send this file's text to the kernel.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation

SIZE = {"figsize": (2.4, 1.8), "dpi": 50}
X = np.linspace(0, 2 * np.pi, 60)


@dataclass
class Entry:
    make: Callable[[], Any]  # () -> matplotlib Animation, or (fig, func, kwargs) for Player(fig, func, **kwargs)
    frames: int  # frames to compare
    replays: bool = True  # a replay from init reproduces the frames
    reference: str = "save"  # "save": Animation.save's frames; "window": matplotlib's own blitting loop on Agg
    player_kwargs: dict[str, Any] | None = None


def wave_blit_init():
    """The gallery's simple animation: blit, init_func returning the line."""
    fig, ax = plt.subplots(**SIZE)
    (ln,) = ax.plot([], [], "r-")

    def init():
        ax.set_xlim(0, 2 * np.pi)
        ax.set_ylim(-1.5, 1.5)
        return (ln,)

    def update(frame):
        ln.set_data(X[5:-5], np.sin(X[5:-5] + frame))
        return (ln,)

    return animation.FuncAnimation(fig, update, frames=np.linspace(0, 2 * np.pi, 12), init_func=init, blit=True)


def wave_no_init():
    fig, ax = plt.subplots(**SIZE)
    (ln,) = ax.plot(X, np.sin(X))

    def update(i):
        ln.set_ydata(np.sin(X + i / 3))

    return animation.FuncAnimation(fig, update, frames=10, interval=40)


def strip_chart_generator():
    """A strip chart fed by a generator function that draws random numbers (seeded once)."""
    rng = np.random.default_rng(1)
    fig, ax = plt.subplots(**SIZE)
    ax.set_ylim(-0.1, 1.1)
    ax.set_xlim(0, 2)
    (line,) = ax.plot([], [])
    tdata, ydata = [0.0], [0.0]

    def emitter():
        while True:
            yield rng.random() if rng.random() > 0.3 else 0.0

    def update(y):
        t = tdata[-1] + 0.1
        tdata.append(t)
        ydata.append(y)
        line.set_data(tdata, ydata)
        return (line,)

    return animation.FuncAnimation(fig, update, emitter, interval=50, save_count=12, cache_frame_data=False)


def endless_counter():
    """frames=None: 0, 1, 2, ... forever."""
    fig, ax = plt.subplots(**SIZE)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    text = ax.text(0.2, 0.4, "", fontsize=14)

    def update(i):
        text.set_text(f"tick {i}")

    return animation.FuncAnimation(fig, update, frames=None, cache_frame_data=False)


def fargs_and_partial():
    fig, (a1, a2) = plt.subplots(1, 2, **SIZE)
    (l1,) = a1.plot(X, np.sin(X))
    (l2,) = a2.plot(X, np.cos(X), "g")

    def update(i, line, scale, *, phase=0.0):
        line.set_ydata(scale * np.sin(X + i / 2 + phase))

    two = functools.partial(update, line=l2, scale=0.5, phase=1.0)

    def both(i, line, scale):
        update(i, line, scale)
        two(i)

    return animation.FuncAnimation(fig, both, frames=8, fargs=(l1, 0.8))


class Bouncer:
    """A callable object as the frame function, keeping its own state (reset by init_func)."""

    def __init__(self, ax):
        self.ax = ax
        (self.dot,) = ax.plot([0.5], [0.5], "o", ms=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        self.reset()

    def reset(self):
        self.pos, self.vel = np.array([0.2, 0.7]), np.array([0.13, -0.08])
        self.dot.set_data([self.pos[0]], [self.pos[1]])
        return (self.dot,)

    def __call__(self, _i):
        self.pos = self.pos + self.vel
        for k in (0, 1):
            if not 0.15 < self.pos[k] < 0.85:
                self.vel[k] = -self.vel[k]
        self.dot.set_data([self.pos[0]], [self.pos[1]])
        return (self.dot,)


def callable_object():
    fig, ax = plt.subplots(**SIZE)
    bouncer = Bouncer(ax)
    return animation.FuncAnimation(fig, bouncer, frames=15, init_func=bouncer.reset, blit=True)


def random_walk_reset_in_init():
    """Stateful and random: the walk grows; init_func reseeds and clears it, so a replay is exact."""
    fig, ax = plt.subplots(**SIZE)
    (ln,) = ax.plot([], [], lw=1)
    state: dict[str, Any] = {}

    def init():
        state["rng"] = np.random.default_rng(7)
        state["ys"] = [0.0]
        ln.set_data([0], [0])
        return (ln,)

    def update(_i):
        state["ys"].append(state["ys"][-1] + state["rng"].normal())
        ln.set_data(range(len(state["ys"])), state["ys"])
        ax.set_xlim(0, max(10, len(state["ys"])))  # changing limits
        ax.set_ylim(min(state["ys"]) - 1, max(state["ys"]) + 1)
        return (ln,)

    return animation.FuncAnimation(fig, update, frames=14, init_func=init)


def random_histogram_hidden_state():
    """A histogram fed by an RNG that no init resets: once shown, a frame must stay the same."""
    rng = np.random.default_rng(3)
    fig, ax = plt.subplots(**SIZE)
    data: list[float] = []
    _, _, bars = ax.hist([0.0], bins=10, range=(-3, 3))
    ax.set_ylim(-1, 120)  # bars clear of the spines: blitted artists cover higher-zorder ones

    def update(_i):
        data.extend(rng.normal(size=20))
        counts, _ = np.histogram(data, bins=10, range=(-3, 3))
        for count, rect in zip(counts, bars.patches, strict=True):
            rect.set_height(count)
        return bars.patches

    return animation.FuncAnimation(fig, update, frames=10, blit=True)


class UpdateDist:
    """The gallery's Bayesian update, written afresh: a callable object with a start method, the
    global RNG, blit, a reset at frame 0."""

    def __init__(self, ax, prob=0.5):
        self.success = 0
        self.prob = prob
        (self.line,) = ax.plot([], [], "k-")
        self.x = np.linspace(0, 1, 200)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 10)
        ax.grid(True)
        ax.axvline(prob, linestyle="--", color="black")

    def start(self):
        return (self.line,)

    def __call__(self, i):
        if i == 0:
            self.success = 0
            self.line.set_data([], [])
            return (self.line,)
        if np.random.rand() < self.prob:
            self.success += 1
        a, b = self.success + 1, (i - self.success) + 1
        y = self.x ** (a - 1) * (1 - self.x) ** (b - 1)
        y = y / (y.sum() * (self.x[1] - self.x[0]))
        self.line.set_data(self.x, y)
        return (self.line,)


def bayes_update():
    np.random.seed(19680801)
    fig, ax = plt.subplots(**SIZE)
    ud = UpdateDist(ax, prob=0.7)
    return animation.FuncAnimation(fig, ud, init_func=ud.start, frames=30, interval=100, blit=True)


def decaying_trace_3d():
    fig = plt.figure(**SIZE)
    ax = fig.add_subplot(projection="3d")
    t = np.linspace(0, 4 * np.pi, 80)
    (line,) = ax.plot(np.cos(t), np.sin(t), t / 10)
    ax.set_zlim(0, 1.5)

    def update(i):
        line.set_data_3d(np.cos(t) * np.exp(-i / 10), np.sin(t) * np.exp(-i / 10), t / 10)
        ax.view_init(elev=20 + i, azim=30 + 4 * i)

    return animation.FuncAnimation(fig, update, frames=8)


def imshow_and_pcolormesh():
    fig, (a1, a2) = plt.subplots(1, 2, **SIZE)
    yy, xx = np.mgrid[0:1:20j, 0:1:20j]
    im = a1.imshow(np.sin(6 * xx), vmin=-1, vmax=1)
    mesh = a2.pcolormesh(xx, yy, np.cos(6 * yy), vmin=-1, vmax=1, shading="auto")
    fig.colorbar(im, ax=a1)

    def update(i):
        im.set_data(np.sin(6 * xx + i / 2) * np.cos(4 * yy))
        mesh.set_array(np.cos(6 * yy - i / 2).ravel())
        a1.set_title(f"t={i}")
        fig.suptitle(f"frame {i}")

    return animation.FuncAnimation(fig, update, frames=8)


def artist_images_blit():
    """The gallery's ArtistAnimation of imshow frames, blit, with a first static image."""
    fig, ax = plt.subplots(**SIZE)
    x = np.linspace(0, 2 * np.pi, 24)
    y = np.linspace(0, 2 * np.pi, 20).reshape(-1, 1)
    ims = []
    for i in range(10):
        x = x + np.pi / 15
        y = y + np.pi / 30
        im = ax.imshow(np.sin(x) + np.cos(y), animated=True)
        if i == 0:
            ax.imshow(np.sin(x) + np.cos(y))
        ims.append([im])
    return animation.ArtistAnimation(fig, ims, interval=50, blit=True, repeat_delay=1000)


def artist_line_lists():
    """ArtistAnimation of plotted line lists with a per-frame text, no blit."""
    fig, ax = plt.subplots(**SIZE)
    frames = []
    for i in range(9):
        lines = ax.plot(X, np.sin(X + i / 2), "b", X, np.cos(X - i / 3), "r--")
        label = ax.text(0.05, 0.9, f"step {i}", transform=ax.transAxes)
        frames.append([*lines, label])
    return animation.ArtistAnimation(fig, frames, interval=100)


def pyplot_state():
    """The issue's function: plt.cla / plt.plot / plt.title on the current figure, as Player(fig, func)."""
    fig, _ax = plt.subplots(**SIZE)

    def update(i):
        plt.cla()
        plt.plot(np.arange(10), np.arange(10) * i)
        plt.title(f"step {i}")
        plt.suptitle("pyplot")

    return fig, update, {"frames": 5}


def pyplot_text_blit():
    """plt.text stamped each frame with blit=True (matplotlib's canvas must be able to blit)."""
    fig, ax = plt.subplots(**SIZE)
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    (ln,) = ax.plot([], [], "k")

    def update(i):
        ln.set_data(np.arange(i + 2), (np.arange(i + 2) * 0.7) % 9 + 0.5)
        stamp = plt.text(6, 8, f"#{i}")
        plt.gca().set_title("")
        return ln, stamp

    return fig, update, {"frames": 6, "blit": True}


def pyplot_clf_colorbar():
    fig = plt.figure(**SIZE)
    yy, xx = np.mgrid[0:1:16j, 0:1:16j]

    def update(i):
        plt.clf()
        plt.imshow(np.sin(5 * xx + i) * yy, vmin=-1, vmax=1)
        plt.colorbar()
        plt.gcf().suptitle(f"clf {i}")

    return animation.FuncAnimation(fig, update, frames=5)


class SubplotAnimation(animation.TimedAnimation):
    """A user's TimedAnimation subclass (matplotlib's old subplots example, smaller)."""

    def __init__(self):
        fig, (self.ax1, self.ax2) = plt.subplots(1, 2, **SIZE)
        self.t = np.linspace(0, 8, 40)
        self.x = np.cos(2 * np.pi * self.t / 10.0)
        self.y = np.sin(2 * np.pi * self.t / 10.0)
        (self.line1,) = self.ax1.plot([], [], "b")
        (self.line2,) = self.ax2.plot([], [], "r")
        for ax in (self.ax1, self.ax2):
            ax.set_xlim(-1.2, 1.2)
            ax.set_ylim(-1.2, 1.2)
        super().__init__(fig, interval=50, blit=True)

    def _draw_frame(self, framedata):
        i = framedata
        self.line1.set_data(self.x[:i], self.y[:i])
        self.line2.set_data(self.y[:i], self.x[:i])
        self._drawn_artists = [self.line1, self.line2]

    def new_frame_seq(self):
        return iter(range(2, self.t.size, 4))

    def _init_draw(self):
        for line in (self.line1, self.line2):
            line.set_data([], [])


def pure_function():
    """A pure frame function declared so: drawn in any order."""
    fig, ax = plt.subplots(**SIZE)
    (ln,) = ax.plot(X, np.sin(X))

    def update(i):
        ln.set_ydata(np.sin(X * (1 + i / 5)))

    return fig, update, {"frames": 9}


ZOO: dict[str, Entry] = {
    "wave_blit_init": Entry(wave_blit_init, 12),
    "wave_no_init": Entry(wave_no_init, 10),
    "strip_chart_generator": Entry(strip_chart_generator, 12, replays=False),
    "endless_counter": Entry(endless_counter, 12),
    "fargs_and_partial": Entry(fargs_and_partial, 8),
    "callable_object": Entry(callable_object, 15),
    "random_walk_reset_in_init": Entry(random_walk_reset_in_init, 14),
    "random_histogram_hidden_state": Entry(random_histogram_hidden_state, 10, replays=False),
    # The pdf runs along the axes' bottom edge: blitted, it covers the spine there, as in matplotlib's window.
    "bayes_update": Entry(bayes_update, 30, replays=False, reference="window"),
    "decaying_trace_3d": Entry(decaying_trace_3d, 8),
    "imshow_and_pcolormesh": Entry(imshow_and_pcolormesh, 8),
    # Blitted images cover the axes frame, as in matplotlib's window (save draws the frame over them).
    "artist_images_blit": Entry(artist_images_blit, 10, reference="window"),
    "artist_line_lists": Entry(artist_line_lists, 9),
    "pyplot_state": Entry(pyplot_state, 5),
    # Each frame adds a text and returns only the newest: matplotlib's window shows that one (save shows all).
    "pyplot_text_blit": Entry(pyplot_text_blit, 6, replays=False, reference="window"),
    "pyplot_clf_colorbar": Entry(pyplot_clf_colorbar, 5),
    "timed_subclass": Entry(SubplotAnimation, 10),
    "pure_function": Entry(pure_function, 9, player_kwargs={"pure": True}),
}


def as_animation(made: Any) -> Any:
    """The FuncAnimation matplotlib makes of a ``(fig, func, kwargs)`` entry, or the animation itself."""
    if isinstance(made, tuple):
        fig, func, kwargs = made
        return animation.FuncAnimation(fig, func, **kwargs)
    return made


def player_of(entry: Entry, player: Callable[..., Any]) -> Any:
    """``player(anim)`` or ``player(fig, func, **kwargs)`` for a fresh build of ``entry``."""
    made = entry.make()
    extra = entry.player_kwargs or {}
    if isinstance(made, tuple):
        fig, func, kwargs = made
        return player(fig, func, **kwargs, **extra)
    return player(made, **extra)
