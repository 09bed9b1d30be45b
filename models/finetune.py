"""The fine-tuning loop: multi-task cross-entropy, AdamW, linear warm-up then linear decay,
dropout, weight decay, early stopping on validation macro-F1, best weights restored.

Examples may carry any subset of the labels (intent, sentiment, emotion); each head's loss
ignores examples without its label, so intent data and sentiment data train one encoder in one
run. Heads start from class centroids of the pretrained embeddings. An optional term keeps the
pooled embedding close to the pretrained one (``embedding_keep_weight``: ``1 - cos`` to the
embedding of the same text before fine-tuning), which keeps knowledge-base retrieval working
with the fine-tuned encoder.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from agent.errors import InvalidInput
from models.calibration import OOS_METHODS
from models.datasets import Example
from models.reports import macro_f1
from models.text_encoder import MultiHeadTextModel

IGNORE = -100
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-4  # encoder learning rate
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    dropout: float = 0.1
    patience: int = 3  # epochs without a better validation macro-F1 before stopping
    max_seq_len: int = 64  # tokens; longer texts are truncated
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    freeze_embeddings: bool = True  # word-embedding matrix kept fixed (faster, less over-fitting)
    label_smoothing: float = 0.1
    class_balance: float = 0.0  # loss weight of a class ~ count^-class_balance (0.5: inverse sqrt)
    embedding_keep_weight: float = 4.0  # keeps knowledge-base retrieval near the pretrained encoder's
    oos_method: str = "msp+knn"  # without an oos class: msp+knn | msp | energy | maxlogit (docs/nlu.md)
    threads: int = 2

    def __post_init__(self) -> None:
        problems = []
        for name in ("epochs", "batch_size", "max_seq_len", "threads"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.lr <= 1 or not 0 < self.head_lr <= 1:
            problems.append(f"lr and head_lr must be in (0, 1], got {self.lr} and {self.head_lr}")
        if not 0 <= self.val_fraction < 0.5 or not 0 <= self.test_fraction < 0.5:
            problems.append("val_fraction and test_fraction must be in [0, 0.5)")
        if not 0 <= self.dropout < 1 or not 0 <= self.warmup_ratio < 1:
            problems.append("dropout and warmup_ratio must be in [0, 1)")
        if self.oos_method not in OOS_METHODS:
            problems.append(f"oos_method must be {'|'.join(OOS_METHODS)}, got {self.oos_method!r}")
        if problems:
            raise InvalidInput("training configuration: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True, kw_only=True)
class Encoded:
    """Token ids per example and, per head, class indices (IGNORE where unlabelled)."""

    ids: list[list[int]]
    targets: dict[str, np.ndarray]
    teacher: np.ndarray | None = None  # (N, d) pretrained embeddings, when kept
    class_weights: dict[str, torch.Tensor] = field(default_factory=dict)  # head -> (C,), when balanced

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(slots=True, kw_only=True)
class FitResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = float("nan")
    seconds: float = 0.0
    stopped_early: bool = False


def encode(tokenizer: Any, examples: Sequence[Example], labels: dict[str, tuple[str, ...]],
           *, max_seq_len: int) -> Encoded:
    texts = [ex.text for ex in examples]
    ids = tokenizer(texts, truncation=True, max_length=max_seq_len)["input_ids"] if texts else []
    targets = {}
    for head, names in labels.items():
        index = {name: i for i, name in enumerate(names)}
        targets[head] = np.array([index.get(ex.label(head), IGNORE) if ex.label(head) is not None else IGNORE
                                  for ex in examples], dtype=np.int64)
    return Encoded(ids=list(ids), targets=targets)


def collate(ids: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic padding to the longest sequence of the batch: (B, T) ids and mask."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, seq in enumerate(ids):
        input_ids[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
    return input_ids, mask


def _batches(lengths: Sequence[int], batch_size: int, rng: random.Random, *, pool: int = 50) -> list[list[int]]:
    """Shuffled batches of similar length ("sortish"): shuffle, sort within pools of
    ``pool * batch_size`` examples by length, cut into batches, shuffle the batch order. Less
    padding, so fewer wasted tokens per step than fully random batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    for start in range(0, len(order), pool * batch_size):
        chunk = sorted(order[start : start + pool * batch_size], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


@torch.inference_mode()
def predict(model: MultiHeadTextModel, enc: Encoded, *, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Logits of every head and the pooled embeddings, in input order; batches sorted by length."""
    model.eval()
    order = sorted(range(len(enc)), key=lambda i: len(enc.ids[i]))
    parts: dict[str, list[np.ndarray]] = {}
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        out = model(*collate([enc.ids[j] for j in idx]))
        for name in ("pooled", *model.heads.keys()):
            parts.setdefault(name, []).append(getattr(out, name).float().numpy())
    if not order:
        return {}
    inverse = np.argsort(np.array(order))
    return {name: np.concatenate(chunks)[inverse] for name, chunks in parts.items()}


def init_heads(model: MultiHeadTextModel, train: Encoded, *, keep_teacher: bool) -> None:
    """Heads start at their classes' centroids of the current (pretrained) embeddings."""
    pooled = torch.as_tensor(predict(model, train)["pooled"])
    for name, head in model.heads.items():
        y = torch.as_tensor(train.targets[name])
        centroids = torch.stack([
            pooled[y == c].mean(0) if (y == c).any() else torch.randn(model.dim) * 0.02
            for c in range(head.weight.shape[0])
        ])
        head.init_from_centroids(centroids)
    if keep_teacher:
        train.teacher = F.normalize(pooled, dim=-1).numpy()


def class_weights(enc: Encoded, sizes: dict[str, int], power: float) -> dict[str, torch.Tensor]:
    """Per head, weights ~ count^-power normalised to mean 1 over the classes seen."""
    out = {}
    for name, n in sizes.items():
        y = enc.targets[name]
        counts = np.bincount(y[y != IGNORE], minlength=n).astype(np.float64)
        w = np.where(counts > 0, np.maximum(counts, 1.0) ** -power, 0.0)
        out[name] = torch.as_tensor(w / w[counts > 0].mean(), dtype=torch.float32)
    return out


def _optimizer(model: MultiHeadTextModel, config: TrainConfig, total_steps: int):
    if config.freeze_embeddings:
        model.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    decay, no_decay, heads = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("heads."):
            heads.append(p)
        elif p.dim() < 2 or "LayerNorm" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    opt = torch.optim.AdamW([
        {"params": decay, "lr": config.lr, "weight_decay": config.weight_decay},
        {"params": no_decay, "lr": config.lr, "weight_decay": 0.0},
        {"params": heads, "lr": config.head_lr, "weight_decay": config.weight_decay},
    ])
    warmup = max(1, int(config.warmup_ratio * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _loss(model: MultiHeadTextModel, enc: Encoded, idx: list[int], config: TrainConfig) -> torch.Tensor:
    out = model(*collate([enc.ids[i] for i in idx]))
    total = out.pooled.new_zeros(())
    for name in model.heads:
        y = torch.as_tensor(enc.targets[name][idx])
        valid = y != IGNORE
        if valid.any():
            total = total + F.cross_entropy(out.logits(name)[valid], y[valid], weight=enc.class_weights.get(name),
                                            label_smoothing=config.label_smoothing)
    if config.embedding_keep_weight > 0 and enc.teacher is not None:
        teacher = torch.as_tensor(enc.teacher[idx])
        total = total + config.embedding_keep_weight * (1 - F.cosine_similarity(out.pooled, teacher)).mean()
    return total


def evaluate(model: MultiHeadTextModel, enc: Encoded) -> tuple[float, dict[str, float], dict[str, np.ndarray]]:
    """(validation loss, macro-F1 per head, logits) on labelled examples of each head."""
    logits = predict(model, enc)
    loss, f1 = 0.0, {}
    for name in model.heads:
        y = enc.targets[name]
        valid = y != IGNORE
        if valid.any():
            z = torch.as_tensor(logits[name][valid])
            loss += float(F.cross_entropy(z, torch.as_tensor(y[valid])))
            f1[name] = macro_f1(y[valid], logits[name][valid].argmax(1))
    return loss, f1, logits


def fit(model: MultiHeadTextModel, train: Encoded, val: Encoded, config: TrainConfig, *,
        progress: bool = True) -> FitResult:
    """Train in place; the weights of the epoch with the best mean validation macro-F1 are kept."""
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    init_heads(model, train, keep_teacher=config.embedding_keep_weight > 0)
    if config.class_balance > 0:
        train.class_weights = class_weights(train, model.head_sizes(), config.class_balance)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    opt, sched = _optimizer(model, config, config.epochs * steps_per_epoch)
    result, best_state, stale, start = FitResult(), None, 0, time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        t0, losses = time.perf_counter(), []
        bar = tqdm(_batches([len(x) for x in train.ids], config.batch_size, rng), desc=f"epoch {epoch}/{config.epochs}",
                   disable=not progress, leave=False, unit="batch")
        for idx in bar:
            loss = _loss(model, train, idx, config)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        val_loss, f1, _ = evaluate(model, val) if len(val) else (None, {}, {})
        score = float(np.mean(list(f1.values()))) if f1 else -float(np.mean(losses))
        result.history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                               "val_macro_f1": f1, "val_score": score,
                               "seconds": round(time.perf_counter() - t0, 2)})
        line = (f"epoch {epoch}/{config.epochs}: train loss {np.mean(losses):.4f}, validation macro-F1 "
                + (", ".join(f"{k} {v:.4f}" for k, v in f1.items()) or "n/a")
                + f", {time.perf_counter() - t0:.0f} s")
        log.info("%s", line)
        if progress:
            tqdm.write(line)
        if best_state is None or score > result.best_score:
            result.best_score, result.best_epoch, stale = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                result.stopped_early = True
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - start
    return result
