"""Fixtures for the voice tests: servers on real sockets (uvicorn, asyncio TCP) and a local HTTP
server that plays the Twilio REST API's part."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from agent.config import AgentConfig, Secret

ACCOUNT_SID = "AC" + "3" * 32
AUTH_TOKEN = "test-auth-token"


@contextlib.asynccontextmanager
async def serve_app(app: Any) -> AsyncIterator[int]:
    """Run an ASGI app with uvicorn on a free local port; yields the port."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@dataclass
class TwilioApi:
    """What the fake Twilio REST API received."""

    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    status_code: int = 200

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def twilio_api() -> AsyncIterator[TwilioApi]:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    api = TwilioApi()

    async def update_call(request: Request) -> JSONResponse:
        form = await request.form()
        api.requests.append({"path": request.url.path, "form": dict(form),
                             "authorization": request.headers.get("authorization", "")})
        if api.status_code != 200:
            return JSONResponse({"code": 20404, "message": "not found"}, status_code=api.status_code)
        return JSONResponse({"sid": request.path_params["call_sid"], "status": "in-progress"})

    app = Starlette(routes=[Route("/2010-04-01/Accounts/{account}/Calls/{call_sid}.json", update_call,
                                  methods=["POST"])])
    async with serve_app(app) as port:
        api.port = port
        yield api


def voice_config(twilio_api: TwilioApi | None = None, **telephony: Any) -> AgentConfig:
    config = AgentConfig()
    tel = replace(config.telephony, twilio_account_sid=ACCOUNT_SID, twilio_auth_token=Secret(AUTH_TOKEN),
                  twilio_api_base=twilio_api.base if twilio_api else "http://127.0.0.1:9", **telephony)
    return replace(config, telephony=tel)


@contextlib.asynccontextmanager
async def twilio_server(agent: Any) -> AsyncIterator[str]:
    """The Twilio routes on a real uvicorn server; yields the base URL ``127.0.0.1:<port>``."""
    from starlette.applications import Starlette

    from agent.voice import twilio_routes

    async with serve_app(Starlette(routes=twilio_routes(agent))) as port:
        yield f"127.0.0.1:{port}"
