"""Concurrency as a user meets it: nested calls from a view's js never hang, no printed line is lost.

One notebook, several checks, in JupyterLab 4 and Notebook 7:

* a view's js calls Python, which calls back into that view's JavaScript, from the
  js body itself (the issue's input), several levels deep with ``def`` and
  ``async def``, and across two Bridges; an event emitted meanwhile reaches the
  listener the body registered; odd names are a NameError naming them;
* a cell blocked on ``call_js(...).result(timeout)`` gets a TimeoutError saying
  which handler did not answer;
* a button starts exposed calls that print every 0.2 s (``async def`` on the
  loop and ``def`` on the worker) and a cell printing every 0.2 s (sync, then
  async) runs meanwhile: every line of every owner arrives, once, in order, at
  its owner (the cell's output, or the call's ``onOutput``).
"""

from __future__ import annotations

import json
import re
import textwrap

from playwright.sync_api import expect

from .harness import NotebookPage

PARTNER = textwrap.dedent(
    """
    import asyncio, ipybridge
    partner = ipybridge.Bridge(js='''
    bridge.handle("relay", async (n) => await py.pong(n));
    ''')

    @partner.expose
    def pong(n):  # a plain def on the partner's worker, asking the main Bridge's page
        return n if n == 0 else main.call_js("relay", n - 1).result(timeout=20) + 1
    partner
    """
)

MAIN_JS = r"""
const results = {};
async function check(name, fn) {
  try {
    results[name] = {ok: true, value: await fn()};
  } catch (e) {
    results[name] = {ok: false, name: e.name, message: e.message};
  }
}
bridge.handle("double", async (x) => x * 2);
bridge.handle("down", async (n) => await py.down(n));
bridge.handle("down_async", async (n) => await py.down_async(n));
bridge.handle("relay", async (n) => await py.ping(n));
bridge.handle("hang", () => new Promise(() => {}));
const heard = [];
bridge.on("progress", (p) => heard.push(p));
el.querySelector("#go").onclick = async () => {
  el.querySelector("#clicked").textContent = String(await py.ask(20));
};
// From the body itself, before it has settled: Python calls back into this view.
await check("ask", () => py.ask(20));
await check("sync_chain", () => py.down(5));
await check("async_chain", () => py.down_async(5));
await check("two_bridges", () => py.ping(4));
await check("event_during_body", async () => { await py.announce(3); return [...heard]; });
await check("empty_name", () => bridge.call("", []));
await check("spaced_name", () => bridge.call(" ask ", [1]));
await check("number_name", () => bridge.call(5, []));
el.querySelector("#results").textContent = JSON.stringify(results);
"""

MAIN = textwrap.dedent(
    f"""
    main = ipybridge.Bridge(html='<button id="go">go</button><span id="clicked"></span><pre id="results"></pre>',
                            js={MAIN_JS!r})

    @main.expose
    async def ask(x):
        return (await main.call_js("double", x)) + 1

    @main.expose
    def down(n):  # JS -> def -> JS -> def ...: each level blocks the worker on the page
        return 0 if n == 0 else main.call_js("down", n - 1).result(timeout=20) + 1

    @main.expose
    async def down_async(n):
        return 0 if n == 0 else await main.call_js("down_async", n - 1) + 1

    @main.expose
    def ping(n):  # across two Bridges: main's worker asks the partner's page, and back
        return n if n == 0 else partner.call_js("relay", n - 1).result(timeout=20) + 1

    @main.expose
    def announce(n):
        for i in range(n):
            main.emit("progress", i)
        return n
    main
    """
)

BLOCKING_TIMEOUT = textwrap.dedent(
    """
    try:
        main.call_js("hang").result(timeout=1)
    except TimeoutError as e:
        print(f"{type(e).__name__}: {e}")
    """
)

PRINTER_JS = r"""
const box = el.querySelector("#printed");
const start = (kind) => {
  const lines = [];
  box.dataset[kind] = "";
  box.dataset[kind + "Done"] = "";
  bridge.call(kind, [15], {onOutput: (stream, text) => { lines.push(text); box.dataset[kind] = lines.join(""); }})
    .then((v) => { box.dataset[kind + "Done"] = String(v); },
          (e) => { box.dataset[kind + "Done"] = e.name + ": " + e.message; });
};
el.querySelector("#async-printer").onclick = () => start("printer");
el.querySelector("#sync-printer").onclick = () => start("sync_printer");
"""

PRINTER = textwrap.dedent(
    f"""
    import sys, time
    printer_bridge = ipybridge.Bridge(
        html='<button id="async-printer">async printer</button><button id="sync-printer">sync printer</button>'
             '<pre id="printed"></pre>',
        js={PRINTER_JS!r})

    @printer_bridge.expose
    async def printer(n):
        for i in range(n):
            print(f"async-call-line-{{i}}")
            await asyncio.sleep(0.2)
        return n

    @printer_bridge.expose
    def sync_printer(n):
        for i in range(n):
            print(f"sync-call-line-{{i}}", file=sys.stderr if i % 5 == 4 else sys.stdout)
            time.sleep(0.2)
        return n
    printer_bridge
    """
)

SYNC_CELL = textwrap.dedent(
    """
    import time
    for i in range(15):
        print(f'cell-line-{i}')
        time.sleep(0.2)
    print('cell-two-finished')
    """
)

ASYNC_CELL = textwrap.dedent(
    """
    for i in range(15):
        print(f'async-cell-line-{i}')
        await asyncio.sleep(0.2)
    print('cell-three-finished')
    """
)


FIRST_LINE = re.compile(r"^async-call-line-0\n")  # the call has started printing


def printed(nb: NotebookPage, key: str) -> str:
    return nb.page.locator("#printed").get_attribute(f"data-{key}") or ""


def test_nested_calls_resolve_and_no_line_is_lost(jupyter, ui):
    cells = [PARTNER, MAIN, BLOCKING_TIMEOUT, PRINTER, SYNC_CELL, ASYNC_CELL]
    nb = jupyter.open(ui, cells)
    for index in range(4):
        nb.run_cell(index)
        nb.wait_cell_done(index)

    # 1. The view's js body calls Python, which calls back into it: nothing hangs.
    box = nb.page.locator("#results")
    expect(box).not_to_have_text("", timeout=60_000)
    r = json.loads(box.inner_text())
    assert r["ask"] == {"ok": True, "value": 41}
    assert r["sync_chain"] == {"ok": True, "value": 5}
    assert r["async_chain"] == {"ok": True, "value": 5}
    assert r["two_bridges"] == {"ok": True, "value": 4}
    assert r["event_during_body"] == {"ok": True, "value": [0, 1, 2]}
    # 3. Odd names: a NameError naming them (a non-string never leaves the page).
    assert r["empty_name"]["name"] == "NameError"
    assert "no Python function named '' is exposed" in r["empty_name"]["message"]
    assert r["spaced_name"]["name"] == "NameError"
    assert "did you mean 'ask'?" in r["spaced_name"]["message"]
    assert r["number_name"]["name"] == "TypeError"
    nb.page.locator("#go").click()
    expect(nb.page.locator("#clicked")).to_have_text("41")
    # 4. A blocking wait that times out says what timed out.
    expect(nb.output(2)).to_have_text("TimeoutError: JavaScript handler 'hang' did not answer within 1 s")

    # 2. Calls print while a cell prints: every line reaches its owner, once, in order.
    nb.page.locator("#async-printer").click()
    nb.page.locator("#sync-printer").click()
    expect(nb.page.locator("#printed")).to_have_attribute("data-printer", FIRST_LINE)
    nb.run_cell(4)
    nb.wait_cell_done(4)
    expect(nb.page.locator("#printed")).to_have_attribute("data-printer-done", "15")
    expect(nb.page.locator("#printed")).to_have_attribute("data-sync_printer-done", "15")
    cell_lines = [f"cell-line-{i}" for i in range(15)] + ["cell-two-finished"]
    expect(nb.output(4)).to_have_text("\n".join(cell_lines))
    assert printed(nb, "printer") == "".join(f"async-call-line-{i}\n" for i in range(15))
    assert printed(nb, "sync_printer") == "".join(f"sync-call-line-{i}\n" for i in range(15))

    nb.page.locator("#async-printer").click()
    expect(nb.page.locator("#printed")).to_have_attribute("data-printer", FIRST_LINE)
    nb.run_cell(5)
    nb.wait_cell_done(5)
    expect(nb.page.locator("#printed")).to_have_attribute("data-printer-done", "15")
    cell_lines = [f"async-cell-line-{i}" for i in range(15)] + ["cell-three-finished"]
    expect(nb.output(5)).to_have_text("\n".join(cell_lines))
    assert printed(nb, "printer") == "".join(f"async-call-line-{i}\n" for i in range(15))
    # No call's line leaked into any cell.
    for index in range(len(cells)):
        expect(nb.output(index).filter(has_text="call-line")).to_have_count(0)
