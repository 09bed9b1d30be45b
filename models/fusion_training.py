"""Training the fusion model: ``agent train --task fusion`` calls ``train_fusion_from_config``.

Steps: find the text model (``nlu.model_dir`` or the default model), load or build the multimodal
set (``models.multimodal_data``; cached under ``<nlu.cache_dir>/multimodal`` unless ``data``
names a directory), train the fusion network with early stopping on validation macro-F1
(``models.fusion_fit``), fit the intent temperature on validation, evaluate on the held-out
split by kind of turn next to the text model alone, and write the model directory atomically
with the same reports as the text model (``report.txt``, ``report.json``, ``training_curves.png``,
``confusion.png``, ``metrics.json``).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import tempfile
from pathlib import Path
from typing import Any

import torch

from models.fusion import FusionModel
from models.fusion_eval import baselines, by_kind, picture_router_use
from models.fusion_fit import (
    FusionTrainConfig,
    Prepared,
    TextStates,
    calibrate,
    fit,
    intents_of,
    new_fusion,
    predict,
    prepare,
    set_teacher,
    set_typed_targets,
    summary,
)
from models.fusion_layers import FusionConfig
from models.multimodal_data import MultimodalSet, SetConfig, ensure_set
from models.nlu import NluModel

log = logging.getLogger(__name__)


def train_fusion(data: MultimodalSet, text_model: NluModel, *, text_model_dir: Path | None, out_dir: Path | None,
                 train_config: FusionTrainConfig | None = None, fusion_config: FusionConfig | None = None,
                 image_encoder: str = "efficientnet-lite0", asr_model: str = "tiny.en",
                 progress: bool = True) -> tuple[FusionModel, dict[str, Any]]:
    """Train on ``data``'s train split (early stopping on val), evaluate on test; save to ``out_dir``
    when given. Returns the model and its metrics."""
    cfg = train_config or FusionTrainConfig()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    fusion = new_fusion(text_model, fusion_config or FusionConfig(), image_encoder=image_encoder, asr_model=asr_model)
    train_examples = data.split("train")
    if cfg.max_examples is not None and cfg.max_examples < len(train_examples):
        train_examples = random.Random(cfg.seed).sample(train_examples, cfg.max_examples)
    classes = fusion.intent_classes
    train, val, test = (prepare(data, ex, classes) for ex in (train_examples, data.split("val"), data.split("test")))
    states = TextStates(fusion, trainable=cfg.finetune_text)
    set_teacher(fusion, states, train)
    if cfg.typed_pool_weight > 0:
        set_typed_targets(fusion, states, train)
    result = fit(fusion, states, train, val, cfg, progress=progress)
    fusion.temperature = calibrate(fusion, states, val)
    metrics, predicted = _metrics(fusion, states, data, train, val, test, result, cfg)
    fusion.meta = {**fusion.meta, "temperature": fusion.temperature,
                   "training": {"config": dataclasses.asdict(cfg), "set": str(data.path), "set_manifest": data.manifest,
                                "best_epoch": result["best_epoch"], "text_finetuned": cfg.finetune_text}}
    if out_dir is not None:
        _save(fusion, Path(out_dir), metrics, test, predicted, text_model_dir=text_model_dir, cfg=cfg)
    return fusion, metrics


def _metrics(fusion: FusionModel, states: TextStates, data: MultimodalSet, train: Prepared, val: Prepared,
             test: Prepared, result: dict[str, Any], cfg: FusionTrainConfig) -> tuple[dict[str, Any], list[str]]:
    out = predict(fusion, states, test)
    predicted = intents_of(fusion, out["intent"])
    text_alone = baselines(fusion.text, test.examples, data)["text"]
    fused, alone = by_kind(test.examples, predicted), by_kind(test.examples, text_alone)
    return {"task": "fusion", "sizes": {"train": len(train), "val": len(val), "test": len(test)},
            "best_epoch": result["best_epoch"], "epochs_run": len(result["history"]),
            "stopped_early": result["stopped_early"], "train_seconds": result["train_seconds"],
            "temperature": fusion.temperature, "history": result["history"],
            "test": {"fusion": fused, "text_alone": alone}, "test_accuracy": fused["all"]["accuracy"],
            "text_alone_test_accuracy": alone["all"]["accuracy"],
            "pictures_read": picture_router_use(test.examples, out), **summary(fusion, cfg)}, predicted


def _save(fusion: FusionModel, out_dir: Path, metrics: dict[str, Any], test: Prepared, predicted: list[str], *,
          text_model_dir: Path | None, cfg: FusionTrainConfig) -> None:
    from models.reports import classification_report, plot_confusion, plot_training_curves

    truth = [ex.intent for ex in test.examples]
    with tempfile.TemporaryDirectory() as tmp:
        reports: dict[str, Any] = {"metrics.json": metrics}
        if truth:
            text, report = classification_report(truth, predicted, sorted(set(truth) | set(predicted)))
            reports.update({"report.txt": text, "report.json": report})
            metrics["confused_labels"] = plot_confusion(truth, predicted, Path(tmp) / "confusion.png")
            reports["confusion.png"] = Path(tmp) / "confusion.png"
        if metrics["history"]:
            plot_training_curves(metrics["history"], Path(tmp) / "training_curves.png")
            reports["training_curves.png"] = Path(tmp) / "training_curves.png"
        fusion.save_pretrained(out_dir, text_trained=cfg.finetune_text, text_model_dir=text_model_dir, extra=reports)


def train_fusion_from_config(config: Any, *, out_dir: Path, seed: int = 0, epochs: int | None = None,
                             batch_size: int | None = None, lr: float | None = None, max_examples: int | None = None,
                             data: Path | None = None, set_config: SetConfig | None = None,
                             train_config: FusionTrainConfig | None = None,
                             fusion_config: FusionConfig | None = None, progress: bool = True) -> dict[str, Any]:
    """What ``agent train --task fusion`` runs. ``data``: the multimodal set directory (built there
    when absent); default ``<nlu.cache_dir>/multimodal``. Returns the metrics."""
    from models.default_model import ensure_default_model

    overrides = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size, "lr": lr,
                                   "max_examples": max_examples}.items() if v is not None}
    cfg = dataclasses.replace(train_config or FusionTrainConfig(), seed=seed, **overrides)
    nlu = config.nlu
    text_dir = Path(nlu.model_dir) if nlu.model_dir is not None else ensure_default_model(
        config.domain.path, nlu.cache_dir, progress=progress)
    set_dir = Path(data) if data is not None else Path(nlu.cache_dir) / "multimodal"
    dataset = ensure_set(set_dir, config, set_config=set_config)
    text_model = NluModel.from_pretrained(text_dir, device="cpu", max_seq_len=nlu.max_seq_len)
    _, metrics = train_fusion(dataset, text_model, text_model_dir=text_dir, out_dir=Path(out_dir), train_config=cfg,
                              fusion_config=fusion_config or FusionConfig(), image_encoder=config.vision.encoder,
                              asr_model=config.asr.model_name, progress=progress)
    return metrics


__all__ = ["FusionTrainConfig", "train_fusion", "train_fusion_from_config"]
