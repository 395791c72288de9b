// The page's own CPU per call, without a browser or a kernel: `node benchmarks/bench_page.mjs`.
// One BridgeClient on the direct transport (js/protocol.js + js/direct.js) with a fake WebSocket that
// plays the kernel with answers built in advance, so nearly all the time measured is the page's:
// the call, its encoding and envelope, the packed websocket message, and the answer's unpacking,
// dispatch and resolved promise, plus the bench loop's own await (as bench_rpc's `throughput`).
// Options: --calls N (per run), --inflight 1 64, --answers-per-message K (the kernel's batching of
// answers at 64 in flight: all of one page message's answers in one message, or K per message),
// --runs R, --profile (writes a V8 CPU profile with node's --cpu-prof when run that way).
import { performance } from "node:perf_hooks";
import { DirectLink } from "../js/direct.js";
import { BridgeClient } from "../js/protocol.js";

const args = process.argv.slice(2);
/** @param {string} name @param {string[]} fallback */
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const out = [];
  for (let j = i + 1; j < args.length && !args[j].startsWith("--"); j++) out.push(args[j]);
  return out;
};
const CALLS = Number(opt("--calls", ["100000"])[0]);
const INFLIGHT = opt("--inflight", ["1", "64"]).map(Number);
const PER_MESSAGE = Number(opt("--answers-per-message", ["0"])[0]); // 0: all of a page message's answers in one
const RUNS = Number(opt("--runs", ["5"])[0]);

const OFFER = { port: 4321, token: "secret", widget: "w1", routes: ["loopback"] };
const encoder = new TextEncoder();

/** The kernel's framing (src/ipybridge/_direct.py pack): u32 LE length, JSON header padded to 8 when buffers follow. */
function kernelMessage(items) {
  const head = encoder.encode(JSON.stringify([{ ipb: 1, msgs: items }, []]));
  const out = new Uint8Array(4 + head.byteLength);
  new DataView(out.buffer).setUint32(0, head.byteLength, true);
  out.set(head, 4);
  return out.buffer;
}

/** A WebSocket double that says ready, then answers every call with `{a: 1, b: "x"}` (macrotask per message). */
class FakeSocket {
  static last = null;
  constructor() {
    FakeSocket.last = this;
    this.readyState = 0;
    this.sentMessages = 0;
    this.answering = false;
    /** @type {number[]} ids of calls received, not answered yet */
    this.queue = [];
    setTimeout(() => {
      this.readyState = 1;
      this.onmessage?.({ data: JSON.stringify({ ipb: 1, nonce: "n-1" }) });
    }, 0);
  }
  send(data) {
    if (typeof data === "string") {
      this.view = JSON.parse(data).view;
      setTimeout(() => this.onmessage?.({ data: kernelMessage([{ type: "transport", view: this.view, transport: "direct", conn: 1 }]) }), 0);
      return;
    }
    this.sentMessages++;
    if (!this.answering) return;
    // The ids of the calls in this message: cheap scan of the header (not the page's cost to measure).
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    const text = Buffer.from(bytes.buffer, bytes.byteOffset + 4, bytes.byteLength - 4).toString("latin1");
    const ids = [];
    for (const m of text.matchAll(/"id":(\d+)/g)) ids.push(Number(m[1]));
    const chunk = PER_MESSAGE > 0 ? PER_MESSAGE : ids.length;
    for (let i = 0; i < ids.length; i += chunk) {
      const items = ids.slice(i, i + chunk).map((id) => ({ type: "result", view: this.view, id, value: { a: 1, b: "x" } }));
      const message = kernelMessage(items);
      setImmediate(() => this.onmessage?.({ data: message }));
    }
  }
  close() {}
}

async function setup() {
  const model = {
    listeners: new Map(),
    send() {},
    on(name, cb) {
      this.listeners.set(name, cb);
    },
    off() {},
  };
  const client = new BridgeClient(model);
  client.direct = new DirectLink(client, OFFER, { WebSocket: FakeSocket, fetch: undefined });
  await client.direct.started;
  const ws = FakeSocket.last;
  // The comm's marker: from here on the socket's messages are delivered at once.
  model.listeners.get("msg:custom")({ ipb: 1, msgs: [{ type: "transport", view: client.viewId, transport: "direct", conn: 1 }] }, []);
  if (client.transport !== "direct" || !client.direct.commSaysDirect) throw new Error("not on the direct path");
  ws.answering = true;
  return { client, ws };
}

async function run(client, ws, inflight, calls) {
  const py = client.proxy();
  const tiny = { a: 1, b: "x" };
  let done = 0;
  const messages0 = ws.sentMessages;
  const worker = async () => {
    while (done < calls) {
      const r = await py.echo(tiny);
      if (r.a !== 1) throw new Error("wrong answer");
      done++;
    }
  };
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  await Promise.all(Array.from({ length: inflight }, worker));
  const cpu = process.cpuUsage(cpu0);
  const ms = performance.now() - t0;
  return { us: (ms * 1000) / done, cpuUs: (cpu.user + cpu.system) / done, perMessage: done / (ws.sentMessages - messages0) };
}

const { client, ws } = await setup();
await run(client, ws, 64, 20000); // warm-up
for (const k of INFLIGHT) {
  const rows = [];
  for (let r = 0; r < RUNS; r++) rows.push(await run(client, ws, k, CALLS));
  const med = (key) => rows.map((x) => x[key]).sort((a, b) => a - b)[Math.floor(rows.length / 2)];
  console.log(
    `${k} in flight: ${med("cpuUs").toFixed(2)} us CPU per call, ${med("us").toFixed(2)} us wall ` +
      `(medians of ${RUNS} runs of ${CALLS}), ${rows[0].perMessage.toFixed(1)} calls per page message`,
  );
}
client.dispose();
