"""The runtime's HTTP endpoints that Rasa actions in HTTP mode (``rasa.runtime_url``) need,
beyond ``POST /v1/conversations/{id}/turns`` and ``GET /v1/users/{id}/profile``:

- ``POST /v1/conversations/{id}/handoff`` ``{"summary", "user_id"?, "reason"?}``: hand the conversation to a human;
- ``POST /v1/understand`` ``{"text"}``: intent, sentiment and emotion of a text, nothing recorded;
- ``PATCH /v1/users/{id}/profile`` ``{"name"?, "tier"?, "language"?}``: set profile fields.

Mounted by ``add_runtime_routes(app, agent)`` on the app of ``agent.server.create_app``, whose
error handlers map our errors to HTTP statuses.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from agent.errors import InvalidInput
from agent.messages import HandoffReason
from agent.runtime import Agent
from agent.serialize import nlu_json
from agent.server import check_id, optional_str, read_json

MAX_SUMMARY_CHARS = 4000
REASONS = (HandoffReason.RASA_ACTION.value, HandoffReason.DEPENDENCY_DOWN.value)
PROFILE_FIELD_CHARS = {"name": 128, "tier": 64, "language": 16}


def add_runtime_routes(app: FastAPI, agent: Agent) -> None:
    max_json = agent.config.server.max_json_bytes

    @app.post("/v1/conversations/{conversation_id}/handoff", tags=["handoffs"])
    async def request_handoff(conversation_id: str, request: Request) -> JSONResponse:
        """Hand the conversation to a human agent (a Rasa action asked for it)."""
        check_id(conversation_id, "conversation_id")
        data = await read_json(request, max_bytes=max_json)
        summary = optional_str(data, "summary", max_chars=MAX_SUMMARY_CHARS) or ""
        user_id = optional_str(data, "user_id")
        if user_id is not None:
            check_id(user_id, "user_id")
        reason = data.get("reason", HandoffReason.RASA_ACTION.value)
        if reason not in REASONS:
            raise InvalidInput(f"'reason' must be one of {list(REASONS)}, got {str(reason)[:40]!r}")
        handoff = await agent.dialogue.request_handoff(
            conversation_id, reason=HandoffReason(reason), summary=summary, user_id=user_id
        )
        return JSONResponse({
            "handoff": {"id": handoff.handoff_id, "reason": handoff.reason.value, "summary": handoff.summary},
            "reply": {"text": handoff.text},
        })

    @app.post("/v1/understand", tags=["turns"])
    async def understand(request: Request) -> JSONResponse:
        """What the text model makes of a text; no conversation is touched."""
        from modalities.text import normalize_text

        data = await read_json(request, max_bytes=max_json)
        text = data.get("text")
        if not isinstance(text, str):
            raise InvalidInput(f"'text' must be a string, got {type(text).__name__ if text is not None else 'nothing'}")
        text = normalize_text(text, max_chars=agent.config.server.max_text_chars)
        nlu = await asyncio.to_thread(agent.nlu.understand, text)
        return JSONResponse(nlu_json(nlu))

    @app.patch("/v1/users/{user_id}/profile", tags=["profiles"])
    async def update_profile(user_id: str, request: Request) -> JSONResponse:
        """Set the customer's name, tier or language."""
        check_id(user_id, "user_id")
        data = await read_json(request, max_bytes=max_json)
        unknown = sorted(set(data) - set(PROFILE_FIELD_CHARS))
        if unknown:
            raise InvalidInput(f"unknown profile fields {unknown[:5]}; expected some of {sorted(PROFILE_FIELD_CHARS)}")
        fields = {k: optional_str(data, k, max_chars=n) for k, n in PROFILE_FIELD_CHARS.items() if k in data}
        profile = await agent.dialogue.update_profile(user_id, **fields)
        return JSONResponse(profile.to_dict())
