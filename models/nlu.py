"""``NluModel``: the fine-tuned text model at run time, and its directory format.

One forward pass of the multi-head model gives the intent ranking (temperature-calibrated), the
out-of-scope score, sentiment (+ score in [-1, 1]), emotion and the sentence embedding.

A model directory holds ``model.safetensors`` (all weights), ``config.json`` (encoder), the
tokenizer files, ``nlu.json`` (label maps, temperatures, out-of-scope calibration and threshold,
training config, sha256 of the training data; written last, it marks the directory complete),
``metrics.json``, with the ``msp+knn`` out-of-scope method ``oos_bank.npy`` (the in-scope training
messages' embeddings, float16, L2-normalised) and ``oos_bank_int8.npy`` (the same from the int8
model, with its own calibration ``oos_int8`` in ``nlu.json``, used when the model is loaded
quantized) and, after training, reports and PNGs.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import softmax

from agent.errors import DependencyUnavailable, InvalidInput
from agent.messages import EMOTIONS, SENTIMENTS, IntentScore, NluResult
from models.artifacts import META_FILE, atomic_dir, write_json
from models.calibration import OosCalibration, needs_neighbours, neighbour_distance, oos_raw
from models.datasets import OOS_LABEL
from models.finetune import collate
from models.text_encoder import MultiHeadTextModel

FORMAT_VERSION = 1
CODE_VERSION = "nlu-2026.1"  # part of the default model's cache key: bump when training changes
RANKING_SIZE = 5
INFER_BATCH = 64
BANK_FILE = "oos_bank.npy"
BANK_FILE_INT8 = "oos_bank_int8.npy"  # the same messages embedded by the int8 model


class NluModel:
    """Intent, calibrated confidence, out-of-scope score, sentiment, emotion and embedding."""

    labels: tuple[str, ...]  # intent labels, without ``oos``
    oos_threshold: float

    def __init__(self, model: MultiHeadTextModel, tokenizer: Any, meta: dict[str, Any], *,
                 max_seq_len: int = 64, quantized: bool = False, oos_bank: np.ndarray | None = None,
                 oos_bank_int8: np.ndarray | None = None) -> None:
        self._model = model.eval()
        self._tokenizer = tokenizer
        self._tokenizer_lock = threading.Lock()  # a fast tokenizer is not safe to call from two threads
        self._device = next(iter(model.parameters()), torch.zeros(0)).device
        self.meta = meta
        self.max_seq_len = max_seq_len
        self.quantized = quantized
        heads = meta["heads"]
        self._intents: tuple[str, ...] = tuple(heads.get("intent", ()))
        self.intent_classes = self._intents  # the intent head's classes, ``oos`` included if trained
        self._oos_index = self._intents.index(OOS_LABEL) if OOS_LABEL in self._intents else None
        self._in_scope = [i for i, name in enumerate(self._intents) if name != OOS_LABEL]
        self.labels = tuple(self._intents[i] for i in self._in_scope)
        self.temperatures: dict[str, float] = {k: float(v) for k, v in meta.get("temperatures", {}).items()}
        oos = meta.get("oos")
        self.oos = OosCalibration(**oos) if oos else None
        self.oos_threshold = float(meta.get("oos_threshold", 1.0))
        # msp+knn: the training messages' unit embeddings (fp32 model's, int8 model's) and the one in use
        self.oos_bank = _checked_bank(oos_bank, model.dim, BANK_FILE)
        self.oos_bank_int8 = _checked_bank(oos_bank_int8, model.dim, BANK_FILE_INT8)
        self._bank: np.ndarray | None = None
        if self._uses_bank:
            self._bank = self.oos_bank
            if quantized and meta.get("oos_int8") and self.oos_bank_int8 is not None:
                self.oos, self._bank = OosCalibration(**meta["oos_int8"]), self.oos_bank_int8
            if self._bank is None:
                raise DependencyUnavailable(f"out-of-scope method {self.oos.method!r} needs the in-scope "  # type: ignore[union-attr]
                                            f"training embeddings ({BANK_FILE}, (m, {model.dim})); got none")

    @property
    def _uses_bank(self) -> bool:
        return self.oos is not None and self._oos_index is None and needs_neighbours(self.oos.method)

    # --- loading and saving -----------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str = "cpu", quantize: bool = False,
                        max_seq_len: int = 64) -> NluModel:
        """Load a model directory. ``quantize``: dynamic int8 for the Linear layers (CPU only)."""
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModel

        from models.text_encoder import load_tokenizer

        path = Path(path)
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise DependencyUnavailable(f"model directory {path}: {META_FILE} not found; expected a "
                                        "directory written by `agent train` (or save_pretrained)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT_VERSION:
            raise DependencyUnavailable(f"model directory {path}: format {meta.get('format')!r}, "
                                        f"expected {FORMAT_VERSION}; retrain the model")
        if not 8 <= max_seq_len <= 512:
            raise InvalidInput(f"max_seq_len must be in [8, 512], got {max_seq_len}")
        encoder = AutoModel.from_config(AutoConfig.from_pretrained(str(path)))
        sizes = {name: len(labels) for name, labels in meta["heads"].items()}
        model = MultiHeadTextModel(encoder, head_sizes=sizes, dropout=float(meta.get("dropout", 0.1)))
        model.load_state_dict(load_file(str(path / "model.safetensors")), strict=True)
        model.eval()
        if quantize:
            if device != "cpu":
                raise InvalidInput(f"quantize=True needs device 'cpu', got {device!r}")
            model = quantize_int8(model)
        model.to(device)
        banks = {}
        if needs_neighbours(str((meta.get("oos") or {}).get("method", ""))):
            banks = {name: np.load(path / name, allow_pickle=False) for name in (BANK_FILE, BANK_FILE_INT8)
                     if (path / name).is_file()}
        return cls(model, load_tokenizer(path), meta, max_seq_len=max_seq_len, quantized=quantize,
                   oos_bank=banks.get(BANK_FILE), oos_bank_int8=banks.get(BANK_FILE_INT8))

    def save_pretrained(self, path: str | Path) -> None:
        """Write the model directory atomically (a temporary sibling renamed at the end)."""
        with atomic_dir(Path(path)) as tmp:
            self.write_to(tmp)

    def write_to(self, directory: Path, *, metrics: dict[str, Any] | None = None) -> None:
        """Weights, encoder config, tokenizer, metrics, then ``nlu.json`` last."""
        from safetensors.torch import save_file

        if self.quantized:
            raise InvalidInput("a quantized model cannot be saved; save the fp32 model and quantize at load")
        state = {k: v.detach().contiguous().cpu() for k, v in self._model.state_dict().items()}
        save_file(state, str(directory / "model.safetensors"))
        self._model.encoder.config.to_json_file(str(directory / "config.json"))
        self._tokenizer.save_pretrained(str(directory))
        if metrics is not None:
            write_json(directory / "metrics.json", metrics)
        for name, bank in ((BANK_FILE, self.oos_bank), (BANK_FILE_INT8, self.oos_bank_int8)):
            if bank is not None:
                np.save(directory / name, bank.astype(np.float16), allow_pickle=False)
        write_json(directory / META_FILE, self.meta)

    # --- inference --------------------------------------------------------------------------

    @property
    def module(self) -> MultiHeadTextModel:
        return self._model

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def _check(self, texts: Sequence[str]) -> None:
        if isinstance(texts, str):
            raise InvalidInput("texts: expected a sequence of strings, got one string")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                got = type(text).__name__ if not isinstance(text, str) else "an empty string"
                raise InvalidInput(f"text #{i}: expected a non-empty string, got {got}")

    def forward(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Raw logits per head and pooled embeddings, (n, C) / (n, d) float32, in input order."""
        self._check(texts)
        with self._tokenizer_lock:
            ids = self._tokenizer(list(texts), truncation=True, max_length=self.max_seq_len)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i])) if len(ids) > 1 else [0]
        parts: dict[str, list[np.ndarray]] = {}
        with torch.inference_mode():
            for start in range(0, len(order), INFER_BATCH):
                idx = order[start : start + INFER_BATCH]
                input_ids, mask = collate([ids[i] for i in idx])
                out = self._model(input_ids.to(self._device), mask.to(self._device))
                for name in ("pooled", *self._model.heads.keys()):
                    parts.setdefault(name, []).append(getattr(out, name).float().cpu().numpy())
        inverse = np.argsort(np.array(order))
        return {name: np.concatenate(chunks)[inverse] for name, chunks in parts.items()}

    def probabilities(self, head: str, logits: np.ndarray) -> np.ndarray:
        return softmax(logits / self.temperatures.get(head, 1.0), axis=-1)

    def oos_scores(self, intent_logits: np.ndarray, pooled: np.ndarray | None = None) -> np.ndarray:
        """(n, C) intent logits (and, for ``msp+knn``, the (n, d) pooled embeddings of the same
        messages) -> (n,) out-of-scope scores in [0, 1]."""
        if self.oos is None:
            return np.zeros(len(intent_logits))
        distance = None
        if self._bank is not None:
            if pooled is None or len(pooled) != len(intent_logits):
                raise ValueError(f"out-of-scope method {self.oos.method!r}: expected the pooled embeddings "
                                 f"of the {len(intent_logits)} messages, got "
                                 f"{'none' if pooled is None else len(pooled)}")
            distance = neighbour_distance(pooled, self._bank, unit_bank=True)
        raw = oos_raw(intent_logits, temperature=self.temperatures.get("intent", 1.0),
                      method=self.oos.method, oos_index=self._oos_index, distance=distance,
                      standardise=self.oos.standardise)
        return self.oos.score(raw)

    def _results(self, out: dict[str, np.ndarray]) -> list[NluResult]:
        n = len(out["pooled"])
        intent_p = self.probabilities("intent", out["intent"]) if "intent" in out else None
        oos = self.oos_scores(out["intent"], out["pooled"]) if "intent" in out else np.ones(n)
        sent_p = self.probabilities("sentiment", out["sentiment"]) if "sentiment" in out else None
        emo_p = self.probabilities("emotion", out["emotion"]) if "emotion" in out else None
        results = []
        for i in range(n):
            fields: dict[str, Any] = {"intent": OOS_LABEL, "confidence": 0.0, "oos_score": float(oos[i])}
            if intent_p is not None and self._in_scope:
                p = intent_p[i, self._in_scope]
                top = np.argsort(-p)[:RANKING_SIZE]
                ranking = tuple(IntentScore(intent=self.labels[j], confidence=float(p[j])) for j in top)
                fields.update(intent=ranking[0].intent, confidence=ranking[0].confidence, ranking=ranking)
            if sent_p is not None:
                s = sent_p[i]
                fields.update(sentiment=SENTIMENTS[int(s.argmax())],
                              sentiment_score=float(np.clip(s[2] - s[0], -1.0, 1.0)))
            if emo_p is not None:
                fields.update(emotion=EMOTIONS[int(emo_p[i].argmax())], emotion_confidence=float(emo_p[i].max()))
            results.append(NluResult(**fields))
        return results

    def understand(self, text: str) -> NluResult:
        """One message -> NluResult (entities empty; the runtime adds them)."""
        return self._results(self.forward([text]))[0]

    def understand_with_embedding(self, text: str) -> tuple[NluResult, np.ndarray]:
        """NluResult and the (d,) float32 L2-normalised sentence embedding, from one forward pass."""
        out = self.forward([text])
        return self._results(out)[0], _normalise(out["pooled"])[0]

    def understand_batch(self, texts: Sequence[str]) -> list[NluResult]:
        return self._results(self.forward(texts)) if len(texts) else []

    def understand_batch_with_embeddings(self, texts: Sequence[str]) -> list[tuple[NluResult, np.ndarray]]:
        """Several messages in one forward pass: (NluResult, L2-normalised embedding) per message."""
        if len(texts) == 0:
            return []
        out = self.forward(texts)
        return list(zip(self._results(out), _normalise(out["pooled"])))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, d) float32 L2-normalised sentence embeddings (the knowledge base's space)."""
        if len(texts) == 0:
            return np.zeros((0, self._model.dim), dtype=np.float32)
        return _normalise(self.forward(texts)["pooled"])


def quantize_int8(model: MultiHeadTextModel) -> MultiHeadTextModel:
    """A copy of ``model`` with dynamic int8 quantisation of its Linear layers (CPU)."""
    with warnings.catch_warnings():  # torch 2.14 announces the quantized-tensor API's future removal
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*", category=UserWarning)
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)  # type: ignore[no-any-return]


def _checked_bank(bank: np.ndarray | None, dim: int, name: str) -> np.ndarray | None:
    if bank is None:
        return None
    if bank.ndim != 2 or bank.shape[1] != dim or len(bank) < 1:
        raise DependencyUnavailable(f"{name}: expected the training messages' embeddings, shape (m, {dim}); "
                                    f"got {tuple(bank.shape)}")
    return _normalise(bank.astype(np.float32))


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def build_meta(*, heads: dict[str, tuple[str, ...]], temperatures: dict[str, float],
               oos: OosCalibration | None, training: dict[str, Any], dropout: float,
               max_seq_len: int, oos_int8: OosCalibration | None = None) -> dict[str, Any]:
    """The ``nlu.json`` contents."""
    from models.text_encoder import BASE_MODEL_NAME

    return {
        "format": FORMAT_VERSION,
        "code_version": CODE_VERSION,
        "base_model": BASE_MODEL_NAME,
        "heads": {k: list(v) for k, v in heads.items()},
        "sentiment_labels": list(SENTIMENTS),
        "emotion_labels": list(EMOTIONS),
        "temperatures": temperatures,
        "oos": oos.to_dict() if oos else None,
        "oos_threshold": oos.threshold if oos else 1.0,
        **({"oos_int8": oos_int8.to_dict()} if oos_int8 else {}),
        "dropout": dropout,
        "max_seq_len": max_seq_len,
        "embedding": "mean-pooled last layer of the fine-tuned encoder, L2-normalised",
        "training": training,
    }
