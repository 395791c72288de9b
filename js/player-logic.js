// The Player's pure logic: frame order under the loop modes, which frames to
// fetch next, the byte-bounded frame cache, the displayed-fps meter and the
// reader of the kernel's own PNGs.
// No DOM, no kernel: node tests drive these directly (tests/js/player.test.mjs).

/** @typedef {"loop"|"once"|"reflect"} LoopMode */

/**
 * The frame after `index` when playing in `direction`, or null when playback
 * stops there ("once" at an end, index 0 going back, or no frames).
 * In "reflect" mode the direction flips at the ends.
 * @param {number} index @param {number} direction 1 or -1
 * @param {number|null} frames null: endless @param {LoopMode} loop
 * @returns {{index: number, direction: number} | null}
 */
export function nextFrame(index, direction, frames, loop) {
  const next = index + direction;
  if (frames === null || frames === undefined) return next < 0 ? null : { index: next, direction };
  if (frames <= 0) return null;
  if (next >= 0 && next < frames) return { index: next, direction };
  if (loop === "loop") return { index: ((next % frames) + frames) % frames, direction };
  if (loop === "reflect") {
    if (frames === 1) return null;
    const back = -direction;
    return { index: index + back, direction: back };
  }
  return null;
}

/**
 * The frames playback will need, in order: `start` itself, then up to
 * `count - 1` more following the loop mode. No index twice.
 * @param {number} start @param {number} direction @param {number|null} frames
 * @param {LoopMode} loop @param {number} count
 * @returns {number[]}
 */
export function upcomingFrames(start, direction, frames, loop, count) {
  /** @type {number[]} */
  const out = [];
  if (start < 0 || (frames !== null && frames !== undefined && start >= frames)) return [start];
  const states = new Set();
  const listed = new Set();
  let position = { index: start, direction };
  // A state is (index, direction): reflect mode revisits indexes the other way.
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

/**
 * Which of the missing frames to ask the kernel for now. A page message costs
 * the kernel, the server and the browser a few ms whatever it carries (and
 * makes the kernel publish a busy and an idle status), so while frames are on
 * their way and playing, ask only when a batch of requests is free (half the
 * window); ask at once when the frame to paint next is missing, when nothing
 * is in flight, or when paused (a seek).
 * @param {number[]} missing frames neither cached nor asked for, most urgent first
 * @param {number} inflight requests out @param {number} limit requests allowed out
 * @param {boolean} playing @param {number} target the frame to paint next
 * @returns {number[]}
 */
export function framesToRequest(missing, inflight, limit, playing, target) {
  const wanted = missing.slice(0, Math.max(0, limit - inflight));
  if (!wanted.length) return [];
  const batch = playing ? Math.max(1, Math.floor(limit / 2)) : 1;
  return wanted[0] === target || wanted.length >= batch || inflight === 0 ? wanted : [];
}

/**
 * Where a step of `n` frames from `index` lands: wraps in "loop" mode, stops
 * at the ends otherwise (and at 0 for endless animations).
 * @param {number} index @param {number} n @param {number|null} frames @param {LoopMode} loop
 */
export function stepTarget(index, n, frames, loop) {
  const target = index + n;
  if (frames === null || frames === undefined) return Math.max(0, target);
  if (frames <= 0) return 0;
  if (loop === "loop") return ((target % frames) + frames) % frames;
  return Math.min(Math.max(target, 0), frames - 1);
}

/**
 * @template V
 * A least-recently-used map bounded by the total size of its values.
 */
export class FrameCache {
  /** @param {number} maxBytes @param {(value: V) => number} sizeOf @param {(value: V) => void} [onEvict] */
  constructor(maxBytes, sizeOf, onEvict) {
    this.maxBytes = maxBytes;
    this.sizeOf = sizeOf;
    this.onEvict = onEvict;
    /** @type {Map<number, V>} */
    this._map = new Map();
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
    if (value === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this._map.delete(key); // re-insert: most recently used last
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
    if (old === undefined) return false;
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
}

/**
 * Events (frames) per second: the count over the last `windowMs` once the meter has run that long
 * (frames that came in bursts or stalls count as they happened), before that the mean interval.
 */
export class FpsMeter {
  /** @param {number} [windowMs] */
  constructor(windowMs = 1000) {
    this.windowMs = windowMs;
    /** @type {number[]} */
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
    if (now - this._since >= this.windowMs) return (times.length * 1000) / this.windowMs;
    return ((times.length - 1) * 1000) / Math.max(times[times.length - 1] - times[0], 1);
  }

  reset() {
    this._times = [];
    this._since = -1;
  }
}

/**
 * What reached the screen. A canvas shows the last thing drawn on it before a display refresh:
 * draws between two refreshes replace each other, and only the last is displayed.
 * Call `drew(now)` after each draw and `refresh(now)` once per display refresh (at the end of
 * the one requestAnimationFrame callback that may draw in it). (Not told apart by timestamp:
 * under load, headless Chromium was seen to give two refreshes the same one.)
 */
export class ScreenCounter {
  /** @param {number} [windowMs] */
  constructor(windowMs = 1000) {
    /** Frames drawn on the canvas. */
    this.drawn = 0;
    /** Refreshes that showed a newly drawn frame: at most one per refresh. */
    this.displayed = 0;
    /** Frames drawn and replaced by a later draw before a refresh showed them. */
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
}

/**
 * Playback clock at `fps`: `due(now)` says whether the next frame should be
 * painted now; after painting call `advance(now)`. Late frames do not make
 * the clock burst to catch up.
 */
export class FrameClock {
  /** @param {number} fps */
  constructor(fps) {
    this.fps = fps;
    this.next = 0;
  }

  get interval() {
    return this.fps > 0 ? 1000 / this.fps : 0;
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
}

/**
 * Inflate zlib-format `bytes` with DecompressionStream, read through a stream reader: the data is
 * there from the start, so this finishes in microtasks of the current task (no task of its own to
 * wait for behind a busy page's other work, as an image decoder's answer does).
 * @param {Uint8Array} bytes @param {number} expected the inflated size @returns {Promise<Uint8Array>}
 */
export async function inflateHere(bytes, expected) {
  const stream = new DecompressionStream("deflate");
  const writer = stream.writable.getWriter();
  writer.write(/** @type {any} */ (bytes)).catch(() => {}); // a failure rejects the read below
  writer.close().catch(() => {});
  const reader = stream.readable.getReader();
  const out = new Uint8Array(expected);
  let at = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (at + value.byteLength > expected) {
      reader.cancel().catch(() => {});
      throw new Error("more pixel data than the PNG's size");
    }
    out.set(value, at);
    at += value.byteLength;
  }
  if (at !== expected) throw new Error(`${at} bytes of pixel data for ${expected}`);
  return out;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * The pixels of an 8-bit RGBA PNG with filter 0 ("none") on every row, no interlace and no chunk
 * but IHDR, IDAT and IEND: what codecs.fast_png writes, whose pixels are its deflated rows. Null
 * for any other PNG (another colour type or bit depth, colour chunks such as gAMA or iCCP that a
 * browser's decoder applies, a malformed file): the browser's decoder is for those. The promise
 * rejects when the pixel data is not what the header says (or a row uses another filter).
 * @param {Uint8Array} bytes
 * @returns {Promise<{width: number, height: number, rgba: Uint8ClampedArray<ArrayBuffer>}> | null}
 */
export function readPlainPng(bytes) {
  if (typeof DecompressionStream === "undefined" || bytes.byteLength < 45) return null;
  if (PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = (/** @type {number} */ at) => String.fromCharCode(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
  if (view.getUint32(8) !== 13 || type(12) !== "IHDR") return null;
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  // 8 bits, RGBA, deflate, filter method 0, no interlace
  if (bytes[24] !== 8 || bytes[25] !== 6 || bytes[26] || bytes[27] || bytes[28] || !width || !height) return null;
  if (width * height > 1 << 28) return null;
  /** @type {Uint8Array[]} */
  const data = [];
  let at = 33;
  for (;;) {
    if (at + 12 > bytes.byteLength) return null;
    const length = view.getUint32(at);
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
