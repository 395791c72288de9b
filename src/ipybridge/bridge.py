"""The Bridge widget: an HTML+JS fragment whose JavaScript calls Python."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, overload

import anywidget
import traitlets

from ._core import BridgeCore, JSFuture

F = TypeVar("F", bound=Callable[..., Any])
STATIC = pathlib.Path(__file__).parent / "static"


class BridgeWidget(anywidget.AnyWidget):
    """Base of ipybridge's widgets: owns a :class:`BridgeCore` wired to the comm."""

    core_class: type[BridgeCore] = BridgeCore

    def __init__(
        self,
        *,
        allow_execute: bool = False,
        namespace: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._core = self._make_core(allow_execute=allow_execute, namespace=namespace)
        self.on_msg(self._on_custom_msg)
        _respect_frontend_subshell(self)

    def _make_core(self, **kwargs: Any) -> BridgeCore:
        return self.core_class(self._send_to_page, name=type(self).__name__, **kwargs)

    def _send_to_page(self, content: dict[str, Any], buffers: list[memoryview]) -> None:
        if self.comm is not None:
            self.send(content, buffers or None)

    def _on_custom_msg(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        if isinstance(content, dict) and content.get("kind") == "anywidget-command":
            return  # anywidget's own experimental channel, not ours
        self._core.receive(content, buffers or [])

    @property
    def allow_execute(self) -> bool:
        """Whether the page may run code and read/write variables (fixed at creation)."""
        return self._core.allow_execute

    def close(self) -> None:
        core = getattr(self, "_core", None)
        if core is not None:
            core.close()
        super().close()


def _respect_frontend_subshell(widget: anywidget.AnyWidget) -> None:
    """Let page messages run on the subshell the frontend chose.

    ipykernel 7.4 routes a comm's incoming messages to the subshell that last
    *sent* on it; ipybridge sends from its own threads, whose parent is the
    main shell, which would pull every later page message onto the main
    thread, behind a running cell. Our replies are matched by id, not by
    subshell, so keep the frontend's choice.
    """
    comm = getattr(widget, "comm", None)
    if comm is not None and hasattr(comm, "_reply_subshell_for"):
        comm._reply_subshell_for = lambda _data, default: default


class Bridge(BridgeWidget):
    """An HTML fragment whose JavaScript calls exposed Python functions.

    >>> b = Bridge(html="<button>Add</button>", js="el.onclick = async () => alert(await py.add(1, 2))")
    >>> @b.expose
    ... def add(a, b):
    ...     return a + b
    """

    _esm = STATIC / "bridge.js"
    _css = STATIC / "bridge.css"
    html = traitlets.Unicode("", help="markup rendered into the widget's root element").tag(sync=True)
    js = traitlets.Unicode("", help="body of an async function run with el, py, bridge in scope").tag(sync=True)

    def __init__(
        self,
        html: str = "",
        js: str = "",
        *,
        expose: Mapping[str, Callable[..., Any]] | Iterable[Callable[..., Any]] | None = None,
        allow_execute: bool = False,
        namespace: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(html=html, js=js, allow_execute=allow_execute, namespace=namespace, **kwargs)
        if expose is not None:
            self._core.expose_many(expose)

    @overload
    def expose(self, fn: F, /, *, name: str | None = None) -> F: ...
    @overload
    def expose(self, name: str | None = None, /) -> Callable[[F], F]: ...

    def expose(self, fn: Any = None, /, *, name: str | None = None) -> Any:
        """Make a function callable from the page: ``@b.expose``, ``@b.expose("name")``,
        or ``b.expose(fn, name="name")``. ``async def`` functions are supported."""
        if callable(fn):
            self._core.expose(fn, name)
            return fn
        if fn is not None and not isinstance(fn, str):
            raise TypeError("expose() takes a function or a name")
        chosen = fn if fn is not None else name

        def decorator(func: F) -> F:
            self._core.expose(func, chosen)
            return func

        return decorator

    @property
    def exposed(self) -> dict[str, Callable[..., Any]]:
        """The functions the page may call, by name (a copy)."""
        return dict(self._core.functions)

    def emit(self, event: str, payload: Any = None) -> None:
        """Send ``payload`` to every ``bridge.on(event, ...)`` listener of every view."""
        self._core.emit(event, payload)

    def call_js(self, name: str, *args: Any, timeout: float | None = None) -> JSFuture:
        """Call the page's ``bridge.handle(name, fn)`` handler; returns a future.

        ``await`` it, or block with ``.result(timeout)``. The first view to answer
        wins; with no view yet, the call waits for one. ``timeout`` (seconds)
        raises the builtin :class:`TimeoutError`; a throwing handler raises
        :class:`ipybridge.JavaScriptError`.
        """
        return self._core.call_js(name, args, timeout)
