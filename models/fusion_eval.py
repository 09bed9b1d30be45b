"""Scoring the fusion model and its baselines on the multimodal set, split by kind of turn.

Baselines, all with the same text model:
- ``text``: the text model alone on what was typed or heard (the transcript on spoken turns);
- ``text_ocr``: the text model on the message with the picture's OCR text appended;
- ``typed``: (spoken turns only) the text model on the sentence as written, before speech.
A turn with no text at all gets no answer from a text baseline and counts as wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.multimodal_data import KINDS, MultimodalExample, MultimodalSet

NO_ANSWER = ""


def score(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Accuracy and macro-F1 (over the classes present in ``truth``) in percent, and the count."""
    from sklearn.metrics import f1_score

    if not truth:
        return {"accuracy": float("nan"), "macro_f1": float("nan"), "n": 0}
    labels = sorted(set(truth))
    accuracy = 100.0 * float(np.mean([t == p for t, p in zip(truth, predicted, strict=True)]))
    f1 = 100.0 * float(f1_score(list(truth), list(predicted), labels=labels, average="macro", zero_division=0))
    return {"accuracy": round(accuracy, 2), "macro_f1": round(f1, 2), "n": len(truth)}


def by_kind(examples: Sequence[MultimodalExample], predicted: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``score`` per kind of turn, plus ``all``."""
    out = {"all": score([ex.intent for ex in examples], predicted)}
    for kind in KINDS:
        idx = [i for i, ex in enumerate(examples) if ex.kind == kind]
        if idx:
            out[kind] = score([examples[i].intent for i in idx], [predicted[i] for i in idx])
    return out


def by_voice(examples: Sequence[MultimodalExample], predicted: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``score`` of the spoken turns of each voice."""
    out = {}
    for voice in sorted({ex.voice for ex in examples if ex.kind == "spoken" and ex.voice}):
        idx = [i for i, ex in enumerate(examples) if ex.kind == "spoken" and ex.voice == voice]
        out[voice] = score([examples[i].intent for i in idx], [predicted[i] for i in idx])
    return out


def text_predictions(text_model: Any, texts: Sequence[str]) -> list[str]:
    """The text model's intent for each text; ``NO_ANSWER`` for an empty one."""
    idx = [i for i, t in enumerate(texts) if t.strip()]
    results = text_model.understand_batch([texts[i] for i in idx]) if idx else []
    out = [NO_ANSWER] * len(texts)
    for i, result in zip(idx, results, strict=True):
        out[i] = result.intent
    return out


def with_ocr(example: MultimodalExample, data: MultimodalSet) -> str:
    """The message with the picture's OCR text appended (one line)."""
    if example.image is None:
        return example.text
    ocr = " ".join(data.images[example.image].ocr_text.split())
    return f"{example.text} {ocr}".strip()


def baselines(text_model: Any, examples: Sequence[MultimodalExample], data: MultimodalSet) -> dict[str, list[str]]:
    """Predictions of each text baseline, in the order of ``examples``."""
    return {
        "text": text_predictions(text_model, [ex.text for ex in examples]),
        "text_ocr": text_predictions(text_model, [with_ocr(ex, data) for ex in examples]),
        "typed": text_predictions(text_model, [ex.typed for ex in examples]),
    }


def picture_router_use(examples: Sequence[MultimodalExample], out: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Per kind of turn with a picture: how many pictures the fusion read (the router left the rest
    out) and the router's mean probability that the picture matters; ``out`` is ``predict``'s output."""
    used, p = out.get("picture_used"), out.get("relevance")
    result: dict[str, dict[str, Any]] = {}
    if used is None or p is None:
        return result
    for kind in KINDS:
        idx = [i for i, ex in enumerate(examples) if ex.kind == kind and ex.image]
        if idx:
            result[kind] = {"n": len(idx), "read": int(used[idx].sum()), "mean_relevance": round(float(p[idx].mean()), 3)}
    return result
