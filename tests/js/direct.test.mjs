// The page's half of the direct transport against a fake model and a fake WebSocket:
// framing, the ways it tries, kernel order across the two channels, and the fallback.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { BLOB_BYTES, DirectLink, frame, frameTexts, pack, proofOf, unpack, waysToConnect } from "../../js/direct.js";
import { BridgeClient, partViews, splitIntoParts } from "../../js/protocol.js";

class FakeModel {
  constructor(kernel) {
    this.sent = [];
    this.listeners = new Map();
    this.widget_manager = { kernel };
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

/** A WebSocket double: records what is sent; the test plays the kernel. */
class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.closed = false;
    FakeSocket.all.push(this);
    this.readyState = 0;
    setTimeout(() => {
      this.readyState = 1;
      this.onopen?.();
      this.onmessage?.({ data: JSON.stringify({ ipb: 1, nonce: "n-1" }) }); // the endpoint speaks first
    }, 0);
  }
  send(data) {
    this.sent.push(data);
  }
  close() {
    if (this.closed) return;
    this.closed = true;
    this.readyState = 3;
    setTimeout(() => this.onclose?.(), 0);
  }
  fromKernel(msgs, buffers = []) {
    const bytes = pack({ ipb: 1, msgs }, buffers);
    this.onmessage?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
  }
  /** A message whose buffers the page fetches (the kernel's `pack_reference`). */
  fromKernelByReference(msgs, sizes, key) {
    const head = new TextEncoder().encode(JSON.stringify([{ ipb: 1, msgs }, sizes, key]));
    const bytes = new Uint8Array(4 + head.byteLength);
    new DataView(bytes.buffer).setUint32(0, head.byteLength, true);
    bytes.set(head, 4);
    this.onmessage?.({ data: bytes.buffer });
  }
  /** Everything the page sent after authenticating, its `use` item included. */
  items() {
    // Text after the authentication (which has no msgs) is an envelope without buffers.
    return this.sent.flatMap((d) =>
      typeof d === "string" ? (JSON.parse(d).msgs ?? []) : unpack(d.buffer.slice(d.byteOffset)).content.msgs,
    );
  }
  /** A message without buffers as the kernel sends it: text, its envelope's JSON. */
  fromKernelText(msgs) {
    this.onmessage?.({ data: JSON.stringify({ ipb: 1, msgs }) });
  }
  requests() {
    return this.items().filter((i) => i.type !== "transport");
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));
/** The kernel's number for the connection in the tests (it names it in `ready` and in `transport` items). */
const CONN = 7;
/** A `transport` item for the client's view. */
const marker = (client, transport, conn = CONN) => ({ type: "transport", view: client.viewId, transport, conn });
const OFFER = { port: 4321, token: "secret", widget: "w1", routes: ["loopback"] };

/** A client whose kernel offered the direct path and whose socket said ready. */
async function connected(options = {}) {
  FakeSocket.all = [];
  const model = new FakeModel();
  const client = new BridgeClient(model);
  client.direct = new DirectLink(client, OFFER, { WebSocket: FakeSocket, ...options });
  await tick();
  const ws = FakeSocket.all[0];
  for (let i = 0; i < 200 && ws.sent.length === 0; i++) await tick(); // the proof is computed off-thread
  // On the loopback route the page proves it knows the secret and never sends it.
  const proof = createHmac("sha256", "secret").update("n-1").digest("hex");
  assert.deepEqual(JSON.parse(ws.sent[0]), { ipb: 1, proof, widget: "w1", view: client.viewId });
  ws.fromKernel([marker(client, "direct")]); // "ready"
  await client.direct.started;
  // The page's first message there says it uses this connection: only then does the kernel route to it.
  // On the loopback route it also says that it fetches big buffers from the endpoint.
  assert.deepEqual(ws.items(), [{ type: "transport", view: client.viewId, transport: "direct", fetch: true }]);
  return { model, client, ws };
}

test("pack and unpack are inverse and honour views into larger buffers", () => {
  const big = new Uint8Array([9, 9, 1, 2, 3, 9]);
  const bytes = pack({ ipb: 1, msgs: [{ type: "x" }] }, [big.subarray(2, 5), new Float64Array([1.5])]);
  const { content, buffers } = unpack(bytes.buffer);
  assert.deepEqual(content, { ipb: 1, msgs: [{ type: "x" }] });
  assert.deepEqual([...new Uint8Array(buffers[0].buffer, buffers[0].byteOffset, buffers[0].byteLength)], [1, 2, 3]);
  assert.equal(buffers[1].getFloat64(0, true), 1.5);
  assert.throws(() => unpack(new ArrayBuffer(2)));
  assert.throws(() => unpack(bytes.buffer.slice(0, bytes.byteLength - 1)));
});

test("a buffer given as the views it is made of packs like the joined buffer; big messages become a Blob of the same bytes", async () => {
  const a = new Uint8Array([1, 2, 3, 4, 5]);
  const joined = pack({ ipb: 1, msgs: [] }, [new Uint8Array([2, 3, 4, 5, 6])]);
  assert.deepEqual(pack({ ipb: 1, msgs: [] }, [[a.subarray(1), new Uint8Array([6])]]), joined);
  assert.ok(frame({ ipb: 1, msgs: [] }, [a]) instanceof Uint8Array); // small: an ArrayBuffer message, sent at once
  const big = new Float64Array(BLOB_BYTES / 8 + 3).map((_, i) => i / 3);
  const content = { ipb: 1, msgs: [{ type: "part", view: "v", id: 1, seq: 0, count: 1 }] };
  const blob = frame(content, [[new Uint8Array(big.buffer, 0, 8), new Uint8Array(big.buffer, 8)]]);
  assert.ok(blob instanceof Blob);
  const bytes = await blob.arrayBuffer();
  assert.deepEqual(new Uint8Array(bytes), pack(content, [big]));
  const { buffers } = unpack(bytes);
  assert.deepEqual(new Float64Array(bytes.slice(buffers[0].byteOffset)), big);
});

test("frameTexts writes the items' JSON into exactly the bytes pack makes, whatever the text and buffers", async () => {
  const utf8 = (t) => new TextEncoder().encode(t).byteLength;
  const cases = [
    [[{ type: "call", id: 1, args: [{ a: 1, b: "x" }] }], []],
    [[{ type: "call", id: 2, name: "ünïcödé ✓ 😀 \u2028" }, { type: "get", id: 3, name: "y" }], [new Uint8Array([1, 2, 3])]],
    [[{ type: "reply", id: 4, ok: true, value: { $ipb: "bytes", i: 1 } }], [new Uint8Array(0), new Float64Array([1.5, -2]).subarray(1)]],
    [[], []],
  ];
  for (const [msgs, buffers] of cases) {
    const texts = msgs.map((m) => JSON.stringify(m));
    const bytes = texts.reduce((n, t) => n + utf8(t), 0);
    const views = buffers.map((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
    const want = pack({ ipb: 1, msgs }, views);
    assert.deepEqual(frameTexts(texts, bytes, views), want);
    // A wrong byte count (never given by the client) still makes the right message.
    assert.deepEqual(frameTexts(texts, bytes + 1, views), want);
    assert.deepEqual(unpack(want.buffer).content, { ipb: 1, msgs });
  }
  // From BLOB_BYTES on: a Blob of the same bytes.
  const big = new Uint8Array(BLOB_BYTES).map((_, i) => i % 251);
  const texts = [JSON.stringify({ type: "call", id: 5, args: [{ $ipb: "bytes", i: 0 }] })];
  const blob = frameTexts(texts, utf8(texts[0]), [big]);
  assert.ok(blob instanceof Blob);
  assert.deepEqual(new Uint8Array(await blob.arrayBuffer()), pack({ ipb: 1, msgs: texts.map((t) => JSON.parse(t)) }, [big]));
});

test("partViews cuts a message like splitIntoParts, into views of the message's own bytes (no copy)", () => {
  const json = new TextEncoder().encode('{"ipb":1,"msgs":[]}');
  const buffers = [new Uint8Array(25).map((_, i) => i), new Uint8Array(0), new Uint8Array(7).fill(9)];
  const meta = { view: "v", id: 3, ids: [1] };
  const views = partViews(json, buffers, 10, meta);
  const copies = splitIntoParts(json, buffers, 10, meta);
  assert.deepEqual(views.map((p) => p.item), copies.map((p) => p.item));
  for (let i = 0; i < views.length; i++) {
    const joined = Uint8Array.from(views[i].chunk.flatMap((v) => [...v]));
    assert.deepEqual(joined, copies[i].chunk);
    for (const v of views[i].chunk) assert.ok([json, ...buffers].some((b) => b.buffer === v.buffer));
  }
});

test("proofs are the hex HMAC-SHA256 of the nonce keyed with the secret", async () => {
  assert.equal(await proofOf("k", "n"), createHmac("sha256", "k").update("n").digest("hex"));
});

test("loopback comes first from a page of this machine, the relay when the kernel and server allow it, then loopback; nothing else", () => {
  const kernel = { id: "k-1", serverSettings: { wsUrl: "wss://hub.example/user/a/", token: "t", appendToken: true } };
  assert.deepEqual(waysToConnect({ ...OFFER, routes: ["relay", "loopback"] }, kernel, "127.0.0.1"), [
    { route: "loopback", url: "ws://127.0.0.1:4321/ipybridge/direct" },
    { route: "relay", url: "wss://hub.example/user/a/ipybridge/direct/k-1?port=4321&token=t" },
  ]);
  assert.deepEqual(waysToConnect({ ...OFFER, routes: ["relay", "loopback"] }, kernel, "hub.example"), [
    { route: "relay", url: "wss://hub.example/user/a/ipybridge/direct/k-1?port=4321&token=t" },
  ]);
  assert.deepEqual(waysToConnect({ ...OFFER, routes: ["relay"] }, undefined), []);
  assert.deepEqual(waysToConnect({ ...OFFER, port: "1; evil" }, kernel), []);
  // A page served from another machine never sends the token to the browser's own 127.0.0.1.
  assert.deepEqual(waysToConnect(OFFER, kernel, "hub.example"), []);
  assert.equal(waysToConnect(OFFER, kernel, "127.0.0.1").length, 1);
  assert.equal(waysToConnect(OFFER, kernel, "[::1]").length, 1);
  assert.equal(waysToConnect(OFFER, kernel, "localhost").length, 1);
  assert.equal(waysToConnect(OFFER, kernel, "127.0.0.1.evil.example").length, 0);
});

test("calls go over the socket once it is ready, answers come back on it", async () => {
  const { model, client, ws } = await connected();
  assert.equal(client.transport, "direct");
  const sentBefore = model.sent.length;
  const answer = client.call("add", [1, 2]);
  await tick();
  assert.equal(model.sent.length, sentBefore); // nothing on the comm
  const [call] = ws.requests();
  assert.equal(call.name, "add");
  model.fromKernel([marker(client, "direct")]);
  ws.fromKernel([{ type: "result", view: client.viewId, id: call.id, value: 3 }]);
  assert.equal(await answer, 3);
});

test("a message without buffers goes and comes as text, one with buffers as binary; a bad text message is dropped", async (t) => {
  const { model, client, ws } = await connected();
  model.fromKernel([marker(client, "direct")]);
  const plain = client.call("echo", [{ a: 1, s: "é" }]);
  await tick();
  const withArray = client.call("sum", [new Float64Array([1, 2])]);
  await tick();
  const sent = ws.sent.slice(2); // after the authentication (text) and the "use" item (binary)
  assert.equal(sent.length, 2);
  assert.equal(typeof sent[0], "string");
  const text = JSON.parse(sent[0]);
  assert.equal(text.ipb, 1);
  assert.deepEqual([text.msgs.length, text.msgs[0].name, text.msgs[0].args], [1, "echo", [{ a: 1, s: "é" }]]);
  assert.ok(sent[1] instanceof Uint8Array);
  const [echo, sum] = ws.requests();
  const errors = t.mock.method(console, "error", () => {});
  ws.onmessage?.({ data: "not json" });
  ws.onmessage?.({ data: JSON.stringify({ ipb: 1 }) });
  assert.equal(errors.mock.callCount(), 2);
  ws.fromKernelText([{ type: "result", view: client.viewId, id: echo.id, value: { a: 1, s: "é" } }]);
  ws.fromKernel([{ type: "result", view: client.viewId, id: sum.id, value: 3 }]);
  assert.deepEqual(await plain, { a: 1, s: "é" });
  assert.equal(await withArray, 3);
});

test("direct items wait for the comm's marker, so output never overtakes what the comm sent first", async () => {
  const { model, client, ws } = await connected();
  const lines = [];
  const answer = client.call("talk", [], { onOutput: (_s, text) => lines.push(text) });
  await tick();
  const [call] = ws.requests();
  ws.fromKernel([{ type: "output", view: client.viewId, id: call.id, stream: "stdout", text: "second" }]);
  ws.fromKernel([{ type: "result", view: client.viewId, id: call.id, value: "done" }]);
  await tick();
  assert.deepEqual(lines, []); // held
  model.fromKernel([
    { type: "output", view: client.viewId, id: call.id, stream: "stdout", text: "first" },
    marker(client, "direct"),
    { type: "event", name: "late-comm-copy", payload: 1 }, // broadcast: its copy comes directly
  ]);
  assert.equal(await answer, "done");
  assert.deepEqual(lines, ["first", "second"]);
});

test("a socket lost mid-call falls back: the comm hears it first, then unanswered requests are sent again, marked", async () => {
  const { model, client, ws } = await connected();
  model.fromKernel([marker(client, "direct")]);
  const changes = [];
  client.onTransportChange((t) => changes.push(t));
  const a = client.call("slow", [1]);
  const b = client.call("fast", [2]);
  await tick();
  const [callA, callB] = ws.requests();
  ws.fromKernel([{ type: "result", view: client.viewId, id: callB.id, value: "b" }]);
  assert.equal(await b, "b");
  ws.close(); // the network drops
  await tick();
  await tick();
  assert.equal(client.transport, "comm");
  assert.deepEqual(changes, ["comm"]);
  const [notice, resent] = model.sent.slice(-2);
  assert.deepEqual(notice.content, { ipb: 1, msgs: [], direct: "lost", view: client.viewId, conn: CONN });
  assert.equal(resent.content.direct, "lost");
  assert.deepEqual(resent.content.msgs.map((i) => [i.type, i.id, i.name]), [["call", callA.id, "slow"]]);
  model.fromKernel([
    marker(client, "comm"),
    { type: "result", view: client.viewId, id: callA.id, value: "a" },
  ]);
  assert.equal(await a, "a");
  const next = client.call("again");
  await tick();
  assert.equal(model.items().at(-1).name, "again"); // the comm from now on
  model.fromKernel([{ type: "result", view: client.viewId, id: model.items().at(-1).id, value: 1 }]);
  assert.equal(await next, 1);
  assert.equal(client.diagnostics.unmatchedAnswers, 0);
});

test("a message over 8 MiB goes to the socket as parts, each a Blob; after a drop the rest go over the comm, joined", async () => {
  const { model, client, ws } = await connected();
  model.fromKernel([marker(client, "direct")]);
  const big = new Float64Array(2_500_000).map((_, i) => i); // 20 MB: three parts
  const answer = client.call("sink", [big]);
  const realSend = ws.send.bind(ws);
  let sends = 0;
  ws.send = (data) => {
    realSend(data);
    if (++sends === 1) ws.close(); // the socket drops after the first part
  };
  await tick();
  assert.equal(ws.sent.at(-1) instanceof Blob, true);
  assert.equal(ws.sent.at(-1).size <= client.limits.partBytes + 1024, true);
  await tick();
  await tick();
  // The comm heard that the socket was lost, then the whole call went again over the comm, as parts.
  const parts = model.sent.filter((m) => m.content.msgs[0]?.type === "part");
  assert.deepEqual(parts.map((m) => m.content.msgs[0].seq), [0, 1, 2]);
  for (const m of parts) {
    assert.equal(m.buffers.length, 1);
    assert.ok(m.buffers[0] instanceof Uint8Array && m.buffers[0].byteOffset === 0);
  }
  const stream = new Uint8Array(parts.reduce((n, m) => n + m.buffers[0].byteLength, 0));
  let at = 0;
  for (const m of parts) {
    stream.set(m.buffers[0], at);
    at += m.buffers[0].byteLength;
  }
  const sizes = parts[0].content.msgs[0].sizes;
  assert.deepEqual(new Float64Array(stream.slice(sizes[0]).buffer), big);
  model.fromKernel([marker(client, "comm"), { type: "result", view: client.viewId, id: parts[0].content.msgs[0].ids[0], value: 2_500_000 }]);
  assert.equal(await answer, 2_500_000);
});

/** A fetch double: each request waits until the test answers it. */
function fakeFetch() {
  const requests = [];
  const fetch = (url, init) =>
    new Promise((resolve, reject) => requests.push({ url, init, resolve, reject }));
  const body = (bytes, status = 200) => ({ ok: status === 200, status, arrayBuffer: async () => bytes.buffer });
  return { fetch, requests, body };
}

test("big buffers are fetched from the endpoint once; later messages wait for them, so the order holds", async () => {
  const f = fakeFetch();
  const { model, client, ws } = await connected({ fetch: f.fetch });
  model.fromKernel([marker(client, "direct")]);
  const big = client.call("big");
  const small = client.call("small");
  await tick();
  const [callBig, callSmall] = ws.requests();
  const order = [];
  big.then(() => order.push("big"));
  small.then(() => order.push("small"));
  ws.fromKernelByReference(
    [{ type: "result", view: client.viewId, id: callBig.id, value: [{ $ipb: "bytes", i: 0 }, { $ipb: "bytes", i: 1 }] }],
    [3, 5],
    "k-1",
  );
  ws.fromKernel([{ type: "result", view: client.viewId, id: callSmall.id, value: "s" }]);
  await tick();
  assert.deepEqual(order, []); // the small answer waits for the big one's body
  assert.equal(f.requests.length, 1);
  assert.equal(f.requests[0].url, `http://127.0.0.1:${OFFER.port}/ipybridge/direct/bulk/k-1`);
  assert.equal(f.requests[0].init.credentials, "omit");
  // The body: each buffer 8-aligned (3 bytes, 5 of padding, 5 bytes).
  f.requests[0].resolve(f.body(new Uint8Array([1, 2, 3, 0, 0, 0, 0, 0, 4, 5, 6, 7, 8])));
  const [first, second] = await big;
  assert.deepEqual([...first], [1, 2, 3]);
  assert.deepEqual([...second], [4, 5, 6, 7, 8]);
  assert.equal(await small, "s");
  assert.deepEqual(order, ["big", "small"]);
  assert.equal(client.transport, "direct");
});

test("a fetch that fails is a lost connection: what was not delivered is asked for again over the comm", async () => {
  const f = fakeFetch();
  const { model, client, ws } = await connected({ fetch: f.fetch });
  model.fromKernel([marker(client, "direct")]);
  const big = client.call("big");
  await tick();
  const [callBig] = ws.requests();
  ws.fromKernelByReference([{ type: "result", view: client.viewId, id: callBig.id, value: { $ipb: "bytes", i: 0 } }], [4], "k-2");
  await tick();
  f.requests[0].resolve(f.body(new Uint8Array(0), 404)); // fetched already, or the kernel dropped it
  await tick();
  await tick();
  assert.equal(client.transport, "comm");
  assert.equal(ws.closed, true);
  const again = model.sent.at(-1);
  assert.equal(again.content.direct, "lost");
  assert.deepEqual(again.content.msgs.map((i) => [i.type, i.id]), [["call", callBig.id]]);
  model.fromKernel([marker(client, "comm"), { type: "result", view: client.viewId, id: callBig.id, value: 4 }]);
  assert.equal(await big, 4);
});

test("the relay route never fetches: big buffers come inline there", async () => {
  FakeSocket.all = [];
  const model = new FakeModel({ id: "k1", serverSettings: { wsUrl: "ws://example.org/" } });
  const client = new BridgeClient(model);
  client.direct = new DirectLink(client, { ...OFFER, routes: ["relay"] }, { WebSocket: FakeSocket });
  await tick();
  const ws = FakeSocket.all[0];
  for (let i = 0; i < 200 && ws.sent.length === 0; i++) await tick();
  ws.fromKernel([marker(client, "direct")]);
  await client.direct.started;
  assert.deepEqual(ws.items(), [{ type: "transport", view: client.viewId, transport: "direct" }]);
});

test("a socket that never says ready leaves everything on the comm", async () => {
  FakeSocket.all = [];
  const model = new FakeModel();
  const client = new BridgeClient(model);
  client.direct = new DirectLink(client, OFFER, { WebSocket: FakeSocket });
  await tick();
  FakeSocket.all[0].close(); // refused
  await client.direct.started;
  assert.equal(client.transport, "comm");
  const answer = client.call("x");
  await tick();
  const item = model.items().at(-1);
  assert.equal(item.name, "x");
  assert.equal(model.sent.at(-1).content.direct, undefined);
  model.fromKernel([{ type: "result", view: client.viewId, id: item.id, value: 7 }]);
  assert.equal(await answer, 7);
});

test("closing the view closes the socket after the bye", async () => {
  const { client, ws } = await connected();
  client.dispose();
  assert.equal(ws.requests().at(-1).type, "bye");
  assert.equal(ws.closed, true);
});

test("call_js calls the kernel sends again after a drop run once: a new one runs, a seen one is answered again, not run", async () => {
  const { model, client, ws } = await connected();
  model.fromKernel([marker(client, "direct")]);
  const runs = [];
  client.handle("greet", (who) => { runs.push(who); return `hi ${who}`; });
  ws.fromKernel([{ type: "call", id: 1, name: "greet", args: ["a"] }]);
  await tick();
  ws.close();
  await tick();
  await tick();
  model.fromKernel([
    marker(client, "comm"),
    { type: "call", id: 1, name: "greet", args: ["a"], view: client.viewId }, // ran: its reply may be lost, sent again
    { type: "call", id: 2, name: "greet", args: ["b"], view: client.viewId }, // lost with the socket: runs
  ]);
  await tick();
  await tick();
  assert.deepEqual(runs, ["a", "b"]);
  // The reply to call 1 left on the socket, which died: the comm carries it again (the kernel keeps the first).
  const replies = model.items().filter((i) => i.type === "reply").map((i) => [i.id, i.value]);
  assert.deepEqual(replies, [[1, "hi a"], [2, "hi b"]]);
});

test("output and events the socket did not deliver before a drop come again over the comm, each once, in order", async (t) => {
  const warn = t.mock.method(console, "warn", () => {});
  const { model, client, ws } = await connected();
  model.fromKernel([marker(client, "direct")]);
  const printed = [];
  const events = [];
  client.on("tick", (n) => events.push(n));
  const call = client.call("chatty", [], { onOutput: (stream, text) => printed.push(text) });
  await tick();
  const id = ws.requests().at(-1).id;
  const view = client.viewId;
  ws.fromKernel([
    { type: "output", view, id, stream: "stdout", text: "one\n", n: 1 },
    { type: "event", name: "tick", payload: 1, n: 2 },
  ]);
  ws.close(); // items 3 and 4 were on their way on the socket: lost with it
  await tick();
  await tick();
  // The kernel sends again what the connection carried, after its switch back to the comm.
  const again = (item) => ({ ...item, view, resent: CONN });
  model.fromKernel([
    marker(client, "comm"),
    again({ type: "output", view, id, stream: "stdout", text: "one\n", n: 1 }),
    again({ type: "event", name: "tick", payload: 1, n: 2 }),
    again({ type: "output", view, id, stream: "stdout", text: "two\n", n: 3 }),
    again({ type: "event", name: "tick", payload: 2, n: 4 }),
    { ...again({ type: "event", name: "tick", payload: 9, n: 3 }), view: "another-view" }, // not this view's
    { ...again({ type: "event", name: "tick", payload: 9, n: 5 }), resent: CONN + 1 }, // not this connection's
    { type: "output", view, id, stream: "stdout", text: "three\n" },
    { type: "result", view, id, value: "done" },
  ]);
  assert.equal(await call, "done");
  assert.deepEqual(printed, ["one\n", "two\n", "three\n"]);
  assert.deepEqual(events, [1, 2]);
  assert.equal(warn.mock.callCount(), 0);
  // A gap (the kernel keeps only the newest items) is reported, not hidden.
  model.fromKernel([{ type: "event", name: "tick", payload: 7, view, resent: CONN, n: 9 }]);
  assert.deepEqual(events, [1, 2, 7]);
  assert.match(String(warn.mock.calls[0].arguments[0]), /4 output or event item\(s\) were lost/);
});

// ------------------------------------------------------------- races (issue 14's stall)
test("a call sent over the comm before the switch is asked for again after a drop (its answer may have left on the socket)", async () => {
  FakeSocket.all = [];
  const model = new FakeModel();
  const client = new BridgeClient(model);
  const early = client.call("slow", [1]); // over the comm: no connection yet
  await tick();
  const sentEarly = model.items().find((i) => i.name === "slow");
  client.direct = new DirectLink(client, OFFER, { WebSocket: FakeSocket });
  await tick();
  const ws = FakeSocket.all[0];
  for (let i = 0; i < 200 && ws.sent.length === 0; i++) await tick();
  ws.fromKernel([marker(client, "direct")]);
  await client.direct.started;
  model.fromKernel([marker(client, "direct")]);
  ws.close(); // the answer to "slow" was on its way on the socket, and died with it
  await tick();
  await tick();
  const resent = model.sent.at(-1);
  assert.equal(resent.content.direct, "lost");
  assert.deepEqual(resent.content.msgs.map((i) => [i.type, i.id]), [["call", sentEarly.id]]);
  model.fromKernel([marker(client, "comm"), { type: "result", view: client.viewId, id: sentEarly.id, value: 10 }]);
  assert.equal(await early, 10);
  assert.equal(client.diagnostics.unmatchedAnswers, 0);
});

test("a transport item for another connection (one the page gave up on) changes nothing", async () => {
  const { model, client, ws } = await connected();
  model.fromKernel([marker(client, "direct", CONN - 1), marker(client, "comm", CONN - 1)]);
  model.fromKernel([marker(client, "direct")]);
  model.fromKernel([marker(client, "comm", CONN + 1)]);
  assert.equal(client.transport, "direct");
  assert.equal(ws.closed, false);
  const answer = client.call("add", [1, 2]);
  await tick();
  const [call] = ws.requests();
  ws.fromKernel([{ type: "result", view: client.viewId, id: call.id, value: 3 }]);
  assert.equal(await answer, 3);
});

test("a connection the page gave up on (timed out before ready) is never used, and the next way is tried", async (t) => {
  FakeSocket.all = [];
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const model = new FakeModel({ id: "k-1", serverSettings: { wsUrl: "ws://127.0.0.1:8888/" } });
  const client = new BridgeClient(model);
  client.direct = new DirectLink(client, { ...OFFER, routes: ["loopback", "relay"] }, { WebSocket: FakeSocket });
  t.mock.timers.tick(1); // the endpoint says its nonce
  await new Promise((r) => setImmediate(r));
  const first = FakeSocket.all[0];
  for (let i = 0; i < 200 && first.sent.length === 0; i++) await new Promise((r) => setImmediate(r));
  t.mock.timers.tick(3000); // no "ready" within CONNECT_MS
  first.fromKernel([marker(client, "direct", 1)]); // the kernel authenticated it just after
  t.mock.timers.tick(1);
  await new Promise((r) => setImmediate(r));
  assert.equal(first.closed, true);
  assert.deepEqual(first.items(), []); // never used: the kernel routes nothing to it
  const second = FakeSocket.all[1];
  assert.match(second.url, /ipybridge\/direct\/k-1/);
  t.mock.timers.tick(1); // its nonce
  for (let i = 0; i < 200 && second.sent.length === 0; i++) await new Promise((r) => setImmediate(r));
  second.fromKernel([marker(client, "direct", 2)]);
  await client.direct.started;
  t.mock.timers.reset();
  assert.equal(client.transport, "direct");
  assert.deepEqual(second.items(), [{ type: "transport", view: client.viewId, transport: "direct" }]);
  model.fromKernel([marker(client, "comm", 1)]); // whatever the kernel says of the first, the second stays
  assert.equal(client.transport, "direct");
});

test("the kernel's comm item ends the connection: what still comes on the socket is ignored, unanswered requests go again", async () => {
  const { model, client, ws } = await connected();
  model.fromKernel([marker(client, "direct")]);
  const a = client.call("a");
  await tick();
  const [callA] = ws.requests();
  model.fromKernel([marker(client, "comm")]); // e.g. the kernel refused a second connection for this view
  assert.equal(ws.closed, true);
  assert.equal(client.transport, "comm");
  await tick();
  assert.deepEqual(model.items().filter((i) => i.type === "call").map((i) => i.id), [callA.id]);
  ws.fromKernel([{ type: "result", view: client.viewId, id: callA.id, value: "late" }]); // ignored
  model.fromKernel([{ type: "result", view: client.viewId, id: callA.id, value: "again" }]);
  assert.equal(await a, "again");
  assert.equal(client.diagnostics.unmatchedAnswers, 0);
});

test("answers that arrived on the socket before the comm's item are not asked for again after a drop", async () => {
  const { model, client, ws } = await connected();
  const a = client.call("a");
  const b = client.call("b");
  await tick();
  const [callA, callB] = ws.requests();
  ws.fromKernel([{ type: "result", view: client.viewId, id: callA.id, value: "A" }]); // held: no comm item yet
  ws.close();
  await tick();
  await tick();
  const resent = model.items().filter((i) => i.type === "call").map((i) => i.id);
  assert.deepEqual(resent, [callB.id]);
  model.fromKernel([marker(client, "direct"), marker(client, "comm")]);
  assert.equal(await a, "A");
  model.fromKernel([{ type: "result", view: client.viewId, id: callB.id, value: "B" }]);
  assert.equal(await b, "B");
  assert.equal(client.diagnostics.unmatchedAnswers, 0);
});
