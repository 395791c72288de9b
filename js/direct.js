// The page's half of the direct transport (docs/protocol.md, "Direct transport"):
// the same envelopes over a websocket to the kernel's own endpoint, reached
// through the Jupyter server's relay (ipybridge.server) or on the loopback
// interface. The comm stays the control channel and the fallback.
// No DOM here: node tests drive it with a fake model and a fake WebSocket.

/** How long one way of connecting may take before the next is tried (ms). */
export const CONNECT_MS = 3000;

/**
 * Messages to the kernel at least this big go to the socket as a Blob: Chromium hands a Blob to the
 * network several times faster than an ArrayBuffer of the same size (issue 14: 64 MB in 8 MiB messages,
 * ~30 MB/s as ArrayBuffers, ~150 MB/s as Blobs), and the Blob takes the bytes in one copy, straight from
 * the caller's arrays. Smaller messages stay ArrayBuffers: a Blob is read asynchronously before it is sent.
 */
export const BLOB_BYTES = 1 << 20;

/**
 * One buffer of a message: a view, or the views it is made of, back to back (a `part`'s slice of a
 * message may span the JSON text and several buffers: it is sent without joining them first).
 * @typedef {ArrayBufferView | ArrayBufferView[]} Piece
 */

/** @param {Piece} b @returns {Uint8Array[]} */
function viewsOf(b) {
  const list = Array.isArray(b) ? b : [b];
  return list.map((v) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The head (u32 LE length of a JSON `[envelope, sizes]` header, then the header) and the buffers' bytes of
 * one websocket message, not joined.
 * @param {any} content @param {Piece[]} buffers @returns {{head: Uint8Array, views: Uint8Array[], total: number}}
 */
export function frameParts(content, buffers) {
  const groups = buffers.map(viewsOf);
  const sizes = groups.map((g) => g.reduce((n, v) => n + v.byteLength, 0));
  const json = encoder.encode(JSON.stringify([content, sizes]));
  const head = new Uint8Array(4 + json.byteLength);
  setLength(head, json.byteLength);
  head.set(json, 4);
  const views = groups.flat();
  return { head, views, total: sizes.reduce((a, b) => a + b, head.byteLength) };
}

/** Write the header length `n` as u32 LE at the start of `bytes`. @param {Uint8Array} bytes @param {number} n */
function setLength(bytes, n) {
  bytes[0] = n & 0xff;
  bytes[1] = (n >>> 8) & 0xff;
  bytes[2] = (n >>> 16) & 0xff;
  bytes[3] = (n >>> 24) & 0xff;
}

/**
 * What `ws.send` gets for one envelope given as its items' JSON texts (exactly `frame({ipb: 1, msgs}, buffers)`
 * for the items those texts are): the header is written straight into the message, no object is serialized
 * again, and a small message is one allocation.
 * @param {string[]} texts the items' JSON @param {number} textBytes their UTF-8 bytes, added up
 * @param {Uint8Array[]} buffers @returns {Uint8Array|Blob}
 */
export function frameTexts(texts, textBytes, buffers) {
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
    return new Blob(/** @type {BlobPart[]} */ (/** @type {unknown} */ ([length, head, ...buffers])));
  }
  const out = new Uint8Array(total);
  const { read, written } = encoder.encodeInto(header, out.subarray(4, 4 + headBytes));
  if (read !== header.length || written !== headBytes) {
    // The byte count given was not the header's (it cannot be for JSON text): pack it the long way.
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

/**
 * One websocket message: u32 LE length of a JSON `[envelope, sizes]` header, the header, the buffers.
 * @param {any} content @param {Piece[]} buffers @returns {Uint8Array}
 */
export function pack(content, buffers) {
  return joined(frameParts(content, buffers));
}

/** @param {{head: Uint8Array, views: Uint8Array[], total: number}} parts @returns {Uint8Array} */
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

/**
 * What `ws.send` gets for one message: `pack`'s bytes, or the same bytes as a Blob from `BLOB_BYTES` on.
 * @param {any} content @param {Piece[]} buffers @returns {Uint8Array|Blob}
 */
export function frame(content, buffers) {
  const parts = frameParts(content, buffers);
  if (parts.total < BLOB_BYTES || typeof Blob !== "function") return joined(parts);
  return new Blob(/** @type {BlobPart[]} */ (/** @type {unknown} */ ([parts.head, ...parts.views])));
}

/**
 * The envelope of a text message (the kernel sends a message without buffers as its envelope's JSON).
 * @param {string} data @returns {{content: any, buffers: DataView[]}}
 */
export function unpackText(data) {
  const content = JSON.parse(data);
  if (content === null || typeof content !== "object" || !Array.isArray(content.msgs)) {
    throw new Error("a text message must be an envelope {ipb, msgs}");
  }
  return { content, buffers: [] };
}

/**
 * The envelope and buffers (views into `data`, no copy) of one websocket message. A message whose buffers
 * are to be fetched (a header `[envelope, sizes, key]` and nothing after it) has `buffers: null`, `fetch`
 * (the key) and `sizes`.
 * @param {ArrayBuffer} data
 * @returns {{content: any, buffers: DataView[]|null, fetch?: string, sizes?: number[]}}
 */
export function unpack(data) {
  const length = data.byteLength;
  if (length < 4) throw new Error("a direct message needs a 4-byte header length");
  const bytes = new Uint8Array(data, 0, 4);
  const headBytes = (bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (bytes[3] << 24)) >>> 0;
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
  /** @type {DataView[]} */
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

/**
 * The buffers of a fetched body: each starts at a multiple of 8 bytes (so a float64 array is viewed in place).
 * @param {ArrayBuffer} body @param {number[]} sizes @returns {DataView[]}
 */
export function bulkBuffers(body, sizes) {
  /** @type {DataView[]} */
  const buffers = [];
  let offset = 0;
  for (const n of sizes) {
    offset += (8 - (offset % 8)) % 8;
    if (offset + n > body.byteLength) throw new Error("the fetched body is shorter than its buffers");
    buffers.push(new DataView(body, offset, n));
    offset += n;
  }
  if (offset !== body.byteLength) throw new Error("the fetched body is longer than its buffers");
  return buffers;
}

/**
 * @typedef {{port: number, token: string, widget: string, routes: string[]}} Offer
 * @typedef {{route: string, url: string}} Way
 */

/**
 * The ways to reach the kernel's endpoint, best first: the loopback interface when the page is served from
 * this machine (the fastest: no hop through the Jupyter server), then the server's relay (same origin;
 * remote browsers, JupyterHub).
 * The loopback route is tried only from a page served on a loopback address: elsewhere 127.0.0.1 is the
 * browser's own machine, not the kernel's (and the kernel refuses other origins anyway).
 * @param {Offer} offer @param {any} kernel the widget manager's kernel connection, if any
 * @param {string|undefined} pageHost the page's hostname (`location.hostname`)
 * @returns {Way[]}
 */
export function waysToConnect(offer, kernel, pageHost = globalThis.location?.hostname) {
  /** @type {Way[]} */
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

/** @param {string|undefined} host a URL's hostname; undefined outside a browser (tests) */
export function isLoopbackHost(host) {
  if (host === undefined) return true;
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h.endsWith(".localhost") || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * Hex HMAC-SHA256 of `nonce` keyed with `secret` (what the kernel checks on the loopback route).
 * @param {string} secret @param {string} nonce @returns {Promise<string>}
 */
export async function proofOf(secret, nonce) {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new Error("no WebCrypto (not a secure context)");
  const enc = new TextEncoder();
  const key = await subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await subtle.sign("HMAC", key, enc.encode(nonce)));
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class DirectLink {
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
    /** @type {string|null} where big buffers are fetched (the loopback route only), with a message's key after it */
    this.bulkUrl = null;
    /** @type {{content: any, buffers: DataView[]|null, fetch?: string, sizes?: number[]}[]} messages from the socket waiting for an earlier one's fetch */
    this.inbox = [];
    this.draining = false;
    /** @type {any} */
    this.ws = null;
    /** Page -> kernel messages go over the websocket. */
    this.ready = false;
    /** The websocket was used and then lost: the comm carries everything again, for good. */
    this.lost = false;
    this.stopped = false;
    /** The comm said (a `transport` item, in kernel order) that this view's messages now come directly. */
    this.commSaysDirect = false;
    /** @type {{content: any, buffers: DataView[]}[]} direct messages held until the comm says so */
    this.held = [];
    /** @type {string|null} "relay" or "loopback" once connected */
    this.route = null;
    /** @type {any} the kernel's number for the connection in use (named in this view's `transport` items) */
    this.conn = null;
    /** The number (`n`) of the last output or event item read on the socket; the kernel sends those after
     * it again over the comm when the connection drops (`resent`). */
    this.lastN = 0;
    /** @type {Set<number>} ids of call_js calls this view has started */
    this.callsSeen = new Set();
    /** Replies to call_js sent while on the direct path (the last 64): re-sent if the call comes again. @type {Map<number, any>} */
    this.replies = new Map();
    /** @type {{route: string, error: string}[]} what failed, for debugging */
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
      /** @type {any} */
      let ws;
      const fail = (/** @type {string} */ why) => {
        clearTimeout(timer);
        this.failures.push({ route: way.route, error: why });
        if (ws) {
          ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
          try {
            ws.close();
          } catch {
            // already closed
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
      ws.onmessage = (/** @type {{data: any}} */ event) => {
        if (!greeted) {
          // The endpoint's nonce: the page answers with a proof of the secret, not the secret (on the
          // loopback route, whatever listens on that port may not be the kernel).
          greeted = true;
          const { token, widget } = this.offer;
          const hello = { ipb: 1, widget, view: this.client.viewId };
          let nonce = null;
          try {
            nonce = JSON.parse(event.data).nonce;
          } catch {
            // not our endpoint
          }
          if (typeof nonce !== "string") return fail("no nonce");
          proofOf(token, nonce).then(
            (proof) => ws.readyState === 1 && ws.send(JSON.stringify({ ...hello, proof })),
            // No WebCrypto (a page of another machine over plain http): the relay route, to the page's own
            // server, may carry the secret itself; the loopback route never does.
            () => (way.route === "loopback" ? fail("no proof") : ws.send(JSON.stringify({ ...hello, token }))),
          );
          return;
        }
        /** @type {any} */
        let item = null;
        try {
          item = unpack(event.data).content?.msgs?.[0];
        } catch {
          // not our endpoint
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
    if (ws.readyState !== 1) return; // closed meanwhile: never used, this view stays on the comm
    this.ws = ws;
    this.route = way.route;
    this.conn = conn;
    const fetches = way.route === "loopback" && typeof this.fetch === "function";
    this.bulkUrl = fetches ? way.url.replace(/^ws/, "http") + "/bulk/" : null;
    ws.onmessage = (/** @type {{data: any}} */ event) => this._fromDirect(event.data);
    ws.onclose = () => this._lose();
    ws.onerror = () => this._lose();
    try {
      const use = { type: "transport", view: this.client.viewId, transport: "direct", ...(fetches ? { fetch: true } : {}) };
      ws.send(pack({ ipb: 1, msgs: [use] }, []));
    } catch {
      return; // closed meanwhile: its onclose keeps this view on the comm
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
      // No buffers: a text message, the envelope's JSON (the browser encodes it; no length header, no copy).
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
      // Its buffers are fetched (or an earlier message's are): later messages wait, in order.
      this.inbox.push(message);
      this._drain();
      return;
    }
    this._take(/** @type {{content: any, buffers: DataView[]}} */ (message));
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
            // The endpoint is gone or refuses: like a lost connection (what it carried is asked for again).
            this.failures.push({ route: this.route ?? "", error: `fetch: ${error}` });
            this._lose();
            return;
          }
          if (!this.ready || this.inbox[0] !== message) return; // lost meanwhile: the comm carries everything
        }
        this.inbox.shift();
        this._take(/** @type {{content: any, buffers: DataView[]}} */ (message));
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
    /** @type {any[]} */
    let batch = [];
    for (const item of msgs) {
      if (item?.type === "transport" && item.view === this.client.viewId) {
        if (this.conn === null || item.conn !== this.conn) continue; // a connection this view does not use
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
        // Sent on the connection that dropped, again: only those the socket did not deliver.
        if (item.resent !== this.conn || item.view !== this.client.viewId || !(item.n > this.lastN)) continue;
        this._noteNumber(item.n);
      }
      if (this.commSaysDirect && item?.view == null) continue;
      if (item?.type === "call" && item.view === this.client.viewId && this.callsSeen.has(item.id)) {
        // Sent again after a drop: it ran once already. Its reply may have been lost with the socket,
        // so send that again (the kernel ignores a second one); a call still running replies later.
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
    if (this.callsSeen.size > 1024 && oldest !== undefined) this.callsSeen.delete(oldest);
  }

  /** Keep a reply sent on the direct path until 64 newer ones were sent. @param {any} reply */
  noteReply(reply) {
    if (!this.ready) return;
    this.replies.set(reply.id, reply);
    const oldest = this.replies.keys().next().value;
    if (this.replies.size > 64 && oldest !== undefined) this.replies.delete(oldest);
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
    this.inbox = []; // not delivered: their answers are asked for again below
    const ws = this.ws;
    ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close();
    } catch {
      // already closed
    }
    if (this.stopped || this.client.closed) return;
    const view = this.client.viewId;
    this.client.model.send({ ipb: 1, msgs: [], direct: "lost", view, conn: this.conn });
    /** @type {Set<any>} answers already here, held until the comm's `transport: direct` item */
    const arrived = new Set();
    for (const m of this.held) {
      for (const item of m.content.msgs) {
        if ((item?.type === "result" || item?.type === "error") && item.view === view) arrived.add(item.id);
      }
    }
    for (const [id, pending] of this.client._pending) {
      if (arrived.has(id)) continue;
      this.client._post(pending.item, (/** @type {Error} */ error) => this.client._settle(id, error));
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
        // already closed
      }
    }
  }
}
