"""Reusable pieces for browser tests: a Loupe server on a free port and headless Chromium.

tests/conftest.py plugs this module in, so its fixtures (``browser``, ``page``, ``loupe_server``,
``demo_server``) are available everywhere; do not import them into a test module as well: a second
session-scoped ``browser`` would start a second Playwright on the same thread. Mark the tests
``@pytest.mark.browser``. Nothing is downloaded: Playwright drives Debian's
``/usr/bin/chromium``, never a browser of its own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
VIEWPORT = {"width": 1440, "height": 1000}
START_TIMEOUT = 90.0  # seconds; the demo import and Streamlit's first start on a slow machine
UI_TIMEOUT = 30_000  # milliseconds, for Playwright waits

requires_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)"
)


@dataclass
class LoupeServer:
    """A ``loupe run`` process serving one LOUPE_HOME."""

    url: str
    home: Path
    log: Path
    process: subprocess.Popen[bytes]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(home: Path, *, demo: bool = False, timeout: float = START_TIMEOUT) -> LoupeServer:
    """Start ``loupe run`` on a free port and wait until Streamlit answers its health check."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home / "server.log"
    env = {
        **os.environ,
        "LOUPE_HOME": str(home),
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        # No file watching: a test never edits the app, and watching the repo (.venv included) is slow.
        "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none",
    }
    env.pop("DATABASE_URL", None)
    command = [sys.executable, "-m", "core", "run", "--port", str(port)]
    if not demo:
        command.append("--no-demo")
    with log.open("wb") as out:
        # A session of its own: stop_server ends `loupe run` and the Streamlit child it starts, and nothing else.
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = LoupeServer(url=f"http://127.0.0.1:{port}", home=home, log=log, process=process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"loupe run exited with code {process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    stop_server(server)
    raise RuntimeError(f"loupe run did not answer on {server.url} within {timeout:.0f}s:\n{server.log_tail()}")


def stop_server(server: LoupeServer) -> None:
    """Stop the server's process group (SIGTERM, then SIGKILL after 10 s)."""
    if server.process.poll() is not None:
        return
    os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)


@pytest.fixture()
def loupe_server(tmp_path: Path) -> Iterator[LoupeServer]:
    """A server on an empty LOUPE_HOME (``--no-demo``)."""
    server = start_server(tmp_path / "home")
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture()
def demo_server(tmp_path: Path) -> Iterator[LoupeServer]:
    """A server started the way a new user starts it: ``loupe run``, which loads the demo project."""
    server = start_server(tmp_path / "home", demo=True)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium for the whole session."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser tab (own cookies and storage) with a desktop-sized viewport."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(UI_TIMEOUT)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


def open_app(page: Any, server: LoupeServer) -> None:
    """Load the app and wait until the first page has rendered."""
    page.goto(server.url)
    page.get_by_role("heading", name="Projects").wait_for()
    wait_idle(page)


def go_to(page: Any, title: str) -> None:
    """Open a page from the sidebar navigation and wait for its title."""
    # A click while the current page is still rerunning can be swallowed by that rerun.
    wait_idle(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title, exact=True).wait_for()
    wait_idle(page)


def wait_idle(page: Any, timeout: float = UI_TIMEOUT) -> None:
    """Wait until Streamlit has finished running the script (its status widget disappears)."""
    page.wait_for_timeout(300)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=timeout)


def grid(page: Any) -> Any:
    """The AgGrid component, which renders in its own iframe."""
    return page.frame_locator('iframe[title^="st_aggrid"]')


def screenshot(page: Any, directory: Path, name: str) -> Path:
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
