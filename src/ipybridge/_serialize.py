"""Values <-> JSON tree + binary buffers.

Everything that crosses the comm goes through :func:`encode` / :func:`decode`.
Plain JSON values travel as themselves; anything JSON cannot carry is a
*tagged* object ``{"$ipb": kind, ...}``:

========  ===============================================  ==================
kind      fields                                           Python value
========  ===============================================  ==================
float     ``v``: ``"nan"``, ``"inf"``, ``"-inf"``, ``"-0"``  float
          or the digits of a double beyond 2**53
bigint    ``v``: decimal string (beyond +/-(2**53 - 1))    int
bytes     ``i``: buffer index                              bytes
ndarray   ``i``, ``dtype``, ``shape``                      numpy.ndarray
dict      ``v``: an object that itself has a ``$ipb`` key  dict (escaped)
========  ===============================================  ==================

Buffers are little-endian and never base64-encoded; the index ``i`` points
into the message's buffer list, shared by every value of one batch.
The JavaScript half (``js/serialize.js``) mirrors this table; both are tested
against ``tests/protocol_examples.json``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

TAG = "$ipb"
MAX_SAFE_INTEGER = 2**53 - 1
#: Nesting deeper than this is refused both ways (also catches cycles).
MAX_DEPTH = 100
_FLOAT_TEXT = re.compile(r"nan|-?inf|-?\d{1,400}(?:\.\d{1,400})?(?:e[+-]?\d{1,3})?")
_INT_TEXT = re.compile(r"-?\d+")
#: A bigint string longer than this is refused (int() on huge strings is slow).
MAX_BIGINT_DIGITS = 4000

# dtype name (as the page spells it) -> numpy dtype, little-endian.
WIRE_DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(name).newbyteorder("<")
    for name in (
        "int8",
        "uint8",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "float32",
        "float64",
    )
}
WIRE_DTYPES["bool"] = np.dtype("bool")


class SerializationError(TypeError):
    """A value that cannot cross the bridge (raised while encoding)."""


class DecodeError(ValueError):
    """A message whose values are malformed (raised while decoding)."""


def encode(value: Any, buffers: list[memoryview]) -> Any:
    """Return the JSON tree for ``value``, appending binary parts to ``buffers``."""
    try:
        return _encode(value, buffers, 0)
    except _UnsendableError as exc:  # the path is built on the way out: nothing to pay for it when all is well
        raise SerializationError(f"value{''.join(reversed(exc.where))}: {exc.reason}") from None


class _UnsendableError(Exception):
    """Raised inside :func:`_encode`; each container on the way out adds its key to ``where``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.where: list[str] = []


def _encode(value: Any, buffers: list[memoryview], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise _UnsendableError(f"nesting deeper than {MAX_DEPTH} levels (or a cycle)")
    kind = type(value)  # exact types first: the plain JSON values most calls carry
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else {TAG: "bigint", "v": str(value)}
    if kind is float:
        return _encode_float(value)
    if kind is dict:
        return _encode_mapping(value, buffers, depth)
    if kind is list or kind is tuple:
        return _encode_sequence(value, buffers, depth)
    return _encode_other(value, buffers, depth)


def _encode_mapping(value: Mapping[Any, Any], buffers: list[memoryview], depth: int) -> Any:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(key, str):
            skey = key
        elif isinstance(key, (int, float)) and not isinstance(key, bool):
            skey = str(key)
        else:
            raise _UnsendableError(f"dict keys must be str or numbers, not {type(key).__name__}")
        try:
            out[skey] = _encode(item, buffers, depth + 1)
        except _UnsendableError as exc:
            exc.where.append(f"[{skey!r}]")
            raise
    if TAG in out:
        return {TAG: "dict", "v": out}
    return out


def _encode_sequence(value: Sequence[Any], buffers: list[memoryview], depth: int) -> list[Any]:
    out = []
    for i, item in enumerate(value):
        try:
            out.append(_encode(item, buffers, depth + 1))
        except _UnsendableError as exc:  # noqa: PERF203 - free unless it is raised
            exc.where.append(f"[{i}]")
            raise
    return out


def _encode_other(value: Any, buffers: list[memoryview], depth: int) -> Any:
    """Subclasses of the JSON types, numpy values, bytes, other mappings and sequences."""
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return int(value)
        return {TAG: "bigint", "v": str(int(value))}
    if isinstance(value, float):
        return _encode_float(float(value))
    if isinstance(value, np.ndarray):
        return _encode_ndarray(value, buffers)
    if isinstance(value, np.generic):
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, np.integer):
            return _encode(int(value), buffers, depth)
        if isinstance(value, np.floating):
            return _encode_float(float(value))
        raise _UnsendableError(f"cannot send numpy scalar of dtype {value.dtype}")
    if isinstance(value, (bytes, bytearray, memoryview)):
        buffers.append(memoryview(value).cast("B") if isinstance(value, memoryview) else memoryview(value))
        return {TAG: "bytes", "i": len(buffers) - 1}
    if isinstance(value, Mapping):
        return _encode_mapping(value, buffers, depth)
    if isinstance(value, (list, tuple)):
        return _encode_sequence(value, buffers, depth)
    raise _UnsendableError(f"cannot send a value of type {type(value).__module__}.{type(value).__qualname__}")


def _encode_float(value: float) -> Any:
    if value == 0 and math.copysign(1.0, value) < 0:
        return {TAG: "float", "v": "-0"}  # JSON would drop the sign
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return {TAG: "float", "v": "nan"}
    return {TAG: "float", "v": "inf" if value > 0 else "-inf"}


def wire_array(array: np.ndarray) -> tuple[str, np.ndarray]:
    """Return ``(dtype name, C-contiguous little-endian array)`` as sent on the wire."""
    kind = array.dtype.kind
    if array.dtype.fields is not None or kind in "cOVSUMm":
        raise SerializationError(f"cannot send a numpy array of dtype {array.dtype}")
    if kind == "b":
        return "bool", np.ascontiguousarray(array).view(np.uint8)
    if kind == "f" and array.dtype.itemsize == 2:  # float16, either byte order
        array = array.astype(np.float32)
    name = array.dtype.newbyteorder("=").name
    if name not in WIRE_DTYPES:
        raise SerializationError(f"cannot send a numpy array of dtype {array.dtype}")
    return name, np.ascontiguousarray(array, dtype=WIRE_DTYPES[name])


def _encode_ndarray(array: np.ndarray, buffers: list[memoryview]) -> Any:
    try:
        dtype, data = wire_array(array)
    except SerializationError as exc:
        raise _UnsendableError(str(exc)) from None
    buffers.append(data.reshape(-1).data.cast("B") if data.size else memoryview(b""))
    return {TAG: "ndarray", "dtype": dtype, "shape": list(array.shape), "i": len(buffers) - 1}


def decode(tree: Any, buffers: Sequence[Any]) -> Any:
    """Inverse of :func:`encode`; raises :class:`DecodeError` on malformed input."""
    return _decode(tree, buffers, 0)


def _decode(tree: Any, buffers: Sequence[Any], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise DecodeError(f"value nested deeper than {MAX_DEPTH} levels")
    kind = type(tree)  # what json.loads makes, exactly
    if kind is str or kind is int or kind is float or kind is bool or tree is None:
        return tree
    if kind is dict and TAG not in tree:
        return {key: _decode(item, buffers, depth + 1) for key, item in tree.items()}
    if isinstance(tree, list):
        return [_decode(item, buffers, depth + 1) for item in tree]
    if isinstance(tree, dict):
        if TAG in tree:
            return _decode_tagged(tree, buffers, depth)
        return {key: _decode(item, buffers, depth + 1) for key, item in tree.items()}
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    raise DecodeError(f"not a JSON value: {type(tree).__name__}")


class OwnedBuffer(bytearray):
    """Memory ipybridge allocated for one value of one message and hands over.

    An array decoded from it may use it without a copy: nobody else holds it.
    (Any other buffer is copied, so a decoded array never aliases a caller's memory.)
    """


def _buffer(tree: Mapping[str, Any], buffers: Sequence[Any]) -> memoryview:
    index = tree.get("i")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(buffers):
        raise DecodeError(f"buffer index {index!r} out of range (message has {len(buffers)})")
    return memoryview(buffers[index]).cast("B")


def _decode_tagged(tree: Mapping[str, Any], buffers: Sequence[Any], depth: int) -> Any:
    kind = tree[TAG]
    if kind == "float":
        text = tree.get("v")
        if not isinstance(text, str) or not _FLOAT_TEXT.fullmatch(text):
            raise DecodeError(f"bad tagged float {text!r}")
        return float(text)  # "nan", "inf", "-inf", "-0", or an integral double beyond 2**53
    if kind == "bigint":
        digits = tree.get("v")
        if not isinstance(digits, str) or len(digits) > MAX_BIGINT_DIGITS or not _INT_TEXT.fullmatch(digits):
            raise DecodeError("bigint must be a string of decimal digits")
        return int(digits, 10)
    if kind == "bytes":
        return bytes(_buffer(tree, buffers))
    if kind == "ndarray":
        return _decode_ndarray(tree, buffers)
    if kind == "dict":
        inner = tree.get("v")
        if not isinstance(inner, dict):
            raise DecodeError("escaped dict must carry an object in 'v'")
        return {key: _decode(item, buffers, depth + 1) for key, item in inner.items()}
    raise DecodeError(f"unknown tagged value kind {kind!r}")


def _decode_ndarray(tree: Mapping[str, Any], buffers: Sequence[Any]) -> np.ndarray:
    dtype_name = tree.get("dtype")
    if not isinstance(dtype_name, str) or dtype_name not in WIRE_DTYPES:
        raise DecodeError(f"unsupported dtype {dtype_name!r}")
    shape = tree.get("shape")
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise DecodeError(f"shape must be a list of non-negative ints, not {shape!r}")
    if len(shape) > 32:
        raise DecodeError("arrays have at most 32 dimensions")
    data = _buffer(tree, buffers)
    dtype = WIRE_DTYPES[dtype_name]
    count = math.prod(shape)
    if count * dtype.itemsize != data.nbytes:
        raise DecodeError(
            f"ndarray of shape {shape} and dtype {dtype_name} needs "
            f"{count * dtype.itemsize} bytes, buffer has {data.nbytes}"
        )
    flat = np.frombuffer(data, dtype=np.uint8 if dtype_name == "bool" else dtype, count=count)
    array: np.ndarray
    if dtype_name == "bool":
        array = flat != 0
    elif isinstance(data.obj, OwnedBuffer) and dtype.isnative and flat.flags.aligned:
        array = flat  # memory ipybridge made for this value alone (a joined split message): no copy
    else:  # a buffer someone else owns (the comm's): the caller gets a writable array of its own
        array = flat.astype(dtype.newbyteorder("="), copy=True)
    return array.reshape(shape)
