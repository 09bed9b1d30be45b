"""Voice calls end to end with the real runtime: ``load_agent`` with the default text model (trained
once per session, see ``trained_model_dir``), a real Redis server, Whisper tiny.en, Silero VAD and a
real voice, over real sockets for both gateways."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from agent.config import AgentConfig, Secret
from agent.errors import NotFound
from agent.runtime import Agent, load_agent
from agent.voice import serve_audiosocket
from tests.voice.conftest import ACCOUNT_SID, AUTH_TOKEN, TwilioApi, serve_app, twilio_server
from tests.voice.phone import (
    AudioSocketPhone,
    TwilioPhone,
    espeak_8k,
    heard_as,
    piper_8k,
    silence_8k,
    wait_for,
)
from tests.voice.test_twilio_calls import answer_call

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(3600)]  # may train the model

LOST = "I lost my credit card"
PERSON = "I want to talk to a person"


@pytest.fixture
async def agent(trained_model_dir: Path, redis_url: str, redis_prefix: str, twilio_api: TwilioApi) -> AsyncIterator[Agent]:
    config = AgentConfig.from_env({"AGENT_MODEL_DIR": str(trained_model_dir), "AGENT_REDIS_URL": redis_url,
                                   "AGENT_KEY_PREFIX": redis_prefix})
    config = replace(config, tts=replace(config.tts, backend="espeak-ng"), telephony=replace(
        config.telephony, twilio_api_base=twilio_api.base, twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=Secret(AUTH_TOKEN)))
    built = load_agent(config)
    await built.start()
    yield built
    await built.aclose()


async def test_twilio_call_through_the_http_app_with_the_real_agent(agent: Agent, twilio_api: TwilioApi) -> None:
    from agent.server import create_app

    call = "CA" + "d" * 32
    async with serve_app(create_app(agent)) as port:  # the lead's app mounts twilio_routes(agent)
        url, parameters = await answer_call(f"127.0.0.1:{port}", "+1 415 555 0100")
        async with TwilioPhone(url, call_sid=call, parameters=parameters) as phone:
            await _lost_card_then_a_person(phone, twilio_api)
    _, turns = await agent.dialogue.get_conversation(call)
    user_turns = [t for t in turns if t.role == "user"]
    assert heard_as(user_turns[0].text, LOST) and user_turns[0].intent == "lost_or_stolen_card"
    assert user_turns[0].channel == "voice" and user_turns[0].audio_duration_s
    assert heard_as(user_turns[1].text, PERSON) and user_turns[1].intent == "talk_to_human"
    assert [t.decision for t in turns if t.role != "user"][-1] == "handoff"
    assert twilio_api.requests[0]["path"].endswith(f"/Calls/{call}.json")
    profile = await agent.dialogue.get_profile(parameters["user_id"])  # the hashed number keys the profile
    assert profile.user_id == parameters["user_id"]


async def _lost_card_then_a_person(phone: TwilioPhone, twilio_api: TwilioApi) -> None:
    phone.say(np.concatenate([espeak_8k(LOST), silence_8k(0.2)]))
    assert await wait_for(lambda: phone.heard.echoed, 60), phone.heard
    assert phone.heard.media_frames > 20
    await wait_for(lambda: not phone.heard.marks or len(phone.heard.echoed) == len(phone.heard.marks), 60)
    await asyncio.sleep(0.5)
    phone.say(espeak_8k(PERSON))
    assert await wait_for(lambda: twilio_api.requests, 60)


async def test_agent_please_with_the_real_agent(agent: Agent, twilio_api: TwilioApi) -> None:
    speech = piper_8k("Agent, please.")
    async with twilio_server(agent) as base, TwilioPhone(f"ws://{base}/twilio/media", call_sid="CA" + "e" * 32) as phone:
        phone.say(speech)
        assert await wait_for(lambda: twilio_api.requests, 60)
    _, turns = await agent.dialogue.get_conversation("CA" + "e" * 32)
    assert turns[0].intent == "talk_to_human" and turns[-1].decision == "handoff"


async def test_audiosocket_call_with_the_real_agent(agent: Agent) -> None:
    call = "7e1d1c39-8f55-4bb3-9d2c-1a5f3c0d9e11"
    events: list[dict[str, str]] = []
    server = await serve_audiosocket(agent, "127.0.0.1", 0, on_handoff=events.append)
    port = server.sockets[0].getsockname()[1]
    try:
        async with AudioSocketPhone("127.0.0.1", port, call) as phone:
            phone.say(np.concatenate([espeak_8k(LOST), silence_8k(0.2)]))
            assert await wait_for(lambda: phone.heard.media_frames > 20, 60)
            await asyncio.sleep(1.0)
            await phone.dtmf("0")
            assert await wait_for(lambda: phone.hangup_received, 60)
    finally:
        server.close()
        await server.wait_closed()
    _, turns = await agent.dialogue.get_conversation(call)
    assert turns[0].intent == "lost_or_stolen_card"
    assert any(t.dtmf == "0" for t in turns) and turns[-1].decision == "handoff"
    assert events and events[0]["conversation_id"] == call


async def test_a_hang_up_mid_sentence_is_saved_with_the_real_agent(agent: Agent) -> None:
    call = "CA" + "f" * 32
    async with twilio_server(agent) as base:
        phone = TwilioPhone(f"ws://{base}/twilio/media", call_sid=call)
        await phone.__aenter__()
        phone.say(espeak_8k("I lost my credit card and I"))
        await phone.said()
        await phone.hang_up(send_stop=False)
        for _ in range(100):
            try:
                _, turns = await agent.dialogue.get_conversation(call)
                break
            except NotFound:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the interrupted utterance was not saved")
    assert heard_as(turns[0].text, "I lost my credit card and I")

