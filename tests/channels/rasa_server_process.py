"""Start the real rasa-sdk action server (``python -m rasa_sdk --actions ...`` or ``agent
rasa-actions``) as a subprocess on a free port, wait for ``GET /health``, stop it by its pid.
Used by tests/integration/test_rasa_action_server.py and benchmarks/bench_rasa.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ActionServerProcess:
    """One action server; ``command`` is ``"rasa_sdk"`` (with ``actions``) or ``"agent"``."""

    def __init__(self, env: dict[str, str], *, actions: str = "agent.channels.rasa_action",
                 command: str = "rasa_sdk", cwd: Path = ROOT) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkstemp(prefix="rasa-actions-", suffix=".log")[1])
        if command == "rasa_sdk":
            argv = [sys.executable, "-m", "rasa_sdk", "--actions", actions, "--port", str(self.port)]
        else:
            argv = [sys.executable, "-m", "agent", "rasa-actions", "--port", str(self.port)]
        full_env = {**os.environ, "SANIC_HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1", **env}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def wait_healthy(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"action server exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"action server not healthy within {timeout_s:g} s:\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM to the server's own process group (it and its Sanic workers), then SIGKILL."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def __enter__(self) -> Self:
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
