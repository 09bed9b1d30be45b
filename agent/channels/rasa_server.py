"""The rasa-sdk action server around our actions: body checks, no echo of request bodies, the
runtime's life cycle, and ``serve_actions`` for ``agent rasa-actions``.

rasa-sdk's own ``/webhook`` answers a body without ``tracker`` (or with a tracker of the wrong
shape) with a 500 whose JSON repeats the whole request body, customer messages included, and a
body without ``next_action`` with ``200 null``. Importing ``agent.channels.rasa_action``
registers ``ActionServerHardening`` as a rasa-sdk plugin (its ``attach_sanic_app_extensions``
hook), so every action server that loads our actions, including ``python -m rasa_sdk --actions
agent.channels.rasa_action``, checks webhook bodies first (``400 {"error", "action_name"}``)
and replaces the body of any 5xx response with a generic error.
"""

from __future__ import annotations

import json
import logging
import zlib
from functools import partial
from typing import TYPE_CHECKING, Any

import pluggy
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

if TYPE_CHECKING:
    from rasa_sdk.executor import ActionExecutor

    from agent.config import AgentConfig

log = logging.getLogger("agent.rasa")

PLUGIN_NAME = "support-agent-hardening"
hookimpl = pluggy.HookimplMarker("rasa_sdk")
MAX_ACTION_NAME_CHARS = 200
DEFAULT_MAX_WEBHOOK_BYTES = 50_000_000


def webhook_error(message: str, action_name: Any = None) -> HTTPResponse:
    """rasa-sdk's rejection shape: ``400 {"error", "action_name"}``."""
    name = action_name if isinstance(action_name, str) and len(action_name) <= MAX_ACTION_NAME_CHARS else None
    return response.json({"error": message, "action_name": name}, status=400)


def check_action_call(data: Any) -> str | None:
    """What is wrong with a webhook body's shape (None if nothing); never quotes its content."""
    if not isinstance(data, dict):
        return f"the webhook body must be a JSON object, got a JSON {type(data).__name__}"
    name = data.get("next_action")
    if not isinstance(name, str) or not name:
        return "'next_action' is required: the name of the action to run"
    if len(name) > MAX_ACTION_NAME_CHARS:
        return f"'next_action' is {len(name)} characters; the limit is {MAX_ACTION_NAME_CHARS}"
    tracker = data.get("tracker")
    if not isinstance(tracker, dict):
        return f"'tracker' is required and must be an object, got {_kind(tracker)}"
    if not isinstance(tracker.get("sender_id"), str) or not tracker["sender_id"]:
        return f"'tracker.sender_id' must be a non-empty string, got {_kind(tracker.get('sender_id'))}"
    for key, kind in (("events", list), ("slots", dict), ("latest_message", dict), ("active_loop", dict),
                      ("latest_action", dict)):
        if tracker.get(key) is not None and not isinstance(tracker[key], kind):
            return f"'tracker.{key}' must be a JSON {'array' if kind is list else 'object'}, got {_kind(tracker[key])}"
    if any(not isinstance(event, dict) for event in tracker.get("events") or ()):
        return "'tracker.events' must hold JSON objects only"
    if data.get("domain") is not None and not isinstance(data["domain"], dict):
        return f"'domain' must be an object, got {_kind(data['domain'])}"
    return None


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"a JSON {type(value).__name__}"


def _body_of(request: Request[Any, Any], max_bytes: int) -> bytes:
    body = request.body or b""
    if request.headers.get("Content-Encoding") == "deflate":
        inflater = zlib.decompressobj()
        try:
            body = inflater.decompress(body, max_bytes + 1)
        except zlib.error as e:
            raise ValueError("the webhook body is not valid deflate data") from e
    if len(body) > max_bytes:
        raise ValueError(f"the webhook body is over the limit of {max_bytes:,} bytes")
    return body


async def check_webhook(request: Request[Any, Any]) -> HTTPResponse | None:
    """Request middleware: refuse a webhook body that rasa-sdk would answer with 500 or ``null``."""
    if request.method != "POST" or request.path.rstrip("/") != "/webhook":
        return None
    max_bytes = getattr(request.app.ctx, "agent_max_webhook_bytes", DEFAULT_MAX_WEBHOOK_BYTES)
    try:
        body = _body_of(request, max_bytes)
    except ValueError as e:
        return webhook_error(str(e))
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return webhook_error("the webhook body is not valid JSON")
    problem = check_action_call(data)
    if problem is not None:
        log.info("webhook refused: %s", problem)
        return webhook_error(problem, data.get("next_action") if isinstance(data, dict) else None)
    if request.headers.get("Content-Encoding") != "deflate":
        request.parsed_json = data  # rasa-sdk's handler reads request.json: parse once
    return None


async def scrub_server_errors(request: Request[Any, Any], resp: HTTPResponse) -> HTTPResponse | None:
    """Response middleware: a 5xx body never repeats the request (rasa-sdk's catch-all does)."""
    if resp.status >= 500:
        return response.json({"error": "internal error in the action server"}, status=resp.status)
    return None


async def start_runtime(app: Sanic[Any, Any]) -> None:
    """Build the runtime client and start loading the text model, so the first action is quick."""
    from agent.channels.rasa_action import RUNTIME

    if not logging.getLogger().handlers:  # a Sanic worker process: nothing configured its logging
        from agent.logs import configure_logging

        configure_logging(RUNTIME.config.log)
    try:
        await RUNTIME.get()
    except Exception:  # the actions report it (runtime down) on each call; the server stays up
        log.exception("the agent runtime could not be started")


async def stop_runtime(app: Sanic[Any, Any]) -> None:
    from agent.channels.rasa_action import RUNTIME

    await RUNTIME.aclose()


class ActionServerHardening:
    """rasa-sdk plugin: body checks, error scrubbing and the runtime's life cycle."""

    @hookimpl
    def attach_sanic_app_extensions(self, app: Sanic[Any, Any]) -> None:
        from agent.channels.rasa_action import RUNTIME

        app.ctx.agent_max_webhook_bytes = RUNTIME.config.rasa.max_webhook_bytes
        app.register_middleware(check_webhook, "request")
        app.register_middleware(scrub_server_errors, "response")  # type: ignore[arg-type]
        app.register_listener(start_runtime, "after_server_start")
        app.register_listener(stop_runtime, "before_server_stop")


def register_plugin() -> None:
    """Register ``ActionServerHardening`` with rasa-sdk's plugin manager (once per process)."""
    from rasa_sdk.plugin import plugin_manager

    manager = plugin_manager()
    if manager.get_plugin(PLUGIN_NAME) is None:
        manager.register(ActionServerHardening(), name=PLUGIN_NAME)


# --- agent rasa-actions -----------------------------------------------------------------------


def worker_app(executor: ActionExecutor, config: AgentConfig) -> Sanic[Any, Any]:
    """The app of one Sanic worker (module level: Sanic pickles this factory into its workers)."""
    from rasa_sdk.endpoint import create_app_for_serve

    from agent.channels.rasa_action import RUNTIME

    RUNTIME.configure(config)
    register_plugin()
    app: Sanic[Any, Any] = create_app_for_serve(executor, cors_origins="")
    return app


def serve_actions(config: AgentConfig, port: int | None = None) -> int:
    """Serve our actions with rasa-sdk's server on ``rasa.action_host``:``port``; returns at shutdown."""
    from rasa_sdk import utils
    from rasa_sdk.executor import ActionExecutor
    from sanic.worker.loader import AppLoader

    executor = ActionExecutor()
    executor.register_package("agent.channels.rasa_action")
    loader = AppLoader(factory=partial(worker_app, executor, config))
    app = loader.load()
    port = config.rasa.action_port if port is None else port
    log.info("Rasa action server on http://%s:%d (runtime: %s)", config.rasa.action_host, port,
             config.rasa.runtime_url or "in-process")
    app.prepare(host=config.rasa.action_host, port=port, workers=utils.number_of_sanic_workers(),
                access_log=False)
    Sanic.serve(primary=app, app_loader=loader)
    return 0
