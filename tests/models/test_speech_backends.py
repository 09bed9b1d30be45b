"""Whisper base from the two-part packages, and openai-whisper on a checkpoint converted from the
shipped CTranslate2 weights: both back-ends must hear the test clips the same way."""

from __future__ import annotations

import csv
import os
import re
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from agent.config import AsrConfig
from agent.messages import AudioClip
from models import whisper_convert
from models.speech import ctranslate2_dir, load_recognizer

pytestmark = pytest.mark.slow


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


@pytest.fixture(scope="module")
def test_clips(shared_data: Path) -> list[tuple[AudioClip, str]]:
    folder = shared_data / "speech"
    if not (folder / "transcripts.tsv").is_file():
        pytest.skip(f"{folder}/transcripts.tsv is absent")
    out = []
    with open(folder / "transcripts.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            samples, rate = sf.read(folder / row["file"], dtype="float32")
            out.append((AudioClip(samples=samples, sample_rate_hz=rate), row["text"]))
    samples, rate = sf.read(folder / "OSR_us_000_0034_8k.wav", dtype="float32")
    out.append((AudioClip(samples=samples[: int(rate * 7.4)], sample_rate_hz=rate),
                "A gold ring will please most any girl. The long journey home took a year."))
    return out


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("asr-cache")


def test_reads_the_shipped_ctranslate2_model() -> None:
    spec, variables = whisper_convert.read_ctranslate2(ctranslate2_dir("tiny.en", Path("/nonexistent")) / "model.bin")
    assert spec == "WhisperSpec"
    assert variables["decoder/projection/weight"] is variables["decoder/embeddings/weight"]  # an alias
    dims, state = whisper_convert.openai_state(variables)
    assert dims == {"n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6,
                    "n_audio_layer": 4, "n_vocab": 51864, "n_text_ctx": 448, "n_text_state": 384,
                    "n_text_head": 6, "n_text_layer": 4}
    assert state["encoder.blocks.0.attn.query.weight"].shape == (384, 384)
    assert "encoder.blocks.0.attn.key.bias" not in state  # Whisper keys have no bias
    assert state["decoder.blocks.3.cross_attn.value.bias"].shape == (384,)


def test_damaged_or_quantised_models_are_refused(tmp_path: Path) -> None:
    source = ctranslate2_dir("tiny.en", tmp_path) / "model.bin"
    truncated = tmp_path / "model.bin"
    truncated.write_bytes(source.read_bytes()[:5_000_000])
    with pytest.raises(ValueError, match="truncated"):
        whisper_convert.read_ctranslate2(truncated)
    _, variables = whisper_convert.read_ctranslate2(source)
    variables = {**variables, "encoder/conv1/weight_scale": np.ones(384, np.float32)}
    with pytest.raises(ValueError, match="expected a float16/float32 CTranslate2 model, got int8"):
        whisper_convert.openai_state(variables)


def test_whisper_base_is_assembled_once_even_when_two_workers_race(cache_dir: Path) -> None:
    results: list[Path] = []
    errors: list[BaseException] = []

    def assemble() -> None:
        try:
            results.append(whisper_convert.assemble_base(cache_dir))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=assemble) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    folder = results[0]
    part1, part2 = whisper_convert._base_parts()
    expected = (part1 / "model.bin.part1").stat().st_size + (part2 / "model.bin.part2").stat().st_size
    assert (folder / "model.bin").stat().st_size == expected
    assert {"config.json", "tokenizer.json", "vocabulary.txt"} <= set(os.listdir(folder))
    assert [p for p in os.listdir(cache_dir) if p.startswith(".whisper-base-")] == []  # no leftovers
    mtime = (folder / "model.bin").stat().st_mtime_ns
    assert whisper_convert.assemble_base(cache_dir) == folder
    assert (folder / "model.bin").stat().st_mtime_ns == mtime  # reused, not rebuilt


def test_whisper_base_transcribes(cache_dir: Path, test_clips: list[tuple[AudioClip, str]]) -> None:
    recognizer = load_recognizer(replace(AsrConfig(), model_name="base", cache_dir=cache_dir))
    for clip, expected in test_clips[:3]:
        transcript = recognizer.transcribe(clip, with_features=True)
        assert words(transcript.text) == words(expected)
        assert transcript.language == "en"
        assert transcript.features is not None and transcript.features.shape[1] == 512


def test_openai_whisper_on_the_converted_checkpoint_hears_what_faster_whisper_hears(
    cache_dir: Path, test_clips: list[tuple[AudioClip, str]]
) -> None:
    pytest.importorskip("whisper")
    fast = load_recognizer(replace(AsrConfig(), encoder_window_s=30.0))  # Whisper's own decoding, as the reference
    reference = load_recognizer(replace(AsrConfig(), backend="openai-whisper", cache_dir=cache_dir))
    assert (cache_dir / "openai-whisper-tiny.en.pt").is_file()
    for clip, expected in test_clips:
        a = fast.transcribe(clip, with_features=True)
        b = reference.transcribe(clip, with_features=True)
        assert words(a.text) == words(b.text) == words(expected)
        assert a.avg_logprob == pytest.approx(b.avg_logprob, abs=0.1)
        assert a.features is not None and b.features is not None and a.features.shape == b.features.shape
        cosine = float(np.sum(a.features * b.features) / (np.linalg.norm(a.features) * np.linalg.norm(b.features)))
        assert cosine > 0.98  # int8 CTranslate2 against fp32 PyTorch, same weights
