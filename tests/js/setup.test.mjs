// The setup rule (docs/protocol.md, "Setup"): while a view's js runs, calls from Python for
// handlers it registered are answered at once, calls for handlers not registered yet wait for
// them (bounded), and events reach the listeners registered so far, in order.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BridgeClient } from "../../js/protocol.js";

class FakeModel {
  constructor() {
    this.sent = [];
    this.listeners = new Map();
  }
  send(content, _callbacks, buffers) {
    this.sent.push({ content, buffers });
  }
  on(name, cb) {
    (this.listeners.get(name) ?? this.listeners.set(name, new Set()).get(name)).add(cb);
  }
  off(name, cb) {
    this.listeners.get(name)?.delete(cb);
  }
  fromKernel(msgs, buffers = []) {
    for (const cb of this.listeners.get("msg:custom") ?? []) cb({ ipb: 1, msgs }, buffers);
  }
  items() {
    return this.sent.flatMap((m) => m.content.msgs);
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));

/** Wait (bounded) until the kernel was sent a reply with this id. */
async function reply(model, id, bound = 2000) {
  const until = Date.now() + bound;
  for (;;) {
    const found = model.items().find((i) => i.type === "reply" && i.id === id);
    if (found) return found;
    if (Date.now() > until) throw new Error(`no reply ${id} within ${bound} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A view whose js body is still running (it awaits Python, which has not answered). */
function runningView(options = {}) {
  const model = new FakeModel();
  const client = new BridgeClient(model, options);
  let finish;
  client.setSetup(new Promise((r) => (finish = r)));
  return { model, client, finish };
}

test("a handler registered before the call is answered while the body still awaits Python", async () => {
  const { model, client, finish } = runningView();
  client.handle("double", async (x) => x * 2);
  const ask = client.call("ask", [20]); // the body awaits Python...
  await tick();
  model.fromKernel([{ type: "call", id: 7, name: "double", args: [20] }]); // ...which calls back
  assert.deepEqual([(await reply(model, 7)).ok, (await reply(model, 7)).value], [true, 40]);
  const askId = model.items().find((i) => i.type === "call" && i.name === "ask").id;
  model.fromKernel([{ type: "result", view: client.viewId, id: askId, value: 41 }]);
  assert.equal(await ask, 41);
  finish();
});

test("a call for a handler registered later in the body waits for it, not for the body's end", async () => {
  const { model, client, finish } = runningView();
  model.fromKernel([{ type: "call", id: 1, name: "late", args: [2] }]);
  await tick();
  assert.equal(model.items().some((i) => i.type === "reply"), false);
  client.handle("late", (x) => x + 1);
  assert.equal((await reply(model, 1)).value, 3);
  finish();
});

test("a handler the body never registers: answered 'missing' when the body ends", async () => {
  const { model, client, finish } = runningView();
  model.fromKernel([{ type: "call", id: 1, name: "never", args: [] }]);
  await tick();
  finish();
  const r = await reply(model, 1);
  assert.equal(r.ok, false);
  assert.equal(r.missing, true);
  assert.match(r.error.message, /no JavaScript handler named "never": register one with bridge.handle/);
});

test("a handler not registered while the body runs on: answered after the bound, naming it", async () => {
  const { model, client } = runningView({ handlerWaitMs: 50 });
  model.fromKernel([{ type: "call", id: 1, name: "size", args: [] }]);
  const r = await reply(model, 1);
  assert.equal(r.missing, true);
  assert.match(r.error.message, /no JavaScript handler named "size" after 0.05 s: the view's js is still running/);
  client.dispose();
});

test("events during the body reach listeners registered so far, and held ones keep their order", async () => {
  const { model, client, finish } = runningView();
  const now = [];
  client.on("tick", (p) => now.push(p));
  model.fromKernel([{ type: "event", name: "tick", payload: 1 }]);
  assert.deepEqual(now, [1]); // at once, the body is still running
  const later = [];
  model.fromKernel([{ type: "event", name: "later", payload: "a" }]); // no listener yet: held
  client.on("later", (p) => later.push(p));
  model.fromKernel([{ type: "event", name: "later", payload: "b" }]); // behind the held one
  assert.deepEqual(later, []);
  finish();
  await tick();
  assert.deepEqual(later, ["a", "b"]);
  model.fromKernel([{ type: "event", name: "later", payload: "c" }]);
  assert.deepEqual(later, ["a", "b", "c"]);
});

test("odd names: the page refuses non-strings at once and sends odd strings for Python to name", async () => {
  const model = new FakeModel();
  const client = new BridgeClient(model);
  await assert.rejects(client.call(5), { name: "TypeError", message: /bridge.call\(\) needs the name .* not number 5/ });
  await assert.rejects(client.call(null), { name: "TypeError", message: /not null/ });
  await assert.rejects(client.call("f", "x"), { name: "TypeError", message: /args must be an array/ });
  await assert.rejects(client.get({}), { name: "TypeError", message: /bridge.get\(\) needs a variable name/ });
  assert.throws(() => client.handle("", () => 1), { name: "TypeError", message: /non-empty string name/ });
  assert.throws(() => client.handle("h", 3), { name: "TypeError", message: /fn must be a function/ });
  client.call("", []);
  client.call("  add ", []);
  await tick();
  assert.deepEqual(model.items().filter((i) => i.type === "call").map((i) => i.name), ["", "  add "]);
});

test("errors name what failed: timeout, abort and close say which request", async () => {
  const model = new FakeModel();
  const client = new BridgeClient(model);
  await assert.rejects(client.call("slow", [], { timeout: 10 }), {
    name: "TimeoutError",
    message: 'Python function "slow" did not answer within 10 ms',
  });
  const controller = new AbortController();
  const aborted = client.execute("1", { signal: controller.signal });
  controller.abort();
  await assert.rejects(aborted, { name: "AbortError", message: "bridge.execute() was aborted" });
  const pending = client.get("x");
  client.closeAll("the widget was closed");
  await assert.rejects(pending, { name: "BridgeClosedError", message: 'bridge.get("x") got no answer: the widget was closed' });
  await assert.rejects(client.call("again"), {
    name: "BridgeClosedError",
    message: 'cannot send Python function "again": the widget was closed',
  });
});
