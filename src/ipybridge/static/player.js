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

// js/player-logic.js
function nextFrame(index, direction, frames, loop) {
  const next = index + direction;
  if (frames === null || frames === void 0) return next < 0 ? null : { index: next, direction };
  if (frames <= 0) return null;
  if (next >= 0 && next < frames) return { index: next, direction };
  if (loop === "loop") return { index: (next % frames + frames) % frames, direction };
  if (loop === "reflect") {
    if (frames === 1) return null;
    const back = -direction;
    return { index: index + back, direction: back };
  }
  return null;
}
function upcomingFrames(start, direction, frames, loop, count) {
  const out = [];
  if (start < 0 || frames !== null && frames !== void 0 && start >= frames) return [start];
  const states = /* @__PURE__ */ new Set();
  const listed = /* @__PURE__ */ new Set();
  let position = { index: start, direction };
  while (out.length < count && !states.has(`${position.index},${position.direction}`)) {
    states.add(`${position.index},${position.direction}`);
    if (!listed.has(position.index)) {
      listed.add(position.index);
      out.push(position.index);
    }
    const next = nextFrame(position.index, position.direction, frames, loop);
    if (!next) break;
    position = next;
  }
  return out;
}
function framesToRequest(missing, inflight, limit, playing, target) {
  const wanted = missing.slice(0, Math.max(0, limit - inflight));
  if (!wanted.length) return [];
  const batch = playing ? Math.max(1, Math.floor(limit / 2)) : 1;
  return wanted[0] === target || wanted.length >= batch || inflight === 0 ? wanted : [];
}
function stepTarget(index, n, frames, loop) {
  const target = index + n;
  if (frames === null || frames === void 0) return Math.max(0, target);
  if (frames <= 0) return 0;
  if (loop === "loop") return (target % frames + frames) % frames;
  return Math.min(Math.max(target, 0), frames - 1);
}
var FrameCache = class {
  /** @param {number} maxBytes @param {(value: V) => number} sizeOf @param {(value: V) => void} [onEvict] */
  constructor(maxBytes, sizeOf, onEvict) {
    this.maxBytes = maxBytes;
    this.sizeOf = sizeOf;
    this.onEvict = onEvict;
    this._map = /* @__PURE__ */ new Map();
    this.bytes = 0;
    this.hits = 0;
    this.misses = 0;
  }
  get size() {
    return this._map.size;
  }
  /** @param {number} key */
  has(key) {
    return this._map.has(key);
  }
  /** @param {number} key @returns {V | undefined} */
  get(key) {
    const value = this._map.get(key);
    if (value === void 0) {
      this.misses++;
      return void 0;
    }
    this.hits++;
    this._map.delete(key);
    this._map.set(key, value);
    return value;
  }
  /** @param {number} key @param {V} value */
  set(key, value) {
    this.delete(key);
    this._map.set(key, value);
    this.bytes += this.sizeOf(value);
    this._trim(key);
  }
  /** @param {number} key */
  delete(key) {
    const old = this._map.get(key);
    if (old === void 0) return false;
    this._map.delete(key);
    this.bytes -= this.sizeOf(old);
    this.onEvict?.(old);
    return true;
  }
  /** @param {number} maxBytes */
  resize(maxBytes) {
    this.maxBytes = maxBytes;
    this._trim(null);
  }
  clear() {
    for (const key of [...this._map.keys()]) this.delete(key);
  }
  /** Evict least recently used entries until within bounds; `keep` stays. @param {number|null} keep */
  _trim(keep) {
    for (const key of this._map.keys()) {
      if (this.bytes <= this.maxBytes) return;
      if (key === keep) continue;
      this.delete(key);
    }
  }
  /** @returns {IterableIterator<number>} */
  keys() {
    return this._map.keys();
  }
};
var FpsMeter = class {
  /** @param {number} [windowMs] */
  constructor(windowMs = 1e3) {
    this.windowMs = windowMs;
    this._times = [];
    this.count = 0;
    this._since = -1;
  }
  /** @param {number} now ms */
  tick(now) {
    if (this._since < 0) this._since = now;
    this._times.push(now);
    this.count++;
    this._drop(now);
  }
  /** @param {number} now */
  _drop(now) {
    let i = 0;
    while (i < this._times.length && this._times[i] <= now - this.windowMs) i++;
    if (i) this._times.splice(0, i);
  }
  /** @param {number} now @returns {number} */
  rate(now) {
    this._drop(now);
    const times = this._times;
    if (times.length < 2) return 0;
    if (now - this._since >= this.windowMs) return times.length * 1e3 / this.windowMs;
    return (times.length - 1) * 1e3 / Math.max(times[times.length - 1] - times[0], 1);
  }
  reset() {
    this._times = [];
    this._since = -1;
  }
};
var ScreenCounter = class {
  /** @param {number} [windowMs] */
  constructor(windowMs = 1e3) {
    this.drawn = 0;
    this.displayed = 0;
    this.dropped = 0;
    this.displayedMeter = new FpsMeter(windowMs);
    this.drawnMeter = new FpsMeter(windowMs);
    this._pending = 0;
  }
  /** @param {number} now ms */
  drew(now) {
    this.drawn++;
    this._pending++;
    this.drawnMeter.tick(now);
  }
  /** A display refresh at `now`; true if it showed a newly drawn frame. @param {number} now */
  refresh(now) {
    if (!this._pending) return false;
    this.displayed++;
    this.dropped += this._pending - 1;
    this._pending = 0;
    this.displayedMeter.tick(now);
    return true;
  }
  /** Whether frames were drawn that no refresh has shown yet. */
  get pending() {
    return this._pending > 0;
  }
  /** Restart the rates (not the counts), e.g. when playback starts. */
  resetRates() {
    this.displayedMeter.reset();
    this.drawnMeter.reset();
  }
};
var FrameClock = class {
  /** @param {number} fps */
  constructor(fps) {
    this.fps = fps;
    this.next = 0;
  }
  get interval() {
    return this.fps > 0 ? 1e3 / this.fps : 0;
  }
  /** @param {number} now */
  start(now) {
    this.next = now + this.interval;
  }
  /** Paint when within a quarter interval of the deadline (rAF ticks jitter). @param {number} now */
  due(now) {
    return this.fps <= 0 || now >= this.next - Math.min(4, this.interval * 0.25);
  }
  /** @param {number} now */
  advance(now) {
    this.next = Math.max(this.next + this.interval, now + this.interval * 0.5);
  }
};
async function inflateHere(bytes, expected) {
  const stream = new DecompressionStream("deflate");
  const writer = stream.writable.getWriter();
  writer.write(
    /** @type {any} */
    bytes
  ).catch(() => {
  });
  writer.close().catch(() => {
  });
  const reader = stream.readable.getReader();
  const out = new Uint8Array(expected);
  let at = 0;
  for (; ; ) {
    const { done, value } = await reader.read();
    if (done) break;
    if (at + value.byteLength > expected) {
      reader.cancel().catch(() => {
      });
      throw new Error("more pixel data than the PNG's size");
    }
    out.set(value, at);
    at += value.byteLength;
  }
  if (at !== expected) throw new Error(`${at} bytes of pixel data for ${expected}`);
  return out;
}
var PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
function readPlainPng(bytes) {
  if (typeof DecompressionStream === "undefined" || bytes.byteLength < 45) return null;
  if (PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) return null;
  const view2 = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = (at2) => String.fromCharCode(bytes[at2], bytes[at2 + 1], bytes[at2 + 2], bytes[at2 + 3]);
  if (view2.getUint32(8) !== 13 || type(12) !== "IHDR") return null;
  const width = view2.getUint32(16);
  const height = view2.getUint32(20);
  if (bytes[24] !== 8 || bytes[25] !== 6 || bytes[26] || bytes[27] || bytes[28] || !width || !height) return null;
  if (width * height > 1 << 28) return null;
  const data = [];
  let at = 33;
  for (; ; ) {
    if (at + 12 > bytes.byteLength) return null;
    const length = view2.getUint32(at);
    const name = type(at + 4);
    if (at + 12 + length > bytes.byteLength) return null;
    if (name === "IEND") break;
    if (name !== "IDAT") return null;
    data.push(bytes.subarray(at + 8, at + 8 + length));
    at += 12 + length;
  }
  if (!data.length) return null;
  let body = data[0];
  if (data.length > 1) {
    body = new Uint8Array(data.reduce((n, d) => n + d.byteLength, 0));
    let to = 0;
    for (const d of data) {
      body.set(d, to);
      to += d.byteLength;
    }
  }
  const stride = width * 4;
  return inflateHere(body, height * (stride + 1)).then((rows) => {
    const rgba = new Uint8ClampedArray(height * stride);
    for (let y = 0; y < height; y++) {
      const start = y * (stride + 1);
      if (rows[start] !== 0) throw new Error(`PNG row ${y} uses filter ${rows[start]}`);
      rgba.set(rows.subarray(start + 1, start + 1 + stride), y * stride);
    }
    return { width, height, rgba };
  });
}

// js/player.js
var MAX_INFLIGHT = 16;
var INFLIGHT_SECONDS = 0.4;
var INFLIGHT_SECONDS_COMM = 0.8;
var MAX_INFLIGHT_UNTHROTTLED = 32;
var MAX_INFLIGHT_COMM = 48;
var STATS_EVERY_MS = 1e3;
var MAX_DECODING = 4;
var DECODED_BYTES = 48 << 20;
var BUFFERING_AFTER_MS = 150;
var SYNC_EVERY_MS = 1e3;
var READOUTS_EVERY_MS = 100;
var SVG = (body) => `<svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" focusable="false">${body}</svg>`;
var ICONS = {
  first: SVG('<rect x="2" y="3" width="2" height="10"/><path d="M14 3v10L5 8z"/>'),
  prev: SVG('<rect x="3" y="3" width="2" height="10"/><path d="M13 3v10L6 8z"/>'),
  reverse: SVG('<path d="M12 3v10L4 8z"/>'),
  pause: SVG('<rect x="4" y="3" width="3" height="10"/><rect x="9" y="3" width="3" height="10"/>'),
  play: SVG('<path d="M4 3v10l8-5z"/>'),
  next: SVG('<path d="M3 3v10l7-5z"/><rect x="11" y="3" width="2" height="10"/>'),
  last: SVG('<path d="M2 3v10l9-5z"/><rect x="12" y="3" width="2" height="10"/>')
};
var SPEEDS = [0.25, 0.5, 1, 2, 4];
function make(tag, attrs = {}, html = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (html) node.innerHTML = html;
  return node;
}
function button(label, icon) {
  return (
    /** @type {HTMLButtonElement} */
    make("button", { type: "button", "aria-label": label, title: label, class: "ipb-button" }, icon)
  );
}
function bytesOf2(view2) {
  if (view2 instanceof Uint8Array) return view2;
  if (ArrayBuffer.isView(view2)) return new Uint8Array(view2.buffer, view2.byteOffset, view2.byteLength);
  return new Uint8Array(view2);
}
function inflate(bytes) {
  const source = new ReadableStream({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    }
  });
  return new Response(source.pipeThrough(new DecompressionStream("deflate"))).arrayBuffer();
}
async function decodeIndexed(frame2) {
  const bytes = frame2.bytes;
  const entries = bytes[0] + 1;
  const start = 4 + 4 * entries;
  const body = bytes.subarray(start);
  const indices = bytes[1] & 1 ? new Uint8Array(await inflate(body)) : body;
  const count = frame2.width * frame2.height;
  if (indices.length !== count) throw new Error(`${indices.length} pixel indices for a ${frame2.width} x ${frame2.height} frame`);
  const palette = new Uint32Array(256);
  new Uint8Array(palette.buffer).set(bytes.subarray(4, start));
  return { width: frame2.width, height: frame2.height, indices, palette };
}
function lookUp(frame2, into) {
  const pixels = new Uint32Array(into.data.buffer, into.data.byteOffset, frame2.width * frame2.height);
  const { indices, palette } = frame2;
  for (let i = 0; i < pixels.length; i++) pixels[i] = palette[indices[i]];
  return into;
}
async function decodeFrame(frame2) {
  if (frame2.codec === "indexed") return decodeIndexed(frame2);
  if (frame2.codec === "raw") {
    const pixels = new Uint8ClampedArray(await inflate(frame2.bytes));
    return new ImageData(pixels, frame2.width, frame2.height);
  }
  const type = frame2.codec === "png" ? "image/png" : "image/jpeg";
  return createImageBitmap(new Blob([
    /** @type {BlobPart} */
    frame2.bytes
  ], { type }));
}
function decodePlainPng(bytes) {
  const read = readPlainPng(bytes);
  return read && read.then(({ width, height, rgba }) => new ImageData(rgba, width, height));
}
function decodePoster(frame2) {
  const plain = frame2.codec === "png" ? decodePlainPng(frame2.bytes) : null;
  return plain ? plain.catch(() => decodeFrame(frame2)) : decodeFrame(frame2);
}
function decodedBytes(frame2) {
  return "indices" in frame2 ? frame2.indices.byteLength + 1024 : frame2.width * frame2.height * 4;
}
var pageScale = () => Math.min(8, Math.max(0.25, window.devicePixelRatio || 1));
function posterOf(model, scale) {
  const poster = model.get("_poster");
  if (!poster || !poster.byteLength) return null;
  if (scale !== 1 && !model.get("_poster_any_scale")) return null;
  const bytes = bytesOf2(poster);
  const codec = String(model.get("_poster_codec") || "png");
  let width = 0;
  let height = 0;
  if (codec === "png") {
    if (bytes.byteLength < 24) return null;
    const header = new DataView(bytes.buffer, bytes.byteOffset, 24);
    width = header.getUint32(16);
    height = header.getUint32(20);
  } else {
    [width, height] = model.get("_poster_size") ?? [0, 0];
  }
  if (!(width > 0 && height > 0)) return null;
  return { poster, index: model.get("_poster_frame"), gen: model.get("_poster_gen") ?? 0, encoded: { codec, width, height, bytes } };
}
var earlyPosters = /* @__PURE__ */ new WeakMap();
function dropEarlyPoster(poster) {
  const early = poster && earlyPosters.get(poster);
  if (!poster || !early) return;
  earlyPosters.delete(poster);
  early.frame.then((f) => f instanceof ImageBitmap && f.close(), () => {
  });
}
function initialize({ model }) {
  let current = null;
  const onPoster = () => {
    dropEarlyPoster(current);
    current = null;
    const scale = pageScale();
    const found = posterOf(model, scale);
    if (!found) return;
    const early = { scale, frame: decodePoster(found.encoded) };
    early.frame.then((image) => early.image = image, () => {
    });
    current = found.poster;
    earlyPosters.set(found.poster, early);
  };
  onPoster();
  model.on("change:_poster", onPoster);
  return () => {
    model.off("change:_poster", onPoster);
    dropEarlyPoster(current);
  };
}
var stripAnsi = (text) => text.replace(/\u001b\[[0-9;]*m/g, "");
var CONTROL_KEYS = /* @__PURE__ */ new Set([" ", "Enter", "ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End", "PageUp", "PageDown"]);
function render({ model, el }) {
  el.classList.add("ipybridge-player");
  el.tabIndex = 0;
  const stage = make("div", { class: "ipb-stage" });
  const canvas = (
    /** @type {HTMLCanvasElement} */
    make("canvas", { "data-frame": "-1", class: "ipb-canvas" })
  );
  canvas.width = 0;
  canvas.height = 0;
  const ctx = (
    /** @type {CanvasRenderingContext2D} */
    canvas.getContext("2d")
  );
  ctx.globalCompositeOperation = "copy";
  const buffering = make("div", { class: "ipb-buffering", role: "status", "aria-label": "Buffering", title: "Buffering" }, "<span></span>");
  buffering.hidden = true;
  const errorBox = make("div", { class: "ipb-error", role: "alert" });
  const errorText = make("pre", { class: "ipb-error-text" });
  const dismiss = button("Dismiss error", "&times;");
  errorBox.append(dismiss, errorText);
  errorBox.hidden = true;
  const goneBox = make("div", { class: "ipb-gone", role: "alert" });
  goneBox.hidden = true;
  stage.append(canvas, buffering, errorBox, goneBox);
  const controls = make("div", { class: "ipb-controls" });
  const first = button("First", ICONS.first);
  const prev = button("Prev Frame", ICONS.prev);
  const reverse = button("Reverse", ICONS.reverse);
  const pause = button("Pause", ICONS.pause);
  const play = button("Play", ICONS.play);
  const next = button("Next Frame", ICONS.next);
  const last = button("Last", ICONS.last);
  const slider = (
    /** @type {HTMLInputElement} */
    make("input", { type: "range", min: "0", step: "1", "aria-label": "Frame", title: "Frame", class: "ipb-slider" })
  );
  const counter = make("span", { "aria-label": "Frame counter", title: "Frame counter", class: "ipb-counter", role: "status" });
  const speed = (
    /** @type {HTMLSelectElement} */
    make("select", { "aria-label": "Speed", title: "Speed", class: "ipb-select" })
  );
  const loopMode = (
    /** @type {HTMLSelectElement} */
    make("select", { "aria-label": "Loop mode", title: "Loop mode", class: "ipb-select" })
  );
  for (const mode of ["loop", "once", "reflect"]) loopMode.append(new Option(mode, mode));
  const fpsReadout = make("span", { "aria-label": "Displayed fps", title: "Displayed fps", class: "ipb-fps" }, "0.0 fps");
  controls.append(first, prev, reverse, pause, play, next, last, slider, counter, speed, loopMode, fpsReadout);
  const title = make("div", { class: "ipb-title", role: "heading", "aria-level": "3" });
  const colorbar = (
    /** @type {HTMLImageElement} */
    make("img", { class: "ipb-colorbar", alt: "Colour bar", title: "Colour bar" })
  );
  const view2 = make("div", { class: "ipb-view" });
  view2.append(stage, colorbar);
  el.replaceChildren(title, view2, controls);
  const client = new BridgeClient(model, { customTypes: ["frame", "frame_error"], onCustom });
  const cache = new FrameCache(cacheBytes(), (f) => f.bytes.byteLength);
  const decoded = new FrameCache(DECODED_BYTES, decodedBytes, (f) => {
    if (f instanceof ImageBitmap) f.close();
  });
  const inflight = /* @__PURE__ */ new Map();
  const inflightByIndex = /* @__PURE__ */ new Map();
  const requestScale = /* @__PURE__ */ new Map();
  const decoding = /* @__PURE__ */ new Set();
  const labels = /* @__PURE__ */ new Map();
  const failed = /* @__PURE__ */ new Map();
  const screen = new ScreenCounter();
  const clock = new FrameClock(model.get("fps"));
  let nextRequestId = 1;
  let generation = model.get("_generation") ?? 0;
  let shown = -1;
  let target = model.get("frame") ?? 0;
  let direction = model.get("direction") === -1 ? -1 : 1;
  let playing = false;
  let lateSince = 0;
  let lateWaiting = 0;
  let lateDecoding = 0;
  let lastSync = 0;
  let lastStats = 0;
  let lastReadouts = 0;
  let pumpQueued = false;
  let rafId = 0;
  let refreshId = 0;
  let disposed = false;
  let ownChange = false;
  let scale = pageScale();
  let frameScale = 1;
  let posterPending = false;
  let learntLength = (
    /** @type {number|null} */
    null
  );
  const frames = () => (
    /** @type {number|null} */
    model.get("frames") ?? learntLength
  );
  const loop = () => (
    /** @type {import("./player-logic.js").LoopMode} */
    model.get("loop") ?? "loop"
  );
  const fps = () => Number(model.get("fps") ?? 30);
  function cacheBytes() {
    return Math.max(1, Number(model.get("cache_mb") ?? 128)) * (1 << 20);
  }
  function wireCodec() {
    const codec = model.get("codec") ?? "auto";
    if ((codec === "raw" || codec === "auto") && typeof DecompressionStream === "undefined") return "png";
    return codec;
  }
  function setModel(changes) {
    if (client.closed) return;
    ownChange = true;
    try {
      for (const [key, value] of Object.entries(changes)) model.set(key, value);
      model.save_changes();
    } finally {
      ownChange = false;
    }
  }
  function request(index, urgent) {
    const id = nextRequestId++;
    inflight.set(id, index);
    inflightByIndex.set(index, id);
    requestScale.set(id, scale);
    const item = { type: "frame", id, index, gen: generation, codec: wireCodec(), quality: model.get("quality") ?? 85, scale };
    client._post(urgent ? { ...item, urgent } : item);
  }
  function cancelUnwanted(keep) {
    const ids = [];
    for (const [id, index] of inflight) {
      if (!keep.has(index)) {
        ids.push(id);
        inflight.delete(id);
        requestScale.delete(id);
        inflightByIndex.delete(index);
      }
    }
    if (ids.length) client._post({ type: "frame_cancel", ids });
  }
  function onCustom(item, buffers) {
    if (disposed) return;
    const index = item.index;
    if (inflight.get(item.id) === index) {
      inflight.delete(item.id);
      inflightByIndex.delete(index);
    }
    const askedScale = requestScale.get(item.id);
    requestScale.delete(item.id);
    if (item.gen !== generation) return;
    if (askedScale !== void 0 && askedScale !== scale) return;
    if (item.type === "frame") {
      if (typeof item.scale === "number" && item.scale > 0) frameScale = item.scale;
      cache.set(index, { codec: item.codec, width: item.width, height: item.height, bytes: bytesOf2(buffers[item.b0 ?? 0]) });
      failed.delete(index);
      if (typeof item.label === "string") {
        if (labels.size >= 1e5) labels.clear();
        labels.set(index, item.label);
      }
    } else if (item.type === "frame_error") {
      if (typeof item.length === "number" && index >= item.length && frames() === null) {
        learntLength = item.length;
        if (playing && target >= item.length && advance()) clock.start(performance.now() - clock.interval);
      } else {
        failed.set(index, item.error);
        if (index === target) fail(index, item.error);
      }
    }
    schedule();
  }
  function usePoster() {
    const found = posterOf(model, scale);
    if (!found || found.index !== target || shown >= 0) return;
    if (found.gen !== generation || cache.has(found.index)) return;
    cache.set(found.index, found.encoded);
    const label = model.get("_poster_label");
    if (label) labels.set(found.index, String(label));
    posterPending = true;
    const early = earlyPosters.get(found.poster);
    if (early?.scale === scale) earlyPosters.delete(found.poster);
    if (early?.scale === scale && early.image) {
      decoded.set(found.index, early.image);
      paintPoster(found.index);
    } else {
      startDecode(found.index, found.encoded, early?.scale === scale ? early.frame : decodePoster(found.encoded));
    }
    schedule();
  }
  function paintPoster(index) {
    if (!posterPending || playing || disposed || index !== target || shown === target) return;
    paint(index);
    if (!refreshId) refreshId = requestAnimationFrame(onRefresh);
  }
  function schedule() {
    if (pumpQueued || disposed) return;
    pumpQueued = true;
    queueMicrotask(pump);
  }
  function inflightLimit() {
    if (playing && fps() <= 0) return MAX_INFLIGHT_UNTHROTTLED;
    const comm = client.transport !== "direct";
    const ahead = Math.ceil(fps() * (comm ? INFLIGHT_SECONDS_COMM : INFLIGHT_SECONDS));
    return Math.min(comm ? MAX_INFLIGHT_COMM : MAX_INFLIGHT_UNTHROTTLED, Math.max(MAX_INFLIGHT, ahead));
  }
  function wanted() {
    const count = playing ? 2 * inflightLimit() : 3;
    return upcomingFrames(target, direction, frames(), loop(), count);
  }
  function pump() {
    pumpQueued = false;
    if (disposed) return;
    if (pageScale() !== scale) onScaleChange();
    const want = wanted();
    cancelUnwanted(new Set(want));
    const missing = [];
    for (const index of want) {
      if (failed.has(index)) break;
      if (decoded.has(index) || decoding.has(index)) continue;
      const encoded = cache.get(index);
      if (encoded) {
        if (decoding.size < MAX_DECODING * (playing && fps() <= 0 ? 2 : 1)) startDecode(index, encoded);
      } else if (!inflightByIndex.has(index)) {
        missing.push(index);
      }
    }
    const holding = posterPending && !playing && !missing.includes(target);
    if (!client.closed && !holding) {
      const asked = framesToRequest(missing, inflight.size, inflightLimit(), playing, target);
      for (const index of asked) request(index, index === target);
      const now = performance.now();
      if (asked.length && playing && now - lastStats >= STATS_EVERY_MS) sendStats(now);
    }
    if (!playing && shown !== target && decoded.has(target) && !refreshId) refreshId = requestAnimationFrame(onRefresh);
    if (!playing && shown !== target) showBufferingIfStillWaiting();
  }
  let waitTimer = 0;
  function showBufferingIfStillWaiting() {
    if (waitTimer) return;
    waitTimer = window.setTimeout(() => {
      waitTimer = 0;
      if (!disposed && !playing && !client.closed && shown !== target && !failed.has(target)) buffering.hidden = false;
    }, BUFFERING_AFTER_MS);
  }
  function startDecode(index, encoded, started) {
    decoding.add(index);
    const gen = generation;
    (started ?? decodeFrame(encoded)).then(
      (image) => {
        decoding.delete(index);
        if (disposed || gen !== generation) {
          if (image instanceof ImageBitmap) image.close();
          return;
        }
        decoded.set(index, image);
        paintPoster(index);
        schedule();
      },
      (error) => {
        decoding.delete(index);
        cache.delete(index);
        posterPending = false;
        if (gen !== generation) return;
        const info = { ename: error?.name ?? "Error", evalue: `the page could not decode frame ${index}: ${error?.message ?? error}`, traceback: [] };
        failed.set(index, info);
        if (index === target) fail(index, info);
        schedule();
      }
    );
  }
  let sizedAt = 1;
  let pixels = null;
  function forgetFrames() {
    cancelUnwanted(/* @__PURE__ */ new Set());
    cache.clear();
    decoded.clear();
    failed.clear();
    posterPending = false;
    if (!playing) shown = -1;
    schedule();
  }
  let ratioQuery = null;
  function watchScale() {
    ratioQuery?.removeEventListener("change", onScaleChange);
    ratioQuery = typeof matchMedia === "function" ? matchMedia(`(resolution: ${window.devicePixelRatio || 1}dppx)`) : null;
    ratioQuery?.addEventListener("change", onScaleChange);
  }
  function onScaleChange() {
    watchScale();
    const now = pageScale();
    if (disposed || now === scale) return;
    scale = now;
    forgetFrames();
  }
  watchScale();
  window.addEventListener("resize", onScaleChange);
  function paint(index) {
    const image = decoded.get(index);
    if (!image) return false;
    if (canvas.width !== image.width || canvas.height !== image.height || sizedAt !== frameScale) {
      canvas.width = image.width;
      canvas.height = image.height;
      canvas.style.width = frameScale === 1 ? "" : `${image.width / frameScale}px`;
      sizedAt = frameScale;
      ctx.globalCompositeOperation = "copy";
    }
    if ("indices" in image) {
      if (!pixels || pixels.width !== image.width || pixels.height !== image.height) pixels = new ImageData(image.width, image.height);
      ctx.putImageData(lookUp(image, pixels), 0, 0);
    } else if (image instanceof ImageData) ctx.putImageData(image, 0, 0);
    else ctx.drawImage(image, 0, 0);
    shown = index;
    canvas.dataset.frame = String(index);
    if (posterPending) {
      posterPending = false;
      schedule();
    }
    const now = performance.now();
    screen.drew(now);
    lateSince = 0;
    buffering.hidden = true;
    if (!playing || now - lastReadouts >= READOUTS_EVERY_MS) updateReadouts(now);
    if (!playing || now - lastSync >= SYNC_EVERY_MS && client.transport !== "direct") {
      lastSync = now;
      if (model.get("frame") !== index) setModel({ frame: index });
    }
    if (playing && now - lastStats >= STATS_EVERY_MS * (client.transport === "direct" ? 1 : 2)) sendStats(now);
    return true;
  }
  function advance() {
    const after = nextFrame(shown, direction, frames(), loop());
    if (!after) {
      stop();
      return false;
    }
    if (after.direction !== direction) {
      direction = after.direction;
      if (client.transport !== "direct") setModel({ direction });
    }
    target = after.index;
    return true;
  }
  function onRefresh(now) {
    refreshId = 0;
    if (disposed) return;
    if (!playing && shown !== target && decoded.has(target)) paint(target);
    screen.refresh(now);
  }
  function tick(now) {
    rafId = 0;
    if (!playing || disposed) return;
    clock.fps = fps();
    if (clock.due(now)) {
      if (decoded.has(target)) {
        paint(target);
        clock.advance(now);
        if (advance()) schedule();
      } else if (failed.has(target)) {
        fail(target, failed.get(target));
      } else {
        if (decoding.has(target) || cache.has(target)) lateDecoding++;
        else lateWaiting++;
        if (!lateSince) lateSince = now;
        if (now - lateSince > BUFFERING_AFTER_MS) buffering.hidden = false;
        schedule();
      }
    }
    screen.refresh(now);
    if (playing) rafId = requestAnimationFrame(tick);
  }
  function start(dir) {
    if (client.closed) return;
    hideError();
    failed.clear();
    direction = dir;
    const total = frames();
    if (shown >= 0) {
      const after = nextFrame(shown, dir, total, loop());
      if (after) {
        target = after.index;
        direction = after.direction;
      } else if (total !== null && total > 0) {
        target = dir === 1 ? 0 : total - 1;
      } else {
        stop();
        return;
      }
    }
    playing = true;
    clock.fps = fps();
    clock.start(performance.now());
    lateSince = 0;
    screen.resetRates();
    updateButtons();
    if (!rafId) rafId = requestAnimationFrame(tick);
    schedule();
  }
  function stop() {
    playing = false;
    if (rafId) cancelAnimationFrame(rafId);
    rafId = 0;
    buffering.hidden = true;
    if (shown >= 0) target = shown;
    const changes = (
      /** @type {Record<string, any>} */
      {}
    );
    if (model.get("playing")) changes.playing = false;
    if (shown >= 0 && model.get("frame") !== shown) changes.frame = shown;
    if (model.get("direction") !== direction) changes.direction = direction;
    if (Object.keys(changes).length) setModel(changes);
    updateButtons();
    updateReadouts(performance.now());
    sendStats(performance.now());
    schedule();
  }
  function seek(index) {
    hideError();
    failed.delete(index);
    target = index;
    if (playing) {
      clock.start(performance.now() - clock.interval);
    } else if (model.get("frame") !== index) {
      setModel({ frame: index });
    }
    updateReadouts(performance.now(), index);
    schedule();
  }
  function step(n) {
    const from = shown >= 0 ? shown : target;
    if (playing) stop();
    seek(stepTarget(from, n, frames(), loop()));
  }
  function fail(index, error) {
    if (playing) stop();
    const header = `Frame ${index}: ${error?.ename ?? "Error"}: ${error?.evalue ?? ""}`;
    const trace = (error?.traceback ?? []).map((line) => stripAnsi(String(line))).join("\n");
    errorText.textContent = trace ? `${header}

${trace}` : header;
    errorBox.hidden = false;
    buffering.hidden = true;
  }
  function hideError() {
    errorBox.hidden = true;
  }
  function updateReadouts(now, index = shown) {
    lastReadouts = now;
    const total = frames();
    const max = total !== null ? Math.max(total - 1, 0) : Math.max(99, Math.ceil((Math.max(index, 0) + 1) * 1.5));
    slider.max = String(max);
    if (document.activeElement !== slider || playing) slider.value = String(Math.max(index, 0));
    const position = `${Math.max(index, 0)} / ${total !== null ? Math.max(total - 1, 0) : "\u221E"}`;
    const label = labels.get(Math.max(index, 0));
    counter.textContent = label ? `${label} (${position})` : position;
    fpsReadout.textContent = `${screen.displayedMeter.rate(now).toFixed(1)} fps`;
  }
  function updateButtons() {
    pause.setAttribute("aria-pressed", String(!playing));
    play.setAttribute("aria-pressed", String(playing && direction === 1));
    reverse.setAttribute("aria-pressed", String(playing && direction === -1));
    el.classList.toggle("ipb-playing", playing);
    const endless = frames() === null;
    last.disabled = endless;
  }
  function updateSpeed() {
    const base = Number(model.get("_base_fps") || 30);
    const current = fps();
    speed.replaceChildren();
    let matched = false;
    for (const factor of SPEEDS) {
      const option = new Option(`${factor}\xD7`, String(base * factor));
      if (Math.abs(base * factor - current) < 1e-9) option.selected = true, matched = true;
      speed.append(option);
    }
    const max = new Option("max", "0");
    if (current <= 0) max.selected = true, matched = true;
    speed.append(max);
    if (!matched) {
      const custom = new Option(`${+current.toFixed(2)} fps`, String(current));
      custom.selected = true;
      speed.append(custom);
    }
  }
  function sendStats(now) {
    lastStats = now;
    if (client.closed) return;
    const stats = {
      displayed_fps: Math.round(screen.displayedMeter.rate(now) * 100) / 100,
      drawn_fps: Math.round(screen.drawnMeter.rate(now) * 100) / 100,
      displayed: screen.displayed,
      dropped: screen.dropped,
      painted: screen.drawn,
      cache_frames: cache.size,
      cache_bytes: cache.bytes,
      cache_hits: cache.hits,
      decoded_frames: decoded.size,
      late_waiting: lateWaiting,
      late_decoding: lateDecoding,
      inflight: inflight.size,
      frame: shown,
      seq: model.get("_frame_seq") ?? 0
      // the kernel follows `frame` only from reports made after its last seek
    };
    if (playing && client.transport === "direct" && shown >= 0 && model.get("frame") !== shown) {
      ownChange = true;
      try {
        model.set("frame", shown);
      } finally {
        ownChange = false;
      }
    }
    client._post({ type: "player_stats", stats });
  }
  first.onclick = () => {
    if (playing) stop();
    seek(0);
  };
  last.onclick = () => {
    const total = frames();
    if (total === null) return;
    if (playing) stop();
    seek(Math.max(total - 1, 0));
  };
  prev.onclick = () => step(-1);
  next.onclick = () => step(1);
  play.onclick = () => {
    setModel({ direction: 1, playing: true });
    start(1);
  };
  reverse.onclick = () => {
    setModel({ direction: -1, playing: true });
    start(-1);
  };
  pause.onclick = () => {
    if (playing) stop();
  };
  dismiss.onclick = hideError;
  slider.oninput = () => seek(Number(slider.value));
  speed.onchange = () => setModel({ fps: Number(speed.value) });
  loopMode.onchange = () => setModel({ loop: loopMode.value });
  const onKey = (event) => {
    const target2 = event.target;
    if (!(target2 instanceof Node) || !el.contains(target2)) return;
    if (event.ctrlKey || event.metaKey || event.altKey || event.shiftKey) return;
    const onControl = target2 instanceof HTMLSelectElement || target2 === slider;
    const onButton = target2 instanceof HTMLButtonElement;
    const native = onControl && CONTROL_KEYS.has(event.key) || onButton && (event.key === " " || event.key === "Enter");
    let handled = !native;
    if (native) {
    } else if (event.key === " ") {
      if (playing) stop();
      else play.click();
    } else if (event.key === "ArrowLeft") step(-1);
    else if (event.key === "ArrowRight") step(1);
    else if (event.key === "Home") first.click();
    else if (event.key === "End") last.click();
    else handled = false;
    if (handled) event.preventDefault();
    if (handled || native) event.stopPropagation();
  };
  window.addEventListener("keydown", onKey, true);
  stage.addEventListener("mousedown", () => el.focus());
  const onModel = (name, fn) => {
    const handler = () => {
      if (!ownChange) fn();
    };
    model.on(`change:${name}`, handler);
    return () => model.off(`change:${name}`, handler);
  };
  const unsubscribe = [
    onModel("frame", () => {
      const index = model.get("frame");
      if (index !== shown || !playing) seek(index);
    }),
    onModel("playing", () => {
      if (model.get("playing") && !playing) start(model.get("direction") === -1 ? -1 : 1);
      else if (!model.get("playing") && playing) stop();
    }),
    onModel("direction", () => {
      const dir = model.get("direction") === -1 ? -1 : 1;
      if (dir !== direction) {
        if (playing) start(dir);
        else direction = dir;
        updateButtons();
      }
    }),
    onModel("fps", () => {
      clock.fps = fps();
      updateSpeed();
      schedule();
    }),
    onModel("_base_fps", updateSpeed),
    onModel("loop", () => {
      loopMode.value = loop();
      schedule();
    }),
    onModel("frames", () => {
      updateReadouts(performance.now());
      updateButtons();
      schedule();
    }),
    onModel("cache_mb", () => cache.resize(cacheBytes())),
    onModel("_poster", usePoster),
    ...["codec", "quality", "_generation"].map(
      (name) => onModel(name, () => {
        generation = model.get("_generation") ?? 0;
        labels.clear();
        forgetFrames();
      })
    )
  ];
  client.onTransportChange(() => {
    cancelUnwanted(/* @__PURE__ */ new Set());
    schedule();
  });
  client.onClose((error) => {
    inflight.clear();
    inflightByIndex.clear();
    requestScale.clear();
    if (disposed) return;
    if (playing) stop();
    buffering.hidden = true;
    goneBox.textContent = `Kernel gone: ${error.message}. Re-run the cell to play again.`;
    goneBox.hidden = false;
    el.classList.add("ipb-kernel-gone");
    updateButtons();
  });
  let colorbarUrl = "";
  function updateTitle() {
    const text = String(model.get("title") ?? "");
    title.textContent = text;
    title.hidden = !text;
  }
  function updateColorbar() {
    if (colorbarUrl) URL.revokeObjectURL(colorbarUrl);
    colorbarUrl = "";
    const png = model.get("_colorbar");
    const bytes = png ? bytesOf2(png) : new Uint8Array(0);
    if (bytes.byteLength) colorbarUrl = URL.createObjectURL(new Blob([
      /** @type {BlobPart} */
      bytes
    ], { type: "image/png" }));
    colorbar.hidden = !colorbarUrl;
    if (colorbarUrl) colorbar.src = colorbarUrl;
    else colorbar.removeAttribute("src");
  }
  unsubscribe.push(onModel("title", updateTitle), onModel("_colorbar", updateColorbar));
  updateTitle();
  updateColorbar();
  loopMode.value = loop();
  updateSpeed();
  updateButtons();
  updateReadouts(performance.now(), target);
  usePoster();
  if (model.get("playing")) start(direction);
  else schedule();
  return () => {
    disposed = true;
    ratioQuery?.removeEventListener("change", onScaleChange);
    window.removeEventListener("resize", onScaleChange);
    if (rafId) cancelAnimationFrame(rafId);
    if (refreshId) cancelAnimationFrame(refreshId);
    clearTimeout(waitTimer);
    for (const off of unsubscribe) off();
    if (colorbarUrl) URL.revokeObjectURL(colorbarUrl);
    window.removeEventListener("keydown", onKey, true);
    cache.clear();
    decoded.clear();
    client.dispose();
  };
}
var player_default = { initialize, render };
export {
  player_default as default
};
