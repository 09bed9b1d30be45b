"""The HTTP API (FastAPI on uvicorn): turns, conversations, profiles, hand-offs, Rasa REST
channel, health, metrics, and the web chat and console pages.

Errors map once, here: ``InvalidInput`` -> 422 (400 for a body that is not JSON or not
multipart, 413 when too large), ``NotFound`` -> 404, ``Conflict`` -> 409,
``DependencyUnavailable`` -> 503. Error bodies are ``{"error": message}`` and never echo what
the caller sent.
"""

from __future__ import annotations

import json
import logging
import re
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent import metrics
from agent.config import ASSETS_DIR
from agent.errors import (
    AgentError,
    ConcurrentUpdate,
    Conflict,
    DependencyUnavailable,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from agent.messages import UserTurn
from agent.runtime import Agent
from agent.serialize import rasa_messages, turn_json

log = logging.getLogger("agent.server")

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$")
WEB_DIR = ASSETS_DIR / "web"

ERROR_STATUS: tuple[tuple[type[AgentError], int], ...] = (
    (PayloadTooLarge, 413),
    (InvalidInput, 422),
    (NotFound, 404),
    (Conflict, 409),
    (ConcurrentUpdate, 409),
    (Unauthorized, 401),
    (DependencyUnavailable, 503),
)


class BadRequest(InvalidInput):
    """The body is not what the content type says (HTTP 400)."""


class UnsupportedMediaType(InvalidInput):
    """The body's content type is not one the endpoint takes (HTTP 415)."""


def check_id(value: str, what: str) -> str:
    if not ID_PATTERN.match(value):
        raise InvalidInput(
            f"{what} must be 1-128 characters of letters, digits and . _ : @ + -, starting with a "
            f"letter or digit; got {len(value)} characters"
        )
    return value


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` (413) before the app reads them whole."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(self.max_bytes, int(declared))(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise PayloadTooLarge(f"request body is over the limit of {self.max_bytes:,} bytes")
            return message

        await self.app(scope, counted, send)


def _too_large(limit: int, got: int) -> JSONResponse:
    return JSONResponse(
        {"error": f"request body is {got:,} bytes; the limit is {limit:,}"}, status_code=413
    )


def error_response(error: AgentError) -> JSONResponse:
    status = 500
    for cls, code in ERROR_STATUS:
        if isinstance(error, cls):
            status = code
            break
    if isinstance(error, BadRequest):
        status = 400
    elif isinstance(error, UnsupportedMediaType):
        status = 415
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse({"error": str(error)}, status_code=status, headers=headers)


async def read_json(request: Request, *, max_bytes: int) -> dict[str, Any]:
    body = await request.body()
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"JSON body is {len(body):,} bytes; the limit is {max_bytes:,}")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"request body is not valid JSON (line {getattr(e, 'lineno', '?')})") from None
    except RecursionError:
        raise BadRequest("request body is JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise BadRequest(f"request body must be a JSON object, got a JSON {type(data).__name__}")
    return data


def optional_str(data: dict[str, Any], key: str, *, max_chars: int = 128) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"'{key}' must be a string, got {type(value).__name__}")
    if len(value) > max_chars:
        raise InvalidInput(f"'{key}' is {len(value):,} characters; the limit is {max_chars:,}")
    return value


def create_app(agent: Agent, *, wait_for_model: bool = False) -> FastAPI:
    """The ASGI app. ``wait_for_model``: load the model before serving (tests, benchmarks)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        if wait_for_model:
            await agent.start()
        else:
            agent.start_in_background()
        yield
        await agent.aclose()

    app = FastAPI(
        title="Support agent runtime",
        version="0.1.0",
        description="Multimodal customer-service agent: turns, conversations, profiles, hand-offs.",
        lifespan=lifespan,
    )
    app.state.agent = agent

    @app.exception_handler(AgentError)
    async def on_agent_error(request: Request, error: AgentError) -> JSONResponse:
        if isinstance(error, DependencyUnavailable):
            log.warning("dependency unavailable on %s: %s", request.url.path, error)
        return error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"error": "internal error"}, status_code=500)

    from agent.routes import add_routes

    add_routes(app, agent)
    _add_pages(app)
    _add_voice(app, agent)
    app.add_middleware(BodyLimit, max_bytes=agent.config.server.max_body_bytes)
    return app


def _add_pages(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def chat_page() -> Response:
        return _page("index.html")

    @app.get("/console", include_in_schema=False)
    async def console_page() -> Response:
        return _page("console.html")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+\.(js|css|svg|png|ico)", name) or ".." in name:
            raise NotFound(f"no static file {name!r}")
        return _page(name)


def _page(name: str) -> Response:
    path = (WEB_DIR / name).resolve()
    if WEB_DIR.resolve() not in path.parents or not path.is_file():
        raise NotFound(f"page {name!r} is not installed")
    return FileResponse(path, headers={"Cache-Control": "no-cache"})


def _add_voice(app: FastAPI, agent: Agent) -> None:
    try:
        from agent.voice import twilio_routes
    except ImportError:
        return
    app.router.routes.extend(twilio_routes(agent))


def web_dir() -> Path:
    return WEB_DIR


__all__ = ["create_app", "check_id", "read_json", "optional_str", "BadRequest", "UserTurn", "metrics"]
