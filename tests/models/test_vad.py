"""models/vad.py: Silero VAD on 20 ms telephone frames, end of turn, maximum turn length."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from agent.config import VadConfig
from agent.errors import ConfigError, InvalidInput
from models.vad import SileroVad, TurnDetector, load_vad
from tests.voice.phone import espeak_8k, read_8k, silence_8k


def run(detector: TurnDetector, samples: np.ndarray, frame: int = 160) -> list[tuple[float, object]]:
    events = []
    for i in range(0, len(samples), frame):
        for event in detector.push(samples[i : i + frame]):
            events.append(((i + frame) / 8000, event))
    return events


@pytest.fixture(scope="module")
def harvard(shared_data: Path) -> np.ndarray:
    path = shared_data / "speech" / "OSR_us_000_0034_8k.wav"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return read_8k(path)


def test_silero_gives_low_probability_to_silence_and_high_to_speech() -> None:
    vad = SileroVad(sample_rate_hz=8000)
    quiet = vad.push(silence_8k(1.0))
    vad.reset()
    speech = vad.push(espeak_8k("I lost my credit card yesterday"))
    assert len(quiet) == 8000 // 256
    assert max(quiet) < 0.2
    assert max(speech) > 0.8


def test_the_ten_harvard_sentences_make_ten_turns(harvard: np.ndarray) -> None:
    events = run(load_vad(VadConfig()), harvard)
    ended = [e for _, e in events if e.kind == "turn_ended"]
    started = [e for _, e in events if e.kind == "speech_started"]
    assert len(ended) == 10 and len(started) == 10
    assert all(e.reason == "silence" for e in ended)
    durations = [len(e.samples) / 8000 for e in ended]
    assert all(1.0 < d < 4.5 for d in durations), durations


def test_turn_ends_after_the_configured_trailing_silence() -> None:
    speech = espeak_8k("Please block my card")
    audio = np.concatenate([silence_8k(0.5), speech, silence_8k(2.0)])
    for silence_ms in (300, 600, 1000):
        events = run(load_vad(replace(VadConfig(), end_of_turn_silence_ms=silence_ms)), audio)
        times = [t for t, e in events if e.kind == "turn_ended"]
        assert len(times) == 1
        speech_end_s = 0.5 + (np.flatnonzero(np.abs(speech) > 0.02)[-1] + 1) / 8000  # last audible sample
        # the VAD needs a 32 ms window or two to notice the end, and the hysteresis may hold a few more
        assert silence_ms / 1000 - 0.05 < times[0] - speech_end_s < silence_ms / 1000 + 0.2


def test_candidate_clip_is_the_clip_of_the_turn() -> None:
    audio = np.concatenate([silence_8k(0.3), espeak_8k("I want to talk to a person"), silence_8k(1.0)])
    events = run(load_vad(VadConfig()), audio)
    kinds = [e.kind for _, e in events]
    assert kinds == ["speech_started", "candidate", "turn_ended"]
    candidate, ended = events[1][1], events[2][1]
    assert events[1][0] < events[2][0] - 0.3  # known 400 ms before the turn is declared over
    np.testing.assert_array_equal(candidate.samples, ended.samples)


def test_a_long_monologue_is_cut_at_the_maximum_turn_length() -> None:
    speech = espeak_8k("I have been trying to reach someone about my card for a very long time and nobody answers " * 2)
    detector = load_vad(replace(VadConfig(), max_turn_ms=2000))
    ended = [e for _, e in run(detector, speech) if e.kind == "turn_ended"]
    assert ended and ended[0].reason == "max_length"
    assert len(ended[0].samples) / 8000 == pytest.approx(2.0, abs=0.05)


def test_noise_and_clicks_make_no_turn() -> None:
    rng = np.random.default_rng(0)
    noise = (0.01 * rng.standard_normal(8000 * 2)).astype(np.float32)
    noise[4000:4040] = 0.9  # a 5 ms click
    events = run(load_vad(VadConfig()), noise)
    assert events == []


def test_flush_hands_over_an_utterance_cut_off_by_a_hang_up() -> None:
    detector = load_vad(VadConfig())
    run(detector, espeak_8k("I lost my card and"))
    assert detector.in_speech
    event = detector.flush()
    assert event is not None and event.reason == "flush" and event.voiced_ms > 300
    assert detector.flush() is None


def test_detectors_of_two_calls_do_not_share_state() -> None:
    a, b = load_vad(VadConfig()), load_vad(VadConfig())
    run(a, espeak_8k("hello there I need help"))
    assert a.in_speech and not b.in_speech


def test_bad_config_and_frames_are_refused() -> None:
    with pytest.raises(ConfigError, match="tail_ms"):
        load_vad(replace(VadConfig(), tail_ms=900, end_of_turn_silence_ms=600))
    with pytest.raises(ConfigError, match="threshold"):
        load_vad(replace(VadConfig(), threshold=1.5))
    with pytest.raises(InvalidInput, match="mono"):
        load_vad(VadConfig()).push(np.zeros((160, 2), np.float32))
