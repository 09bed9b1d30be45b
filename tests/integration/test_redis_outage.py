"""Redis stopped and restarted under a running HTTP server: 503 while down, nothing half-written,
and recovery without a restart of the process."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from agent.config import AgentConfig
from agent.server import create_app
from tests.test_server import build_agent

pytestmark = pytest.mark.redis


class RedisProcess:
    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="redis-outage-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisProcess()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


def test_redis_down_gives_503_and_recovers(redis_process: RedisProcess) -> None:
    config = AgentConfig.from_env({"AGENT_REDIS_URL": f"redis://127.0.0.1:{redis_process.port}/0",
                                   "AGENT_STORE_SOCKET_TIMEOUT_S": "0.5"})
    with TestClient(create_app(build_agent(config), wait_for_model=True)) as client:
        ok = client.post("/v1/conversations/o1/turns", json={"text": "I lost my card"})
        assert ok.status_code == 200
        before = client.get("/v1/conversations/o1").json()

        redis_process.stop()
        down = client.post("/v1/conversations/o1/turns", json={"text": "thanks"})
        assert down.status_code == 503
        assert down.json()["error"].startswith("state store unavailable")
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["state_store"] == "state store unavailable"
        assert client.get("/healthz").status_code == 200  # the process stays up

        redis_process.start()  # same port, same append-only file: what was saved is back
        deadline = time.monotonic() + 10
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get("/readyz").status_code == 200
        assert client.get("/v1/conversations/o1").json() == before  # the failed turn left nothing
        again = client.post("/v1/conversations/o1/turns", json={"text": "thanks"})
        assert again.status_code == 200 and again.json()["turn"] > ok.json()["turn"]
