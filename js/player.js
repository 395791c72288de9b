// The Player's view: a canvas, controls, and the frame pipeline.
//
// The page is the clock. It asks the kernel for the frames playback will need
// (at most MAX_INFLIGHT requests out, so the kernel draws frame i+1 while the
// page decodes frame i), keeps what arrives in a byte-bounded cache of
// encoded frames (revisits cost the kernel nothing), decodes a few frames
// ahead, and paints on requestAnimationFrame at the target fps. See
// docs/player.md.

import { BridgeClient } from "./protocol.js";
import { FrameCache, FrameClock, ScreenCounter, framesToRequest, nextFrame, readPlainPng, stepTarget, upcomingFrames } from "./player-logic.js";

/** Requests out at once: enough to cover the round trip plus the kernel's batching hold ... */
const MAX_INFLIGHT = 16;
/** ... and at high fps, this much playback (s): the page asks in batches of half the window, so fewer,
 * bigger request messages. */
const INFLIGHT_SECONDS = 0.4;
/** On the comm each page message also costs the kernel a busy and an idle status message (which JupyterLab
 * repaints): a window twice as long there, so half as many request messages per second of playback. */
const INFLIGHT_SECONDS_COMM = 0.8;
/** Unthrottled, frames are short and the round trip is long: keep more out. */
const MAX_INFLIGHT_UNTHROTTLED = 32;
/** At most this many requests out on the comm (its window at 60 fps). */
const MAX_INFLIGHT_COMM = 48;
/** While playing, the page reports its counters (`player_stats`) this often (ms): with a batch of frame
 * requests when one leaves then, on its own after twice as long on the comm (a message of its own there
 * costs the kernel a busy and an idle status message). */
const STATS_EVERY_MS = 1000;
/** Frames decoded at once. */
const MAX_DECODING = 4;
/** Bytes of decoded frames kept ready to paint. */
const DECODED_BYTES = 48 << 20;
/** A frame this late (ms) shows the buffering indicator. */
const BUFFERING_AFTER_MS = 150;
/** While playing on the comm, the `frame` trait follows at most this often (ms): each sync is a message to
 * the kernel and three back (busy, the echo, idle). On the direct transport it does not follow while playing
 * (no Jupyter kernel message per frame or per second: `p.stats["page_frame"]` gives the frame painted, within
 * a second); stopping syncs at once on both paths. */
const SYNC_EVERY_MS = 1000;
/** While playing, the counter, slider and fps readout follow at most this often (ms). */
const READOUTS_EVERY_MS = 100;

/**
 * @typedef {{codec: string, width: number, height: number, bytes: Uint8Array}} EncodedFrame
 * @typedef {{width: number, height: number, indices: Uint8Array, palette: Uint32Array}} IndexedFrame
 * @typedef {ImageData | ImageBitmap | IndexedFrame} DecodedFrame
 */

const SVG = (/** @type {string} */ body) =>
  `<svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" focusable="false">${body}</svg>`;
const ICONS = {
  first: SVG('<rect x="2" y="3" width="2" height="10"/><path d="M14 3v10L5 8z"/>'),
  prev: SVG('<rect x="3" y="3" width="2" height="10"/><path d="M13 3v10L6 8z"/>'),
  reverse: SVG('<path d="M12 3v10L4 8z"/>'),
  pause: SVG('<rect x="4" y="3" width="3" height="10"/><rect x="9" y="3" width="3" height="10"/>'),
  play: SVG('<path d="M4 3v10l8-5z"/>'),
  next: SVG('<path d="M3 3v10l7-5z"/><rect x="11" y="3" width="2" height="10"/>'),
  last: SVG('<path d="M2 3v10l9-5z"/><rect x="12" y="3" width="2" height="10"/>'),
};
const SPEEDS = [0.25, 0.5, 1, 2, 4];

/**
 * @param {string} tag @param {Record<string, string>} [attrs] @param {string} [html]
 * @returns {HTMLElement}
 */
function make(tag, attrs = {}, html = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (html) node.innerHTML = html;
  return node;
}

/** @param {string} label @param {string} icon */
function button(label, icon) {
  return /** @type {HTMLButtonElement} */ (
    make("button", { type: "button", "aria-label": label, title: label, class: "ipb-button" }, icon)
  );
}

/** @param {any} view */
function bytesOf(view) {
  if (view instanceof Uint8Array) return view;
  if (ArrayBuffer.isView(view)) return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  return new Uint8Array(view);
}

/** @param {Uint8Array} bytes zlib-format data @returns {Promise<ArrayBuffer>} */
function inflate(bytes) {
  // A stream of the bytes themselves: a Blob would copy them to the browser process and back.
  const source = new ReadableStream({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
  return new Response(source.pipeThrough(new DecompressionStream("deflate"))).arrayBuffer();
}

/**
 * A colour-mapped frame (codecs.indexed): palette entries - 1, flags (bit 0: deflated), 2 spare
 * bytes, the RGBA palette, then one index per pixel. Its colours are looked up when it is painted
 * (lookUp), into one reused ImageData: no image decoder, no Blob, no 4-byte-per-pixel copy to keep.
 * @param {EncodedFrame} frame @returns {Promise<IndexedFrame>}
 */
async function decodeIndexed(frame) {
  const bytes = frame.bytes;
  const entries = bytes[0] + 1;
  const start = 4 + 4 * entries;
  const body = bytes.subarray(start);
  const indices = bytes[1] & 1 ? new Uint8Array(await inflate(body)) : body;
  const count = frame.width * frame.height;
  if (indices.length !== count) throw new Error(`${indices.length} pixel indices for a ${frame.width} x ${frame.height} frame`);
  const palette = new Uint32Array(256); // RGBA bytes in memory order, whatever the platform's endianness
  new Uint8Array(palette.buffer).set(bytes.subarray(4, start));
  return { width: frame.width, height: frame.height, indices, palette };
}

/** @param {IndexedFrame} frame @param {ImageData} into an ImageData of the frame's size */
function lookUp(frame, into) {
  const pixels = new Uint32Array(into.data.buffer, into.data.byteOffset, frame.width * frame.height);
  const { indices, palette } = frame;
  for (let i = 0; i < pixels.length; i++) pixels[i] = palette[indices[i]];
  return into;
}

/** @param {EncodedFrame} frame @returns {Promise<DecodedFrame>} */
async function decodeFrame(frame) {
  if (frame.codec === "indexed") return decodeIndexed(frame);
  if (frame.codec === "raw") {
    const pixels = new Uint8ClampedArray(await inflate(frame.bytes));
    return new ImageData(pixels, frame.width, frame.height);
  }
  const type = frame.codec === "png" ? "image/png" : "image/jpeg";
  return createImageBitmap(new Blob([/** @type {BlobPart} */ (frame.bytes)], { type }));
}

/**
 * An 8-bit RGBA PNG with filter 0 on every row and no colour chunks (as codecs.fast_png writes the
 * kernel's frames) decoded here, within the current task (see readPlainPng); null for any other PNG.
 * @param {Uint8Array} bytes @returns {Promise<ImageData> | null}
 */
function decodePlainPng(bytes) {
  const read = readPlainPng(bytes);
  return read && read.then(({ width, height, rgba }) => new ImageData(rgba, width, height));
}

/**
 * The poster, decoded for the first paint: a PNG the kernel wrote is inflated here (see
 * decodePlainPng), any other frame as usual; a PNG the page cannot read so goes to the browser.
 * @param {EncodedFrame} frame @returns {Promise<DecodedFrame>}
 */
function decodePoster(frame) {
  const plain = frame.codec === "png" ? decodePlainPng(frame.bytes) : null;
  return plain ? plain.catch(() => decodeFrame(frame)) : decodeFrame(frame);
}

/** @param {DecodedFrame} frame */
function decodedBytes(frame) {
  return "indices" in frame ? frame.indices.byteLength + 1024 : frame.width * frame.height * 4;
}

/** Device pixels per CSS pixel: frames are drawn at this scale, so the picture is crisp on HiDPI screens. */
const pageScale = () => Math.min(8, Math.max(0.25, window.devicePixelRatio || 1));

/**
 * The poster (the frame the kernel drew for the output's static picture, in the widget's state) as the
 * page's cache keeps a frame, or null when there is none or it does not fit a page at `scale`.
 * @param {any} model @param {number} scale
 * @returns {{poster: any, index: number, gen: number, encoded: EncodedFrame} | null}
 */
function posterOf(model, scale) {
  const poster = model.get("_poster");
  if (!poster || !poster.byteLength) return null;
  // A figure's poster is drawn at its dpi: a HiDPI page asks for its own, crisp, frame.
  if (scale !== 1 && !model.get("_poster_any_scale")) return null;
  const bytes = bytesOf(poster);
  const codec = String(model.get("_poster_codec") || "png");
  let width = 0;
  let height = 0;
  if (codec === "png") {
    if (bytes.byteLength < 24) return null;
    const header = new DataView(bytes.buffer, bytes.byteOffset, 24); // PNG signature, then IHDR: width, height
    width = header.getUint32(16);
    height = header.getUint32(20);
  } else {
    [width, height] = model.get("_poster_size") ?? [0, 0];
  }
  if (!(width > 0 && height > 0)) return null;
  return { poster, index: model.get("_poster_frame"), gen: model.get("_poster_gen") ?? 0, encoded: { codec, width, height, bytes } };
}

/**
 * Posters whose decoding began as they reached the model, before its view exists (the page is then
 * busy creating the output and the view: the image decoder works meanwhile), by the state's poster
 * object (anywidget hands each call its own proxy of the model). The first view takes it.
 * @type {WeakMap<object, {scale: number, frame: Promise<DecodedFrame>, image?: DecodedFrame}>}
 */
const earlyPosters = new WeakMap();

/** @param {object | null} poster */
function dropEarlyPoster(poster) {
  const early = poster && earlyPosters.get(poster);
  if (!poster || !early) return;
  earlyPosters.delete(poster);
  early.frame.then((f) => f instanceof ImageBitmap && f.close(), () => {});
}

/** anywidget calls this once per model, when the model is created. @param {{model: any}} ctx */
function initialize({ model }) {
  /** @type {object | null} */
  let current = null;
  const onPoster = () => {
    dropEarlyPoster(current);
    current = null;
    const scale = pageScale();
    const found = posterOf(model, scale);
    if (!found) return;
    /** @type {{scale: number, frame: Promise<DecodedFrame>, image?: DecodedFrame}} */
    const early = { scale, frame: decodePoster(found.encoded) };
    early.frame.then((image) => (early.image = image), () => {}); // the view decodes it again and shows the error
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

/** @param {string} text */
const stripAnsi = (text) => text.replace(/\u001b\[[0-9;]*m/g, "");

/** Keys a focused slider or select acts on itself. */
const CONTROL_KEYS = new Set([" ", "Enter", "ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End", "PageUp", "PageDown"]);

/** @param {{model: any, el: HTMLElement}} ctx */
function render({ model, el }) {
  el.classList.add("ipybridge-player");
  el.tabIndex = 0;

  // ------------------------------------------------------------------ DOM
  const stage = make("div", { class: "ipb-stage" });
  const canvas = /** @type {HTMLCanvasElement} */ (make("canvas", { "data-frame": "-1", class: "ipb-canvas" }));
  canvas.width = 0;
  canvas.height = 0;
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
  ctx.globalCompositeOperation = "copy";
  const buffering = make("div", { class: "ipb-buffering", role: "status", "aria-label": "Buffering", title: "Buffering" }, "<span></span>");
  buffering.hidden = true;
  const errorBox = make("div", { class: "ipb-error", role: "alert" });
  const errorText = make("pre", { class: "ipb-error-text" });
  const dismiss = button("Dismiss error", "&times;");
  errorBox.append(dismiss, errorText);
  errorBox.hidden = true;
  // Shown when the kernel restarts, dies or shuts down: nothing more can be drawn.
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
  const slider = /** @type {HTMLInputElement} */ (
    make("input", { type: "range", min: "0", step: "1", "aria-label": "Frame", title: "Frame", class: "ipb-slider" })
  );
  const counter = make("span", { "aria-label": "Frame counter", title: "Frame counter", class: "ipb-counter", role: "status" });
  const speed = /** @type {HTMLSelectElement} */ (make("select", { "aria-label": "Speed", title: "Speed", class: "ipb-select" }));
  const loopMode = /** @type {HTMLSelectElement} */ (make("select", { "aria-label": "Loop mode", title: "Loop mode", class: "ipb-select" }));
  for (const mode of ["loop", "once", "reflect"]) loopMode.append(new Option(mode, mode));
  const fpsReadout = make("span", { "aria-label": "Displayed fps", title: "Displayed fps", class: "ipb-fps" }, "0.0 fps");
  controls.append(first, prev, reverse, pause, play, next, last, slider, counter, speed, loopMode, fpsReadout);
  // An array's title (xarray: variable and units) and colour bar.
  const title = make("div", { class: "ipb-title", role: "heading", "aria-level": "3" });
  const colorbar = /** @type {HTMLImageElement} */ (make("img", { class: "ipb-colorbar", alt: "Colour bar", title: "Colour bar" }));
  const view = make("div", { class: "ipb-view" });
  view.append(stage, colorbar);
  el.replaceChildren(title, view, controls);

  // ---------------------------------------------------------------- state
  const client = new BridgeClient(model, { customTypes: ["frame", "frame_error"], onCustom });
  /** @type {FrameCache<EncodedFrame>} */
  const cache = new FrameCache(cacheBytes(), (f) => f.bytes.byteLength);
  /** @type {FrameCache<DecodedFrame>} */
  const decoded = new FrameCache(DECODED_BYTES, decodedBytes, (f) => {
    if (f instanceof ImageBitmap) f.close();
  });
  /** @type {Map<number, number>} request id -> frame index */
  const inflight = new Map();
  /** @type {Map<number, number>} frame index -> request id */
  const inflightByIndex = new Map();
  /** @type {Map<number, number>} request id -> the scale it asked for */
  const requestScale = new Map();
  /** @type {Set<number>} */
  const decoding = new Set();
  /** @type {Map<number, string>} frame index -> what the counter shows besides the index (xarray: the coordinate) */
  const labels = new Map();
  /** @type {Map<number, any>} frames whose drawing failed -> the Python error */
  const failed = new Map();
  /** Frames drawn vs displayed (at most one per display refresh): the fps readout and `stats`. */
  const screen = new ScreenCounter();
  const clock = new FrameClock(model.get("fps"));
  let nextRequestId = 1;
  let generation = model.get("_generation") ?? 0;
  let shown = -1; // index painted on the canvas
  let target = model.get("frame") ?? 0; // paused: the frame to show; playing: the next frame to paint
  let direction = model.get("direction") === -1 ? -1 : 1;
  let playing = false;
  let lateSince = 0;
  let lateWaiting = 0; // refreshes when the frame due had not arrived from the kernel
  let lateDecoding = 0; // ... had arrived and was being decoded
  let lastSync = 0;
  let lastStats = 0;
  let lastReadouts = 0;
  let pumpQueued = false;
  let rafId = 0;
  let refreshId = 0; // paused: the requestAnimationFrame that paints the frame to show
  let disposed = false;
  let ownChange = false; // model changes made by this view, not to be handled as Python's
  let scale = pageScale(); // device pixels per CSS pixel asked of the kernel
  let frameScale = 1; // device pixels per CSS pixel of the frames received (1 for a video's)
  let posterPending = false; // the poster is in the cache, not painted yet: no other frame asked for meanwhile

  /** The length learnt from the kernel before the `frames` trait arrives (a generator that ran out). */
  let learntLength = /** @type {number|null} */ (null);
  const frames = () => /** @type {number|null} */ (model.get("frames") ?? learntLength);
  const loop = () => /** @type {import("./player-logic.js").LoopMode} */ (model.get("loop") ?? "loop");
  const fps = () => Number(model.get("fps") ?? 30);

  function cacheBytes() {
    return Math.max(1, Number(model.get("cache_mb") ?? 128)) * (1 << 20);
  }

  function wireCodec() {
    const codec = model.get("codec") ?? "auto";
    // Without DecompressionStream (old browsers) raw frames cannot be decoded: ask for PNG.
    if ((codec === "raw" || codec === "auto") && typeof DecompressionStream === "undefined") return "png";
    return codec;
  }

  /** @param {Record<string, any>} changes */
  function setModel(changes) {
    if (client.closed) return; // no kernel to tell
    ownChange = true;
    try {
      for (const [key, value] of Object.entries(changes)) model.set(key, value);
      model.save_changes();
    } finally {
      ownChange = false;
    }
  }

  // -------------------------------------------------------------- network
  /** @param {number} index @param {boolean} urgent the frame to paint next: the kernel sends it at once */
  function request(index, urgent) {
    const id = nextRequestId++;
    inflight.set(id, index);
    inflightByIndex.set(index, id);
    requestScale.set(id, scale);
    const item = { type: "frame", id, index, gen: generation, codec: wireCodec(), quality: model.get("quality") ?? 85, scale };
    client._post(urgent ? { ...item, urgent } : item);
  }

  /** @param {Set<number>} keep indexes still wanted */
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

  /** @param {any} item @param {ArrayLike<ArrayBuffer|ArrayBufferView>} buffers */
  function onCustom(item, buffers) {
    if (disposed) return;
    const index = item.index;
    if (inflight.get(item.id) === index) {
      inflight.delete(item.id);
      inflightByIndex.delete(index);
    }
    const askedScale = requestScale.get(item.id);
    requestScale.delete(item.id);
    if (item.gen !== generation) return; // drawn before the cache was invalidated
    if (askedScale !== undefined && askedScale !== scale) return; // drawn for the screen before
    if (item.type === "frame") {
      if (typeof item.scale === "number" && item.scale > 0) frameScale = item.scale;
      cache.set(index, { codec: item.codec, width: item.width, height: item.height, bytes: bytesOf(buffers[item.b0 ?? 0]) });
      failed.delete(index);
      if (typeof item.label === "string") {
        if (labels.size >= 100000) labels.clear();
        labels.set(index, item.label);
      }
    } else if (item.type === "frame_error") {
      if (typeof item.length === "number" && index >= item.length && frames() === null) {
        // A generator ran out: the kernel learnt the length (the `frames` trait follows).
        learntLength = item.length;
        if (playing && target >= item.length && advance()) clock.start(performance.now() - clock.interval);
      } else {
        failed.set(index, item.error);
        if (index === target) fail(index, item.error);
      }
    }
    schedule();
  }

  /**
   * The frame the kernel drew for the output's static picture arrives with the widget's state:
   * put it in the cache, so the first paint needs neither a request nor a second draw. It was
   * usually decoded already, as it reached the model (initialize). Until it is painted no other
   * frame is asked for: the kernel would draw them while the page decodes and paints this one.
   */
  function usePoster() {
    const found = posterOf(model, scale);
    if (!found || found.index !== target || shown >= 0) return;
    if (found.gen !== generation || cache.has(found.index)) return;
    cache.set(found.index, found.encoded);
    const label = model.get("_poster_label");
    if (label) labels.set(found.index, String(label));
    posterPending = true;
    const early = earlyPosters.get(found.poster);
    if (early?.scale === scale) earlyPosters.delete(found.poster); // this view's now (it closes it when evicted)
    if (early?.scale === scale && early.image) {
      decoded.set(found.index, early.image);
      paintPoster(found.index);
    } else {
      startDecode(found.index, found.encoded, early?.scale === scale ? early.frame : decodePoster(found.encoded));
    }
    schedule();
  }

  /** The poster is here: paint it now, not at the next display refresh (it is the frame to show). @param {number} index */
  function paintPoster(index) {
    if (!posterPending || playing || disposed || index !== target || shown === target) return;
    paint(index);
    // The refresh that shows it counts it displayed (painted outside one, it would count as dropped).
    if (!refreshId) refreshId = requestAnimationFrame(onRefresh);
  }

  // -------------------------------------------------------------- pipeline
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

  /** The frames to have ready, most urgent first. */
  function wanted() {
    const count = playing ? 2 * inflightLimit() : 3;
    return upcomingFrames(target, direction, frames(), loop(), count);
  }

  function pump() {
    pumpQueued = false;
    if (disposed) return;
    if (pageScale() !== scale) onScaleChange(); // a change no media-query event reported
    const want = wanted();
    cancelUnwanted(new Set(want));
    /** @type {number[]} */
    const missing = [];
    for (const index of want) {
      if (failed.has(index)) break; // nothing past a broken frame
      if (decoded.has(index) || decoding.has(index)) continue;
      const encoded = cache.get(index);
      if (encoded) {
        if (decoding.size < MAX_DECODING * (playing && fps() <= 0 ? 2 : 1)) startDecode(index, encoded);
      } else if (!inflightByIndex.has(index)) {
        missing.push(index);
      }
    }
    // Paused on the poster: the neighbours are asked for once it is on screen.
    const holding = posterPending && !playing && !missing.includes(target);
    if (!client.closed && !holding) {
      const asked = framesToRequest(missing, inflight.size, inflightLimit(), playing, target);
      for (const index of asked) request(index, index === target);
      // The counters ride along with the requests (one message); see STATS_EVERY_MS.
      const now = performance.now();
      if (asked.length && playing && now - lastStats >= STATS_EVERY_MS) sendStats(now);
    }
    if (!playing && shown !== target && decoded.has(target) && !refreshId) refreshId = requestAnimationFrame(onRefresh);
    if (!playing && shown !== target) showBufferingIfStillWaiting();
  }

  /** Paused on a frame not here yet (a step, a seek): show the indicator if it is late. */
  let waitTimer = 0;
  function showBufferingIfStillWaiting() {
    if (waitTimer) return;
    waitTimer = window.setTimeout(() => {
      waitTimer = 0;
      if (!disposed && !playing && !client.closed && shown !== target && !failed.has(target)) buffering.hidden = false;
    }, BUFFERING_AFTER_MS);
  }

  /** @param {number} index @param {EncodedFrame} encoded @param {Promise<DecodedFrame>} [started] its decode, if begun */
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
      },
    );
  }

  let sizedAt = 1;
  /** @type {ImageData|null} the colours of the indexed frame painted last (reused) */
  let pixels = null;

  /** Frames for another screen's pixel ratio are of no more use: ask again at the new one. */
  function forgetFrames() {
    cancelUnwanted(new Set());
    cache.clear();
    decoded.clear();
    failed.clear();
    posterPending = false;
    if (!playing) shown = -1; // repaint the current frame
    schedule();
  }

  // Follow the page's devicePixelRatio (another screen, the browser's zoom): a media query for the
  // current ratio says when it stops matching; a resize and every pump check it too.
  /** @type {MediaQueryList|null} */
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

  /** @param {number} index */
  function paint(index) {
    const image = decoded.get(index);
    if (!image) return false;
    if (canvas.width !== image.width || canvas.height !== image.height || sizedAt !== frameScale) {
      canvas.width = image.width;
      canvas.height = image.height;
      // The picture keeps its size in CSS pixels; its device pixels are the frame's.
      canvas.style.width = frameScale === 1 ? "" : `${image.width / frameScale}px`;
      sizedAt = frameScale;
      ctx.globalCompositeOperation = "copy"; // resizing resets the context's state
    }
    if ("indices" in image) {
      if (!pixels || pixels.width !== image.width || pixels.height !== image.height) pixels = new ImageData(image.width, image.height);
      ctx.putImageData(lookUp(image, pixels), 0, 0);
    } else if (image instanceof ImageData) ctx.putImageData(image, 0, 0);
    else ctx.drawImage(image, 0, 0); // "copy": replaces the canvas, no blending, earlier draws dropped
    shown = index;
    canvas.dataset.frame = String(index);
    if (posterPending) {
      posterPending = false; // on screen: now the frames around it
      schedule();
    }
    const now = performance.now();
    screen.drew(now);
    lateSince = 0;
    buffering.hidden = true;
    // Playing, each readout change costs a style and layout pass of the whole page.
    if (!playing || now - lastReadouts >= READOUTS_EVERY_MS) updateReadouts(now);
    if (!playing || (now - lastSync >= SYNC_EVERY_MS && client.transport !== "direct")) {
      lastSync = now;
      if (model.get("frame") !== index) setModel({ frame: index });
    }
    if (playing && now - lastStats >= STATS_EVERY_MS * (client.transport === "direct" ? 1 : 2)) sendStats(now);
    return true;
  }

  /** Advance `target` past the frame just painted; false when playback ends. */
  function advance() {
    const after = nextFrame(shown, direction, frames(), loop());
    if (!after) {
      stop();
      return false;
    }
    if (after.direction !== direction) {
      direction = after.direction; // reflect mode turns at the ends
      if (client.transport !== "direct") setModel({ direction }); // on the direct path: when it stops
    }
    target = after.index;
    return true;
  }

  /**
   * Paused: paint the frame to show at the next display refresh, when it would become visible
   * anyway; steps and seeks faster than the display then never draw a frame nobody sees.
   * @param {number} now
   */
  function onRefresh(now) {
    refreshId = 0;
    if (disposed) return;
    if (!playing && shown !== target && decoded.has(target)) paint(target);
    screen.refresh(now);
  }

  /**
   * One display refresh while playing: paint the next frame when it is due and here. At most one
   * frame per refresh, also unthrottled (fps 0: every refresh whose frame has arrived), since a
   * second draw before the refresh would replace the first unseen.
   * @param {number} now
   */
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
        fail(target, failed.get(target)); // the kernel could not draw the next frame
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

  // ------------------------------------------------------------- playback
  /** @param {number} dir */
  function start(dir) {
    if (client.closed) return; // the kernel is gone: the overlay says so
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
        target = dir === 1 ? 0 : total - 1; // played to the end: start over
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
    const changes = /** @type {Record<string, any>} */ ({});
    if (model.get("playing")) changes.playing = false;
    if (shown >= 0 && model.get("frame") !== shown) changes.frame = shown;
    if (model.get("direction") !== direction) changes.direction = direction;
    if (Object.keys(changes).length) setModel(changes);
    updateButtons();
    updateReadouts(performance.now());
    sendStats(performance.now());
    schedule();
  }

  /** @param {number} index */
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

  /** @param {number} n */
  function step(n) {
    const from = shown >= 0 ? shown : target;
    if (playing) stop();
    seek(stepTarget(from, n, frames(), loop()));
  }

  /** @param {number} index @param {any} error */
  function fail(index, error) {
    if (playing) stop();
    const header = `Frame ${index}: ${error?.ename ?? "Error"}: ${error?.evalue ?? ""}`;
    const trace = (error?.traceback ?? []).map((/** @type {string} */ line) => stripAnsi(String(line))).join("\n");
    errorText.textContent = trace ? `${header}\n\n${trace}` : header;
    errorBox.hidden = false;
    buffering.hidden = true;
  }

  function hideError() {
    errorBox.hidden = true;
  }

  // ------------------------------------------------------------- readouts
  /** @param {number} now @param {number} [index] */
  function updateReadouts(now, index = shown) {
    lastReadouts = now;
    const total = frames();
    const max = total !== null ? Math.max(total - 1, 0) : Math.max(99, Math.ceil((Math.max(index, 0) + 1) * 1.5));
    slider.max = String(max);
    if (document.activeElement !== slider || playing) slider.value = String(Math.max(index, 0));
    const position = `${Math.max(index, 0)} / ${total !== null ? Math.max(total - 1, 0) : "∞"}`;
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
      const option = new Option(`${factor}×`, String(base * factor));
      if (Math.abs(base * factor - current) < 1e-9) (option.selected = true), (matched = true);
      speed.append(option);
    }
    const max = new Option("max", "0");
    if (current <= 0) (max.selected = true), (matched = true);
    speed.append(max);
    if (!matched) {
      const custom = new Option(`${+current.toFixed(2)} fps`, String(current));
      custom.selected = true;
      speed.append(custom);
    }
  }

  /** @param {number} now */
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
      seq: model.get("_frame_seq") ?? 0, // the kernel follows `frame` only from reports made after its last seek
    };
    // Over the direct transport `frame` is not synced while playing; the model's copy follows the painted
    // frame here, locally (the kernel's follows it from this report), so that Python setting `frame` to the
    // value the model had at Play (p.frame = 0: restart) is still a change here, and seeks.
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

  // -------------------------------------------------------------- wiring
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

  // Keys pressed inside the player are the player's, the rest stay Jupyter's
  // (Shift+Enter runs the cell, Ctrl+S saves). Jupyter's shortcut handler
  // listens on the document, in the capture phase in Notebook 7, so the player
  // listens earlier, on the window in the capture phase, and stops there the
  // keys it owns; their default action (a button's press, a slider's step)
  // still happens unless the player acted on the key itself.
  /** @param {KeyboardEvent} event */
  const onKey = (event) => {
    const target = event.target;
    if (!(target instanceof Node) || !el.contains(target)) return;
    if (event.ctrlKey || event.metaKey || event.altKey || event.shiftKey) return;
    const onControl = target instanceof HTMLSelectElement || target === slider;
    const onButton = target instanceof HTMLButtonElement;
    const native = (onControl && CONTROL_KEYS.has(event.key)) || (onButton && (event.key === " " || event.key === "Enter"));
    let handled = !native;
    if (native) {
      // the focused control's own key: let the browser do it, keep it from Jupyter
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
  // A click on the picture gives the player the keyboard.
  stage.addEventListener("mousedown", () => el.focus());

  /** @param {string} name @param {() => void} fn */
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
    ...["codec", "quality", "_generation"].map((name) =>
      onModel(name, () => {
        generation = model.get("_generation") ?? 0;
        labels.clear();
        forgetFrames(); // and repaint the current frame in the new encoding
      }),
    ),
  ];
  // Frame requests in flight on a direct connection that dropped may be lost with it: ask again.
  // Cancelled first (over the comm, before the new requests): the kernel drops those it has not drawn
  // yet instead of drawing them twice.
  client.onTransportChange(() => {
    cancelUnwanted(new Set());
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
    const bytes = png ? bytesOf(png) : new Uint8Array(0);
    if (bytes.byteLength) colorbarUrl = URL.createObjectURL(new Blob([/** @type {BlobPart} */ (bytes)], { type: "image/png" }));
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

export default { initialize, render };
