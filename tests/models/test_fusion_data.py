"""The parts of the multimodal set that need no model: pictures, wordings, sentence pools, the
telephone channel, cache keys. (Building a set with Whisper and the encoders: test_fusion_training.py.)"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest

from agent.config import AsrConfig
from agent.messages import IMAGE_KINDS, AudioClip
from models.domain_data import read_domain
from models.multimodal_images import (
    AMBIGUOUS_TEXTS,
    CARRIER_LINES,
    DECIDING_TYPES,
    HEADLINES,
    HELPLINE_LINES,
    IMAGE_KIND_OF,
    SPLITS,
    ambiguous_texts,
    render_picture,
)
from models.multimodal_speech import TRAIN_VOICES, ClipSpec, Voice, telephone_channel, test_voices
from models.multimodal_texts import BANKING77_TO_DOMAIN, domain_split, sentence_pools

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ROOT / "assets" / "domain.yaml"


def _disjoint(pool: dict[str, tuple[str, ...]]) -> bool:
    return all(not set(pool[a]) & set(pool[b]) for a in SPLITS for b in SPLITS if a < b)


def test_wordings_of_the_splits_never_overlap() -> None:
    for family in AMBIGUOUS_TEXTS.values():
        assert _disjoint(family)
    for pool in (*HEADLINES.values(), CARRIER_LINES, HELPLINE_LINES):
        assert _disjoint(pool)
    assert all(ambiguous_texts(t, s) for t in DECIDING_TYPES for s in SPLITS)


def test_pictures_are_deterministic_rgb_and_of_known_kinds() -> None:
    for picture_type in IMAGE_KIND_OF:
        a, b = render_picture(picture_type, 3, "test"), render_picture(picture_type, 3, "test")
        assert a.mode == "RGB" and a.tobytes() == b.tobytes(), picture_type
        assert render_picture(picture_type, 4, "test").tobytes() != a.tobytes()
        assert IMAGE_KIND_OF[picture_type] in IMAGE_KINDS
    assert render_picture("screen_login", 3, "train").tobytes() != render_picture("screen_login", 3, "test").tobytes()
    with pytest.raises(ValueError, match="picture type: expected one of"):
        render_picture("selfie", 1, "test")


def test_deciding_intents_and_banking77_labels_are_domain_intents() -> None:
    intents = {name for name, _ in read_domain(DOMAIN).intents}
    assert set(DECIDING_TYPES.values()) <= intents
    assert set(BANKING77_TO_DOMAIN.values()) <= intents


def test_sentence_pools_are_disjoint_and_test_uses_what_the_text_model_held_out(shared_data: Path) -> None:
    pools, info = sentence_pools(DOMAIN, shared_data / "banking77", random.Random(0))
    names = list(pools)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not {r[0] for r in pools[a]} & {r[0] for r in pools[b]}, (a, b)
    seen, held_out = domain_split(DOMAIN)
    test_domain = {r[0] for r in pools["spoken_test"] + pools["irrelevant_test"] if r[2] == "domain"}
    assert test_domain and test_domain <= {r[0] for r in held_out}
    assert not test_domain & {r[0] for r in seen}
    assert info["banking77_test_rows"] > 0 and any(r[2] == "banking77" for r in pools["spoken_train"])


def test_test_voices_are_not_training_voices() -> None:
    assert not {v.label for v in test_voices()} & {v.label for v in TRAIN_VOICES}


def test_telephone_channel_is_8khz_mulaw_with_the_asked_noise() -> None:
    t = np.arange(16_000) / 16_000
    clip = AudioClip(samples=(0.5 * np.sin(2 * np.pi * 440 * t) + 0.2).astype(np.float32), sample_rate_hz=16_000)
    quiet = telephone_channel(clip, snr_db=40.0, seed=1)
    noisy = telephone_channel(clip, snr_db=5.0, seed=1)
    assert quiet.sample_rate_hz == 8_000 and len(quiet.samples) == 8_000 and quiet.samples.dtype == np.float32
    assert len(np.unique(quiet.samples)) <= 256  # G.711 codes
    assert abs(float(quiet.samples[2000:].mean())) < 0.02  # the 300 Hz high-pass removed the offset
    clean = telephone_channel(clip, snr_db=200.0, seed=1).samples

    def snr(x: np.ndarray) -> float:
        return 10 * np.log10(np.mean(clean ** 2) / np.mean((x - clean) ** 2))

    assert 30 < snr(quiet.samples) < 45 and 3 < snr(noisy.samples) < 7
    np.testing.assert_array_equal(noisy.samples, telephone_channel(clip, snr_db=5.0, seed=1).samples)


def test_clip_keys_change_with_what_makes_the_clip() -> None:
    base = ClipSpec(sentence="my card", voice=Voice(engine="espeak-ng", name="en-us"), rate_wpm=150, snr_db=20.0,
                    noise_seed=1)
    asr = AsrConfig()
    keys = {base.key(asr)}
    for change in ({"sentence": "my cart"}, {"voice": Voice(engine="piper", name="joe")}, {"rate_wpm": 151},
                   {"snr_db": 21.0}, {"noise_seed": 2}):
        keys.add(ClipSpec(**{**{f: getattr(base, f) for f in base.__dataclass_fields__}, **change}).key(asr))
    keys.add(base.key(AsrConfig(model_name="base")))
    assert len(keys) == 7


def test_extra_training_sentences_leave_the_rest_of_the_plan_unchanged(shared_data: Path) -> None:
    from models.multimodal_data import SetConfig, plan_set

    def plan(config: SetConfig) -> tuple[list, list, list]:
        """(first draw's clips, picture turns, extra clips: drawn last, so at the end)."""
        _, spoken, _, pictures = plan_set(DOMAIN, shared_data / "banking77", config)
        n_first = len(spoken) - config.extra_spoken_train * config.train_voices_per_sentence
        return spoken[:n_first], pictures, spoken[n_first:]

    small = SetConfig(spoken=(6, 2, 3), deciding=(1, 1, 1), irrelevant=(1, 0, 1), extra_spoken_train=0)
    spoken, pictures, extra = plan(small)
    assert extra == []
    spoken2, pictures2, extra2 = plan(dataclasses.replace(small, extra_spoken_train=5))
    assert spoken2 == spoken and pictures2 == pictures  # val, test and the first draws are untouched
    assert len(extra2) == 5 * small.train_voices_per_sentence
    assert {row[0] for row in extra2} == {"train"}
    assert not {row[1] for row in extra2} & {row[1] for row in spoken}  # new sentences only
    assert {row[4].voice for row in extra2} <= set(TRAIN_VOICES)
    _, _, many = plan(dataclasses.replace(small, extra_spoken_train=600))  # beyond the pool: Banking77 rows in no pool
    pools, _ = sentence_pools(DOMAIN, shared_data / "banking77", random.Random(0))
    pooled = {row[0] for pool in pools.values() for row in pool}
    sentences = [row[1] for row in many[:: small.train_voices_per_sentence]]
    assert len(sentences) == len(set(sentences)) == 600
    beyond = set(sentences) - {row[0] for row in pools["spoken_train"] + pools["irrelevant_train"]}
    assert beyond and not beyond & pooled
    held_out = {row[0] for name, pool in pools.items() if not name.endswith("_train") for row in pool}
    assert not set(sentences) & held_out
    counts = {i: sum(row[2] == i for row in many[:: small.train_voices_per_sentence]) for i in {row[2] for row in many}}
    assert len(counts) >= 10 and max(counts.values()) <= 600 // 5  # taken in turn across intents
    assert SetConfig(extra_spoken_train=10).scaled(0.5).extra_spoken_train == 5


def test_speech_time_mask_replaces_two_spans_by_the_mean_and_leaves_the_input() -> None:
    import torch

    from models.fusion_fit import FusionTrainConfig, time_mask

    x = torch.arange(40, dtype=torch.float32).repeat(3, 1).T.contiguous()  # (40, 3), row i all i
    out = time_mask(x, 0.2, random.Random(1))
    changed = (out != x).any(1)
    assert 1 <= int(changed.sum()) <= 8 and torch.equal(x[:, 0], torch.arange(40, dtype=torch.float32))
    assert torch.allclose(out[changed], x.mean(0).expand(int(changed.sum()), 3))
    assert torch.equal(time_mask(x[:3], 0.5, random.Random(1)), x[:3])  # too short to mask
    with pytest.raises(Exception, match="speech_time_mask must be in"):
        FusionTrainConfig(speech_time_mask=1.5)
