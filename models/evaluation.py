"""Held-out evaluation of an ``NluModel``: classification reports per head, calibration error and,
when the data has ``oos`` examples, out-of-scope detection (AUROC, recall at thresholds)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.messages import EMOTIONS, SENTIMENTS
from models.calibration import expected_calibration_error, oos_metrics
from models.datasets import OOS_LABEL, Example
from models.reports import classification_report

HEAD_LABELS = {"sentiment": SENTIMENTS, "emotion": EMOTIONS}


@dataclass(slots=True, kw_only=True)
class Evaluation:
    metrics: dict[str, Any] = field(default_factory=dict)  # JSON-ready
    reports: dict[str, str] = field(default_factory=dict)  # head -> classification report text
    intent_true: list[str] = field(default_factory=list)
    intent_pred: list[str] = field(default_factory=list)


def evaluate_model(nlu: Any, examples: Sequence[Example]) -> Evaluation:
    """Evaluate every head of ``nlu`` (an ``NluModel``) that has labelled ``examples``."""
    result = Evaluation()
    if not examples:
        return result
    out = nlu.forward([ex.text for ex in examples])
    for head in out:
        if head == "intent":
            _intent(nlu, examples, out["intent"], out["pooled"], result)
        elif head in HEAD_LABELS:
            _affect(nlu, head, examples, out[head], result)
    return result


def _intent(nlu: Any, examples: Sequence[Example], logits: np.ndarray, pooled: np.ndarray,
            result: Evaluation) -> None:
    rows = [i for i, ex in enumerate(examples) if ex.intent is not None]
    if not rows:
        return
    logits, pooled = logits[rows], pooled[rows]
    truth = [examples[i].intent for i in rows]
    probs = nlu.probabilities("intent", logits)
    in_scope_cols = [nlu.intent_classes.index(label) for label in nlu.labels]
    top = [nlu.labels[j] for j in probs[:, in_scope_cols].argmax(1)]
    scores = nlu.oos_scores(logits, pooled)
    is_oos = np.array([t == OOS_LABEL for t in truth])
    correct = np.array([t == p for t, p in zip(truth, top, strict=True)])
    metrics: dict[str, Any] = {"n": len(rows)}
    inn = ~is_oos
    if inn.any():
        metrics["closed_set_accuracy"] = float(correct[inn].mean())
        in_probs = probs[inn][:, in_scope_cols]
        in_probs = in_probs / in_probs.sum(1, keepdims=True)
        index = {label: k for k, label in enumerate(nlu.labels)}
        y = np.array([index[t] for t, keep in zip(truth, inn, strict=True) if keep])
        metrics["ece"] = expected_calibration_error(in_probs, y)
    if is_oos.any():
        pred = [OOS_LABEL if s > nlu.oos_threshold else p for s, p in zip(scores, top, strict=True)]
        metrics["oos"] = oos_metrics(scores, is_oos, correct, threshold=nlu.oos_threshold)
    else:
        pred = top
    labels = list(nlu.labels) + ([OOS_LABEL] if is_oos.any() else [])
    text, report = classification_report(truth, pred, labels)
    metrics.update(accuracy=report["accuracy"], macro_f1=report["macro avg"]["f1-score"], report=report)
    result.metrics["intent"] = metrics
    result.reports["intent"] = text
    result.intent_true, result.intent_pred = truth, pred


def _affect(nlu: Any, head: str, examples: Sequence[Example], logits: np.ndarray, result: Evaluation) -> None:
    rows = [i for i, ex in enumerate(examples) if ex.label(head) is not None]
    if not rows:
        return
    names = HEAD_LABELS[head]
    probs = nlu.probabilities(head, logits[rows])
    truth = [examples[i].label(head) for i in rows]
    pred = [names[j] for j in probs.argmax(1)]
    text, report = classification_report(truth, pred, list(names))
    y = np.array([names.index(t) for t in truth])
    result.metrics[head] = {"n": len(rows), "accuracy": report["accuracy"],
                            "macro_f1": report["macro avg"]["f1-score"],
                            "ece": expected_calibration_error(probs, y), "report": report}
    result.reports[head] = text


def report_text(evaluation: Evaluation) -> str:
    """All heads' reports, one after another, with out-of-scope figures where present."""
    parts = []
    for head, text in evaluation.reports.items():
        parts.append(f"== {head} ==\n{text}")
        oos = evaluation.metrics.get(head, {}).get("oos")
        if oos and "auroc" in oos:
            parts.append(
                f"out-of-scope: AUROC {oos['auroc']:.4f}; at the threshold keeping in-scope accuracy "
                f"within 1 point: OOS recall {oos['oos_recall_at_1pt']:.4f}; at the model's threshold "
                f"{oos['threshold_at_model_threshold']:.3f}: OOS recall {oos['oos_recall_at_model_threshold']:.4f}, "
                f"in-scope accuracy {oos['in_scope_accuracy_at_model_threshold']:.4f}\n"
            )
    return "\n".join(parts)
