"""agent/voice/playback.py: sentence pipeline, real-time pacing, marks."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from agent.config import TtsConfig
from agent.messages import AudioClip
from agent.voice.playback import CallClosed, Speaker
from models.tts import load_synthesizer
from tests.voice.fakes import RecordingTransport

pytestmark = pytest.mark.timeout(180)  # a hung call fails the test instead of the run


class SlowSynthesizer:
    """Takes ``delay_s`` per sentence and returns 1 s of tone, so timing is known."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.started: list[float] = []

    def synthesize(self, text: str) -> AudioClip:
        self.started.append(time.monotonic())
        time.sleep(self.delay_s)
        t = np.arange(22050) / 22050
        return AudioClip(samples=(0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), sample_rate_hz=22050)


async def test_frames_are_paced_in_real_time_with_a_mark_per_sentence() -> None:
    transport = RecordingTransport()
    speaker = Speaker(transport, lambda: SlowSynthesizer(0.05), lead_ms=60)
    started = time.monotonic()
    marks = await speaker.speak("First sentence. Second sentence.", reply_id="r1")
    elapsed = time.monotonic() - started
    assert marks == ["r1.0", "r1.1"]
    assert [name for _, name in transport.marks] == marks
    assert len(transport.frames) == 100 and all(len(f) == 160 for f in transport.frames)  # 2 s of 20 ms frames
    gaps = np.diff(transport.frame_times[5:])
    assert float(np.median(gaps)) == pytest.approx(0.020, abs=0.005)
    assert elapsed > 1.9  # paced in real time (2 s of audio, less the 60 ms lead), not sent in a burst
    assert speaker.stats.frames_sent == 100


async def test_first_sentence_plays_while_the_next_is_synthesised() -> None:
    transport = RecordingTransport()
    synthesizer = SlowSynthesizer(0.4)
    speaker = Speaker(transport, lambda: synthesizer, lead_ms=60)
    started = time.monotonic()
    await speaker.speak("One. Two. Three.", reply_id="r1")
    first_frame = transport.frame_times[0] - started
    assert first_frame < 0.6  # after one synthesis, not three
    assert synthesizer.started[1] - started < 1.0  # the second started while the first was playing
    assert speaker.stats.underruns == 0  # 0.4 s of synthesis hides behind 1 s of playback


async def test_the_first_frames_go_at_once_then_the_lead_is_kept() -> None:
    transport = RecordingTransport()
    speaker = Speaker(transport, lambda: SlowSynthesizer(0.0), lead_ms=100)
    task = asyncio.create_task(speaker.speak("Hello.", reply_id="r1"))
    await asyncio.sleep(0.05)
    assert len(transport.frames) >= 5  # 100 ms of lead sent at once, then real time
    assert len(transport.frames) <= 9
    task.cancel()


async def test_cancelling_stops_sending_at_once() -> None:
    transport = RecordingTransport()
    speaker = Speaker(transport, lambda: load_synthesizer(TtsConfig(backend="espeak-ng")), lead_ms=60)
    task = asyncio.create_task(speaker.speak("This is a long reply that the caller will interrupt. It goes on.",
                                             reply_id="r1"))
    while not transport.frames:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    task.cancel()
    sent = len(transport.frames)
    await asyncio.sleep(0.2)
    assert len(transport.frames) == sent


async def test_a_closed_gateway_raises_call_closed() -> None:
    transport = RecordingTransport()
    transport.closed = True
    speaker = Speaker(transport, lambda: SlowSynthesizer(0.0))
    with pytest.raises(CallClosed):
        await speaker.speak("Hello.", reply_id="r1")


async def test_a_line_closed_mid_reply_leaves_no_synthesis_task_behind() -> None:
    """Regression: the synthesis task, cancelled with its queue full, used to wait forever to
    post its end marker, which hung the event loop's shutdown."""
    transport = RecordingTransport()
    speaker = Speaker(transport, lambda: SlowSynthesizer(0.0), lead_ms=60)
    sentences = " ".join(f"Sentence number {i} of a long answer." for i in range(8))
    speaking = asyncio.create_task(speaker.speak(sentences, reply_id="r1"))
    await asyncio.sleep(0.3)  # the first second of audio is playing; the queue is full behind it
    transport.closed = True
    with pytest.raises(CallClosed):
        await speaking
    await asyncio.sleep(0.1)
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert leftovers == [], leftovers
