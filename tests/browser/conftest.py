"""Headless Chromium against the real server: fixtures for the web chat and console tests.

One server per test session (uvicorn in a thread, ``create_app(load_agent(config),
wait_for_model=True)``) with the real fine-tuned text model (``trained_model_dir``), the real
image analyser, and the test Redis where one answers (the in-memory store otherwise). Each test
gets fresh browser contexts, so fresh local storage and a conversation of its own.

Chromium is Debian's ``/usr/bin/chromium`` driven by Playwright (never ``playwright install``).
Screenshots go to ``test-artifacts/browser/`` (gitignored).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser.driving import AGENT_TOKEN, IMAGE_LIMIT_BYTES

CHROMIUM = Path(os.environ.get("AGENT_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1100, "height": 850}


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveServer:
    url: str
    store: str  # "redis" | "memory"
    image_limit_bytes: int
    agent: Any  # the server's agent.runtime.Agent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _store_env(request: pytest.FixtureRequest) -> tuple[dict[str, str], str]:
    """The test Redis with a key prefix of this session's own, or the in-memory store."""
    try:
        url = request.getfixturevalue("redis_url")
    except pytest.skip.Exception:
        return {}, "memory"
    return {"AGENT_REDIS_URL": url, "AGENT_KEY_PREFIX": f"test-browser-{uuid.uuid4().hex[:10]}"}, "redis"


def _delete_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        for pattern in (f"{prefix}:*", f"*{{{prefix}*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


@contextmanager
def _serve(env: dict[str, str], *, store: str) -> Iterator[LiveServer]:
    """The real app (``load_agent`` + ``create_app``) on a free port, in a thread, until the block ends."""
    import uvicorn

    from agent.config import AgentConfig
    from agent.runtime import load_agent
    from agent.server import create_app

    agent = load_agent(AgentConfig.from_env(env))
    app = create_app(agent, wait_for_model=True)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"browser-test-server-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 300
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the test server did not start (see the log above)")
        time.sleep(0.1)
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}", store=store, image_limit_bytes=IMAGE_LIMIT_BYTES, agent=agent)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _base_env(model_dir: Path) -> dict[str, str]:
    env = {"AGENT_MODEL_DIR": str(model_dir), "AGENT_VISION_MAX_BYTES": str(IMAGE_LIMIT_BYTES),
           "AGENT_NLU_THREADS": "2"}
    if os.environ.get("AGENT_CACHE_DIR"):  # where trained heads are cached (.ci/run sets it)
        env["AGENT_CACHE_DIR"] = os.environ["AGENT_CACHE_DIR"]
    return env


@pytest.fixture(scope="session")
def live_server(request: pytest.FixtureRequest, trained_model_dir: Path) -> Iterator[LiveServer]:
    store_env, store = _store_env(request)
    try:
        with _serve({**_base_env(trained_model_dir), **store_env}, store=store) as server:
            yield server
    finally:
        if store == "redis":
            _delete_keys(store_env["AGENT_REDIS_URL"], store_env["AGENT_KEY_PREFIX"])


@pytest.fixture(scope="session")
def vision_ready(live_server: LiveServer) -> None:
    """Builds the server's image analyser before an image test (its first build trains and caches
    the image-kind head, which would otherwise hold up the first image turn for minutes)."""
    live_server.agent.image_analyzer  # noqa: B018 - built on first access, thread-safe


@pytest.fixture(scope="module")
def token_server(trained_model_dir: Path) -> Iterator[LiveServer]:
    """A second server whose hand-off API needs ``Authorization: Bearer <AGENT_TOKEN>`` (memory store)."""
    env = {**_base_env(trained_model_dir), "AGENT_SERVER_AGENT_TOKEN": AGENT_TOKEN}
    with _serve(env, store="memory") as server:
        yield server


@pytest.fixture(scope="package")  # Playwright's sync API keeps a loop running: close it before other tests
def chromium() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (install Debian's chromium, or set AGENT_TEST_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is in the dev extra")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@dataclass
class Pages:
    """Opens pages of the live server in fresh browser contexts and records what goes wrong in them."""

    server: LiveServer
    browser: object
    artifacts: Path
    errors: list[str]
    contexts: list[object]

    def context(self, *, phone: bool = False, server: LiveServer | None = None) -> object:
        options = {"viewport": PHONE, "is_mobile": True, "has_touch": True} if phone else {"viewport": DESKTOP}
        base_url = (server or self.server).url
        context = self.browser.new_context(base_url=base_url, **options)  # type: ignore[attr-defined]
        context.set_default_timeout(20_000)
        self.contexts.append(context)
        return context

    def open(self, path: str, *, context: object | None = None, phone: bool = False,
             server: LiveServer | None = None) -> object:
        context = context or self.context(phone=phone, server=server)
        page = context.new_page()  # type: ignore[attr-defined]
        page.on("pageerror", lambda e: self.errors.append(f"{path}: uncaught {e}"))
        page.on("dialog", lambda d: (self.errors.append(f"{path}: a dialog opened: {d.message}"), d.dismiss()))
        page.goto(path)
        page.wait_for_selector("[data-loaded=true]", state="attached")
        return page

    def shot(self, page: object, name: str, *, full_page: bool = False) -> Path:
        path = self.artifacts / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)  # type: ignore[attr-defined]
        return path


@pytest.fixture
def pages(live_server: LiveServer, chromium: object, artifacts: Path) -> Iterator[Pages]:
    helper = Pages(server=live_server, browser=chromium, artifacts=artifacts, errors=[], contexts=[])
    yield helper
    for context in helper.contexts:
        context.close()  # type: ignore[attr-defined]
    assert not helper.errors, "the page raised errors or opened dialogs: " + "; ".join(helper.errors)


@pytest.fixture(scope="session")
def receipts(shared_data: Path) -> Callable[[str], Path]:
    folder = shared_data / "images" / "receipts"
    if not folder.is_dir():
        pytest.skip(f"no receipts at {folder}")

    def receipt(number: str) -> Path:
        return folder / f"{number}.jpg"

    return receipt
