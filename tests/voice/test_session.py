"""agent/voice/session.py: turn-taking, barge-in, DTMF, hand-off, failures and hang-ups, with the
real VAD and a real voice (espeak-ng) but a scripted recognizer, over a recording transport."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
import pytest

from agent.config import AgentConfig, Secret
from agent.messages import Answer, Handoff
from agent.voice.session import RECENT_CALLS, CallInfo, CallSession, caller_user_id
from tests.voice.fakes import FakeVoiceAgent, RecordingTransport, ScriptedRecognizer
from tests.voice.phone import espeak_8k, feed, silence_8k, wait_for

pytestmark = pytest.mark.timeout(180)  # a hung call fails the test instead of the run

LOST = "I lost my credit card"
PERSON = "I want to talk to a person"


def espeak_config() -> AgentConfig:
    config = AgentConfig()
    return replace(config, tts=replace(config.tts, backend="espeak-ng"))


def make_call(*lines: str, echoes_marks: bool = False, **agent_kwargs: object) -> tuple[CallSession, FakeVoiceAgent, RecordingTransport]:
    agent = FakeVoiceAgent(espeak_config(), recognizer=ScriptedRecognizer(*lines), **agent_kwargs)  # type: ignore[arg-type]
    transport = RecordingTransport(echoes_marks=echoes_marks)
    session = CallSession(agent, transport, CallInfo(conversation_id="call-1", user_id="tel-x", gateway="test"))
    session.start()
    return session, agent, transport


async def test_a_spoken_turn_is_answered_with_paced_audio() -> None:
    session, agent, transport = make_call(LOST)
    await feed(session, np.concatenate([espeak_8k(LOST), silence_8k(0.8)]), speed=4)
    assert await wait_for(lambda: len(transport.marks) == 2, 60)
    turn = agent.turns[0]
    assert turn.conversation_id == "call-1" and turn.user_id == "tel-x" and turn.channel == "voice"
    assert turn.audio is not None and turn.audio.sample_rate_hz == 16000 and 1.0 < turn.audio.duration_s < 3.0
    assert dict(turn.metadata)["end_of_turn"] == "silence"
    assert isinstance(agent.results[0].decision, Answer)
    assert len(transport.frames) > 100  # two sentences of reply, 20 ms each
    assert session.stats.barge_ins == 0 and transport.clears == []
    await session.finish("test")
    report = RECENT_CALLS[-1]
    assert (report.conversation_id, report.turns, report.frames_sent) == ("call-1", 1, len(transport.frames))
    assert len(report.reply_latencies_ms) == 1 and 0 < report.reply_latencies_ms[0] < 5000


async def test_barge_in_stops_the_reply_clears_and_takes_the_new_turn() -> None:
    session, agent, transport = make_call(LOST, PERSON)
    await feed(session, np.concatenate([espeak_8k(LOST), silence_8k(0.8)]), speed=4)
    assert await wait_for(lambda: len(transport.frames) > 10, 60)
    assert session.talking
    interruption = espeak_8k(PERSON)
    await feed(session, interruption[: 8000], speed=1)  # one second of the caller talking over us
    assert session.stats.barge_ins == 1 and len(transport.clears) == 1
    frames_at_clear = sum(1 for t in transport.frame_times if t <= transport.clears[0])
    await asyncio.sleep(0.3)
    assert sum(1 for t in transport.frame_times if t <= transport.clears[0] + 0.3) == frames_at_clear
    await feed(session, np.concatenate([interruption[8000:], silence_8k(0.8)]), speed=4)
    assert await wait_for(lambda: transport.transfers, 60)
    assert len(agent.turns) == 2 and isinstance(agent.results[1].decision, Handoff)
    assert session.transferred
    await session.finish("test")


async def test_caller_noise_while_the_agent_talks_is_not_a_barge_in() -> None:
    session, _, transport = make_call(LOST)
    await feed(session, np.concatenate([espeak_8k(LOST), silence_8k(0.8)]), speed=4)
    assert await wait_for(lambda: len(transport.frames) > 10, 60)
    blip = espeak_8k("uh")[:1200]  # 150 ms: below barge_in_min_speech_ms
    await feed(session, np.concatenate([blip, silence_8k(0.3)]), speed=1)
    assert session.stats.barge_ins == 0 and transport.clears == []
    await session.finish("test")


async def test_dtmf_zero_interrupts_and_asks_for_a_human() -> None:
    session, agent, transport = make_call(LOST)
    await feed(session, np.concatenate([espeak_8k(LOST), silence_8k(0.8)]), speed=4)
    assert await wait_for(lambda: len(transport.frames) > 10, 60)
    session.on_dtmf("0")
    assert session.stats.barge_ins == 1
    assert await wait_for(lambda: transport.transfers, 60)
    assert agent.turns[1].dtmf == "0" and agent.turns[1].audio is None
    assert session.stats.dtmf == 1
    await session.finish("test")


async def test_a_failing_turn_is_apologised_for_and_handed_off_without_dropping_the_call() -> None:
    session, _, transport = make_call(LOST, fail_turns=1)
    await feed(session, np.concatenate([espeak_8k(LOST), silence_8k(0.8)]), speed=4)
    assert await wait_for(lambda: transport.transfers, 60)
    assert session.stats.failed_turns == 1 and len(transport.frames) > 50  # the apology was spoken
    assert "ConnectionError" in transport.transfers[0]
    assert not transport.closed
    await session.finish("test")


async def test_a_hang_up_mid_utterance_still_hands_the_words_to_the_runtime() -> None:
    session, agent, transport = make_call(LOST)
    await feed(session, espeak_8k("I lost my credit card and I"), speed=4)
    assert agent.turns == []
    await session.finish("socket closed")
    assert len(agent.turns) == 1 and dict(agent.turns[0].metadata)["end_of_turn"] == "hangup"
    assert transport.frames == []  # nobody to answer


async def test_a_failed_transfer_keeps_the_call_with_the_bot() -> None:
    session, _, transport = make_call(PERSON)
    transport.transfer_ok = False
    await feed(session, np.concatenate([espeak_8k(PERSON), silence_8k(0.8)]), speed=4)
    assert await wait_for(lambda: transport.transfers, 60)
    assert not session.transferred
    await session.finish("test")


async def test_hand_off_waits_for_the_marks_before_transferring() -> None:
    session, _, transport = make_call(PERSON, echoes_marks=True)
    await feed(session, np.concatenate([espeak_8k(PERSON), silence_8k(0.8)]), speed=4)
    assert await wait_for(lambda: transport.marks, 60)
    await asyncio.sleep(0.3)
    assert transport.transfers == []  # the mark has not come back: the caller is still hearing it
    session.on_mark(transport.marks[-1][1])
    assert await wait_for(lambda: transport.transfers, 10)
    await session.finish("test")


def test_caller_numbers_are_salted_hashes() -> None:
    salt = Secret("pepper")
    a = caller_user_id("+44 20 7946 0958", salt)
    assert a == caller_user_id("+442079460958", salt)
    assert a is not None and a.startswith("tel-") and "7946" not in a
    assert caller_user_id("+442079460958", Secret("other")) != a
    assert caller_user_id("anonymous", salt) is None and caller_user_id(None, salt) is None


@pytest.mark.parametrize("errors", [3])
async def test_too_many_protocol_errors_close_the_call(errors: int) -> None:
    config = espeak_config()
    config = replace(config, telephony=replace(config.telephony, max_protocol_errors=errors))
    agent = FakeVoiceAgent(config, recognizer=ScriptedRecognizer(LOST))
    session = CallSession(agent, RecordingTransport(), CallInfo(conversation_id="c", user_id=None, gateway="test"))
    assert [session.protocol_error("bad") for _ in range(errors + 1)] == [False] * errors + [True]
