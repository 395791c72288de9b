"""The Player as a user meets it, in JupyterLab 4 and Notebook 7.

The canvas's ``data-frame`` attribute says which frame is painted; cells that
print the Player's traits say what Python sees. Every wait is bounded.
"""

from __future__ import annotations

import base64
import json
import re
import textwrap
import time

from playwright.sync_api import expect

from .harness import NotebookPage

ANIMATION = textwrap.dedent(
    """
    import matplotlib
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.animation import FuncAnimation
    import ipybridge

    x = np.linspace(0, 10, 200)
    fig, ax = plt.subplots(figsize=(3.2, 2.4), dpi=80)
    (line,) = ax.plot(x, np.sin(x))
    ax.set_xlim(0, 10)
    ax.set_ylim(-2, 2)

    def update(i):
        line.set_ydata(np.cos(0.1 * i) * np.sin(x - 0.3 * i))
        return (line,)

    anim = FuncAnimation(fig, update, frames=20, interval=50)
    p = ipybridge.Player(anim)
    p
    """
)
PROBE = 'print(f"frame={p.frame} playing={p.playing} direction={p.direction} fps={p.fps:g} loop={p.loop}")'


def canvas_of(nb: NotebookPage, cell: int, nth: int = 0):
    return nb.output(cell).locator(".ipybridge-player canvas").nth(nth)


def frame_of(canvas) -> int:
    return int(canvas.get_attribute("data-frame"))


def wait_frame(nb: NotebookPage, canvas, predicate, what: str, timeout_s: float = 30) -> int:
    """Poll the painted frame until ``predicate(frame)`` holds (bounded)."""
    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        value = frame_of(canvas)
        seen.append(value)
        if predicate(value):
            return value
        nb.page.wait_for_timeout(30)  # polling interval, bounded by the deadline
    raise AssertionError(f"painted frame never became {what}; saw {seen[-20:]}")


def probe(nb: NotebookPage, cell: int, pattern: str) -> None:
    """Run the probe cell until Python's traits show ``pattern`` (a page change reaches
    the kernel asynchronously, so the first run may see the state just before it)."""
    for _attempt in range(10):
        nb.run_cell(cell)
        nb.wait_cell_done(cell)
        try:
            expect(nb.output(cell)).to_have_text(re.compile(pattern), timeout=2_000)
            return
        except AssertionError:
            pass
    expect(nb.output(cell)).to_have_text(re.compile(pattern))


def button(nb: NotebookPage, cell: int, name: str, nth: int = 0):
    return nb.output(cell).get_by_role("button", name=name, exact=True).nth(nth)


def test_controls_keyboard_python_methods_and_saved_fallback(jupyter, ui):
    nb = jupyter.open(ui, [ANIMATION, PROBE, "p.seek(3)", "p.reverse()", "p.pause()", "p.step(2)"], name="player")
    nb.run_cell(0)
    canvas = canvas_of(nb, 0)
    expect(canvas).to_have_attribute("data-frame", "0")
    player = nb.output(0).locator(".ipybridge-player")
    # The figure is not shown a second time as a static picture (the colour bar's <img> stays hidden
    # for a figure, which has none).
    expect(nb.output(0).locator("img:visible")).to_have_count(0)
    assert canvas.evaluate("c => [c.width, c.height]") == [256, 192]
    for name in ("First", "Prev Frame", "Reverse", "Pause", "Play", "Next Frame", "Last"):
        expect(button(nb, 0, name)).to_have_attribute("title", name)
    for name in ("Frame", "Frame counter", "Speed", "Loop mode", "Displayed fps"):
        expect(player.get_by_label(name, exact=True)).to_have_count(1)

    button(nb, 0, "Next Frame").click()
    expect(canvas).to_have_attribute("data-frame", "1")
    button(nb, 0, "Prev Frame").click()
    expect(canvas).to_have_attribute("data-frame", "0")
    button(nb, 0, "Last").click()
    expect(canvas).to_have_attribute("data-frame", "19")
    expect(player.get_by_label("Frame counter")).to_have_text("19 / 19")
    button(nb, 0, "First").click()
    expect(canvas).to_have_attribute("data-frame", "0")
    player.get_by_label("Frame", exact=True).fill("7")
    expect(canvas).to_have_attribute("data-frame", "7")
    probe(nb, 1, r"frame=7 playing=False direction=1 fps=20 loop=loop")

    # Play forwards: frames advance; Pause stops them and Python agrees.
    button(nb, 0, "Play").click()
    wait_frame(nb, canvas, lambda f: f >= 12, ">= 12")
    expect(player.get_by_label("Displayed fps")).to_have_text(re.compile(r"^(?!0\.0)\d+\.\d fps$"))
    button(nb, 0, "Pause").click()
    paused_at = frame_of(canvas)
    probe(nb, 1, rf"frame={paused_at} playing=False")
    assert frame_of(canvas) == paused_at

    # Reverse plays backwards (through 0 to 19 in loop mode).
    button(nb, 0, "Reverse").click()
    wait_frame(nb, canvas, lambda f: f < paused_at - 2 or f > paused_at, "going backwards")
    button(nb, 0, "Pause").click()
    probe(nb, 1, r"playing=False direction=-1")

    # Keyboard, with the player focused.
    button(nb, 0, "First").click()
    expect(canvas).to_have_attribute("data-frame", "0")
    player.focus()
    nb.page.keyboard.press("ArrowRight")
    expect(canvas).to_have_attribute("data-frame", "1")
    nb.page.keyboard.press("ArrowRight")
    expect(canvas).to_have_attribute("data-frame", "2")
    nb.page.keyboard.press("ArrowLeft")
    expect(canvas).to_have_attribute("data-frame", "1")
    nb.page.keyboard.press("End")
    expect(canvas).to_have_attribute("data-frame", "19")
    nb.page.keyboard.press("Home")
    expect(canvas).to_have_attribute("data-frame", "0")
    nb.page.keyboard.press("Space")
    wait_frame(nb, canvas, lambda f: f >= 3, ">= 3 after Space")
    nb.page.keyboard.press("Space")
    probe(nb, 1, r"playing=False direction=1")
    # Keys the player does not own stay Jupyter's: Shift+Enter
    # from a focused player button runs the player's cell, as from any output.
    button(nb, 0, "Next Frame").click()
    prompt = nb.cell(0).locator(".jp-InputPrompt").first
    count_before = prompt.inner_text()
    nb.page.keyboard.press("Shift+Enter")
    expect(prompt).not_to_have_text(count_before)
    nb.wait_cell_done(0)
    canvas = canvas_of(nb, 0)
    expect(canvas).to_have_attribute("data-frame", "0")  # the re-run cell's new player

    # Speed and loop mode controls set the traits.
    player.get_by_label("Speed").select_option("40")  # the 2x option: twice the base 20 fps
    player.get_by_label("Loop mode").select_option("once")
    probe(nb, 1, r"fps=40 loop=once")
    button(nb, 0, "Play").click()
    wait_frame(nb, canvas, lambda f: f == 19, "19 (the end, in once mode)")
    probe(nb, 1, r"frame=19 playing=False")  # once mode stops at the end

    # Python methods drive the page.
    nb.run_cell(2)  # p.seek(3)
    expect(canvas).to_have_attribute("data-frame", "3")
    nb.run_cell(3)  # p.reverse()
    wait_frame(nb, canvas, lambda f: f == 0, "0 (reverse in once mode)")
    probe(nb, 1, r"frame=0 playing=False direction=-1")
    nb.run_cell(5)  # p.step(2)
    expect(canvas).to_have_attribute("data-frame", "2")

    # The saved notebook holds the image/png fallback next to the widget.
    nb.menu("File", "Save")
    deadline = time.monotonic() + 30
    outputs: list = []
    while time.monotonic() < deadline:
        try:
            saved = json.loads(nb.path.read_text())
        except json.JSONDecodeError:  # read while the server was writing it
            nb.page.wait_for_timeout(200)  # polling the file, bounded by the deadline
            continue
        outputs = saved["cells"][0].get("outputs", [])
        if any("image/png" in o.get("data", {}) for o in outputs):
            break
        nb.page.wait_for_timeout(200)  # polling the file, bounded by the deadline
    data = next(o["data"] for o in outputs if "image/png" in o.get("data", {}))
    assert "application/vnd.jupyter.widget-view+json" in data
    assert base64.b64decode(data["image/png"]).startswith(b"\x89PNG")


TWO_PLAYERS = textwrap.dedent(
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import ipywidgets
    import ipybridge

    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (40, 48, 64, 3), dtype=np.uint8)
    v = ipybridge.Player(video, fps=30)

    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=80)
    (line,) = ax.plot([0, 1], [0, 1])

    def broken(i):
        if i == 5:
            raise ZeroDivisionError(f"frame {i} divides by zero")
        line.set_ydata([0, i / 10])

    b = ipybridge.Player(fig, broken, frames=10, fps=20)
    ipywidgets.HBox([v, b])
    """
)


def test_two_players_numpy_video_and_a_raising_frame_function(jupyter, ui):
    nb = jupyter.open(
        ui,
        [TWO_PLAYERS, "v.seek(3); print(int(video[3].astype(int).sum()))",
         'print("still alive", 6 * 7, b.playing, b.stats["errors"] >= 1)'],
        name="players",
    )  # fmt: skip
    nb.run_cell(0)
    video_canvas, broken_canvas = canvas_of(nb, 0, 0), canvas_of(nb, 0, 1)
    expect(video_canvas).to_have_attribute("data-frame", "0")
    expect(broken_canvas).to_have_attribute("data-frame", "0")
    assert video_canvas.evaluate("c => [c.width, c.height]") == [64, 48]

    # The video frame is painted byte for byte (lossless codec).
    nb.run_cell(1)
    expect(nb.output(1)).to_have_text(re.compile(r"^\d+\s*$"))
    expected = int(nb.output(1).inner_text().strip())
    expect(video_canvas).to_have_attribute("data-frame", "3")
    painted = video_canvas.evaluate(
        """c => { const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                  let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i] + d[i + 1] + d[i + 2]; return s; }"""
    )
    assert painted == expected

    # Both play at once; the broken one stops at frame 4 with the error shown.
    button(nb, 0, "Play", 0).click()
    button(nb, 0, "Play", 1).click()
    error = nb.output(0).locator(".ipybridge-player").nth(1).get_by_role("alert")
    expect(error).to_be_visible()
    expect(error).to_contain_text("ZeroDivisionError: frame 5 divides by zero")
    expect(error).to_contain_text("Frame 5")
    expect(broken_canvas).to_have_attribute("data-frame", "4")
    expect(button(nb, 0, "Play", 1)).to_have_attribute("aria-pressed", "false")
    # The video player keeps playing, and a later cell still runs.
    start = frame_of(video_canvas)
    wait_frame(nb, video_canvas, lambda f: f != start, "a new frame of the video")
    probe(nb, 2, r"still alive 42 False True")
    assert frame_of(broken_canvas) == 4
    # Dismiss the error. Frames play in order, as in matplotlib: Last (frame 9) needs frame 5 first,
    # and says so; the player still works.
    nb.output(0).get_by_role("button", name="Dismiss error").click()
    expect(error).to_be_hidden()
    button(nb, 0, "Last", 1).click()
    expect(error).to_be_visible()
    expect(error).to_contain_text("Frame 9")
    expect(error).to_contain_text("raised by frame 5, applied on the way to frame 9")
    button(nb, 0, "First", 1).click()
    expect(error).to_be_hidden()
    expect(broken_canvas).to_have_attribute("data-frame", "0")


ENDLESS = textwrap.dedent(
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import ipywidgets
    import ipybridge

    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=80)
    (line,) = ax.plot([0, 1], [0, 0])
    ax.set_ylim(-1, 1)

    def update(value):
        line.set_ydata([0, np.sin(value)])

    endless = ipybridge.Player(fig, update, frames=None, fps=0)

    fig2, ax2 = plt.subplots(figsize=(2, 1.5), dpi=80)
    (line2,) = ax2.plot([0, 1], [0, 0])

    def update2(value):
        line2.set_ydata([0, value])

    generated = ipybridge.Player(fig2, update2, frames=(0.1 * i for i in range(12)), fps=30)
    ipywidgets.HBox([endless, generated])
    """
)


def test_endless_and_generator_animations(jupyter, ui):
    nb = jupyter.open(ui, [ENDLESS, 'print(f"frames={generated.frames} playing={generated.playing}")'], name="endless")
    nb.run_cell(0)
    endless, generated = canvas_of(nb, 0, 0), canvas_of(nb, 0, 1)
    players = nb.output(0).locator(".ipybridge-player")
    expect(endless).to_have_attribute("data-frame", "0")
    expect(generated).to_have_attribute("data-frame", "0")
    # Endless: no last frame, the counter says so, and it plays on and on.
    expect(players.nth(0).get_by_label("Frame counter")).to_have_text("0 / ∞")
    expect(button(nb, 0, "Last", 0)).to_be_disabled()
    button(nb, 0, "Play", 0).click()
    wait_frame(nb, endless, lambda f: f >= 150, ">= 150 (endless, unthrottled)")
    button(nb, 0, "Pause", 0).click()
    paused_at = frame_of(endless)
    expect(players.nth(0).get_by_label("Frame counter")).to_have_text(f"{paused_at} / ∞")
    # A generator: its length is learnt when it runs out; loop mode then wraps to 0, with no error.
    expect(players.nth(1).get_by_label("Frame counter")).to_have_text("0 / ∞")
    button(nb, 0, "Play", 1).click()
    wait_frame(nb, generated, lambda f: f == 11, "11, the generator's last value")
    wait_frame(nb, generated, lambda f: f < 11, "back at the start after the last value")
    expect(players.nth(1).get_by_role("alert")).to_be_hidden()
    probe(nb, 1, r"frames=12 playing=True")
    button(nb, 0, "Pause", 1).click()
    expect(players.nth(1).get_by_label("Frame counter")).to_have_text(re.compile(r"^\d+ / 11$"))
    expect(button(nb, 0, "Last", 1)).to_be_enabled()
    button(nb, 0, "Last", 1).click()
    expect(generated).to_have_attribute("data-frame", "11")


CODECS = textwrap.dedent(
    """
    import numpy as np
    import ipywidgets
    import ipybridge

    y, x = np.mgrid[0:48, 0:64]
    video = np.stack([np.stack([(x * 4 + 8 * i) % 256, y * 5, (x + y + 7 * i) % 256], -1) for i in range(10)]).astype(np.uint8)
    as_png = ipybridge.Player(video, codec="png")
    as_jpeg = ipybridge.Player(video, codec="jpeg", quality=90)
    ipywidgets.HBox([as_png, as_jpeg])
    """
)
PIXEL_SUM = """c => { const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i] + d[i + 1] + d[i + 2]; return s; }"""


def test_png_and_jpeg_codecs_paint_the_frame(jupyter, ui):
    nb = jupyter.open(
        ui,
        [CODECS, "as_png.seek(6); as_jpeg.seek(6); print(int(video[6].astype(int).sum()))",
         'as_png.codec = "jpeg"', 'print(as_png.stats["frames_rendered"])'],
        name="codecs",
    )  # fmt: skip
    nb.run_cell(0)
    png, jpeg = canvas_of(nb, 0, 0), canvas_of(nb, 0, 1)
    expect(png).to_have_attribute("data-frame", "0")
    expect(jpeg).to_have_attribute("data-frame", "0")
    nb.run_cell(1)
    expect(nb.output(1)).to_have_text(re.compile(r"^\d+\s*$"))
    expected = int(nb.output(1).inner_text().strip())
    expect(png).to_have_attribute("data-frame", "6")
    expect(jpeg).to_have_attribute("data-frame", "6")
    assert png.evaluate(PIXEL_SUM) == expected  # lossless
    lossy = jpeg.evaluate(PIXEL_SUM)
    assert lossy != expected
    assert abs(lossy - expected) < 0.02 * expected  # close: JPEG at quality 90
    # Changing the codec repaints the current frame in the new encoding.
    nb.run_cell(2)
    deadline = time.monotonic() + 30
    while png.evaluate(PIXEL_SUM) == expected and time.monotonic() < deadline:
        nb.page.wait_for_timeout(50)  # polling the canvas, bounded by the deadline
    repainted = png.evaluate(PIXEL_SUM)
    assert repainted != expected
    assert abs(repainted - expected) < 0.02 * expected
    assert frame_of(png) == 6


INVALIDATE = textwrap.dedent(
    """
    import matplotlib.pyplot as plt
    import ipybridge

    fig = plt.figure(figsize=(1, 1), dpi=50)
    color = "red"

    def update(i):
        fig.set_facecolor(color)

    p = ipybridge.Player(fig, update, frames=10)
    p
    """
)
CORNER = "c => Array.from(c.getContext('2d').getImageData(2, 2, 1, 1).data.slice(0, 3))"


def test_invalidate_repaints_the_current_frame(jupyter, ui):
    nb = jupyter.open(ui, [INVALIDATE, "p.seek(4)", 'color = "blue"', "p.invalidate()"], name="invalidate")
    nb.run_cell(0)
    canvas = canvas_of(nb, 0)
    expect(canvas).to_have_attribute("data-frame", "0")
    nb.run_cell(1)
    expect(canvas).to_have_attribute("data-frame", "4")
    assert canvas.evaluate(CORNER) == [255, 0, 0]
    nb.run_cell(2)
    nb.wait_cell_done(2)
    nb.run_cell(3)
    deadline = time.monotonic() + 30
    while canvas.evaluate(CORNER) != [0, 0, 255] and time.monotonic() < deadline:
        nb.page.wait_for_timeout(50)  # polling the canvas, bounded by the deadline
    assert canvas.evaluate(CORNER) == [0, 0, 255]
    assert frame_of(canvas) == 4
