"""Reports people look at: classification reports (text and JSON), training curves and a
confusion matrix of the most confused classes (PNG, matplotlib's Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def classification_report(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """(text, dict) per-class precision/recall/F1 plus accuracy and macro/weighted averages."""
    from sklearn.metrics import classification_report as skl_report

    present = [label for label in labels if label in set(y_true) | set(y_pred)]
    text = skl_report(y_true, y_pred, labels=present, zero_division=0, digits=4)
    data = skl_report(y_true, y_pred, labels=present, zero_division=0, output_dict=True)
    data["accuracy"] = float(np.mean([a == b for a, b in zip(y_true, y_pred, strict=True)])) if y_true else 0.0
    data.pop("micro avg", None)
    return text, data


def macro_f1(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    from sklearn.metrics import f1_score

    if len(y_true) == 0:
        return float("nan")
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(history: Sequence[dict[str, Any]], path: Path) -> None:
    """Training and validation loss, and validation macro-F1 per head, by epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    if all(h.get("val_loss") is not None for h in history):
        ax1.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation")
    ax1.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    ax1.legend()
    heads = sorted({k for h in history for k in h.get("val_macro_f1", {})})
    for head in heads:
        ax2.plot(epochs, [h["val_macro_f1"].get(head, np.nan) for h in history], marker="o", label=head)
    ax2.set(xlabel="epoch", ylabel="macro-F1", title="Validation macro-F1", ylim=(0, 1.02))
    if heads:
        ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def most_confused(y_true: Sequence[str], y_pred: Sequence[str], *, top: int = 15) -> list[str]:
    """The labels involved in the most misclassifications, at most ``top`` of them."""
    pairs: dict[tuple[str, str], int] = {}
    for t, p in zip(y_true, y_pred, strict=True):
        if t != p:
            pairs[(t, p)] = pairs.get((t, p), 0) + 1
    chosen: list[str] = []
    for (t, p), _ in sorted(pairs.items(), key=lambda kv: -kv[1]):
        for label in (t, p):
            if label not in chosen and len(chosen) < top:
                chosen.append(label)
    return chosen


def plot_confusion(y_true: Sequence[str], y_pred: Sequence[str], path: Path, *, top: int = 15) -> list[str]:
    """Confusion matrix (counts) restricted to the most confused labels; returns those labels."""
    plt = _pyplot()
    labels = most_confused(y_true, y_pred, top=top) or sorted(set(y_true))[:top]
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(y_true, y_pred, strict=True):
        if t in index and p in index:
            matrix[index[t], index[p]] += 1
    size = max(5.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set(xlabel="predicted", ylabel="true", title="Most confused classes (held-out examples)")
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return labels
