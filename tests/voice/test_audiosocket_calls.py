"""AudioSocket gateway end to end: a real TCP client plays Asterisk's side against the real server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from agent.channels import audiosocket as wire
from agent.config import AgentConfig
from agent.messages import Handoff
from agent.voice import serve_audiosocket
from tests.voice.fakes import FakeVoiceAgent, ScriptedRecognizer
from tests.voice.phone import AudioSocketPhone, espeak_8k, heard_as, silence_8k, wait_for

pytestmark = pytest.mark.timeout(180)  # a hung call fails the test instead of the run

LOST = "I lost my credit card"
PERSON = "I want to talk to a person"
CALL = "40325ec2-5efd-4bd3-805f-53576e581d13"


def espeak_config(**telephony: Any) -> AgentConfig:
    config = AgentConfig()
    return replace(config, tts=replace(config.tts, backend="espeak-ng"),
                   telephony=replace(config.telephony, **telephony))


@contextlib.asynccontextmanager
async def server(agent: Any, events: list[dict[str, str]] | None = None) -> AsyncIterator[int]:
    srv = await serve_audiosocket(agent, "127.0.0.1", 0, on_handoff=(events.append if events is not None else None))
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        srv.close()
        await srv.wait_closed()


@pytest.mark.slow
async def test_a_call_is_answered_and_handed_off_with_a_clean_hang_up() -> None:
    agent = FakeVoiceAgent(espeak_config())
    events: list[dict[str, str]] = []
    async with server(agent, events) as port, AudioSocketPhone("127.0.0.1", port, CALL) as phone:
        phone.say(np.concatenate([espeak_8k(LOST), silence_8k(0.2)]))
        assert await wait_for(lambda: agent.results and phone.heard.media_frames > 100, 60)
        first = agent.results[0]
        assert heard_as(first.transcript.text, LOST)
        assert first.nlu is not None and first.nlu.intent == "lost_or_stolen_card"
        assert agent.turns[0].conversation_id == CALL and agent.turns[0].user_id is None
        assert phone.heard.media_bytes == 320 * phone.heard.media_frames  # 20 ms of 16-bit 8 kHz PCM each
        await asyncio.sleep(4.0)  # let the reply finish
        phone.say(espeak_8k(PERSON))
        assert await wait_for(lambda: phone.heard.closed, 60)
        assert phone.hangup_received
    assert isinstance(agent.results[1].decision, Handoff)
    assert events == [{"event": "handoff", "conversation_id": CALL, "summary": "caller asked for a person"}]


async def test_dtmf_zero_over_audiosocket_hands_off() -> None:
    agent = FakeVoiceAgent(espeak_config(), recognizer=ScriptedRecognizer(LOST))
    events: list[dict[str, str]] = []
    async with server(agent, events) as port, AudioSocketPhone("127.0.0.1", port, CALL) as phone:
        await asyncio.sleep(0.1)
        await phone.dtmf("0")
        assert await wait_for(lambda: phone.hangup_received, 60)
    assert agent.turns[0].dtmf == "0" and events and events[0]["conversation_id"] == CALL


# --- bad input ------------------------------------------------------------------------------------


async def raw_connection(port: int, *, rcvbuf: int | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if rcvbuf is None:
        return await asyncio.open_connection("127.0.0.1", port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock)


async def closed_by_server(reader: asyncio.StreamReader, timeout_s: float = 5.0) -> bytes:
    """Everything the server sent until it closed the connection."""
    return await asyncio.wait_for(reader.read(), timeout_s)


async def test_audio_before_the_uuid_closes_the_connection() -> None:
    agent = FakeVoiceAgent(espeak_config(), recognizer=ScriptedRecognizer(LOST))
    async with server(agent) as port:
        reader, writer = await raw_connection(port)
        writer.write(wire.audio_frame(b"\x00" * 320))
        assert await closed_by_server(reader) == b""
        writer.close()
    assert agent.turns == []


async def test_unknown_types_are_ignored_and_the_call_goes_on() -> None:
    agent = FakeVoiceAgent(espeak_config(), recognizer=ScriptedRecognizer(LOST))
    async with server(agent) as port, AudioSocketPhone("127.0.0.1", port, CALL) as phone:
        phone.writer.write(wire.encode(0x42, b"what is this") + wire.encode(0x02, b"") + wire.encode(wire.KIND_DTMF, b"xx"))
        phone.writer.write(wire.encode(wire.KIND_AUDIO, b"\x00" * 3))  # half a sample
        phone.say(np.concatenate([espeak_8k(LOST), silence_8k(0.2)]))
        assert await wait_for(lambda: phone.heard.media_frames > 20, 60)
        assert not phone.heard.closed


@pytest.mark.parametrize(
    ("tail", "what"),
    [(b"\x10\x01", "a truncated header"), (b"\x10\x01\x40" + b"\x00" * 100, "a length larger than what follows")],
)
async def test_a_broken_stream_ends_that_call_only_and_keeps_what_was_said(tail: bytes, what: str) -> None:
    agent = FakeVoiceAgent(espeak_config(), recognizer=ScriptedRecognizer(LOST))
    async with server(agent) as port, AudioSocketPhone("127.0.0.1", port, str(uuid.uuid4())) as other:
        reader, writer = await raw_connection(port)
        writer.write(wire.encode(wire.KIND_UUID, uuid.UUID(CALL).bytes))
        speech = espeak_8k("I lost my credit card and")
        for i in range(0, len(speech) - 160, 160):
            writer.write(wire.audio_frame((speech[i : i + 160] * 32767).astype("<i2").tobytes()))
        writer.write(tail)
        await writer.drain()
        writer.write_eof()
        await closed_by_server(reader)
        writer.close()
        assert await wait_for(lambda: any(t.conversation_id == CALL for t in agent.turns), 20), what
        saved = next(t for t in agent.turns if t.conversation_id == CALL)
        assert dict(saved.metadata)["end_of_turn"] == "hangup"
        other.say(np.concatenate([espeak_8k(LOST), silence_8k(0.2)]))
        assert await wait_for(lambda: other.heard.media_frames > 20, 60)  # the other call is unharmed


async def test_an_absurd_length_closes_the_call() -> None:
    agent = FakeVoiceAgent(espeak_config(max_frame_bytes=4000), recognizer=ScriptedRecognizer(LOST))
    async with server(agent) as port:
        reader, writer = await raw_connection(port)
        writer.write(wire.encode(wire.KIND_UUID, uuid.UUID(CALL).bytes) + b"\x10\xff\xff")
        await closed_by_server(reader)
        writer.close()


async def test_a_line_that_stops_reading_is_dropped_and_others_continue() -> None:
    long_answer = " ".join(["Here is a very long answer that goes on and on."] * 12)
    agent = FakeVoiceAgent(espeak_config(send_timeout_s=0.5), recognizer=ScriptedRecognizer(LOST),
                           answer_text=long_answer)
    async with server(agent) as port:
        _reader, writer = await raw_connection(port, rcvbuf=4096)
        writer.write(wire.encode(wire.KIND_UUID, uuid.UUID(CALL).bytes))
        speech = np.concatenate([espeak_8k(LOST), silence_8k(1.0)])
        for i in range(0, len(speech), 160):
            writer.write(wire.audio_frame((speech[i : i + 160] * 32767).astype("<i2").tobytes()))
        await writer.drain()
        # keep the line open, sending silence, but never read: the server must give up on it
        silence = wire.audio_frame(b"\x00" * 320)

        async def keep_sending() -> None:
            with contextlib.suppress(ConnectionError):
                while True:
                    writer.write(silence)
                    await writer.drain()
                    await asyncio.sleep(0.02)

        sender = asyncio.create_task(keep_sending())
        try:
            assert await wait_for(sender.done, 60)  # the server dropped the connection: writing fails
        finally:
            sender.cancel()
            writer.close()
        async with AudioSocketPhone("127.0.0.1", port, str(uuid.uuid4())) as other:
            other.say(np.concatenate([espeak_8k(LOST), silence_8k(0.2)]))
            assert await wait_for(lambda: other.heard.media_frames > 20, 60)

