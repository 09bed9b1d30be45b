"""Twilio gateway end to end: a real WebSocket client plays Twilio's side against the real routes
on uvicorn; a local HTTP server plays the Twilio REST API for transfers."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree

import httpx
import numpy as np
import pytest

from agent.channels.twilio import signature
from agent.config import AgentConfig
from agent.messages import Handoff
from agent.voice.session import caller_user_id
from tests.voice.conftest import ACCOUNT_SID, AUTH_TOKEN, TwilioApi, twilio_server, voice_config
from tests.voice.fakes import FakeVoiceAgent, ScriptedRecognizer
from tests.voice.phone import TwilioPhone, espeak_8k, heard_as, piper_8k, read_8k, silence_8k, wait_for, words

pytestmark = pytest.mark.timeout(180)  # a hung call fails the test instead of the run

LOST = "I lost my credit card"
PERSON = "I want to talk to a person"


def espeak_voice(config: AgentConfig) -> AgentConfig:
    return replace(config, tts=replace(config.tts, backend="espeak-ng"))


async def answer_call(base: str, caller: str) -> tuple[str, dict[str, str]]:
    """POST the voice webhook as Twilio does; returns the stream URL (ws://, no TLS here) and parameters."""
    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://{base}/twilio/voice",
                                     data={"CallSid": "CA9", "From": caller, "To": "+18005551212"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/xml")
    stream = ElementTree.fromstring(response.text).find("./Connect/Stream")
    assert stream is not None
    url = stream.get("url", "")
    assert url == f"wss://{base}/twilio/media"
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return url.replace("wss://", "ws://"), parameters


@pytest.mark.slow
async def test_a_call_is_heard_understood_answered_and_handed_off(twilio_api: TwilioApi) -> None:
    agent = FakeVoiceAgent(voice_config(twilio_api))
    async with twilio_server(agent) as base:
        url, parameters = await answer_call(base, "+44 7700 900123")
        assert parameters == {"user_id": caller_user_id("+447700900123", agent.config.telephony.caller_hash_salt)}
        async with TwilioPhone(url, parameters=parameters, call_sid="CA" + "a" * 32) as phone:
            phone.say(np.concatenate([espeak_8k(LOST), silence_8k(0.2)]))
            assert await wait_for(lambda: len(phone.heard.echoed) >= 2, 60), phone.heard
            first = agent.results[0]
            assert heard_as(first.transcript.text, LOST)
            assert first.nlu is not None and first.nlu.intent == "lost_or_stolen_card"
            assert agent.turns[0].conversation_id == "CA" + "a" * 32
            assert agent.turns[0].user_id == parameters["user_id"]
            assert phone.heard.media_frames > 100 and phone.heard.media_bytes == 160 * phone.heard.media_frames
            assert phone.heard.marks == ["r1.0", "r1.1"] and phone.heard.echoed == ["r1.0", "r1.1"]
            assert phone.heard.errors == []
            await asyncio.sleep(0.5)
            phone.say(espeak_8k(PERSON))
            assert await wait_for(lambda: twilio_api.requests, 60)
            assert isinstance(agent.results[1].decision, Handoff)
            assert heard_as(agent.results[1].transcript.text, PERSON)
    request = twilio_api.requests[0]
    assert request["path"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{'CA' + 'a' * 32}.json"
    assert request["form"] == {"Twiml": agent.config.telephony.twilio_transfer_twiml}
    assert request["authorization"] == "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()


@pytest.mark.slow
async def test_agent_please_hands_off(twilio_api: TwilioApi) -> None:
    # the caller's voice is Piper's: tiny.en hears espeak-ng's "agent please" as "agent clean"
    speech = piper_8k("Agent, please.")
    agent = FakeVoiceAgent(espeak_voice(voice_config(twilio_api)))
    async with twilio_server(agent) as base, TwilioPhone(f"ws://{base}/twilio/media") as phone:
        phone.say(speech)
        assert await wait_for(lambda: twilio_api.requests, 60)
        assert words(agent.results[0].transcript.text) == ["agent", "please"]
        assert isinstance(agent.results[0].decision, Handoff)
        assert phone.heard.media_frames > 20  # the hand-off was announced before the transfer


@pytest.mark.slow
async def test_recorded_harvard_sentences_stream_as_ten_turns(shared_data: Path, twilio_api: TwilioApi) -> None:
    path = shared_data / "speech" / "OSR_us_000_0034_8k.wav"
    samples_json = shared_data / "speech" / "test_samples.json"
    if not path.is_file() or not samples_json.is_file():
        pytest.skip(f"{path} is absent")
    expected = json.loads(samples_json.read_text())[0]["transcription"]
    sentences = [s for s in re.split(r"(?<=\.)\s+", expected) if s]
    agent = FakeVoiceAgent(espeak_voice(voice_config(twilio_api)))
    async with twilio_server(agent) as base, TwilioPhone(f"ws://{base}/twilio/media", speed=3.0) as phone:
        phone.say(read_8k(path))  # mu-law encoded by the phone, 3x faster than real time
        await phone.said()
        assert await wait_for(lambda: len(agent.results) == 10, 60)
        assert await wait_for(lambda: phone.heard.echoed, 60)  # the last sentence is answered
    heard = [words(r.transcript.text) for r in agent.results]
    errors = sum(_edit_distance(h, words(s)) for h, s in zip(heard, sentences, strict=True))
    assert errors / sum(len(words(s)) for s in sentences) < 0.1, heard


def _edit_distance(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


# --- bad input: nothing crashes, one call closes at worst, others continue ------------------------


def scripted_agent(*lines: str, **telephony: object) -> FakeVoiceAgent:
    config = espeak_voice(voice_config(None, **telephony))
    return FakeVoiceAgent(config, recognizer=ScriptedRecognizer(*lines))


async def test_bad_messages_are_ignored_and_the_call_goes_on() -> None:
    agent = scripted_agent(LOST)
    async with twilio_server(agent) as base:
        import websockets

        async with websockets.connect(f"ws://{base}/twilio/media") as early:  # media before start
            await early.send(json.dumps({"event": "media", "streamSid": "MZ0", "media": {"payload": ""}}))
            await early.send(json.dumps({"event": "stop", "streamSid": "MZ0"}))
        async with TwilioPhone(f"ws://{base}/twilio/media") as phone, \
                TwilioPhone(f"ws://{base}/twilio/media", call_sid="CA" + "b" * 32, stream_sid="MZ" + "b" * 32) as other:
            await phone.ws.send(b"\x00\x01\x02 binary")
            await phone.ws.send("not json at all {")
            await phone.send_json({"event": "surprise", "streamSid": phone.stream_sid})
            await phone.send_json({"event": "media", "streamSid": phone.stream_sid, "media": {"payload": "!!bad!!"}})
            await phone.send_json({"event": "media", "streamSid": "MZ-wrong", "media": {"payload": "/w=="}})
            await phone.send_json({"event": "media", "streamSid": phone.stream_sid, "media": {"payload": "A" * 50_000}})
            await phone.send_json({"event": "start", "streamSid": phone.stream_sid, "start": {}})
            await phone.ws.send("x" * 200_000)
            phone.say(np.concatenate([espeak_8k(LOST), silence_8k(0.2)]))
            other.say(np.concatenate([espeak_8k(LOST), silence_8k(0.2)]))
            assert await wait_for(lambda: phone.heard.echoed and other.heard.echoed, 60)
            assert not phone.heard.closed
    assert {t.conversation_id for t in agent.turns} == {"CA" + "1" * 32, "CA" + "b" * 32}


async def test_a_flood_of_bad_messages_closes_only_that_call() -> None:
    agent = scripted_agent(LOST, max_protocol_errors=5)
    async with twilio_server(agent) as base, TwilioPhone(f"ws://{base}/twilio/media") as good, \
            TwilioPhone(f"ws://{base}/twilio/media", call_sid="CA" + "c" * 32, stream_sid="MZ" + "c" * 32) as bad:
        for _ in range(10):
            await bad.ws.send("garbage")
        assert await wait_for(lambda: bad.heard.closed, 20)
        good.say(np.concatenate([espeak_8k(LOST), silence_8k(0.2)]))
        assert await wait_for(lambda: good.heard.echoed, 60)


async def test_a_socket_closed_mid_utterance_still_saves_what_was_said() -> None:
    agent = scripted_agent(LOST)
    async with twilio_server(agent) as base:
        phone = TwilioPhone(f"ws://{base}/twilio/media")
        await phone.__aenter__()
        phone.say(espeak_8k("I lost my credit card and"))
        await phone.said()
        await phone.hang_up(send_stop=False)  # no 'stop': the socket just goes away
        assert await wait_for(lambda: agent.turns, 20)
    assert dict(agent.turns[0].metadata)["end_of_turn"] == "hangup"


async def test_signatures_are_checked_when_enabled() -> None:
    agent = scripted_agent(LOST, twilio_validate_signature=True)
    async with twilio_server(agent) as base:
        import websockets

        form = {"CallSid": "CA9", "From": "+15005550006"}
        async with httpx.AsyncClient() as client:
            unsigned = await client.post(f"http://{base}/twilio/voice", data=form)
            forged = await client.post(f"http://{base}/twilio/voice", data=form,
                                       headers={"X-Twilio-Signature": signature("wrong", f"http://{base}/twilio/voice", form)})
            signed = await client.post(f"http://{base}/twilio/voice", data=form,
                                       headers={"X-Twilio-Signature": signature(AUTH_TOKEN, f"http://{base}/twilio/voice", form)})
        assert (unsigned.status_code, forged.status_code, signed.status_code) == (403, 403, 200)
        with pytest.raises(websockets.exceptions.InvalidStatus):
            await websockets.connect(f"ws://{base}/twilio/media")
        good = signature(AUTH_TOKEN, f"wss://{base}/twilio/media", {})
        async with websockets.connect(f"ws://{base}/twilio/media", additional_headers={"X-Twilio-Signature": good}):
            pass


async def test_calls_over_the_limit_are_refused() -> None:
    agent = scripted_agent(LOST, max_calls=1)
    async with twilio_server(agent) as base, TwilioPhone(f"ws://{base}/twilio/media") as first:
        import websockets

        async with websockets.connect(f"ws://{base}/twilio/media") as second:
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await asyncio.wait_for(second.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert not first.heard.closed
