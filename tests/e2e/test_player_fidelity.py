"""The Player paints what matplotlib draws, pixel for pixel, in a real page at devicePixelRatio 2.

One notebook per UI: the kernel builds a representative set of tests/animation_zoo.py
twice, once for matplotlib's own frames (Animation.save, at twice the dpi) and once
for the Players, and prints each reference frame's SHA-256. The page records the
SHA-256 of the canvas's pixels every time a Player paints (a MutationObserver on
the canvas's data-frame, read right after the paint), while the test plays each
animation through, presses Last, drags the slider, steps back and plays Reverse.
Every painted frame must equal matplotlib's frame of the same index. Exhaustive
orders for every animation are in tests/unit/test_player_fidelity.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import expect

TESTS = Path(__file__).resolve().parents[1]


def module_text(name: str) -> str:
    text = (TESTS / name).read_text()
    return text.replace("from __future__ import annotations\n", "")


# (zoo entry, how the test drives it): "play" = Play through, Last, slider seeks, Prev, Reverse;
# "seek" = Last first (frames never drawn are fast-forwarded), slider back (replayed from init), Reverse.
CASES = [
    ("wave_blit_init", "play"),
    ("strip_chart_generator", "play"),
    ("random_walk_reset_in_init", "play"),
    ("random_walk_reset_in_init", "seek"),
    ("random_histogram_hidden_state", "play"),
    ("decaying_trace_3d", "seek"),
    ("imshow_and_pcolormesh", "play"),
    ("artist_images_blit", "seek"),
    ("artist_line_lists", "play"),
    ("pyplot_state", "play"),
    ("pyplot_text_blit", "play"),
    ("timed_subclass", "seek"),
    ("bayes_update", "play"),
]

SETUP = module_text("mpl_reference.py") + "\n" + module_text("animation_zoo.py")

REFERENCES = f"""
import hashlib, json, warnings
import matplotlib.pyplot as plt
CASES = {CASES!r}
sha = {{}}
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    for name, _ in CASES:
        entry = ZOO[name]
        grab = window_frames if entry.reference == "window" else reference_frames
        frames = grab(lambda: as_animation(entry.make()), entry.frames, 2.0)
        sha[name] = [hashlib.sha256(f.tobytes()).hexdigest() for f in frames]
plt.close("all")
print(json.dumps(sha))
"""

PLAYERS = """
import ipybridge, ipywidgets
players = []
for name, _ in CASES:
    p = player_of(ZOO[name], ipybridge.Player)
    p.fps, p.loop = 60, "once"
    players.append(p)
print("no figure left in pyplot:", plt.get_fignums() == [])
ipywidgets.VBox(players)
"""

NEXT_CELL = "print('figures in pyplot:', plt.get_fignums())"

RECORDER = """
(canvas) => {
  window.__painted = window.__painted || new Map();
  const log = [];
  window.__painted.set(canvas, log);
  const ctx = canvas.getContext("2d");
  const record = () => {
    const index = Number(canvas.dataset.frame);
    if (index < 0) return;
    const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    const entry = { index, sha: null, size: [canvas.width, canvas.height] };
    log.push(entry);
    crypto.subtle.digest("SHA-256", pixels).then((d) => {
      entry.sha = Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
    });
  };
  new MutationObserver(record).observe(canvas, { attributes: true, attributeFilter: ["data-frame"] });
  record();
}
"""


def painted(canvas) -> list[dict]:
    return canvas.evaluate("c => window.__painted.get(c).map(e => ({...e}))")


def drive(players, canvases, lengths: list[int], hows: list[str]) -> None:
    """Every player at once: Play through (or Last first), slider seeks, Prev, Reverse to frame 0."""

    def at(i: int, index: int) -> None:
        expect(canvases[i]).to_have_attribute("data-frame", str(index))

    def button(i: int, name: str):
        return players.nth(i).get_by_role("button", name=name, exact=True)

    everyone = range(len(lengths))
    for i in everyone:
        button(i, "Play" if hows[i] == "play" else "Last").click()
    for i in everyone:
        at(i, lengths[i] - 1)
        expect(players.nth(i)).not_to_have_class(re.compile("ipb-playing"))
    for i in everyone:
        if hows[i] == "play":
            button(i, "Last").click()
    for step in range(3):
        for i in everyone:
            n = lengths[i]
            index = (n // 2, 1, n - 2)[step] if hows[i] == "play" else (n // 2, 1, n - 3)[step]
            players.nth(i).get_by_label("Frame", exact=True).fill(str(index))
            at(i, index)
    for i in everyone:
        button(i, "Prev Frame").click()
        button(i, "Reverse").click()
    for i in everyone:
        at(i, 0)
        expect(players.nth(i)).not_to_have_class(re.compile("ipb-playing"))


def check_ui(jupyter, ui: str) -> None:
    nb = jupyter.open(ui, [SETUP, REFERENCES, PLAYERS, NEXT_CELL], name="fidelity", device_scale_factor=2)
    for cell in range(3):
        nb.run_cell(cell)
        nb.wait_cell_done(cell)
    want = json.loads(nb.output(1).inner_text())
    expect(nb.output(2).first).to_contain_text("no figure left in pyplot: True")
    players = nb.output(2).locator(".ipybridge-player")
    expect(players).to_have_count(len(CASES))
    canvases = [players.nth(i).locator("canvas") for i in range(len(CASES))]
    for canvas in canvases:
        expect(canvas).to_have_attribute("data-frame", "0")
        canvas.evaluate(RECORDER)
    # HiDPI: twice the CSS pixels in the canvas; the picture keeps its CSS size.
    size = canvases[0].evaluate("c => [c.width, c.height, c.getBoundingClientRect().width, devicePixelRatio]")
    assert size == [240, 180, 120, 2], size

    drive(players, canvases, [len(want[name]) for name, _ in CASES], [how for _, how in CASES])

    for i, (name, how) in enumerate(CASES):
        nb.page.wait_for_function("c => window.__painted.get(c).every(e => e.sha)", arg=canvases[i].element_handle())
        log = painted(canvases[i])
        assert log, name
        shown = {e["index"] for e in log}
        expected = set(range(len(want[name]))) if how == "play" else {0, len(want[name]) - 1}
        assert shown >= expected, (name, sorted(shown))  # playing through paints every frame
        wrong = [e["index"] for e in log if e["sha"] != want[name][e["index"]]]
        assert not wrong, (
            f"{name} ({how}): frames {wrong} differ from matplotlib's; painted {[e['index'] for e in log]}"
        )
    # The window moves to a screen of ratio 1: the player follows and asks for frames at it. (Headless
    # Chromium's emulated ratio change fires neither the media query's change nor a resize: the next
    # step a user takes shows it.)
    cdp = nb.page.context.new_cdp_session(nb.page)
    cdp.send(
        "Emulation.setDeviceMetricsOverride", {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False}
    )
    players.nth(0).get_by_role("button", name="First", exact=True).click()
    nb.page.wait_for_function(
        "c => c.width === 120 && c.getBoundingClientRect().width === 120", arg=canvases[0].element_handle()
    )
    # Nothing leaked into the next cell: no stray figure, no static image.
    nb.run_cell(3)
    nb.wait_cell_done(3)
    expect(nb.output(3)).to_have_text("figures in pyplot: []")
    expect(nb.output(2).locator("img:visible")).to_have_count(0)  # (a Player's colour-bar <img> is hidden)


def test_players_paint_matplotlibs_frames_at_ratio_2(jupyter, ui):
    check_ui(jupyter, ui)


# The first frame a displayed Player paints is its poster: the frame the kernel drew for the output's
# static picture, sent with the widget's state and decoded by the page itself (docs/player.md, "First
# frame"). At devicePixelRatio 1 it must be matplotlib's frame 0 too, painted as the view renders.
POSTER_CASES = ["wave_blit_init", "random_walk_reset_in_init", "decaying_trace_3d", "imshow_and_pcolormesh",
                "pyplot_text_blit", "bayes_update"]  # fmt: skip

POSTER_REFERENCES = f"""
import hashlib, json, warnings
import matplotlib.pyplot as plt
POSTER_CASES = {POSTER_CASES!r}
sha = {{}}
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    for name in POSTER_CASES:
        entry = ZOO[name]
        grab = window_frames if entry.reference == "window" else reference_frames
        sha[name] = hashlib.sha256(grab(lambda: as_animation(entry.make()), 1, 1.0)[0].tobytes()).hexdigest()
plt.close("all")
print(json.dumps(sha))
"""

POSTER_PLAYERS = """
import ipybridge
from IPython.display import display
posters = [player_of(ZOO[name], ipybridge.Player) for name in POSTER_CASES]
for p in posters:
    display(p)
"""

#: Every Player canvas the page shows: its pixels when it first shows frame 0, and whether frame 0 was
#: already painted when the canvas was first seen (the poster, painted as the view renders).
FIRST_PAINTS = """
() => {
  window.__first = [];
  const seen = new Set();
  const look = () => {
    for (const canvas of document.querySelectorAll(".ipybridge-player canvas")) {
      const first = !seen.has(canvas);
      seen.add(canvas);
      if (canvas.__recorded || canvas.dataset.frame !== "0") continue;
      canvas.__recorded = true;
      const entry = { atOnce: first, sha: null };
      window.__first.push(entry);
      const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      crypto.subtle.digest("SHA-256", pixels).then((d) => {
        entry.sha = Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
      });
    }
  };
  new MutationObserver(look).observe(document.body, {
    subtree: true, childList: true, attributes: true, attributeFilter: ["data-frame"],
  });
}
"""


def test_the_first_frame_is_the_poster_and_matplotlibs_frame_0(jupyter, ui):
    nb = jupyter.open(ui, [SETUP, POSTER_REFERENCES, POSTER_PLAYERS], name="poster")
    for cell in range(2):
        nb.run_cell(cell)
        nb.wait_cell_done(cell)
    want = json.loads(nb.output(1).inner_text())
    nb.page.evaluate(FIRST_PAINTS)
    nb.run_cell(2)
    nb.wait_cell_done(2)
    expect(nb.output(2).locator(".ipybridge-player canvas")).to_have_count(len(POSTER_CASES))
    nb.page.wait_for_function(
        "n => window.__first.length === n && window.__first.every(e => e.sha)", arg=len(POSTER_CASES)
    )
    first = nb.page.evaluate("window.__first")
    assert [e["atOnce"] for e in first] == [True] * len(POSTER_CASES), first
    wrong = [name for name, e in zip(POSTER_CASES, first, strict=True) if e["sha"] != want[name]]
    assert not wrong, f"first frames differ from matplotlib's frame 0: {wrong}"
