"""The image-kind head: numerics, saving, OCR cues, the ImageNet-label baseline; then a head
trained on a small rendered set with the real encoder and OCR, its held-out accuracy, and the
analyzer built on it."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from agent.config import VisionConfig
from agent.errors import ConfigError
from agent.interfaces import ImageAnalyzer
from agent.messages import IMAGE_KINDS, OcrLine
from modalities.image import image_from_pil
from models.image_analyzer import (
    KindHeadImageAnalyzer,
    default_head,
    evaluate_kind_head,
    load_image_analyzer,
    train_kind_head,
)
from models.image_data import build_labelled_set, render
from models.image_kind import CUE_NAMES, KindHead, LinearSoftmax, kind_from_labels, ocr_cues
from models.ocr import OcrSettings, RapidOcrRecognizer
from models.vision import EfficientNetLiteEncoder

torch.set_num_threads(2)


def blobs(n_per_class: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (len(IMAGE_KINDS), dim))
    x = np.concatenate([c + rng.normal(0, 1, (n_per_class, dim)) for c in centres])
    return x, np.repeat(np.arange(len(IMAGE_KINDS)), n_per_class)


def tiny_head(dim: int = 8) -> KindHead:
    x, y = blobs(20, dim + 1, 0)
    stage1 = LinearSoftmax.fit(x, y, n_classes=len(IMAGE_KINDS), c=1.0, seed=0)
    x2 = np.concatenate([np.log(np.exp(stage1.log_proba(x))), np.zeros((len(x), len(CUE_NAMES)))], axis=1)
    stage2 = LinearSoftmax.fit(x2, y, n_classes=len(IMAGE_KINDS), c=1.0, seed=0)
    return KindHead(kinds=IMAGE_KINDS, encoder="test", embedding_dim=dim, stage1=stage1, stage2=stage2)


def test_linear_softmax_separates_clusters_and_gives_probabilities() -> None:
    x, y = blobs(30, 5, 1)
    model = LinearSoftmax.fit(x, y, n_classes=len(IMAGE_KINDS), c=1.0, seed=0)
    log_p = model.log_proba(x)
    np.testing.assert_allclose(np.exp(log_p).sum(axis=1), 1.0, rtol=1e-9)
    assert (log_p.argmax(axis=1) == y).mean() > 0.95


def test_a_kind_absent_from_training_is_never_predicted() -> None:
    x, y = blobs(10, 4, 2)
    keep = y < 3
    model = LinearSoftmax.fit(x[keep], y[keep], n_classes=len(IMAGE_KINDS), c=1.0, seed=0)
    assert set(model.log_proba(x).argmax(axis=1).tolist()) <= {0, 1, 2}


def test_head_round_trips_through_its_folder(tmp_path: Path) -> None:
    head = tiny_head()
    head.save(tmp_path / "head")
    assert sorted(p.name for p in (tmp_path / "head").iterdir()) == ["head.json", "weights.npz"]
    loaded = KindHead.load(tmp_path / "head")
    vector = np.random.default_rng(3).normal(size=8).astype(np.float32)
    cues = np.zeros(len(CUE_NAMES), dtype=np.float32)
    assert loaded.predict(vector, 100, 200, cues) == head.predict(vector, 100, 200, cues)
    assert loaded.predict(vector, 100, 200) == head.predict(vector, 100, 200)
    with pytest.raises(ValueError, match="expected a 8-d embedding, got 5-d"):
        head.predict(np.zeros(5, dtype=np.float32), 10, 10)


def test_loading_a_missing_or_stale_head_says_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected head.json and weights.npz"):
        KindHead.load(tmp_path)
    tiny_head().save(tmp_path)
    meta = json.loads((tmp_path / "head.json").read_text())
    (tmp_path / "head.json").write_text(json.dumps(meta | {"version": 0}))
    with pytest.raises(ConfigError, match="retrain it"):
        KindHead.load(tmp_path)


def ocr_line(text: str, y: float) -> OcrLine:
    return OcrLine(text=text, confidence=0.9, box=((10, y), (200, y), (200, y + 20), (10, y + 20)))


def test_ocr_cues_read_text_layout_and_keywords() -> None:
    cues = dict(
        zip(
            CUE_NAMES,
            ocr_cues(
                [
                    ocr_line("TOTAL RM12.50", 10),
                    ocr_line("12/01/2019", 40),
                    ocr_line("Transfer failed", 70),
                    ocr_line("•••• •••• •••• 4821", 100),
                ],
                400,
                800,
            ),
        )
    )
    assert cues["has_total"] == cues["has_error"] == cues["has_card_number"] == cues["has_date"] == 1.0
    assert cues["has_currency"] == 1.0 and cues["amounts_log"] > 0
    assert 0 < cues["text_coverage"] < 1
    assert not ocr_cues([], 100, 100).any()


def test_imagenet_label_rules_baseline() -> None:
    assert kind_from_labels([("web site", 0.9), ("menu", 0.05)]) == "screenshot"
    assert kind_from_labels([("tabby", 0.5), ("menu", 0.2)]) == "receipt"
    assert kind_from_labels([("coffee mug", 0.7)]) == "product_photo"
    assert kind_from_labels([("tabby", 0.9)]) == "other"


# --- trained on rendered pictures with the real encoder and OCR -----------------------------


@pytest.fixture(scope="module")
def encoder() -> EfficientNetLiteEncoder:
    return EfficientNetLiteEncoder()


@pytest.fixture(scope="module")
def ocr() -> RapidOcrRecognizer:
    return RapidOcrRecognizer(OcrSettings(det_limit_side_px=640, max_side_px=1280))


@pytest.fixture(scope="module")
def trained(encoder: EfficientNetLiteEncoder, ocr: RapidOcrRecognizer) -> tuple[KindHead, list]:
    items = build_labelled_set(per_kind=12, seed=5)  # 9 train + 3 held out per kind
    return train_kind_head(items, encoder, ocr, ocr_per_kind=3), list(items)


@pytest.mark.slow
def test_trained_head_is_accurate_on_held_out_rendered_pictures(trained, encoder, ocr) -> None:
    head, items = trained
    assert head.stage2 is not None and head.info["n_train_ocr"] == 3 * len(IMAGE_KINDS)
    metrics = evaluate_kind_head(head, items, encoder, ocr)
    assert metrics["n_test"] == 3 * len(IMAGE_KINDS)
    # Measured on these 18 held-out pictures: 0.94 without OCR, 0.89 with OCR (stage 2 from only
    # 3 OCR'd pictures per kind), 0.33 for the ImageNet-label rules.
    assert metrics["head_no_ocr"] >= 0.75, metrics
    assert metrics["head_with_ocr"] >= 0.75, metrics
    assert metrics["head_no_ocr"] > metrics["baseline_imagenet_rules"] + 0.3, metrics


@pytest.mark.slow
def test_analyzer_reads_kind_and_fields_of_rendered_pictures(trained, encoder, ocr) -> None:
    analyzer = KindHeadImageAnalyzer(encoder=encoder, head=trained[0], ocr=ocr)
    assert isinstance(analyzer, ImageAnalyzer)
    seen = {}
    for kind, seed in (("screenshot", 1), ("receipt", 2), ("card", 9)):  # error screen, receipt, card front
        drawn = render(kind, 900 + seed)
        picture = image_from_pil(drawn.image)
        analysis = analyzer.analyze(picture)
        assert analysis.sha256 == picture.sha256 and analysis.embedding.shape == (1280,)
        assert analysis.kind == kind and 0 < analysis.kind_confidence <= 1
        seen[kind] = (dict(drawn.truth), dict(analysis.fields), analysis.ocr_text)
    truth, fields, _ = seen["screenshot"]
    assert fields.get("error_message") == truth["error_message"]
    truth, fields, _ = seen["receipt"]
    assert fields.get("total") == truth["total"]
    truth, fields, text = seen["card"]
    assert fields.get("card_last4") == truth["card_last4"]
    assert not re.search(r"(?:\d[ -]?){12,}\d", text)  # a full card number never survives unmasked


class CountingOcr:
    """The real recogniser, counting the pictures it was asked to read."""

    def __init__(self, ocr: RapidOcrRecognizer) -> None:
        self.inner, self.calls = ocr, 0

    def read(self, image):
        self.calls += 1
        return self.inner.read(image)


@pytest.mark.slow
def test_ocr_is_skipped_only_for_confident_kinds_whose_text_nothing_reads(trained, encoder, ocr) -> None:
    head = trained[0]
    counting = CountingOcr(ocr)
    analyzer = KindHeadImageAnalyzer(encoder=encoder, head=head, ocr=counting,
                                     ocr_skip_kinds=("product_photo", "other"), ocr_skip_confidence=0.6)
    skipped = 0
    for kind, seed in (("product_photo", 905), ("other", 906), ("product_photo", 907), ("other", 908),
                       ("receipt", 905), ("screenshot", 906)):
        picture = image_from_pil(render(kind, seed).image)
        first, confidence, _ = head.predict(encoder.encode(picture).vector, picture.width_px, picture.height_px)
        calls = counting.calls
        analysis = analyzer.analyze(picture)
        if first in ("product_photo", "other") and confidence >= 0.6:
            skipped += 1
            assert analysis.ocr == "skipped" and analysis.ocr_lines == () and counting.calls == calls
            assert analysis.kind == first  # the picture alone decides, without OCR cues
        else:
            assert analysis.ocr == "read" and counting.calls == calls + 1
        if kind == "receipt":
            assert analysis.ocr == "read" and analysis.field("total") is not None
    assert skipped >= 2  # the head is sure of most photos and pictures without text
    with pytest.raises(ValueError, match=r"ocr_skip_kinds: unknown kinds \['selfie'\]"):
        KindHeadImageAnalyzer(encoder=encoder, head=head, ocr=ocr, ocr_skip_kinds=("selfie",))
    with pytest.raises(ValueError, match=r"ocr_skip_confidence: expected a probability in \(0, 1\], got 0"):
        KindHeadImageAnalyzer(encoder=encoder, head=head, ocr=ocr, ocr_skip_confidence=0)


def test_vision_config_checks_the_ocr_skip_settings() -> None:
    assert VisionConfig().ocr_skip_kinds == ("product_photo", "other")
    with pytest.raises(ConfigError, match=r"vision.ocr_skip_kinds: unknown kinds \['selfie'\]"):
        VisionConfig(ocr_skip_kinds=("selfie",))
    with pytest.raises(ConfigError, match=r"vision.ocr_skip_confidence must be in \(0, 1\], got 1.5"):
        VisionConfig(ocr_skip_confidence=1.5)


@pytest.mark.slow
def test_analyzer_without_ocr_and_from_a_saved_head(trained, tmp_path: Path) -> None:
    head, _ = trained
    head.save(tmp_path / "head")
    analyzer = load_image_analyzer(
        VisionConfig(ocr=False, kind_head_dir=tmp_path / "head"), tmp_path / "cache"
    )
    analysis = analyzer.analyze(image_from_pil(render("product_photo", 901).image))
    assert analysis.ocr_lines == () and analysis.kind in IMAGE_KINDS and analysis.ocr == "off"
    assert not (tmp_path / "cache").exists()  # nothing trained
    mismatched = KindHead(kinds=head.kinds, encoder="vit", embedding_dim=32, stage1=head.stage1, stage2=None)
    mismatched.save(tmp_path / "vit-head")
    with pytest.raises(ConfigError, match="trained on 'vit' embeddings"):
        load_image_analyzer(VisionConfig(ocr=False, kind_head_dir=tmp_path / "vit-head"), tmp_path / "cache")


@pytest.mark.slow
def test_default_head_is_trained_once_then_cached(encoder, tmp_path: Path) -> None:
    first = default_head(encoder, None, tmp_path, per_kind=2)
    folders = list((tmp_path / "image-kind").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("efficientnet-lite0-")
    assert first.stage2 is None and first.info["n_train"] == 2 * len(IMAGE_KINDS)
    started = time.perf_counter()
    again = default_head(encoder, None, tmp_path, per_kind=2)
    assert time.perf_counter() - started < 1.0  # loaded, not retrained
    np.testing.assert_array_equal(first.stage1.coef, again.stage1.coef)


@pytest.mark.slow
def test_analyzer_with_a_local_vit_trains_a_head_for_that_vit(tmp_path: Path) -> None:
    from tests.models.test_vision import save_tiny_vit

    save_tiny_vit(tmp_path / "vit", classifier=False)
    config = VisionConfig(encoder="vit", vit_path=tmp_path / "vit", ocr=False)
    analyzer = load_image_analyzer(config, tmp_path / "cache")
    assert analyzer.head.embedding_dim == 32 and analyzer.head.encoder.startswith("vit-")
    (folder,) = (tmp_path / "cache" / "image-kind").iterdir()
    assert folder.name.startswith(analyzer.head.encoder)
    analysis = analyzer.analyze(image_from_pil(render("card", 905).image))
    assert analysis.kind in IMAGE_KINDS and analysis.embedding.shape == (32,)
