"""How the Rasa actions reach our runtime: in the same process, or over its HTTP API.

``InProcessRuntime`` wraps an ``Agent`` (decoding attachments with ``modalities``);
``HttpRuntime`` calls a running ``agent serve`` at ``rasa.runtime_url`` with httpx. Both raise
our errors: ``InvalidInput`` for unusable input, ``DependencyUnavailable`` when the runtime (or
its Redis, or its model) cannot answer. ``add_runtime_routes`` adds the three endpoints the HTTP
mode needs beyond the turn and profile endpoints every server has.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import httpx

from agent.channels.rasa_attachments import AttachmentKind, RawAttachment
from agent.errors import AgentError, Conflict, DependencyUnavailable, InvalidInput, NotFound, PayloadTooLarge
from agent.messages import (
    Answer,
    AudioClip,
    Entity,
    Handoff,
    HandoffReason,
    ImageInput,
    IntentScore,
    NluResult,
    PolicyDecision,
    Silence,
    TurnResult,
    UserTurn,
)

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.runtime import Agent
    from dialogue.state import UserProfile

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$")  # as the HTTP API's ids
PROFILE_FIELDS = ("name", "tier", "language")


def runtime_id(value: str) -> str:
    """A Rasa sender or user id as our id: unchanged when it fits our id pattern, else a stable hash."""
    if ID_PATTERN.match(value):
        return value
    return "rasa-" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:40]


@dataclass(frozen=True, slots=True, kw_only=True)
class RasaTurn:
    """One Rasa user message on its way to the runtime (attachments not yet decoded)."""

    conversation_id: str
    user_id: str
    text: str | None
    attachments: Mapping[AttachmentKind, RawAttachment]
    metadata: tuple[tuple[str, str], ...] = ()


class RuntimeClient(Protocol):
    async def respond(self, turn: RasaTurn) -> TurnResult: ...
    async def handoff(self, conversation_id: str, *, summary: str, user_id: str | None,
                      reason: HandoffReason = HandoffReason.RASA_ACTION) -> Handoff: ...
    async def understand(self, text: str) -> NluResult: ...
    async def get_profile(self, user_id: str) -> UserProfile | None: ...
    async def update_profile(self, user_id: str, fields: Mapping[str, str]) -> UserProfile: ...
    async def aclose(self) -> None: ...


# --- in-process -------------------------------------------------------------------------------


class InProcessRuntime:
    """Calls an ``Agent`` in this process; its text model loads in the background on ``start()``."""

    def __init__(self, agent: Agent, *, start_timeout_s: float = 300.0) -> None:
        self.agent = agent
        self.start_timeout_s = start_timeout_s
        self._start: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._start is None:
            self._start = asyncio.get_running_loop().create_task(self.agent.start())

    async def _ready(self) -> None:
        self.start()
        assert self._start is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._start), self.start_timeout_s)
        except TimeoutError:
            raise DependencyUnavailable(f"the text model did not load within {self.start_timeout_s:g} s") from None
        except AgentError:
            raise
        except Exception as e:
            raise DependencyUnavailable(f"the text model failed to load ({type(e).__name__})") from e

    async def respond(self, turn: RasaTurn) -> TurnResult:
        image, audio = await asyncio.to_thread(decode_attachments, turn.attachments, self.agent.config)
        await self._ready()
        return await self.agent.handle_turn(UserTurn(
            conversation_id=runtime_id(turn.conversation_id), channel="rasa", text=turn.text,
            image=image, audio=audio, user_id=runtime_id(turn.user_id), metadata=turn.metadata,
        ))

    async def handoff(self, conversation_id: str, *, summary: str, user_id: str | None,
                      reason: HandoffReason = HandoffReason.RASA_ACTION) -> Handoff:
        return await self.agent.dialogue.request_handoff(
            runtime_id(conversation_id), reason=reason, summary=summary,
            user_id=runtime_id(user_id) if user_id else None,
        )

    async def understand(self, text: str) -> NluResult:
        from modalities.text import normalize_text

        text = normalize_text(text, max_chars=self.agent.config.server.max_text_chars)
        await self._ready()
        return await asyncio.to_thread(self.agent.nlu.understand, text)

    async def get_profile(self, user_id: str) -> UserProfile | None:
        try:
            return await self.agent.dialogue.get_profile(runtime_id(user_id))
        except NotFound:
            return None

    async def update_profile(self, user_id: str, fields: Mapping[str, str]) -> UserProfile:
        return await self.agent.dialogue.update_profile(runtime_id(user_id), **dict(fields))

    async def aclose(self) -> None:
        if self._start is not None and not self._start.done():
            self._start.cancel()
        await self.agent.aclose()


def decode_attachments(attachments: Mapping[AttachmentKind, RawAttachment],
                       config: AgentConfig) -> tuple[ImageInput | None, AudioClip | None]:
    """Check and decode raw attachments with ``modalities`` (CPU work: call it in a thread)."""
    image = audio = None
    if "image" in attachments:
        from modalities.image import load_image

        raw, vision = attachments["image"], config.vision
        image = load_image(raw.data, max_bytes=vision.max_bytes, max_pixels=vision.max_pixels,
                           content_type=raw.content_type)
    if "audio" in attachments:
        from modalities.audio import decode_upload

        audio = decode_upload(attachments["audio"].data)
    return image, audio


# --- over HTTP --------------------------------------------------------------------------------


class HttpRuntime:
    """Calls a running ``agent serve`` over its HTTP API."""

    def __init__(self, base_url: str, *, timeout_s: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s, transport=transport)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise DependencyUnavailable(f"the agent runtime at {self.base_url} did not answer ({type(e).__name__})") from e
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code < 300 and body is not None:
            return body
        raise _error_for(response.status_code, body, self.base_url)

    async def respond(self, turn: RasaTurn) -> TurnResult:
        if "audio" in turn.attachments:
            raise InvalidInput("audio attachments need the runtime in-process; its HTTP API takes text and images")
        path = f"/v1/conversations/{quote(runtime_id(turn.conversation_id), safe='')}/turns"
        user_id = runtime_id(turn.user_id)
        if "image" in turn.attachments:
            raw = turn.attachments["image"]
            files = {"image": ("attachment", raw.data, raw.content_type or "application/octet-stream")}
            data = {"user_id": user_id, **({"text": turn.text} if turn.text else {})}
            body = await self._call("POST", path, data=data, files=files)
        else:
            body = await self._call("POST", path, json={"text": turn.text or "", "user_id": user_id,
                                                        "metadata": dict(turn.metadata)})
        return turn_result_from_json(body)

    async def handoff(self, conversation_id: str, *, summary: str, user_id: str | None,
                      reason: HandoffReason = HandoffReason.RASA_ACTION) -> Handoff:
        path = f"/v1/conversations/{quote(runtime_id(conversation_id), safe='')}/handoff"
        body = await self._call("POST", path, json={"summary": summary, "reason": reason.value,
                                                    "user_id": runtime_id(user_id) if user_id else None})
        return Handoff(reason=HandoffReason(body["handoff"]["reason"]), summary=body["handoff"]["summary"],
                       text=body["reply"]["text"], handoff_id=body["handoff"]["id"])

    async def understand(self, text: str) -> NluResult:
        nlu = nlu_from_json(await self._call("POST", "/v1/understand", json={"text": text}))
        if nlu is None:
            raise DependencyUnavailable(f"the agent runtime at {self.base_url} answered without an understanding")
        return nlu

    async def get_profile(self, user_id: str) -> UserProfile | None:
        try:
            body = await self._call("GET", f"/v1/users/{quote(runtime_id(user_id), safe='')}/profile")
        except NotFound:
            return None
        return _profile(body)

    async def update_profile(self, user_id: str, fields: Mapping[str, str]) -> UserProfile:
        body = await self._call("PATCH", f"/v1/users/{quote(runtime_id(user_id), safe='')}/profile", json=dict(fields))
        return _profile(body)

    async def aclose(self) -> None:
        await self._client.aclose()


def _error_for(status: int, body: Any, base_url: str) -> AgentError:
    message = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), str) else None
    if status == 413:
        return PayloadTooLarge(message or "the runtime refused the request as too large")
    if status in (400, 415, 422):
        return InvalidInput(message or f"the runtime refused the request (HTTP {status})")
    if status == 404:
        return NotFound(message or "not found")
    if status == 409:
        return Conflict(message or "conflict")
    return DependencyUnavailable(f"the agent runtime at {base_url} answered HTTP {status}")


def _profile(body: Any) -> UserProfile:
    from dialogue.codec import from_json_dict
    from dialogue.state import UserProfile

    return from_json_dict(UserProfile, body, what="profile from the runtime")


def nlu_from_json(data: Mapping[str, Any] | None) -> NluResult | None:
    """The inverse of ``agent.serialize.nlu_json`` (entity spans' text is not carried)."""
    if not data:
        return None
    return NluResult(
        intent=data["intent"], confidence=float(data["confidence"]),
        ranking=tuple(IntentScore(intent=s["intent"], confidence=float(s["confidence"])) for s in data.get("ranking", ())),
        oos_score=float(data.get("oos_score", 0.0)), sentiment=data.get("sentiment", "neutral"),
        sentiment_score=float(data.get("sentiment_score", 0.0)), emotion=data.get("emotion", "neutral"),
        emotion_confidence=float(data.get("emotion_confidence", 0.0)),
        entities=tuple(Entity(kind=e["kind"], value=e["value"], text="", start=int(e.get("start", 0)),
                              end=int(e.get("end", 0))) for e in data.get("entities", ())),
        path=data.get("path", "text"), picture_used=data.get("picture_used"),
    )


def turn_result_from_json(body: Mapping[str, Any]) -> TurnResult:
    """A ``TurnResult`` from the turn endpoint's JSON (``agent.serialize.turn_json``)."""
    try:
        return TurnResult(conversation_id=body["conversation_id"], turn_index=int(body["turn"]),
                          decision=_decision(body), nlu=nlu_from_json(body.get("nlu")),
                          latency_ms=float(body.get("latency_ms", 0.0)))
    except (KeyError, TypeError, ValueError) as e:
        raise DependencyUnavailable(f"the agent runtime answered a turn in an unexpected shape ({type(e).__name__})") from e


def _decision(body: Mapping[str, Any]) -> PolicyDecision:
    kind, reply = body["decision"], body.get("reply") or {}
    if kind == "silent":
        return Silence(reason=body.get("reason") or "human_mode")
    if kind == "handoff":
        handoff = body["handoff"]
        return Handoff(reason=HandoffReason(handoff["reason"]), summary=handoff.get("summary", ""),
                       text=reply.get("text", ""), handoff_id=handoff.get("id", ""))
    nlu = body.get("nlu") or {}
    return Answer(text=reply["text"], kind=kind, intent=nlu.get("intent"), reason=body.get("reason", ""),
                  buttons=tuple(reply.get("buttons", ())), image_url=reply.get("image"))


# --- building one -----------------------------------------------------------------------------


def make_runtime_client(config: AgentConfig) -> RuntimeClient:
    """HTTP when ``rasa.runtime_url`` is set; else an in-process agent (``rasa.agent_factory`` or ``load_agent``)."""
    if config.rasa.runtime_url:
        return HttpRuntime(config.rasa.runtime_url, timeout_s=config.rasa.runtime_timeout_s)
    if config.rasa.agent_factory:
        import importlib

        module_name, _, function = config.rasa.agent_factory.partition(":")
        agent = getattr(importlib.import_module(module_name), function)(config)
    else:
        from agent.runtime import load_agent

        agent = load_agent(config, serving=True)
    return InProcessRuntime(agent, start_timeout_s=config.rasa.start_timeout_s)
