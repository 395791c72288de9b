"""A stand-in for the page: records what the kernel sends, builds envelopes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ipybridge._serialize import decode, encode


class FakePage:
    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], list[bytes]]] = []
        self._cond = threading.Condition()

    def send(self, content: dict[str, Any], buffers: list[memoryview]) -> None:
        with self._cond:
            self.sent.append((content, [bytes(b) for b in buffers]))
            self._cond.notify_all()

    def items(self) -> list[tuple[dict[str, Any], list[bytes]]]:
        with self._cond:
            return [(item, bufs) for content, bufs in self.sent for item in content["msgs"]]

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10) -> dict[str, Any]:
        """The first item matching ``predicate``, waiting for it (bounded)."""
        with self._cond:
            found = self._cond.wait_for(lambda: self._find(predicate) is not None, timeout)
            if not found:
                raise AssertionError(f"no matching item within {timeout} s; got {self.items()}")
            return self._find(predicate)  # type: ignore[return-value]

    def _find(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        for content, _bufs in self.sent:
            for item in content["msgs"]:
                if predicate(item):
                    return item
        return None

    def answer(self, view: str, ident: int) -> dict[str, Any]:
        return self.wait_for(
            lambda i: i.get("view") == view and i.get("id") == ident and i["type"] in ("result", "error")
        )

    def value_of(self, item: dict[str, Any]) -> Any:
        for content, bufs in self.sent:
            if item in content["msgs"]:
                return decode(item["value"], bufs[item.get("b0", 0) :])
        raise AssertionError("item not sent")


def envelope(*items: dict[str, Any], view: str = "v1") -> tuple[dict[str, Any], list[bytes]]:
    """Encode items as the page would (values in args/kwargs/value are encoded)."""
    buffers: list[memoryview] = []
    msgs = []
    for item in items:
        out = {"view": view, **item}
        for key in ("args", "kwargs", "value"):
            if key in out:
                out[key] = encode(out[key], buffers)
        msgs.append(out)
    return {"ipb": 1, "msgs": msgs}, [bytes(b) for b in buffers]
