"""The kind of an uploaded image: receipt, screenshot, card, product_photo, document or other.

A small stacked head, trained on the labelled set of ``models/image_data.py``:

- stage 1: multinomial logistic regression on the encoder embedding (L2-normalised) and the
  image's log aspect ratio;
- stage 2: logistic regression on stage 1's log-probabilities plus OCR cues (how much text,
  where, digits, money amounts, "total", error words, card-number patterns, dates). Stage 1's
  inputs for stage 2 are out-of-fold predictions, so stage 2 learns how far to trust it. Only a
  few images per kind need OCR to train stage 2 (OCR is the slow part).

Without OCR (``VisionConfig.ocr = False``) stage 1 answers alone. A head is a folder:
``head.json`` (kinds, encoder, cue names, metrics, what it was trained on) and ``weights.npz``
(plain arrays; no pickles). ``kind_from_labels`` is the baseline: rules on ImageNet labels.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.errors import ConfigError
from agent.messages import IMAGE_KINDS, OcrLine
from models.image_fields import CURRENCY_AMOUNT, ERROR_WORDS, TOTAL_LABEL, parse_amounts, parse_dates

HEAD_VERSION = 2  # bump when the cues or the features change: cached heads are retrained
CUE_NAMES: tuple[str, ...] = (
    "n_lines_log",
    "text_coverage",
    "line_height_rel",
    "x_spread",
    "line_width_rel",
    "digit_share",
    "amounts_log",
    "has_total",
    "has_error",
    "has_card_number",
    "has_date",
    "mean_confidence",
    "chars_per_line_log",
    "has_currency",
)
_CARD_CUE = re.compile(r"(?:[*•xX#·●]{3,}\s*){1,3}\d{4}|\d{4}\s\d{4}\s\d{4}\s\d{4}|VALID\s*THRU|GOOD\s*THRU")


def aspect_feature(width_px: int, height_px: int) -> float:
    """log(height / width): 0 for a square, > 0 for tall pictures such as receipts."""
    return math.log(max(1, height_px) / max(1, width_px))


def ocr_cues(lines: Sequence[OcrLine], width_px: int, height_px: int) -> np.ndarray:
    """The OCR cues named by ``CUE_NAMES``, float32 shape (len(CUE_NAMES),)."""
    if not lines:
        return np.zeros(len(CUE_NAMES), dtype=np.float32)
    area = float(max(1, width_px * height_px))
    boxes = [np.asarray(line.box, dtype=np.float32).reshape(-1, 2) for line in lines]
    widths = np.array([b[:, 0].max() - b[:, 0].min() for b in boxes])
    heights = np.array([b[:, 1].max() - b[:, 1].min() for b in boxes])
    centres_x = np.array([b[:, 0].mean() for b in boxes])
    text = "\n".join(line.text for line in lines)
    upper = text.upper()
    chars = [c for c in text if not c.isspace()]
    cues = (
        math.log1p(len(lines)),
        min(1.0, float((widths * heights).sum()) / area),
        float(np.median(heights)) / max(1, height_px) * 10.0,
        float(centres_x.std()) / max(1, width_px),
        float(np.median(widths)) / max(1, width_px),
        sum(c.isdigit() for c in chars) / max(1, len(chars)),
        math.log1p(len(parse_amounts(text))),
        float(bool(TOTAL_LABEL.search(upper))),
        float(bool(ERROR_WORDS.search(upper))),
        float(bool(_CARD_CUE.search(upper))),
        float(bool(parse_dates(text))),
        float(np.mean([line.confidence for line in lines])),
        math.log1p(len(chars) / len(lines)),
        float(bool(CURRENCY_AMOUNT.search(upper))),
    )
    return np.asarray(cues, dtype=np.float32)


def embedding_features(vector: np.ndarray, width_px: int, height_px: int) -> np.ndarray:
    """Stage 1 input: the L2-normalised embedding and the log aspect ratio, float32 shape (d + 1,)."""
    v = np.asarray(vector, dtype=np.float32).ravel()
    v = v / max(float(np.linalg.norm(v)), 1e-8)
    return np.concatenate([v, np.asarray([aspect_feature(width_px, height_px)], dtype=np.float32)])


@dataclass(frozen=True, slots=True, kw_only=True)
class LinearSoftmax:
    """Standardise, then a linear layer and a softmax. ``coef``: shape (n_kinds, n_features)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    def log_proba(self, x: np.ndarray) -> np.ndarray:
        """x: (n, n_features) -> log-probabilities (n, n_kinds)."""
        z = (np.atleast_2d(x) - self.mean) / self.scale
        logits = z @ self.coef.T + self.intercept
        logits = logits - logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, *, n_classes: int, c: float, seed: int) -> LinearSoftmax:
        """Multinomial logistic regression (scikit-learn, L2 penalty ``1/c``) on standardised ``x``."""
        from sklearn.linear_model import LogisticRegression

        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale = np.where(scale < 1e-6, 1.0, scale)
        model = LogisticRegression(C=c, max_iter=3000, random_state=seed)
        model.fit((x - mean) / scale, y)
        coef = np.zeros((n_classes, x.shape[1]), dtype=np.float64)
        intercept = np.full(n_classes, -1e4)  # kinds absent from training are never predicted
        if len(model.classes_) == 2:  # scikit-learn keeps one row for two classes
            coef[model.classes_[1]], intercept[model.classes_[1]] = model.coef_[0], model.intercept_[0]
            coef[model.classes_[0]], intercept[model.classes_[0]] = 0.0, 0.0
        else:
            coef[model.classes_], intercept[model.classes_] = model.coef_, model.intercept_
        return cls(mean=mean, scale=scale, coef=coef, intercept=intercept)


@dataclass(frozen=True, slots=True, kw_only=True)
class KindHead:
    """Stage 1 (embedding + aspect) and stage 2 (stage-1 log-probs + OCR cues)."""

    kinds: tuple[str, ...]
    encoder: str
    embedding_dim: int
    stage1: LinearSoftmax
    stage2: LinearSoftmax | None
    info: dict = field(default_factory=dict)  # training data, metrics, versions

    def predict(
        self, vector: np.ndarray, width_px: int, height_px: int, cues: np.ndarray | None = None
    ) -> tuple[str, float, tuple[float, ...]]:
        """(kind, its probability, probabilities of all kinds); ``cues=None``: without OCR."""
        if vector.shape[-1] != self.embedding_dim:
            raise ValueError(
                f"kind head: expected a {self.embedding_dim}-d embedding, got {vector.shape[-1]}-d"
            )
        log_p = self.stage1.log_proba(embedding_features(vector, width_px, height_px)[None])[0]
        if cues is not None and self.stage2 is not None:
            log_p = self.stage2.log_proba(np.concatenate([log_p, cues])[None])[0]
        probs = np.exp(log_p)
        best = int(probs.argmax())
        return self.kinds[best], float(probs[best]), tuple(float(p) for p in probs)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {f"stage1_{k}": getattr(self.stage1, k) for k in ("mean", "scale", "coef", "intercept")}
        if self.stage2 is not None:
            arrays |= {f"stage2_{k}": getattr(self.stage2, k) for k in ("mean", "scale", "coef", "intercept")}
        tmp = folder / "weights.tmp.npz"
        np.savez(tmp, **arrays)
        tmp.replace(folder / "weights.npz")
        meta = {
            "version": HEAD_VERSION,
            "kinds": list(self.kinds),
            "encoder": self.encoder,
            "embedding_dim": self.embedding_dim,
            "cues": list(CUE_NAMES),
            "info": self.info,
        }
        (folder / "head.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> KindHead:
        meta_file, weights_file = folder / "head.json", folder / "weights.npz"
        if not meta_file.is_file() or not weights_file.is_file():
            raise ConfigError(f"image-kind head: expected head.json and weights.npz in {folder}")
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if meta.get("version") != HEAD_VERSION or tuple(meta.get("cues", ())) != CUE_NAMES:
            raise ConfigError(
                f"image-kind head in {folder}: expected version {HEAD_VERSION} with this code's OCR cues, "
                f"got version {meta.get('version')}; retrain it"
            )
        with np.load(weights_file, allow_pickle=False) as w:
            stages = {
                s: LinearSoftmax(**{k: w[f"{s}_{k}"] for k in ("mean", "scale", "coef", "intercept")})
                for s in ("stage1", "stage2")
                if f"{s}_coef" in w
            }
        return cls(
            kinds=tuple(meta["kinds"]),
            encoder=meta["encoder"],
            embedding_dim=int(meta["embedding_dim"]),
            stage1=stages["stage1"],
            stage2=stages.get("stage2"),
            info=meta.get("info", {}),
        )


# --- the baseline: rules on ImageNet labels -------------------------------------------------

LABEL_RULES: dict[str, frozenset[str]] = {
    "screenshot": frozenset(
        {
            "web site",
            "monitor",
            "screen",
            "desktop computer",
            "laptop",
            "notebook",
            "hand-held computer",
            "television",
        }
    ),
    "receipt": frozenset({"menu", "cash machine", "slot"}),
    "document": frozenset(
        {"envelope", "book jacket", "comic book", "crossword puzzle", "binder", "paper towel", "packet"}
    ),
    "card": frozenset({"wallet", "purse", "pencil box"}),
    "product_photo": frozenset(
        {
            "beer bottle",
            "pop bottle",
            "water bottle",
            "wine bottle",
            "pill bottle",
            "coffee mug",
            "cup",
            "measuring cup",
            "cellular telephone",
            "running shoe",
            "clog",
            "sandal",
            "cowboy boot",
            "carton",
            "crate",
            "soccer ball",
            "tennis ball",
            "basketball",
            "volleyball",
            "golf ball",
            "rugby ball",
            "ping-pong ball",
            "croquet ball",
            "baseball",
            "microphone",
            "bottlecap",
            "teapot",
            "iPod",
        }
    ),
}


def kind_from_labels(labels: Sequence[tuple[str, float]]) -> str:
    """Baseline: the kind of the most probable ImageNet label that a rule maps, else ``other``."""
    for name, _p in labels:
        for kind, names in LABEL_RULES.items():
            if name in names:
                return kind
    return "other"


def check_kinds(kinds: Sequence[str]) -> None:
    unknown = sorted(set(kinds) - set(IMAGE_KINDS))
    if unknown:
        raise ValueError(f"image kinds: expected values in {list(IMAGE_KINDS)}, got {unknown}")
