"""Image understanding in one call: encoder + OCR + kind + key fields (``ImageAnalyzer``).

``load_image_analyzer(config, cache_dir)`` is what the runtime calls. It loads the encoder that
``VisionConfig`` names, RapidOCR unless ``config.ocr`` is off, and the image-kind head: the one in
``config.kind_head_dir`` when set, else a default head trained on first use from rendered
pictures (and the shared receipts and screenshots when ``shared_images_dir`` is given) and cached
under ``cache_dir/image-kind/<encoder>-<hash of the training set>/``.

Training from the command line (the labelled set, held-out accuracy and the ImageNet-label
baseline)::

    python -m models.image_analyzer --out DIR [--shared ../shared/data/images] [--per-kind 40]
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from agent.config import VisionConfig
from agent.errors import ConfigError
from agent.interfaces import ImageEncoder, TextRecognizer
from agent.messages import IMAGE_KINDS, ImageAnalysis, ImageInput
from models.image_data import LabelledImage, build_labelled_set, fingerprint
from models.image_fields import mask_card_numbers, read_fields
from models.image_kind import (
    HEAD_VERSION,
    KindHead,
    LinearSoftmax,
    embedding_features,
    kind_from_labels,
    ocr_cues,
)
from models.ocr import OcrSettings, RapidOcrRecognizer
from models.vision import load_image_encoder

log = logging.getLogger(__name__)

DEFAULT_PER_KIND = 40  # rendered pictures per kind (a quarter held out)
DEFAULT_OCR_PER_KIND = 8  # training pictures per kind that are OCR'd for stage 2
FIELDS_KIND_MIN_CONFIDENCE = 0.5  # below this, fields are read as if the kind were unknown


def as_image_input(rgb: Image.Image) -> ImageInput:
    """An ``ImageInput`` for an in-memory RGB picture (training and evaluation, not uploads)."""
    rgb = rgb.convert("RGB")
    return ImageInput(
        rgb=rgb,
        sha256=hashlib.sha256(rgb.tobytes()).hexdigest(),
        source_format="PNG",
        width_px=rgb.size[0],
        height_px=rgb.size[1],
        n_bytes=0,
    )


def encoder_name(encoder: ImageEncoder) -> str:
    return str(getattr(encoder, "name", type(encoder).__name__))


class KindHeadImageAnalyzer:
    """``ImageAnalyzer``: embedding and labels, OCR lines (card numbers masked), kind, key fields."""

    def __init__(self, *, encoder: ImageEncoder, head: KindHead, ocr: TextRecognizer | None,
                 ocr_skip_kinds: Sequence[str] = (), ocr_skip_confidence: float = 1.0) -> None:
        unknown = sorted(set(ocr_skip_kinds) - set(head.kinds))
        if unknown:
            raise ValueError(f"ocr_skip_kinds: unknown kinds {unknown}; expected some of {list(head.kinds)}")
        if not 0.0 < ocr_skip_confidence <= 1.0:
            raise ValueError(f"ocr_skip_confidence: expected a probability in (0, 1], got {ocr_skip_confidence}")
        self.encoder, self.head, self.ocr = encoder, head, ocr
        self.ocr_skip_kinds = frozenset(ocr_skip_kinds)
        self.ocr_skip_confidence = ocr_skip_confidence

    def analyze(self, image: ImageInput) -> ImageAnalysis:
        return self.analyze_timed(image)[0]

    def _skip_ocr(self, vector: np.ndarray, image: ImageInput) -> tuple[str, float, tuple[float, ...]] | None:
        """Stage 1's prediction (the picture alone) when it says, confidently enough, that the picture
        is a kind whose text nothing reads (product photos, other pictures), else None: OCR costs
        CPU per text line and is the bulk of an image turn."""
        if self.ocr is None or not self.ocr_skip_kinds:
            return None
        first = self.head.predict(vector, image.width_px, image.height_px, None)
        return first if first[0] in self.ocr_skip_kinds and first[1] >= self.ocr_skip_confidence else None

    def analyze_timed(self, image: ImageInput) -> tuple[ImageAnalysis, dict[str, float]]:
        """``analyze``, plus the milliseconds each stage took (``encode_ms``, ``ocr_ms``, ``kind_fields_ms``)."""
        t0 = time.perf_counter()
        embedding = self.encoder.encode(image)
        t1 = time.perf_counter()
        skipped = self._skip_ocr(embedding.vector, image)
        read = self.ocr is not None and skipped is None
        lines = self.ocr.read(image) if read else ()  # type: ignore[union-attr]
        t2 = time.perf_counter()
        lines = tuple(replace(line, text=mask_card_numbers(line.text)) for line in lines)
        cues = ocr_cues(lines, image.width_px, image.height_px) if read else None
        kind, confidence, _ = skipped or self.head.predict(embedding.vector, image.width_px, image.height_px, cues)
        analysis = ImageAnalysis(
            sha256=image.sha256,
            kind=kind,
            kind_confidence=round(confidence, 4),
            labels=embedding.labels,
            ocr_lines=lines,
            fields=read_fields(lines, kind=kind if confidence >= FIELDS_KIND_MIN_CONFIDENCE else None),
            embedding=embedding.vector,
            ocr="read" if read else ("skipped" if skipped is not None else "off"),
        )
        t3 = time.perf_counter()
        timings = {"encode_ms": (t1 - t0) * 1e3, "ocr_ms": (t2 - t1) * 1e3, "kind_fields_ms": (t3 - t2) * 1e3}
        return analysis, timings


# --- training -------------------------------------------------------------------------------


def _encode(items: Sequence[LabelledImage], encoder: ImageEncoder) -> tuple[np.ndarray, list, list]:
    """Stage-1 features (n, d + 1), each item's ImageNet labels and (width, height)."""
    features, labels, sizes = [], [], []
    for item in items:
        picture = as_image_input(item.load())
        embedding = encoder.encode(picture)
        features.append(embedding_features(embedding.vector, picture.width_px, picture.height_px))
        labels.append(embedding.labels)
        sizes.append((picture.width_px, picture.height_px))
    return np.stack(features), labels, sizes


def _ocr_subset(items: Sequence[LabelledImage], per_kind: int) -> list[int]:
    """Indices of up to ``per_kind`` items of each kind, rendered and shared taken in turn."""
    chosen: list[int] = []
    for kind in IMAGE_KINDS:
        rendered = [i for i, it in enumerate(items) if it.kind == kind and it.source == "rendered"]
        shared = [i for i, it in enumerate(items) if it.kind == kind and it.source == "shared"]
        mixed = [i for pair in zip(rendered, shared) for i in pair]
        mixed += rendered[len(shared) :] + shared[len(rendered) :]
        chosen.extend(mixed[:per_kind])
    return sorted(chosen)


def _cues_for(items: Sequence[LabelledImage], ocr: TextRecognizer) -> np.ndarray:
    rows = []
    for item in items:
        picture = as_image_input(item.load())
        rows.append(ocr_cues(ocr.read(picture), picture.width_px, picture.height_px))
    return np.stack(rows)


def train_kind_head(
    items: Sequence[LabelledImage],
    encoder: ImageEncoder,
    ocr: TextRecognizer | None,
    *,
    ocr_per_kind: int = DEFAULT_OCR_PER_KIND,
    seed: int = 0,
    c: float = 1.0,
) -> KindHead:
    """Fit both stages on the ``train`` split of ``items`` (stage 2 only when ``ocr`` is given)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    train = [it for it in items if it.split == "train"]
    kinds = tuple(IMAGE_KINDS)
    y = np.array([kinds.index(it.kind) for it in train])
    if len(set(y.tolist())) < 2:
        raise ValueError(
            f"train_kind_head: expected training pictures of at least 2 kinds, got {sorted(set(y.tolist()))}"
        )
    started = time.perf_counter()
    x1, _, _ = _encode(train, encoder)
    stage1 = LinearSoftmax.fit(x1, y, n_classes=len(kinds), c=c, seed=seed)
    stage2, n_ocr = None, 0
    if ocr is not None:
        from sklearn.linear_model import LogisticRegression

        subset = _ocr_subset(train, ocr_per_kind)
        folds = max(2, min(5, int(np.bincount(y).min())))
        mean, scale = x1.mean(axis=0), np.where(x1.std(axis=0) < 1e-6, 1.0, x1.std(axis=0))
        out_of_fold = cross_val_predict(
            LogisticRegression(C=c, max_iter=3000, random_state=seed),
            (x1 - mean) / scale,
            y,
            cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
            method="predict_proba",
        )
        full = np.full((len(train), len(kinds)), 1e-4)
        full[:, np.unique(y)] = np.maximum(out_of_fold, 1e-4)
        x2 = np.concatenate([np.log(full[subset]), _cues_for([train[i] for i in subset], ocr)], axis=1)
        stage2 = LinearSoftmax.fit(x2, y[subset], n_classes=len(kinds), c=c, seed=seed)
        n_ocr = len(subset)
    info = {
        "n_train": len(train),
        "n_train_ocr": n_ocr,
        "train_s": round(time.perf_counter() - started, 1),
        "sources": sorted({it.source for it in train}),
        "per_kind": {k: int((y == i).sum()) for i, k in enumerate(kinds)},
    }
    return KindHead(
        kinds=kinds,
        encoder=encoder_name(encoder),
        embedding_dim=x1.shape[1] - 1,
        stage1=stage1,
        stage2=stage2,
        info=info,
    )


def evaluate_kind_head(
    head: KindHead,
    items: Sequence[LabelledImage],
    encoder: ImageEncoder,
    ocr: TextRecognizer | None,
) -> dict[str, object]:
    """Accuracy on the ``test`` split: the head without OCR, with OCR (when given), and the
    ImageNet-label rules baseline; also per source (rendered / shared)."""
    test = [it for it in items if it.split == "test"]
    x1, labels, sizes = _encode(test, encoder)
    truth = [it.kind for it in test]
    dim = head.embedding_dim
    no_ocr = [head.predict(x[:dim], w, h)[0] for x, (w, h) in zip(x1, sizes)]
    baseline = [kind_from_labels(lab) for lab in labels]
    result: dict[str, object] = {
        "n_test": len(test),
        "head_no_ocr": _accuracy(no_ocr, truth),
        "baseline_imagenet_rules": _accuracy(baseline, truth),
    }
    predictions = {"head_no_ocr": no_ocr, "baseline_imagenet_rules": baseline}
    if ocr is not None:
        cues = _cues_for(test, ocr)
        with_ocr = [head.predict(x[:dim], w, h, c)[0] for x, (w, h), c in zip(x1, sizes, cues)]
        result["head_with_ocr"] = _accuracy(with_ocr, truth)
        predictions["head_with_ocr"] = with_ocr
    for source in sorted({it.source for it in test}):
        idx = [i for i, it in enumerate(test) if it.source == source]
        result[f"by_source_{source}"] = {
            name: _accuracy([p[i] for i in idx], [truth[i] for i in idx]) for name, p in predictions.items()
        } | {"n": len(idx)}
    result["confusions"] = sorted(
        {f"{t}->{p}" for t, p in zip(truth, predictions.get("head_with_ocr", no_ocr)) if t != p}
    )
    return result


def _accuracy(predicted: Sequence[str], truth: Sequence[str]) -> float:
    return round(sum(p == t for p, t in zip(predicted, truth)) / max(1, len(truth)), 4)


# --- loading --------------------------------------------------------------------------------


def default_head(
    encoder: ImageEncoder,
    ocr: TextRecognizer | None,
    cache_dir: Path,
    *,
    shared_images_dir: Path | None = None,
    per_kind: int = DEFAULT_PER_KIND,
    ocr_per_kind: int = DEFAULT_OCR_PER_KIND,
    seed: int = 0,
) -> KindHead:
    """The head trained on the labelled set, from the cache when that set was trained on before."""
    items = build_labelled_set(per_kind=per_kind, seed=seed, shared_dir=shared_images_dir)
    extra = f"head:{HEAD_VERSION}|{encoder_name(encoder)}|ocr:{ocr is not None}|{ocr_per_kind}|{seed}"
    key = fingerprint(items, extra=extra)
    folder = cache_dir / "image-kind" / f"{encoder_name(encoder)}-{key}"
    if (folder / "weights.npz").is_file():
        return KindHead.load(folder)
    locks = Path(cache_dir) / ".locks"  # beside, not inside, image-kind/: that folder holds only heads
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"image-kind-{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes starting at once train it once; the other waits
        if (folder / "weights.npz").is_file():
            return KindHead.load(folder)
        log.info("training the image-kind head (%d pictures) into %s", len(items), folder)
        head = train_kind_head(items, encoder, ocr, ocr_per_kind=ocr_per_kind, seed=seed)
        head = replace(head, info=head.info | {"fingerprint": key, "shared": shared_images_dir is not None})
        staging = folder.with_name(f"{folder.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        head.save(staging)
        try:
            staging.rename(folder)  # atomic: readers see a whole head or none
        except OSError:  # another process finished first; keep theirs
            shutil.rmtree(staging, ignore_errors=True)
        return head


def load_image_analyzer(
    config: VisionConfig,
    cache_dir: Path,
    *,
    shared_images_dir: Path | None = None,
) -> KindHeadImageAnalyzer:
    """Encoder + OCR (unless ``config.ocr`` is off) + kind head, as ``VisionConfig`` says."""
    encoder = load_image_encoder(config)
    ocr = RapidOcrRecognizer(OcrSettings(graph_cache_dir=Path(cache_dir) / "ocr-graphs")) if config.ocr else None
    head_dir = config.kind_head_dir
    if head_dir is not None:
        head = KindHead.load(Path(head_dir))
        if head.encoder != encoder_name(encoder):
            raise ConfigError(
                f"vision.kind_head_dir: the head was trained on {head.encoder!r} embeddings; "
                f"expected one for {encoder_name(encoder)!r}"
            )
    else:
        head = default_head(encoder, ocr, Path(cache_dir), shared_images_dir=shared_images_dir)
    return KindHeadImageAnalyzer(encoder=encoder, head=head, ocr=ocr, ocr_skip_kinds=config.ocr_skip_kinds,
                                 ocr_skip_confidence=config.ocr_skip_confidence)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train and evaluate the image-kind head.")
    parser.add_argument("--out", type=Path, required=True, help="folder to save the head in")
    parser.add_argument(
        "--shared", type=Path, default=None, help="shared images folder (receipts/, screenshots/)"
    )
    parser.add_argument("--per-kind", type=int, default=DEFAULT_PER_KIND)
    parser.add_argument("--ocr-per-kind", type=int, default=DEFAULT_OCR_PER_KIND)
    parser.add_argument("--no-ocr", action="store_true", help="train stage 1 only")
    args = parser.parse_args(argv)
    encoder = load_image_encoder(VisionConfig())
    ocr = None if args.no_ocr else RapidOcrRecognizer()
    items = build_labelled_set(per_kind=args.per_kind, shared_dir=args.shared)
    head = train_kind_head(items, encoder, ocr, ocr_per_kind=args.ocr_per_kind)
    metrics = evaluate_kind_head(head, items, encoder, ocr)
    replace(head, info=head.info | {"metrics": metrics}).save(args.out)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
