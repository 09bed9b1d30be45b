"""HTTP endpoints. Each parses and checks its input, calls the agent, and renders JSON."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from agent import metrics
from agent.errors import InvalidInput, PayloadTooLarge, Unauthorized
from agent.messages import ImageInput, UserTurn
from agent.runtime import Agent
from agent.serialize import rasa_messages, turn_json
from agent.server import BadRequest, UnsupportedMediaType, check_id, optional_str, read_json

TURN_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["text"],
                    "properties": {
                        "text": {"type": "string", "maxLength": 2000},
                        "user_id": {"type": "string", "maxLength": 128},
                        "metadata": {"type": "object"},
                    },
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "user_id": {"type": "string"},
                        "image": {"type": "string", "format": "binary"},
                    },
                }
            },
        },
    }
}


def add_routes(app: FastAPI, agent: Agent) -> None:
    from agent.channels.rasa_http import add_runtime_routes

    _add_turns(app, agent)
    _add_reads(app, agent)
    _add_handoffs(app, agent)
    _add_ops(app, agent)
    add_runtime_routes(app, agent)  # hand-off, understand, profile update: used by Rasa actions over HTTP


def _add_turns(app: FastAPI, agent: Agent) -> None:
    server = agent.config.server

    @app.post("/v1/conversations/{conversation_id}/turns", openapi_extra=TURN_BODY_DOC, tags=["turns"])
    async def post_turn(conversation_id: str, request: Request) -> JSONResponse:
        """One customer turn (JSON text, or multipart text + image); returns the agent's decision."""
        check_id(conversation_id, "conversation_id")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "multipart/form-data":
            turn = await _multipart_turn(agent, conversation_id, request)
        elif content_type in ("application/json", ""):
            data = await read_json(request, max_bytes=server.max_json_bytes)
            turn = _json_turn(conversation_id, data, channel="api")
        else:
            raise UnsupportedMediaType(
                f"content type must be application/json or multipart/form-data, got {content_type[:60]!r}"
            )
        try:
            result = await agent.handle_turn(turn)
        except Exception as e:
            metrics.observe_error(turn.channel, e)
            raise
        return JSONResponse(turn_json(result))

    @app.post("/webhooks/rest/webhook", tags=["rasa"])
    async def rasa_rest(request: Request) -> JSONResponse:
        """Rasa's REST channel: ``{"sender", "message"?, "metadata"?}`` -> list of bot messages.

        ``metadata.image`` / ``metadata.audio`` carry an attachment, as a URL on
        ``rasa.attachment_allow_list`` or as base64 (docs/rasa.md); ``metadata.user_id`` names the
        customer. Replies carry ``buttons`` and ``image`` where the answer has them.
        """
        import asyncio
        from dataclasses import replace

        from agent.channels.rasa_attachments import AttachmentLimits, load_attachments
        from agent.channels.rasa_client import decode_attachments

        rasa = agent.config.rasa
        base64_room = 2 * (rasa.max_attachment_bytes * 4 // 3 + 4)  # an image and an audio clip
        data = await read_json(request, max_bytes=min(server.max_body_bytes, server.max_json_bytes + base64_room))
        sender = optional_str(data, "sender")
        if sender is None:
            raise InvalidInput("'sender' is required: the conversation id of the Rasa REST channel")
        check_id(sender, "sender")
        metadata = data.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidInput(f"'metadata' must be a JSON object, got {type(metadata).__name__}")
        metadata = metadata or {}
        limits = AttachmentLimits(allow_list=rasa.attachment_allow_list, max_bytes=rasa.max_attachment_bytes,
                                  timeout_s=rasa.attachment_timeout_s)
        attachments = await load_attachments(metadata, limits)
        if data.get("message") is None and not attachments:
            raise InvalidInput("'message' is required: the customer's text (or an attachment in 'metadata')")
        turn = _json_turn(sender, {
            "text": data.get("message", ""), "user_id": data.get("user_id", metadata.get("user_id")),
            "metadata": {k: v for k, v in metadata.items() if k not in ("image", "audio")},
        }, channel="rest")
        if attachments:
            image, audio = await asyncio.to_thread(decode_attachments, attachments, agent.config)
            turn = replace(turn, text=turn.text if (turn.text or "").strip() else None, image=image, audio=audio)
        result = await agent.handle_turn(turn)
        return JSONResponse(rasa_messages(sender, result))


def _json_turn(conversation_id: str, data: dict[str, Any], *, channel: str) -> UserTurn:
    text = data.get("text")
    if not isinstance(text, str):
        raise InvalidInput(f"'text' must be a string, got {type(text).__name__ if text is not None else 'nothing'}")
    user_id = optional_str(data, "user_id")
    if user_id is not None:
        check_id(user_id, "user_id")
    return UserTurn(
        conversation_id=conversation_id,
        channel=channel,  # type: ignore[arg-type]
        text=text,
        user_id=user_id,
        metadata=_metadata(data.get("metadata")),
    )


def _metadata(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise InvalidInput(f"'metadata' must be a JSON object, got {type(value).__name__}")
    if len(value) > 32:
        raise InvalidInput(f"'metadata' has {len(value)} keys; the limit is 32")
    out = []
    for key, item in value.items():
        if isinstance(item, (str, int, float, bool)):
            out.append((str(key)[:64], str(item)[:512]))
    return tuple(out)


async def _multipart_turn(agent: Agent, conversation_id: str, request: Request) -> UserTurn:
    from modalities.image import load_image

    limits = agent.config.vision
    max_images = agent.config.server.max_images_per_turn
    try:
        form = await request.form(max_files=max_images + 1, max_fields=16, max_part_size=64_000)
    except PayloadTooLarge:
        raise
    except Exception as e:  # starlette raises MultiPartException / HTTPException on bad bodies
        raise BadRequest(f"request body is not a valid multipart/form-data body: {getattr(e, 'detail', e)}") from None
    try:
        uploads = [v for k, v in form.multi_items() if isinstance(v, UploadFile)]
        if len(uploads) > max_images:
            raise InvalidInput(f"a turn takes at most {max_images} image(s); got {len(uploads)} files")
        if uploads and uploads[0].filename is not None and _field_name(form, uploads[0]) != "image":
            raise InvalidInput("the file part must be named 'image'")
        text = form.get("text")
        if text is not None and not isinstance(text, str):
            raise InvalidInput("'text' must be a text field, not a file")
        user_id = form.get("user_id")
        if isinstance(user_id, str) and user_id:
            check_id(user_id, "user_id")
        else:
            user_id = None
        image: ImageInput | None = None
        if uploads:
            data = await uploads[0].read(limits.max_bytes + 1)
            if len(data) > limits.max_bytes:
                raise PayloadTooLarge(f"image upload is over the limit of {limits.max_bytes:,} bytes")
            image = load_image(data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
        if image is None and not (isinstance(text, str) and text.strip()):
            raise InvalidInput("a multipart turn needs a 'text' field, an 'image' file, or both; got neither")
        return UserTurn(
            conversation_id=conversation_id,
            channel="web_chat",
            text=text if isinstance(text, str) and text.strip() else None,
            image=image,
            user_id=user_id,
        )
    finally:
        await form.close()


def _field_name(form: Any, upload: UploadFile) -> str:
    for key, value in form.multi_items():
        if value is upload:
            return str(key)
    return ""


def _add_reads(app: FastAPI, agent: Agent) -> None:
    @app.get("/v1/conversations/{conversation_id}", tags=["conversations"])
    async def get_conversation(conversation_id: str, since: int = Query(0, ge=0)) -> JSONResponse:
        """The conversation's state and its turns (from index ``since``)."""
        check_id(conversation_id, "conversation_id")
        state, turns = await agent.dialogue.get_conversation(conversation_id)
        if since:
            turns = await agent.dialogue.get_turns(conversation_id, start=since)
        return JSONResponse({"state": state.to_dict(), "turns": [t.to_dict() for t in turns]})

    @app.get("/v1/users/{user_id}/profile", tags=["profiles"])
    async def get_profile(user_id: str) -> JSONResponse:
        check_id(user_id, "user_id")
        profile = await agent.dialogue.get_profile(user_id)
        return JSONResponse(profile.to_dict())

    @app.get("/v1/images/{sha256}", tags=["conversations"])
    async def get_image(sha256: str, request: Request) -> Response:
        if not (len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256)):
            raise InvalidInput("image id must be a 64-character lower-case hex sha256")
        data, content_type = await agent.dialogue.get_blob(sha256)
        return Response(data, media_type=content_type, headers={"Cache-Control": "private, max-age=3600"})


def _require_agent_token(agent: Agent, request: Request) -> None:
    token = agent.config.server.agent_token
    if not token:
        return
    if request.headers.get("authorization", "") != f"Bearer {token.reveal()}":
        raise Unauthorized("the hand-off API needs 'Authorization: Bearer <agent token>'")


def _add_handoffs(app: FastAPI, agent: Agent) -> None:
    server = agent.config.server

    @app.get("/v1/handoffs", tags=["handoffs"])
    async def list_handoffs(request: Request, status: str = Query("pending")) -> JSONResponse:
        """Hand-offs by status: ``pending`` (default), ``claimed``, ``released`` or ``all``."""
        _require_agent_token(agent, request)
        if status not in ("pending", "claimed", "released", "all"):
            raise InvalidInput(f"status must be pending, claimed, released or all; got {status[:20]!r}")
        records = await agent.dialogue.list_handoffs(status=None if status == "all" else status)
        return JSONResponse({"handoffs": [r.to_dict() for r in records]})

    @app.get("/v1/handoffs/{handoff_id}", tags=["handoffs"])
    async def get_handoff(handoff_id: str, request: Request) -> JSONResponse:
        _require_agent_token(agent, request)
        check_id(handoff_id, "handoff_id")
        return JSONResponse((await agent.dialogue.get_handoff(handoff_id)).to_dict())

    async def agent_id_of(request: Request) -> tuple[dict[str, Any], str]:
        _require_agent_token(agent, request)
        data = await read_json(request, max_bytes=server.max_json_bytes)
        agent_id = optional_str(data, "agent_id")
        if not agent_id:
            raise InvalidInput("'agent_id' is required: who is acting on the hand-off")
        check_id(agent_id, "agent_id")
        return data, agent_id

    @app.post("/v1/handoffs/{handoff_id}/claim", tags=["handoffs"])
    async def claim(handoff_id: str, request: Request) -> JSONResponse:
        check_id(handoff_id, "handoff_id")
        _, agent_id = await agent_id_of(request)
        return JSONResponse((await agent.dialogue.claim_handoff(handoff_id, agent_id=agent_id)).to_dict())

    @app.post("/v1/handoffs/{handoff_id}/messages", tags=["handoffs"])
    async def message(handoff_id: str, request: Request) -> JSONResponse:
        check_id(handoff_id, "handoff_id")
        data, agent_id = await agent_id_of(request)
        text = data.get("text")
        if not isinstance(text, str):
            raise InvalidInput("'text' must be a string: the human agent's reply")
        from modalities.text import normalize_text

        text = normalize_text(text, max_chars=server.max_text_chars)
        turn = await agent.dialogue.post_agent_message(handoff_id, agent_id=agent_id, text=text)
        return JSONResponse(turn.to_dict())

    @app.post("/v1/handoffs/{handoff_id}/release", tags=["handoffs"])
    async def release(handoff_id: str, request: Request) -> JSONResponse:
        check_id(handoff_id, "handoff_id")
        _, agent_id = await agent_id_of(request)
        return JSONResponse((await agent.dialogue.release_handoff(handoff_id, agent_id=agent_id)).to_dict())


def _add_ops(app: FastAPI, agent: Agent) -> None:
    @app.get("/healthz", tags=["ops"])
    async def healthz() -> JSONResponse:
        """The process is up."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        """Ready to take turns: the state store answers and the text model is loaded."""
        status = await agent.readiness()
        ok = status.get("state_store") == "ok" and status.get("model") == "ok"  # images: informative only
        if status.get("state_store") != "ok":
            status["state_store"] = "state store unavailable"
        return JSONResponse({"ready": ok, **status}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"])
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
