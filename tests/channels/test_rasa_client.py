"""The actions against the real dialogue layer and stores (in memory and Redis), in-process and
over the runtime's HTTP API (the FastAPI app, through httpx's ASGI transport); the text, speech
and image models are fakes (tests/channels/rasa_fake_agent.py)."""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection

from agent.channels import rasa_action
from agent.channels.rasa_client import HttpRuntime, InProcessRuntime, runtime_id
from agent.config import AgentConfig
from agent.errors import NotFound
from agent.runtime import Agent
from agent.server import create_app
from tests.channels.rasa_fake_agent import build_agent, digest
from tests.channels.rasa_payloads import webhook


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (250, 250, 240)).save(buffer, format="PNG")
    return buffer.getvalue()


def wav_bytes(seconds: float = 0.5, rate_hz: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        t = np.arange(int(seconds * rate_hz)) / rate_hz
        w.writeframes((0.2 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def config(request: pytest.FixtureRequest) -> AgentConfig:
    data: dict[str, Any] = {}
    if request.param == "redis":
        data["store"] = {"redis_url": request.getfixturevalue("redis_url"),
                         "key_prefix": request.getfixturevalue("redis_prefix")}
    return AgentConfig.from_mapping(data)


@pytest.fixture(params=["in-process", "http"])
async def agent(request: pytest.FixtureRequest, config: AgentConfig) -> AsyncIterator[Agent]:
    agent = build_agent(config)
    await agent.start()
    if request.param == "in-process":
        client: Any = InProcessRuntime(agent)
    else:
        app = create_app(agent)
        client = HttpRuntime("http://runtime.test", transport=httpx.ASGITransport(app=app))
    rasa_action.RUNTIME.use(client, config)
    request.node.mode = request.param
    yield agent
    rasa_action.RUNTIME.use(None)
    if request.param == "http":
        await client.aclose()
    await agent.aclose()


@pytest.fixture(scope="module")
def executor() -> ActionExecutor:
    ex = ActionExecutor()
    ex.register_package("agent.channels.rasa_action")
    return ex


async def call(executor: ActionExecutor, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    result = await executor.run(body)
    assert result is not None
    data = result.model_dump()
    return {e["name"]: e["value"] for e in data["events"] if e["event"] == "slot"}, data


async def test_a_conversation_over_several_webhook_calls_keeps_state_and_profile(executor, agent) -> None:
    sender, history = "rasa-conv-1", [("user", "hello there")]
    slots, data = await call(executor, webhook("action_agent_respond", sender, history, metadata={"user_id": "cust-r1"}))
    assert slots["agent_intent"] == "greeting" and data["responses"][0]["text"]
    history += [("bot", data["responses"][0]["text"]), ("user", "I lost my card yesterday")]
    slots, data = await call(executor, webhook("action_agent_respond", sender, history, metadata={"user_id": "cust-r1"}))
    assert slots["agent_intent"] == "lost_or_stolen_card" and slots["agent_date"]
    state, turns = await agent.dialogue.get_conversation(sender)
    assert [t.role for t in turns].count("user") == 2 and state.user_id == "cust-r1"
    profile = await agent.dialogue.get_profile("cust-r1")
    assert [i.intent for i in profile.recent_issues] == ["lost_or_stolen_card"]

    # a later Rasa conversation of the same customer sees the profile, and fills its gaps
    slots, _ = await call(executor, webhook("action_agent_profile", "rasa-conv-2", [("user", "hi")],
                                            metadata={"user_id": "cust-r1"}, slots={"agent_profile_name": "Robin"}))
    assert slots["agent_profile_known"] is True and slots["agent_profile_name"] == "Robin"
    assert (await agent.dialogue.get_profile("cust-r1")).name == "Robin"


async def test_handoff_action_records_a_pending_handoff_and_silences_the_bot(executor, agent) -> None:
    sender = "rasa-h1"
    await call(executor, webhook("action_agent_respond", sender, [("user", "my refund never came")]))
    slots, data = await call(executor, webhook(
        "action_handoff_to_human", sender, [("user", "my refund never came"), ("bot", "Sorry about that."),
                                            ("user", "I want to speak to someone")], intent="request_human"))
    assert data["events"][-1]["event"] == "pause" and slots["agent_decision"] == "handoff"
    record = await agent.dialogue.get_handoff(slots["agent_handoff_id"])
    assert record.status == "pending" and record.conversation_id == sender
    assert "customer: I want to speak to someone" in record.summary
    slots, data = await call(executor, webhook("action_agent_respond", sender, [("user", "hello?")]))
    assert slots["agent_decision"] == "silent" and data["responses"] == []


async def test_sentiment_records_nothing(executor, agent) -> None:
    await call(executor, webhook("action_agent_respond", "rasa-s1", [("user", "hello")]))
    before = (await agent.dialogue.get_conversation("rasa-s1"))[0].turn_count
    slots, _ = await call(executor, webhook("action_agent_sentiment", "rasa-s1", [("user", "you are useless, I am furious")]))
    assert slots["agent_sentiment"] == "negative" and slots["agent_emotion"] == "anger"
    assert (await agent.dialogue.get_conversation("rasa-s1"))[0].turn_count == before


async def test_an_image_attachment_is_analysed_and_stored(executor, agent) -> None:
    data = png()
    await call(executor, webhook("action_agent_respond", "rasa-i1", [("user", "I was charged twice for this")],
                                 metadata={"image": {"base64": base64.b64encode(data).decode()}}))
    _, turns = await agent.dialogue.get_conversation("rasa-i1")
    user = next(t for t in turns if t.role == "user")
    assert user.image_kind == "receipt" and user.image_sha256 == digest(data)
    stored, content_type = await agent.dialogue.get_blob(digest(data))
    assert content_type == "image/png" and stored[:4] == b"\x89PNG"


async def test_an_audio_attachment_is_transcribed_in_process(executor, agent, request) -> None:
    body = webhook("action_agent_respond", "rasa-a1", [("user", None)],
                   metadata={"audio": {"base64": base64.b64encode(wav_bytes()).decode(), "content_type": "audio/wav"}})
    if request.node.mode == "http":
        with pytest.raises(ActionExecutionRejection, match="audio attachments need the runtime in-process"):
            await executor.run(body)
        return
    slots, _ = await call(executor, body)
    assert slots["agent_intent"] == "lost_or_stolen_card"  # from the (fake) transcript


@pytest.mark.parametrize("metadata", [
    {"image": {"base64": base64.b64encode(b"this is not an image").decode(), "content_type": "image/png"}},
    {"audio": {"base64": base64.b64encode(b"RIFF0000WAVEjunk").decode()}},
])
async def test_a_rejected_call_writes_nothing(executor, agent, metadata, request) -> None:
    body = webhook("action_agent_respond", "rasa-bad", [("user", "see attached")], metadata=metadata)
    with pytest.raises(ActionExecutionRejection) as info:
        await executor.run(body)
    assert "upload" in info.value.message or "audio attachments need" in info.value.message
    with pytest.raises(NotFound):
        await agent.dialogue.get_conversation("rasa-bad")


async def test_rasa_sender_ids_outside_our_id_pattern_are_mapped_stably(executor, agent) -> None:
    sender = "whatsapp:+44 7700 900123/abc"
    for text in ("hello", "I lost my card"):
        await call(executor, webhook("action_agent_respond", sender, [("user", text)]))
    mapped = runtime_id(sender)
    assert mapped.startswith("rasa-") and mapped == runtime_id(sender)
    _, turns = await agent.dialogue.get_conversation(mapped)
    assert [t.role for t in turns].count("user") == 2
