"""The fusion network: the text model's token states attend to speech, image and OCR features.

Inputs (``FusionBatch``), each projected to the text width ``d`` (384 for MiniLM):
- text: the fine-tuned text model's last hidden states of what was typed or transcribed, (B, T, d);
- speech: Whisper encoder output pooled to one vector per 80 ms (``pool_frames``), (B, S, 384);
- image: the image encoder's embedding, (B, 1280), projected to ``image_tokens`` vectors;
- ocr: the text model's token states of the text read in the image, (B, U, d).
Each modality has a mask; a learned "null" slot is always present, so attention is defined
when a turn has nothing but text.

One ``FusionLayer`` (by default): cross-attention from the text tokens to the other modalities,
a small feed-forward on the result, and a learned gate ``g = sigmoid(W [h; a] + V s + b)`` per token
and channel, where ``s`` describes the whole message (its mean state, and the top probability and
entropy of the text model's intent head on it: how clear the words are alone); the bias starts
at -2, so training starts near the text model. The update is
``h + present * g * a`` where ``present`` is 0 for a turn with no other modality: with text
alone, the fused states equal the text states exactly, and the heads (copies of the text
model's cosine heads, frozen by default) give the text model's logits. With ``gate=False`` the
update is ``h + present * a`` (the ablation). The pooled vector is the mean of the fused states
over real tokens; the intent, sentiment and emotion heads read it; the image-kind head reads the
image tokens. The picture router (``picture_router``) scores, from the message summary ``s`` and
the picture's embedding, whether the picture matters; in eval mode a picture scored under
``router_threshold`` is masked out (embedding and OCR) before the attention. No I/O here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from agent.messages import IMAGE_KINDS
from models.text_encoder import CosineHead, mean_pool

SPEECH_STRIDE = 4  # encoder frames (20 ms each) averaged into one speech token: 80 ms
MAX_ENCODER_FRAMES = 1500  # Whisper's 30 s window
MODALITIES = ("null", "speech", "image", "ocr")


def pool_frames(features: np.ndarray, stride: int = SPEECH_STRIDE) -> np.ndarray:
    """(n_frames, d) encoder output -> (ceil(n_frames / stride), d) float32 means of ``stride`` frames."""
    x = np.asarray(features, dtype=np.float32)
    n = x.shape[0]
    pad = (-n) % stride
    if pad:
        x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
    return x.reshape(-1, stride, x.shape[1]).mean(axis=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class FusionConfig:
    text_dim: int = 384
    speech_dim: int = 384  # Whisper tiny's d_model (base: 512)
    image_dim: int = 1280  # EfficientNet-Lite0
    n_heads: int = 4
    n_layers: int = 1
    dropout: float = 0.1
    image_tokens: int = 2
    gate: bool = True
    gate_bias: float = -2.0
    use_speech: bool = True
    use_image: bool = True
    use_ocr: bool = True
    max_speech_tokens: int = MAX_ENCODER_FRAMES // SPEECH_STRIDE
    n_image_kinds: int = len(IMAGE_KINDS)
    # the gate also reads how sure Whisper was of the transcript (mean token log-probability):
    # a clean transcript needs the speech features less than a garbled one. Off by default: no
    # gain measured (benchmarks/README.md, fusion section)
    asr_confidence: bool = False
    # the picture router: a small classifier of whether the turn's picture matters to its intent
    # (trained on the set's image-decides / image-irrelevant labels, on inputs the rest of the
    # network does not learn from); at inference a picture it scores under ``router_threshold`` is
    # left out, embedding and OCR, so with nothing else beside the words the answer is the text
    # model's exactly. The threshold is low because the two mistakes cost unequally: leaving out a
    # picture that decides loses the answer (the words alone are ambiguous), reading an irrelevant
    # one changes about 1 answer in 100; measured on the set's test split: 0.5 left out 8-10 of 140
    # deciding pictures, 0.1 (and down to 0.02) none, and no irrelevant one was read at any of them
    picture_router: bool = True
    router_threshold: float = 0.1
    # learned queries that read the speech features on their own (not through the transcript's
    # tokens), their summary added, gated, to the sentence vector; 0: none
    speech_queries: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.router_threshold < 1.0:
            problems.append(f"router_threshold must be in (0, 1), got {self.router_threshold}")
        if self.text_dim % self.n_heads:
            problems.append(f"text_dim ({self.text_dim}) must be a multiple of n_heads ({self.n_heads})")
        if self.speech_queries < 0:
            problems.append(f"speech_queries must be >= 0, got {self.speech_queries}")
        for name in ("text_dim", "speech_dim", "image_dim", "n_heads", "n_layers", "image_tokens", "max_speech_tokens"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if problems:
            raise ValueError("FusionConfig: " + "; ".join(problems))


@dataclass(frozen=True, slots=True, kw_only=True)
class FusionBatch:
    """Padded tensors of B turns; a modality left as None is absent from every turn."""

    text: torch.Tensor  # (B, T, text_dim) float32
    text_mask: torch.Tensor  # (B, T) bool, True on real tokens (at least one per row)
    speech: torch.Tensor | None = None  # (B, S, speech_dim) float32, pooled frames
    speech_mask: torch.Tensor | None = None  # (B, S) bool
    image: torch.Tensor | None = None  # (B, image_dim) float32
    image_mask: torch.Tensor | None = None  # (B,) bool: which turns have an image
    ocr: torch.Tensor | None = None  # (B, U, text_dim) float32
    ocr_mask: torch.Tensor | None = None  # (B, U) bool
    # Whisper's mean token log-probability of the transcript the text is, NaN on rows whose text
    # was typed (no transcript); None: no row has a transcript
    asr_logprob: torch.Tensor | None = None  # (B,) float32
    # False on rows whose message had no words (a picture sent alone): the router always reads
    # their picture, which is all there is; None: every row had words
    words: torch.Tensor | None = None  # (B,) bool


@dataclass(frozen=True, slots=True, kw_only=True)
class FusionOutputs:
    pooled: torch.Tensor  # (B, d) mean of the fused token states
    logits: dict[str, torch.Tensor]  # head -> (B, n_classes)
    image_kind: torch.Tensor  # (B, n_image_kinds) logits; meaningful where an image is present
    gate: torch.Tensor  # (B,) mean gate over real tokens and channels; 0 with text alone
    attention: torch.Tensor  # (B, 4) share of attention on null / speech / image / ocr (last layer)
    present: torch.Tensor = field(default_factory=lambda: torch.zeros(0))  # (B,) any non-text modality
    # (B,) the router's logit that the picture matters (0 where there is no picture or no router)
    relevance: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    # (B,) the picture was read (present and, in eval mode, not routed away)
    picture_used: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))


def _check(name: str, x: torch.Tensor | None, dims: int, last: int | None, batch: int) -> None:
    if x is None:
        return
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")  # noqa: TRY004
    if x.dim() != dims or x.shape[0] != batch or (last is not None and x.shape[-1] != last):
        want = ", ".join(["B"] + ["n"] * (dims - 2) + ([str(last)] if last is not None else []))
        raise ValueError(f"{name}: expected shape ({want}) with B={batch}, got {tuple(x.shape)}")
    if last is not None and x.dtype != torch.float32:
        raise ValueError(f"{name}: expected dtype float32, got {x.dtype}")
    if last is None and x.dtype != torch.bool:
        raise ValueError(f"{name}: expected dtype bool, got {x.dtype}")
    if last is not None and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: expected finite values, got NaN or infinity")


def check_batch(batch: FusionBatch, config: FusionConfig) -> None:
    """ValueError naming the tensor, the expected shape/dtype and what came."""
    if not isinstance(batch.text, torch.Tensor) or batch.text.dim() != 3:
        got = tuple(batch.text.shape) if isinstance(batch.text, torch.Tensor) else type(batch.text).__name__
        raise ValueError(f"text: expected shape (B, T, {config.text_dim}), got {got}")
    b = batch.text.shape[0]
    _check("text", batch.text, 3, config.text_dim, b)
    _check("text_mask", batch.text_mask, 2, None, b)
    if batch.text_mask.shape != batch.text.shape[:2] or not bool(batch.text_mask.any(1).all()):
        raise ValueError(f"text_mask: expected shape {tuple(batch.text.shape[:2])} with a real token in every row")
    pairs = (("speech", 3, config.speech_dim, 2), ("image", 2, config.image_dim, 1), ("ocr", 3, config.text_dim, 2))
    for name, dims, last, mask_dims in pairs:
        x, mask = getattr(batch, name), getattr(batch, f"{name}_mask")
        if (x is None) != (mask is None):
            raise ValueError(f"{name} and {name}_mask: expected both or neither, got only one")
        _check(name, x, dims, last, b)
        _check(f"{name}_mask", mask, mask_dims, None, b)
        if x is not None and mask is not None and mask.shape != x.shape[:mask_dims]:
            raise ValueError(f"{name}_mask: expected shape {tuple(x.shape[:mask_dims])}, got {tuple(mask.shape)}")
    if batch.asr_logprob is not None:
        lp = batch.asr_logprob
        if not isinstance(lp, torch.Tensor) or lp.shape != (b,) or lp.dtype != torch.float32:
            got = f"{tuple(lp.shape)} {lp.dtype}" if isinstance(lp, torch.Tensor) else type(lp).__name__
            raise ValueError(f"asr_logprob: expected shape ({b},) float32, got {got}")
        if bool((lp[~torch.isnan(lp)] > 0).any()) or bool(torch.isinf(lp).any()):
            raise ValueError("asr_logprob: expected finite log-probabilities <= 0 (NaN for typed text)")
    if batch.words is not None and (not isinstance(batch.words, torch.Tensor) or batch.words.shape != (b,)
                                    or batch.words.dtype != torch.bool):
        got = f"{tuple(batch.words.shape)} {batch.words.dtype}" if isinstance(batch.words, torch.Tensor) else type(batch.words).__name__
        raise ValueError(f"words: expected shape ({b},) bool, got {got}")
    if batch.speech is not None and batch.speech.shape[1] > config.max_speech_tokens:
        raise ValueError(f"speech: expected at most {config.max_speech_tokens} pooled frames (30 s), "
                         f"got {batch.speech.shape[1]}")


def sentence_extra(config: FusionConfig) -> int:
    """Columns the gate's message summary has beside the mean state: the text model's top
    probability and entropy, and with ``asr_confidence`` the transcript's confidence and a flag."""
    return 4 if config.asr_confidence else 2


def _router(sentence_dim: int, image_dim: int) -> nn.ModuleDict:
    return nn.ModuleDict({"image_norm": nn.LayerNorm(image_dim),
                          "mlp": nn.Sequential(nn.Linear(sentence_dim + image_dim, 128), nn.GELU(), nn.Linear(128, 1))})


def _adapter(d_in: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(d_in), nn.Linear(d_in, d_out), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(d_out, d_out))


class FusionLayer(nn.Module):
    """Gated cross-attention from text tokens to the other modalities' tokens."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        d = config.text_dim
        self.norm_q, self.norm_kv = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, config.n_heads, dropout=config.dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(config.dropout),
                                 nn.Linear(2 * d, d))
        self.gate = nn.Linear(2 * d, d) if config.gate else None
        self.gate_sentence = nn.Linear(d + sentence_extra(config), d) if config.gate else None
        if self.gate is not None and self.gate_sentence is not None:
            nn.init.normal_(self.gate.weight, std=0.01)
            nn.init.constant_(self.gate.bias, config.gate_bias)
            nn.init.normal_(self.gate_sentence.weight, std=0.01)
            nn.init.zeros_(self.gate_sentence.bias)

    def forward(self, h: torch.Tensor, ctx: torch.Tensor, ctx_mask: torch.Tensor, present: torch.Tensor,
                sentence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """h (B, T, d), ctx (B, C, d), ctx_mask (B, C) True=attend, present (B,), sentence (B, d + 2)
        -> new h, gate (B, T, d), attention weights (B, T, C)."""
        q, kv = self.norm_q(h), self.norm_kv(ctx)
        a, weights = self.attn(q, kv, kv, key_padding_mask=~ctx_mask, need_weights=True)
        a = a + self.ffn(a)
        if self.gate is not None and self.gate_sentence is not None:
            g = torch.sigmoid(self.gate(torch.cat([q, a], dim=-1)) + self.gate_sentence(sentence)[:, None, :])
        else:
            g = torch.ones_like(a)
        g = g * present.to(h.dtype)[:, None, None]
        return h + g * a, g, weights


class SpeechSummary(nn.Module):
    """``speech_queries`` learned queries attend to the speech tokens alone; their mean, projected
    and gated by the message summary, is added to the sentence vector of turns with speech."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        d = config.text_dim
        self.queries = nn.Parameter(torch.randn(config.speech_queries, d) * 0.02)
        self.norm = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, config.n_heads, dropout=config.dropout, batch_first=True)
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d))
        self.gate = nn.Linear(d + sentence_extra(config), d)
        nn.init.normal_(self.gate.weight, std=0.01)
        nn.init.constant_(self.gate.bias, config.gate_bias)

    def forward(self, speech: torch.Tensor, speech_mask: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        """speech (B, S, d) projected tokens, mask (B, S), sentence (B, d + extra) -> (B, d), 0 without speech."""
        b = speech.shape[0]
        heard = speech_mask.any(1)
        mask = speech_mask | ~heard[:, None]  # rows without speech attend to padding, then get 0
        kv = self.norm(speech)
        a, _ = self.attn(self.queries.expand(b, -1, -1), kv, kv, key_padding_mask=~mask, need_weights=False)
        g = torch.sigmoid(self.gate(sentence))
        return self.out(a.mean(1)) * g * heard.to(speech.dtype)[:, None]


class FusionModule(nn.Module):
    """Text states + optional speech, image and OCR features -> fused heads (see the module doc)."""

    def __init__(self, config: FusionConfig, head_sizes: dict[str, int]) -> None:
        super().__init__()
        self.config = config
        d = config.text_dim
        self.speech_in = _adapter(config.speech_dim, d, config.dropout)
        self.image_in = nn.Sequential(nn.LayerNorm(config.image_dim), nn.Dropout(config.dropout),
                                      nn.Linear(config.image_dim, d * config.image_tokens))
        self.ocr_in = _adapter(d, d, config.dropout)
        self.null = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.type_embed = nn.Parameter(torch.randn(len(MODALITIES), d) * 0.02)
        self.speech_pos = nn.Parameter(torch.randn(config.max_speech_tokens, d) * 0.02)
        self.layers = nn.ModuleList([FusionLayer(config) for _ in range(config.n_layers)])
        self.heads = nn.ModuleDict({name: CosineHead(d, n) for name, n in head_sizes.items() if n > 0})
        self.kind_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, config.n_image_kinds))
        self.sentence_norm = nn.LayerNorm(d)
        self.speech_summary = SpeechSummary(config) if config.speech_queries else None
        # created last, without dropout, so that the rest of the network is initialised and trained
        # exactly as without it (its inputs are detached; its gradients are clipped on their own)
        self.router = _router(d + sentence_extra(config), config.image_dim) if config.picture_router else None
        self.routing = True  # False: the router scores pictures but leaves none out (for measuring it)

    def head_sizes(self) -> dict[str, int]:
        return {name: int(head.weight.shape[0]) for name, head in self.heads.items()}

    def _context(self, batch: FusionBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int],
                                                    tuple[torch.Tensor, torch.Tensor] | None]:
        """Context tokens (B, C, d), mask (B, C), image tokens (B, k, d), each modality's slot count,
        and the projected speech tokens (B, S, d) with their mask (None without speech)."""
        b, d, dev = batch.text.shape[0], self.config.text_dim, batch.text.device
        parts, masks, sizes = [self.null.expand(b, 1, d) + self.type_embed[0]], [torch.ones(b, 1, dtype=torch.bool, device=dev)], [1]
        image_tokens = torch.zeros(b, self.config.image_tokens, d, device=dev)
        speech_part = None
        if batch.speech is not None and batch.speech_mask is not None and self.config.use_speech:
            s = batch.speech.shape[1]
            speech = self.speech_in(batch.speech) + self.speech_pos[:s]
            speech_part = (speech, batch.speech_mask)
            parts.append(speech + self.type_embed[1])
            masks.append(batch.speech_mask)
            sizes.append(s)
        else:
            sizes.append(0)
        if batch.image is not None and batch.image_mask is not None and self.config.use_image:
            image_tokens = self.image_in(batch.image).view(b, self.config.image_tokens, d)
            parts.append(image_tokens + self.type_embed[2])
            masks.append(batch.image_mask[:, None].expand(b, self.config.image_tokens))
            sizes.append(self.config.image_tokens)
        else:
            sizes.append(0)
        if batch.ocr is not None and batch.ocr_mask is not None and self.config.use_ocr:
            parts.append(self.ocr_in(batch.ocr) + self.type_embed[3])
            masks.append(batch.ocr_mask)
            sizes.append(batch.ocr.shape[1])
        else:
            sizes.append(0)
        return torch.cat(parts, 1), torch.cat(masks, 1), image_tokens, sizes, speech_part

    def forward(self, batch: FusionBatch) -> FusionOutputs:
        check_batch(batch, self.config)
        ctx, ctx_mask, image_tokens, sizes, speech = self._context(batch)
        h, tmask = batch.text, batch.text_mask
        sentence = self._sentence(mean_pool(h, tmask), batch.asr_logprob)
        bounds = np.cumsum([0, *sizes])
        has_picture = ctx_mask[:, bounds[2]:bounds[3]].any(1)
        relevance = torch.zeros(h.shape[0], device=h.device)
        if self.router is not None and batch.image is not None and sizes[2]:
            image = self.router["image_norm"](batch.image)
            relevance = self.router["mlp"](torch.cat([sentence.detach(), image], dim=-1))[:, 0]
            relevance = torch.where(has_picture, relevance, torch.zeros_like(relevance))
            if not self.training and self.routing:  # leave out a picture judged not to matter: embedding and OCR
                keep = ~has_picture | (torch.sigmoid(relevance) >= self.config.router_threshold)
                if batch.words is not None:  # a picture sent without words is all there is: read it
                    keep = keep | ~batch.words
                ctx_mask = ctx_mask.clone()
                ctx_mask[:, bounds[2]:bounds[4]] &= keep[:, None]
        present = ctx_mask[:, 1:].any(1)
        gates, weights = [], None
        for layer in self.layers:
            h, g, weights = layer(h, ctx, ctx_mask, present, sentence)
            gates.append(g)
        pooled = mean_pool(h, tmask)
        if self.speech_summary is not None and speech is not None:
            pooled = pooled + self.speech_summary(*speech, sentence)
        gate = torch.stack([mean_pool(g.mean(-1, keepdim=True), tmask)[:, 0] for g in gates]).mean(0)
        assert weights is not None  # at least one layer
        share = mean_pool(weights, tmask)  # (B, C)
        attention = torch.stack([share[:, bounds[i]:bounds[i + 1]].sum(1) for i in range(len(sizes))], dim=1)
        return FusionOutputs(pooled=pooled, logits={name: head(pooled) for name, head in self.heads.items()},
                             image_kind=self.kind_head(image_tokens.mean(1)), gate=gate, attention=attention,
                             present=present, relevance=relevance,
                             picture_used=has_picture & ctx_mask[:, bounds[2]:bounds[3]].any(1))

    def _sentence(self, pooled: torch.Tensor, asr_logprob: torch.Tensor | None = None) -> torch.Tensor:
        """What the gate knows of the whole message: its normalised mean state, how sure the text
        model's intent head is of it (top probability, normalised entropy) and, with
        ``asr_confidence``, how sure Whisper was of the transcript (exp of the mean token
        log-probability, clamped at -3, and 1 where the text is a transcript), (B, d + extra)."""
        parts = [self.sentence_norm(pooled)]
        if "intent" in self.heads:
            p = torch.softmax(self.heads["intent"](pooled), dim=-1)
            entropy = -(p * p.clamp_min(1e-12).log()).sum(-1) / math.log(max(2, p.shape[-1]))
            parts.append(torch.stack([p.max(-1).values, entropy], dim=-1))
        else:
            parts.append(pooled.new_zeros(pooled.shape[0], 2))
        if self.config.asr_confidence:
            heard = pooled.new_zeros(pooled.shape[0], 2)
            if asr_logprob is not None:
                known = ~torch.isnan(asr_logprob)
                heard[:, 0] = torch.where(known, asr_logprob.nan_to_num(0.0).clamp(-3.0, 0.0).exp(), heard[:, 0])
                heard[:, 1] = known.to(pooled.dtype)
            parts.append(heard)
        return torch.cat(parts, dim=-1)

    @torch.no_grad()
    def copy_heads(self, text_heads: nn.ModuleDict) -> None:
        """Start from the text model's heads (same classes, same order)."""
        for name, head in self.heads.items():
            if name not in text_heads or text_heads[name].weight.shape != head.weight.shape:
                raise ValueError(f"head {name!r}: the text model has no head of shape {tuple(head.weight.shape)}")
            head.load_state_dict(text_heads[name].state_dict())


def n_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def speech_tokens_for(duration_s: float) -> int:
    """Pooled speech tokens of a clip of ``duration_s`` seconds."""
    return max(1, math.ceil(min(duration_s, 30.0) / 0.02 / SPEECH_STRIDE))


def _pad(items: list[torch.Tensor | None], width: int) -> tuple[torch.Tensor, torch.Tensor] | tuple[None, None]:
    """Rows (n_i, width) or None -> (B, max n_i, width) zero-padded and a (B, max n_i) mask."""
    if all(x is None for x in items):
        return None, None
    n = max(1, max(int(x.shape[0]) for x in items if x is not None))
    out = torch.zeros(len(items), n, width)
    mask = torch.zeros(len(items), n, dtype=torch.bool)
    for i, x in enumerate(items):
        if x is not None and x.shape[0]:
            out[i, : x.shape[0]] = x
            mask[i, : x.shape[0]] = True
    return out, mask


def pad_batch(text: list[torch.Tensor], *, speech: list[torch.Tensor | None] | None = None,
              image: list[torch.Tensor | None] | None = None, ocr: list[torch.Tensor | None] | None = None,
              asr_logprob: list[float | None] | None = None, words: list[bool] | None = None,
              config: FusionConfig) -> FusionBatch:
    """A ``FusionBatch`` from per-turn tensors: text (T_i, d), speech (S_i, speech_dim) or None,
    image (image_dim,) or None, ocr (U_i, d) or None, the transcript's mean log-probability or None,
    and whether each message had words (a picture sent alone: False)."""
    b = len(text)
    text_t, text_mask = _pad(list(text), config.text_dim)
    assert text_t is not None and text_mask is not None
    speech_t, speech_mask = _pad(list(speech or [None] * b), config.speech_dim)
    ocr_t, ocr_mask = _pad(list(ocr or [None] * b), config.text_dim)
    image_t = image_mask = None
    if image is not None and any(x is not None for x in image):
        image_t = torch.stack([x if x is not None else torch.zeros(config.image_dim) for x in image])
        image_mask = torch.tensor([x is not None for x in image], dtype=torch.bool)
    lp = None
    if asr_logprob is not None and any(x is not None for x in asr_logprob):
        lp = torch.tensor([float("nan") if x is None else min(0.0, float(x)) for x in asr_logprob], dtype=torch.float32)
    return FusionBatch(text=text_t, text_mask=text_mask, speech=speech_t, speech_mask=speech_mask,
                       image=image_t, image_mask=image_mask, ocr=ocr_t, ocr_mask=ocr_mask, asr_logprob=lp,
                       words=torch.tensor(words, dtype=torch.bool) if words is not None and not all(words) else None)
