// The legacy API's page parts without a browser: the shim's queue and
// routing (run as the classic script it is, against a fake window), and the
// mapping of kernel outputs to both classic callback styles.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import {
  LegacyCalls,
  content1x,
  deliverOutput,
  deliverReply,
  makeMessage,
  requestFields,
} from "../../js/legacy_messages.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SHIM = readFileSync(join(root, "js", "legacy_shim.js"), "utf8");

/** A DOM node stand-in: `closest(".jp-Notebook")` finds the notebook it sits in. */
class Node {
  constructor(notebook = null, { isNotebook = false } = {}) {
    this.nodeType = 1;
    this.isConnected = true;
    this._notebook = isNotebook ? this : notebook;
  }
  closest(selector) {
    return selector === ".jp-Notebook" ? this._notebook : null;
  }
}

function fakeWindow() {
  const listeners = new Map();
  const document = {
    currentScript: null,
    activeElement: null,
    addEventListener(type, fn) {
      listeners.set(type, fn);
    },
  };
  const win = { document, crypto: globalThis.crypto, setTimeout: () => 0 }; // timers that never fire
  win.fire = (type, target) => listeners.get(type)({ target });
  return win;
}

function installShim(win) {
  new Function("window", SHIM)(win);
  return win.__ipybridgeLegacy;
}

function fakeTransport(notebook) {
  const transport = { alive: true, runs: [], notebook: () => notebook, run: (call) => transport.runs.push(call.code) };
  return transport;
}

test("the shim installs IPython and Jupyter at once, and installing twice keeps one hub", () => {
  const win = fakeWindow();
  const hub = installShim(win);
  assert.equal(typeof win.IPython.notebook.kernel.execute, "function");
  assert.equal(win.Jupyter.notebook.kernel, win.IPython.notebook.kernel);
  assert.equal(typeof win.IPython.keyboard_manager.disable, "function");
  installShim(win);
  assert.equal(win.__ipybridgeLegacy, hub);
});

test("a real classic notebook's kernel is left alone", () => {
  const win = fakeWindow();
  const real = { execute() {} };
  win.IPython = { notebook: { kernel: real } };
  installShim(win);
  assert.equal(win.IPython.notebook.kernel, real);
});

test("calls made before any transport are queued, then run in order", () => {
  const win = fakeWindow();
  const hub = installShim(win);
  const id1 = win.IPython.notebook.kernel.execute("a = 1");
  const id2 = win.Jupyter.notebook.kernel.execute("b = 2", {}, { silent: false });
  assert.equal(typeof id1, "string");
  assert.notEqual(id1, id2);
  assert.equal(hub.queue.length, 2);
  const transport = fakeTransport(null);
  hub.register(transport);
  assert.deepEqual(transport.runs, ["a = 1", "b = 2"]);
  assert.equal(hub.queue.length, 0);
});

test("a call goes to the notebook the user last interacted with", () => {
  const win = fakeWindow();
  const hub = installShim(win);
  const nbA = new Node(null, { isNotebook: true });
  const nbB = new Node(null, { isNotebook: true });
  const a = fakeTransport(nbA);
  const b = fakeTransport(nbB);
  hub.register(a);
  hub.register(b);
  win.fire("pointerdown", new Node(nbA));
  win.IPython.notebook.kernel.execute("in A");
  win.fire("keydown", new Node(nbB));
  win.IPython.notebook.kernel.execute("in B");
  win.fire("pointerdown", new Node(null)); // a click outside any notebook changes nothing
  win.IPython.notebook.kernel.execute("still B");
  assert.deepEqual(a.runs, ["in A"]);
  assert.deepEqual(b.runs, ["in B", "still B"]);
});

test("a script's own notebook wins over the last interaction", () => {
  const win = fakeWindow();
  const hub = installShim(win);
  const nbA = new Node(null, { isNotebook: true });
  const nbB = new Node(null, { isNotebook: true });
  const a = fakeTransport(nbA);
  const b = fakeTransport(nbB);
  hub.register(a);
  hub.register(b);
  win.fire("focusin", new Node(nbB));
  win.document.currentScript = new Node(nbA);
  win.IPython.notebook.kernel.execute("from A's script");
  assert.deepEqual(a.runs, ["from A's script"]);
  assert.deepEqual(b.runs, []);
});

test("a call for a notebook whose transport is not up waits for it, not for another kernel", () => {
  const win = fakeWindow();
  const hub = installShim(win);
  const nbA = new Node(null, { isNotebook: true });
  const nbB = new Node(null, { isNotebook: true });
  const a = fakeTransport(nbA);
  hub.register(a);
  win.fire("pointerdown", new Node(nbB));
  win.IPython.notebook.kernel.execute("for B");
  assert.deepEqual(a.runs, []);
  // B's view renders detached first (no notebook yet), then joins the page.
  let attached = null;
  const b = fakeTransport(null);
  b.notebook = () => attached;
  hub.register(b);
  assert.deepEqual(b.runs, []);
  attached = nbB;
  hub.drain();
  assert.deepEqual(b.runs, ["for B"]);
});

test("a dead transport gets no calls; the next one does", () => {
  const win = fakeWindow();
  const hub = installShim(win);
  const old = fakeTransport(null);
  const unregister = hub.register(old);
  old.alive = false;
  unregister();
  win.IPython.notebook.kernel.execute("after restart");
  assert.equal(win.IPython.notebook.kernel.is_connected(), false);
  const fresh = fakeTransport(null);
  hub.register(fresh);
  assert.deepEqual(old.runs, []);
  assert.deepEqual(fresh.runs, ["after restart"]);
});

test("calls that keep waiting are reported in the console, once per wait", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const win = fakeWindow();
  win.setTimeout = (fn, ms) => setTimeout(fn, ms); // the mocked clock
  const hub = installShim(win);
  const warnings = [];
  t.mock.method(console, "warn", (...args) => warnings.push(args.join(" ")));
  win.IPython.notebook.kernel.execute("one");
  win.IPython.notebook.kernel.execute("two");
  t.mock.timers.tick(2999);
  assert.equal(warnings.length, 0); // the widget may simply still be loading
  t.mock.timers.tick(1);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /2 kernel.execute call\(s\) waiting: run `%load_ext ipybridge`/);
  hub.register(fakeTransport(null));
  win.IPython.notebook.kernel.execute("three"); // runs at once: nothing to report
  t.mock.timers.tick(5000);
  assert.equal(warnings.length, 1);
});

test("options default like the classic notebook", () => {
  assert.deepEqual(requestFields(undefined), { silent: true, store_history: false, user_expressions: {} });
  assert.deepEqual(requestFields({ silent: false, store_history: true, user_expressions: { x: "x" } }), {
    silent: false,
    store_history: true,
    user_expressions: { x: "x" },
  });
  assert.equal(requestFields({ store_history: true }).store_history, false); // silent by default
});

test("IPython 1.x callbacks get out_type and 1.x content", () => {
  const seen = [];
  const callbacks = { output: (type, content) => seen.push([type, content]), execute_reply: (c) => seen.push(["reply", c]) };
  const msg = (type, content) => makeMessage(type, content, "parent", "iopub", "s");
  deliverOutput(callbacks, msg("stream", { name: "stdout", text: "hi\n" }));
  deliverOutput(callbacks, msg("execute_result", { execution_count: 3, data: { "text/plain": "42" }, metadata: {} }));
  deliverOutput(callbacks, msg("error", { ename: "ZeroDivisionError", evalue: "division by zero", traceback: ["tb"] }));
  deliverOutput(callbacks, msg("display_data", { data: { "text/html": "<b>x</b>" }, metadata: {}, transient: {} }));
  deliverReply(callbacks, makeMessage("execute_reply", { status: "ok", execution_count: 3 }, "parent", "shell", "s"));
  assert.deepEqual(seen, [
    ["stream", { name: "stdout", data: "hi\n", text: "hi\n" }],
    ["pyout", { execution_count: 3, data: { "text/plain": "42" }, metadata: {} }],
    ["pyerr", { ename: "ZeroDivisionError", evalue: "division by zero", traceback: ["tb"] }],
    ["display_data", { source: "", data: { "text/html": "<b>x</b>" }, metadata: {} }],
    ["reply", { status: "ok", execution_count: 3 }],
  ]);
  assert.deepEqual(content1x("other", { a: 1 }), { a: 1 });
});

test("a throwing callback does not stop the others", () => {
  const seen = [];
  const callbacks = {
    iopub: { output: () => { throw new Error("user bug"); } },
    output: (type) => seen.push(type),
  };
  const error = console.error;
  console.error = () => {};
  try {
    deliverOutput(callbacks, makeMessage("stream", { name: "stdout", text: "x" }, "p", "iopub", "s"));
  } finally {
    console.error = error;
  }
  assert.deepEqual(seen, ["stream"]);
});

test("IPython 2+ callbacks get messaging-spec messages, status around them, reply last", async () => {
  const sent = [];
  let answer;
  const calls = new LegacyCalls((item, onStream) => {
    sent.push(item);
    return new Promise((resolve) => {
      answer = (reply) => {
        onStream("stdout", "a\n");
        calls.output(item.msg_id, "display_data", { data: { "text/plain": "shown" }, metadata: {}, transient: {} });
        calls.output(item.msg_id, "execute_result", { execution_count: 1, data: { "text/plain": "'res'" }, metadata: {} });
        resolve(reply);
      };
    });
  }, "session");
  const log = [];
  const callbacks = {
    iopub: {
      output: (msg) => log.push([msg.msg_type, msg.content, msg.parent_header.msg_id, msg.header.msg_type]),
      status: (msg) => log.push(["status", msg.content.execution_state]),
    },
    shell: { reply: (msg) => log.push(["reply", msg.content.status, msg.msg_type]) },
  };
  const done = calls.run({ msgId: "m1", code: "x", callbacks, options: { silent: false } });
  assert.deepEqual(sent, [{ type: "legacy_execute", msg_id: "m1", code: "x", silent: false, store_history: false, user_expressions: {} }]);
  answer({ status: "ok", execution_count: 1, user_expressions: {}, payload: [] });
  await done;
  assert.deepEqual(log, [
    ["status", "busy"],
    ["stream", { name: "stdout", text: "a\n", data: "a\n" }, "m1", "stream"],
    ["display_data", { data: { "text/plain": "shown" }, metadata: {}, transient: {} }, "m1", "display_data"],
    ["execute_result", { execution_count: 1, data: { "text/plain": "'res'" }, metadata: {} }, "m1", "execute_result"],
    ["reply", "ok", "execute_reply"],
    ["status", "idle"],
  ]);
  calls.output("m1", "stream", { name: "stdout", text: "late" }); // after the reply: dropped
  assert.equal(log.length, 6);
});

test("a lost link reaches the callbacks as an error, so nothing waits forever", async () => {
  const calls = new LegacyCalls(() => Promise.reject(Object.assign(new Error("the kernel is restarting"), { name: "BridgeClosedError" })), "s");
  const seen = [];
  await calls.run({
    msgId: "m",
    code: "x",
    callbacks: { output: (type, content) => seen.push([type, content.ename]), execute_reply: (c) => seen.push(["reply", c.status]) },
    options: {},
  });
  assert.deepEqual(seen, [["pyerr", "BridgeClosedError"], ["reply", "error"]]);
});

test("classic members ipybridge lacks throw, naming themselves; generic probes read undefined", () => {
  const win = fakeWindow();
  installShim(win);
  assert.throws(() => win.IPython.notebook.notebook_name, /IPython\.notebook\.notebook_name is not supported by ipybridge/);
  assert.throws(() => win.Jupyter.notebook.kernel.comm_manager, /IPython\.notebook\.kernel\.comm_manager is not supported/);
  assert.throws(() => win.IPython.OutputArea, /IPython\.OutputArea is not supported by ipybridge/);
  // Promise resolution, JSON and jQuery/DOM checks probe members of any object: no throw there.
  assert.equal(win.IPython.notebook.then, undefined);
  assert.equal(win.IPython.nodeType, undefined);
  assert.equal(JSON.stringify(win.IPython.keyboard_manager), "{}");
  assert.equal("notebook_name" in win.IPython.notebook, false); // `in` feature tests stay quiet
  return Promise.resolve(win.IPython).then((ns) => assert.equal(ns, win.IPython));
});
