// The page's half of the ipybridge protocol (docs/protocol.md), shared by the
// Bridge, Player and legacy widgets. One BridgeClient per rendered view.
// No DOM here: the client needs only an anywidget-like `model`
// ({send, on, off}) so node tests can drive it with a fake model.

import { DirectLink } from "./direct.js";
import { decode, encode } from "./serialize.js";

export const PROTOCOL_VERSION = 1;
/** The kernel's default limit on one page message (JSON and buffers); its `welcome` says the real one. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 2 ** 20;
/** No websocket message above this: a stock Jupyter server closes the kernel's websocket above 10 MiB. */
export const PART_BYTES = 8 * 2 ** 20;
/** Item types the kernel answers: their ids travel with a split message so a refusal can answer them. */
const REQUEST_TYPES = new Set(["call", "execute", "set", "get"]);
/** Room for `{"ipb":1,"msgs":[...]}` around the items. */
const ENVELOPE_BYTES = 64;
/**
 * How long a `call` from Python for a handler not registered yet waits while the view's setup
 * (the author's js) still runs, before it is answered "no handler" (docs/protocol.md, "Setup").
 */
export const HANDLER_WAIT_MS = 10000;

/**
 * @typedef {{send: (content: any, callbacks?: any, buffers?: ArrayBufferView[]) => void,
 *            on: (name: string, cb: (...args: any[]) => void) => void,
 *            off: (name: string, cb: (...args: any[]) => void) => void,
 *            widget_manager?: any}} Model
 * @typedef {{kwargs?: Record<string, unknown>, timeout?: number, signal?: AbortSignal,
 *            onOutput?: (stream: string, text: string) => void}} CallOptions
 * @typedef {{resolve: (v: any) => void, reject: (e: Error) => void, name: string,
 *            onOutput?: (stream: string, text: string) => void, cleanup: () => void,
 *            item: Record<string, any>, direct?: boolean}} Pending
 */

/** @param {string} name @param {string} message @param {Record<string, any>} [extra] */
export function makeError(name, message, extra = {}) {
  const error = new Error(message);
  error.name = name;
  return Object.assign(error, extra);
}

/** A Python exception as a JavaScript Error. @param {{ename: string, evalue: string, traceback?: string[]}} e */
export function pythonError(e) {
  return makeError(e.ename, e.evalue, { ename: e.ename, evalue: e.evalue, traceback: e.traceback ?? [] });
}

let viewCounter = 0;
function newViewId() {
  const random = globalThis.crypto?.randomUUID?.() ?? `${Math.random()}`.slice(2);
  return `v${++viewCounter}-${random}`;
}

/** Kernel statuses after which nothing pending will ever be answered. */
const GONE_STATUSES = new Set(["restarting", "autorestarting", "dead", "terminating"]);

export class BridgeClient {
  /**
   * @param {Model} model
   * @param {{customTypes?: string[], onCustom?: (item: any, buffers: ArrayLike<ArrayBuffer|ArrayBufferView>) => void,
   *          handlerWaitMs?: number}} [options]
   */
  constructor(model, options = {}) {
    this.model = model;
    this.viewId = newViewId();
    this.closed = false;
    /** @type {Error|null} */
    this.closedError = null;
    this._nextId = 1;
    /** @type {Map<number, Pending>} */
    this._pending = new Map();
    /**
     * Cheap counters for soak tests and debugging (docs/protocol.md, "Diagnostics").
     * `unmatchedAnswers`: results/errors for a request this view is not waiting for
     * (never sent, already answered, timed out or aborted).
     */
    this.diagnostics = { unmatchedAnswers: 0 };
    /** @type {{item: Record<string, any>, fail?: (e: Error) => void}[]} */
    this._outgoing = [];
    this._flushQueued = false;
    /** @type {Map<string, Set<(payload: any) => void>>} */
    this._listeners = new Map();
    /** @type {Map<string, (...args: any[]) => any>} */
    this._handlers = new Map();
    /** @type {Set<(error: Error) => void>} */
    this._closeListeners = new Set();
    /** What the kernel accepts (from its `welcome`); partBytes only changes in tests. */
    this.limits = { messageBytes: DEFAULT_MAX_MESSAGE_BYTES, partBytes: PART_BYTES };
    this._customTypes = new Set(options.customTypes ?? []);
    /** The path this view's messages take: "direct" (js/direct.js) or "comm". */
    this.transport = "comm";
    /** @type {DirectLink|null} the direct connection, when the kernel offers one */
    this.direct = null;
    /** @type {Set<(transport: string) => void>} */
    this._transportListeners = new Set();
    this._onCustom = options.onCustom;
    /** Events that arrived before the view's setup registered a listener for them. */
    /** @type {{name: string, payload: any}[] | null} */
    this._early = null;
    /** @type {Promise<unknown>} */
    this.setupDone = Promise.resolve();
    /** True while the view's setup runs: a call for a handler not registered yet waits for it. */
    this.settingUp = false;
    this.handlerWaitMs = options.handlerWaitMs ?? HANDLER_WAIT_MS;
    /** Calls from Python waiting for `handle(name)` while the setup runs. */
    /** @type {Map<string, Set<(fn: ((...args: any[]) => any) | undefined) => void>>} */
    this._handlerWaiters = new Map();
    this._onMessage = this._onMessage.bind(this);
    this._onDestroy = () => this.closeAll("the widget was closed");
    model.on("msg:custom", this._onMessage);
    model.on("destroy", this._onDestroy);
    this._unwatchKernel = watchKernel(model, (why) => this.closeAll(why));
    // A reload or a closed tab never disposes views: say bye, so the kernel
    // stops working for this view (its queued calls and frame requests).
    this._onPageHide = () => {
      if (!this.closed) {
        this._post({ type: "bye" });
        this.flush();
      }
    };
    globalThis.addEventListener?.("pagehide", this._onPageHide);
    this._post({ type: "hello" });
  }

  /**
   * The view's own setup (e.g. the author's js), which may call Python and wait for it.
   * Nothing that arrives meanwhile waits for it to settle when it need not
   * (docs/protocol.md, "Setup"): a `call` for a handler already registered is answered
   * at once, one for a handler not registered yet waits until `handle()` registers it
   * (at most `handlerWaitMs`, or until the setup settles); an event reaches the listeners
   * registered so far at once, and an event with no listener yet is held until the setup
   * settles (then those of its name that came later wait behind it, in order).
   * @param {Promise<unknown>} promise
   */
  setSetup(promise) {
    this.setupDone = promise;
    this.settingUp = true;
    this._early = [];
    const release = () => {
      this.settingUp = false;
      const held = this._early ?? [];
      this._early = null;
      for (const { name, payload } of held) this._emitLocal(name, payload);
      const waiters = [...this._handlerWaiters.entries()];
      this._handlerWaiters.clear();
      for (const [name, set] of waiters) for (const wake of set) wake(this._handlers.get(name));
    };
    promise.then(release, release);
  }

  /**
   * The handler `name`, waiting for the setup to register it if it is still running.
   * @param {string} name
   * @returns {Promise<{fn?: (...args: any[]) => any, waited: boolean}>}
   */
  _handlerFor(name) {
    const fn = this._handlers.get(name);
    if (fn || !this.settingUp) return Promise.resolve({ fn, waited: false });
    return new Promise((resolve) => {
      let set = this._handlerWaiters.get(name);
      if (!set) this._handlerWaiters.set(name, (set = new Set()));
      /** @param {((...args: any[]) => any) | undefined} found */
      const wake = (found) => {
        clearTimeout(timer);
        set?.delete(wake);
        resolve({ fn: found, waited: found === undefined && this.settingUp });
      };
      const timer = setTimeout(() => wake(this._handlers.get(name)), this.handlerWaitMs);
      set.add(wake);
    });
  }

  /** @param {string} name @param {any} payload */
  _emitLocal(name, payload) {
    const listeners = this._listeners.get(name);
    const noListener = !listeners || listeners.size === 0;
    if (this._early && (noListener || this._early.some((held) => held.name === name))) {
      this._early.push({ name, payload }); // after earlier ones of its name: order kept
      return;
    }
    for (const cb of [...(listeners ?? [])]) {
      try {
        cb(payload);
      } catch (error) {
        console.error(`ipybridge: listener for event ${JSON.stringify(name)} threw`, error);
      }
    }
  }

  // ------------------------------------------------------------ calls
  /**
   * Call an exposed Python function.
   * @param {string} name @param {unknown[]} [args] @param {CallOptions} [options]
   * @returns {Promise<any>}
   */
  call(name, args = [], options = {}) {
    if (typeof name !== "string") {
      return Promise.reject(
        makeError("TypeError", `bridge.call() needs the name of a Python function as a string, not ${describe(name)}`),
      );
    }
    if (!Array.isArray(args)) {
      return Promise.reject(
        makeError("TypeError", `bridge.call(${JSON.stringify(name)}, args): args must be an array, not ${describe(args)}`),
      );
    }
    return this.request({ type: "call", name, args, kwargs: options.kwargs ?? {} }, options);
  }

  /** @param {string} code @param {CallOptions} [options] */
  execute(code, options = {}) {
    return this.request({ type: "execute", code: String(code) }, options);
  }

  /** @param {string} name @param {unknown} value @param {CallOptions} [options] */
  set(name, value, options = {}) {
    if (typeof name !== "string") {
      return Promise.reject(makeError("TypeError", `bridge.set() needs a variable name as a string, not ${describe(name)}`));
    }
    return this.request({ type: "set", name, value }, options);
  }

  /** @param {string} name @param {CallOptions} [options] */
  get(name, options = {}) {
    if (typeof name !== "string") {
      return Promise.reject(makeError("TypeError", `bridge.get() needs a variable name as a string, not ${describe(name)}`));
    }
    return this.request({ type: "get", name }, options);
  }

  /**
   * Send one request item and return the promise of its answer.
   * @param {Record<string, any>} item @param {CallOptions} [options]
   */
  request(item, options = {}) {
    const what = describeRequest(item);
    if (this.closed) {
      return Promise.reject(makeError("BridgeClosedError", `cannot send ${what}: ${this.closedError?.message}`));
    }
    const { timeout, signal, onOutput } = options;
    if (signal?.aborted) return Promise.reject(abortError(signal, what));
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      /** @type {ReturnType<typeof setTimeout>|undefined} */
      let timer;
      const onAbort = () => this._giveUp(id, "abort", abortError(/** @type {AbortSignal} */ (signal), what));
      const cleanup = () => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      this._pending.set(id, { resolve, reject, name: what, onOutput, cleanup, item: { ...item, id } });
      if (timeout !== undefined && timeout !== null) {
        timer = setTimeout(
          () => this._giveUp(id, "timeout", makeError("TimeoutError", `${what} did not answer within ${timeout} ms`)),
          timeout,
        );
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      this._post({ ...item, id }, (error) => this._settle(id, error));
    });
  }

  /** @param {number} id @param {"abort"|"timeout"} reason @param {Error} error */
  _giveUp(id, reason, error) {
    if (!this._pending.has(id)) return;
    this._settle(id, error);
    this._post({ type: "cancel", id, reason });
  }

  /** @param {number} id @param {Error|null} error @param {any} [value] */
  _settle(id, error, value) {
    const pending = this._pending.get(id);
    if (!pending) return; // late answer after timeout/abort: dropped
    this._pending.delete(id);
    pending.cleanup();
    if (error) pending.reject(error);
    else pending.resolve(value);
  }

  // ----------------------------------------------------------- events
  /** @param {string} name @param {(payload: any) => void} callback @returns {() => void} unsubscribe */
  on(name, callback) {
    let set = this._listeners.get(name);
    if (!set) this._listeners.set(name, (set = new Set()));
    set.add(callback);
    return () => set?.delete(callback);
  }

  /** Register a handler Python can call with `call_js`. @param {string} name @param {(...args: any[]) => any} fn */
  handle(name, fn) {
    if (typeof name !== "string" || name === "") {
      throw makeError("TypeError", `bridge.handle() needs a non-empty string name, not ${describe(name)}`);
    }
    if (typeof fn !== "function") {
      throw makeError("TypeError", `bridge.handle(${JSON.stringify(name)}, fn): fn must be a function, not ${describe(fn)}`);
    }
    this._handlers.set(name, fn);
    const waiting = this._handlerWaiters.get(name);
    if (waiting) {
      this._handlerWaiters.delete(name);
      for (const wake of waiting) wake(fn);
    }
    return () => {
      if (this._handlers.get(name) === fn) this._handlers.delete(name);
    };
  }

  /** @param {(error: Error) => void} callback called once if the link to the kernel is lost */
  onClose(callback) {
    this._closeListeners.add(callback);
    return () => this._closeListeners.delete(callback);
  }

  // -------------------------------------------------------- transport
  /**
   * Queue an item; all items queued in one tick leave in one message.
   * @param {Record<string, any>} item @param {(e: Error) => void} [fail] called if it cannot be encoded
   */
  _post(item, fail) {
    this._outgoing.push({ item: { ...item, view: this.viewId }, fail });
    if (!this._flushQueued) {
      this._flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  flush() {
    this._flushQueued = false;
    if (this._outgoing.length === 0 || this.closed) return;
    const queued = this._outgoing;
    this._outgoing = [];
    const limit = this.limits.messageBytes;
    /** @type {Uint8Array[]} */
    const buffers = [];
    /** @type {{item: Record<string, any>, encoded: Record<string, any>, text: string}[]} */
    const ready = [];
    let total = ENVELOPE_BYTES;
    for (const { item, fail } of queued) {
      const mark = buffers.length;
      try {
        const encoded = encodeItem(item, buffers);
        const text = JSON.stringify(encoded);
        const size = utf8Bytes(text) + byteSum(buffers, mark);
        if (size + ENVELOPE_BYTES > limit) {
          buffers.length = mark;
          const what = item.name ?? item.type;
          const error = makeError(
            "MessageTooLargeError",
            `${what}: the message would be ${mib(size)}, over the ${mib(limit)} this widget accepts ` +
              "(max_message_bytes in Python); nothing was sent",
          );
          if (fail) fail(error);
          else console.error("ipybridge: cannot send", item, error);
          continue;
        }
        ready.push({ item, encoded, text });
        total += size;
      } catch (error) {
        buffers.length = mark;
        if (fail) fail(makeError("TypeError", /** @type {Error} */ (error).message));
        else console.error("ipybridge: cannot send", item, error);
      }
    }
    if (ready.length === 0) return;
    try {
      if (total <= limit) {
        this._sendEnvelope(ready.map((r) => r.encoded), ready.map((r) => r.text), buffers);
        return;
      }
      // Together over the limit though each fits: one message per group that fits, each encoded anew.
      /** @type {typeof ready} */
      let group = [];
      let groupBytes = ENVELOPE_BYTES;
      const sendGroup = () => {
        /** @type {Uint8Array[]} */
        const own = [];
        const encoded = group.map(({ item }) => encodeItem(item, own));
        this._sendEnvelope(encoded, encoded.map((e) => JSON.stringify(e)), own);
      };
      for (const entry of ready) {
        const size = utf8Bytes(entry.text) + itemBufferBytes(entry.item);
        if (group.length > 0 && groupBytes + size > limit) {
          sendGroup();
          group = [];
          groupBytes = ENVELOPE_BYTES;
        }
        group.push(entry);
        groupBytes += size;
      }
      if (group.length > 0) sendGroup();
    } catch (error) {
      this.closeAll(`the kernel cannot be reached: ${/** @type {Error} */ (error).message}`);
    }
  }

  /**
   * Send one envelope: whole when it fits in a websocket message, else as `part`s.
   * @param {Record<string, any>[]} msgs the encoded items @param {string[]} texts their JSON
   * @param {Uint8Array[]} buffers
   */
  _sendEnvelope(msgs, texts, buffers) {
    let textBytes = ENVELOPE_BYTES;
    for (const text of texts) textBytes += utf8Bytes(text);
    if (textBytes + byteSum(buffers, 0) <= this.limits.partBytes) {
      this._send({ ipb: PROTOCOL_VERSION, msgs }, buffers);
      return;
    }
    const json = `{"ipb":${PROTOCOL_VERSION},"msgs":[${texts.join(",")}]}`;
    const ids = msgs.filter((i) => REQUEST_TYPES.has(i.type)).map((i) => i.id);
    const meta = { view: this.viewId, id: this._nextId++, ids };
    // Each part's slice as views into the message's own bytes: the direct path sends them without joining
    // them first, the comm joins those of each part (_send).
    const parts = partViews(new TextEncoder().encode(json), buffers, this.limits.partBytes, meta);
    for (const { item, chunk } of parts) this._send({ ipb: PROTOCOL_VERSION, msgs: [item] }, [chunk]);
  }

  /**
   * One message to the kernel: over the direct connection when it is up, else over the comm
   * (marked when the direct connection was lost, so the kernel moves this view back at once).
   * A buffer may be given as the views it is made of (a part's slice); the comm gets each as one buffer.
   * @param {Record<string, any>} content @param {(Uint8Array|Uint8Array[])[]} buffers
   */
  _send(content, buffers) {
    const direct = this.direct;
    if (direct?.ready) direct.send(content, buffers);
    else {
      const own = buffers.map((b) => (Array.isArray(b) ? joinViews(b) : exactBuffer(b)));
      this.model.send(direct?.lost ? { ...content, direct: "lost" } : content, undefined, own);
    }
  }

  /** @param {(transport: string) => void} callback called when this view's transport changes */
  onTransportChange(callback) {
    this._transportListeners.add(callback);
    return () => this._transportListeners.delete(callback);
  }

  _transportChanged() {
    for (const cb of this._transportListeners) {
      try {
        cb(this.transport);
      } catch (error) {
        console.error(error);
      }
    }
  }

  /** @param {any} content @param {ArrayLike<ArrayBuffer|ArrayBufferView>} [buffers] */
  _onMessage(content, buffers = []) {
    if (!content || content.ipb !== PROTOCOL_VERSION || !Array.isArray(content.msgs)) return;
    if (this.direct) this.direct.fromComm(content.msgs, buffers);
    else this._deliver(content.msgs, buffers);
  }

  /** Dispatch the items of one kernel message, from either channel. @param {any[]} msgs @param {ArrayLike<ArrayBuffer|ArrayBufferView>} buffers */
  _deliver(msgs, buffers) {
    for (const item of msgs) {
      if (item.view != null && item.view !== this.viewId) continue;
      try {
        this._dispatch(item, buffers);
      } catch (error) {
        console.error("ipybridge: bad message from the kernel", item, error);
      }
    }
  }

  /** @param {any} item @param {ArrayLike<ArrayBuffer|ArrayBufferView>} buffers */
  _dispatch(item, buffers) {
    const base = item.b0 ?? 0;
    switch (item.type) {
      case "result":
      case "error":
        if (!this._pending.has(item.id)) this.diagnostics.unmatchedAnswers++; // late or duplicate: dropped
        else if (item.type === "result") this._settle(item.id, null, decode(item.value, buffers, base));
        else this._settle(item.id, pythonError(item.error));
        return;
      case "output": {
        const pending = this._pending.get(item.id);
        if (!pending) return;
        if (pending.onOutput) pending.onOutput(item.stream, item.text);
        else (item.stream === "stderr" ? console.error : console.log)(`[python ${pending.name}]`, item.text);
        return;
      }
      case "event":
        this._emitLocal(item.name, decode(item.payload, buffers, base));
        return;
      case "call":
        this._answer(item, decode(item.args, buffers, base));
        return;
      case "welcome": {
        const bytes = item.limits?.message_bytes;
        if (Number.isSafeInteger(bytes) && bytes > 0) this.limits.messageBytes = bytes;
        if (item.direct && !this.direct && !this.closed && /** @type {any} */ (globalThis).ipybridgeDirect !== false) {
          this.direct = new DirectLink(this, item.direct);
        }
        return;
      }
      case "cancel":
        return;
      case "closing":
        // The kernel got a shutdown_request: sooner than the frontend's kernel status for a shutdown.
        this.closeAll(item.restart ? "the kernel is restarting" : "the kernel is shutting down");
        return;
      case "protocol_error":
        console.error("ipybridge: the kernel refused a message:", item.error?.evalue);
        return;
      default:
        if (this._customTypes.has(item.type) && this._onCustom) this._onCustom(item, buffers);
    }
  }

  /** Run a JavaScript handler for Python's call_js and reply. @param {any} item @param {any[]} args */
  async _answer(item, args) {
    const { fn, waited } = await this._handlerFor(item.name);
    if (!fn) {
      const name = JSON.stringify(item.name);
      const message = waited
        ? `no JavaScript handler named ${name} after ${this.handlerWaitMs / 1000} s: the view's js is still ` +
          `running and has not registered it (call bridge.handle(${name}, fn) before awaiting Python)`
        : `no JavaScript handler named ${name}: register one with bridge.handle(${name}, fn)`;
      this._post({ type: "reply", id: item.id, ok: false, missing: true, error: { name: "ReferenceError", message, stack: "" } });
      return;
    }
    /** @param {any} reply @param {(error: Error) => void} [fail] */
    const send = (reply, fail) => {
      this.direct?.noteReply(reply);
      this._post(reply, fail);
    };
    try {
      const value = await fn(...args);
      send({ type: "reply", id: item.id, ok: true, value }, (error) =>
        send({ type: "reply", id: item.id, ok: false, error: errorFields(error) }),
      );
    } catch (error) {
      send({ type: "reply", id: item.id, ok: false, error: errorFields(error) });
    }
  }

  // --------------------------------------------------------- lifetime
  /** Reject everything pending with BridgeClosedError and refuse new calls. @param {string} why */
  closeAll(why) {
    if (this.closed) return;
    this.closed = true;
    this.closedError = makeError("BridgeClosedError", why);
    this.direct?.close();
    for (const [id, pending] of [...this._pending.entries()]) {
      this._settle(id, makeError("BridgeClosedError", `${pending.name} got no answer: ${why}`));
    }
    for (const cb of this._closeListeners) {
      try {
        cb(this.closedError);
      } catch (error) {
        console.error(error);
      }
    }
  }

  /** The view is going away: say bye, reject what is pending, stop listening. */
  dispose() {
    if (!this.closed) {
      this._post({ type: "bye" });
      this.flush();
    }
    this.closeAll("the view was removed from the page");
    this.model.off("msg:custom", this._onMessage);
    this.model.off("destroy", this._onDestroy);
    globalThis.removeEventListener?.("pagehide", this._onPageHide);
    this._unwatchKernel();
  }

  /** A Proxy whose properties call exposed Python functions: `await py.add(1, 2)`. */
  proxy() {
    return new Proxy(
      {},
      {
        get: (_target, prop) => {
          // `then` must stay undefined or `await py` would treat the proxy as a promise.
          if (typeof prop !== "string" || prop === "then") return undefined;
          return (/** @type {unknown[]} */ ...args) => this.call(prop, args);
        },
      },
    );
  }
}

/** @param {Record<string, any>} item @param {Uint8Array[]} buffers */
function encodeItem(item, buffers) {
  const out = { ...item };
  for (const key of ["args", "kwargs", "value"]) {
    if (key in out) out[key] = encode(out[key], buffers);
  }
  return out;
}

/**
 * Cut one message (its JSON text and buffers, as one byte stream) into `part` items of at
 * most `partBytes` each (docs/protocol.md, "Large messages"). Part 0 carries the sizes the
 * kernel needs to cut the stream back, and the ids of the requests inside.
 * @param {Uint8Array} json @param {Uint8Array[]} buffers @param {number} partBytes
 * @param {{view: string, id: number, ids: number[]}} meta
 * @returns {{item: Record<string, any>, chunk: Uint8Array}[]}
 */
export function splitIntoParts(json, buffers, partBytes, meta) {
  return partViews(json, buffers, partBytes, meta).map(({ item, chunk }) => ({ item, chunk: joinViews(chunk) }));
}

/**
 * `splitIntoParts` without copying: each part's slice as the views (into `json` and `buffers`) it is made of.
 * @param {Uint8Array} json @param {Uint8Array[]} buffers @param {number} partBytes
 * @param {{view: string, id: number, ids: number[]}} meta
 * @returns {{item: Record<string, any>, chunk: Uint8Array[]}[]}
 */
export function partViews(json, buffers, partBytes, meta) {
  const pieces = [json, ...buffers];
  const sizes = pieces.map((p) => p.byteLength);
  const total = sizes.reduce((a, b) => a + b, 0);
  const count = Math.max(1, Math.ceil(total / partBytes));
  const parts = [];
  let piece = 0;
  let offset = 0;
  for (let seq = 0; seq < count; seq++) {
    const length = Math.min(partBytes, total - seq * partBytes);
    /** @type {Uint8Array[]} */
    const chunk = [];
    let filled = 0;
    while (filled < length) {
      const source = pieces[piece];
      const n = Math.min(source.byteLength - offset, length - filled);
      if (n > 0) chunk.push(source.subarray(offset, offset + n));
      filled += n;
      offset += n;
      if (offset === source.byteLength) {
        piece++;
        offset = 0;
      }
    }
    if (chunk.length === 0) chunk.push(new Uint8Array(0));
    const item = { type: "part", view: meta.view, id: meta.id, seq, count, ...(seq === 0 ? { sizes, ids: meta.ids } : {}) };
    parts.push({ item, chunk });
  }
  return parts;
}

/** One buffer of its own holding `views` back to back. @param {Uint8Array[]} views @returns {Uint8Array} */
function joinViews(views) {
  if (views.length === 1) return exactBuffer(views[0]);
  const out = new Uint8Array(byteSum(views, 0));
  let offset = 0;
  for (const v of views) {
    out.set(v, offset);
    offset += v.byteLength;
  }
  return out;
}

/** UTF-8 length of a string, without encoding it when it is short. @param {string} text */
function utf8Bytes(text) {
  if (text.length >= 4096) return new TextEncoder().encode(text).byteLength;
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) n += c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 1 : 2; // a surrogate pair is 4 bytes
  }
  return n;
}

/** @param {Uint8Array[]} buffers @param {number} from */
function byteSum(buffers, from) {
  let n = 0;
  for (let i = from; i < buffers.length; i++) n += buffers[i].byteLength;
  return n;
}

/** Bytes of the binary values of an item, by encoding it on the side. @param {Record<string, any>} item */
function itemBufferBytes(item) {
  /** @type {Uint8Array[]} */
  const own = [];
  encodeItem(item, own);
  return byteSum(own, 0);
}

/** @param {number} n bytes, as people read them */
function mib(n) {
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} bytes`;
}

/**
 * The exact bytes of a view as its own ArrayBuffer when the view does not
 * cover its whole buffer (some serializers send `view.buffer` whole).
 * @param {Uint8Array} bytes
 */
function exactBuffer(bytes) {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes;
  return bytes.slice();
}

/** @param {AbortSignal} signal @param {string} what the request, as describeRequest() says it */
function abortError(signal, what) {
  const reason = signal.reason;
  if (reason instanceof Error && reason.name === "AbortError" && reason.message !== "This operation was aborted") {
    return reason;
  }
  const why = reason instanceof Error ? reason.message : reason === undefined ? "" : String(reason);
  return makeError("AbortError", `${what} was aborted${why && why !== "This operation was aborted" ? `: ${why}` : ""}`);
}

/** What a request is, for error messages: `Python function "add"`, `bridge.execute()`. @param {Record<string, any>} item */
export function describeRequest(item) {
  if (item.type === "call") return `Python function ${JSON.stringify(item.name)}`;
  if (item.type === "get" || item.type === "set") return `bridge.${item.type}(${JSON.stringify(item.name)})`;
  return `bridge.${item.type}()`;
}

/** A value as an error message shows it. @param {unknown} value */
function describe(value) {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  if (typeof value === "object") return `an object (${value.constructor?.name ?? "Object"})`;
  return `${typeof value} ${String(value)}`;
}

/** @param {unknown} error */
function errorFields(error) {
  if (error instanceof Error) return { name: error.name, message: error.message, stack: error.stack ?? "" };
  return { name: "Error", message: String(error), stack: "" };
}

/**
 * Call `onGone` when the model's kernel restarts, dies or shuts down.
 * Works with JupyterLab/Notebook 7 widget managers; elsewhere it is a no-op
 * and the model's "destroy" event still applies.
 * @param {Model} model @param {(why: string) => void} onGone @returns {() => void}
 */
export function watchKernel(model, onGone) {
  const manager = model.widget_manager;
  /** @type {(() => void)[]} */
  const undo = [];
  /** @param {any} kernel */
  const watch = (kernel) => {
    if (!kernel || !kernel.statusChanged?.connect) return;
    /** @param {any} _sender @param {string} status */
    const onStatus = (_sender, status) => {
      if (GONE_STATUSES.has(status)) onGone(`the kernel is ${status === "dead" ? "dead" : status === "terminating" ? "shutting down" : "restarting"}`);
    };
    const onDisposed = () => onGone("the kernel was shut down");
    kernel.statusChanged.connect(onStatus);
    kernel.disposed?.connect?.(onDisposed);
    undo.push(() => {
      kernel.statusChanged.disconnect(onStatus);
      kernel.disposed?.disconnect?.(onDisposed);
    });
  };
  try {
    watch(manager?.kernel);
    const session = manager?._context?.sessionContext;
    if (session?.kernelChanged?.connect) {
      /** @param {any} _sender @param {any} change */
      const onChange = (_sender, change) => {
        if (change.oldValue) onGone("the notebook's kernel was changed or shut down");
      };
      session.kernelChanged.connect(onChange);
      undo.push(() => session.kernelChanged.disconnect(onChange));
    }
  } catch (error) {
    console.warn("ipybridge: cannot watch the kernel's status", error);
  }
  return () => undo.forEach((fn) => fn());
}
