"""``FusionModel``: the learned fusion at run time, its directory format, and ``load_fusion_model``.

A voice or image turn is understood from the text model's token states of what was typed or
heard, Whisper's encoder features, the picture's embedding and the token states of the text read
in the picture, fused by ``models.fusion_layers.FusionModule``. Fallbacks, by design:

- no encoder features on the transcript, or no embedding on the picture: that modality is left
  out (the others are used); with nothing but text the answer equals the text model's;
- a picture with no text: the picture (embedding and OCR) is read with an empty message (the
  training set has such turns);
- a picture the router judges irrelevant to the message: left out (embedding and OCR), and the
  answer's ``picture_used`` is False;
- features of the wrong shape, dtype or values: ``InvalidInput`` naming what was expected; the
  runtime then answers from the text path.

Directory: ``fusion.safetensors`` (the fusion network with its heads), ``fusion.json`` (written
last: configuration, classes, temperature, which text model it reads and that model's sha256),
``text/`` (only when the text model was fine-tuned with the fusion), ``metrics.json`` and reports.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import shutil
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import softmax

from agent.errors import DependencyUnavailable, InvalidInput
from agent.messages import (
    EMOTIONS,
    IMAGE_KINDS,
    SENTIMENTS,
    ImageAnalysis,
    IntentScore,
    NluResult,
    Transcript,
)
from models.finetune import collate
from models.fusion_layers import (
    MAX_ENCODER_FRAMES,
    MODALITIES,
    FusionConfig,
    FusionModule,
    pad_batch,
    pool_frames,
)
from models.nlu import RANKING_SIZE, NluModel

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
META_FILE = "fusion.json"
WEIGHTS_FILE = "fusion.safetensors"
TEXT_DIR = "text"
OCR_MAX_TOKENS = 96
MAX_OCR_CHARS = 2_000
OOS = "oos"


@dataclass(frozen=True, slots=True, kw_only=True)
class FusionTurn:
    """What the fusion network reads of one turn (checked)."""

    text: str  # typed or transcribed; "" when a picture came alone
    speech: np.ndarray | None = None  # pooled encoder frames, float32 (S, speech_dim)
    image: np.ndarray | None = None  # picture embedding, float32 (image_dim,)
    ocr_text: str = ""
    asr_logprob: float | None = None  # Whisper's mean token log-probability when ``text`` is a transcript


@dataclass(frozen=True, slots=True, kw_only=True)
class FusionReading:
    """The fused understanding of a turn, with what it leaned on."""

    nlu: NluResult
    image_kind: str | None  # the fusion's image-kind head; None without a picture
    image_kind_confidence: float
    gate: float  # mean gate: 0 = text alone, 1 = fully open
    attention: tuple[tuple[str, float], ...]  # share of attention on null / speech / image / ocr
    # the picture router's probability that the picture matters; None without a picture or router
    # (whether the picture was read is ``nlu.picture_used``)
    picture_relevance: float | None = None


def _array(value: Any, what: str, shape: tuple[int | None, ...], *, max_rows: int | None = None) -> np.ndarray:
    """A finite float32 array of ``shape`` (None: any length), else InvalidInput."""
    if not isinstance(value, np.ndarray):
        raise InvalidInput(f"{what}: expected a numpy array, got {type(value).__name__}")
    if value.dtype not in (np.float32, np.float16):
        raise InvalidInput(f"{what}: expected dtype float32 or float16, got {value.dtype}")
    want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
    if value.ndim != len(shape) or any(s is not None and s != v for s, v in zip(shape, value.shape)):
        raise InvalidInput(f"{what}: expected shape {want}, got {tuple(value.shape)}")
    if value.size == 0 or (max_rows is not None and value.shape[0] > max_rows):
        raise InvalidInput(f"{what}: expected 1 to {max_rows} rows, got {value.shape[0]}")
    x = value.astype(np.float32)
    if not np.isfinite(x).all():
        raise InvalidInput(f"{what}: expected finite values, got NaN or infinity")
    return x


class FusionModel:
    """Text model + fusion network. ``understand`` is what the runtime calls for voice and image turns."""

    def __init__(self, text_model: NluModel, module: FusionModule, meta: dict[str, Any]) -> None:
        self.text = text_model
        self.module = module.eval()
        self.meta = meta
        self.config: FusionConfig = module.config
        self.intent_classes: tuple[str, ...] = tuple(meta["intent_classes"])
        if self.intent_classes != tuple(text_model.intent_classes):
            raise DependencyUnavailable("fusion model: its intent classes differ from the text model's; retrain it")
        self._in_scope = [i for i, name in enumerate(self.intent_classes) if name != OOS]
        self.labels = tuple(self.intent_classes[i] for i in self._in_scope)
        self.temperature = float(meta.get("temperature", 1.0))
        self._lock = threading.Lock()

    # --- inputs -------------------------------------------------------------------------------

    def turn(self, *, text: str, transcript: Transcript | None = None, image: ImageAnalysis | None = None) -> FusionTurn:
        """Checks and converts the runtime's values; InvalidInput saying what was expected."""
        if not isinstance(text, str):
            raise InvalidInput(f"fusion text: expected a string, got {type(text).__name__}")
        if transcript is not None and not isinstance(transcript, Transcript):
            raise InvalidInput(f"fusion transcript: expected a Transcript, got {type(transcript).__name__}")
        if image is not None and not isinstance(image, ImageAnalysis):
            raise InvalidInput(f"fusion image: expected an ImageAnalysis, got {type(image).__name__}")
        speech = None
        if transcript is not None and transcript.features is not None:
            frames = _array(transcript.features, "transcript features", (None, self.config.speech_dim),
                            max_rows=MAX_ENCODER_FRAMES)
            speech = pool_frames(frames)
        embedding, ocr_text = None, ""
        if image is not None:
            if image.embedding is not None:
                embedding = _array(image.embedding, "image embedding", (self.config.image_dim,))
            ocr_text = image.ocr_text[:MAX_OCR_CHARS].strip()
        if not text.strip() and image is None and speech is None:
            raise InvalidInput("fusion: expected text, a transcript with features or an image; got none of them")
        logprob = None
        if transcript is not None:
            logprob = float(transcript.avg_logprob)
            if math.isnan(logprob):
                raise InvalidInput("fusion transcript: expected a finite avg_logprob, got NaN")
            logprob = max(-10.0, min(0.0, logprob))
        return FusionTurn(text=text.strip(), speech=speech, image=embedding, ocr_text=ocr_text, asr_logprob=logprob)

    # --- inference ------------------------------------------------------------------------------

    def text_states(self, texts: Sequence[str], *, max_len: int) -> list[torch.Tensor]:
        """The text model's last hidden states of each text, (T_i, d) float32 (\"\" -> [CLS] [SEP])."""
        with self._lock:
            ids = self.text.tokenizer(list(texts), truncation=True, max_length=max_len)["input_ids"] if texts else []
        out: list[torch.Tensor] = [torch.zeros(0)] * len(ids)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        encoder = self.text.module.encoder
        with torch.inference_mode():
            for start in range(0, len(order), 64):
                idx = order[start : start + 64]
                input_ids, mask = collate([ids[i] for i in idx])
                hidden = encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()
                for row, i in enumerate(idx):
                    out[i] = hidden[row, : len(ids[i])].clone()
        return out

    def forward(self, turns: Sequence[FusionTurn]) -> dict[str, np.ndarray]:
        """Logits per head, image-kind logits, gate and attention shares, (n, ...) float32, in order."""
        text = self.text_states([t.text for t in turns], max_len=self.text.max_seq_len)
        ocr_texts = [t.ocr_text for t in turns if t.ocr_text]
        ocr_states = iter(self.text_states(ocr_texts, max_len=OCR_MAX_TOKENS))
        ocr = [next(ocr_states) if t.ocr_text else None for t in turns]
        speech = [torch.from_numpy(t.speech) if t.speech is not None else None for t in turns]
        image = [torch.from_numpy(t.image) if t.image is not None else None for t in turns]
        batch = pad_batch(text, speech=speech, image=image, ocr=ocr, asr_logprob=[t.asr_logprob for t in turns],
                          words=[bool(t.text.strip()) for t in turns],
                          config=self.config)
        with torch.inference_mode():
            out = self.module(batch)
        result = {name: z.numpy() for name, z in out.logits.items()}
        result.update(image_kind=out.image_kind.numpy(), gate=out.gate.numpy(), attention=out.attention.numpy(),
                      pooled=out.pooled.numpy(), present=out.present.numpy(),
                      relevance=torch.sigmoid(out.relevance).numpy(), picture_used=out.picture_used.numpy(),
                      text_pooled=torch.stack([t.mean(0) for t in text]).numpy())
        return result

    def results(self, out: dict[str, np.ndarray]) -> list[NluResult]:
        """NluResults from ``forward``'s output. Intent temperature: the fusion's (fitted on validation),
        or the text model's for a turn with nothing but text, whose answer is then the text model's."""
        present = out.get("present", np.ones(len(out["intent"]), dtype=bool))
        temperature = np.where(present, self.temperature, self.text.temperatures.get("intent", 1.0))[:, None]
        p = softmax(out["intent"] / temperature, axis=-1)[:, self._in_scope]
        # out-of-scope: the fused intent logits and, for a neighbour method, the text model's own
        # embedding of the turn's words (the space its training-message bank lives in)
        oos = self.text.oos_scores(out["intent"], out.get("text_pooled"))
        sent = self.text.probabilities("sentiment", out["sentiment"]) if "sentiment" in out else None
        emo = self.text.probabilities("emotion", out["emotion"]) if "emotion" in out else None
        results = []
        for i in range(len(p)):
            top = np.argsort(-p[i])[:RANKING_SIZE]
            ranking = tuple(IntentScore(intent=self.labels[j], confidence=float(p[i, j])) for j in top)
            fields: dict[str, Any] = {"intent": ranking[0].intent, "confidence": ranking[0].confidence,
                                      "ranking": ranking, "oos_score": float(oos[i]), "path": "fusion"}
            if sent is not None:
                fields.update(sentiment=SENTIMENTS[int(sent[i].argmax())],
                              sentiment_score=float(np.clip(sent[i, 2] - sent[i, 0], -1.0, 1.0)))
            if emo is not None:
                fields.update(emotion=EMOTIONS[int(emo[i].argmax())], emotion_confidence=float(emo[i].max()))
            results.append(NluResult(**fields))
        return results

    def read(self, *, text: str, transcript: Transcript | None = None, image: ImageAnalysis | None = None) -> FusionReading:
        turn = self.turn(text=text, transcript=transcript, image=image)
        out = self.forward([turn])
        kind_p = softmax(out["image_kind"][0])
        nlu = self.results(out)[0]
        if turn.image is not None:
            nlu = dataclasses.replace(nlu, picture_used=bool(out["picture_used"][0]))
        return FusionReading(
            nlu=nlu,
            image_kind=IMAGE_KINDS[int(kind_p.argmax())] if turn.image is not None else None,
            image_kind_confidence=float(kind_p.max()) if turn.image is not None else 0.0,
            gate=float(out["gate"][0]),
            attention=tuple((name, round(float(v), 4)) for name, v in zip(MODALITIES, out["attention"][0])),
            picture_relevance=float(out["relevance"][0]) if turn.image is not None and self.module.router is not None
            else None)

    def understand(self, *, text: str, transcript: Transcript | None = None,
                   image: ImageAnalysis | None = None) -> NluResult:
        """Intent, confidence, sentiment and emotion of a voice or image turn (``path="fusion"``)."""
        return self.read(text=text, transcript=transcript, image=image).nlu

    # --- saving and loading --------------------------------------------------------------------

    def save_pretrained(self, path: Path, *, text_trained: bool, text_model_dir: Path | None,
                        extra: dict[str, Path | str | dict[str, Any]] | None = None) -> None:
        """Write the directory atomically. ``text_trained``: also save the (fine-tuned) text model;
        else record ``text_model_dir`` and the sha256 of its weights. ``extra``: reports to add
        (file name -> source path, text, or JSON-able dict)."""
        from safetensors.torch import save_file

        from models.artifacts import atomic_dir, write_json

        meta = dict(self.meta)
        with atomic_dir(Path(path), meta_file=META_FILE, what="fusion model directory") as tmp:
            state = {k: v.detach().contiguous().cpu() for k, v in self.module.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_FILE))
            if text_trained:
                self.text.write_to(tmp / TEXT_DIR)
                meta["text_model"] = {"embedded": True, "sha256": weights_sha256(tmp / TEXT_DIR)}
            else:
                if text_model_dir is None:
                    raise InvalidInput("save_pretrained: text_model_dir is needed when the text model was not trained")
                meta["text_model"] = {"embedded": False, "path": str(Path(text_model_dir).resolve()),
                                      "sha256": weights_sha256(Path(text_model_dir))}
            for name, value in (extra or {}).items():
                if isinstance(value, Path):
                    shutil.copyfile(value, tmp / name)
                elif isinstance(value, dict):
                    write_json(tmp / name, value)
                else:
                    (tmp / name).write_text(str(value), encoding="utf-8")
            write_json(tmp / META_FILE, meta)
        self.meta = meta

    @classmethod
    def from_pretrained(cls, path: Path, *, text_model: NluModel | None = None, device: str = "cpu") -> FusionModel:
        """Load a directory; ``text_model`` must be the one it was trained over (checked by the caller
        with ``text_model_dir``), or None to load the embedded / recorded one."""
        from safetensors.torch import load_file

        path = Path(path)
        meta = read_meta(path)
        if text_model is None:
            text_model = NluModel.from_pretrained(text_dir_of(path, meta), device=device)
        # models saved before these options were added have neither
        config = FusionConfig(**{"asr_confidence": False, "picture_router": False, **meta["config"]})
        module = FusionModule(config, {k: int(v) for k, v in meta["head_sizes"].items()})
        module.load_state_dict(load_file(str(path / WEIGHTS_FILE)), strict=True)
        return cls(text_model, module.to(device), meta)


def weights_sha256(model_dir: Path) -> str:
    """sha256 of a text model directory's ``model.safetensors``: names the exact weights fused over."""
    digest = hashlib.sha256()
    with open(Path(model_dir) / "model.safetensors", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_meta(path: Path) -> dict[str, Any]:
    meta_path = Path(path) / META_FILE
    if not meta_path.is_file():
        raise DependencyUnavailable(f"fusion model {path}: {META_FILE} not found; expected a directory written by "
                                    "`agent train --task fusion`")
    meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT_VERSION:
        raise DependencyUnavailable(f"fusion model {path}: format {meta.get('format')!r}, expected {FORMAT_VERSION}; retrain it")
    return meta


def text_dir_of(path: Path, meta: dict[str, Any]) -> Path:
    info = meta["text_model"]
    return Path(path) / TEXT_DIR if info["embedded"] else Path(info["path"])


def build_meta(*, config: FusionConfig, intent_classes: Sequence[str], head_sizes: dict[str, int], temperature: float,
               training: dict[str, Any], image_encoder: str, asr_model: str) -> dict[str, Any]:
    return {"format": FORMAT_VERSION, "config": asdict(config), "intent_classes": list(intent_classes),
            "head_sizes": head_sizes, "temperature": temperature, "ocr_max_tokens": OCR_MAX_TOKENS,
            "image_encoder": image_encoder, "asr_model": asr_model, "training": training}


def load_fusion_model(config: Any) -> FusionModel | None:
    """The trained fusion model the configuration names (``nlu.fusion_dir``, else
    ``<nlu.cache_dir>/fusion`` when one was trained there), or None when there is none. None, with
    a warning, when it was trained over another text model, image encoder or Whisper model than the
    runtime uses: voice and image turns then take the text path."""
    nlu = config.nlu
    configured = getattr(nlu, "fusion_dir", None)
    path = Path(configured) if configured is not None else Path(nlu.cache_dir) / "fusion"
    if configured is None and not (path / META_FILE).is_file():
        return None
    try:
        return _load_checked(config, path)
    except DependencyUnavailable:
        if configured is not None:  # asked for by name: fail loudly
            raise
        log.warning("the fusion model in %s could not be loaded; voice and image turns use the text path", path,
                    exc_info=True)
        return None


def _load_checked(config: Any, path: Path) -> FusionModel | None:
    from models.default_model import ensure_default_model

    nlu = config.nlu
    meta = read_meta(path)
    if meta["image_encoder"] != config.vision.encoder or meta["asr_model"] != config.asr.model_name:
        log.warning("fusion model %s was trained on %s / Whisper %s features; the runtime uses %s / %s: voice and "
                    "image turns use the text path", path, meta["image_encoder"], meta["asr_model"],
                    config.vision.encoder, config.asr.model_name)
        return None
    if meta["text_model"]["embedded"]:
        text_dir = path / TEXT_DIR
    else:
        text_dir = Path(nlu.model_dir) if nlu.model_dir is not None else ensure_default_model(
            config.domain.path, nlu.cache_dir, progress=False)
        if weights_sha256(text_dir) != meta["text_model"]["sha256"]:
            log.warning("fusion model %s was trained over another text model than %s: voice and image turns use "
                        "the text path (retrain with `agent train --task fusion`)", path, text_dir)
            return None
    text_model = NluModel.from_pretrained(text_dir, device=nlu.device, max_seq_len=nlu.max_seq_len)
    log.info("fusion model loaded from %s", path)
    return FusionModel.from_pretrained(path, text_model=text_model, device=nlu.device)
