"""Voice activity and turn-taking: Silero VAD (ONNX) on 20 ms telephone frames.

``SileroVad`` gives the probability of speech for each 32 ms window (256 samples at 8 kHz,
512 at 16 kHz), keeping the model's recurrent state of one call. The ONNX session is loaded
once per process with ``silero_vad.load_silero_vad(onnx=True)`` and shared; the state is not.

``TurnDetector`` turns those probabilities into turns: speech starts after ``min_speech_ms``
of voiced audio; the turn ends after ``end_of_turn_silence_ms`` of silence or at
``max_turn_ms``. The utterance handed on ends ``tail_ms`` after the last voiced frame, so the
clip is known ``end_of_turn_silence_ms - tail_ms`` before the turn is declared over, and a
caller may start transcribing it early (``TurnEvent`` kind ``"candidate"``).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from agent.config import VadConfig
from agent.errors import ConfigError, InvalidInput

FRAME_MS = 20
_STATE_SHAPE = (2, 1, 128)
_session: Any = None
_session_lock = threading.Lock()


def _shared_session() -> Any:
    global _session
    with _session_lock:
        if _session is None:
            import silero_vad

            _session = silero_vad.load_silero_vad(onnx=True).session  # onnxruntime, 1 thread
        return _session


class SileroVad:
    """Speech probabilities of one audio stream (8 or 16 kHz float32 mono)."""

    def __init__(self, *, sample_rate_hz: int = 8_000) -> None:
        if sample_rate_hz not in (8_000, 16_000):
            raise ConfigError(f"Silero VAD: expected 8000 or 16000 Hz, got {sample_rate_hz}")
        self.sample_rate_hz = sample_rate_hz
        self.window = 256 if sample_rate_hz == 8_000 else 512  # samples per model call (32 ms)
        self._context_size = 32 if sample_rate_hz == 8_000 else 64
        self._session = _shared_session()
        self._sr = np.array(sample_rate_hz, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(self._context_size, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def push(self, samples: np.ndarray) -> list[float]:
        """Buffer ``samples``; one probability in [0, 1] for each 32 ms window completed."""
        self._pending = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32)])
        out = []
        while len(self._pending) >= self.window:
            chunk, self._pending = self._pending[: self.window], self._pending[self.window :]
            x = np.concatenate([self._context, chunk])[None, :]
            prob, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
            self._context = chunk[-self._context_size :]
            out.append(float(prob[0, 0]))
        return out


TurnEventKind = Literal["speech_started", "candidate", "turn_ended"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnEvent:
    kind: TurnEventKind
    samples: np.ndarray | None = None  # the utterance (float32, detector's rate) for candidate/turn_ended
    reason: str = ""  # "silence" | "max_length" | "flush" for turn_ended
    voiced_ms: int = 0


class TurnDetector:
    """Frames in, turn events out. One per call; not thread-safe."""

    def __init__(self, config: VadConfig, *, sample_rate_hz: int = 8_000, vad: SileroVad | None = None) -> None:
        _check(config)
        self.config = config
        self.sample_rate_hz = sample_rate_hz
        self.vad = vad or SileroVad(sample_rate_hz=sample_rate_hz)
        self.frame_samples = sample_rate_hz * FRAME_MS // 1000
        self._preroll: deque[np.ndarray] = deque(maxlen=max(1, (config.preroll_ms + config.min_speech_ms) // FRAME_MS))
        self._prob = 0.0
        self._reset_utterance()

    def _reset_utterance(self) -> None:
        self.in_speech = False  # a turn has started and has not ended
        self._frames: list[np.ndarray] = []
        self._onset_ms = 0  # consecutive voiced ms while idle
        self._silence_ms = 0
        self.voiced_ms = 0
        self._last_voiced_index = 0  # frames up to and including the last voiced one
        self._candidate_sent = False

    def push(self, frame: np.ndarray) -> list[TurnEvent]:
        """One 20 ms frame (any length is accepted; timing counts samples)."""
        frame = np.asarray(frame, dtype=np.float32)
        if frame.ndim != 1:
            raise InvalidInput(f"VAD frame: expected mono samples, got shape {frame.shape}")
        probs = self.vad.push(frame)
        if probs:
            self._prob = max(probs)
        frame_ms = round(1000 * len(frame) / self.sample_rate_hz)
        voiced = self._prob >= (self.config.threshold - 0.15 if self.in_speech else self.config.threshold)
        return self._speaking(frame, frame_ms, voiced) if self.in_speech else self._idle(frame, frame_ms, voiced)

    def _idle(self, frame: np.ndarray, frame_ms: int, voiced: bool) -> list[TurnEvent]:
        self._preroll.append(frame)
        self._onset_ms = self._onset_ms + frame_ms if voiced else 0
        if self._onset_ms < self.config.min_speech_ms:
            return []
        self.in_speech = True
        self._frames = list(self._preroll)
        self._preroll.clear()
        self.voiced_ms = self._onset_ms
        self._last_voiced_index = len(self._frames)
        return [TurnEvent(kind="speech_started", voiced_ms=self.voiced_ms)]

    def _speaking(self, frame: np.ndarray, frame_ms: int, voiced: bool) -> list[TurnEvent]:
        self._frames.append(frame)
        if voiced:
            self.voiced_ms += frame_ms
            self._silence_ms = 0
            self._last_voiced_index = len(self._frames)
            self._candidate_sent = False
        else:
            self._silence_ms += frame_ms
        events: list[TurnEvent] = []
        if 0 < self._silence_ms and self._silence_ms >= self.config.tail_ms and not self._candidate_sent:
            self._candidate_sent = True
            events.append(TurnEvent(kind="candidate", samples=self._utterance(), voiced_ms=self.voiced_ms))
        if self._silence_ms >= self.config.end_of_turn_silence_ms:
            events.append(self._end("silence"))
        elif len(self._frames) * FRAME_MS >= self.config.max_turn_ms:
            events.append(self._end("max_length", whole=True))
        return events

    def _utterance(self, *, whole: bool = False) -> np.ndarray:
        """Frames up to the last voiced one plus ``tail_ms`` (all frames when ``whole``)."""
        n = len(self._frames) if whole else min(len(self._frames), self._last_voiced_index + self.config.tail_ms // FRAME_MS)
        return np.concatenate(self._frames[:n]) if n else np.zeros(0, dtype=np.float32)

    def _end(self, reason: str, *, whole: bool = False) -> TurnEvent:
        event = TurnEvent(kind="turn_ended", samples=self._utterance(whole=whole), reason=reason, voiced_ms=self.voiced_ms)
        self._reset_utterance()
        return event

    def flush(self) -> TurnEvent | None:
        """End a turn in progress now (the call closed mid-utterance); None when there is none."""
        return self._end("flush", whole=True) if self.in_speech else None

    def discard(self) -> None:
        """Forget the utterance in progress (and the VAD's memory of it)."""
        self._reset_utterance()
        self._preroll.clear()


def _check(config: VadConfig) -> None:
    problems = []
    if not 0.0 < config.threshold < 1.0:
        problems.append(f"vad.threshold must be in (0, 1), got {config.threshold}")
    if config.end_of_turn_silence_ms < FRAME_MS:
        problems.append(f"vad.end_of_turn_silence_ms must be >= {FRAME_MS}, got {config.end_of_turn_silence_ms}")
    if not 0 <= config.tail_ms <= config.end_of_turn_silence_ms:
        problems.append(f"vad.tail_ms must be in [0, end_of_turn_silence_ms], got {config.tail_ms}")
    if config.max_turn_ms < 1000:
        problems.append(f"vad.max_turn_ms must be >= 1000, got {config.max_turn_ms}")
    if problems:
        raise ConfigError("; ".join(problems))


def load_vad(config: VadConfig, *, sample_rate_hz: int = 8_000) -> TurnDetector:
    """A fresh turn detector (its own VAD state) for one call, at the telephone rate by default."""
    return TurnDetector(config, sample_rate_hz=sample_rate_hz)
