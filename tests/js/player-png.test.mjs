// The page's reader of the kernel's own PNGs (codecs.fast_png: 8-bit RGBA, filter 0 on every row),
// which paints a Player's first frame without the browser's image decoder; any other PNG is left to it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import { readPlainPng } from "../../js/player-logic.js";

/** @param {string} name @param {Uint8Array} data */
function chunk(name, data) {
  const out = new Uint8Array(12 + data.byteLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.byteLength);
  out.set(Buffer.from(name, "latin1"), 4);
  out.set(data, 8);
  view.setUint32(8 + data.byteLength, 0); // CRC: not read (the bytes come over the widget's own channel)
  return out;
}

/** As codecs.fast_png writes it, with options to make the PNGs the reader must leave alone. */
function png(width, height, rgba, { filter = () => 0, colour = 6, depth = 8, interlace = 0, extra = [], idats = 1 } = {}) {
  const stride = width * 4;
  const rows = new Uint8Array(height * (stride + 1));
  for (let y = 0; y < height; y++) {
    rows[y * (stride + 1)] = filter(y);
    rows.set(rgba.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([depth, colour, 0, 0, interlace], 8);
  const deflated = new Uint8Array(deflateSync(rows, { level: 1 }));
  const size = Math.ceil(deflated.byteLength / idats);
  const parts = [];
  for (let at = 0; at < deflated.byteLength; at += size) parts.push(chunk("IDAT", deflated.subarray(at, at + size)));
  const all = [new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", header), ...extra, ...parts, chunk("IEND", new Uint8Array(0))];
  const out = new Uint8Array(all.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of all) (out.set(c, at), (at += c.byteLength));
  return out;
}

const W = 7;
const H = 5;
const PIXELS = Uint8Array.from({ length: W * H * 4 }, (_, i) => (i * 37 + (i >> 2) * 11) & 255);

test("readPlainPng returns the pixels of the kernel's PNGs, also split over several IDAT chunks", async () => {
  for (const idats of [1, 3]) {
    const read = readPlainPng(png(W, H, PIXELS, { idats }));
    assert.ok(read, `idats=${idats}`);
    const { width, height, rgba } = await read;
    assert.deepEqual([width, height], [W, H]);
    assert.ok(rgba instanceof Uint8ClampedArray);
    assert.deepEqual(Array.from(rgba), Array.from(PIXELS));
  }
});

test("readPlainPng leaves other PNGs to the browser's decoder (null)", () => {
  const gamma = chunk("gAMA", new Uint8Array([0, 0, 0xb1, 0x8f]));
  const cases = {
    rgb: png(W, H, PIXELS, { colour: 2 }),
    palette: png(W, H, PIXELS, { colour: 3 }),
    sixteen_bit: png(W, H, PIXELS, { depth: 16 }),
    interlaced: png(W, H, PIXELS, { interlace: 1 }),
    gamma_chunk: png(W, H, PIXELS, { extra: [gamma] }),
    no_signature: png(W, H, PIXELS).subarray(1),
    truncated: png(W, H, PIXELS).subarray(0, 60),
    empty: new Uint8Array(0),
  };
  for (const [name, bytes] of Object.entries(cases)) assert.equal(readPlainPng(bytes), null, name);
});

test("readPlainPng rejects pixel data that is not what the header says", async () => {
  await assert.rejects(readPlainPng(png(W, H, PIXELS, { filter: (y) => (y === 3 ? 1 : 0) })), /row 3 uses filter 1/);
  const short = png(W, H, PIXELS);
  new DataView(short.buffer).setUint32(20, H + 1); // one row more than the data holds
  await assert.rejects(readPlainPng(short), /bytes of pixel data/);
  const long = png(W, H, PIXELS);
  new DataView(long.buffer).setUint32(20, H - 1);
  await assert.rejects(readPlainPng(long), /more pixel data/);
  const corrupt = png(W, H, PIXELS);
  corrupt[33 + 8 + 4] ^= 0xff; // inside the deflate stream
  await assert.rejects(readPlainPng(corrupt));
});
