"""The Bridge as a user meets it: a notebook cell, a page, JavaScript calling Python.

Each test writes a notebook, runs it through the menus in JupyterLab 4 and in
Notebook 7 and reads what the page shows. The checks that live in the page
write their outcome into the widget's DOM; the test reads it back.
"""

from __future__ import annotations

import json
import re
import textwrap

from playwright.sync_api import expect

from .harness import NotebookPage

CHECKS_JS = r"""
const results = {};
const describe = (v) => {
  if (v instanceof Uint8Array) return {Uint8Array: Array.from(v)};
  if (v && v.data && ArrayBuffer.isView(v.data)) {
    return {dtype: v.dtype, shape: v.shape, ctor: v.data.constructor.name, values: Array.from(v.data, String)};
  }
  if (typeof v === "number" && (!Number.isFinite(v) || Object.is(v, -0))) return {special: Object.is(v, -0) ? "-0" : String(v)};
  if (typeof v === "bigint") return {bigint: String(v)};
  if (Array.isArray(v)) return v.map(describe);
  return v;
};
async function check(name, fn) {
  try {
    results[name] = {ok: true, value: describe(await fn())};
  } catch (e) {
    results[name] = {ok: false, name: e.name, message: e.message, ename: e.ename, evalue: e.evalue,
                     traceback: e.traceback};
  }
}
"""


def results_of(nb: NotebookPage, selector: str = "#results") -> dict:
    box = nb.page.locator(selector)
    expect(box).not_to_have_text("", timeout=60_000)
    return json.loads(box.inner_text())


def test_calls_values_errors_and_output(jupyter, ui):
    setup = textwrap.dedent(
        """
        import asyncio, numpy as np, ipybridge
        state = {"cancelled": False}

        async def slow(seconds):
            try:
                await asyncio.sleep(seconds)
                return "finished"
            except asyncio.CancelledError:
                state["cancelled"] = True
                raise

        def noisy(n):
            import sys
            for i in range(n):
                print("line", i)
            print("to stderr", file=sys.stderr)
            return n

        b = ipybridge.Bridge(
            html='<pre id="results"></pre>',
            js=JS,
            expose={
                "add": lambda a, b: a + b,
                "echo": lambda value: value,
                "kinds": lambda value: [type(value).__name__, getattr(value, "dtype", None) and str(value.dtype),
                                        list(getattr(value, "shape", ())) or None],
                "arrays": lambda: {"f8": np.arange(3.0), "i8": np.array([1, -2**40], dtype=np.int64),
                                   "b": np.array([True, False]), "f2": np.array([0.5], dtype=np.float16),
                                   "big": np.array([1, 2], dtype=">i4"), "strided": np.arange(6)[::2].astype(np.int16),
                                   "u8": np.zeros((2, 3), dtype=np.uint8)},
                "blob": lambda: b"\\x00\\x01\\xff",
                "boom": lambda: 1 / 0,
                "unsendable": lambda: object(),
                "cancelled": lambda: state["cancelled"],
            },
        )
        b.expose(slow)
        b.expose(noisy, name="noisy")
        b
        """
    )
    js = CHECKS_JS + textwrap.dedent(
        r"""
        await check("add", () => py.add(1, 2));
        await check("kwargs", () => bridge.call("add", [1], {kwargs: {b: 5}}));
        await check("json", () => py.echo({a: [1, "x", null, true], nested: {y: 1.5, "$ipb": "kept"}}));
        await check("specials", () => py.echo([NaN, Infinity, -Infinity, 1e308, -0.0, 2 ** 60]));
        await check("bigint", () => py.echo(2n ** 70n).then(String));
        await check("arrays", () => py.arrays().then((o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, describe(v)]))));
        await check("blob", () => py.blob());
        await check("send_bytes", () => Promise.all([py.kinds(new Uint8Array([1, 2])), py.kinds(new ArrayBuffer(4)),
                                                  py.kinds(new DataView(new ArrayBuffer(2)))]));
        await check("send_typed", () => Promise.all([py.kinds(new Float32Array([1, 2, 3])), py.kinds(new BigInt64Array(2)),
                                                  py.kinds({dtype: "int16", shape: [2, 2], data: new Int16Array(4)}),
                                                  py.kinds({dtype: "bool", shape: [3], data: new Uint8Array([1, 0, 1])})]));
        await check("view_offset", () => py.echo(new Float64Array(new Float64Array([9, 8, 7, 6]).buffer, 8, 2)));
        await check("boom", () => py.boom());
        await check("missing", () => py.not_there(1));
        await check("wrong_args", () => py.add(1, 2, 3));
        await check("unsendable", () => py.unsendable());
        await check("unencodable_arg", () => py.echo(() => 1));
        await check("execute_denied", () => bridge.execute("1 + 1"));
        await check("set_denied", () => bridge.set("x", 1));
        await check("timeout", () => bridge.call("slow", [30], {timeout: 300}));
        const controller = new AbortController();
        const aborted = bridge.call("slow", [30], {signal: controller.signal});
        controller.abort();
        await check("abort", () => aborted);
        await check("slow_ok", () => py.slow(0.05));
        const seen = [];
        await check("output", () => bridge.call("noisy", [3], {onOutput: (stream, text) => seen.push([stream, text])}));
        results.seen = Object.fromEntries(["stdout", "stderr"].map((name) =>
          [name, seen.filter(([s]) => s === name).map(([, t]) => t).join("")]));
        await check("concurrent", async () => {
          const answers = await Promise.all(Array.from({length: 200}, (_, i) => py.add(i, i)));
          return answers.every((v, i) => v === 2 * i) ? answers.length : answers;
        });
        await check("cancelled_in_python", async () => {
          for (let i = 0; i < 100; i++) {
            if (await py.cancelled()) return true;
            await new Promise((r) => setTimeout(r, 50));
          }
          return false;
        });
        el.querySelector("#results").textContent = JSON.stringify(results);
        """
    )
    nb = jupyter.open(ui, [f"JS = {js!r}", setup])
    nb.run_all()
    r = results_of(nb)

    assert r["add"] == {"ok": True, "value": 3}
    assert r["kwargs"] == {"ok": True, "value": 6}
    assert r["json"]["value"] == {"a": [1, "x", None, True], "nested": {"y": 1.5, "$ipb": "kept"}}
    specials = r["specials"]["value"]
    assert specials[:5] == [
        {"special": "NaN"},
        {"special": "Infinity"},
        {"special": "-Infinity"},
        1e308,
        {"special": "-0"},
    ]
    assert float(specials[5]) == 2.0**60  # still a double, not a BigInt
    assert r["bigint"]["value"] == str(2**70)
    arrays = r["arrays"]["value"]
    assert arrays["f8"] == {"dtype": "float64", "shape": [3], "ctor": "Float64Array", "values": ["0", "1", "2"]}
    assert arrays["i8"] == {"dtype": "int64", "shape": [2], "ctor": "BigInt64Array", "values": ["1", str(-(2**40))]}
    assert arrays["b"] == {"dtype": "bool", "shape": [2], "ctor": "Uint8Array", "values": ["1", "0"]}
    assert arrays["f2"] == {"dtype": "float32", "shape": [1], "ctor": "Float32Array", "values": ["0.5"]}
    assert arrays["big"] == {"dtype": "int32", "shape": [2], "ctor": "Int32Array", "values": ["1", "2"]}
    assert arrays["strided"] == {"dtype": "int16", "shape": [3], "ctor": "Int16Array", "values": ["0", "2", "4"]}
    assert arrays["u8"]["shape"] == [2, 3]
    assert r["blob"]["value"] == {"Uint8Array": [0, 1, 255]}
    assert r["send_bytes"]["value"] == [["bytes", None, None]] * 3
    assert r["send_typed"]["value"] == [
        ["ndarray", "float32", [3]],
        ["ndarray", "int64", [2]],
        ["ndarray", "int16", [2, 2]],
        ["ndarray", "bool", [3]],
    ]
    assert r["view_offset"]["value"]["values"] == ["8", "7"]

    boom = r["boom"]
    assert (boom["ok"], boom["name"], boom["message"]) == (False, "ZeroDivisionError", "division by zero")
    assert (boom["ename"], boom["evalue"]) == ("ZeroDivisionError", "division by zero")
    assert any("1 / 0" in line for line in boom["traceback"]), boom["traceback"]
    assert r["missing"]["name"] == "NameError"
    assert "not_there" in r["missing"]["message"]
    assert r["wrong_args"]["name"] == "TypeError"
    assert r["unsendable"]["name"] == "TypeError"
    assert "object" in r["unsendable"]["message"]
    assert r["unencodable_arg"]["name"] == "TypeError"
    assert r["execute_denied"]["name"] == "PermissionError"
    assert r["set_denied"]["name"] == "PermissionError"
    assert r["timeout"]["name"] == "TimeoutError"
    assert r["abort"]["name"] == "AbortError"
    assert r["slow_ok"]["value"] == "finished"
    assert r["output"]["value"] == 3
    # Each stream keeps its order (as in Jupyter, stdout and stderr are separate streams).
    assert r["seen"] == {"stdout": "line 0\nline 1\nline 2\n", "stderr": "to stderr\n"}
    assert r["concurrent"]["value"] == 200
    assert r["cancelled_in_python"]["value"] is True
    # Nothing the calls printed leaked into any cell: no cell has a stream output at all.
    expect(nb.page.locator('[data-mime-type^="application/vnd.jupyter.std"]')).to_have_count(0)


def test_execute_set_get_with_permission(jupyter, ui):
    js = CHECKS_JS + textwrap.dedent(
        r"""
        const outputs = [];
        await check("execute", () => bridge.execute("x = 1\nprint('hi')\nx + 1", {onOutput: (s, t) => outputs.push(s + ":" + t)}));
        await check("display", () => bridge.execute("from IPython.display import display, HTML\ndisplay(HTML('<b>x</b>'))"));
        await check("error", () => bridge.execute("1/0"));
        await check("set", () => bridge.set("from_page", {n: 42}));
        await check("get", () => bridge.get("from_page"));
        await check("get_missing", () => bridge.get("never_defined_anywhere"));
        await check("set_bad_name", () => bridge.set("not a name", 1));
        await check("await", () => bridge.execute("import asyncio\nawait asyncio.sleep(0.01)\n'awaited'"));
        results.outputs = outputs;
        el.querySelector("#results").textContent = JSON.stringify(results);
        """
    )
    cells = [
        f"import ipybridge\nb = ipybridge.Bridge(html='<pre id=\"results\"></pre>', js={js!r}, allow_execute=True)\nb",
        "print('page set', from_page['n'], 'and x =', x)",
    ]
    nb = jupyter.open(ui, cells)
    nb.run_cell(0)
    r = results_of(nb)
    assert r["execute"]["value"] == {"result": {"text/plain": "2"}, "stdout": "hi\n", "stderr": "", "display": []}
    # Streamed output may come in pieces (as ipykernel's own streams do): all stdout, "hi\n" once joined.
    assert all(o.startswith("stdout:") for o in r["outputs"]), r["outputs"]
    assert "".join(o.removeprefix("stdout:") for o in r["outputs"]) == "hi\n"
    display = r["display"]["value"]["display"]
    assert display[0]["text/html"] == "<b>x</b>"
    assert r["display"]["value"]["result"] is None
    assert (r["error"]["name"], r["error"]["message"]) == ("ZeroDivisionError", "division by zero")
    assert r["set"] == {"ok": True, "value": None}
    assert r["get"]["value"] == {"n": 42}
    assert r["get_missing"]["name"] == "NameError"
    assert r["set_bad_name"]["ok"] is False
    assert r["await"]["value"]["result"] == {"text/plain": "'awaited'"}
    # The variables the page set are there for the next cell, as for any cell.
    nb.run_cell(1)
    expect(nb.output(1)).to_have_text("page set 42 and x = 1")


def test_events_call_js_and_early_messages(jupyter, ui):
    js = textwrap.dedent(
        r"""
        const log = el.querySelector("#log");
        bridge.on("tick", (payload) => { log.textContent += `tick:${payload.n}:${payload.data.data.constructor.name};`; });
        bridge.handle("double", (x) => x * 2);
        bridge.handle("fail", () => { throw new RangeError("out of range"); });
        bridge.handle("slowpoke", () => new Promise(() => {}));
        el.querySelector("#ask").onclick = async () => {
          el.querySelector("#asked").textContent = await py.ask_js(21);
        };
        """
    )
    setup = textwrap.dedent(
        f"""
        import numpy as np, ipybridge
        b = ipybridge.Bridge(html='<div id="log"></div><button id="ask">ask</button><div id="asked"></div>', js={js!r})
        # Sent before any view exists: queued, then delivered.
        b.emit("tick", {{"n": 0, "data": np.zeros(2)}})
        early = b.call_js("double", 5)

        @b.expose
        async def ask_js(x):
            doubled = await b.call_js("double", x)
            try:
                await b.call_js("fail")
            except ipybridge.JavaScriptError as exc:
                failure = f"{{exc.name}}: {{exc.message}}"
            return f"{{doubled}} / {{failure}}"
        b
        """
    )
    cells = [
        setup,
        "b.emit('tick', {'n': 1, 'data': np.ones(3, dtype=np.float32)})\nprint('early answer', early.result(timeout=30))",
        "print('blocking answer', b.call_js('double', 50).result(timeout=30))",
        "try:\n    b.call_js('slowpoke', timeout=0.5).result()\nexcept TimeoutError as exc:\n    print('timed out:', exc)",
        "try:\n    b.call_js('nobody_handles_this').result(timeout=30)\n"
        "except ipybridge.JavaScriptError as exc:\n    print('missing:', exc.name)",
    ]
    nb = jupyter.open(ui, cells)
    nb.run_all()
    expect(nb.page.locator("#log")).to_have_text("tick:0:Float64Array;tick:1:Float32Array;")
    expect(nb.output(1)).to_have_text("early answer 10")
    expect(nb.output(2)).to_have_text("blocking answer 100")
    expect(nb.output(3)).to_contain_text("timed out:")
    expect(nb.output(4)).to_have_text("missing: ReferenceError")
    nb.page.locator("#ask").click()
    expect(nb.page.locator("#asked")).to_have_text("42 / RangeError: out of range")


def test_two_bridges_do_not_cross_talk(jupyter, ui):
    def bridge(name: str) -> str:
        js = textwrap.dedent(
            """
            const seen = [];
            bridge.on("hello", (who) => seen.push(who));
            const answers = await Promise.all(Array.from({length: 50}, () => py.who()));
            await py.greet();
            const deadline = Date.now() + 20000;
            while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
            el.querySelector(".out").textContent = [...new Set(answers)].join(",") + "|" + seen.join(",");
            """
        )
        return (
            f'{name} = ipybridge.Bridge(html=\'<div class="out" id="out-{name}"></div>\', js={js!r})\n'
            f"{name}.expose(lambda: {name!r}, name='who')\n"
            f"{name}.expose(lambda: {name}.emit('hello', {name!r}), name='greet')\n"
            f"display({name})"
        )

    nb = jupyter.open(ui, ["import ipybridge", bridge("first"), bridge("second")])
    nb.run_all()
    expect(nb.page.locator("#out-first")).to_have_text("first|first")
    expect(nb.page.locator("#out-second")).to_have_text("second|second")


def test_calls_answered_while_a_cell_runs_and_prints_stay_put(jupyter, ui):
    js = textwrap.dedent(
        r"""
        el.querySelector("#call").onclick = async () => {
          const text = [];
          const n = await bridge.call("noisy", [], {onOutput: (s, t) => text.push(t)});
          el.querySelector("#answer").textContent = `answer ${n} ${text.join("").trim()}`;
        };
        el.querySelector("#finish").onclick = () => py.finish();
        """
    )
    setup = textwrap.dedent(
        f"""
        import ipybridge
        done = False
        b = ipybridge.Bridge(html='<button id="call">call</button><button id="finish">finish</button>'
                                  '<div id="answer"></div>', js={js!r})

        @b.expose
        def noisy():
            print("NOISE-FROM-CALL")
            return 7

        @b.expose
        def finish():
            global done
            done = True
        b
        """
    )
    busy = "import time\nprint('cell starts')\nwhile not done:\n    time.sleep(0.05)\nprint('cell ends')"
    nb = jupyter.open(ui, [setup, busy])
    nb.run_cell(0)
    expect(nb.page.locator("#call")).to_be_visible()
    nb.run_cell(1)
    expect(nb.output(1)).to_contain_text("cell starts")
    nb.page.locator("#call").click()
    # Answered on a kernel subshell while the cell is still running...
    expect(nb.page.locator("#answer")).to_have_text("answer 7 NOISE-FROM-CALL")
    expect(nb.cell(1).locator(".jp-InputPrompt").first).to_contain_text("*")
    # ...and what the call printed went to the call, not to the running cell.
    nb.page.locator("#finish").click()
    nb.wait_cell_done(1)
    expect(nb.output(1)).to_have_text("cell starts\ncell ends")
    expect(nb.page.locator('[data-mime-type^="application/vnd.jupyter.std"]', has_text="NOISE")).to_have_count(0)


def test_js_error_is_shown_and_notebook_keeps_working(jupyter, ui):
    cells = [
        "import ipybridge\nipybridge.Bridge(html='<p>before</p>', js='undefinedFunction()')",
        "print('still alive', 6 * 7)",
    ]
    nb = jupyter.open(ui, cells)
    nb.run_all()
    error = nb.page.locator(".ipybridge-error")
    expect(error).to_contain_text("ReferenceError")
    expect(error).to_contain_text("undefinedFunction")
    expect(nb.output(1)).to_have_text("still alive 42")


def test_pending_calls_reject_on_close_restart_and_shutdown(jupyter, ui):
    js = textwrap.dedent(
        r"""
        const status = document.getElementById("ipb-status-" + TAG) ?? document.body.appendChild(
          Object.assign(document.createElement("div"), {id: "ipb-status-" + TAG}));
        status.textContent = "pending";
        const t0 = Date.now();
        bridge.call("hang", []).then(
          () => { status.textContent = "resolved?!"; },
          (e) => {
            status.dataset.rejectedAt = String(Date.now());
            status.textContent = `${e.name} after ${Date.now() - t0 < 10000 ? "seconds" : "too long"}`;
          },
        );
        """
    )

    def cell(tag: str) -> str:
        return (
            "import time, ipybridge\n"
            f"b_{tag} = ipybridge.Bridge(js={('const TAG = ' + repr(tag) + ';' + js)!r})\n"
            f"b_{tag}.expose(lambda: time.sleep(600), name='hang')\n"
            f"b_{tag}"
        )

    nb = jupyter.open(ui, [cell("close"), "b_close.close()", cell("restart")])
    nb.run_cell(0)
    expect(nb.page.locator("#ipb-status-close")).to_have_text("pending")
    nb.run_cell(1)
    expect(nb.page.locator("#ipb-status-close")).to_have_text("BridgeClosedError after seconds")
    nb.run_cell(2)
    expect(nb.page.locator("#ipb-status-restart")).to_have_text("pending")
    confirmed_at = nb.restart_kernel()
    expect(nb.page.locator("#ipb-status-restart")).to_have_text("BridgeClosedError after seconds", timeout=15_000)
    assert rejected_within(nb, "#ipb-status-restart", confirmed_at) < 2000
    # After the restart the bridge works again once its cell is re-run.
    nb.wait_kernel_idle()
    nb.run_cell(2)
    expect(nb.page.locator("#ipb-status-restart")).to_have_text("pending")
    confirmed_at = nb.shutdown_kernel()
    expect(nb.page.locator("#ipb-status-restart")).to_have_text(
        re.compile("BridgeClosedError after seconds"), timeout=15_000
    )
    assert rejected_within(nb, "#ipb-status-restart", confirmed_at) < 2000


def rejected_within(nb: NotebookPage, selector: str, since_ms: float) -> float:
    """Milliseconds from ``since_ms`` (page clock) to the rejection the status element recorded."""
    return float(nb.page.locator(selector).get_attribute("data-rejected-at")) - since_ms
