"""The direct transport as a user meets it, in JupyterLab 4 and Notebook 7.

One notebook per UI: a Bridge connects directly (through ipybridge.server's
relay: this server has the extension), calls and events take that path, a call
made while a cell runs is answered at once, a socket killed mid-call falls back
to the comm with the call answered once and run once, hostile connections are
refused while the comm keeps working, and a Bridge with ``direct = False``
stays on the comm.
"""

from __future__ import annotations

import json
import re
import textwrap
import time

from playwright.sync_api import expect

from .harness import NotebookPage

# Every WebSocket the page opens, so the test can kill ipybridge's mid-call as a network failure would.
RECORD_SOCKETS = """
(() => {
  const Original = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Original {
    constructor(...args) { super(...args); window.__sockets.push(this); }
  };
})();
"""

JS = textwrap.dedent(
    r"""
    const show = (id, text) => { el.querySelector("#" + id).textContent = text; };
    (globalThis.__bridges ??= {})[el.querySelector("[data-name]").dataset.name] = bridge;
    bridge.on("ping", (n) => show("event", "event:" + n));
    el.querySelector("#add").onclick = async () => show("sum", "sum:" + await py.add(2, 3));
    el.querySelector("#talk").onclick = async () => {
      const out = {stdout: "", stderr: ""};  // a print may arrive in several pieces: join them per stream
      const value = await bridge.call("talk", [], {onOutput: (stream, text) => { out[stream] += text; }});
      show("talk-out", `stdout:${out.stdout.trim()}|stderr:${out.stderr.trim()}|${value}`);
    };
    el.querySelector("#big").onclick = async () => {
      // 64 MB each way: over 8 MiB, so the page sends it as parts (Blobs); the answer comes as one message.
      const n = 8_000_000, a = new Float64Array(n);
      for (let i = 0; i < n; i++) a[i] = i * 0.5;
      const started = performance.now();
      const back = await py.echo_array(a);
      const ms = Math.round(performance.now() - started);
      let same = back.data instanceof Float64Array && back.data.length === n;
      for (let i = 0; same && i < n; i++) same = back.data[i] === a[i];
      show("big-out", `big:${same}:${bridge.transport}:${ms}`);
    };
    el.querySelector("#slow").onclick = () => {
      show("slow-out", "pending");
      let printed = "";
      bridge.call("slow", [], {onOutput: (stream, text) => { printed += text; }}).then(
        (v) => show("slow-out", "ok:" + v + "|" + printed.trim().split("\n").join("|")),
        (e) => show("slow-out", e.name));
    };
    """
)
HTML = (
    '<div data-name="NAME"></div><button id="add">add</button><span id="sum"></span>'
    '<button id="talk">talk</button><span id="talk-out"></span><span id="event"></span>'
    '<button id="slow">slow</button><span id="slow-out"></span>'
    '<button id="big">big</button><span id="big-out"></span>'
)
SETUP = textwrap.dedent(
    """
    import threading, time, ipybridge
    runs = {"slow": 0}
    started, armed = threading.Event(), threading.Event()

    def make(name, **kwargs):
        b = ipybridge.Bridge(html=HTML.replace("NAME", name), js=JS, **kwargs)

        @b.expose
        def add(a, b_):
            return a + b_

        @b.expose
        def talk():
            print("hello")
            print("oops", file=__import__("sys").stderr)
            return "done"

        @b.expose
        def echo_array(a):
            n = 8_000_000
            assert a.dtype == "float64" and a.shape == (n,) and a[-1] == (n - 1) * 0.5, (a.dtype, a.shape, a[-1])
            return a

        @b.expose
        def peak_rss_mb():
            import resource
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024

        @b.expose
        def slow():
            runs["slow"] += 1
            started.set()
            armed.wait(30)  # the test is ready to drop the socket under this print
            print("before the drop")
            time.sleep(1.5)
            print("after the drop")
            return runs["slow"]

        return b

    b = make("direct")
    b
    """
)
RELAY = textwrap.dedent(
    """
    ipybridge.Bridge.direct = "relay"  # through the Jupyter server (ipybridge.server), not loopback
    r = make("relay")
    ipybridge.Bridge.direct = True
    r
    """
)
COMM_ONLY = textwrap.dedent(
    """
    c = make("comm", )
    c.direct = False  # too late for this widget: read at creation
    ipybridge.Bridge.direct = False
    c2 = make("comm")
    ipybridge.Bridge.direct = True
    c2
    """
)
BUSY_CELL = "time.sleep(6); 'cell done'"
PLAYER = textwrap.dedent(
    """
    import numpy as np
    video = np.random.default_rng(0).integers(0, 256, (600, 48, 64, 3), dtype=np.uint8)
    v = ipybridge.Player(video, fps=60)
    v
    """
)
# The view connects directly once it said hello over the comm, after its first paint: a user asking at once may
# still see "comm"; this cell asks until it is "direct" (bounded).
PLAYER_TRANSPORT = textwrap.dedent(
    """
    import time
    deadline = time.monotonic() + 30
    while v.transport != "direct" and time.monotonic() < deadline:
        time.sleep(0.05)
    print("player-transport", v.transport)
    """
)
# Counts every message the kernel sends (shell replies, iopub: status, comm messages, streams) by type.
KERNEL_COUNT = textwrap.dedent(
    """
    import json
    _session = get_ipython().kernel.session
    _sent, _send = [], _session.send

    def _counting_send(stream, msg_or_type, *args, **kwargs):
        _sent.append(msg_or_type if isinstance(msg_or_type, str) else msg_or_type.get("msg_type", "?"))
        return _send(stream, msg_or_type, *args, **kwargs)

    _session.send = _counting_send
    print("counting")
    """
)
KERNEL_SENT = 'print("kernel-sent", json.dumps(_sent)); _sent.clear()'
# Waits (bounded) until the widget's worker has nothing left, then says how often slow() ran.
RUNS = textwrap.dedent(
    """
    deadline = time.monotonic() + 10
    while b._core.debug_stats()["running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    print("runs", runs["slow"], "idle" if not b._core.debug_stats()["running"] else "busy")
    """
)


def bridge_eval(nb: NotebookPage, name: str, expression: str) -> object:
    return nb.page.evaluate(f"(() => {{ const bridge = globalThis.__bridges[{name!r}]; return {expression}; }})()")


def wait_transport(nb: NotebookPage, name: str, transport: str) -> None:
    nb.page.wait_for_function(f"() => globalThis.__bridges?.[{name!r}]?.transport === {transport!r}", timeout=30_000)


def test_direct_path_calls_falls_back_and_refuses_strangers(jupyter, ui) -> None:  # type: ignore[no-untyped-def]
    cells = [
        f"HTML = {HTML!r}\nJS = {JS!r}", SETUP, "print('py-transport', b.transport)", BUSY_CELL, COMM_ONLY, RUNS,
        PLAYER, PLAYER_TRANSPORT, RELAY, "armed.set()", KERNEL_COUNT, KERNEL_SENT,
        'print("frame", v.frame, "page_frame", v.stats["page_frame"])',
        'at_play = v.frame\nprint("at_play", at_play)', "v.frame = at_play",
    ]  # fmt: skip
    arm = 9  # the cell that lets slow() print
    nb = jupyter.open(ui, cells, name="direct")
    nb.page.add_init_script(RECORD_SOCKETS)
    nb.page.reload()
    nb.cells.first.wait_for()
    nb.wait_kernel_idle()
    nb.run_cell(0)
    nb.run_cell(1)
    widget = nb.output(1)
    expect(widget.locator("#add")).to_be_visible()

    # 1. The view connects directly: the page and Python say so, and calls, output and events work.
    wait_transport(nb, "direct", "direct")
    nb.run_cell(2)
    expect(nb.output(2)).to_contain_text("py-transport direct")
    widget.locator("#add").click()
    expect(widget.locator("#sum")).to_have_text("sum:5")
    widget.locator("#talk").click()
    expect(widget.locator("#talk-out")).to_have_text("stdout:hello|stderr:oops|done")
    ipb_sockets = "window.__sockets.filter(s => s.url.includes('/ipybridge/direct'))"
    assert nb.page.evaluate(f"{ipb_sockets}.length") == 1
    # The page is served from this machine: straight to the kernel on the loopback interface.
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/ipybridge/direct", nb.page.evaluate(f"{ipb_sockets}[0].url"))

    # 1b. 64 MB each way over the direct path, equal on arrival (page -> kernel in parts, no 10 MiB limit).
    before = bridge_eval(nb, "direct", "bridge.py.peak_rss_mb()")
    widget.locator("#big").click()
    expect(widget.locator("#big-out")).to_have_text(re.compile(r"^big:true:direct:\d+$"), timeout=120_000)
    after = bridge_eval(nb, "direct", "bridge.py.peak_rss_mb()")
    print(f"64 MB each way: {widget.locator('#big-out').inner_text()} ms; kernel peak RSS {before} -> {after} MB")
    assert nb.page.evaluate(f"{ipb_sockets}.length") == 1  # the same connection: it never fell back

    # 2. A call while a cell runs is answered at once, before the cell ends.
    nb.run_cell(3)
    widget.locator("#sum").evaluate("e => e.textContent = ''")
    widget.locator("#add").click()
    expect(widget.locator("#sum")).to_have_text("sum:5")
    expect(nb.cell(3).locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\*\]"))
    nb.wait_cell_done(3)

    # 3. Hostile connections from this page: refused, nothing runs, the widget keeps working.
    port = int(re.search(r":(\d+)/", nb.page.evaluate(f"{ipb_sockets}[0].url")).group(1))
    kernel_id = re.search(r"/api/kernels/([\w-]+)/", nb.page.evaluate("window.__sockets.map(s => s.url).join(' ')"))[1]
    relay_url = f"{nb.server.url.replace('http', 'ws')}/ipybridge/direct/{kernel_id}?port={port}"
    outcomes = nb.page.evaluate(
        r"""async ([port, relayUrl]) => {
          const attempt = (url, first) => new Promise((resolve) => {
            const ws = new WebSocket(url);
            ws.binaryType = "arraybuffer";
            ws.onopen = () => { if (first !== null) ws.send(first); };
            ws.onmessage = (e) => { if (typeof e.data !== "string") resolve("answered"); };  // text: the nonce
            ws.onclose = () => resolve("closed");
            setTimeout(() => resolve("timeout"), 8000);
          });
          const loop = `ws://127.0.0.1:${port}/ipybridge/direct`;
          const hello = (token) => JSON.stringify({ipb: 1, token, widget: "x", view: "y"});
          const otherPort = relayUrl.replace(/port=\d+/, `port=${port + 1}`);
          return {
            noToken: await attempt(loop, JSON.stringify({ipb: 1})),
            wrongToken: await attempt(loop, hello("wrong")),
            silent: await attempt(loop, null),
            relayToAnotherPort: await attempt(otherPort, hello("x")),
            relayToAnotherKernel: await attempt(relayUrl.replace(/direct\/[^?]+/, "direct/not-a-kernel"), hello("x")),
          };
        }""",
        [port, relay_url],
    )
    assert set(outcomes.values()) == {"closed"}, outcomes
    widget.locator("#sum").evaluate("e => e.textContent = ''")
    widget.locator("#add").click()
    expect(widget.locator("#sum")).to_have_text("sum:5")

    # 4. The socket dies mid-call, with a printed line on its way that the page never reads: the call is
    # answered once, ran once, no printed line is lost, and the view is on the comm.
    widget.locator("#slow").click()
    expect(widget.locator("#slow-out")).to_have_text("pending")
    nb.page.evaluate(f"{ipb_sockets}[0].onmessage = function () {{ this.close(); }}")  # drops what comes next
    nb.run_cell(arm)
    expect(widget.locator("#slow-out")).to_have_text("ok:1|before the drop|after the drop")
    wait_transport(nb, "direct", "comm")
    widget.locator("#sum").evaluate("e => e.textContent = ''")
    widget.locator("#add").click()
    expect(widget.locator("#sum")).to_have_text("sum:5")
    assert bridge_eval(nb, "direct", "bridge.diagnostics.pending") == 0
    nb.run_cell(5)
    expect(nb.output(5)).to_contain_text("runs 1 idle")

    # 5. direct = False: that widget stays on the comm and works.
    nb.run_cell(4)
    comm_widget = nb.output(4)
    expect(comm_widget.locator("#add")).to_be_visible()
    comm_widget.locator("#add").click()
    expect(comm_widget.locator("#sum")).to_have_text("sum:5")
    assert bridge_eval(nb, "comm", "bridge.transport") == "comm"

    # 6. A Player's frames take the direct path: no Jupyter kernel message (shell, iopub, status) per frame
    # played, nor per second: the same count for 60 frames as for 240, counted in the kernel (every message
    # its session sends) and on the page's kernel websockets (both ways).
    nb.run_cell(6)
    player = nb.output(6)
    canvas = player.locator(".ipybridge-player canvas")
    expect(canvas).to_have_attribute("data-frame", "0")
    nb.run_cell(7)
    expect(nb.output(7)).to_contain_text("player-transport direct")
    nb.run_cell(10)
    expect(nb.output(10)).to_contain_text("counting")
    nb.page.evaluate(
        """() => { window.__counts = {kernel: 0, direct: 0};
          const count = (s) => {
            if (s.url.includes("/api/kernels/")) window.__counts.kernel++;
            else if (s.url.includes("/ipybridge/direct")) window.__counts.direct++;
          };
          for (const s of window.__sockets) {
            s.addEventListener("message", () => count(s));
            const send = s.send.bind(s);
            s.send = (data) => { count(s); return send(data); };
          } }"""
    )
    play = player.get_by_role("button", name="Play", exact=True)
    pause = player.get_by_role("button", name="Pause", exact=True)

    def play_frames(n: int) -> tuple[dict[str, int], list[str]]:
        """Play n frames, pause; the page's message counts while playing, and what the kernel sent meanwhile."""
        at = int(canvas.get_attribute("data-frame"))
        nb.page.evaluate("() => { window.__counts.kernel = 0; window.__counts.direct = 0; }")
        play.click()
        nb.page.wait_for_function(
            "([c, n]) => Number(c.dataset.frame) >= n", arg=[canvas.element_handle(), at + n], timeout=60_000
        )
        counts = nb.page.evaluate("() => ({...window.__counts})")
        pause.click()
        expect(play).to_have_attribute("aria-pressed", "false")
        nb.run_cell(11)
        nb.wait_cell_done(11)
        sent = json.loads(re.search(r"kernel-sent (\[.*\])", nb.output(11).inner_text())[1])
        return counts, sent

    play_frames(10)  # from here on, each window of the kernel's counts spans one play-pause and one count cell
    short_page, short_kernel = play_frames(60)
    long_page, long_kernel = play_frames(240)
    print("kernel messages while 60 frames played:", short_page, short_kernel)
    print("kernel messages while 240 frames played:", long_page, long_kernel)
    assert long_page["direct"] >= 10, long_page
    # Play and Pause are one comm message each (busy, echo, idle back); nothing more for 180 more frames.
    assert long_page["kernel"] <= short_page["kernel"] + 2, (short_page, long_page)
    assert len(long_kernel) <= len(short_kernel) + 2, (short_kernel, long_kernel)
    assert long_kernel.count("status") <= short_kernel.count("status"), (short_kernel, long_kernel)
    # Python's `frame` follows on pause; `stats` has the frame painted (sent over the direct path).
    at = int(canvas.get_attribute("data-frame"))
    nb.run_cell(12)
    expect(nb.output(12)).to_have_text(re.compile(rf"frame {at} page_frame {at}"))

    # While it plays, Python's `frame` follows the frame painted (from the page's counters, nothing sent back).
    nb.run_cell(13)
    expect(nb.output(13)).to_have_text(f"at_play {at}")
    play.click()
    nb.page.wait_for_function(
        "([c, at]) => Number(c.dataset.frame) >= at + 10", arg=[canvas.element_handle(), at], timeout=60_000
    )
    deadline = time.monotonic() + 30
    followed = at
    while followed <= at and time.monotonic() < deadline:  # the page reports every second
        nb.run_cell(12)
        nb.wait_cell_done(12)
        followed = int(re.search(r"frame (\d+)", nb.output(12).inner_text())[1])
    assert followed > at, (followed, at)
    assert play.get_attribute("aria-pressed") == "true"  # still playing: not a sync on pause
    # Python seeks back to where Play started, which is still the model's value in a page that has not synced
    # `frame` since: it must seek all the same, and play on from there (a jump back to exactly that frame;
    # looping around would come back to it only through frame 0).
    assert at > 0
    canvas.evaluate(
        """c => { c.__jumps = []; let prev = Number(c.dataset.frame);
                  new MutationObserver(() => { const f = Number(c.dataset.frame);
                    if (f < prev) c.__jumps.push(f); prev = f; }).observe(c, {attributes: true}); }"""
    )
    nb.run_cell(14)
    canvas.evaluate("(c, at) => new Promise((ok, no) => { const t0 = Date.now(); const poll = () => "
                    "c.__jumps.includes(at) ? ok() : Date.now() - t0 > 15000 ? no(new Error('no seek: ' + "
                    "c.__jumps)) : setTimeout(poll, 20); poll(); })", at)  # fmt: skip

    # Its socket dies mid-playback: it goes on playing over the comm (lost frame requests are asked again).
    nb.page.evaluate(f"{ipb_sockets}.filter(s => s.readyState === 1).forEach(s => s.close())")
    at = int(canvas.get_attribute("data-frame"))
    nb.page.wait_for_function(
        "([c, at]) => Number(c.dataset.frame) >= at + 60", arg=[canvas.element_handle(), at], timeout=60_000
    )
    pause.click()

    # 7. Through the Jupyter server's relay (same origin, the server's auth): calls and output work.
    nb.run_cell(8)
    relayed = nb.output(8)
    wait_transport(nb, "relay", "direct")
    assert nb.page.evaluate(f"{ipb_sockets}.some(s => s.url.startsWith({relay_url.split('?')[0]!r}))")
    relayed.locator("#talk").click()
    expect(relayed.locator("#talk-out")).to_have_text("stdout:hello|stderr:oops|done")
