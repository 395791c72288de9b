"""marimo as a host: the Bridge and the Player in ``marimo edit`` and ``marimo run``, headless Chromium.

marimo renders anywidgets natively (no Jupyter server, no ipykernel): its kernel hands page messages
to widgets between cells, on the thread that runs cells. These tests drive what works there (calls,
printed output, errors, emit, call_js from an exposed function, the Player, native buttons under
marimo's CSS reset), what fails at once with a clear error (``call_js(...).result()`` or ``await`` in a
cell), and what waits: a call made while a cell runs is answered when that cell ends.
"""

from __future__ import annotations

import re
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from .harness import WAIT_MS, MarimoServer, start_marimo, stop_marimo

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

BRIDGE_HTML = """
<button class="add">Add</button> <span class="sum"></span>
<button class="say">Say</button> <pre class="out"></pre>
<button class="fail">Fail</button> <span class="err"></span>
<button class="ping">Ping</button> <span class="log"></span>
<button class="ask">Ask</button> <span class="asked"></span>
"""

BRIDGE_JS = """
const $ = (s) => el.querySelector(s);
$(".add").onclick = async () => { $(".sum").textContent = "..."; $(".sum").textContent = await py.add(1, 2); };
$(".say").onclick = async () => {
  const streams = {stdout: "", stderr: ""};  // a print may arrive in several writes
  const value = await bridge.call("say", ["marimo"], {onOutput: (stream, text) => { streams[stream] += text; }});
  $(".out").textContent = "stdout:" + streams.stdout + "stderr:" + streams.stderr + "=" + value;
};
$(".fail").onclick = async () => {
  try { await py.fail(); } catch (e) { $(".err").textContent = e.name + ": " + e.message; }
};
bridge.on("tick", (n) => { $(".log").textContent = "tick " + n; });
$(".ping").onclick = () => py.ping(7);
bridge.handle("title", () => "answered by the page");
$(".ask").onclick = async () => { $(".asked").textContent = await py.ask(); };
"""

NOTEBOOK = f"""
import marimo

app = marimo.App()


@app.cell
def _():
    import time

    import marimo as mo
    import matplotlib.pyplot as plt
    import numpy as np

    import ipybridge
    return ipybridge, mo, np, plt, time


@app.cell
def _(ipybridge):
    bridge = ipybridge.Bridge(html={BRIDGE_HTML!r}, js={BRIDGE_JS!r})

    # marimo wants each global name defined in one cell: expose cell-private `_names` under public ones.
    @bridge.expose("add")
    def _add(a, b):
        return a + b

    @bridge.expose("say")
    def _say(who):
        print("hello", who)
        return len(who)

    @bridge.expose("fail")
    def _fail():
        raise ValueError("bad input from marimo")

    @bridge.expose("ping")
    def _ping(n):
        bridge.emit("tick", n)

    @bridge.expose("ask")
    async def _ask():
        return await bridge.call_js("title", timeout=10)

    bridge
    return (bridge,)


@app.cell
def _(ipybridge):
    # A second cell exposing `add` too: the README's pattern for marimo's one-definition rule.
    other = ipybridge.Bridge(
        html='<button class="add2">Add</button> <span class="sum2"></span>',
        js='el.querySelector(".add2").onclick = async () => {{ el.querySelector(".sum2").textContent = await py.add(20, 22); }};',
        expose={{"add": lambda a, b: a + b}},
    )
    other
    return


@app.cell
def _(bridge, mo, time):
    # Waiting for the page in a cell cannot work in marimo: it must say so at once.
    _outcomes = []
    for _wait in ("result", "await"):
        _start = time.perf_counter()
        try:
            if _wait == "result":
                bridge.call_js("title").result(timeout=5)
            else:
                await bridge.call_js("title", timeout=5)
            _outcome = "answered"
        except Exception as _exc:
            _outcome = type(_exc).__name__ + ": " + str(_exc)
        _outcomes.append(f"{{_wait}} after {{1000 * (time.perf_counter() - _start):.0f}} ms: {{_outcome}}")
    mo.md("<pre class='blocking'>" + "\\n".join(_outcomes) + "</pre>")
    return


@app.cell
def _(ipybridge, np, plt):
    _x = np.linspace(0, 2 * np.pi, 200)
    _fig, _ax = plt.subplots(figsize=(4, 3))
    (_line,) = _ax.plot(_x, np.sin(_x))

    def _update(i):
        _line.set_ydata(np.sin(_x + i / 10))
        return (_line,)

    player = ipybridge.Player(_fig, _update, frames=1000, fps=30)
    player
    return (player,)


@app.cell
def _(mo):
    busy = mo.ui.run_button(label="Busy for a while")
    busy
    return (busy,)


@app.cell
def _(busy, mo, time):
    _slept = 0.0
    if busy.value:
        _start = time.perf_counter()
        time.sleep(4)
        _slept = time.perf_counter() - _start
    mo.md(f"<span class='slept'>slept {{_slept:.1f}} s</span>")
    return


if __name__ == "__main__":
    app.run()
"""


@pytest.fixture(scope="module")
def notebook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("marimo") / "bridge_app.py"
    path.write_text(textwrap.dedent(NOTEBOOK).lstrip())
    return path


@pytest.fixture(scope="module", params=["edit", "run"])
def marimo(request: pytest.FixtureRequest, notebook: Path) -> Iterator[MarimoServer]:
    server = start_marimo(notebook, str(request.param))
    yield server
    stop_marimo(server)


def open_app(browser: Browser, server: MarimoServer, mode: str) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(WAIT_MS)
    page.goto(server.url)
    if mode == "edit":  # marimo edit opens with the cells not yet run: Run all, as a user would
        page.locator("[data-cell-id]").first.wait_for()
        for _attempt in range(3):  # a click before the kernel is connected is dropped: press again
            page.get_by_test_id("run-button").last.click()
            try:
                page.locator("button.add").wait_for(timeout=20_000)
                break
            except PlaywrightTimeoutError:
                continue
    page.locator("button.add").wait_for()
    return page


def test_bridge_and_player_in_marimo(marimo: MarimoServer, browser: Browser, request: pytest.FixtureRequest) -> None:
    mode = "edit" if "edit" in request.node.name else "run"
    page = open_app(browser, marimo, mode)
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    try:
        # Calls, printed output, errors, events, call_js answered while an exposed function awaits it.
        page.locator("button.add").click()
        expect(page.locator(".sum")).to_have_text("3")
        page.locator("button.say").click()
        expect(page.locator(".out")).to_have_text("stdout:hello marimo\nstderr:=6")
        page.locator("button.fail").click()
        expect(page.locator(".err")).to_have_text("ValueError: bad input from marimo")
        page.locator("button.ping").click()
        expect(page.locator(".log")).to_have_text("tick 7")
        page.locator("button.ask").click()
        expect(page.locator(".asked")).to_have_text("answered by the page")
        # Two cells exposing "add" under marimo's one-definition rule.
        page.locator("button.add2").click()
        expect(page.locator(".sum2")).to_have_text("42")
        # Waiting for the page inside a cell fails at once, saying why, instead of timing out after 5 s.
        blocking = page.locator("pre.blocking")
        expect(blocking).to_contain_text("cannot wait in a marimo cell for the page's answer")
        for line in blocking.inner_text().splitlines():
            match = re.match(r"(result|await) after (\d+) ms: RuntimeError: ", line)
            assert match, line
            assert int(match.group(2)) < 1000, line
        # Native buttons keep the browser's look under marimo's CSS reset (Tailwind preflight).
        style = page.locator("button.add").evaluate(
            "b => { const s = getComputedStyle(b); return [parseFloat(s.borderTopWidth), parseFloat(s.paddingLeft)]; }"
        )
        assert style[0] > 0, style  # Tailwind's preflight: border 0 solid, padding 0
        assert style[1] > 0, style

        # The Player plays.
        canvas = page.locator(".ipybridge-player canvas").first
        page.locator(".ipybridge-player").get_by_role("button", name="Play", exact=True).click()
        page.wait_for_function("c => Number(c.dataset.frame) >= 10", arg=canvas.element_handle(), timeout=WAIT_MS)

        # What waits: a call made while a cell runs is answered when the cell ends (marimo hands page
        # messages to the kernel between cells), and the playing Player buffers meanwhile, then goes on.
        page.locator(".sum").evaluate("s => { s.textContent = ''; }")
        page.get_by_role("button", name="Busy for a while").click()
        page.locator("button.add").click()
        clicked = time.perf_counter()
        expect(page.locator(".sum")).to_have_text("3")
        waited = time.perf_counter() - clicked
        expect(page.locator(".slept")).to_have_text(re.compile(r"slept 4\.\d s"))
        print(f"marimo {mode}: a call made while a 4 s cell ran was answered after {waited:.2f} s")
        resumed_from = int(canvas.get_attribute("data-frame") or 0)
        page.wait_for_function(
            "([c, n]) => Number(c.dataset.frame) >= n + 10",
            arg=[canvas.element_handle(), resumed_from],
            timeout=WAIT_MS,
        )
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"marimo-{mode}.png"), full_page=True)
        (ARTIFACTS / f"marimo-{mode}-console.txt").write_text("\n".join(console))
        (ARTIFACTS / f"marimo-{mode}-server.log").write_text(marimo.log_text())
        raise
    finally:
        page.close()
