// The page's own time per call, without a kernel: one BridgeClient on the direct transport (js/protocol.js +
// js/direct.js) with a fake WebSocket that plays the kernel cheaply, so nearly all the time measured is the
// page's: the call, its encoding and envelope, the packed websocket message, and the answer's unpacking,
// dispatch and resolved promise, plus the loop's own await (as bench_rpc's `throughput`). The fake answers
// each page message with one message (a macrotask, like a websocket message event) holding its answers,
// or --answers-per-message K answers per message.
//
//   node benchmarks/bench_page.mjs [--calls 100000] [--inflight 1 64] [--runs 5] [--answers-per-message K]
//   .venv/bin/python benchmarks/bench_page.py   (the same module in headless Chromium)
//
// What the real WebSocket costs (ws.send, the message event) is not in it: see bench_rpc's --page-share and
// --page-profile for the page in a real notebook.
import { DirectLink } from "../js/direct.js";
import { BridgeClient } from "../js/protocol.js";

// The relay route: it is offered whatever the page's address (a blank page in Chromium has none).
const OFFER = { port: 4321, token: "secret", widget: "w1", routes: ["relay"] };
const KERNEL = { id: "k1", serverSettings: { wsUrl: "ws://127.0.0.1:1/" } };
const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** The kernel's framing (src/ipybridge/_direct.py pack), for a message without buffers. @param {any[]} items */
function kernelMessage(items) {
  const head = encoder.encode(JSON.stringify([{ ipb: 1, msgs: items }, []]));
  const out = new Uint8Array(4 + head.byteLength);
  new DataView(out.buffer).setUint32(0, head.byteLength, true);
  out.set(head, 4);
  return out.buffer;
}

/** Run `fn` as a macrotask (a websocket message event is one). */
const macrotask =
  typeof setImmediate === "function"
    ? (/** @type {() => void} */ fn) => setImmediate(fn)
    : (() => {
        const channel = new MessageChannel();
        /** @type {(() => void)[]} */
        const queue = [];
        channel.port1.onmessage = () => queue.shift()?.();
        return (/** @type {() => void} */ fn) => {
          queue.push(fn);
          channel.port2.postMessage(null);
        };
      })();

/** A WebSocket double that says ready, then answers every call with its argument `{a: 1, b: "x"}`. */
class FakeSocket {
  /** @type {FakeSocket|null} */
  static last = null;
  /** @param {number} perMessage answers per kernel message (0: all of one page message's) */
  constructor(perMessage) {
    FakeSocket.last = this;
    this.perMessage = perMessage;
    this.readyState = 0;
    this.sentMessages = 0;
    this.answering = false;
    this.sendAt = 0;
    this.messageAt = 0;
    /** @type {any} */ this.onmessage = null;
    /** @type {string|null} */ this.view = null;
    setTimeout(() => {
      this.readyState = 1;
      this.onmessage?.({ data: JSON.stringify({ ipb: 1, nonce: "n-1" }) });
    }, 0);
  }
  /** @param {any} data */
  send(data) {
    this.sendAt = performance.now();
    if (typeof data === "string") {
      this.view = JSON.parse(data).view;
      const ready = kernelMessage([{ type: "transport", view: this.view, transport: "direct", conn: 1 }]);
      setTimeout(() => this.onmessage?.({ data: ready }), 0);
      return;
    }
    this.sentMessages++;
    if (!this.answering) return;
    // The ids of the calls in this message: a cheap scan of the header (the fake kernel's, not the page's).
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    const text = latin1.decode(bytes.subarray(4));
    const ids = [];
    for (const m of text.matchAll(/"id":(\d+)/g)) ids.push(Number(m[1]));
    const chunk = this.perMessage > 0 ? this.perMessage : ids.length;
    for (let i = 0; i < ids.length; i += chunk) {
      const items = ids.slice(i, i + chunk).map((id) => ({ type: "result", view: this.view, id, value: { a: 1, b: "x" } }));
      const message = kernelMessage(items);
      macrotask(() => {
        this.messageAt = performance.now();
        this.onmessage?.({ data: message });
      });
    }
  }
  close() {}
}

/** A client on the (fake) direct path, delivering the socket's messages at once. @param {number} perMessage */
async function setup(perMessage) {
  /** @type {Map<string, (...args: any[]) => void>} */
  const listeners = new Map();
  const model = {
    send() {},
    on: (/** @type {string} */ name, /** @type {any} */ cb) => listeners.set(name, cb),
    off() {},
    widget_manager: { kernel: KERNEL },
  };
  const client = new BridgeClient(model);
  class Socket extends FakeSocket {
    constructor() {
      super(perMessage);
    }
  }
  client.direct = new DirectLink(client, OFFER, { WebSocket: Socket });
  await client.direct.started;
  const ws = /** @type {FakeSocket} */ (FakeSocket.last);
  // The comm's marker: from here on the socket's messages are delivered at once.
  const marker = { type: "transport", view: client.viewId, transport: "direct", conn: 1 };
  listeners.get("msg:custom")?.({ ipb: 1, msgs: [marker] }, []);
  if (client.transport !== "direct" || !client.direct.commSaysDirect) throw new Error("not on the direct path");
  ws.answering = true;
  return { client, ws };
}

/** @param {BridgeClient} client @param {FakeSocket} ws @param {number} inflight @param {number} calls */
async function run(client, ws, inflight, calls) {
  const py = client.proxy();
  const tiny = { a: 1, b: "x" };
  let done = 0;
  const messages0 = ws.sentMessages;
  // One at a time: the page's two shares of a call, as bench_rpc's --page-share splits them (call to the
  // socket's send; the answer's message event to the resolved promise).
  let toSend = 0;
  let toResolved = 0;
  const worker = async () => {
    while (done < calls) {
      const t0 = performance.now();
      const r = await py.echo(tiny);
      if (inflight === 1) {
        toSend += ws.sendAt - t0;
        toResolved += performance.now() - ws.messageAt;
      }
      if (r.a !== 1 || r.b !== "x") throw new Error("wrong answer");
      done++;
    }
  };
  const cpu = globalThis.process?.cpuUsage;
  const cpu0 = cpu?.();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inflight }, worker));
  const us = ((performance.now() - t0) * 1000) / done;
  const used = cpu0 && cpu ? cpu(cpu0) : null;
  return {
    us,
    cpuUs: used ? (used.user + used.system) / done : null,
    perMessage: done / (ws.sentMessages - messages0),
    callToSendUs: inflight === 1 ? (toSend * 1000) / done : null,
    messageToResolvedUs: inflight === 1 ? (toResolved * 1000) / done : null,
  };
}

/** @type {{client: BridgeClient, ws: FakeSocket}|null} */
let prepared = null;

/** Set up the client and warm it up (for `runOnce`). @param {number} [perMessage] */
export async function prepare(perMessage = 0) {
  prepared = await setup(perMessage);
  await run(prepared.client, prepared.ws, 64, 20000);
  await run(prepared.client, prepared.ws, 1, 5000);
}

/** One run on the prepared client. @param {number} inflight @param {number} calls */
export function runOnce(inflight, calls) {
  if (!prepared) throw new Error("prepare() first");
  return run(prepared.client, prepared.ws, inflight, calls);
}

/**
 * Time calls through the page's client; the medians per number in flight.
 * @param {{calls?: number, inflight?: number[], runs?: number, perMessage?: number}} [options]
 */
export async function benchPage({ calls = 100000, inflight = [1, 64], runs = 5, perMessage = 0 } = {}) {
  await prepare(perMessage);
  const results = [];
  for (const k of inflight) {
    const rows = [];
    for (let r = 0; r < runs; r++) rows.push(await runOnce(k, calls));
    results.push(medians(k, rows));
  }
  prepared?.client.dispose();
  return results;
}

/** @param {number} inflight @param {Awaited<ReturnType<typeof run>>[]} rows */
export function medians(inflight, rows) {
  /** @param {"us"|"cpuUs"|"callToSendUs"|"messageToResolvedUs"} key */
  const med = (key) => {
    const v = rows.map((x) => x[key]).filter((x) => x !== null).sort((a, b) => Number(a) - Number(b));
    return v.length ? Number(v[Math.floor(v.length / 2)]) : null;
  };
  return {
    inflight,
    us: med("us"),
    cpuUs: med("cpuUs"),
    callToSendUs: med("callToSendUs"),
    messageToResolvedUs: med("messageToResolvedUs"),
    callsPerMessage: rows[0].perMessage,
  };
}

/** @param {Awaited<ReturnType<typeof benchPage>>} results @param {number} runs @param {number} calls */
export function describe(results, runs, calls) {
  return results.map(
    (r) =>
      `${String(r.inflight).padStart(2)} in flight: ${r.us?.toFixed(2)} us per call` +
      (r.cpuUs !== null ? ` (${r.cpuUs.toFixed(2)} us CPU)` : "") +
      (r.callToSendUs !== null ? `; call to send ${r.callToSendUs.toFixed(2)} us` : "") +
      (r.messageToResolvedUs !== null ? `, message to resolved ${r.messageToResolvedUs.toFixed(2)} us` : "") +
      `, medians of ${runs} runs of ${calls}; ${r.callsPerMessage.toFixed(1)} calls per page message`,
  );
}

if (globalThis.process?.argv?.[1]?.endsWith("bench_page.mjs")) {
  const args = process.argv.slice(2);
  /** @param {string} name @param {string[]} fallback */
  const opt = (name, fallback) => {
    const i = args.indexOf(name);
    if (i < 0) return fallback;
    const out = [];
    for (let j = i + 1; j < args.length && !args[j].startsWith("--"); j++) out.push(args[j]);
    return out;
  };
  const calls = Number(opt("--calls", ["100000"])[0]);
  const runs = Number(opt("--runs", ["5"])[0]);
  benchPage({
    calls,
    runs,
    inflight: opt("--inflight", ["1", "64"]).map(Number),
    perMessage: Number(opt("--answers-per-message", ["0"])[0]),
  }).then((results) => {
    for (const line of describe(results, runs, calls)) console.log(line);
  });
}
