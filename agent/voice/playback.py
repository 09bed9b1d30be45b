"""Spoken replies on a live call: synthesise sentence by sentence, send 20 ms frames in real time.

The first sentence is played while the next ones are synthesised (one thread does synthesis,
the event loop paces frames). Frame ``i`` of a run of audio is due at ``start + i * 20 ms -
lead``; a short lead absorbs network jitter without queueing much audio at the gateway (a
barge-in then has little to clear). After each sentence a mark is sent; Twilio echoes it when
that audio has played.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from agent.interfaces import SpeechSynthesizer
from agent.messages import AudioClip
from agent.voice.workers import in_background
from modalities.audio import frames_of
from models.tts import split_sentences

log = logging.getLogger("agent.voice")

FRAME_S = 0.020


class CallClosed(Exception):
    """The gateway went away or stopped taking audio; the call is over."""


class CallTransport(Protocol):
    """The outbound side of one call, in the gateway's own audio coding."""

    frame_bytes: int  # bytes in 20 ms of audio
    silence: bytes  # one byte of silence in this coding
    echoes_marks: bool  # True when the gateway reports back when a mark's audio has played

    def encode(self, clip: AudioClip) -> bytes: ...  # any rate -> 8 kHz in the gateway's coding

    async def send_frame(self, frame: bytes) -> None: ...  # raises CallClosed

    async def send_mark(self, name: str) -> None: ...

    async def clear(self) -> None: ...  # drop audio queued at the gateway (barge-in)

    async def transfer(self, summary: str) -> bool: ...  # hand the caller to a human; True when done

    async def close(self) -> None: ...


@dataclass(slots=True)
class PlaybackStats:
    """What a call's outbound audio did; ``late_ms`` is how long after its due time a frame went."""

    frames_sent: int = 0
    max_late_ms: float = 0.0
    frames_late_100ms: int = 0
    first_frame_times: list[float] = field(default_factory=list)  # monotonic s, one per reply
    underruns: int = 0  # times the next sentence was not ready when the previous one ended
    underrun_ms: float = 0.0


class Speaker:
    """Plays replies on one call. ``speak`` is cancelled to stop (barge-in)."""

    def __init__(
        self,
        transport: CallTransport,
        synthesizer: Callable[[], SpeechSynthesizer],
        *,
        lead_ms: int = 60,
        clock: Callable[[], float] = time.monotonic,
        on_mark: Callable[[str], None] | None = None,
        first_max_chars: int | None = 60,
    ) -> None:
        self.first_max_chars = first_max_chars
        self.transport = transport
        self._on_mark = on_mark
        self._synthesizer = synthesizer
        self.lead_s = max(0, lead_ms) / 1000.0
        self.clock = clock
        self.stats = PlaybackStats()
        self.played_until = 0.0  # monotonic time at which the audio sent so far ends

    async def speak(self, text: str, *, reply_id: str) -> list[str]:
        """Say ``text``; returns the marks sent (one per sentence). Raises CallClosed."""
        sentences = split_sentences(text, first_max_chars=self.first_max_chars)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=2)
        producer = asyncio.create_task(self._synthesize(sentences, queue))
        marks: list[str] = []
        try:
            first = True
            while True:
                audio = await queue.get()
                if audio is None:
                    break
                await self._play(audio, first=first)
                first = False
                marks.append(f"{reply_id}.{len(marks)}")
                if self._on_mark is not None:
                    self._on_mark(marks[-1])
                await self.transport.send_mark(marks[-1])
            await producer  # re-raises a synthesis error
        finally:
            if not producer.done():
                producer.cancel()
        return marks

    async def _synthesize(self, sentences: list[str], queue: asyncio.Queue[bytes | None]) -> None:
        try:
            for sentence in sentences:
                await queue.put(await in_background(self._audio_of, sentence))
        except asyncio.CancelledError:
            raise  # the consumer has stopped (hang-up, barge-in): no end marker, which could wait forever
        except BaseException:
            await queue.put(None)  # wake the consumer; `await producer` then re-raises the error
            raise
        await queue.put(None)

    def _audio_of(self, sentence: str) -> bytes:
        """Synthesise and encode one sentence (in a worker thread: the voice may load on first use)."""
        return self.transport.encode(self._synthesizer().synthesize(sentence))

    async def _play(self, audio: bytes, *, first: bool) -> None:
        frames = frames_of(audio, self.transport.frame_bytes, pad=self.transport.silence)
        began = self.clock()
        if not first and self.played_until < began:  # the gateway ran dry between sentences
            self.stats.underruns += 1
            self.stats.underrun_ms += (began - self.played_until) * 1000.0
        self.played_until = max(self.played_until, began)
        start = self.played_until
        for i, frame in enumerate(frames):
            due = max(began, start + i * FRAME_S - self.lead_s)  # the first frames go at once
            now = self.clock()
            if due > now:
                await asyncio.sleep(due - now)
                now = self.clock()
            self._record(now - due, first=first and i == 0, at=now)
            await self.transport.send_frame(frame)
            self.played_until = start + (i + 1) * FRAME_S

    def _record(self, late_s: float, *, first: bool, at: float) -> None:
        stats = self.stats
        stats.frames_sent += 1
        late_ms = max(0.0, late_s * 1000.0)
        stats.max_late_ms = max(stats.max_late_ms, late_ms)
        if late_ms > 100.0:
            stats.frames_late_100ms += 1
        if first:
            stats.first_frame_times.append(at)
