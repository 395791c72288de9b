"""``%load_ext ipybridge``: the classic notebook's page, ``IPython.notebook.kernel.execute`` first.

Classic-notebook JavaScript (IPython 1.x-5.x) calls
``IPython.notebook.kernel.execute(code, callbacks, options)`` and leans on the
rest of the classic page (jQuery, RequireJS, ``Jupyter.notebook``'s cells);
JupyterLab 4 and Notebook 7 have none of it. :func:`enable_legacy_api`
(also run by ``%load_ext ipybridge``) displays two outputs:

1. an ``application/javascript`` output, the shim (``static/legacy_shim.js``):
   it installs the classic page the moment it is rendered (jQuery, RequireJS,
   ``IPython``/``Jupyter``; see docs/legacy.md), queues ``kernel.execute`` calls,
   and routes each to the notebook its script lives in, else the one the user
   last interacted with;
2. a small widget view (:class:`LegacyWidget`) per notebook: the transport.
   It registers with the shim, carries the calls over ipybridge's protocol, and
   finds the notebook panel and the application's commands that the shim's
   ``Jupyter.notebook`` methods use.

It also makes ``Javascript(...)``/``%%javascript`` outputs run as in the classic
notebook (``element`` in jQuery, ``this`` the output area: :func:`classic_script`)
and sends scripts that widget callbacks display to the widget's cell
(:func:`widget_callback_script`, item ``{type: "legacy_display", key, model_id,
content}``).

Kernel side, one ``legacy_execute`` item per call::

    page -> kernel  {type: "legacy_execute", view, id, msg_id, code,
                     silent, store_history, user_expressions}
    kernel -> page  {type: "output", view, id, stream, text}          (prints)
                    {type: "legacy_output", view, id, msg_id, msg_type, content}
                        msg_type: "display_data" | "execute_result" | "error"
                    {type: "result", view, id, value: <execute_reply content>}

The code runs like a cell (last expression is the result) on the widget's
serial worker, so calls run one at a time, in order, and never behind a running
cell; what it prints or displays is captured per call (by context, never by
swapping ``sys.stdout``), so a cell running meanwhile keeps its own output.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import sys
import threading
import time
import tokenize
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import traitlets

from ._capture import capture
from ._core import BridgeCore, error_payload, format_result, run_code
from ._protocol import MAX_NAME_LENGTH, Custom, ProtocolError, is_valid_id, simple_error
from .bridge import STATIC, BridgeWidget

__all__ = ["LegacyWidget", "enable_legacy_api", "load_ipython_extension"]

SHIM_PATH = STATIC / "legacy_shim.js"
MAX_USER_EXPRESSIONS = 1000
_history_lock = threading.Lock()


# ------------------------------------------------------------------ pure parts
@dataclass(frozen=True)
class LegacyRequest:
    """One ``kernel.execute(code, callbacks, options)`` call, validated."""

    msg_id: str
    code: str
    silent: bool = True
    store_history: bool = False
    user_expressions: dict[str, str] = field(default_factory=dict)


def parse_request(raw: Mapping[str, Any]) -> LegacyRequest:
    """Validate a ``legacy_execute`` item; raise :class:`ProtocolError` if it is unusable.

    Defaults are the classic notebook's (``silent: true, store_history: false``);
    as in IPython, a silent execution never stores history.
    """
    msg_id = raw.get("msg_id")
    if msg_id is None:
        msg_id = uuid.uuid4().hex
    if not isinstance(msg_id, str) or not msg_id or len(msg_id) > MAX_NAME_LENGTH:
        raise ProtocolError("'msg_id' must be a non-empty string of at most 256 characters")
    code = raw.get("code")
    if not isinstance(code, str):
        raise ProtocolError("'code' must be a string")
    silent = raw.get("silent", True)
    store_history = raw.get("store_history", False)
    if not isinstance(silent, bool) or not isinstance(store_history, bool):
        raise ProtocolError("'silent' and 'store_history' must be booleans")
    expressions = raw.get("user_expressions") or {}
    if not isinstance(expressions, dict) or len(expressions) > MAX_USER_EXPRESSIONS:
        raise ProtocolError("'user_expressions' must be an object of at most 1000 expressions")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in expressions.items()):
        raise ProtocolError("'user_expressions' must map names to Python expressions (strings)")
    return LegacyRequest(msg_id, code, silent, store_history and not silent, dict(expressions))


def jsonable(value: Any) -> Any:
    """A mimebundle (or metadata) as plain JSON: bytes become base64 text, as on the wire."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def display_content(content: Mapping[str, Any]) -> dict[str, Any]:
    """A ``display_data`` message's content, JSON-clean, without kernel-only fields."""
    return {
        "data": jsonable(content.get("data") or {}),
        "metadata": jsonable(content.get("metadata") or {}),
        "transient": jsonable(content.get("transient") or {}),
    }


def ends_with_semicolon(code: str) -> bool:
    """Whether a trailing ``;`` hides the result, as it does for a cell."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return code.rstrip().endswith(";")
    skip = {tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT, tokenize.ENDMARKER, tokenize.DEDENT, tokenize.INDENT}
    meaningful = [t for t in tokens if t.type not in skip]
    return bool(meaningful) and meaningful[-1].string == ";"


def evaluate_user_expressions(expressions: Mapping[str, str], namespace: dict[str, Any]) -> dict[str, Any]:
    """``user_expressions`` of an execute_reply: each value's mimebundle, or its error."""
    out: dict[str, Any] = {}
    for key, expression in expressions.items():
        out[key] = _user_expression(expression, namespace)
    return out


def _user_expression(expression: str, namespace: dict[str, Any]) -> dict[str, Any]:
    try:
        value = eval(expression, namespace)  # noqa: S307 - the classic API evaluates the page's expressions
    except BaseException as exc:  # noqa: BLE001 - each expression reports its own failure
        return {"status": "error", **error_payload(exc)}
    return {"status": "ok", "data": jsonable(format_result(value) or {"text/plain": "None"}), "metadata": {}}


def ok_reply(execution_count: int, user_expressions: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "status": "ok",
        "execution_count": execution_count,
        "user_expressions": user_expressions or {},
        "payload": [],
    }


def error_reply(execution_count: int, error: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "status": "error",
        "execution_count": execution_count,
        "ename": error["ename"],
        "evalue": error["evalue"],
        "traceback": list(error["traceback"]),
        "user_expressions": {},
        "payload": [],
    }


# --------------------------------------------------------------- kernel side
def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _reserve_execution_count(shell: Any, code: str) -> int:
    """Take the next execution count and record ``code`` as that input (``In``).

    IPython 9 increments the count when a cell *starts*, so a cell running at the
    same time already holds its own number and this one takes the next. (Older
    IPython counts at the end of a cell: a call made while a cell runs shares its
    number there.)
    """
    with _history_lock:
        count = int(shell.execution_count)
        shell.execution_count = count + 1
    history = getattr(shell, "history_manager", None)
    if history is not None:
        history.store_inputs(count, shell.transform_cell(code), code)
    return count


def _record_output(shell: Any, count: int, value: Any) -> None:
    """``Out[count]``, ``_count`` and ``_``/``__``/``___``, as the displayhook would."""
    hook = shell.displayhook
    previous, before = getattr(hook, "_", ""), getattr(hook, "__", "")
    hook.___, hook.__, hook._ = before, previous, value
    shell.push({"_": value, "__": previous, "___": before, f"_{count}": value}, interactive=False)
    history = getattr(shell, "history_manager", None)
    if history is not None:
        history.output_hist[count] = value


def _flush_streams() -> None:
    """Deliver what was printed so far (ipykernel streams flush on their own thread)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _open_figures() -> set[int]:
    pyplot = sys.modules.get("matplotlib.pyplot")
    return set(pyplot.get_fignums()) if pyplot is not None else set()


def _show_new_figures(before: set[int]) -> None:
    """Display and close the pyplot figures opened while the call ran, as the inline
    backend does after a cell (the classic notebook sent them to kernel.execute's
    callbacks). pyplot's list of figures is global: see docs/legacy.md for the race
    with a cell that ends, or opens a figure, at the same moment."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None or "inline" not in str(pyplot.get_backend()):
        return
    from IPython.display import display
    from matplotlib._pylab_helpers import Gcf

    show: Any = display
    for number in sorted(set(pyplot.get_fignums()) - before):
        manager = Gcf.get_fig_manager(number)
        if manager is None:
            continue
        try:
            show(manager.canvas.figure)
        except Exception:  # noqa: BLE001 - a figure that cannot be drawn reports to stderr, like a cell's
            traceback.print_exc()
        finally:
            pyplot.close(manager.canvas.figure)


class LegacyCore(BridgeCore):
    """BridgeCore plus the ``legacy_execute`` item of the classic ``kernel.execute``."""

    custom_types = frozenset({"legacy_execute", "legacy_target"})

    def handle_custom(self, item: Custom) -> None:
        if item.type == "legacy_target":
            target = item.data.get("target")
            if isinstance(target, str) and 0 < len(target) <= MAX_NAME_LENGTH:
                _comm_hold.registered(target)  # the page registered a classic comm target
            return
        ident: Any = item.data.get("id")
        if not is_valid_id(ident):
            error = simple_error("ProtocolError", f"'id' must be an integer in [0, 2**53), not {ident!r}")
            self.post({"type": "protocol_error", "view": item.view, "error": error})
            return
        if not self.allow_execute:
            error = simple_error("PermissionError", "this widget may not run code")
            self.post({"type": "error", "view": item.view, "id": ident, "error": error})
            return
        try:
            request = parse_request(item.data)
        except ProtocolError as exc:
            error = simple_error("ProtocolError", str(exc))
            self.post({"type": "error", "view": item.view, "id": ident, "error": error})
            return
        self._submit_sync(item.view, ident, lambda: self.run_request(item.view, ident, request))

    def run_request(self, view: str, ident: int, request: LegacyRequest) -> dict[str, Any]:
        """Run one call like a cell; send its outputs; return its ``execute_reply`` content."""

        def emit(msg_type: str, content: dict[str, Any]) -> None:
            item = {"type": "legacy_output", "view": view, "id": ident, "msg_id": request.msg_id}
            self.post({**item, "msg_type": msg_type, "content": content})

        shell = _shell()
        namespace = self.namespace
        if request.store_history and shell is not None:
            count = _reserve_execution_count(shell, request.code)
        else:
            count = int(getattr(shell, "execution_count", 0))
        error: dict[str, Any] | None = None
        value: Any = None

        def on_display(content: dict[str, Any]) -> None:
            emit("display_data", display_content(content))

        # Outputs leave in a cell's order: prints and displays as they happen, then
        # the result or the error, then the pyplot figures the code made.
        with capture(self._output_sink(view, ident), on_display):
            figures_before = _open_figures()
            try:
                value = run_code(request.code, namespace)
                shown = None
                if not request.silent and value is not None and not ends_with_semicolon(request.code):
                    shown = format_result(value)
                _flush_streams()
                if shown:
                    emit("execute_result", {"execution_count": count, "data": jsonable(shown), "metadata": {}})
                    if request.store_history and shell is not None:
                        _record_output(shell, count, value)
            except BaseException as exc:  # noqa: BLE001 - as in a cell, any failure is reported, never raised
                error = error_payload(exc)
                _flush_streams()
                emit("error", error)
            _show_new_figures(figures_before)
        if error is not None:
            return error_reply(count, error)
        return ok_reply(count, evaluate_user_expressions(request.user_expressions, namespace))


class LegacyWidget(BridgeWidget):
    """The per-notebook transport of the classic ``kernel.execute`` API (one per kernel)."""

    _esm = STATIC / "legacy.js"
    core_class = LegacyCore
    #: This widget's model id, so that its view can find itself in the widget manager
    #: and from there the notebook panel it is shown in (js/legacy.js).
    _legacy_model_id = traitlets.Unicode("").tag(sync=True)
    #: Set by a view that found its JupyterLab / Notebook 7 notebook panel: scripts that
    #: widget callbacks display are then sent to the widget's cell (the classic notebook
    #: itself puts them there on its own).
    _in_lab_notebook = traitlets.Bool(False).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        model_id = uuid.uuid4().hex
        # Running the page's code is the point of the legacy API: %load_ext is the opt-in.
        super().__init__(allow_execute=True, model_id=model_id, _legacy_model_id=model_id, **kwargs)

    def __repr__(self) -> str:  # the text a page without widgets (nbviewer, GitHub) shows
        return "ipybridge: classic IPython.notebook.kernel.execute API enabled"


_widget: LegacyWidget | None = None
_widget_lock = threading.Lock()


#: Comm targets of ipywidgets: never held (see :class:`_CommHold`).
_WIDGET_TARGETS = frozenset({"jupyter.widget", "jupyter.widget.control", "jupyter.widget.version"})
#: For this long (s) after ``%load_ext ipybridge``, the kernel's comms to a target the page has not
#: registered yet wait for it.
COMM_HOLD_S = 10.0


class _CommHold:
    """Hold the kernel's comm messages to a classic page target until the page has registered it.

    In the classic notebook a script's ``comm_manager.register_target`` took effect as
    its output rendered, before the page read the next cell's messages, so a "Run All"
    that registers a target in one cell and opens a comm to it (``comm.create_comm``,
    ``ipykernel.comm.Comm``) in the next worked. In JupyterLab the script runs once its
    output has joined the page and the legacy widget's view has found the notebook's
    kernel connection, which can be after the next cells ran; JupyterLab closes a comm
    whose target it does not know. So for :data:`COMM_HOLD_S` after ``%load_ext
    ipybridge``, the comm messages the kernel sends to a target the page has not
    reported (``legacy_target``) wait, in order, until it does or the time is up;
    ipywidgets' comms never wait, and nothing blocks the cell.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: list[tuple[Any, Any, tuple[Any, ...], dict[str, Any]]] = []
        self._registered: set[str] = set()
        self._deadline = 0.0
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        if not _hook_comm_publish():
            return
        with self._lock:
            self._registered.clear()  # a new page (or a reloaded one) registers its targets again
            self._deadline = time.monotonic() + COMM_HOLD_S
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(COMM_HOLD_S, self.release)
            self._timer.daemon = True
            self._timer.start()

    def take(self, comm: Any, publish: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Keep this message for later; False when it may go now."""
        target = getattr(comm, "target_name", None)
        if target in _WIDGET_TARGETS:
            return False
        if not self._held and time.monotonic() >= self._deadline:
            return False  # the window is over and nothing waits: no lock per comm message
        with self._lock:
            waiting = any(held[0] is comm for held in self._held)  # keep a comm's messages in order
            if not waiting and (target in self._registered or time.monotonic() >= self._deadline):
                return False
            self._held.append((comm, publish, args, kwargs))
            return True

    def registered(self, target: str) -> None:
        """The page registered ``target``: its comms' messages go now, in order.

        ``"*"``: the page is the classic notebook itself, whose own comm manager needs no wait.
        """
        if target == "*":
            self.release()
            return
        with self._lock:
            self._registered.add(target)
            ready = [h for h in self._held if getattr(h[0], "target_name", None) == target]
            self._held = [h for h in self._held if getattr(h[0], "target_name", None) != target]
            for comm, publish, args, kwargs in ready:  # under the lock: nothing overtakes them
                _publish_held(comm, publish, args, kwargs)

    def release(self) -> None:
        """Time is up: everything held goes, in order."""
        with self._lock:
            self._deadline = 0.0
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            held, self._held = self._held, []
            for comm, publish, args, kwargs in held:
                _publish_held(comm, publish, args, kwargs)


def _publish_held(comm: Any, publish: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        publish(comm, *args, **kwargs)
    except Exception:  # noqa: BLE001 - reported as if it had failed when the cell sent it
        traceback.print_exc()


_comm_hold = _CommHold()
_HOLD_MARK = "_ipybridge_comm_hold"


def _hook_comm_publish() -> bool:
    """Route ipykernel's comm messages through :data:`_comm_hold` (once); False without ipykernel."""
    try:
        from ipykernel.comm.comm import BaseComm
    except ImportError:
        return False
    publish: Any = BaseComm.publish_msg
    if getattr(publish, _HOLD_MARK, False):
        return True

    def publish_msg(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _comm_hold.take(self, publish, args, kwargs):
            return None
        return publish(self, *args, **kwargs)

    setattr(publish_msg, _HOLD_MARK, True)
    BaseComm.publish_msg = publish_msg  # type: ignore[method-assign]
    return True


def _legacy_widget() -> LegacyWidget:
    global _widget
    with _widget_lock:
        if _widget is None or _widget._core.closed or getattr(_widget, "comm", None) is None:
            _widget = LegacyWidget()
        return _widget


#: How a classic ``%%javascript`` / ``Javascript(...)`` output runs once the legacy API is
#: active: as in the classic notebook (which ran it with ``eval`` inside its OutputArea),
#: ``element`` is the output's element wrapped in jQuery, ``this`` the output area, and
#: ``var`` declarations stay local to the script. Where the page has no ipybridge (the
#: classic notebook itself, nbviewer, a page not yet given ``%load_ext``) it runs as before.
CLASSIC_SCRIPT = """(function (body, self, el) {{
  var hub = window.__ipybridgeLegacy;
  if (hub && hub.classic) return hub.classic.runOutputScript(body, el);
  return body.call(self, el);
}})(function (element) {{
{code}
}}, this, typeof element === "undefined" ? undefined : element);"""


def classic_script(code: str) -> str:
    """``code`` (an ``application/javascript`` output) wrapped to run as the classic notebook ran it."""
    return CLASSIC_SCRIPT.format(code=code)


def _classic_javascript(obj: Any) -> Any:
    """The ``application/javascript`` formatter of ``IPython.display.Javascript`` (and subclasses)."""
    result = obj._repr_javascript_()
    if isinstance(result, tuple):
        data, metadata = result
        return (classic_script(data), metadata) if isinstance(data, str) else result
    return classic_script(result) if isinstance(result, str) else result


def _install_classic_javascript(shell: Any) -> None:
    from IPython.display import Javascript

    formatter = shell.display_formatter.formatters.get("application/javascript")
    if formatter is not None:
        formatter.for_type(Javascript, _classic_javascript)


def _is_captured_by_output_widget(msg_id: str) -> bool:
    """Whether an ``ipywidgets.Output`` is capturing the outputs of request ``msg_id`` (``with out:``)."""
    widgets = sys.modules.get("ipywidgets.widgets.widget")
    output = sys.modules.get("ipywidgets.widgets.widget_output")
    instances = getattr(widgets, "_instances", None)
    if output is None or not isinstance(instances, dict):
        return False
    return any(isinstance(w, output.Output) and w.msg_id == msg_id for w in list(instances.values()))


def widget_callback_script(msg: dict[str, Any], parent: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``legacy_display`` item for a script displayed by a widget's callback, else None.

    The classic notebook put what a widget's event handler displayed into the output of
    the cell holding the widget; JupyterLab sends it to its log console, where a script
    never runs. ``msg`` is an outgoing ``display_data`` message, ``parent`` the request
    being handled (a ``comm_msg`` to the widget's model).
    """
    if msg.get("msg_type") != "display_data" or not parent:
        return None
    header = parent.get("header") or {}
    if header.get("msg_type") != "comm_msg" or (msg.get("parent_header") or {}).get("msg_id") != header.get("msg_id"):
        return None
    content = msg.get("content") or {}
    if "application/javascript" not in (content.get("data") or {}):
        return None
    comm_id = (parent.get("content") or {}).get("comm_id")
    if not isinstance(comm_id, str) or _is_captured_by_output_widget(str(header.get("msg_id"))):
        return None
    return {"type": "legacy_display", "key": uuid.uuid4().hex, "model_id": comm_id, "content": display_content(content)}


def _widget_callback_hook(msg: dict[str, Any]) -> dict[str, Any] | None:
    widget = _widget
    if widget is None or widget._core.closed or getattr(widget, "comm", None) is None or not widget._in_lab_notebook:
        return msg
    kernel = getattr(_shell(), "kernel", None)
    try:
        parent = kernel.get_parent() if kernel is not None else None
        item = widget_callback_script(msg, parent)
    except Exception:  # noqa: BLE001 - a display must never fail because of this hook
        return msg
    if item is None:
        return msg
    widget._core.post(item)
    return None  # shown in the widget's cell, as classic did (not in the log console)


_hooked_publishers: set[int] = set()


def _install_widget_callback_hook(shell: Any) -> None:
    publisher = getattr(shell, "display_pub", None)
    if publisher is None or not hasattr(publisher, "register_hook") or id(publisher) in _hooked_publishers:
        return
    publisher.register_hook(_widget_callback_hook)  # thread-local: widget messages are handled on this thread
    _hooked_publishers.add(id(publisher))


def shim_source() -> str:
    """The page script that installs ``IPython.notebook.kernel`` (synchronously)."""
    return SHIM_PATH.read_text(encoding="utf-8")


def enable_legacy_api() -> None:
    """Install the classic notebook's page API in this notebook's page, bound to this kernel:
    ``IPython.notebook.kernel.execute``, jQuery, RequireJS and ``Jupyter.notebook``
    (docs/legacy.md lists what maps to what). ``%load_ext ipybridge`` calls it.

    Call it again (or re-run ``%load_ext ipybridge``) after reloading the page.
    """
    from IPython.display import display

    display_: Any = display
    # Installs the shim as soon as it is rendered, so a script displayed after it finds it.
    # The empty text/plain keeps an untrusted (reopened) notebook from offering to run it.
    display_({"application/javascript": shim_source(), "text/plain": ""}, raw=True)
    _comm_hold.start()
    display_(_legacy_widget())
    shell = _shell()
    if shell is not None:
        _install_classic_javascript(shell)
        _install_widget_callback_hook(shell)


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext ipybridge``: enable the classic ``kernel.execute`` API in this notebook."""
    enable_legacy_api()
    _allow_reload(ip)


def _allow_reload(ip: Any) -> None:
    """Let ``%load_ext ipybridge`` run again (after a page reload the page needs the shim again).

    IPython skips ``load_ipython_extension`` for an extension it has loaded once;
    forget that once the cell is done, so re-running the cell re-installs the shim.
    """
    manager = getattr(ip, "extension_manager", None)
    events = getattr(ip, "events", None)
    if manager is None or events is None:
        return

    def forget(*_args: Any) -> None:
        manager.loaded.discard(__package__ or "ipybridge")
        events.unregister("post_run_cell", forget)

    events.register("post_run_cell", forget)
