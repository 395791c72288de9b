// js/direct.js
var CONNECT_MS = 3e3;
var BLOB_BYTES = 1 << 20;
function viewsOf(b) {
  const list = Array.isArray(b) ? b : [b];
  return list.map((v) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
}
var encoder = new TextEncoder();
var decoder = new TextDecoder();
function frameParts(content, buffers) {
  const groups = buffers.map(viewsOf);
  const sizes = groups.map((g) => g.reduce((n, v) => n + v.byteLength, 0));
  const json = encoder.encode(JSON.stringify([content, sizes]));
  const head = new Uint8Array(4 + json.byteLength);
  setLength(head, json.byteLength);
  head.set(json, 4);
  const views = groups.flat();
  return { head, views, total: sizes.reduce((a, b) => a + b, head.byteLength) };
}
function setLength(bytes, n) {
  bytes[0] = n & 255;
  bytes[1] = n >>> 8 & 255;
  bytes[2] = n >>> 16 & 255;
  bytes[3] = n >>> 24 & 255;
}
function frameTexts(texts, textBytes, buffers) {
  let sizes = "";
  let bufferBytes = 0;
  for (let i = 0; i < buffers.length; i++) {
    const n = buffers[i].byteLength;
    sizes += i === 0 ? `${n}` : `,${n}`;
    bufferBytes += n;
  }
  const prefix = '[{"ipb":1,"msgs":[';
  const suffix = `]},[${sizes}]]`;
  const headBytes = prefix.length + textBytes + Math.max(0, texts.length - 1) + suffix.length;
  const total = 4 + headBytes + bufferBytes;
  const header = prefix + (texts.length === 1 ? texts[0] : texts.join(",")) + suffix;
  if (total >= BLOB_BYTES && typeof Blob === "function") {
    const head = encoder.encode(header);
    const length = new Uint8Array(4);
    setLength(length, head.byteLength);
    return new Blob(
      /** @type {BlobPart[]} */
      /** @type {unknown} */
      [length, head, ...buffers]
    );
  }
  const out = new Uint8Array(total);
  const { read, written } = encoder.encodeInto(header, out.subarray(4, 4 + headBytes));
  if (read !== header.length || written !== headBytes) {
    return joined(frameParts({ ipb: 1, msgs: texts.map((t) => JSON.parse(t)) }, buffers));
  }
  setLength(out, headBytes);
  let offset = 4 + headBytes;
  for (const b of buffers) {
    out.set(b, offset);
    offset += b.byteLength;
  }
  return out;
}
function pack(content, buffers) {
  return joined(frameParts(content, buffers));
}
function joined({ head, views, total }) {
  const out = new Uint8Array(total);
  out.set(head, 0);
  let offset = head.byteLength;
  for (const v of views) {
    out.set(v, offset);
    offset += v.byteLength;
  }
  return out;
}
function frame(content, buffers) {
  const parts = frameParts(content, buffers);
  if (parts.total < BLOB_BYTES || typeof Blob !== "function") return joined(parts);
  return new Blob(
    /** @type {BlobPart[]} */
    /** @type {unknown} */
    [parts.head, ...parts.views]
  );
}
function unpackText(data) {
  const content = JSON.parse(data);
  if (content === null || typeof content !== "object" || !Array.isArray(content.msgs)) {
    throw new Error("a text message must be an envelope {ipb, msgs}");
  }
  return { content, buffers: [] };
}
function unpack(data) {
  const length = data.byteLength;
  if (length < 4) throw new Error("a direct message needs a 4-byte header length");
  const bytes = new Uint8Array(data, 0, 4);
  const headBytes = (bytes[0] | bytes[1] << 8 | bytes[2] << 16 | bytes[3] << 24) >>> 0;
  const end = 4 + headBytes;
  if (end > length) throw new Error("the header is longer than the message");
  const head = JSON.parse(decoder.decode(new Uint8Array(data, 4, headBytes)));
  if (!Array.isArray(head) || head.length < 2 || head.length > 3 || !Array.isArray(head[1])) {
    throw new Error("the header must be [envelope, sizes] or [envelope, sizes, key]");
  }
  const [content, sizes, key] = head;
  for (const n of sizes) if (!Number.isSafeInteger(n) || n < 0) throw new Error("bad buffer sizes");
  if (head.length === 3) {
    if (typeof key !== "string" || !/^[\w-]{1,64}$/.test(key) || end !== length) throw new Error("bad fetch key");
    return { content, buffers: null, fetch: key, sizes };
  }
  const buffers = [];
  let offset = end;
  for (const n of sizes) {
    if (offset + n > length) throw new Error("bad buffer sizes");
    buffers.push(new DataView(data, offset, n));
    offset += n;
  }
  if (offset !== length) throw new Error("the buffer sizes do not add up to the message");
  return { content, buffers };
}
function bulkBuffers(body, sizes) {
  const buffers = [];
  let offset = 0;
  for (const n of sizes) {
    offset += (8 - offset % 8) % 8;
    if (offset + n > body.byteLength) throw new Error("the fetched body is shorter than its buffers");
    buffers.push(new DataView(body, offset, n));
    offset += n;
  }
  if (offset !== body.byteLength) throw new Error("the fetched body is longer than its buffers");
  return buffers;
}
function waysToConnect(offer, kernel, pageHost = globalThis.location?.hostname) {
  const ways = [];
  const routes = Array.isArray(offer.routes) ? offer.routes : [];
  const port = Number(offer.port);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return ways;
  const settings = kernel?.serverSettings;
  if (routes.includes("loopback") && isLoopbackHost(pageHost)) {
    ways.push({ route: "loopback", url: `ws://127.0.0.1:${port}/ipybridge/direct` });
  }
  if (routes.includes("relay") && typeof kernel?.id === "string" && typeof settings?.wsUrl === "string") {
    let url = `${settings.wsUrl.replace(/\/?$/, "/")}ipybridge/direct/${encodeURIComponent(kernel.id)}?port=${port}`;
    if (settings.token && settings.appendToken) url += `&token=${encodeURIComponent(settings.token)}`;
    ways.push({ route: "relay", url });
  }
  return ways;
}
function isLoopbackHost(host) {
  if (host === void 0) return true;
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h.endsWith(".localhost") || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}
async function proofOf(secret, nonce) {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new Error("no WebCrypto (not a secure context)");
  const enc2 = new TextEncoder();
  const key = await subtle.importKey("raw", enc2.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await subtle.sign("HMAC", key, enc2.encode(nonce)));
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}
var DirectLink = class {
  /**
   * Connect one view to the kernel's direct endpoint; until (and unless) that works, the comm carries everything.
   * @param {any} client the view's BridgeClient
   * @param {Offer} offer from the kernel's `welcome`
   * @param {{WebSocket?: any, fetch?: typeof globalThis.fetch}} [options] a WebSocket class, a fetch (tests)
   */
  constructor(client, offer, options = {}) {
    this.client = client;
    this.offer = offer;
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.fetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
    this.bulkUrl = null;
    this.inbox = [];
    this.draining = false;
    this.ws = null;
    this.ready = false;
    this.lost = false;
    this.stopped = false;
    this.commSaysDirect = false;
    this.held = [];
    this.route = null;
    this.conn = null;
    this.lastN = 0;
    this.callsSeen = /* @__PURE__ */ new Set();
    this.replies = /* @__PURE__ */ new Map();
    this.failures = [];
    this._onPageHide = () => this._byeOverComm();
    globalThis.addEventListener?.("pagehide", this._onPageHide);
    this.started = this._start();
  }
  async _start() {
    if (typeof this.WebSocket !== "function") return;
    for (const way of waysToConnect(this.offer, this.client.model.widget_manager?.kernel)) {
      if (this.stopped || this.client.closed) return;
      const opened = await this._open(way);
      if (opened) {
        if (this.stopped || this.client.closed) {
          opened.ws.close();
          return;
        }
        this._use(opened.ws, way, opened.conn);
        return;
      }
    }
  }
  /**
   * An authenticated websocket and the kernel's number for it, or null. The kernel sends nothing else on
   * it before the page uses it (`_use`), so giving up here (a timeout) loses nothing.
   * @param {Way} way @returns {Promise<{ws: any, conn: any}|null>}
   */
  _open(way) {
    return new Promise((resolve) => {
      let ws;
      const fail = (why) => {
        clearTimeout(timer);
        this.failures.push({ route: way.route, error: why });
        if (ws) {
          ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
          try {
            ws.close();
          } catch {
          }
        }
        resolve(null);
      };
      const timer = setTimeout(() => fail("timed out"), CONNECT_MS);
      try {
        ws = new this.WebSocket(way.url);
      } catch (error) {
        fail(String(error));
        return;
      }
      ws.binaryType = "arraybuffer";
      let greeted = false;
      ws.onerror = () => fail("error");
      ws.onclose = () => fail("closed");
      ws.onmessage = (event) => {
        if (!greeted) {
          greeted = true;
          const { token, widget } = this.offer;
          const hello = { ipb: 1, widget, view: this.client.viewId };
          let nonce = null;
          try {
            nonce = JSON.parse(event.data).nonce;
          } catch {
          }
          if (typeof nonce !== "string") return fail("no nonce");
          proofOf(token, nonce).then(
            (proof) => ws.readyState === 1 && ws.send(JSON.stringify({ ...hello, proof })),
            // No WebCrypto (a page of another machine over plain http): the relay route, to the page's own
            // server, may carry the secret itself; the loopback route never does.
            () => way.route === "loopback" ? fail("no proof") : ws.send(JSON.stringify({ ...hello, token }))
          );
          return;
        }
        let item = null;
        try {
          item = unpack(event.data).content?.msgs?.[0];
        } catch {
        }
        const ready = item?.type === "transport" && item.transport === "direct" && item.view === this.client.viewId;
        if (!ready) return fail("no ready message");
        clearTimeout(timer);
        ws.onmessage = ws.onerror = ws.onclose = null;
        resolve({ ws, conn: item.conn });
      };
    });
  }
  /**
   * Start using `ws`: its first message says so (the kernel routes this view's items to it only from then on,
   * after a `transport` item on the comm), then every message to the kernel goes there. On the loopback
   * route it also says that the page fetches big buffers from the endpoint (`fetch`).
   * @param {any} ws @param {Way} way @param {any} conn
   */
  _use(ws, way, conn) {
    if (ws.readyState !== 1) return;
    this.ws = ws;
    this.route = way.route;
    this.conn = conn;
    const fetches = way.route === "loopback" && typeof this.fetch === "function";
    this.bulkUrl = fetches ? way.url.replace(/^ws/, "http") + "/bulk/" : null;
    ws.onmessage = (event) => this._fromDirect(event.data);
    ws.onclose = () => this._lose();
    ws.onerror = () => this._lose();
    try {
      const use = { type: "transport", view: this.client.viewId, transport: "direct", ...fetches ? { fetch: true } : {} };
      ws.send(pack({ ipb: 1, msgs: [use] }, []));
    } catch {
      return;
    }
    this.ready = true;
    this.client.transport = "direct";
  }
  /**
   * Send one envelope over the websocket (the client calls this while `ready`).
   * @param {any} content @param {Piece[]} buffers
   */
  send(content, buffers) {
    this.ws.send(frame(content, buffers));
  }
  /**
   * Send one envelope given as its items' JSON (see `frameTexts`; the client calls this while `ready`).
   * @param {string[]} texts @param {number} textBytes @param {Uint8Array[]} buffers
   */
  sendTexts(texts, textBytes, buffers) {
    if (buffers.length === 0) {
      this.ws.send(`{"ipb":1,"msgs":[${texts.length === 1 ? texts[0] : texts.join(",")}]}`);
      return;
    }
    this.ws.send(frameTexts(texts, textBytes, buffers));
  }
  /** @param {ArrayBuffer|string} data a binary message (`unpack`), or a text one: an envelope without buffers */
  _fromDirect(data) {
    let message;
    try {
      message = typeof data === "string" ? unpackText(data) : unpack(data);
    } catch (error) {
      console.error("ipybridge: bad message on the direct connection", error);
      return;
    }
    if (message.buffers === null || this.inbox.length > 0) {
      this.inbox.push(message);
      this._drain();
      return;
    }
    this._take(
      /** @type {{content: any, buffers: DataView[]}} */
      message
    );
  }
  /** A message from the socket, complete: noted, then held until the comm's marker or delivered. @param {{content: any, buffers: DataView[]}} message */
  _take(message) {
    for (const item of message.content.msgs) {
      if (item?.type === "call") this._noteCall(item.id);
      else if (typeof item?.n === "number") this._noteNumber(item.n);
    }
    if (!this.commSaysDirect) this.held.push(message);
    else this.client._deliver(message.content.msgs, message.buffers);
  }
  /** Take the inbox's messages in order, fetching the buffers of those that have them on the endpoint. */
  async _drain() {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.inbox.length > 0 && this.ready) {
        const message = this.inbox[0];
        if (message.buffers === null) {
          try {
            if (this.bulkUrl === null) throw new Error("this route does not fetch");
            const response = await this.fetch(this.bulkUrl + message.fetch, { credentials: "omit", cache: "no-store" });
            if (!response.ok) throw new Error(`HTTP ${response.status}`);
            message.buffers = bulkBuffers(await response.arrayBuffer(), message.sizes ?? []);
          } catch (error) {
            this.failures.push({ route: this.route ?? "", error: `fetch: ${error}` });
            this._lose();
            return;
          }
          if (!this.ready || this.inbox[0] !== message) return;
        }
        this.inbox.shift();
        this._take(
          /** @type {{content: any, buffers: DataView[]}} */
          message
        );
      }
    } finally {
      this.draining = false;
    }
  }
  /**
   * A comm message for this client: deliver its items, switching at `transport` items. Broadcast items
   * (no `view`) reach a view on the direct path over the websocket, so their comm copies are skipped.
   * @param {any[]} msgs @param {ArrayLike<ArrayBuffer|ArrayBufferView>} buffers
   */
  fromComm(msgs, buffers) {
    let batch = [];
    for (const item of msgs) {
      if (item?.type === "transport" && item.view === this.client.viewId) {
        if (this.conn === null || item.conn !== this.conn) continue;
        this.client._deliver(batch, buffers);
        batch = [];
        if (item.transport === "direct") {
          this.commSaysDirect = true;
          const held = this.held;
          this.held = [];
          for (const m of held) this.client._deliver(m.content.msgs, m.buffers);
        } else {
          this.commSaysDirect = false;
          this._lose();
        }
        continue;
      }
      if (item?.resent != null) {
        if (item.resent !== this.conn || item.view !== this.client.viewId || !(item.n > this.lastN)) continue;
        this._noteNumber(item.n);
      }
      if (this.commSaysDirect && item?.view == null) continue;
      if (item?.type === "call" && item.view === this.client.viewId && this.callsSeen.has(item.id)) {
        const reply = this.replies.get(item.id);
        if (reply) this.client._post(reply);
        continue;
      }
      if (item?.type === "call") this._noteCall(item.id);
      batch.push(item);
    }
    this.client._deliver(batch, buffers);
  }
  /** An output or event item numbered `n` arrived (the numbers have no gaps unless the kernel could not keep one). @param {number} n */
  _noteNumber(n) {
    if (n > this.lastN + 1) {
      console.warn(`ipybridge: ${n - this.lastN - 1} output or event item(s) were lost with the direct connection`);
    }
    if (n > this.lastN) this.lastN = n;
  }
  /** Remember a call_js id (the last 1024), so one sent again after a drop runs once. @param {number} id */
  _noteCall(id) {
    this.callsSeen.add(id);
    const oldest = this.callsSeen.values().next().value;
    if (this.callsSeen.size > 1024 && oldest !== void 0) this.callsSeen.delete(oldest);
  }
  /** Keep a reply sent on the direct path until 64 newer ones were sent. @param {any} reply */
  noteReply(reply) {
    if (!this.ready) return;
    this.replies.set(reply.id, reply);
    const oldest = this.replies.keys().next().value;
    if (this.replies.size > 64 && oldest !== void 0) this.replies.delete(oldest);
  }
  /**
   * The connection is gone (it closed, or the kernel's `transport: comm` item came): back to the comm for good.
   * The comm first says so (the kernel then routes this view there before it reads anything else from
   * it), then every request without an answer is sent again: any answer may have left on the socket,
   * also one to a request sent over the comm before the switch. The kernel runs a request once and
   * answers again only those whose answer went over the socket.
   */
  _lose() {
    if (!this.ready) return;
    this.ready = false;
    this.lost = true;
    this.client.transport = "comm";
    this.inbox = [];
    const ws = this.ws;
    ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close();
    } catch {
    }
    if (this.stopped || this.client.closed) return;
    const view2 = this.client.viewId;
    this.client.model.send({ ipb: 1, msgs: [], direct: "lost", view: view2, conn: this.conn });
    const arrived = /* @__PURE__ */ new Set();
    for (const m of this.held) {
      for (const item of m.content.msgs) {
        if ((item?.type === "result" || item?.type === "error") && item.view === view2) arrived.add(item.id);
      }
    }
    for (const [id, pending] of this.client._pending) {
      if (arrived.has(id)) continue;
      this.client._post(pending.item, (error) => this.client._settle(id, error));
    }
    this.client._transportChanged();
  }
  _byeOverComm() {
    if (this.ready && !this.client.closed) {
      this.client.model.send({ ipb: 1, msgs: [{ type: "bye", view: this.client.viewId }] });
    }
  }
  /** The view is going away: close the connection (after what was sent on it). */
  close() {
    this.stopped = true;
    this.ready = false;
    this.inbox = [];
    globalThis.removeEventListener?.("pagehide", this._onPageHide);
    if (this.ws) {
      this.ws.onmessage = this.ws.onclose = this.ws.onerror = null;
      try {
        this.ws.close();
      } catch {
      }
    }
  }
};

// js/serialize.js
var TAG = "$ipb";
var MAX_DEPTH = 100;
var FLOAT_TEXT = /^(nan|-?inf|-?\d{1,400}(\.\d{1,400})?(e[+-]?\d{1,3})?)$/;
var DTYPES = {
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  float32: Float32Array,
  float64: Float64Array,
  bool: Uint8Array
};
function dtypeOf(array) {
  if (array instanceof Uint8ClampedArray) return "uint8";
  for (const [name, ctor] of Object.entries(DTYPES)) {
    if (name !== "bool" && array instanceof ctor) return name;
  }
  return null;
}
function isTypedArray(value) {
  return ArrayBuffer.isView(value) && !(value instanceof DataView);
}
function bytesOf(view2) {
  return new Uint8Array(view2.buffer, view2.byteOffset, view2.byteLength);
}
function encode(value, buffers) {
  if (encodesToItself(value, 0)) return value;
  return enc(value, buffers, 0, "value");
}
function encodesToItself(value, depth) {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      if (value === 0) return !Object.is(value, -0);
      return Number.isInteger(value) ? Number.isSafeInteger(value) : Number.isFinite(value);
    case "object":
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (depth >= MAX_DEPTH) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (item === void 0 || !encodesToItself(item, depth + 1)) return false;
    }
    return true;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  const obj = (
    /** @type {Record<string, unknown>} */
    value
  );
  if (typeof obj.toJSON === "function" || Object.hasOwn(obj, TAG)) return false;
  for (const key in obj) {
    if (!Object.hasOwn(obj, key)) return false;
    const item = obj[key];
    if (item === void 0 || !encodesToItself(item, depth + 1)) return false;
  }
  return true;
}
function enc(value, buffers, depth, path) {
  if (depth > MAX_DEPTH) throw new TypeError(`${path}: nesting deeper than ${MAX_DEPTH} levels (or a cycle)`);
  if (value === null || value === void 0) return null;
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      if (Number.isNaN(value)) return { [TAG]: "float", v: "nan" };
      if (!Number.isFinite(value)) return { [TAG]: "float", v: value > 0 ? "inf" : "-inf" };
      if (Object.is(value, -0)) return { [TAG]: "float", v: "-0" };
      if (Number.isInteger(value) && !Number.isSafeInteger(value)) return { [TAG]: "float", v: String(value) };
      return value;
    case "bigint":
      return { [TAG]: "bigint", v: value.toString() };
    case "function":
    case "symbol":
      throw new TypeError(`${path}: cannot send a ${typeof value} to Python`);
  }
  if (value instanceof ArrayBuffer) {
    buffers.push(new Uint8Array(value));
    return { [TAG]: "bytes", i: buffers.length - 1 };
  }
  if (value instanceof DataView || value instanceof Uint8Array) {
    buffers.push(bytesOf(value));
    return { [TAG]: "bytes", i: buffers.length - 1 };
  }
  if (isTypedArray(value)) {
    buffers.push(bytesOf(value));
    return { [TAG]: "ndarray", dtype: dtypeOf(value), shape: [value.length], i: buffers.length - 1 };
  }
  if (Array.isArray(value)) {
    return value.map((item, i) => enc(item, buffers, depth + 1, `${path}[${i}]`));
  }
  const obj = (
    /** @type {Record<string, unknown>} */
    value
  );
  if (isNDArrayLike(obj)) return encodeND(obj, buffers, path);
  if (typeof /** @type {any} */
  obj.toJSON === "function") {
    return enc(
      /** @type {any} */
      obj.toJSON(),
      buffers,
      depth + 1,
      path
    );
  }
  const proto = Object.getPrototypeOf(obj);
  if (proto !== Object.prototype && proto !== null) {
    const kind = obj.constructor?.name ?? "object";
    throw new TypeError(`${path}: cannot send a ${kind} to Python (use plain objects, arrays, numbers, strings, TypedArrays)`);
  }
  const out = {};
  for (const [key, item] of Object.entries(obj)) {
    if (item === void 0) continue;
    out[key] = enc(item, buffers, depth + 1, `${path}.${key}`);
  }
  return TAG in out ? { [TAG]: "dict", v: out } : out;
}
function isNDArrayLike(obj) {
  return typeof obj.dtype === "string" && Array.isArray(obj.shape) && isTypedArray(obj.data);
}
function encodeND(nd, buffers, path) {
  const ctor = DTYPES[
    /** @type {keyof typeof DTYPES} */
    nd.dtype
  ];
  if (!ctor) throw new TypeError(`${path}: unsupported dtype ${JSON.stringify(nd.dtype)}`);
  const count = nd.shape.reduce((a, b) => a * b, 1);
  if (nd.data.length !== count) {
    throw new TypeError(`${path}: shape [${nd.shape}] needs ${count} elements, data has ${nd.data.length}`);
  }
  buffers.push(bytesOf(nd.data));
  return { [TAG]: "ndarray", dtype: nd.dtype, shape: [...nd.shape], i: buffers.length - 1 };
}
function decode(tree, buffers, base = 0, owned = false) {
  if (owned && untagged(tree, 0)) return tree;
  return dec(tree, buffers, base, 0);
}
function untagged(tree, depth) {
  if (tree === null || typeof tree !== "object") return true;
  if (depth >= MAX_DEPTH) return false;
  if (Array.isArray(tree)) {
    for (let i = 0; i < tree.length; i++) if (!untagged(tree[i], depth + 1)) return false;
    return true;
  }
  const obj = (
    /** @type {Record<string, unknown>} */
    tree
  );
  if (TAG in obj || Object.getPrototypeOf(obj) !== Object.prototype) return false;
  for (const key in obj) if (!untagged(obj[key], depth + 1)) return false;
  return true;
}
function dec(tree, buffers, base, depth) {
  if (depth > MAX_DEPTH) throw new TypeError(`value nested deeper than ${MAX_DEPTH} levels`);
  if (Array.isArray(tree)) return tree.map((item) => dec(item, buffers, base, depth + 1));
  if (tree === null || typeof tree !== "object") return tree;
  const obj = (
    /** @type {Record<string, any>} */
    tree
  );
  if (!(TAG in obj)) {
    const out = {};
    for (const [key, item] of Object.entries(obj)) out[key] = dec(item, buffers, base, depth + 1);
    return out;
  }
  switch (obj[TAG]) {
    case "float":
      if (typeof obj.v !== "string" || !FLOAT_TEXT.test(obj.v)) throw new TypeError(`bad tagged float ${JSON.stringify(obj.v)}`);
      return obj.v === "nan" ? NaN : obj.v === "inf" ? Infinity : obj.v === "-inf" ? -Infinity : Number(obj.v);
    case "bigint":
      if (typeof obj.v !== "string" || !/^-?\d{1,4000}$/.test(obj.v)) throw new TypeError("bigint must be a decimal string");
      return BigInt(obj.v);
    case "bytes":
      return toBytes(buffers[base + obj.i]);
    case "ndarray": {
      const ctor = DTYPES[
        /** @type {keyof typeof DTYPES} */
        obj.dtype
      ];
      if (!ctor || !Object.hasOwn(DTYPES, obj.dtype)) throw new TypeError(`unsupported dtype ${obj.dtype}`);
      const bytes = toBytes(buffers[base + obj.i]);
      const count = obj.shape.reduce((a, b) => a * b, 1);
      if (count * ctor.BYTES_PER_ELEMENT !== bytes.byteLength) {
        throw new TypeError(`ndarray of shape [${obj.shape}] needs ${count * ctor.BYTES_PER_ELEMENT} bytes, buffer has ${bytes.byteLength}`);
      }
      return { dtype: obj.dtype, shape: obj.shape, data: view(ctor, bytes) };
    }
    case "dict": {
      const out = {};
      for (const [key, item] of Object.entries(obj.v)) out[key] = dec(item, buffers, base, depth + 1);
      return out;
    }
    default:
      throw new TypeError(`unknown tagged value ${JSON.stringify(obj[TAG])}`);
  }
}
function toBytes(buf) {
  if (buf === void 0) throw new TypeError("message refers to a missing buffer");
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
function view(ctor, bytes) {
  const size = ctor.BYTES_PER_ELEMENT;
  if (bytes.byteLength % size !== 0) throw new TypeError(`buffer of ${bytes.byteLength} bytes is not a whole number of ${size}-byte items`);
  if (bytes.byteOffset % size === 0) return new ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / size);
  return new ctor(bytes.slice().buffer, 0, bytes.byteLength / size);
}

// js/protocol.js
var PROTOCOL_VERSION = 1;
var DEFAULT_MAX_MESSAGE_BYTES = 64 * 2 ** 20;
var PART_BYTES = 8 * 2 ** 20;
var ENCODED_KEYS = ["args", "kwargs", "value"];
var REQUEST_TYPES = /* @__PURE__ */ new Set(["call", "execute", "set", "get"]);
var ENVELOPE_BYTES = 64;
var HANDLER_WAIT_MS = 1e4;
var SETTLE = (
  /** @type {SettleMark} */
  "settle"
);
function makeError(name, message, extra = {}) {
  const error = new Error(message);
  error.name = name;
  return Object.assign(error, extra);
}
function pythonError(e) {
  return makeError(e.ename, e.evalue, { ename: e.ename, evalue: e.evalue, traceback: e.traceback ?? [] });
}
var viewCounter = 0;
function newViewId() {
  const random = globalThis.crypto?.randomUUID?.() ?? `${Math.random()}`.slice(2);
  return `v${++viewCounter}-${random}`;
}
var GONE_STATUSES = /* @__PURE__ */ new Set(["restarting", "autorestarting", "dead", "terminating"]);
var BridgeClient = class {
  /**
   * @param {Model} model
   * @param {{customTypes?: string[], onCustom?: (item: any, buffers: ArrayLike<ArrayBuffer|ArrayBufferView>) => void,
   *          handlerWaitMs?: number}} [options]
   */
  constructor(model, options = {}) {
    this.model = model;
    this.viewId = newViewId();
    this.closed = false;
    this.closedError = null;
    this._nextId = 1;
    this._pending = /* @__PURE__ */ new Map();
    this.diagnostics = { unmatchedAnswers: 0 };
    this._outgoing = [];
    this._outgoingFail = [];
    this._flushQueued = false;
    this._flushLater = () => this.flush();
    this._listeners = /* @__PURE__ */ new Map();
    this._handlers = /* @__PURE__ */ new Map();
    this._closeListeners = /* @__PURE__ */ new Set();
    this.limits = { messageBytes: DEFAULT_MAX_MESSAGE_BYTES, partBytes: PART_BYTES };
    this._customTypes = new Set(options.customTypes ?? []);
    this.transport = "comm";
    this.direct = null;
    this._transportListeners = /* @__PURE__ */ new Set();
    this._onCustom = options.onCustom;
    this._early = null;
    this.setupDone = Promise.resolve();
    this.settingUp = false;
    this.handlerWaitMs = options.handlerWaitMs ?? HANDLER_WAIT_MS;
    this._handlerWaiters = /* @__PURE__ */ new Map();
    this._onMessage = this._onMessage.bind(this);
    this._onDestroy = () => this.closeAll("the widget was closed");
    model.on("msg:custom", this._onMessage);
    model.on("destroy", this._onDestroy);
    this._unwatchKernel = watchKernel(model, (why) => this.closeAll(why));
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
      if (!set) this._handlerWaiters.set(name, set = /* @__PURE__ */ new Set());
      const wake = (found) => {
        clearTimeout(timer);
        set?.delete(wake);
        resolve({ fn: found, waited: found === void 0 && this.settingUp });
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
      this._early.push({ name, payload });
      return;
    }
    for (const cb of [...listeners ?? []]) {
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
        makeError("TypeError", `bridge.call() needs the name of a Python function as a string, not ${describe(name)}`)
      );
    }
    if (!Array.isArray(args)) {
      return Promise.reject(
        makeError("TypeError", `bridge.call(${JSON.stringify(name)}, args): args must be an array, not ${describe(args)}`)
      );
    }
    return this.request({ type: "call", name, args, kwargs: options.kwargs ?? {} }, options, true);
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
   * @param {boolean} [own] the item was made for this request: it gets its `id` and `view` in place
   */
  request(item, options = {}, own = false) {
    if (this.closed) {
      const what = describeRequest(item);
      return Promise.reject(makeError("BridgeClosedError", `cannot send ${what}: ${this.closedError?.message}`));
    }
    const { timeout, signal, onOutput } = options;
    if (signal?.aborted) return Promise.reject(abortError(signal, describeRequest(item)));
    const id = this._nextId++;
    const sent = own ? item : { ...item };
    sent.id = id;
    sent.view = this.viewId;
    return new Promise((resolve, reject) => {
      const pending = { resolve, reject, item: sent, onOutput, timer: void 0, signal: void 0, onAbort: void 0 };
      this._pending.set(id, pending);
      if (timeout !== void 0 && timeout !== null) {
        pending.timer = setTimeout(() => {
          const error = makeError("TimeoutError", `${describeRequest(item)} did not answer within ${timeout} ms`);
          this._giveUp(id, "timeout", error);
        }, timeout);
      }
      if (signal) {
        pending.signal = signal;
        pending.onAbort = () => this._giveUp(id, "abort", abortError(signal, describeRequest(item)));
        signal.addEventListener("abort", pending.onAbort, { once: true });
      }
      this._post(sent, SETTLE);
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
    if (!pending) return;
    this._pending.delete(id);
    if (pending.timer !== void 0) clearTimeout(pending.timer);
    if (pending.onAbort) pending.signal?.removeEventListener("abort", pending.onAbort);
    if (error) pending.reject(error);
    else pending.resolve(value);
  }
  // ----------------------------------------------------------- events
  /** @param {string} name @param {(payload: any) => void} callback @returns {() => void} unsubscribe */
  on(name, callback) {
    let set = this._listeners.get(name);
    if (!set) this._listeners.set(name, set = /* @__PURE__ */ new Set());
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
   * @param {Record<string, any>} item
   * @param {((e: Error) => void) | SettleMark} [fail] called if it cannot be encoded (SETTLE: reject the
   *   request whose id the item carries)
   */
  _post(item, fail) {
    this._outgoing.push(item.view === this.viewId ? item : { ...item, view: this.viewId });
    this._outgoingFail.push(fail);
    if (!this._flushQueued) {
      this._flushQueued = true;
      queueMicrotask(this._flushLater);
    }
  }
  flush() {
    this._flushQueued = false;
    if (this._outgoing.length === 0 || this.closed) return;
    const queued = this._outgoing;
    const fails = this._outgoingFail;
    this._outgoing = [];
    this._outgoingFail = [];
    const limit = this.limits.messageBytes;
    const buffers = [];
    const encodedItems = [];
    const texts = [];
    const items = [];
    let total = ENVELOPE_BYTES;
    let textBytes = ENVELOPE_BYTES;
    for (let i = 0; i < queued.length; i++) {
      const item = queued[i];
      const mark = buffers.length;
      try {
        const encoded = encodeItem(item, buffers);
        const text = JSON.stringify(encoded);
        const bytes = utf8Bytes(text);
        const size = bytes + (buffers.length > mark ? byteSum(buffers, mark) : 0);
        if (size + ENVELOPE_BYTES > limit) {
          buffers.length = mark;
          const what = item.name ?? item.type;
          const error = makeError(
            "MessageTooLargeError",
            `${what}: the message would be ${mib(size)}, over the ${mib(limit)} this widget accepts (max_message_bytes in Python); nothing was sent`
          );
          this._fail(item, fails[i], error);
          continue;
        }
        encodedItems.push(encoded);
        texts.push(text);
        items.push(item);
        total += size;
        textBytes += bytes;
      } catch (error) {
        buffers.length = mark;
        this._fail(item, fails[i], makeError(
          "TypeError",
          /** @type {Error} */
          error.message
        ), error);
      }
    }
    if (texts.length === 0) return;
    try {
      if (total <= limit) {
        this._sendEnvelope(encodedItems, texts, buffers, textBytes);
        return;
      }
      let group = [];
      let groupBytes = ENVELOPE_BYTES;
      const sendGroup = () => {
        const own = [];
        const encoded = group.map((item) => encodeItem(item, own));
        this._sendEnvelope(encoded, encoded.map((e) => JSON.stringify(e)), own);
      };
      for (let i = 0; i < items.length; i++) {
        const size = utf8Bytes(texts[i]) + itemBufferBytes(items[i]);
        if (group.length > 0 && groupBytes + size > limit) {
          sendGroup();
          group = [];
          groupBytes = ENVELOPE_BYTES;
        }
        group.push(items[i]);
        groupBytes += size;
      }
      if (group.length > 0) sendGroup();
    } catch (error) {
      this.closeAll(`the kernel cannot be reached: ${/** @type {Error} */
      error.message}`);
    }
  }
  /**
   * An item that cannot be sent: its `fail`, or the console when it has none.
   * @param {Record<string, any>} item @param {((e: Error) => void) | SettleMark | undefined} fail
   * @param {Error} error @param {unknown} [cause] what the console shows (the original error)
   */
  _fail(item, fail, error, cause = error) {
    if (fail === SETTLE) this._settle(item.id, error);
    else if (fail) fail(error);
    else console.error("ipybridge: cannot send", item, cause);
  }
  /**
   * Send one envelope: whole when it fits in a websocket message, else as `part`s.
   * @param {Record<string, any>[]} msgs the encoded items @param {string[]} texts their JSON
   * @param {Uint8Array[]} buffers
   * @param {number} [textBytes] the UTF-8 bytes of the texts plus ENVELOPE_BYTES, when known
   */
  _sendEnvelope(msgs, texts, buffers, textBytes) {
    if (textBytes === void 0) {
      textBytes = ENVELOPE_BYTES;
      for (const text of texts) textBytes += utf8Bytes(text);
    }
    if (textBytes + byteSum(buffers, 0) <= this.limits.partBytes) {
      const direct = this.direct;
      if (direct?.ready) direct.sendTexts(texts, textBytes - ENVELOPE_BYTES, buffers);
      else this._send({ ipb: PROTOCOL_VERSION, msgs: texts.map((text) => JSON.parse(text)) }, buffers);
      return;
    }
    const json = `{"ipb":${PROTOCOL_VERSION},"msgs":[${texts.join(",")}]}`;
    const ids = msgs.filter((i) => REQUEST_TYPES.has(i.type)).map((i) => i.id);
    const meta = { view: this.viewId, id: this._nextId++, ids };
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
      const own = buffers.map((b) => Array.isArray(b) ? joinViews(b) : exactBuffer(b));
      this.model.send(direct?.lost ? { ...content, direct: "lost" } : content, void 0, own);
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
        if (!this._pending.has(item.id)) this.diagnostics.unmatchedAnswers++;
        else if (item.type === "result") this._settle(item.id, null, decode(item.value, buffers, base, true));
        else this._settle(item.id, pythonError(item.error));
        return;
      case "output": {
        const pending = this._pending.get(item.id);
        if (!pending) return;
        if (pending.onOutput) pending.onOutput(item.stream, item.text);
        else (item.stream === "stderr" ? console.error : console.log)(`[python ${describeRequest(pending.item)}]`, item.text);
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
        if (item.direct && !this.direct && !this.closed && /** @type {any} */
        globalThis.ipybridgeDirect !== false) {
          this.direct = new DirectLink(this, item.direct);
        }
        return;
      }
      case "cancel":
        return;
      case "closing":
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
      const message = waited ? `no JavaScript handler named ${name} after ${this.handlerWaitMs / 1e3} s: the view's js is still running and has not registered it (call bridge.handle(${name}, fn) before awaiting Python)` : `no JavaScript handler named ${name}: register one with bridge.handle(${name}, fn)`;
      this._post({ type: "reply", id: item.id, ok: false, missing: true, error: { name: "ReferenceError", message, stack: "" } });
      return;
    }
    const send = (reply, fail) => {
      this.direct?.noteReply(reply);
      this._post(reply, fail);
    };
    try {
      const value = await fn(...args);
      send(
        { type: "reply", id: item.id, ok: true, value },
        (error) => send({ type: "reply", id: item.id, ok: false, error: errorFields(error) })
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
      this._settle(id, makeError("BridgeClosedError", `${describeRequest(pending.item)} got no answer: ${why}`));
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
    const functions = /* @__PURE__ */ new Map();
    return new Proxy(
      {},
      {
        get: (_target, prop) => {
          if (typeof prop !== "string" || prop === "then") return void 0;
          let fn = functions.get(prop);
          if (!fn) {
            fn = (...args) => this.call(prop, args);
            if (functions.size < 1024) functions.set(prop, fn);
          }
          return fn;
        }
      }
    );
  }
};
function encodeItem(item, buffers) {
  let out = item;
  for (const key of ENCODED_KEYS) {
    if (!(key in item)) continue;
    const value = item[key];
    const encoded = encode(value, buffers);
    if (encoded === value) continue;
    if (out === item) out = { ...item };
    out[key] = encoded;
  }
  return out;
}
function partViews(json, buffers, partBytes, meta) {
  const pieces = [json, ...buffers];
  const sizes = pieces.map((p) => p.byteLength);
  const total = sizes.reduce((a, b) => a + b, 0);
  const count = Math.max(1, Math.ceil(total / partBytes));
  const parts = [];
  let piece = 0;
  let offset = 0;
  for (let seq = 0; seq < count; seq++) {
    const length = Math.min(partBytes, total - seq * partBytes);
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
    const item = { type: "part", view: meta.view, id: meta.id, seq, count, ...seq === 0 ? { sizes, ids: meta.ids } : {} };
    parts.push({ item, chunk });
  }
  return parts;
}
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
function utf8Bytes(text) {
  if (text.length >= 4096) return new TextEncoder().encode(text).byteLength;
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 128) n += c < 2048 || c >= 55296 && c <= 57343 ? 1 : 2;
  }
  return n;
}
function byteSum(buffers, from) {
  let n = 0;
  for (let i = from; i < buffers.length; i++) n += buffers[i].byteLength;
  return n;
}
function itemBufferBytes(item) {
  const own = [];
  encodeItem(item, own);
  return byteSum(own, 0);
}
function mib(n) {
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} bytes`;
}
function exactBuffer(bytes) {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes;
  return bytes.slice();
}
function abortError(signal, what) {
  const reason = signal.reason;
  if (reason instanceof Error && reason.name === "AbortError" && reason.message !== "This operation was aborted") {
    return reason;
  }
  const why = reason instanceof Error ? reason.message : reason === void 0 ? "" : String(reason);
  return makeError("AbortError", `${what} was aborted${why && why !== "This operation was aborted" ? `: ${why}` : ""}`);
}
function describeRequest(item) {
  if (item.type === "call") return `Python function ${JSON.stringify(item.name)}`;
  if (item.type === "get" || item.type === "set") return `bridge.${item.type}(${JSON.stringify(item.name)})`;
  return `bridge.${item.type}()`;
}
function describe(value) {
  if (value === null) return "null";
  if (value === void 0) return "undefined";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  if (typeof value === "object") return `an object (${value.constructor?.name ?? "Object"})`;
  return `${typeof value} ${String(value)}`;
}
function errorFields(error) {
  if (error instanceof Error) return { name: error.name, message: error.message, stack: error.stack ?? "" };
  return { name: "Error", message: String(error), stack: "" };
}
function watchKernel(model, onGone) {
  const manager = model.widget_manager;
  const undo = [];
  const watch = (kernel) => {
    if (!kernel || !kernel.statusChanged?.connect) return;
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

// js/bridge.js
var AsyncFunction = Object.getPrototypeOf(async function() {
}).constructor;
function publicApi(client) {
  return Object.freeze({
    call: client.call.bind(client),
    execute: client.execute.bind(client),
    set: client.set.bind(client),
    get: client.get.bind(client),
    on: client.on.bind(client),
    handle: client.handle.bind(client),
    onClose: client.onClose.bind(client),
    get closed() {
      return client.closed;
    },
    /** The path this view's messages take: "direct" (a websocket to the kernel) or "comm". */
    get transport() {
      return client.transport;
    },
    /** A snapshot of the client's counters: `{unmatchedAnswers, pending}` (docs/protocol.md, "Diagnostics"). */
    get diagnostics() {
      return { ...client.diagnostics, pending: client._pending.size };
    },
    py: client.proxy()
  });
}
function showError(el, error, where) {
  console.error(`ipybridge: ${where}`, error);
  const box = document.createElement("pre");
  box.className = "ipybridge-error";
  box.setAttribute("role", "alert");
  const e = (
    /** @type {any} */
    error
  );
  box.textContent = `${where}: ${e?.name ?? "Error"}: ${e?.message ?? String(error)}`;
  el.appendChild(box);
}
function render({ model, el }) {
  el.classList.add("ipybridge-bridge");
  const client = new BridgeClient(model);
  const api = publicApi(client);
  el.innerHTML = model.get("html") ?? "";
  const source = model.get("js") ?? "";
  client.setSetup(
    (async () => {
      try {
        if (source.trim()) await new AsyncFunction("el", "py", "bridge", source)(el, api.py, api);
      } catch (error) {
        showError(el, error, "error in the Bridge's js");
      }
    })()
  );
  return () => client.dispose();
}
var bridge_default = { render };
export {
  bridge_default as default,
  publicApi,
  showError
};
