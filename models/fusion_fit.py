"""The fusion training loop: batches, modality dropout, loss, early stopping (``models.fusion_training`` runs it).

The speech and image encoders stay frozen (their features are cached in the multimodal set).
The text model is frozen by default: its token states are computed once per text and reused; with
``finetune_text`` its encoder is trained too (small learning rate) and saved inside the fusion
directory. The fusion heads start as copies of the text model's heads and stay frozen unless
``train_heads``; with frozen heads a turn with nothing but text is answered exactly as the text
model answers it.

Loss: intent cross-entropy (label smoothing) + image-kind cross-entropy on turns with a picture
+ a term that keeps sentiment and emotion close to the text model's reading of the words
(the set has no affect labels). On turns whose picture is irrelevant the intent target is the
text model's own answer (KL to its distribution) instead of the label, so the fusion learns to
leave the words alone when the picture has nothing to add (``keep_text_on_irrelevant``). Modality dropout: each turn's speech, embedding and OCR are
dropped independently with their probabilities, so the model works with any subset.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from agent.errors import InvalidInput
from agent.messages import IMAGE_KINDS
from models.calibration import fit_temperature
from models.finetune import collate
from models.fusion import OCR_MAX_TOKENS, FusionModel, build_meta
from models.fusion_eval import by_kind
from models.fusion_layers import FusionConfig, FusionModule, n_parameters, pad_batch
from models.multimodal_data import MultimodalExample, MultimodalSet
from models.nlu import NluModel

log = logging.getLogger(__name__)
IGNORE = -100


@dataclass(frozen=True, slots=True, kw_only=True)
class FusionTrainConfig:
    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-3  # fusion network
    text_lr: float = 2e-5  # text encoder, with finetune_text
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    patience: int = 6  # epochs without a better validation macro-F1 before stopping
    label_smoothing: float = 0.1
    kind_loss_weight: float = 0.3
    affect_keep_weight: float = 0.5
    drop_speech: float = 0.3
    drop_image: float = 0.2
    drop_ocr: float = 0.2
    keep_text_on_irrelevant: bool = True  # irrelevant-picture turns: target the text model's answer, not the label
    irrelevant_keep_weight: float = 1.0
    # spoken turns: pull the fused sentence vector towards the text model's vector of the sentence
    # as typed (1 - cosine), so the speech path learns what was meant, not only which label
    typed_pool_weight: float = 1.0
    # training only: this share of each clip's speech tokens, in two spans, replaced by the clip's
    # mean (SpecAugment-style time masking on the pooled encoder features)
    speech_time_mask: float = 0.0
    # the picture router (``FusionConfig.picture_router``): binary cross-entropy of "this turn's
    # picture decides its intent" (image-decides and image-only turns) against image-irrelevant turns
    router_loss_weight: float = 1.0
    finetune_text: bool = False
    train_heads: bool = False
    seed: int = 0
    threads: int = 2
    max_examples: int | None = None

    def __post_init__(self) -> None:
        problems = [f"{n} must be >= 1, got {getattr(self, n)}" for n in ("epochs", "batch_size", "threads", "patience")
                    if getattr(self, n) < 1]
        problems += [f"{n} must be in [0, 1), got {getattr(self, n)}" for n in ("drop_speech", "drop_image", "drop_ocr",
                                                                           "speech_time_mask")
                     if not 0 <= getattr(self, n) < 1]
        if not 0 < self.lr <= 1 or not 0 < self.text_lr <= 1:
            problems.append(f"lr and text_lr must be in (0, 1], got {self.lr} and {self.text_lr}")
        if self.max_examples is not None and self.max_examples < 1:
            problems.append(f"max_examples must be positive, got {self.max_examples}")
        if problems:
            raise InvalidInput("fusion training configuration: " + "; ".join(problems))


@dataclass(slots=True, kw_only=True)
class Prepared:
    """One split, ready for batching: keys of texts whose states are looked up, features, targets."""

    examples: list[MultimodalExample]
    speech: list[torch.Tensor | None]
    image: list[torch.Tensor | None]
    ocr: list[str | None]
    asr_logprob: list[float | None]  # the transcript's confidence on spoken rows
    y: torch.Tensor  # (N,) intent class index
    kind: torch.Tensor  # (N,) image-kind index, IGNORE without a picture
    teacher: dict[str, torch.Tensor] = field(default_factory=dict)  # head -> (N, C) text-only probabilities
    typed_pool: torch.Tensor | None = None  # (N, d) text model's mean state of the typed sentence (spoken rows)

    def __len__(self) -> int:
        return len(self.examples)


def prepare(data: MultimodalSet, examples: list[MultimodalExample], classes: tuple[str, ...]) -> Prepared:
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({ex.intent for ex in examples} - set(index))
    if unknown:
        raise InvalidInput(f"multimodal set {data.path}: intents {unknown[:5]} are not classes of the text model; "
                           "expected the set to be built from the same domain")
    return Prepared(
        examples=examples,
        speech=[torch.from_numpy(data.speech[ex.clip].astype(np.float32)) if ex.clip else None for ex in examples],
        image=[torch.from_numpy(data.images[ex.image].embedding) if ex.image else None for ex in examples],
        ocr=[(data.images[ex.image].ocr_text.strip() or None) if ex.image else None for ex in examples],
        asr_logprob=[data.asr_logprob.get(ex.clip) if ex.clip else None for ex in examples],
        y=torch.tensor([index[ex.intent] for ex in examples]),
        kind=torch.tensor([IMAGE_KINDS.index(ex.image_kind) if ex.image_kind else IGNORE for ex in examples]))


class TextStates:
    """Token states of texts: cached once (frozen text model) or computed with gradients (fine-tuning)."""

    def __init__(self, fusion: FusionModel, *, trainable: bool) -> None:
        self.fusion, self.trainable = fusion, trainable
        self._cache: dict[tuple[str, int], torch.Tensor] = {}

    def __call__(self, texts: list[str], max_len: int, *, grad: bool) -> list[torch.Tensor]:
        if self.trainable:  # the encoder changes while training: nothing is reused across calls
            return self._with_grad(texts, max_len) if grad else self.fusion.text_states(texts, max_len=max_len)
        missing = sorted({t for t in texts if (t, max_len) not in self._cache})
        for text, states in zip(missing, self.fusion.text_states(missing, max_len=max_len)):
            self._cache[(text, max_len)] = states
        return [self._cache[(t, max_len)] for t in texts]

    def _with_grad(self, texts: list[str], max_len: int) -> list[torch.Tensor]:
        ids = self.fusion.text.tokenizer(texts, truncation=True, max_length=max_len)["input_ids"]
        input_ids, mask = collate(ids)
        hidden = self.fusion.text.module.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        return [hidden[i, : len(x)] for i, x in enumerate(ids)]


def make_batch(fusion: FusionModel, states: TextStates, prep: Prepared, idx: list[int], *, grad: bool = False,
               drop: frozenset[str] = frozenset(), rng: random.Random | None = None, cfg: FusionTrainConfig | None = None):
    """The FusionBatch of rows ``idx``; modalities in ``drop`` left out, and random modality dropout with ``rng``."""
    def keep(name: str, p: float) -> bool:
        return name not in drop and (rng is None or rng.random() >= p)

    c = cfg or FusionTrainConfig()
    speech = [prep.speech[i] if keep("speech", c.drop_speech) else None for i in idx]
    if rng is not None and c.speech_time_mask > 0:
        speech = [time_mask(x, c.speech_time_mask, rng) if x is not None else None for x in speech]
    image = [prep.image[i] if keep("image", c.drop_image) else None for i in idx]
    ocr_keys = [prep.ocr[i] if keep("ocr", c.drop_ocr) else None for i in idx]
    text = states([prep.examples[i].text for i in idx], fusion.text.max_seq_len, grad=grad)
    wanted = [k for k in ocr_keys if k is not None]
    ocr_states = iter(states(wanted, OCR_MAX_TOKENS, grad=grad)) if wanted else iter(())
    ocr = [next(ocr_states) if k is not None else None for k in ocr_keys]
    # the transcript's confidence describes the text, so it stays when the speech features are dropped
    return pad_batch(text, speech=speech, image=image, ocr=ocr, asr_logprob=[prep.asr_logprob[i] for i in idx],
                     words=[bool(prep.examples[i].text.strip()) for i in idx],
                     config=fusion.config)


def time_mask(features: torch.Tensor, share: float, rng: random.Random) -> torch.Tensor:
    """A copy of (S, d) ``features`` with about ``share`` of its rows, in two spans at random
    places, replaced by the mean row."""
    n = features.shape[0]
    width = round(n * share / 2)
    if width < 1 or n < 4:
        return features
    out = features.clone()
    mean = features.mean(0)
    for _ in range(2):
        start = rng.randrange(0, n - width + 1)
        out[start : start + width] = mean
    return out


def predict(fusion: FusionModel, states: TextStates, prep: Prepared, *, drop: frozenset[str] = frozenset(),
            batch_size: int = 64) -> dict[str, np.ndarray]:
    """Logits of every head and image-kind logits, the gate, the router's probability that the
    picture matters and whether it was read, in order; ``drop``: modalities removed at test time."""
    fusion.module.eval()
    parts: dict[str, list[np.ndarray]] = {}
    with torch.inference_mode():
        for start in range(0, len(prep), batch_size):
            idx = list(range(start, min(len(prep), start + batch_size)))
            out = fusion.module(make_batch(fusion, states, prep, idx, drop=drop))
            extra = {"image_kind": out.image_kind, "gate": out.gate, "relevance": torch.sigmoid(out.relevance),
                     "picture_used": out.picture_used}
            for name, z in {**out.logits, **extra}.items():
                parts.setdefault(name, []).append(z.float().numpy())
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def intents_of(fusion: FusionModel, logits: np.ndarray) -> list[str]:
    """Top in-scope intent per row (``oos`` is never the answer, as in ``NluResult.intent``)."""
    cols = [i for i, name in enumerate(fusion.intent_classes) if name != "oos"]
    return [fusion.intent_classes[cols[j]] for j in logits[:, cols].argmax(1)]


def _loss(fusion: FusionModel, states: TextStates, prep: Prepared, idx: list[int], cfg: FusionTrainConfig,
          rng: random.Random) -> torch.Tensor:
    batch = make_batch(fusion, states, prep, idx, grad=True, rng=rng, cfg=cfg)
    out = fusion.module(batch)
    z, y = out.logits["intent"], prep.y[idx]
    keep = torch.tensor([prep.examples[i].kind == "image_irrelevant" for i in idx]) & cfg.keep_text_on_irrelevant
    loss = z.new_zeros(())
    if (~keep).any():
        loss = F.cross_entropy(z[~keep], y[~keep], label_smoothing=cfg.label_smoothing) * (~keep).float().mean()
    if keep.any() and "intent" in prep.teacher:  # an irrelevant picture: answer as the words alone do
        soft = F.kl_div(F.log_softmax(z[keep], -1), prep.teacher["intent"][idx][keep], reduction="batchmean")
        loss = loss + cfg.irrelevant_keep_weight * soft * keep.float().mean()
    if cfg.typed_pool_weight > 0 and prep.typed_pool is not None:
        spoken = torch.tensor([prep.examples[i].kind == "spoken" for i in idx])
        if spoken.any():
            target = prep.typed_pool[idx][spoken]
            miss = 1 - F.cosine_similarity(out.pooled[spoken], target, dim=-1)
            loss = loss + cfg.typed_pool_weight * miss.mean() * spoken.float().mean()
    if fusion.module.router is not None and batch.image_mask is not None and batch.image_mask.any():
        seen = batch.image_mask
        target = torch.tensor([prep.examples[i].kind != "image_irrelevant" for i in idx], dtype=torch.float32)[seen]
        loss = loss + cfg.router_loss_weight * F.binary_cross_entropy_with_logits(out.relevance[seen], target)
    kind = prep.kind[idx]
    has = (kind != IGNORE) & (batch.image_mask if batch.image_mask is not None else torch.zeros_like(kind, dtype=torch.bool))
    if has.any():
        loss = loss + cfg.kind_loss_weight * F.cross_entropy(out.image_kind[has], kind[has])
    for head, teacher in prep.teacher.items():
        if head == "intent":
            continue
        student = F.log_softmax(out.logits[head], dim=-1)
        loss = loss + cfg.affect_keep_weight * F.kl_div(student, teacher[idx], reduction="batchmean")
    return loss


def _optimizer(fusion: FusionModel, cfg: FusionTrainConfig, total_steps: int):
    for p in fusion.module.heads.parameters():
        p.requires_grad_(cfg.train_heads)
    groups = [{"params": [p for p in fusion.module.parameters() if p.requires_grad], "lr": cfg.lr}]
    encoder = fusion.text.module.encoder
    for p in encoder.parameters():
        p.requires_grad_(cfg.finetune_text)
    if cfg.finetune_text:
        encoder.embeddings.word_embeddings.weight.requires_grad_(False)
        groups.append({"params": [p for p in encoder.parameters() if p.requires_grad], "lr": cfg.text_lr})
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    warmup = max(1, int(cfg.warmup_ratio * total_steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total_steps - s) / max(1, total_steps - warmup)))
    return opt, sched


def _val_score(fusion: FusionModel, states: TextStates, val: Prepared) -> tuple[float, float, dict[str, Any]]:
    out = predict(fusion, states, val)
    loss = float(F.cross_entropy(torch.as_tensor(out["intent"]), val.y))
    scores = by_kind(val.examples, intents_of(fusion, out["intent"]))
    return loss, scores["all"]["macro_f1"] / 100.0, scores


def fit(fusion: FusionModel, states: TextStates, train: Prepared, val: Prepared, cfg: FusionTrainConfig,
        *, progress: bool = True) -> dict[str, Any]:
    """Train in place; the state with the best validation intent macro-F1 is kept."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    steps = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
    opt, sched = _optimizer(fusion, cfg, steps)
    router = {id(p) for p in fusion.module.router.parameters()} if fusion.module.router is not None else set()
    # the router's gradients are clipped apart, so that the rest trains exactly as without it
    clip_groups = [[p for g in opt.param_groups for p in g["params"] if (id(p) in router) == r] for r in (False, True)]
    history: list[dict[str, Any]] = []
    best, best_loss, best_state, stale, stopped, start = -1.0, float("inf"), None, 0, False, time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        fusion.module.train()
        fusion.text.module.train(cfg.finetune_text)
        order = list(range(len(train)))
        rng.shuffle(order)
        losses, t0 = [], time.perf_counter()
        for b in range(0, len(order), cfg.batch_size):
            loss = _loss(fusion, states, train, order[b : b + cfg.batch_size], cfg, rng)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for params in clip_groups:
                if params:
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        fusion.text.module.eval()
        val_loss, score, scores = _val_score(fusion, states, val) if len(val) else (None, -float(np.mean(losses)), {})
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                        "val_macro_f1": {"intent": score}, "val_by_kind": scores, "seconds": round(time.perf_counter() - t0, 2)})
        if progress:
            print(f"fusion epoch {epoch}/{cfg.epochs}: train loss {np.mean(losses):.4f}, validation macro-F1 {score:.4f}",
                  flush=True)
        loss_now = val_loss if val_loss is not None else float(np.mean(losses))
        if score > best + 1e-9 or (score > best - 1e-9 and loss_now < best_loss):  # ties: the lower loss
            best, best_loss, stale = max(score, best), loss_now, 0
            best_state = copy.deepcopy((fusion.module.state_dict(), fusion.text.module.state_dict() if cfg.finetune_text else None))
        elif (stale := stale + 1) >= cfg.patience:
            stopped = True
            break
    if best_state is not None:
        fusion.module.load_state_dict(best_state[0])
        if best_state[1] is not None:
            fusion.text.module.load_state_dict(best_state[1])
    fusion.module.eval()
    fusion.text.module.eval()
    best_epoch = _best_epoch(history)
    return {"history": history, "best_epoch": best_epoch, "best_score": best, "stopped_early": stopped,
            "train_seconds": round(time.perf_counter() - start, 2)}


def _best_epoch(history: list[dict[str, Any]]) -> int:
    """The epoch whose state was kept: best validation macro-F1, ties to the lower validation loss."""
    if not history:
        return 0
    key = max(h["val_macro_f1"]["intent"] for h in history)
    tied = [h for h in history if h["val_macro_f1"]["intent"] > key - 1e-9]
    return int(min(tied, key=lambda h: h["val_loss"] if h["val_loss"] is not None else h["train_loss"])["epoch"])


def new_fusion(text_model: NluModel, config: FusionConfig, *, image_encoder: str, asr_model: str) -> FusionModel:
    """A fusion network over ``text_model`` with heads copied from it."""
    sizes = text_model.module.head_sizes()
    module = FusionModule(dataclasses.replace(config, text_dim=text_model.module.dim), sizes)
    module.copy_heads(text_model.module.heads)
    meta = build_meta(config=module.config, intent_classes=text_model.intent_classes, head_sizes=sizes, temperature=1.0,
                      training={}, image_encoder=image_encoder, asr_model=asr_model)
    return FusionModel(text_model, module, meta)


def set_teacher(fusion: FusionModel, states: TextStates, prep: Prepared) -> None:
    """Intent, sentiment and emotion probabilities of the words alone (the fusion before training, text only)."""
    out = predict(fusion, states, prep, drop=frozenset({"speech", "image", "ocr"}))
    prep.teacher = {h: torch.softmax(torch.as_tensor(out[h]), -1) for h in ("intent", "sentiment", "emotion") if h in out}


def set_typed_targets(fusion: FusionModel, states: TextStates, prep: Prepared) -> None:
    """The text model's mean token state of each spoken turn's sentence as typed (zeros elsewhere)."""
    rows = [i for i, ex in enumerate(prep.examples) if ex.kind == "spoken" and ex.typed]
    target = torch.zeros(len(prep), fusion.config.text_dim)
    with torch.inference_mode():
        for start in range(0, len(rows), 64):
            chunk = rows[start : start + 64]
            for i, h in zip(chunk, states([prep.examples[i].typed for i in chunk], fusion.text.max_seq_len, grad=False)):
                target[i] = h.float().mean(0)
    prep.typed_pool = target


def calibrate(fusion: FusionModel, states: TextStates, val: Prepared) -> float:
    if not len(val):
        return 1.0
    return float(fit_temperature(predict(fusion, states, val)["intent"], val.y.numpy()))


def summary(fusion: FusionModel, cfg: FusionTrainConfig) -> dict[str, Any]:
    return {"trainable_parameters": n_parameters(fusion.module, trainable_only=True) + (
        n_parameters(fusion.text.module.encoder, trainable_only=True) if cfg.finetune_text else 0),
        "fusion_parameters": n_parameters(fusion.module)}
