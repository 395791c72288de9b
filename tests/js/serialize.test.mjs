// The page half of the wire format against the same examples as the Python half.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { decode, encode } from "../../js/serialize.js";

const { examples, invalid } = JSON.parse(readFileSync(new URL("../shared/wire_examples.json", import.meta.url), "utf8"));
const fromHex = (hex) => new Uint8Array((hex.match(/../g) ?? []).map((b) => parseInt(b, 16)));
const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** The language-neutral description used in wire_examples.json. */
function describe(value) {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "bigint") return { int: value.toString() };
  if (typeof value === "number") {
    if (Number.isNaN(value)) return { float: "nan" };
    if (!Number.isFinite(value)) return { float: value > 0 ? "inf" : "-inf" };
    if (Object.is(value, -0)) return { float: "-0" };
    return value;
  }
  if (value instanceof Uint8Array) return { bytes: toHex(value) };
  if (Array.isArray(value)) return value.map(describe);
  if (ArrayBuffer.isView(value.data)) {
    return { ndarray: { dtype: value.dtype, shape: value.shape, values: Array.from(value.data, String) } };
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, describe(v)]));
}

function expected(example) {
  const e = example.expect;
  if ("json" in e) return e.json;
  if ("json_with" in e) return e.json_with;
  return e;
}

for (const example of examples) {
  test(`shared example: ${example.name}`, () => {
    const value = decode(example.tree, example.buffers.map(fromHex));
    assert.deepEqual(describe(value), expected(example));
    const buffers = [];
    assert.deepEqual(encode(value, buffers), example.tree);
    assert.deepEqual(buffers.map(toHex), example.buffers);
  });
}

for (const example of invalid) {
  test(`shared invalid example is refused: ${example.name}`, () => {
    assert.throws(() => decode(example.tree, example.buffers.map(fromHex)), TypeError);
  });
}

test("typed arrays become ndarrays, Uint8Array/ArrayBuffer/DataView become bytes", () => {
  const buffers = [];
  const tree = encode([new Float32Array([1, 2]), new BigUint64Array(1), new Uint8Array([7]), new ArrayBuffer(2), new DataView(new ArrayBuffer(3))], buffers);
  assert.deepEqual(tree.map((t) => [t.$ipb, t.dtype]), [["ndarray", "float32"], ["ndarray", "uint64"], ["bytes", undefined], ["bytes", undefined], ["bytes", undefined]]);
  assert.deepEqual(buffers.map((b) => b.byteLength), [8, 8, 1, 2, 3]);
});

test("views honour byteOffset and byteLength", () => {
  const whole = new Float64Array([1, 2, 3, 4]);
  const buffers = [];
  encode(new Float64Array(whole.buffer, 8, 2), buffers);
  assert.deepEqual(Array.from(new Float64Array(buffers[0].slice().buffer)), [2, 3]);
});

test("misaligned buffers are decoded through an aligned copy", () => {
  const bytes = new Uint8Array(17);
  new DataView(bytes.buffer).setFloat64(1, 6.5, true);
  const value = decode({ $ipb: "ndarray", dtype: "float64", shape: [1], i: 0 }, [new DataView(bytes.buffer, 1, 8)]);
  assert.equal(value.data[0], 6.5);
});

test("items decode relative to their own first buffer (b0)", () => {
  const value = decode({ $ipb: "bytes", i: 0 }, [new Uint8Array([1]), new Uint8Array([2])], 1);
  assert.deepEqual(Array.from(value), [2]);
});

test("values JSON cannot carry survive: NaN, infinities, -0, big doubles, BigInt", () => {
  const buffers = [];
  const input = [NaN, Infinity, -Infinity, -0, 2 ** 60, 12345678901234567890n];
  const back = decode(JSON.parse(JSON.stringify(encode(input, buffers))), buffers);
  assert.ok(Number.isNaN(back[0]));
  assert.deepEqual(back.slice(1, 3), [Infinity, -Infinity]);
  assert.ok(Object.is(back[3], -0));
  assert.equal(back[4], 2 ** 60);
  assert.equal(back[5], 12345678901234567890n);
});

test("unsendable values are TypeErrors naming where they are", () => {
  assert.throws(() => encode({ f: () => 1 }, []), /value\.f: cannot send a function/);
  assert.throws(() => encode(new Map(), []), /cannot send a Map/);
  const loop = [];
  loop.push(loop);
  assert.throws(() => encode(loop, []), /nesting/);
  assert.throws(() => encode({ dtype: "float64", shape: [3], data: new Float64Array(2) }, []), /needs 3 elements/);
});
