"""A real Jupyter server, a real Chromium, notebooks written with nbformat.

One ``jupyter lab`` server serves both UIs: JupyterLab 4 at ``/lab`` and
Notebook 7 at ``/notebooks``. Tests write a notebook, open it, run its cells
through the menus as a user would, click and read the page.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from playwright.sync_api import Browser, Locator, Page, expect

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
#: Upper bound of any single wait in the e2e tests (ms); generous for 2 slow cores.
WAIT_MS = 60_000
UIS = ("lab", "notebook")


def chromium_path() -> str:
    """Chromium to drive: $IPYBRIDGE_CHROMIUM, else `chromium` on PATH. Never skips."""
    path = os.environ.get("IPYBRIDGE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError(
            "no Chromium found: install Debian's `chromium` package (the README's test command does) "
            "or set IPYBRIDGE_CHROMIUM to a Chromium/Chrome binary"
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SETTINGS = {
    # Keep every cell in the DOM so tests can read any output.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    # No news/update toasts over the page.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


@dataclass
class JupyterServer:
    root: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, method: str = "GET", body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def shutdown_kernels(self) -> None:
        for session in self.api("/api/sessions"):
            with contextlib.suppress(Exception):
                self.api(f"/api/sessions/{session['id']}", method="DELETE")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(root: Path, app: str = "lab", extra_args: list[str] | None = None) -> JupyterServer:
    root.mkdir(parents=True, exist_ok=True)
    settings_dir = root / ".settings"
    for name, value in SETTINGS.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    port = free_port()
    log_path = root / f"server-{port}.log"
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings_dir), "JUPYTER_PLATFORM_DIRS": "1"}
    env.pop("JUPYTER_TOKEN", None)
    args = [
        sys.executable, "-m", "jupyter", app, "--no-browser",
        f"--port={port}", "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
        "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
        f"--ServerApp.root_dir={root}", "--ServerApp.allow_root=True",
        *(extra_args or []),
    ]  # fmt: skip
    log = log_path.open("wb")
    process = subprocess.Popen(args, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = JupyterServer(root, port, process, log_path, extra_args or [])
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter {app} exited:\n{server.log_text()}")
        try:
            server.api("/api/status")
            return server
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"jupyter {app} did not start in 90 s:\n{server.log_text()}")


def stop_server(server: JupyterServer) -> None:
    with contextlib.suppress(Exception):
        server.shutdown_kernels()
    server.process.terminate()
    try:
        server.process.wait(20)
    except subprocess.TimeoutExpired:
        server.process.kill()


def write_notebook(path: Path, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(nb, path)


class NotebookPage:
    """A notebook open in JupyterLab ("lab") or Notebook 7 ("notebook")."""

    def __init__(self, page: Page, server: JupyterServer, ui: str, path: Path) -> None:
        self.page = page
        self.server = server
        self.ui = ui
        self.path = path
        self.console: list[str] = []
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))

    def open(self) -> NotebookPage:
        rel = self.path.relative_to(self.server.root).as_posix()
        url = f"{self.server.url}/lab/tree/{rel}?reset" if self.ui == "lab" else f"{self.server.url}/notebooks/{rel}"
        self.page.goto(url)
        self.cells.first.wait_for(timeout=WAIT_MS)
        # The kernel is up when the status indicator says idle.
        self.wait_kernel_idle()
        return self

    @property
    def cells(self) -> Locator:
        return self.page.locator(".jp-Notebook .jp-Cell")

    def cell(self, index: int) -> Locator:
        return self.cells.nth(index)

    def output(self, index: int) -> Locator:
        return self.cell(index).locator(".jp-OutputArea-output")

    def wait_kernel_idle(self) -> None:
        """Wait until the server has this notebook's kernel up and the page shows it idle."""
        rel = self.path.relative_to(self.server.root).as_posix()
        deadline = time.monotonic() + WAIT_MS / 1000
        while time.monotonic() < deadline:
            sessions = [s for s in self.server.api("/api/sessions") if s.get("path") == rel]
            if sessions and sessions[0].get("kernel", {}).get("execution_state") == "idle":
                break
            self.page.wait_for_timeout(100)  # polling the server, bounded by the deadline
        self.page.wait_for_function(
            """() => {
                const el = document.querySelector('.jp-Notebook-ExecutionIndicator, #jp-Notebook-ExecutionIndicator');
                const status = el && (el.getAttribute('data-status') || '');
                return status === 'idle';
            }""",
            timeout=WAIT_MS,
        )

    def menu(self, menu: str, item: str) -> None:
        self.page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
        self.page.locator(".lm-Menu-itemLabel", has_text=item).first.click()

    def run_all(self) -> None:
        self._until_started(0, lambda: self.menu("Run", "Run All Cells"))

    def run_cell(self, index: int) -> None:
        """Select cell ``index`` and run it with Shift+Enter, as a user would."""

        def press() -> None:
            self.cell(index).locator(".jp-InputPrompt").first.click()
            self.page.keyboard.press("Escape")
            self.page.keyboard.press("Shift+Enter")

        self._until_started(index, press)

    def _until_started(self, index: int, action: Callable[[], None]) -> None:
        """Do ``action`` until cell ``index`` shows it started ([*] or [n]).

        While the page is still connecting to a new kernel, JupyterLab drops a
        run request without a word; a user would press again, so do we.
        """
        prompt = self.cell(index).locator(".jp-InputPrompt").first
        before = prompt.inner_text().strip()
        for _attempt in range(4):
            action()
            try:
                expect(prompt).not_to_have_text(before, timeout=15_000)
                expect(prompt).to_have_text(_STARTED, timeout=15_000)
                return
            except AssertionError:
                self.wait_kernel_idle()
        raise AssertionError(f"cell {index} never started running")

    def wait_cell_done(self, index: int, timeout: int = WAIT_MS) -> None:
        """Wait until cell ``index`` shows an execution count (not '*' or blank)."""
        prompt = self.cell(index).locator(".jp-InputPrompt").first
        expect(prompt).to_have_text(_EXECUTED, timeout=timeout)

    def now(self) -> float:
        """The page's clock (``Date.now()``, ms)."""
        return float(self.page.evaluate("Date.now()"))

    def restart_kernel(self) -> float:
        """Kernel > Restart Kernel, confirmed; returns the page's clock just before confirming."""
        self.menu("Kernel", "Restart Kernel")
        accept = self.page.locator(".jp-Dialog .jp-mod-accept")
        accept.wait_for()
        confirmed_at = self.now()
        accept.click()
        return confirmed_at

    def shutdown_kernel(self) -> float:
        """Kernel > Shut Down Kernel (confirmed if asked); returns the page's clock just before."""
        confirmed_at = self.now()
        self.menu("Kernel", "Shut Down Kernel")
        dialog = self.page.locator(".jp-Dialog .jp-mod-accept")
        try:
            dialog.wait_for(timeout=3000)
        except Exception:  # no confirmation dialog in this UI
            return confirmed_at
        confirmed_at = self.now()
        with contextlib.suppress(Exception):
            dialog.click(timeout=3000)
        return confirmed_at

    def interrupt_kernel(self) -> None:
        self.menu("Kernel", "Interrupt Kernel")

    def save(self) -> None:
        self.page.keyboard.press("Control+s")


_EXECUTED = re.compile(r"\[\d+\]")
_STARTED = re.compile(r"\[(\*|\d+)\]")


class Jupyter:
    """Opens notebooks in one server from one browser; one page per notebook."""

    def __init__(self, server: JupyterServer, browser: Browser, artifacts: Path) -> None:
        self.server = server
        self.browser = browser
        self.artifacts = artifacts
        self.pages: list[NotebookPage] = []

    def open(
        self, ui: str, cells: list[str], name: str | None = None, *, device_scale_factor: float = 1
    ) -> NotebookPage:
        """Open a new notebook of ``cells``; ``device_scale_factor`` is the page's devicePixelRatio."""
        path = self.server.root / f"{name or 'nb'}-{uuid.uuid4().hex[:8]}.ipynb"
        write_notebook(path, cells)
        context = self.browser.new_context(
            viewport={"width": 1400, "height": 1000}, device_scale_factor=device_scale_factor
        )
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        nb = NotebookPage(page, self.server, ui, path)
        self.pages.append(nb)
        return nb.open()

    def close(self, failed_test: str | None) -> None:
        for i, nb in enumerate(self.pages):
            if failed_test:
                self.artifacts.mkdir(parents=True, exist_ok=True)
                stem = f"{failed_test}-{i}"
                with contextlib.suppress(Exception):
                    nb.page.screenshot(path=str(self.artifacts / f"{stem}.png"), full_page=True)
                (self.artifacts / f"{stem}-console.txt").write_text("\n".join(nb.console))
            with contextlib.suppress(Exception):
                nb.page.context.close()
        if failed_test:
            (self.artifacts / f"{failed_test}-server.log").write_text(self.server.log_text())
        self.server.shutdown_kernels()


@contextlib.contextmanager
def launched_chromium() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class VoilaServer:
    """``voila`` serving one notebook as a dashboard: every page visit gets its own kernel."""

    root: Path
    notebook: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kernel_alive(self, kernel_id: str) -> bool:
        """Whether the server still has this kernel and it is not dead (Voila's /api/kernels/<id>)."""
        try:
            with urllib.request.urlopen(f"{self.url}/api/kernels/{kernel_id}", timeout=30) as response:
                model = json.loads(response.read())
        except OSError:
            return False
        return model.get("id") == kernel_id and model.get("execution_state") not in ("dead", None)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_voila(root: Path, cells: list[str], name: str = "dashboard") -> VoilaServer:
    """Write ``cells`` as a notebook in ``root`` and serve it with ``voila``.

    Token-less on 127.0.0.1 and a free port, as a dashboard is published; the
    server's log goes to ``root`` (the fixture copies it to test-artifacts when
    a test fails). Waits at most 90 s for the server to answer.
    """
    root.mkdir(parents=True, exist_ok=True)
    notebook = root / f"{name}.ipynb"
    write_notebook(notebook, cells)
    port = free_port()
    log_path = root / f"voila-{port}.log"
    env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1"}
    env.pop("JUPYTER_TOKEN", None)
    args = [
        sys.executable, "-m", "voila", str(notebook), "--no-browser",
        f"--port={port}", "--Voila.ip=127.0.0.1", "--Voila.port_retries=0",
        "--show_tracebacks=True", "--Voila.token=",
    ]  # fmt: skip
    log = log_path.open("wb")
    process = subprocess.Popen(args, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = VoilaServer(root, notebook, port, process, log_path)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"voila exited:\n{server.log_text()}")
        try:
            # A static file: asking for the dashboard itself would start a kernel.
            with urllib.request.urlopen(f"{server.url}/voila/static/voila.js", timeout=5):
                return server
        except OSError:
            time.sleep(0.2)
    stop_voila(server)
    raise RuntimeError(f"voila did not start in 90 s:\n{server.log_text()}")


def stop_voila(server: VoilaServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(10)


@dataclass
class MarimoServer:
    """``marimo edit`` or ``marimo run`` serving one notebook, headless, token-less, on 127.0.0.1."""

    notebook: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_marimo(notebook: Path, mode: str) -> MarimoServer:
    """Serve ``notebook`` with ``marimo edit`` or ``marimo run``; waits at most 90 s for it to answer."""
    port = free_port()
    log_path = notebook.with_name(f"marimo-{mode}-{port}.log")
    args = [
        sys.executable, "-m", "marimo", mode, str(notebook), "--headless", "--host=127.0.0.1",
        f"--port={port}", "--no-token", *(["--skip-update-check"] if mode == "edit" else []),
    ]  # fmt: skip
    log = log_path.open("wb")
    env = {**os.environ, "MARIMO_SKIP_UPDATE_CHECK": "1"}
    process = subprocess.Popen(args, cwd=notebook.parent, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = MarimoServer(notebook, port, process, log_path)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"marimo {mode} exited:\n{server.log_text()}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=5):
                return server
        except OSError:
            time.sleep(0.2)
    stop_marimo(server)
    raise RuntimeError(f"marimo {mode} did not start in 90 s:\n{server.log_text()}")


def stop_marimo(server: MarimoServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(10)
