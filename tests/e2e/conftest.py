from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .harness import UIS, WAIT_MS, Jupyter, JupyterServer, launched_chromium, start_server, stop_server

# Every expect() waits up to WAIT_MS for its condition (never a fixed sleep).
expect.set_options(timeout=WAIT_MS)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    with launched_chromium() as browser:
        yield browser


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    server = start_server(tmp_path_factory.mktemp("jupyter"))
    yield server
    stop_server(server)


@pytest.fixture
def jupyter(server: JupyterServer, browser, request: pytest.FixtureRequest) -> Iterator[Jupyter]:  # type: ignore[no-untyped-def]
    session = Jupyter(server, browser, ARTIFACTS)
    yield session
    failed = request.node.stash.get(FAILED, False)
    session.close(re.sub(r"[^\w.-]+", "_", request.node.name) if failed else None)


@pytest.fixture(params=UIS)
def ui(request: pytest.FixtureRequest) -> str:
    return str(request.param)
