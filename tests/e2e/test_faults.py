"""Faults as a user meets them: interrupts, hung functions, restarts, reloads, slow frames.

Each test drives JupyterLab 4 (and Notebook 7 where the UI differs) like a user —
menus, buttons, reloads — and asserts what the user sees: the rejection's
name in the page, the player's overlay and canvas, a next call that works.
"""

from __future__ import annotations

import re
import textwrap
import time

import pytest
from playwright.sync_api import expect

from .harness import NotebookPage

# The page writes each call's outcome into #out-<name>; functions announce they started.
CALLS_JS = textwrap.dedent(
    r"""
    const out = (name) => el.querySelector("#out-" + name);
    bridge.on("started", (name) => { el.querySelector("#started").textContent += name + ";"; });
    for (const button of el.querySelectorAll("button")) {
      const name = button.dataset.call;
      button.onclick = () => {
        out(name).textContent = "pending";
        const options = button.dataset.timeout ? {timeout: Number(button.dataset.timeout)} : {};
        bridge.call(name, [], options).then(
          (value) => { out(name).textContent = "ok:" + value; },
          (error) => { out(name).textContent = error.name; },
        );
      };
    }
    """
)


def calls_html(*names: str, timeouts: dict[str, int] | None = None) -> str:
    timeouts = timeouts or {}
    parts = ['<div id="started"></div>']
    for name in names:
        timeout = f' data-timeout="{timeouts[name]}"' if name in timeouts else ""
        parts.append(f'<button id="go-{name}" data-call="{name}"{timeout}>{name}</button><span id="out-{name}"></span>')
    return "".join(parts)


def click_call(nb: NotebookPage, name: str) -> None:
    nb.page.locator(f"#go-{name}").click()
    expect(nb.page.locator(f"#out-{name}")).not_to_have_text("")


INTERRUPT_SETUP = textwrap.dedent(
    """
    import asyncio, time, ipybridge
    stopped = []
    b = ipybridge.Bridge(html=HTML, js=JS)

    @b.expose
    def spin():  # pure Python: the interrupt raises KeyboardInterrupt in it
        b.emit("started", "spin")
        try:
            while True:
                pass
        except KeyboardInterrupt:
            stopped.append("spin")
            raise

    @b.expose
    async def wait_long():  # async: the interrupt cancels the task
        b.emit("started", "wait_long")
        try:
            await asyncio.sleep(600)
        except asyncio.CancelledError:
            stopped.append("wait_long")
            raise

    @b.expose
    def nap():  # stuck in C: the call is rejected at once and its thread left behind
        b.emit("started", "nap")
        time.sleep(600)

    @b.expose
    def ping():
        return "pong"
    b
    """
)


def test_kernel_interrupt_rejects_calls_and_the_bridge_keeps_working(jupyter, ui):
    html = calls_html("spin", "wait_long", "nap", "ping")
    cells = [
        f"HTML = {html!r}\nJS = {CALLS_JS!r}",
        INTERRUPT_SETUP,
        "print(sorted(stopped))",
        "import time\nprint('busy cell starts')\nwhile True:\n    time.sleep(0.05)",
        "print('after the interrupt', 6 * 7)",
        "import asyncio\nprint('async cell starts')\nwhile True:\n    await asyncio.sleep(0.05)",
    ]
    nb = jupyter.open(ui, cells, name="interrupt")
    nb.run_cell(0)
    nb.run_cell(1)
    expect(nb.page.locator("#go-ping")).to_be_visible()
    click_call(nb, "ping")
    expect(nb.page.locator("#out-ping")).to_have_text("ok:pong")

    # No cell running: a sync call spinning in Python and an async call, interrupted like a user does.
    click_call(nb, "spin")
    click_call(nb, "wait_long")
    expect(nb.page.locator("#started")).to_contain_text("spin;")
    expect(nb.page.locator("#started")).to_contain_text("wait_long;")
    expect(nb.page.locator("#out-spin")).to_have_text("pending")
    nb.interrupt_kernel()
    expect(nb.page.locator("#out-spin")).to_have_text("KeyboardInterrupt")
    expect(nb.page.locator("#out-wait_long")).to_have_text("KeyboardInterrupt")
    click_call(nb, "ping")
    expect(nb.page.locator("#out-ping")).to_have_text("ok:pong")
    # Python saw it too: the loop got KeyboardInterrupt, the task was cancelled.
    nb.run_cell(2)
    nb.wait_cell_done(2)
    expect(nb.output(2)).to_have_text("['spin', 'wait_long']")

    # A cell runs at the same time as a call stuck in C: both are interrupted.
    nb.run_cell(3)
    expect(nb.output(3)).to_contain_text("busy cell starts")
    click_call(nb, "nap")
    expect(nb.page.locator("#started")).to_contain_text("nap;")
    nb.interrupt_kernel()
    expect(nb.page.locator("#out-nap")).to_have_text("KeyboardInterrupt")
    nb.wait_cell_done(3)
    # The cell's traceback (ipybridge's warning that it left the stuck thread may come after it, 0.5 s on).
    expect(nb.cell(3).locator(".jp-OutputArea")).to_contain_text("KeyboardInterrupt")
    # The thread stuck in time.sleep is left behind: later calls are served at once.
    click_call(nb, "ping")
    expect(nb.page.locator("#out-ping")).to_have_text("ok:pong")
    nb.run_cell(4)
    nb.wait_cell_done(4)
    expect(nb.output(4)).to_have_text("after the interrupt 42")

    # A cell with top-level await (ipykernel cancels it on SIGINT with its own handler).
    nb.run_cell(5)
    expect(nb.output(5).first).to_contain_text("async cell starts")
    click_call(nb, "nap")
    expect(nb.page.locator("#started")).to_have_text(re.compile(r"nap;.*nap;"))
    nb.interrupt_kernel()
    expect(nb.page.locator("#out-nap")).to_have_text("KeyboardInterrupt")
    nb.wait_cell_done(5)
    click_call(nb, "ping")
    expect(nb.page.locator("#out-ping")).to_have_text("ok:pong")


def test_a_function_that_never_returns_times_out_and_frees_the_worker(jupyter, ui):
    html = calls_html("hang", "other", "hang_forever", timeouts={"hang": 1500})
    setup = textwrap.dedent(
        """
        import threading, ipybridge
        never = threading.Event()
        b = ipybridge.Bridge(html=HTML, js=JS)

        @b.expose
        def hang():
            b.emit("started", "hang")
            never.wait()  # never returns

        @b.expose
        def hang_forever():  # called without a timeout: stays pending
            never.wait()

        @b.expose
        def other():
            return "served"
        b
        """
    )
    nb = jupyter.open(ui, [f"HTML = {html!r}\nJS = {CALLS_JS!r}", setup], name="hung")
    nb.run_cell(0)
    nb.run_cell(1)
    expect(nb.page.locator("#go-hang")).to_be_visible()
    click_call(nb, "hang")
    expect(nb.page.locator("#out-hang")).to_have_text("TimeoutError")
    # The next sync call is not stuck behind the hung one.
    click_call(nb, "other")
    expect(nb.page.locator("#out-other")).to_have_text("ok:served")
    # A hung call without a timeout stays pending, and still does not block the others
    # for good: abandoning needs a timeout, an abort or an interrupt.
    click_call(nb, "hang_forever")
    nb.interrupt_kernel()
    expect(nb.page.locator("#out-hang_forever")).to_have_text("KeyboardInterrupt")
    click_call(nb, "other")
    expect(nb.page.locator("#out-other")).to_have_text("ok:served")


SLOW_PLAYER = textwrap.dedent(
    """
    import time
    import matplotlib.pyplot as plt
    import numpy as np
    import ipybridge

    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=80)
    (line,) = ax.plot([0, 1], [0, 1])
    ax.set_ylim(-1, 101)

    def draw(i):
        time.sleep(SECONDS_PER_FRAME)
        line.set_ydata([0, i])

    p = ipybridge.Player(fig, draw, frames=100, fps=20)
    p
    """
)


def canvas_of(nb: NotebookPage, cell: int):
    return nb.output(cell).locator(".ipybridge-player canvas").first


def painted(canvas) -> int:
    return int(canvas.get_attribute("data-frame"))


def wait_painted(nb: NotebookPage, canvas, predicate, what: str, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    seen: list[int] = []
    while time.monotonic() < deadline:
        value = painted(canvas)
        seen.append(value)
        if predicate(value):
            return value
        nb.page.wait_for_timeout(50)  # polling, bounded by the deadline
    raise AssertionError(f"painted frame never became {what}; saw {seen[-20:]}")


def player_button(nb: NotebookPage, cell: int, name: str):
    return nb.output(cell).locator(".ipybridge-player").first.get_by_role("button", name=name, exact=True)


@pytest.mark.parametrize("ending", ["restart", "shutdown"])
def test_player_says_the_kernel_is_gone_and_a_new_one_plays(jupyter, ui, ending):
    # A first cell, so the player's prompt number differs after the restart ([2] -> [1]).
    cells = ["print('first')", SLOW_PLAYER.replace("SECONDS_PER_FRAME", "0.02")]
    nb = jupyter.open(ui, cells, name="player-gone")
    nb.run_cell(0)
    nb.run_cell(1)
    canvas = canvas_of(nb, 1)
    expect(canvas).to_have_attribute("data-frame", "0")
    player_button(nb, 1, "Play").click()
    wait_painted(nb, canvas, lambda f: f >= 3, ">= 3")
    player = nb.output(1).locator(".ipybridge-player").first
    gone = player.locator(".ipb-gone")
    # The page notes when the overlay appears (the test's own clock would add its latency).
    player.evaluate(
        """el => { const box = el.querySelector(".ipb-gone");
                   new MutationObserver(() => { if (!box.hidden) el.dataset.goneAt ??= String(Date.now()); })
                     .observe(box, {attributes: true, childList: true}); }"""
    )

    confirmed_at = nb.restart_kernel() if ending == "restart" else nb.shutdown_kernel()
    expect(gone).to_be_visible()
    expected = "restarting" if ending == "restart" else r"(shutting down|shut down)"
    expect(gone).to_have_text(re.compile(rf"^Kernel gone: the kernel (is|was) {expected}\. Re-run the cell"))
    assert float(player.get_attribute("data-gone-at")) - confirmed_at < 2000
    # Playing stopped: the buttons say so and the painted frame stays put.
    expect(player_button(nb, 1, "Play")).to_have_attribute("aria-pressed", "false")
    expect(player).not_to_have_class(re.compile(r"\bipb-playing\b"))
    stopped_at = painted(canvas)
    player_button(nb, 1, "Play").click()  # a user tries anyway: nothing to play with
    expect(player_button(nb, 1, "Play")).to_have_attribute("aria-pressed", "false")
    expect(gone).to_be_visible()
    assert painted(canvas) == stopped_at

    if ending == "shutdown":
        start_new_kernel(nb)
    nb.wait_kernel_idle()
    # Re-running the cell gives a player that plays again. (Keys pressed inside the player
    # are the player's: a user first clicks elsewhere in the notebook, as here.)
    nb.cell(0).locator(".jp-InputPrompt").first.click()
    nb.run_cell(1)
    nb.wait_cell_done(1)
    new_canvas = canvas_of(nb, 1)
    expect(new_canvas).to_have_attribute("data-frame", "0")
    expect(nb.output(1).locator(".ipybridge-player .ipb-gone")).to_be_hidden()
    player_button(nb, 1, "Play").click()
    wait_painted(nb, new_canvas, lambda f: f >= 3, ">= 3 in the new player")


def start_new_kernel(nb: NotebookPage) -> None:
    """After a shutdown: Kernel > Change Kernel..., keep the suggested Python kernel."""
    nb.menu("Kernel", "Change Kernel")
    nb.page.locator(".jp-Dialog .jp-mod-accept").click()


def test_reload_mid_playback_restores_a_player_that_plays(jupyter, ui):
    cells = [
        SLOW_PLAYER.replace("SECONDS_PER_FRAME", "0.25"),
        "print('kernel answers', 6 * 7, '- views:', len(p._core.views))",
    ]
    nb = jupyter.open(ui, cells, name="player-reload")
    nb.run_cell(0)
    canvas = canvas_of(nb, 0)
    expect(canvas).to_have_attribute("data-frame", "0")
    player_button(nb, 0, "Play").click()
    wait_painted(nb, canvas, lambda f: f >= 2, ">= 2")
    # Save, so the reloaded notebook holds the widget's output; reload mid-playback
    # while frame requests are in flight.
    nb.menu("File", "Save")
    deadline = time.monotonic() + 30
    while "widget-view" not in nb.path.read_text() and time.monotonic() < deadline:
        nb.page.wait_for_timeout(100)  # polling the file, bounded by the deadline
    before_reload = painted(canvas)
    nb.page.reload()
    nb.cells.first.wait_for()
    nb.wait_kernel_idle()
    # The view is restored from the kernel's widget state and plays on from where it was.
    canvas = canvas_of(nb, 0)
    expect(canvas).to_be_visible()
    wait_painted(nb, canvas, lambda f: f > before_reload, f"> {before_reload} after the reload")
    # The kernel was not wedged by the old page's requests: a cell runs, Pause works.
    nb.run_cell(1)
    nb.wait_cell_done(1)
    # The old page said bye as it unloaded: the kernel serves the new view only.
    expect(nb.output(1)).to_have_text("kernel answers 42 - views: 1")
    player_button(nb, 0, "Pause").click()
    expect(player_button(nb, 0, "Pause")).to_have_attribute("aria-pressed", "true")


def test_slow_frames_show_buffering_and_controls_stay_responsive(jupyter):
    # draw(i) depends on i alone, so its author declares it pure: Last then draws frame 99 by itself
    # (in the default sequential mode the Player, like matplotlib, would first apply frames 1..98).
    slow = SLOW_PLAYER.replace("SECONDS_PER_FRAME", "2").replace("fps=20)", "fps=20, pure=True)")
    cells = [slow, 'print("rendered", p.stats["frames_rendered"])']
    nb = jupyter.open("lab", cells, name="player-slow")
    nb.run_cell(0)
    canvas = canvas_of(nb, 0)
    expect(canvas).to_have_attribute("data-frame", "0", timeout=30_000)
    player = nb.output(0).locator(".ipybridge-player").first
    buffering = player.get_by_role("status", name="Buffering")
    player_button(nb, 0, "Play").click()
    expect(buffering).to_be_visible()  # frame 1 takes seconds: the user is told
    wait_painted(nb, canvas, lambda f: f >= 2, ">= 2 (frames arrive when ready)")
    # Pause takes effect at once, even while the kernel is still drawing.
    player_button(nb, 0, "Pause").click()
    expect(player_button(nb, 0, "Pause")).to_have_attribute("aria-pressed", "true")
    expect(buffering).to_be_hidden()
    paused_at = painted(canvas)
    # Frames drawn after the pause do not move the picture.
    for _attempt in range(30):
        nb.run_cell(1)
        nb.wait_cell_done(1)
        rendered = int(nb.output(1).inner_text().split()[-1])
        if rendered >= paused_at + 2:
            break
        nb.page.wait_for_timeout(500)  # the kernel draws a frame every 2 s; bounded by the attempts
    assert rendered >= paused_at + 2, rendered
    assert painted(canvas) == paused_at
    # Stepping and scrubbing to cached frames paints them without waiting for the kernel
    # (which takes 2 s per frame): well within one frame time.
    player_button(nb, 0, "First").click()
    expect(canvas).to_have_attribute("data-frame", "0", timeout=1500)
    player_button(nb, 0, "Next Frame").click()
    expect(canvas).to_have_attribute("data-frame", "1", timeout=1500)
    player.get_by_label("Frame", exact=True).fill(str(paused_at))
    expect(canvas).to_have_attribute("data-frame", str(paused_at), timeout=1500)
    # A frame not drawn yet: buffering while paused too, and the frame arrives when ready.
    player_button(nb, 0, "Last").click()
    expect(buffering).to_be_visible()
    expect(canvas).to_have_attribute("data-frame", "99", timeout=30_000)
    expect(buffering).to_be_hidden()


KERNEL_SETUP = textwrap.dedent(
    """
    from ipybridge._core import BridgeCore
    sent = []
    core = BridgeCore(lambda content, buffers: sent.append(content))

    def spin():
        while True:
            pass

    core.expose(spin)

    def call(ident):
        core.receive({"ipb": 1, "msgs": [{"type": "hello", "view": "v"},
                     {"type": "call", "view": "v", "id": ident, "name": "spin", "args": [], "kwargs": {}}]}, [])

    def errors():
        return sorted((i["id"], i["error"]["ename"]) for m in sent for i in m["msgs"] if i["type"] == "error")
    """
)


@pytest.mark.parametrize("mode", ["signal", "message"])
def test_interrupt_in_either_interrupt_mode_reaches_calls(mode):
    """Without a browser: a kernel interrupted by SIGINT from the server ("signal") or by a
    control-channel interrupt_request ("message") rejects a call spinning on the worker."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:

        def evaluate(expression: str) -> str:
            for _attempt in range(5):
                chunks: list[str] = []

                def on_output(msg: dict, chunks: list[str] = chunks) -> None:
                    if msg["msg_type"] == "stream":
                        chunks.append(msg["content"]["text"])

                reply = kc.execute_interactive(f"print({expression})", timeout=30, output_hook=on_output)
                if reply["content"].get("ename") == "KeyboardInterrupt":
                    continue  # the interrupt landed in this probe cell, as it may: ask again
                assert reply["content"]["status"] == "ok", reply["content"]
                return "".join(chunks).strip()
            raise AssertionError("every probe cell was interrupted")

        def interrupt() -> None:
            if mode == "signal":
                km.interrupt_kernel()  # SIGINT from outside, as the server sends it
            else:  # an interrupt_request on the control channel: ipykernel signals itself
                kc.control_channel.send(kc.session.msg("interrupt_request", {}))
                reply = kc.control_channel.get_msg(timeout=30)
                assert reply["content"]["status"] == "ok", reply["content"]

        kc.execute_interactive(KERNEL_SETUP, timeout=30)
        for ident in (1, 2):  # twice: the handler stays in place after the first interrupt
            kc.execute_interactive(f"call({ident})", timeout=30)
            deadline = time.monotonic() + 20
            while evaluate("core._worker.running() is not None") != "True":
                assert time.monotonic() < deadline, "the call never started"
            interrupt()
            expected = str([(i, "KeyboardInterrupt") for i in range(1, ident + 1)])
            deadline = time.monotonic() + 20
            while (seen := evaluate("errors()")) != expected:
                assert time.monotonic() < deadline, f"saw {seen}"
                time.sleep(0.1)  # polling the kernel, bounded by the deadline
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
