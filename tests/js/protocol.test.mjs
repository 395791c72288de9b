// BridgeClient against a fake anywidget model: batching, answers, errors,
// timeouts, aborts, events, handlers and closing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { BridgeClient, splitIntoParts } from "../../js/protocol.js";
import { encode } from "../../js/serialize.js";

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
  trigger(name) {
    for (const cb of this.listeners.get(name) ?? []) cb();
  }
  items() {
    return this.sent.flatMap((m) => m.content.msgs);
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));

test("a new view says hello, and calls made in one tick leave in one message", async () => {
  const model = new FakeModel();
  const client = new BridgeClient(model);
  const calls = [client.call("a", [1]), client.call("b", [2]), client.call("c", [new Float64Array([1])])];
  await tick();
  assert.equal(model.sent.length, 1);
  const [hello, ...rest] = model.sent[0].content.msgs;
  assert.equal(hello.type, "hello");
  assert.deepEqual(rest.map((i) => [i.type, i.name, i.view]), [["call", "a", client.viewId], ["call", "b", client.viewId], ["call", "c", client.viewId]]);
  assert.equal(model.sent[0].buffers.length, 1);
  model.fromKernel(rest.map((i) => ({ type: "result", view: client.viewId, id: i.id, value: i.name })));
  assert.deepEqual(await Promise.all(calls), ["a", "b", "c"]);
});

test("answers addressed to another view are ignored", async () => {
  const model = new FakeModel();
  const client = new BridgeClient(model);
  let settled = false;
  const p = client.call("x").then(() => (settled = true));
  await tick();
  const id = model.items().find((i) => i.type === "call").id;
  model.fromKernel([{ type: "result", view: "someone-else", id, value: 1 }]);
  await tick();
  assert.equal(settled, false);
  model.fromKernel([{ type: "result", view: client.viewId, id, value: 2 }]);
  await p;
});

test("Python errors reject with name, message, ename, evalue, traceback", async () => {
  const model = new FakeModel();
  const client = new BridgeClient(model);
  const p = client.call("boom");
  await tick();
  const id = model.items().find((i) => i.type === "call").id;
  model.fromKernel([{ type: "error", view: client.viewId, id, error: { ename: "ZeroDivisionError", evalue: "division by zero", traceback: ["t"] } }]);
  await assert.rejects(p, (e) => e.name === "ZeroDivisionError" && e.message === "division by zero" && e.ename === "ZeroDivisionError" && e.evalue === "division by zero" && e.traceback[0] === "t");
});

test("output reaches onOutput while the call runs; results decode with the item's buffers", async () => {
  const model = new FakeModel();
  const client = new BridgeClient(model);
  const seen = [];
  const p = client.call("noisy", [], { onOutput: (s, t) => seen.push(`${s}:${t}`) });
  await tick();
  const id = model.items().find((i) => i.type === "call").id;
  const buffers = [];
  const value = encode({ data: new Uint8Array([9]) }, buffers);
  model.fromKernel([{ type: "output", view: client.viewId, id, stream: "stdout", text: "hi\n" }], []);
  assert.deepEqual(seen, ["stdout:hi\n"]);
  model.fromKernel([{ type: "result", view: client.viewId, id, value, b0: 1 }], [new Uint8Array([0]), ...buffers]);
  assert.deepEqual(Array.from((await p).data), [9]);
});

test("timeout and abort reject, tell the kernel to cancel, and drop a late answer", async () => {
  const model = new FakeModel();
  const client = new BridgeClient(model);
  const timed = client.call("slow", [], { timeout: 10 });
  const controller = new AbortController();
  const aborted = client.call("slow", [], { signal: controller.signal });
  controller.abort();
  await assert.rejects(aborted, { name: "AbortError" });
  await assert.rejects(timed, { name: "TimeoutError" });
  await tick();
  const cancels = model.items().filter((i) => i.type === "cancel");
  assert.deepEqual(cancels.map((c) => c.reason).sort(), ["abort", "timeout"]);
  const id = model.items().find((i) => i.type === "call").id;
  model.fromKernel([{ type: "result", view: client.viewId, id, value: "late" }]); // no throw, no effect
  await assert.rejects(client.call("x", [], { signal: AbortSignal.abort() }), { name: "AbortError" });
});

test("an argument that cannot be encoded rejects only its own call", async () => {
  const model = new FakeModel();
  const client = new BridgeClient(model);
  const bad = client.call("f", [() => 1]);
  const good = client.call("g", [1]);
  await assert.rejects(bad, { name: "TypeError" });
  const id = model.items().find((i) => i.name === "g").id;
  model.fromKernel([{ type: "result", view: client.viewId, id, value: "ok" }]);
  assert.equal(await good, "ok");
});

test("events reach listeners; unsubscribe works; early events wait for setup", async () => {
  const model = new FakeModel();
  const client = new BridgeClient(model);
  let release;
  client.setSetup(new Promise((r) => (release = r)));
  model.fromKernel([{ type: "event", name: "early", payload: 1 }]);
  const got = [];
  const off = client.on("early", (p) => got.push(p));
  release();
  await tick();
  assert.deepEqual(got, [1]);
  model.fromKernel([{ type: "event", name: "early", payload: 2 }]);
  off();
  model.fromKernel([{ type: "event", name: "early", payload: 3 }]);
  assert.deepEqual(got, [1, 2]);
});

test("calls from Python run the handler and reply; missing handlers say so", async () => {
  const model = new FakeModel();
  const client = new BridgeClient(model);
  client.handle("double", (x) => x * 2);
  client.handle("fail", () => {
    throw new RangeError("nope");
  });
  model.fromKernel([
    { type: "call", id: 1, name: "double", args: [21] },
    { type: "call", id: 2, name: "fail", args: [] },
    { type: "call", id: 3, name: "absent", args: [] },
  ]);
  for (let i = 0; i < 5; i++) await tick();
  const replies = Object.fromEntries(model.items().filter((i) => i.type === "reply").map((r) => [r.id, r]));
  assert.equal(replies[1].ok, true);
  assert.equal(replies[1].value, 42);
  assert.equal(replies[2].error.name, "RangeError");
  assert.equal(replies[3].missing, true);
});

test("closing rejects everything pending with BridgeClosedError, and later calls too", async () => {
  const model = new FakeModel();
  const client = new BridgeClient(model);
  const pending = client.call("hang");
  let closedWith = null;
  client.onClose((e) => (closedWith = e.name));
  model.trigger("destroy");
  await assert.rejects(pending, { name: "BridgeClosedError" });
  await assert.rejects(client.call("again"), { name: "BridgeClosedError" });
  assert.equal(closedWith, "BridgeClosedError");
});

test("a kernel restart seen through the widget manager closes the client at once", async () => {
  const slots = [];
  const kernel = { statusChanged: { connect: (fn) => slots.push(fn), disconnect: () => {} } };
  const model = Object.assign(new FakeModel(), { widget_manager: { kernel } });
  const client = new BridgeClient(model);
  const pending = client.call("slow");
  slots.forEach((fn) => fn(kernel, "restarting"));
  await assert.rejects(pending, { name: "BridgeClosedError" });
});

test("the kernel's closing item (it got a shutdown_request) closes every view at once, saying why", async () => {
  for (const [restart, why] of [[false, "the kernel is shutting down"], [true, "the kernel is restarting"]]) {
    const model = new FakeModel();
    const client = new BridgeClient(model);
    const pending = client.call("slow");
    let reason = null;
    client.onClose((e) => (reason = e.message));
    model.fromKernel([{ type: "closing", restart }]);
    assert.equal(client.closed, true);
    await assert.rejects(pending, (e) => e.name === "BridgeClosedError" && e.message.includes(why));
    assert.ok(reason.includes(why), reason);
    await assert.rejects(client.call("again"), { name: "BridgeClosedError" });
  }
});

test("the py proxy calls by property name and is not a thenable", async () => {
  const model = new FakeModel();
  const client = new BridgeClient(model);
  const py = client.proxy();
  assert.equal(py.then, undefined);
  const p = py.add(1, 2);
  await tick();
  const call = model.items().find((i) => i.type === "call");
  assert.deepEqual([call.name, call.args], ["add", [1, 2]]);
  model.fromKernel([{ type: "result", view: client.viewId, id: call.id, value: 3 }]);
  assert.equal(await p, 3);
});

// ------------------------------------------------------------ size limit and parts
const { parts: partExamples } = JSON.parse(readFileSync(new URL("../shared/wire_examples.json", import.meta.url), "utf8"));
const fromHex = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
const toHex = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");

test("splitIntoParts cuts a message exactly as the shared examples say", () => {
  for (const example of partExamples) {
    const parts = splitIntoParts(new TextEncoder().encode(example.json), example.buffers.map(fromHex), example.part_bytes, example.meta);
    assert.deepEqual(parts.map((p) => ({ item: p.item, chunk: toHex(p.chunk) })), example.parts);
  }
});

/** Join what a fake model received as parts back into {content, buffers}, as the kernel does. */
function joinParts(sent) {
  const first = sent[0].content.msgs[0];
  const stream = Buffer.concat(sent.map((m) => Buffer.from(m.buffers[0])));
  const [jsonBytes, ...bufferSizes] = first.sizes;
  const content = JSON.parse(stream.subarray(0, jsonBytes).toString("utf8"));
  let offset = jsonBytes;
  const buffers = bufferSizes.map((n) => stream.subarray(offset, (offset += n)));
  return { first, content, buffers };
}

test("a message over the part size leaves as parts no bigger than it, and joins back", async () => {
  const model = new FakeModel();
  const client = new BridgeClient(model);
  client.limits.partBytes = 1000;
  await tick();
  model.sent.length = 0; // the hello
  const data = Float64Array.from({ length: 500 }, (_, i) => i);
  const call = client.call("total", [data]);
  await tick();
  assert.ok(model.sent.length >= 4);
  for (const m of model.sent) {
    assert.equal(m.content.msgs.length, 1);
    assert.equal(m.content.msgs[0].type, "part");
    assert.equal(m.buffers.length, 1);
    assert.ok(m.buffers[0].byteLength <= 1000);
  }
  const { first, content, buffers } = joinParts(model.sent);
  const item = content.msgs[0];
  assert.deepEqual(first.ids, [item.id]);
  assert.equal(item.name, "total");
  assert.deepEqual(new Float64Array(new Uint8Array(buffers[0]).slice().buffer), data);
  model.fromKernel([{ type: "result", view: client.viewId, id: item.id, value: 7 }]);
  assert.equal(await call, 7);
});

test("a call over the kernel's limit rejects at once with MessageTooLargeError and sends nothing", async () => {
  const model = new FakeModel();
  const client = new BridgeClient(model);
  model.fromKernel([{ type: "welcome", view: client.viewId, limits: { message_bytes: 4096 } }]);
  await tick();
  model.sent.length = 0;
  const big = client.call("echo", [new Uint8Array(5000)]);
  const small = client.call("echo", [1]);
  await assert.rejects(big, (e) => e.name === "MessageTooLargeError" && /over the 4\.0 KiB/.test(e.message) && /max_message_bytes/.test(e.message));
  await tick();
  assert.deepEqual(model.items().map((i) => [i.type, i.name]), [["call", "echo"]]); // only the small call left
  model.fromKernel([{ type: "result", view: client.viewId, id: model.items()[0].id, value: 1 }]);
  assert.equal(await small, 1);
});

test("calls that fit one by one but not together leave in separate messages", async () => {
  const model = new FakeModel();
  const client = new BridgeClient(model);
  model.fromKernel([{ type: "welcome", view: client.viewId, limits: { message_bytes: 3000 } }]);
  await tick();
  model.sent.length = 0;
  client.call("a", [new Uint8Array(2000)]);
  client.call("b", [new Uint8Array(2000)]);
  await tick();
  assert.equal(model.sent.length, 2);
  for (const m of model.sent) {
    assert.equal(m.content.msgs.length, 1);
    assert.equal(m.buffers.length, 1);
    assert.equal(m.content.msgs[0].args[0].i, 0); // each message numbers its own buffers
  }
});

test("a reply to Python too large to send becomes a failed reply", async () => {
  const model = new FakeModel();
  const client = new BridgeClient(model);
  model.fromKernel([{ type: "welcome", view: client.viewId, limits: { message_bytes: 2048 } }]);
  client.handle("big", () => new Uint8Array(4096));
  model.fromKernel([{ type: "call", id: 5, name: "big", args: [] }]);
  for (let i = 0; i < 5; i++) await tick();
  const reply = model.items().find((i) => i.type === "reply");
  assert.equal(reply.ok, false);
  assert.equal(reply.error.name, "MessageTooLargeError");
});

test("diagnostics count answers for requests the view is not waiting for; the first answer wins", async () => {
  const model = new FakeModel();
  const client = new BridgeClient(model);
  const p = client.call("x");
  await tick();
  const id = model.items().find((i) => i.type === "call").id;
  assert.equal(client.diagnostics.unmatchedAnswers, 0);
  model.fromKernel([{ type: "result", view: client.viewId, id, value: 1 }]);
  model.fromKernel([{ type: "result", view: client.viewId, id, value: 2 }]); // answered twice
  model.fromKernel([{ type: "error", view: client.viewId, id: id + 1000, error: { ename: "E", evalue: "" } }]); // never asked
  model.fromKernel([{ type: "result", view: "someone-else", id, value: 3 }]); // another view's: not ours to count
  assert.equal(await p, 1);
  assert.equal(client.diagnostics.unmatchedAnswers, 2);
});
