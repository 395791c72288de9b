"""Values <-> wire: the shared examples, numpy edge cases, and round-trip properties."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ipybridge._serialize import TAG, DecodeError, SerializationError, decode, encode

EXAMPLES = json.loads((Path(__file__).parents[1] / "shared" / "wire_examples.json").read_text())


def describe(value: Any) -> Any:
    """The language-neutral description used in wire_examples.json."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return {"float": "nan"}
        if math.isinf(value):
            return {"float": "inf" if value > 0 else "-inf"}
        if value == 0 and math.copysign(1, value) < 0:
            return {"float": "-0"}
        return value
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, np.ndarray):
        flat = value.astype(np.uint8) if value.dtype == bool else value
        return {
            "ndarray": {
                "dtype": str(value.dtype),
                "shape": list(value.shape),
                "values": [str(v) for v in flat.ravel().tolist()],
            }
        }
    if isinstance(value, list):
        return [describe(v) for v in value]
    if isinstance(value, dict):
        return {k: describe(v) for k, v in value.items()}
    raise AssertionError(type(value))


def expected(example: dict[str, Any]) -> Any:
    expect = example["expect"]
    if "json" in expect:
        return expect["json"]
    if "json_with" in expect:
        return expect["json_with"]
    if "int" in expect:
        return int(expect["int"])
    return expect


@pytest.mark.parametrize("example", EXAMPLES["examples"], ids=lambda e: e["name"])
def test_shared_examples_decode_and_reencode_exactly(example: dict[str, Any]) -> None:
    buffers = [bytes.fromhex(h) for h in example["buffers"]]
    value = decode(example["tree"], buffers)
    described = describe(value)
    assert described == expected(example)
    out: list[memoryview] = []
    assert encode(value, out) == example["tree"]
    assert [bytes(b).hex() for b in out] == example["buffers"]


@pytest.mark.parametrize("example", EXAMPLES["invalid"], ids=lambda e: e["name"])
def test_shared_invalid_examples_are_refused(example: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        decode(example["tree"], [bytes.fromhex(h) for h in example["buffers"]])


@pytest.mark.parametrize(
    ("array", "dtype", "values"),
    [
        (np.arange(6)[::2].astype(np.int16), "int16", [0, 2, 4]),  # non-contiguous
        (np.array([1, 2], dtype=">i4"), "int32", [1, 2]),  # big-endian
        (np.array([0.5], dtype=np.float16), "float32", [0.5]),
        (np.array([True, False]), "bool", [1, 0]),
        (np.arange(6, dtype=np.uint64).reshape(2, 3).T, "uint64", [0, 3, 1, 4, 2, 5]),  # Fortran order
    ],
)
def test_arrays_are_converted_to_contiguous_little_endian(array: np.ndarray, dtype: str, values: list[int]) -> None:
    buffers: list[memoryview] = []
    tree = encode(array, buffers)
    assert tree == {TAG: "ndarray", "dtype": dtype, "shape": list(array.shape), "i": 0}
    wire = np.frombuffer(bytes(buffers[0]), dtype=np.dtype("u1" if dtype == "bool" else dtype).newbyteorder("<"))
    assert wire.tolist() == values


@pytest.mark.parametrize(
    "bad", [np.array([1 + 2j]), np.array([object()]), np.zeros(2, dtype=[("a", "i4")]), {1, 2}, object()]
)
def test_unsendable_values_raise_a_clear_type_error(bad: Any) -> None:
    with pytest.raises(SerializationError, match="cannot send"):
        encode({"x": bad}, [])


def test_cycles_and_deep_nesting_are_errors_not_hangs() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="nesting"):
        encode(loop, [])
    deep: Any = []
    for _ in range(150):
        deep = [deep]
    with pytest.raises(DecodeError, match="nested"):
        decode(deep, [])


def test_numpy_scalars_and_tuples_become_json() -> None:
    assert encode((np.int64(3), np.float32(0.5), np.bool_(True)), []) == [3, 0.5, True]
    assert encode({1: "a", 2.5: "b"}, []) == {"1": "a", "2.5": "b"}


def test_decoded_arrays_are_writable_copies() -> None:
    raw = bytearray(np.arange(3.0).tobytes())
    array = decode({TAG: "ndarray", "dtype": "float64", "shape": [3], "i": 0}, [raw])
    array[0] = 42
    assert raw[:8] == np.float64(0).tobytes()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text() | st.binary(max_size=64),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@given(json_values)
def test_any_value_round_trips_through_json_text(value: Any) -> None:
    buffers: list[memoryview] = []
    tree = encode(value, buffers)
    wire = json.loads(json.dumps(tree, allow_nan=False))  # what the comm really carries
    assert same(decode(wire, [bytes(b) for b in buffers]), value)


@given(
    hnp.arrays(
        hnp.scalar_dtypes().filter(lambda d: d.kind in "biuf" and d.itemsize <= 8),
        hnp.array_shapes(min_dims=0, max_side=4),
    )
)
def test_any_real_array_round_trips(array: np.ndarray) -> None:
    buffers: list[memoryview] = []
    tree = encode(array, buffers)
    back = decode(json.loads(json.dumps(tree)), [bytes(b) for b in buffers])
    assert back.shape == array.shape
    half = array.dtype.kind == "f" and array.dtype.itemsize == 2
    expected_dtype = np.dtype(np.float32) if half else array.dtype.newbyteorder("=")
    assert back.dtype == expected_dtype
    np.testing.assert_array_equal(back, array.astype(expected_dtype))
