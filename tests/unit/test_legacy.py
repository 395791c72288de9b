"""The kernel side of the legacy kernel.execute API: request parsing, result
shaping and LegacyCore over a fake page (no browser, no kernel)."""

from __future__ import annotations

import base64
import threading
from typing import Any

import pytest

from ipybridge._protocol import ProtocolError
from ipybridge.legacy import (
    LegacyCore,
    display_content,
    ends_with_semicolon,
    evaluate_user_expressions,
    jsonable,
    parse_request,
    shim_source,
)

from .fakepage import FakePage, envelope


# ------------------------------------------------------------------ pure parts
def test_requests_default_like_the_classic_notebook() -> None:
    request = parse_request({"msg_id": "m1", "code": "x = 1"})
    assert (request.msg_id, request.code, request.silent, request.store_history) == ("m1", "x = 1", True, False)
    assert request.user_expressions == {}


def test_silent_never_stores_history_and_options_are_honoured() -> None:
    assert parse_request({"code": "", "silent": True, "store_history": True}).store_history is False
    loud = parse_request({"code": "", "silent": False, "store_history": True, "user_expressions": {"a": "1+1"}})
    assert (loud.silent, loud.store_history, loud.user_expressions) == (False, True, {"a": "1+1"})
    assert parse_request({"code": ""}).msg_id  # one is made up when the page sent none


@pytest.mark.parametrize(
    "raw",
    [
        {"code": 1},
        {},
        {"code": "", "silent": "yes"},
        {"code": "", "store_history": 1},
        {"code": "", "msg_id": 5},
        {"code": "", "msg_id": "x" * 300},
        {"code": "", "user_expressions": ["a"]},
        {"code": "", "user_expressions": {"a": 1}},
    ],
)
def test_bad_requests_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        parse_request(raw)


def test_jsonable_turns_bytes_into_base64_like_the_wire() -> None:
    bundle = {"image/png": b"\x89PNG", "text/plain": "<Figure>", "application/json": {"a": [1, 2.5, None]}}
    assert jsonable(bundle) == {
        "image/png": base64.b64encode(b"\x89PNG").decode(),
        "text/plain": "<Figure>",
        "application/json": {"a": [1, 2.5, None]},
    }
    assert jsonable({"nan": float("nan"), "t": (1, 2), "obj": object}) == {
        "nan": "nan",
        "t": [1, 2],
        "obj": str(object),
    }


def test_display_content_keeps_data_metadata_and_transient() -> None:
    content = {"data": {"text/html": "<b>x</b>"}, "metadata": {}, "transient": {"display_id": "d1"}}
    assert display_content(content) == content
    assert display_content({"data": {"text/plain": "x"}}) == {
        "data": {"text/plain": "x"},
        "metadata": {},
        "transient": {},
    }


@pytest.mark.parametrize(
    ("code", "hidden"),
    [
        ("1 + 1", False),
        ("1 + 1;", True),
        ("1 + 1;  # quiet", True),
        ("x = 'a;'\nx", False),
        ("s = 'ends with ;'", False),
        ("f(\n 1);\n\n", True),
        ("", False),
        ("'unterminated", False),
    ],
)
def test_a_trailing_semicolon_hides_the_result(code: str, hidden: bool) -> None:
    assert ends_with_semicolon(code) is hidden


def test_user_expressions_give_mimebundles_or_errors() -> None:
    out = evaluate_user_expressions({"x": "x * 2", "bad": "1/0", "none": "None"}, {"x": 21})
    assert out["x"] == {"status": "ok", "data": {"text/plain": "42"}, "metadata": {}}
    assert out["none"]["data"] == {"text/plain": "None"}
    assert (out["bad"]["status"], out["bad"]["ename"], out["bad"]["evalue"]) == (
        "error",
        "ZeroDivisionError",
        "division by zero",
    )


def test_the_shim_is_built_and_installs_the_classic_names() -> None:
    source = shim_source()
    assert "__ipybridgeLegacy" in source
    assert "installGlobals" in source
    assert "export " not in source  # a classic script: application/javascript outputs are not modules


# ----------------------------------------------------------- LegacyCore
@pytest.fixture
def page() -> FakePage:
    return FakePage()


@pytest.fixture
def core(page: FakePage):  # type: ignore[no-untyped-def]
    core = LegacyCore(page.send, allow_execute=True, namespace={})
    core.receive(*envelope({"type": "hello"}))
    yield core
    core.close()


def execute(core: LegacyCore, ident: int, code: str, **options: Any) -> None:
    core.receive(*envelope({"type": "legacy_execute", "id": ident, "msg_id": f"m{ident}", "code": code, **options}))


def outputs_of(page: FakePage, ident: int) -> list[tuple[str, Any]]:
    """The outputs of call ``ident`` in the order the page receives them."""
    seen: list[tuple[str, Any]] = []
    for item, _ in page.items():
        if item.get("id") != ident:
            continue
        if item["type"] == "output":
            if seen and seen[-1][0] == item["stream"]:  # one stream, split across messages
                seen[-1] = (item["stream"], seen[-1][1] + item["text"])
            else:
                seen.append((item["stream"], item["text"]))
        elif item["type"] == "legacy_output":
            assert item["msg_id"] == f"m{ident}"
            seen.append((item["msg_type"], item["content"]))
    return seen


def test_prints_result_and_reply_in_order(core: LegacyCore, page: FakePage) -> None:
    execute(core, 1, "print('a')\nx = 6\nprint('b')\nx * 7", silent=False)
    reply = page.value_of(page.answer("v1", 1))
    assert reply["status"] == "ok"
    assert reply["payload"] == []
    seen = outputs_of(page, 1)
    assert seen[0] == ("stdout", "a\nb\n")
    assert seen[1][0] == "execute_result"
    assert seen[1][1]["data"] == {"text/plain": "42"}
    assert core.namespace["x"] == 6


def test_silent_has_no_result_but_keeps_prints(core: LegacyCore, page: FakePage) -> None:
    execute(core, 1, "print('hi')\n40 + 2")
    page.value_of(page.answer("v1", 1))
    assert outputs_of(page, 1) == [("stdout", "hi\n")]
    execute(core, 2, "40 + 2;", silent=False)
    page.value_of(page.answer("v1", 2))
    assert outputs_of(page, 2) == []


def test_errors_become_error_outputs_and_error_replies(core: LegacyCore, page: FakePage) -> None:
    execute(core, 1, "print('before')\n1/0")
    answer = page.answer("v1", 1)
    assert answer["type"] == "result"  # the call itself worked: the error is the code's
    reply = page.value_of(answer)
    assert (reply["status"], reply["ename"], reply["evalue"]) == ("error", "ZeroDivisionError", "division by zero")
    seen = outputs_of(page, 1)
    assert seen[0] == ("stdout", "before\n")
    assert seen[1][0] == "error"
    assert (seen[1][1]["ename"], seen[1][1]["evalue"]) == ("ZeroDivisionError", "division by zero")
    assert seen[1][1]["traceback"][-1] == "ZeroDivisionError: division by zero"
    assert not any("_core.py" in line or "legacy.py" in line for line in seen[1][1]["traceback"])


def test_syntax_errors_are_reported_too(core: LegacyCore, page: FakePage) -> None:
    execute(core, 1, "1 +")
    reply = page.value_of(page.answer("v1", 1))
    assert reply["ename"] == "SyntaxError"


def test_user_expressions_are_evaluated_after_the_code(core: LegacyCore, page: FakePage) -> None:
    execute(core, 1, "y = 5", user_expressions={"double": "y * 2"})
    reply = page.value_of(page.answer("v1", 1))
    assert reply["user_expressions"]["double"]["data"] == {"text/plain": "10"}


def test_calls_run_in_the_order_they_were_made(core: LegacyCore, page: FakePage) -> None:
    for ident in range(1, 21):
        execute(core, ident, f"order = globals().get('order', []) + [{ident}]")
    page.answer("v1", 20)
    assert core.namespace["order"] == list(range(1, 21))


def test_bad_items_get_structured_errors_and_nothing_runs(core: LegacyCore, page: FakePage) -> None:
    core.receive(*envelope({"type": "legacy_execute", "id": 1, "code": 5}))
    assert page.answer("v1", 1)["error"]["ename"] == "ProtocolError"
    core.receive(*envelope({"type": "legacy_execute", "id": "x", "code": "ran = True"}))
    page.wait_for(lambda i: i["type"] == "protocol_error")
    assert "ran" not in core.namespace


def test_without_allow_execute_nothing_runs(page: FakePage) -> None:
    core = LegacyCore(page.send, allow_execute=False, namespace={})
    try:
        core.receive(*envelope({"type": "hello"}))
        execute(core, 1, "ran = True")
        assert page.answer("v1", 1)["error"]["ename"] == "PermissionError"
        assert "ran" not in core.namespace
    finally:
        core.close()


# ------------------------------------------------------------ IPython glue
class FakeEvents:
    def __init__(self) -> None:
        self.callbacks: dict[str, list[Any]] = {}

    def register(self, event: str, fn: Any) -> None:
        self.callbacks.setdefault(event, []).append(fn)

    def unregister(self, event: str, fn: Any) -> None:
        self.callbacks[event].remove(fn)

    def trigger(self, event: str) -> None:
        for fn in list(self.callbacks.get(event, [])):
            fn(None)


def test_load_ext_can_run_again_after_its_cell() -> None:
    from ipybridge.legacy import _allow_reload

    class Manager:
        loaded = {"ipybridge", "other"}

    ip = type("Shell", (), {"extension_manager": Manager(), "events": FakeEvents()})()
    _allow_reload(ip)
    ip.events.trigger("post_run_cell")
    assert ip.extension_manager.loaded == {"other"}
    assert ip.events.callbacks["post_run_cell"] == []  # once only


def test_store_history_numbers_the_call_after_a_running_cell() -> None:
    from ipybridge.legacy import _record_output, _reserve_execution_count

    class History:
        def __init__(self) -> None:
            self.inputs: list[tuple[int, str, str]] = []
            self.output_hist: dict[int, Any] = {}

        def store_inputs(self, count: int, parsed: str, raw: str) -> None:
            self.inputs.append((count, parsed, raw))

    class Shell:
        execution_count = 8  # a cell numbered 7 is running: IPython counted it when it started
        history_manager = History()
        displayhook = type("Hook", (), {})()
        user_ns: dict[str, Any] = {}

        def transform_cell(self, code: str) -> str:
            return code + "\n"

        def push(self, values: dict[str, Any], interactive: bool = True) -> None:
            self.user_ns.update(values)

    shell = Shell()
    assert _reserve_execution_count(shell, "6 * 7") == 8
    assert shell.execution_count == 9  # the running cell keeps 7, the next cell gets 9
    assert shell.history_manager.inputs == [(8, "6 * 7\n", "6 * 7")]
    _record_output(shell, 8, 42)
    assert shell.user_ns["_"] == 42
    assert shell.user_ns["_8"] == 42
    assert shell.history_manager.output_hist[8] == 42
    _record_output(shell, 9, "next")
    assert (shell.user_ns["_"], shell.user_ns["__"]) == ("next", 42)


def test_the_widget_says_what_it_is_where_widgets_do_not_render() -> None:
    from ipybridge.legacy import LegacyWidget

    widget = LegacyWidget()
    try:
        assert widget.allow_execute is True
        assert "IPython.notebook.kernel.execute" in repr(widget)
    finally:
        widget.close()


# ------------------------------------------------------------- hostile input
def test_malformed_legacy_items_get_structured_answers_and_run_nothing() -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10)
    junk = st.recursive(
        scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3)
    )
    items = st.fixed_dictionaries(
        {"type": st.just("legacy_execute"), "view": st.just("v1")},
        optional={
            "id": st.integers(-3, 2**60) | scalars,
            "msg_id": st.text(max_size=300) | scalars,
            "code": st.just("ran = True") | scalars,
            "silent": scalars,
            "store_history": scalars,
            "user_expressions": junk,
        },
    )

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(items, min_size=1, max_size=4))
    def check(batch: list[dict[str, Any]]) -> None:
        page = FakePage()
        namespace: dict[str, Any] = {}
        core = LegacyCore(page.send, allow_execute=True, namespace=namespace)
        try:
            core.receive({"ipb": 1, "msgs": [{"type": "hello", "view": "v1"}, *batch]}, [])
            for item in batch:
                ident = item.get("id")
                valid_id = isinstance(ident, int) and not isinstance(ident, bool) and 0 <= ident < 2**53
                if valid_id:
                    answer = page.answer("v1", ident)
                    assert answer["type"] in ("result", "error")
                    if answer["type"] == "result":
                        assert page.value_of(answer)["status"] in ("ok", "error")
            runnable = [
                i
                for i in batch
                if isinstance(i.get("code"), str)
                and isinstance(i.get("id"), int)
                and not isinstance(i.get("id"), bool)
                and 0 <= i["id"] < 2**53
            ]
            if not runnable:
                assert "ran" not in namespace
        finally:
            core.close()

    check()


# ------------------------------------------------------- the classic page, kernel side
def test_the_shim_carries_jquery_and_requirejs_with_their_licenses() -> None:
    source = shim_source()
    assert "jQuery JavaScript Library v3" in source  # the real jQuery (npm), not a look-alike
    assert "@license RequireJS 2." in source  # the real require.js (npm)
    assert "base/js/namespace" in source
    assert "<script src=" not in source  # nothing loaded from elsewhere


def test_classic_scripts_run_with_element_and_this_and_keep_their_vars_local() -> None:
    from ipybridge.legacy import classic_script

    wrapped = classic_script("var x = 1;\nelement.text(x); // a last-line comment")
    # The script's body is a function of `element` (its vars stay local, as the classic
    # notebook's eval inside OutputArea kept them); the hub decides what element/this are.
    assert "(function (element) {\nvar x = 1;\nelement.text(x); // a last-line comment\n}" in wrapped
    assert "hub.classic.runOutputScript(body, el)" in wrapped
    assert "body.call(self, el)" in wrapped  # no ipybridge in the page (classic, nbviewer): as before


def test_javascript_displays_are_wrapped_once_the_legacy_api_is_on() -> None:
    from IPython.core.formatters import DisplayFormatter
    from IPython.display import Javascript

    from ipybridge.legacy import _install_classic_javascript

    shell = type("Shell", (), {"display_formatter": DisplayFormatter()})()
    before, _ = shell.display_formatter.format(Javascript("element.text('hi')"))
    assert before["application/javascript"] == "element.text('hi')"
    _install_classic_javascript(shell)
    after, _ = shell.display_formatter.format(Javascript("element.text('hi')"))
    assert "runOutputScript" in after["application/javascript"]
    assert "\nelement.text('hi')\n" in after["application/javascript"]


def _comm_msg(msg_id: str = "req-1", comm_id: str = "button-model") -> dict[str, Any]:
    return {"header": {"msg_id": msg_id, "msg_type": "comm_msg"}, "content": {"comm_id": comm_id, "data": {}}}


def _display(parent_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "msg_type": "display_data",
        "parent_header": {"msg_id": parent_id},
        "content": {"data": data, "metadata": {}},
    }


def test_a_script_displayed_by_a_widget_callback_goes_to_the_widgets_cell() -> None:
    from ipybridge.legacy import widget_callback_script

    item = widget_callback_script(_display("req-1", {"application/javascript": "alert(1)"}), _comm_msg())
    assert item is not None
    assert (item["type"], item["model_id"]) == ("legacy_display", "button-model")
    assert item["content"]["data"] == {"application/javascript": "alert(1)"}
    # Only scripts displayed while a widget message is handled; everything else is left alone.
    assert widget_callback_script(_display("req-1", {"text/plain": "x"}), _comm_msg()) is None
    cell = {"header": {"msg_id": "req-1", "msg_type": "execute_request"}, "content": {}}
    assert widget_callback_script(_display("req-1", {"application/javascript": "1"}), cell) is None
    assert widget_callback_script(_display("other", {"application/javascript": "1"}), _comm_msg()) is None
    assert widget_callback_script(_display("req-1", {"application/javascript": "1"}), None) is None
    stream = {"msg_type": "stream", "parent_header": {"msg_id": "req-1"}, "content": {"text": "x"}}
    assert widget_callback_script(stream, _comm_msg()) is None


def test_a_script_inside_an_output_widget_stays_with_it() -> None:
    import ipywidgets

    from ipybridge.legacy import widget_callback_script

    out = ipywidgets.Output()
    try:
        out.msg_id = "req-1"  # what `with out:` sets while the callback runs
        assert widget_callback_script(_display("req-1", {"application/javascript": "1"}), _comm_msg()) is None
    finally:
        out.close()


def test_the_widget_callback_hook_passes_everything_through_without_a_lab_page() -> None:
    from ipybridge import legacy

    message = _display("req-1", {"application/javascript": "1"})
    assert legacy._widget_callback_hook(message) is message  # no legacy widget at all
    widget = legacy.LegacyWidget()
    previous, legacy._widget = legacy._widget, widget
    try:
        assert widget._legacy_model_id == widget.model_id  # the view finds itself with it
        assert legacy._widget_callback_hook(message) is message  # its view found no JupyterLab notebook
    finally:
        legacy._widget = previous
        widget.close()


def test_with_a_lab_page_a_widget_callbacks_script_is_sent_to_the_page_not_the_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ipybridge import legacy

    parent = _comm_msg("req-9", "the-button")
    kernel = type("Kernel", (), {"get_parent": lambda self: parent})()
    monkeypatch.setattr(legacy, "_shell", lambda: type("Shell", (), {"kernel": kernel})())
    widget = legacy.LegacyWidget()
    posted: list[dict[str, Any]] = []
    monkeypatch.setattr(widget._core, "post", lambda item, *args, **kwargs: posted.append(item))
    monkeypatch.setattr(legacy, "_widget", widget)
    try:
        widget._in_lab_notebook = True  # what its view says once it found its notebook panel
        script = _display("req-9", {"application/javascript": "element.text('hi')", "text/plain": "<js>"})
        assert legacy._widget_callback_hook(script) is None  # not to JupyterLab's log console
        [item] = posted
        assert (item["type"], item["model_id"]) == ("legacy_display", "the-button")
        assert item["content"]["data"]["application/javascript"] == "element.text('hi')"
        html = _display("req-9", {"text/html": "<b>x</b>"})
        assert legacy._widget_callback_hook(html) is html  # only scripts are moved
    finally:
        widget.close()


# ------------------------------------------------------------ comms opened right after %load_ext
class _FakeComm:
    def __init__(self, target_name: str) -> None:
        self.target_name = target_name


def test_comm_messages_wait_for_their_target_in_order_and_widgets_never_wait(monkeypatch):
    from ipybridge import legacy

    monkeypatch.setattr(legacy, "_hook_comm_publish", lambda: True)
    hold = legacy._CommHold()
    sent = []

    def publish(comm, msg_type, **kwargs):
        sent.append((comm.target_name, msg_type))

    page, other, widget = _FakeComm("temperature"), _FakeComm("dice"), _FakeComm("jupyter.widget")
    hold.start()
    assert hold.take(page, publish, ("comm_open",), {})
    assert not hold.take(widget, publish, ("comm_open",), {})  # ipywidgets' comms go at once
    assert hold.take(other, publish, ("comm_open",), {})
    assert hold.take(page, publish, ("comm_msg",), {})
    assert sent == []
    hold.registered("temperature")  # the page registered it: its comm's messages go, in order
    assert sent == [("temperature", "comm_open"), ("temperature", "comm_msg")]
    assert not hold.take(page, publish, ("comm_close",), {})  # a registered target's comms never wait
    hold.release()  # time is up: the rest goes
    assert sent[-1] == ("dice", "comm_open")

    class _NoLock:  # after the window, with nothing held, a comm message takes no lock
        def __enter__(self):
            raise AssertionError("took the lock")

        def __exit__(self, *exc):
            return False

    hold._lock = _NoLock()
    assert not hold.take(_FakeComm("late"), publish, ("comm_open",), {})


def test_held_comm_messages_go_by_themselves_after_the_bound(monkeypatch):
    from ipybridge import legacy

    monkeypatch.setattr(legacy, "_hook_comm_publish", lambda: True)
    monkeypatch.setattr(legacy, "COMM_HOLD_S", 0.05)
    hold = legacy._CommHold()
    sent = threading.Event()
    hold.start()
    assert hold.take(_FakeComm("x"), lambda comm, *a, **k: sent.set(), ("comm_open",), {})
    assert sent.wait(5)  # the page never registered it (nbconvert, a target nobody registers)


def test_the_classic_notebook_itself_lets_held_comms_go_at_once(monkeypatch):
    from ipybridge import legacy

    monkeypatch.setattr(legacy, "_hook_comm_publish", lambda: True)
    hold = legacy._CommHold()
    sent = []
    hold.start()
    assert hold.take(_FakeComm("t"), lambda comm, *a, **k: sent.append(a), ("comm_open",), {})
    hold.registered("*")  # the legacy view found the real classic notebook: it registers targets itself
    assert sent == [("comm_open",)]
    assert not hold.take(_FakeComm("u"), lambda *a, **k: None, ("comm_open",), {})
