"""The multimodal set and the fusion model with the real parts: espeak-ng / Piper voices through
the telephone channel, Whisper tiny.en, EfficientNet-Lite0, the fine-tuned text model (the
session's default model), training with early stopping, saving, loading, and the runtime
answering voice and image turns through the fusion model (and the text path without one).

A tiny set (a few clips and pictures, OCR off) is built once per module in about a minute."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from agent.config import AgentConfig, NluConfig, VisionConfig
from agent.messages import AudioClip, UserTurn
from models.fusion import FusionModel, weights_sha256
from models.fusion_fit import FusionTrainConfig
from models.fusion_training import train_fusion
from models.multimodal_data import MANIFEST, SetConfig, build_set, load_set
from models.multimodal_images import AMBIGUOUS_TEXTS, render_picture
from models.multimodal_speech import TRAIN_VOICES
from models.nlu import NluModel

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kind_head_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small image-kind head (2 rendered pictures a kind), so no default head is trained."""
    from models.image_analyzer import train_kind_head
    from models.image_data import build_labelled_set
    from models.vision import load_image_encoder

    folder = tmp_path_factory.mktemp("kind") / "head"
    train_kind_head(build_labelled_set(per_kind=2), load_image_encoder(VisionConfig()), None).save(folder)
    return folder


@pytest.fixture(scope="module")
def config(kind_head_dir: Path, trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AgentConfig:
    cache = tmp_path_factory.mktemp("cache")
    return dataclasses.replace(
        AgentConfig(), vision=VisionConfig(ocr=False, kind_head_dir=kind_head_dir),
        nlu=NluConfig(model_dir=trained_model_dir, cache_dir=cache))


@pytest.fixture(scope="module")
def tiny_set(config: AgentConfig, tmp_path_factory: pytest.TempPathFactory, shared_data: Path):
    folder = tmp_path_factory.mktemp("set") / "tiny"
    started = time.perf_counter()
    build_set(folder, config, set_config=SetConfig.tiny(), banking77_dir=shared_data / "banking77")
    return load_set(folder), time.perf_counter() - started


@pytest.fixture(scope="module")
def trained(tiny_set, trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    data, _ = tiny_set
    # without validation turns the state with the lowest training loss is kept: the tiny set's two
    # validation clips would pick an epoch at random
    data = dataclasses.replace(data, examples=tuple(ex for ex in data.examples if ex.split != "val"))
    out = tmp_path_factory.mktemp("fusion") / "model"
    text_model = NluModel.from_pretrained(trained_model_dir)
    cfg = FusionTrainConfig(epochs=25, batch_size=8, patience=25, lr=3e-3, threads=1)
    fusion, metrics = train_fusion(data, text_model, text_model_dir=trained_model_dir, out_dir=out, train_config=cfg,
                                   progress=False)
    return fusion, metrics, out


def test_tiny_set_has_every_kind_and_keeps_evaluation_unseen(tiny_set) -> None:
    data, seconds = tiny_set
    counts = data.manifest["counts"]
    assert {"spoken", "image_decides", "image_only", "image_irrelevant"} <= set(counts["train"])
    assert {"spoken", "image_decides", "image_irrelevant"} <= set(counts["test"])
    train, test = data.split("train"), data.split("test")
    assert not {ex.voice for ex in test if ex.voice} & {v.label for v in TRAIN_VOICES}  # unseen voices
    assert not {ex.image for ex in test if ex.image} & {ex.image for ex in train if ex.image}  # unseen pictures
    assert not {ex.typed for ex in test} & {ex.typed for ex in train if ex.typed}  # unseen templates and sentences
    assert {ex.text for ex in test if ex.kind == "image_decides"} <= {
        t for family in AMBIGUOUS_TEXTS.values() for t in family["test"]}
    for ex in data.examples:
        if ex.clip:
            features = data.speech[ex.clip]
            assert features.dtype == np.float16 and features.ndim == 2 and features.shape[1] == 384
        if ex.image:
            assert data.images[ex.image].embedding.shape == (1280,)
    spoken = [ex for ex in data.examples if ex.kind == "spoken"]
    assert sum(bool(ex.text.strip()) for ex in spoken) >= len(spoken) - 1  # Whisper heard something
    print(f"tiny set built in {seconds:.0f} s")


def test_a_rebuild_reuses_every_cached_clip_and_picture(tiny_set, config: AgentConfig, shared_data: Path) -> None:
    data, _ = tiny_set
    stamps = {p: p.stat().st_mtime_ns for p in data.path.rglob("*.npz")}
    started = time.perf_counter()
    build_set(data.path, config, set_config=SetConfig.tiny(), banking77_dir=shared_data / "banking77")
    assert time.perf_counter() - started < 20
    assert {p: p.stat().st_mtime_ns for p in data.path.rglob("*.npz")} == stamps
    assert json.loads((data.path / MANIFEST).read_text())["counts"] == data.manifest["counts"]


def test_training_writes_the_model_and_reports(trained, trained_model_dir: Path) -> None:
    _, metrics, out = trained
    for name in ("fusion.json", "fusion.safetensors", "metrics.json", "report.txt", "training_curves.png", "confusion.png"):
        assert (out / name).is_file(), name
    meta = json.loads((out / "fusion.json").read_text())
    assert meta["text_model"] == {"embedded": False, "path": str(trained_model_dir.resolve()),
                                  "sha256": weights_sha256(trained_model_dir)}
    assert metrics["epochs_run"] >= 1 and 1 <= metrics["best_epoch"] <= metrics["epochs_run"]
    assert set(metrics["test"]["fusion"]) >= {"all", "spoken", "image_decides"}


def test_the_fusion_learns_to_read_the_picture(trained, tiny_set) -> None:
    """On its training turns where the picture decides, the fusion gets (nearly) all right; the
    text model alone cannot, since the same few ambiguous texts go with different intents."""
    from models.fusion_eval import text_predictions
    from models.fusion_fit import TextStates, intents_of, predict, prepare

    fusion, _, _ = trained
    data, _ = tiny_set
    decides = data.split("train", kinds=("image_decides", "image_only"))
    prep = prepare(data, decides, fusion.intent_classes)
    fused = intents_of(fusion, predict(fusion, TextStates(fusion, trainable=False), prep)["intent"])
    truth = [ex.intent for ex in decides]
    alone = text_predictions(fusion.text, [ex.text for ex in decides])
    fused_right = sum(a == b for a, b in zip(fused, truth))
    assert fused_right >= len(truth) - 1, list(zip(truth, fused))
    assert fused_right > sum(a == b for a, b in zip(alone, truth)) + 3


def test_the_picture_router_learns_which_pictures_matter(trained, tiny_set) -> None:
    """On its training turns the router reads the pictures that decide and leaves most irrelevant ones out."""
    from models.fusion_eval import picture_router_use
    from models.fusion_fit import TextStates, predict, prepare

    fusion, metrics, _ = trained
    data, _ = tiny_set
    train = data.split("train")
    used = picture_router_use(train, predict(fusion, TextStates(fusion, trainable=False),
                                             prepare(data, train, fusion.intent_classes)))
    assert used["image_decides"]["read"] == used["image_decides"]["n"]
    assert used["image_only"]["read"] == used["image_only"]["n"]
    assert used["image_irrelevant"]["read"] <= used["image_irrelevant"]["n"] // 2, used
    assert used["image_irrelevant"]["mean_relevance"] < used["image_decides"]["mean_relevance"]
    assert set(metrics["pictures_read"]) >= {"image_decides", "image_irrelevant"}


def test_the_router_trains_apart_from_the_rest(tiny_set, trained_model_dir: Path) -> None:
    """Inputs detached, gradients clipped on their own, created last: every other weight ends one
    epoch exactly as it does with no router, so "router off" is the same model reading every picture."""
    from models.fusion_layers import FusionConfig

    data, _ = tiny_set
    data = dataclasses.replace(data, examples=tuple(ex for ex in data.examples if ex.split != "val"))
    cfg = FusionTrainConfig(epochs=1, batch_size=8, lr=3e-3, threads=1)
    weights = {}
    for router in (True, False):
        fusion, _ = train_fusion(data, NluModel.from_pretrained(trained_model_dir), text_model_dir=None, out_dir=None,
                                 train_config=cfg, fusion_config=FusionConfig(picture_router=router), progress=False)
        weights[router] = fusion.module.state_dict()
    others = [k for k in weights[True] if not k.startswith("router.")]
    assert sorted(others) == sorted(weights[False]) and len(others) < len(weights[True])
    for key in others:
        assert torch.equal(weights[True][key], weights[False][key]), key


def test_typed_sentence_targets_pull_spoken_turns_towards_what_was_meant(tiny_set, trained_model_dir: Path) -> None:
    """``typed_pool_weight``: spoken rows get the text model's mean state of the typed sentence as a
    target (other rows none), and the loss grows by the cosine distance to it."""
    import random

    from models.fusion_fit import TextStates, _loss, new_fusion, prepare, set_teacher, set_typed_targets
    from models.fusion_layers import FusionConfig

    data, _ = tiny_set
    fusion = new_fusion(NluModel.from_pretrained(trained_model_dir), FusionConfig(), image_encoder="x", asr_model="y")
    train = prepare(data, data.split("train"), fusion.intent_classes)
    states = TextStates(fusion, trainable=False)
    set_teacher(fusion, states, train)
    set_typed_targets(fusion, states, train)
    assert train.typed_pool is not None
    spoken = [i for i, ex in enumerate(train.examples) if ex.kind == "spoken"]
    others = [i for i in range(len(train)) if i not in spoken]
    assert spoken and others and not train.typed_pool[others].any()
    first = train.examples[spoken[0]]
    expected = fusion.text_states([first.typed], max_len=fusion.text.max_seq_len)[0].mean(0)
    assert torch.allclose(train.typed_pool[spoken[0]], expected, atol=1e-5)
    fusion.module.eval()  # no dropout: the two losses differ only by the typed term
    idx = list(range(len(train)))
    plain = _loss(fusion, states, train, idx, FusionTrainConfig(drop_speech=0, drop_image=0, drop_ocr=0,
                                                                typed_pool_weight=0.0), random.Random(0))
    pulled = _loss(fusion, states, train, idx, FusionTrainConfig(drop_speech=0, drop_image=0, drop_ocr=0,
                                                                 typed_pool_weight=1.0), random.Random(0))
    assert float(pulled) > float(plain)


def test_loaded_model_answers_text_alone_exactly_like_the_text_model(trained, trained_model_dir: Path) -> None:
    _, _, out = trained
    text_model = NluModel.from_pretrained(trained_model_dir)
    fusion = FusionModel.from_pretrained(out, text_model=text_model)
    for text in ("I think my card was stolen", "what is the exchange rate for dollars", "my app won't let me log in"):
        alone, fused = text_model.understand(text), fusion.understand(text=text)
        assert fused.path == "fusion" and fused.intent == alone.intent
        assert fused.confidence == pytest.approx(alone.confidence, abs=1e-5)
        assert fused.sentiment == alone.sentiment and fused.emotion == alone.emotion


def test_a_model_saved_before_the_router_loads_and_reads_every_picture(trained, tiny_set, trained_model_dir: Path,
                                                                      tmp_path: Path) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    from models.fusion_fit import TextStates, predict, prepare

    _, _, out = trained
    old = tmp_path / "old"
    shutil.copytree(out, old)
    meta = json.loads((old / "fusion.json").read_text())
    for key in ("picture_router", "router_threshold", "speech_queries"):
        meta["config"].pop(key)
    (old / "fusion.json").write_text(json.dumps(meta))
    weights = {k: v for k, v in load_file(str(old / "fusion.safetensors")).items() if not k.startswith("router.")}
    save_file(weights, str(old / "fusion.safetensors"))
    fusion = FusionModel.from_pretrained(old, text_model=NluModel.from_pretrained(trained_model_dir))
    assert fusion.module.router is None
    data, _ = tiny_set
    pictures = [ex for ex in data.split("test") if ex.image]
    assert pictures and predict(fusion, TextStates(fusion, trainable=False),
                                prepare(data, pictures, fusion.intent_classes))["picture_used"].all()


async def test_runtime_answers_voice_and_image_turns_through_the_fusion(trained, config: AgentConfig) -> None:
    from agent.config import TtsConfig
    from agent.runtime import load_agent
    from modalities.image import image_from_pil
    from models.tts import EspeakSynthesizer

    _, _, out = trained
    picture = image_from_pil(render_picture("screen_transfer", 5, "test"))
    speech = EspeakSynthesizer(TtsConfig(voice="en-us")).synthesize("my transfer has failed")
    paths = {}
    for name, fusion_dir in (("with", out), ("without", None)):
        agent = load_agent(dataclasses.replace(config, nlu=dataclasses.replace(config.nlu, fusion_dir=fusion_dir)))
        await agent.start()
        try:
            image_turn = await agent.handle_turn(UserTurn(conversation_id=f"f-{name}-1", channel="api",
                                                          text="what is this?", image=picture))
            voice_turn = await agent.handle_turn(UserTurn(conversation_id=f"f-{name}-2", channel="api",
                                                          audio=AudioClip(samples=speech.samples,
                                                                          sample_rate_hz=speech.sample_rate_hz)))
            typed_turn = await agent.handle_turn(UserTurn(conversation_id=f"f-{name}-3", channel="api",
                                                          text="what is my balance"))
        finally:
            await agent.aclose()
        paths[name] = (image_turn.nlu.path, voice_turn.nlu.path, typed_turn.nlu.path)
        if name == "with":
            assert voice_turn.transcript is not None and voice_turn.transcript.features is not None
            # the reply says whether the picture was read (the router) and a voice turn has none
            assert isinstance(image_turn.nlu.picture_used, bool) and voice_turn.nlu.picture_used is None
    assert paths["with"] == ("fusion", "fusion", "text")
    assert "fusion" not in paths["without"]
