"""The Bridge widget: an HTML+JS fragment whose JavaScript calls Python."""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, overload

import anywidget
import traitlets

from . import _direct
from ._capture import protect_cell_parent
from ._core import BridgeCore, JSFuture, _kernel
from ._protocol import DEFAULT_MAX_MESSAGE_BYTES

F = TypeVar("F", bound=Callable[..., Any])
STATIC = pathlib.Path(__file__).parent / "static"
log = logging.getLogger("ipybridge")


class BridgeWidget(anywidget.AnyWidget):
    """Base of ipybridge's widgets: owns a :class:`BridgeCore` wired to the comm."""

    core_class: type[BridgeCore] = BridgeCore
    #: The most one message from the page may carry, JSON and binary buffers together (bytes).
    #: Set it on a class for every widget of that class (``ipybridge.Bridge.max_message_bytes = 256 << 20``)
    #: or on one widget (``b.max_message_bytes = 16 << 20``). Checked in the kernel on every message;
    #: the page learns it and rejects a bigger call at once (``MessageTooLargeError``), sending nothing.
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    #: Whether views may use the direct transport (docs/protocol.md, "Direct transport"): ``True``
    #: (on the loopback interface when the page is served from this machine, else through the
    #: Jupyter server's relay when it has ipybridge.server), ``"relay"`` or ``"loopback"`` for one
    #: way only, ``False`` for the comm only. Turn it off per class before creating widgets
    #: (``ipybridge.Bridge.direct = False``, ``ipybridge.Player.direct = False``) or per widget class of
    #: your own. Read when the widget is created; the environment variable ``IPYBRIDGE_DIRECT=0`` turns
    #: it off for the whole kernel. Where the page cannot connect, everything goes over the comm.
    direct: bool | str = True

    def __init__(
        self,
        *,
        allow_execute: bool = False,
        namespace: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._core = self._make_core(allow_execute=allow_execute, namespace=namespace)
        self._core.message_limit = self._message_limit
        self._enable_direct()
        self.on_msg(self._on_custom_msg)
        _route_off_main_thread(self)
        protect_cell_parent()

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "max_message_bytes":
            _check_limit(value)
            super().__setattr__(name, value)
            core = getattr(self, "_core", None)
            if core is not None:
                core.announce_limits()
            return
        super().__setattr__(name, value)

    def _message_limit(self) -> int:
        value = self.max_message_bytes  # the instance's, else its class's: read per message
        try:
            return _check_limit(value)
        except (TypeError, ValueError):
            log.error("ipybridge: ignoring max_message_bytes=%r (not an int >= 1024)", value)
            return DEFAULT_MAX_MESSAGE_BYTES

    def _enable_direct(self) -> None:
        choice = self.direct
        routes = {True: ["relay", "loopback"], "relay": ["relay"], "loopback": ["loopback"]}.get(choice)
        if routes is None or self.comm is None or _kernel() is None or not _direct.enabled_by_environment():
            return
        endpoint = _direct.DirectEndpoint.get()
        if endpoint is None:
            return
        routes_ = _direct.DirectRoutes(self._core, endpoint, self.comm.comm_id, routes)
        self._core.direct = routes_
        self._core.outbox.route = routes_.split

    @property
    def transport(self) -> str | None:
        """The path the most recently connected view's messages take: ``"direct"`` or ``"comm"``.

        None before any view said hello. The page's ``bridge.transport`` says the same for its view.
        """
        if self._core.direct is not None:
            transport: str | None = self._core.direct.transport()
            return transport
        return "comm" if self._core.views else None

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


def _check_limit(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"max_message_bytes must be an int (bytes), not {type(value).__name__}")
    if value < 1024:
        raise ValueError(f"max_message_bytes must be at least 1024, not {value}")
    return value


def _route_off_main_thread(widget: anywidget.AnyWidget) -> None:
    """Serve this widget's page messages on a kernel subshell, never behind a cell.

    ipykernel 7.4 asks a comm which subshell its incoming messages go to
    (``_reply_subshell_for``, called on the shell channel thread). Two cases
    would put our messages on the main thread, queued behind a running cell:
    JupyterLab sends a new comm's first messages before its own subshell exists,
    and ipykernel by default routes to the subshell that last *sent* on the comm
    (ipybridge sends from its own threads, whose parent is the main shell). So:
    keep the frontend's subshell when it names one, else use ipybridge's own.
    """
    comm = getattr(widget, "comm", None)
    if comm is None or not hasattr(comm, "_reply_subshell_for"):
        return

    def route(_data: Any, frontend_choice: str | None) -> str | None:
        return frontend_choice if frontend_choice is not None else _own_subshell()

    comm._reply_subshell_for = route


_subshell_id: str | None = None
_subshell_failed = False


def _own_subshell() -> str | None:
    """ipybridge's kernel subshell, created on first use (on the shell channel thread)."""
    global _subshell_id, _subshell_failed
    if _subshell_id is not None or _subshell_failed:
        return _subshell_id
    try:
        from ipykernel.kernelbase import Kernel

        kernel = Kernel.instance()
        if not getattr(kernel, "_supports_kernel_subshells", False):
            raise RuntimeError("kernel without subshells")
        _subshell_id = kernel.shell_channel_thread.manager._create_subshell()
    except Exception:  # noqa: BLE001 - any other ipykernel: messages stay where it puts them
        _subshell_failed = True
    return _subshell_id


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
        wins; with no view yet, the call waits for one. ``timeout`` (seconds, here
        or in ``.result``) raises the builtin :class:`TimeoutError` naming the
        handler; a throwing handler raises :class:`ipybridge.JavaScriptError`
        (``.handler`` is ``name``); so does a view without that handler once its
        ``js`` has run (``ReferenceError``).

        Blocking is safe where the answer can arrive: in a cell (with kernel
        subshells), in a thread, and in a ``def`` exposed function, whose worker
        runs the calls queued meanwhile (so the handler may call back into
        Python). In an ``async def``, ``.result()`` raises ``RuntimeError``:
        ``await`` it there.
        """
        return self._core.call_js(name, args, timeout)
