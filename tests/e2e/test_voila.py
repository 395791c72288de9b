"""Hostile pages: a Voila dashboard visitor with devtools never gets into the kernel.

A Voila dashboard hands its page to whoever opens it. The visitor cannot run
cells (Voila's server only lets comm and kernel-info messages through), but
with devtools they can open their own websocket to the kernel, address the
dashboard's widgets by their comm ids and send them anything. These tests do
exactly that from inside a real Voila page in headless Chromium: the kernel id
comes from the page's ``jupyter-config-data``, the widgets' comm ids from the
outputs Voila embedded in the page, and raw ``comm_msg`` messages (also with
binary buffers) go to the Bridge and the Player. The socket speaks the v1
kernel websocket protocol, as JupyterLab does. (Not the legacy protocol: Voila
0.5's websocket handler reads every outgoing binary message as v1, and on a
legacy connection that misreading loops for ages and freezes the whole Voila
server. That is Voila's bug, not one a widget can fix; see the report.)

For each attempt the test says which of two outcomes is right:
* answered: the widget replies with a structured ``error`` (``ename`` and
  ``evalue``) or ``protocol_error`` that the test reads on its own socket;
* refused: the server drops the message before any Python sees it (and says
  why in the comment).
And always: the sentinel file the notebook's traps would write never appears,
the kernel stays alive, and the page's real widgets still work afterwards.
"""

from __future__ import annotations

import contextlib
import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .conftest import ARTIFACTS, FAILED
from .harness import WAIT_MS, VoilaServer, start_voila, stop_voila

NOTEBOOK = [
    textwrap.dedent(
        """
        import os, pathlib
        import matplotlib
        matplotlib.use("agg")
        import matplotlib.pyplot as plt
        import ipybridge

        SENTINEL = pathlib.Path(os.environ["IPYBRIDGE_SENTINEL"])

        # Traps: each writes the sentinel if it ever runs. None is exposed.
        def _trip(why):
            SENTINEL.write_text(why)

        def _private(*args, **kwargs):
            _trip("_private")

        class Trap:
            def __init__(self, *args, **kwargs):
                _trip("Trap.__init__")

            def __call__(self, *args, **kwargs):
                _trip("Trap.__call__")

        system = eval = exec = open = getattr = __import__ = _private  # globals shadowing dangerous names
        trap = Trap.__new__(Trap)

        def add(a, b):
            return a + b

        def echo(value):
            return value

        add.trap = Trap  # a dotted path "add.trap" would construct one
        add.private = _private
        """
    ),
    textwrap.dedent(
        """
        b = ipybridge.Bridge(
            html='<button id="go">add</button> <output id="out"></output>',
            js=\"\"\"
            el.querySelector('#go').onclick = async () => {
              const out = el.querySelector('#out');
              try { out.textContent = 'sum=' + await py.add(2, 3); }
              catch (e) { out.textContent = e.name + ': ' + e.message; }
            };
            \"\"\",
            expose={"add": add, "echo": echo},
        )
        b
        """
    ),
    textwrap.dedent(
        """
        fig, ax = plt.subplots(figsize=(2, 2), dpi=40)
        (line,) = ax.plot([0, 1], [0, 0])
        ax.set_ylim(0, 10)

        def draw(i):
            line.set_ydata([0, i])
            return (line,)

        p = ipybridge.Player(fig, draw, frames=10, fps=10)
        p
        """
    ),
]

# The visitor's tools, installed in the page with page.evaluate.
HOSTILE_JS = r"""
() => {
  if (window.hostile) return;
  const config = JSON.parse(document.getElementById("jupyter-config-data").textContent);
  const modelIds = [];  // [Bridge's comm id, Player's comm id], found by discover()
  const session = crypto.randomUUID();
  const state = {items: [], replies: [], comms: null, states: {}, closed: null, ws: null, nextId: 1};

  // jupyter_server's v1 websocket protocol (what JupyterLab speaks): a count and offsets
  // (uint64, little-endian), then the channel, header, parent header, metadata, content, buffers.
  function parse(data) {
    const dv = new DataView(data);
    const n = Number(dv.getBigUint64(0, true));
    const offsets = [];
    for (let i = 0; i < n; i++) offsets.push(Number(dv.getBigUint64(8 * (i + 1), true)));
    const parts = offsets.slice(0, -1).map((o, i) => data.slice(o, offsets[i + 1]));
    const text = (b) => new TextDecoder().decode(b);
    return {channel: text(parts[0]), header: JSON.parse(text(parts[1])), parent_header: JSON.parse(text(parts[2])),
            content: JSON.parse(text(parts[4])), buffers: parts.slice(5)};
  }

  function connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://${location.host}/api/kernels/${config.kernelId}/channels?session_id=${session}`,
                             "v1.kernel.websocket.jupyter.org");
      ws.binaryType = "arraybuffer";
      ws.onopen = () => { state.ws = ws; state.closed = null; resolve(); };
      ws.onerror = () => reject(new Error("websocket error"));
      ws.onclose = (e) => { if (state.ws === ws) state.closed = {code: e.code, reason: e.reason}; };
      ws.onmessage = (e) => {
        const msg = parse(e.data);
        const type = msg.header && msg.header.msg_type;
        if (type === "comm_info_reply") {
          state.comms = msg.content.comms;
        } else if (type === "comm_msg" && msg.content.data && msg.content.data.method === "update") {
          state.states[msg.content.comm_id] = msg.content.data.state;
        } else if (type === "comm_msg" && msg.content.data && msg.content.data.method === "custom") {
          const content = msg.content.data.content;
          if (content && content.ipb === 1) {
            for (const item of content.msgs) state.items.push({comm: msg.content.comm_id, item, nbuffers: msg.buffers.length});
          }
        } else if (type === "kernel_info_reply") {
          state.replies.push(msg.parent_header.msg_id);
        }
      };
    });
  }

  const header = (msgType) => ({msg_id: crypto.randomUUID(), msg_type: msgType, username: "visitor", session,
                                date: new Date().toISOString(), version: "5.3"});

  function sendRaw(msg, buffers = []) {
    // "__raw:<digits>" strings go out as bare JSON numbers: integers beyond what a JS number holds.
    const encode = (value) => new TextEncoder().encode(JSON.stringify(value).replace(/"__raw:(-?[0-9]+)"/g, "$1"));
    const parts = [new TextEncoder().encode(msg.channel), encode(msg.header), encode(msg.parent_header),
                   encode(msg.metadata), encode(msg.content),
                   ...buffers.map((b) => new Uint8Array(b.buffer ?? b, b.byteOffset ?? 0, b.byteLength))];
    const count = parts.length + 1;
    const head = 8 * (count + 1);
    const out = new Uint8Array(head + parts.reduce((n, p) => n + p.byteLength, 0));
    const dv = new DataView(out.buffer);
    dv.setBigUint64(0, BigInt(count), true);
    let offset = head;
    parts.forEach((p, i) => { dv.setBigUint64(8 * (i + 1), BigInt(offset), true); out.set(p, offset); offset += p.byteLength; });
    dv.setBigUint64(8 * count, BigInt(offset), true);
    state.ws.send(out);
  }

  async function until(check, timeout = 30000) {
    const end = Date.now() + timeout;
    while (Date.now() < end) {
      const value = check();
      if (value) return value;
      await new Promise((r) => setTimeout(r, 20));
    }
    return null;
  }

  // What a visitor can learn: the kernel's comms (comm_info_request), then each widget's
  // state (the widget protocol's request_state) tells the Bridge (html, js) from the Player (frames).
  async function discover() {
    sendRaw({header: header("comm_info_request"), parent_header: {}, metadata: {}, channel: "shell",
             content: {target_name: "jupyter.widget"}});
    const comms = await until(() => state.comms);
    for (const id of Object.keys(comms)) {
      sendRaw({header: header("comm_msg"), parent_header: {}, metadata: {}, channel: "shell",
               content: {comm_id: id, data: {method: "request_state"}}});
    }
    const find = (key) => until(() => Object.keys(state.states).find((id) => key in state.states[id]));
    modelIds.push(await find("js"), await find("frames"));
  }

  const hostile = {
    config, modelIds, state, connect, sendRaw,
    // A widget-protocol state update, as the page's own widget manager sends when a control changes.
    update(target, state) {
      const commId = target === "bridge" ? modelIds[0] : modelIds[1];
      sendRaw({header: header("comm_msg"), parent_header: {}, metadata: {}, channel: "shell",
               content: {comm_id: commId, data: {method: "update", state, buffer_paths: []}}});
    },
    async pythonState(target) {
      const commId = target === "bridge" ? modelIds[0] : modelIds[1];
      delete state.states[commId];
      sendRaw({header: header("comm_msg"), parent_header: {}, metadata: {}, channel: "shell",
               content: {comm_id: commId, data: {method: "request_state"}}});
      return until(() => state.states[commId]);
    },
    comm(target, content, buffers = []) {
      const commId = target === "bridge" ? modelIds[0] : target === "player" ? modelIds[1] : target;
      sendRaw({header: header("comm_msg"), parent_header: {}, metadata: {}, channel: "shell",
               content: {comm_id: commId, data: {method: "custom", content}}}, buffers);
    },
    // Wait (bounded) for an item from the kernel matching `pred`, received after index `from`.
    async waitItem(pred, from = 0, timeout = 30000) {
      const found = await until(() => state.items.slice(from).find((x) => pred(x.item)), timeout);
      return found ? found.item : null;
    },
    // One request item in its own envelope; resolves to its answer (or null).
    async request(target, item, buffers = [], view = "visitor") {
      const id = item.id ?? state.nextId++;
      this.comm(target, {ipb: 1, msgs: [{view, ...item, id}]}, buffers);
      return this.waitItem((i) => i.view === view && i.id === id && (i.type === "result" || i.type === "error"));
    },
    // An item with no usable id: the answer is a protocol_error for `view`.
    async refusedItem(target, item, view) {
      const from = state.items.length;
      this.comm(target, {ipb: 1, msgs: [{view, ...item}]});
      return this.waitItem((i) => i.type === "protocol_error" && i.view === view, from);
    },
    async kernelInfo(timeout = 30000) {
      const h = header("kernel_info_request");
      sendRaw({header: h, parent_header: {}, metadata: {}, channel: "shell", content: {}});
      return Boolean(await until(() => state.replies.includes(h.msg_id), timeout));
    },
  };
  window.hostile = hostile;
  return connect().then(discover);
}
"""


@pytest.fixture(scope="module")
def voila(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoilaServer]:
    root = tmp_path_factory.mktemp("voila")
    sentinel = root / "SENTINEL"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IPYBRIDGE_SENTINEL", str(sentinel))
        server = start_voila(root, NOTEBOOK)
    yield server
    stop_voila(server)


@pytest.fixture
def dashboard(voila: VoilaServer, browser, request: pytest.FixtureRequest) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    """The dashboard open in a fresh page (its own kernel), with the visitor's tools installed."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    page.goto(voila.url + "/")
    expect(page.locator(".ipybridge-bridge #go")).to_be_visible()
    expect(page.locator(".ipybridge-player canvas")).to_have_attribute("data-frame", "0")
    page.evaluate(HOSTILE_JS)
    assert all(page.evaluate("hostile.modelIds")), "the visitor could not find the widgets' comms"
    yield page
    if request.node.stash.get(FAILED, False):
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        (ARTIFACTS / f"{name}-console.txt").write_text("\n".join(console))
        (ARTIFACTS / f"{name}-voila.log").write_text(voila.log_text())
    context.close()


def sentinel(voila: VoilaServer) -> Path:
    return voila.root / "SENTINEL"


def assert_unharmed(page: Page, voila: VoilaServer) -> None:
    """Nothing trapped ran, the kernel lives, and the real widgets still work as a visitor uses them."""
    assert not sentinel(voila).exists(), f"a trap ran: {sentinel(voila).read_text()}"
    kernel_id = page.evaluate("hostile.config.kernelId")
    assert voila.kernel_alive(kernel_id)
    if page.evaluate("hostile.state.closed") is not None:
        page.evaluate("hostile.connect()")
    assert page.evaluate("hostile.kernelInfo()") is True
    # The real Bridge, through its own JavaScript: click, Python adds, the page shows it.
    page.evaluate("document.querySelector('#out').textContent = ''")
    page.locator(".ipybridge-bridge #go").click()
    expect(page.locator("#out")).to_have_text("sum=5")
    # The real Player paints requested frames.
    canvas = page.locator(".ipybridge-player canvas")
    page.get_by_role("button", name="Last").click()
    expect(canvas).to_have_attribute("data-frame", "9")
    page.get_by_role("button", name="First").click()
    expect(canvas).to_have_attribute("data-frame", "0")
    assert not sentinel(voila).exists()


def run(page: Page, body: str) -> dict:
    """Run an async page script using `hostile`; it returns a JSON-able summary."""
    return page.evaluate(f"async () => {{ {body} }}")


def test_only_exposed_names_are_callable_and_namespace_access_is_refused(dashboard: Page, voila: VoilaServer) -> None:
    names = [
        "__class__", "__init__", "__call__", "__dict__", "__globals__", "_private", "system", "os.system",
        "eval", "exec", "open", "getattr", "__import__", "__builtins__", "trap", "Trap", "add.__globals__",
        "add.trap", "add.private", "add.__class__", "echo.__code__", "b", "p", "close", "receive", "expose",
        "functions", "_namespace_op", "_execute", "namespace", "send", "constructor", "__proto__", "toString",
    ]  # fmt: skip
    shell = f"touch {sentinel(voila)}; echo trapped > {sentinel(voila)}"
    code = f"open({str(sentinel(voila))!r}, 'w').write('execute')"
    result = run(
        dashboard,
        f"""
        const out = {{names: {{}}, requests: {{}}}};
        // First try to switch permission on the way a page changes a widget: a state update.
        hostile.update("bridge", {{allow_execute: true, _allow_execute: true, namespace: {{}}}});
        for (const name of {json.dumps(names)}) {{
          const answer = await hostile.request("bridge", {{type: "call", name, args: [{json.dumps(shell)}], kwargs: {{}}}});
          out.names[name] = answer && [answer.type, answer.error && answer.error.ename, answer.error && answer.error.evalue];
        }}
        const asks = {{
          execute: {{type: "execute", code: {json.dumps(code)}}},
          set: {{type: "set", name: "add", value: 1}},
          get: {{type: "get", name: "SENTINEL"}},
          set_dunder: {{type: "set", name: "__builtins__", value: {{}}}},
          execute_on_player: {{type: "execute", code: {json.dumps(code)}, target: "player"}},
          call_on_player: {{type: "call", name: "draw", args: [1], kwargs: {{}}, target: "player"}},
          kwargs_dunder: {{type: "call", name: "echo", args: [], kwargs: {{value: 1, __class__: 2}}}},
        }};
        for (const [what, item] of Object.entries(asks)) {{
          const target = item.target ?? "bridge";
          delete item.target;
          if (target === "player") {{
            hostile.comm("player", {{ipb: 1, msgs: [{{type: "hello", view: "visitor"}}]}});
          }}
          const answer = await hostile.request(target, item);
          out.requests[what] = answer && [answer.type, answer.error && answer.error.ename, answer.error && answer.error.evalue];
        }}
        return out;
        """,
    )
    for name, answer in result["names"].items():
        # Answered: the name is looked up in the exposed table only, so each is a NameError naming it.
        assert answer is not None, f"no answer for {name}"
        assert answer[:2] == ["error", "NameError"], (name, answer)
        assert repr(name) in answer[2]
    for what in ("execute", "set", "get", "set_dunder", "execute_on_player"):
        # Answered: allow_execute is False (fixed in Python), so namespace access is a PermissionError.
        assert result["requests"][what][:2] == ["error", "PermissionError"], (what, result["requests"][what])
        assert "allow_execute=True" in result["requests"][what][2]
    # The Player exposes no functions: the frame function is not callable by name.
    assert result["requests"]["call_on_player"][:2] == ["error", "NameError"]
    # An exposed function with a keyword it does not take: the call's own TypeError.
    assert result["requests"]["kwargs_dunder"][:2] == ["error", "TypeError"]
    assert_unharmed(dashboard, voila)


BAD_FIELDS = {
    # item -> the ename of the structured error answered to (view "visitor", its id)
    "args not a list": ({"type": "call", "name": "echo", "args": {"0": 1}, "kwargs": {}}, "ProtocolError"),
    "args a string": ({"type": "call", "name": "echo", "args": "abc", "kwargs": {}}, "ProtocolError"),
    "kwargs a list": ({"type": "call", "name": "echo", "args": [], "kwargs": [1]}, "ProtocolError"),
    "name a number": ({"type": "call", "name": 5, "args": [1]}, "ProtocolError"),
    "name a list": ({"type": "call", "name": ["add"], "args": [1]}, "ProtocolError"),
    "name empty": ({"type": "call", "name": "", "args": [1]}, "NameError"),  # any unknown name
    "name huge": ({"type": "call", "name": "x" * 100_000, "args": [1]}, "NameError"),
    "name null": ({"type": "call", "name": None, "args": [1]}, "ProtocolError"),
    "type unknown": ({"type": "pwn", "name": "echo"}, "ProtocolError"),
    "type a number": ({"type": 7, "name": "echo"}, "ProtocolError"),
    "unknown tag": ({"type": "call", "name": "echo", "args": [{"$ipb": "pickle", "v": "cos\nsystem"}]}, "DecodeError"),
    "bad float tag": (
        {"type": "call", "name": "echo", "args": [{"$ipb": "float", "v": "__import__('os')"}]},
        "DecodeError",
    ),
    "bad bigint tag": ({"type": "call", "name": "echo", "args": [{"$ipb": "bigint", "v": "9" * 5000}]}, "DecodeError"),
    "buffer index out of range": ({"type": "call", "name": "echo", "args": [{"$ipb": "bytes", "i": 7}]}, "DecodeError"),
    "buffer index negative": ({"type": "call", "name": "echo", "args": [{"$ipb": "bytes", "i": -1}]}, "DecodeError"),
    "object dtype": (
        {"type": "call", "name": "echo", "args": [{"$ipb": "ndarray", "i": 0, "dtype": "O", "shape": [1]}]},
        "DecodeError",
    ),
    "shape mismatch": (
        {
            "type": "call",
            "name": "echo",
            "args": [{"$ipb": "ndarray", "i": 0, "dtype": "float64", "shape": [2**40, 2**40]}],
        },
        "DecodeError",
    ),
    "shape negative": (
        {"type": "call", "name": "echo", "args": [{"$ipb": "ndarray", "i": 0, "dtype": "uint8", "shape": [-8]}]},
        "DecodeError",
    ),
    "nested 500 deep": ({"type": "call", "name": "echo", "args": [json.loads("[" * 500 + "]" * 500)]}, "DecodeError"),
    "cancel reason": ({"type": "cancel", "reason": {"x": 1}}, "ProtocolError"),
    "reply ok not bool": ({"type": "reply", "ok": "yes"}, "ProtocolError"),
    "reply error not object": ({"type": "reply", "ok": False, "error": "boom"}, "ProtocolError"),
    "set value missing": ({"type": "set", "name": "x"}, "ProtocolError"),
    "execute code not str": ({"type": "execute", "code": ["import os"]}, "ProtocolError"),
}

BAD_IDS_AND_VIEWS = {
    # item -> protocol_error for its view: without a usable id there is no request to answer
    "id negative": {"type": "call", "name": "echo", "args": [1], "id": -1},
    "id fractional": {"type": "call", "name": "echo", "args": [1], "id": 1.5},
    "id string": {"type": "call", "name": "echo", "args": [1], "id": "1"},
    "id huge": {"type": "call", "name": "echo", "args": [1], "id": 2**64},
    "id bool": {"type": "call", "name": "echo", "args": [1], "id": True},
    "id null": {"type": "call", "name": "echo", "args": [1], "id": None},
}


def test_wrong_types_in_every_field_get_structured_errors(dashboard: Page, voila: VoilaServer) -> None:
    result = run(
        dashboard,
        f"""
        const out = {{fields: {{}}, ids: {{}}, views: {{}}, envelopes: {{}}}};
        const bad = {json.dumps({k: v[0] for k, v in BAD_FIELDS.items()})};
        for (const [what, item] of Object.entries(bad)) {{
          const answer = await hostile.request("bridge", item, [new Uint8Array([1, 2, 3])]);
          out.fields[what] = answer && [answer.type, answer.error.ename, answer.error.evalue];
        }}
        const badIds = {json.dumps(BAD_IDS_AND_VIEWS)};
        let n = 0;
        for (const [what, item] of Object.entries(badIds)) {{
          const answer = await hostile.refusedItem("bridge", item, "probe-" + (n++));
          out.ids[what] = answer && answer.error.ename;
        }}
        // No usable view: a protocol_error addressed to no view.
        for (const [what, view] of Object.entries({{number: 5, list: ["v"], null: null, object: {{a: 1}}}})) {{
          const from = hostile.state.items.length;
          hostile.comm("bridge", {{ipb: 1, msgs: [{{type: "call", id: 1, name: "add", args: [1, 2], view}}]}});
          const answer = await hostile.waitItem((i) => i.type === "protocol_error" && i.view === null, from);
          out.views[what] = answer && answer.error.ename;
        }}
        // Envelopes that cannot be read at all.
        const envelopes = {{
          "not an object": [1, 2, 3], "a string": "hello", "null": null, "wrong version": {{ipb: 2, msgs: []}},
          "version a string": {{ipb: "1", msgs: []}}, "msgs not a list": {{ipb: 1, msgs: {{}}}},
          "too many items": {{ipb: 1, msgs: Array(10001).fill({{type: "hello", view: "v"}})}},
          "items not objects": {{ipb: 1, msgs: [1, "x", null]}},
        }};
        for (const [what, content] of Object.entries(envelopes)) {{
          const from = hostile.state.items.length;
          hostile.comm("bridge", content);
          const answer = await hostile.waitItem((i) => i.type === "protocol_error" && i.view === null, from);
          out.envelopes[what] = answer && answer.error.ename;
        }}
        return out;
        """,
    )
    for what, (_item, ename) in BAD_FIELDS.items():
        answer = result["fields"][what]
        assert answer is not None, f"no answer for {what}"
        assert answer[:2] == ["error", ename], (what, answer)
        assert answer[2], what
    for what, ename in result["ids"].items():
        assert ename == "ProtocolError", what
    for what, ename in result["views"].items():
        assert ename == "ProtocolError", what
    for what, ename in result["envelopes"].items():
        assert ename == "ProtocolError", what
    assert_unharmed(dashboard, voila)


def test_player_frame_requests_with_bad_indexes(dashboard: Page, voila: VoilaServer) -> None:
    indexes = {
        "negative": -1,
        "past the end": 10,
        "beyond 2**53": 2**60,
        "huge": "__raw:" + "9" * 40,
        "huge negative": "__raw:-" + "9" * 40,
    }
    not_ints = {
        "fractional": 1.5,
        "1e30 (a float in JSON)": 1e30,
        "string": "3",
        "null": None,
        "bool": True,
        "list": [1],
        "object": {"i": 1},
    }
    result = run(
        dashboard,
        f"""
        hostile.comm("player", {{ipb: 1, msgs: [{{type: "hello", view: "visitor"}}]}});
        await hostile.waitItem((i) => i.type === "welcome" && i.view === "visitor");
        const out = {{ranges: {{}}, types: {{}}, fields: {{}}, good: null}};
        let id = 100;
        for (const [what, index] of Object.entries({json.dumps(indexes)})) {{
          const from = hostile.state.items.length;
          const ident = id++;
          hostile.comm("player", {{ipb: 1, msgs: [{{type: "frame", view: "visitor", id: ident, index, gen: 0, codec: "raw"}}]}});
          const answer = await hostile.waitItem((i) => i.view === "visitor" && i.id === ident, from);
          out.ranges[what] = answer && [answer.type, answer.error && answer.error.ename, answer.error && answer.error.evalue];
        }}
        for (const [what, index] of Object.entries({json.dumps(not_ints)})) {{
          const from = hostile.state.items.length;
          hostile.comm("player", {{ipb: 1, msgs: [{{type: "frame", view: "visitor", id: id++, index, gen: 0, codec: "raw"}}]}});
          const answer = await hostile.waitItem((i) => i.view === "visitor" && ["protocol_error", "frame", "frame_error"].includes(i.type), from);
          out.types[what] = answer && [answer.type, answer.error && answer.error.ename];
        }}
        const fields = {{
          "codec unknown": {{codec: "exe"}}, "quality huge": {{codec: "jpeg", quality: 10 ** 12}},
          "quality negative": {{codec: "jpeg", quality: -5}}, "gen string": {{gen: "x"}}, "id negative": {{id: -4}},
          "id fractional": {{id: 2.5}},
        }};
        for (const [what, extra] of Object.entries(fields)) {{
          const from = hostile.state.items.length;
          const item = {{type: "frame", view: "visitor", id: id++, index: 1, gen: 0, codec: "raw", ...extra}};
          hostile.comm("player", {{ipb: 1, msgs: [item]}});
          const answer = await hostile.waitItem((i) => i.view === "visitor" && ["protocol_error", "frame", "frame_error"].includes(i.type) && (i.type === "protocol_error" || i.id === item.id), from);
          out.fields[what] = answer && [answer.type, answer.error && answer.error.ename];
        }}
        hostile.comm("player", {{ipb: 1, msgs: [{{type: "frame_cancel", view: "visitor", ids: "all"}}, {{type: "player_stats", view: "visitor", stats: [1]}}]}});
        hostile.update("player", {{fps: "fast", quality: "x", loop: "forever", codec: "exe", direction: "up", frame: "3"}});
        hostile.update("bridge", {{allow_execute: true, _core: "x"}});
        const player = await hostile.pythonState("player");
        out.traits = player && [player.fps, player.quality, player.loop, player.codec, player.direction, player.frame];
        const bridge = await hostile.pythonState("bridge");
        out.bridgeKeys = bridge && ["allow_execute" in bridge, "_core" in bridge];
        const from = hostile.state.items.length;
        hostile.comm("player", {{ipb: 1, msgs: [{{type: "frame", view: "visitor", id: 999, index: 3, gen: 0, codec: "raw"}}]}});
        const good = await hostile.waitItem((i) => i.view === "visitor" && i.id === 999, from);
        out.good = good && [good.type, good.index];
        return out;
        """,
    )
    for what, answer in result["ranges"].items():
        # Answered: an integer index outside 0..9 is the frame's own error, shown by the player.
        assert answer is not None, what
        assert answer[:2] == ["frame_error", "FrameOutOfRange"], (what, answer)
        assert "out of range" in answer[2]
    for what, answer in result["types"].items():
        # Answered: a frame request needs integers; anything else is a protocol_error for the view.
        assert answer == ["protocol_error", "ProtocolError"], (what, answer)
    assert result["fields"]["codec unknown"] == ["protocol_error", "ProtocolError"]
    assert result["fields"]["gen string"] == ["protocol_error", "ProtocolError"]
    assert result["fields"]["id negative"] == ["protocol_error", "ProtocolError"]
    assert result["fields"]["id fractional"] == ["protocol_error", "ProtocolError"]
    for what in ("quality huge", "quality negative"):
        # Answered: a jpeg quality outside 1..100 is clamped (or refused by the encoder), never a crash.
        assert result["fields"][what] is not None, what
        assert result["fields"][what][0] in ("frame", "frame_error", "protocol_error"), (what, result["fields"][what])
    assert result["good"] == ["frame", 3]
    # Refused: trait values of the wrong type are rejected by the traits' validation in the kernel
    # (ipywidgets logs the TraitError); Python's values did not change. The Bridge has no
    # allow_execute trait to write (the first test tries, then is refused execute).
    assert result["traits"] == [10.0, 85, "loop", "auto", 1, 0]
    assert result["bridgeKeys"] == [False, False]
    assert_unharmed(dashboard, voila)


def test_huge_and_deeply_nested_messages(dashboard: Page, voila: VoilaServer) -> None:
    result = run(
        dashboard,
        r"""
        const out = {};
        const mib = 2 ** 20;
        // 1. Deeply nested JSON, 100000 levels, in one message.
        let from = hostile.state.items.length;
        const deep = "[".repeat(100000) + "]".repeat(100000);
        hostile.comm("bridge", JSON.parse(`{"ipb": 1, "msgs": [{"type": "call", "view": "visitor", "id": 501, "name": "echo", "args": [${deep}]}]}`));
        const deepAnswer = await hostile.waitItem((i) => i.view === "visitor" && i.id === 501, from, 15000);
        out.deep = deepAnswer && [deepAnswer.type, deepAnswer.error && deepAnswer.error.ename];
        out.deepSocket = hostile.state.closed;
        if (hostile.state.closed) await hostile.connect();
        // 2. The same nesting as a split message: the kernel joins it and cannot read it.
        from = hostile.state.items.length;
        const text = new TextEncoder().encode(`{"ipb":1,"msgs":[{"type":"call","view":"visitor","id":502,"name":"echo","args":[${deep}]}]}`);
        hostile.comm("bridge", {ipb: 1, msgs: [{type: "part", view: "visitor", id: 9000, seq: 0, count: 1, sizes: [text.byteLength], ids: [502]}]}, [text]);
        const deepParts = await hostile.waitItem((i) => i.view === "visitor" && i.id === 502, from);
        out.deepParts = deepParts && [deepParts.type, deepParts.error.ename];
        // 3. 100 MB declared in parts: refused at the first part, before anything else is kept.
        from = hostile.state.items.length;
        const chunk = new Uint8Array(8 * mib);
        hostile.comm("bridge", {ipb: 1, msgs: [{type: "part", view: "visitor", id: 9001, seq: 0, count: 13, sizes: [100, 100 * mib], ids: [503, 504]}]}, [chunk]);
        const big = await hostile.waitItem((i) => i.view === "visitor" && i.id === 503, from);
        const big2 = await hostile.waitItem((i) => i.view === "visitor" && i.id === 504, from);
        out.parts100 = [big && big.error.ename, big && big.error.evalue, big2 && big2.error.ename];
        for (let seq = 1; seq < 13; seq++) {
          hostile.comm("bridge", {ipb: 1, msgs: [{type: "part", view: "visitor", id: 9001, seq, count: 13}]}, [chunk]);
        }
        // 4. Parts that start and never finish: bounded, the oldest answered when room is needed.
        from = hostile.state.items.length;
        for (let n = 0; n < 20; n++) {
          hostile.comm("bridge", {ipb: 1, msgs: [{type: "part", view: "visitor", id: 9100 + n, seq: 0, count: 8, sizes: [100, 40 * mib], ids: [600 + n]}]}, [chunk]);
        }
        const evicted = await hostile.waitItem((i) => i.view === "visitor" && i.id === 600, from);
        out.evicted = evicted && [evicted.error.ename, evicted.error.evalue];
        // 5. 100 MB in one websocket message: the server refuses it before any Python sees it.
        const huge = new Uint8Array(100 * mib);
        hostile.comm("bridge", {ipb: 1, msgs: [{type: "call", view: "visitor", id: 505, name: "echo", args: [{"$ipb": "bytes", i: 0}]}]}, [huge]);
        const end = Date.now() + 30000;
        while (!hostile.state.closed && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
        out.hugeSocket = hostile.state.closed;
        await hostile.connect();
        from = hostile.state.items.length;
        const after = await hostile.request("bridge", {type: "call", name: "add", args: [40, 2], kwargs: {}});
        out.after = after && [after.type, after.value];
        return out;
        """,
    )
    # Refused: a 100000-deep JSON message never reaches the widget. ipykernel's message layer
    # cannot parse it (RecursionError in json.loads, logged as "Invalid message") and drops it,
    # so there is no request to answer; the kernel goes on (checked below).
    assert result["deep"] is None
    assert "RecursionError" in voila.log_text()
    # Answered: the same nesting arriving as parts is joined by the widget, which cannot read it.
    assert result["deepParts"] == ["error", "ProtocolError"]
    # Answered: a message declared at 100 MiB is refused at its first part, for each request it carries.
    assert result["parts100"][0] == result["parts100"][2] == "MessageTooLargeError"
    assert "64.0 MiB" in result["parts100"][1]
    assert "max_message_bytes" in result["parts100"][1]
    # Answered: unfinished split messages are bounded; the oldest is dropped and its request answered.
    assert result["evicted"][0] == "MessageTooLargeError"
    assert "unfinished" in result["evicted"][1]
    # Refused: the server (tornado's websocket_max_message_size, 10 MiB) drops a websocket whose
    # message is bigger: 1009 "too big", or 1006 when it just closes the connection. Only the
    # visitor's own socket: the page's connection is another one and keeps working (below).
    assert result["hugeSocket"] is not None
    assert result["hugeSocket"]["code"] in (1006, 1009)
    assert result["after"] == ["result", 42]
    assert_unharmed(dashboard, voila)
