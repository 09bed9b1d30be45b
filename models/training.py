"""Training and evaluation entry points (``agent train`` / ``agent eval`` call these).

``train_examples`` is the one code path: split (stratified), fine-tune (``finetune.fit``), fit
temperatures and the out-of-scope calibration on validation, evaluate on held-out examples,
write the model directory atomically with its reports. ``train_from_files`` reads a file and
calls it; ``retrain_head`` retrains only the sentiment or emotion head of a trained model.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.errors import InvalidInput
from agent.messages import EMOTIONS, SENTIMENTS
from models import datasets as ds
from models.artifacts import atomic_dir, check_out_dir, write_json
from models.calibration import (
    expected_calibration_error,
    fit_oos,
    fit_temperature,
    needs_neighbours,
    neighbour_distance,
    oos_raw,
    standardisation,
)
from models.evaluation import Evaluation, evaluate_model, report_text
from models.finetune import IGNORE, Encoded, TrainConfig, encode, fit, predict
from models.nlu import NluModel, build_meta, quantize_int8
from models.reports import macro_f1, plot_confusion, plot_training_curves
from models.text_encoder import MultiHeadTextModel, load_base_encoder, load_tokenizer

AFFECT_LABELS = {"sentiment": SENTIMENTS, "emotion": EMOTIONS}


def head_labels(examples: Sequence[ds.Example]) -> dict[str, tuple[str, ...]]:
    """Class names per head present in ``examples``; intents sorted with ``oos`` last."""
    heads: dict[str, tuple[str, ...]] = {}
    intents = sorted({ex.intent for ex in examples if ex.intent is not None} - {ds.OOS_LABEL})
    if intents:
        has_oos = any(ex.intent == ds.OOS_LABEL for ex in examples)
        heads["intent"] = (*intents, *([ds.OOS_LABEL] if has_oos else []))
    for head, names in AFFECT_LABELS.items():
        if any(ex.label(head) is not None for ex in examples):
            heads[head] = names
    return heads


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OosFit:
    """The out-of-scope calibration and, for a neighbour method, the training messages' embeddings;
    the same again for the int8 model the runtime loads on CPU (its embeddings differ slightly)."""

    calibration: Any = None  # OosCalibration | None
    bank: np.ndarray | None = None
    int8: Any = None  # OosCalibration | None
    bank_int8: np.ndarray | None = None


def calibrate(model: MultiHeadTextModel, enc: Encoded, heads: dict[str, tuple[str, ...]],
              config: TrainConfig, *, bank_enc: Encoded | None = None
              ) -> tuple[dict[str, float], dict[str, Any], OosFit]:
    """Temperatures per head, ECE before/after on ``enc``, and the out-of-scope calibration; for a
    neighbour method (``msp+knn``) without an ``oos`` class also the in-scope embeddings of
    ``bank_enc`` (the training messages) that the method compares against, for the fp32 model
    and for its int8 copy."""
    logits = predict(model, enc)
    temps: dict[str, float] = {}
    report: dict[str, Any] = {}
    fit = OosFit()
    for head in heads:
        y = enc.targets[head]
        valid = y != IGNORE
        if not valid.any():
            continue
        z, yy = logits[head][valid], y[valid]
        t = fit_temperature(z, yy)
        temps[head] = t
        report[head] = {"temperature": t, "n": int(valid.sum()),
                        "ece_before": expected_calibration_error(_softmax(z, 1.0), yy),
                        "ece_after": expected_calibration_error(_softmax(z, t), yy)}
    if "intent" in heads and "intent" in temps:
        names = heads["intent"]
        bank_enc = bank_enc if bank_enc is not None else enc
        oos, bank = _fit_oos(model, logits, enc, names, temps["intent"], config, bank_enc)
        report["oos"] = oos.to_dict()
        fit = OosFit(calibration=oos, bank=bank)
        if bank is not None:
            report["oos_bank"] = {"messages": len(bank), **(oos.standardise or {})}
            quantized = quantize_int8(model)
            oos_q, bank_q = _fit_oos(quantized, predict(quantized, enc), enc, names, temps["intent"], config, bank_enc)
            report["oos_int8"] = oos_q.to_dict()
            fit = OosFit(calibration=oos, bank=bank, int8=oos_q, bank_int8=bank_q)
    return temps, report, fit


def _fit_oos(model: MultiHeadTextModel, logits: dict[str, np.ndarray], enc: Encoded, names: tuple[str, ...],
             temperature: float, config: TrainConfig, bank_enc: Encoded) -> tuple[Any, np.ndarray | None]:
    """The out-of-scope calibration of ``model`` on ``enc`` (validation) and, for a neighbour
    method without an ``oos`` class, the bank of ``bank_enc``'s embeddings."""
    oos_index = names.index(ds.OOS_LABEL) if ds.OOS_LABEL in names else None
    y = enc.targets["intent"]
    valid = y != IGNORE
    distance, standardise, bank = None, None, None
    if oos_index is None and needs_neighbours(config.oos_method):
        bank, standardise = _neighbour_bank(model, bank_enc, temperature)
        distance = neighbour_distance(logits["pooled"][valid], bank)
    raw = oos_raw(logits["intent"][valid], temperature=temperature, method=config.oos_method,
                  oos_index=oos_index, distance=distance, standardise=standardise)
    cols = [i for i in range(len(names)) if i != oos_index]
    pred = np.array(cols)[logits["intent"][valid][:, cols].argmax(1)]
    is_oos = y[valid] == (oos_index if oos_index is not None else -1)
    oos = fit_oos(raw[~is_oos], (pred == y[valid])[~is_oos], raw[is_oos], method=config.oos_method,
                  standardise=standardise)
    return oos, bank


def _neighbour_bank(model: MultiHeadTextModel, enc: Encoded, temperature: float
                    ) -> tuple[np.ndarray, dict[str, float]]:
    """The intent-labelled messages' embeddings and the standardisation of ``msp+knn``'s parts on
    them (max-softmax and leave-one-out nearest-neighbour distance)."""
    rows = enc.targets["intent"] != IGNORE
    if rows.sum() < 2:
        raise InvalidInput(f"out-of-scope method msp+knn: expected at least 2 intent-labelled training "
                           f"messages, got {int(rows.sum())}")
    out = predict(model, enc)
    bank = out["pooled"][rows].astype(np.float32)
    msp = oos_raw(out["intent"][rows], temperature=temperature, method="msp", oos_index=None)
    return bank, standardisation(msp, neighbour_distance(bank, bank, leave_one_out=True))


def _softmax(z: np.ndarray, t: float) -> np.ndarray:
    e = np.exp(z / t - (z / t).max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _prepare(examples: Sequence[ds.Example], test: Sequence[ds.Example] | None, task: str,
             config: TrainConfig, where: str, val: Sequence[ds.Example] | None = None) -> ds.Split:
    test_fraction = 0.0 if test is not None else config.test_fraction
    val_fraction = 0.0 if val is not None else config.val_fraction
    ds.check_class_sizes(examples, task, needed=ds.min_examples_per_class(val_fraction, test_fraction),
                         path=where)
    split = ds.stratified_split(examples, task=task, val_fraction=val_fraction,
                                test_fraction=test_fraction, seed=config.seed)
    if test is not None:
        split = dataclasses.replace(split, test=tuple(test))
    if val is not None:
        split = dataclasses.replace(split, val=tuple(val))
    return split


def train_examples(examples: Sequence[ds.Example], out_dir: Path, *, config: TrainConfig,
                   test: Sequence[ds.Example] | None = None, data_info: dict[str, Any] | None = None,
                   progress: bool = True, task: str = "intent",
                   val: Sequence[ds.Example] | None = None) -> dict[str, Any]:
    """Fine-tune the encoder and the heads present in ``examples``; write ``out_dir``; metrics.
    ``test`` / ``val``: given held-out sets instead of stratified shares of ``examples``."""
    check_out_dir(out_dir)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    heads = head_labels(examples)
    if not heads:
        raise InvalidInput(f"training data {(data_info or {}).get('where', '')}: no labelled examples")
    primary = task if task in heads else next(iter(heads))
    where = str((data_info or {}).get("where", "training data"))
    for given, name in ((test, "test"), (val, "validation")):
        for head, names in heads.items() if given is not None else ():
            ds.check_known_labels(given, head, names, path=(data_info or {}).get(f"{name}_where", f"{name} data"))
    split = _prepare(examples, test, primary, config, where, val)
    tokenizer, model = load_tokenizer(), MultiHeadTextModel(
        load_base_encoder(), head_sizes={h: len(n) for h, n in heads.items()}, dropout=config.dropout)
    enc = {name: encode(tokenizer, getattr(split, name), heads, max_seq_len=config.max_seq_len)
           for name in ("train", "val")}
    result = fit(model, enc["train"], enc["val"], config, progress=progress)
    calib_enc = enc["val"] if len(enc["val"]) else enc["train"]
    temps, calib, oos = calibrate(model, calib_enc, heads, config, bank_enc=enc["train"])
    training = {"config": config.to_dict(), "task": primary, "data": data_info or {},
                "sizes": {k: len(getattr(split, k)) for k in ("train", "val", "test")},
                "calibrated_on": "validation" if len(enc["val"]) else "training (no validation split)"}
    meta = build_meta(heads=heads, temperatures=temps, oos=oos.calibration, training=training,
                      dropout=config.dropout, max_seq_len=config.max_seq_len, oos_int8=oos.int8)
    nlu = NluModel(model, tokenizer, meta, max_seq_len=config.max_seq_len, oos_bank=oos.bank,
                   oos_bank_int8=oos.bank_int8)
    evaluation = evaluate_model(nlu, split.test)
    metrics = {"task": primary, "heads": {h: list(n) for h, n in heads.items()}, "sizes": training["sizes"],
               "best_epoch": result.best_epoch, "epochs_run": len(result.history),
               "stopped_early": result.stopped_early, "train_seconds": round(result.seconds, 2),
               "history": result.history, "calibration": calib, "test": evaluation.metrics,
               "data": data_info or {}}
    save_model(nlu, out_dir, metrics, evaluation, result.history)
    return metrics


def save_model(nlu: NluModel, out_dir: Path, metrics: dict[str, Any], evaluation: Evaluation,
               history: Sequence[dict[str, Any]]) -> None:
    """The model and its reports, into ``out_dir`` atomically."""
    with atomic_dir(out_dir) as tmp:
        (tmp / "report.txt").write_text(report_text(evaluation) or "no held-out examples\n", encoding="utf-8")
        write_json(tmp / "report.json", evaluation.metrics)
        if history:
            plot_training_curves(history, tmp / "training_curves.png")
        if evaluation.intent_true:
            metrics["confused_labels"] = plot_confusion(evaluation.intent_true, evaluation.intent_pred,
                                                        tmp / "confusion.png")
        nlu.write_to(tmp, metrics=metrics)


def _data_info(path: Path, examples: Sequence[ds.Example]) -> dict[str, Any]:
    return {"where": str(path), "sha256": ds.file_sha256(path) if path.is_file() else "",
            "examples_sha256": ds.examples_sha256(examples), "n_examples": len(examples)}


def train_from_files(data: Path, out_dir: Path, *, task: str = "intent", base_model: Path | None = None,
                     epochs: int = 10, batch_size: int = 32, lr: float = 1e-4, seed: int = 0,
                     max_examples: int | None = None, progress: bool = True,
                     test_data: Path | None = None, config: TrainConfig | None = None) -> dict[str, Any]:
    """Train from a CSV (``text,label`` / ``text,category``; ``text,sentiment,emotion`` for the
    affect tasks) or the domain YAML; write ``out_dir``; return the metrics. ``test_data``: a
    separate held-out file (else a stratified share of ``data`` is held out)."""
    config = dataclasses.replace(config or TrainConfig(), epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    data, out_dir = Path(data), Path(out_dir)
    if task not in ds.TASKS:
        raise InvalidInput(f"task {task!r}: expected one of {list(ds.TASKS)}")
    examples = [ex for ex in ds.read_examples(data, task=task) if ex.label(task) is not None]
    if not examples:
        raise InvalidInput(f"data file {data}: no rows have a {task} label; expected some")
    examples = stratified_subsample(examples, max_examples, task=task, seed=seed)
    test = None
    if test_data is not None:
        test = [ex for ex in ds.read_examples(Path(test_data), task=task) if ex.label(task) is not None]
    if base_model is not None:
        if task == "intent":
            raise InvalidInput("base_model: applies to task sentiment|emotion (retrains that head); "
                               "for intents train a new model")
        return retrain_head(Path(base_model), examples, out_dir, task=task, config=config, test=test,
                            data_info=_data_info(data, examples), progress=progress)
    info = _data_info(data, examples) | ({"test_where": str(test_data)} if test_data else {})
    return train_examples(examples, out_dir, config=config, test=test, data_info=info,
                          progress=progress, task=task)


def stratified_subsample(examples: Sequence[ds.Example], n: int | None, *, task: str, seed: int) -> list[ds.Example]:
    """At most ``n`` examples, taken round-robin over shuffled classes so every class keeps some."""
    if n is None or n >= len(examples):
        return list(examples)
    if n <= 0:
        raise InvalidInput(f"max_examples must be positive, got {n}")
    by_class: dict[str, list[ds.Example]] = {}
    for ex in ds.subsample(examples, None, seed=seed):
        by_class.setdefault(str(ex.label(task)), []).append(ex)
    rng = np.random.default_rng(seed)
    pools = [by_class[k] for k in sorted(by_class)]
    for pool in pools:
        rng.shuffle(pool)
    out: list[ds.Example] = []
    depth = 0
    while len(out) < n:
        out += [pool[depth] for pool in pools if depth < len(pool)][: n - len(out)]
        depth += 1
    return out



def retrain_head(base_model: Path, examples: Sequence[ds.Example], out_dir: Path, *, task: str,
                 config: TrainConfig, test: Sequence[ds.Example] | None = None,
                 data_info: dict[str, Any] | None = None, progress: bool = True) -> dict[str, Any]:
    """Replace the ``task`` (sentiment|emotion) head of a trained model with one trained on
    ``examples`` over the model's frozen embeddings; the encoder and other heads are unchanged,
    so intent predictions stay identical. Passes over the cached embeddings: ``10 * epochs``."""
    check_out_dir(out_dir)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    base = NluModel.from_pretrained(base_model)
    names = AFFECT_LABELS[task]
    heads = {task: names}
    where = str((data_info or {}).get("where", "training data"))
    if test is not None:
        ds.check_known_labels(test, task, names, path="test data")
    split = _prepare(examples, test, task, config, where)
    module = base.module
    enc = {k: encode(base.tokenizer, getattr(split, k), heads, max_seq_len=base.max_seq_len) for k in ("train", "val")}
    feats = {k: torch.as_tensor(predict(module, e)["pooled"]) if len(e) else None for k, e in enc.items()}
    head = module.replace_head(task, len(names))
    start = time.perf_counter()
    history = _fit_head(head, feats, enc, task, config, progress)
    seconds = time.perf_counter() - start
    temps, calib, _ = calibrate(module, enc["val"] if len(enc["val"]) else enc["train"], heads, config)
    meta = copy.deepcopy(base.meta)
    meta["heads"][task] = list(names)
    meta["temperatures"][task] = temps[task]
    meta["training"].setdefault("retrained_heads", []).append(
        {"task": task, "data": data_info or {}, "config": config.to_dict(), "base_model": str(base_model)})
    nlu = NluModel(module, base.tokenizer, meta, max_seq_len=base.max_seq_len, oos_bank=base.oos_bank,
                   oos_bank_int8=base.oos_bank_int8)
    evaluation = evaluate_model(nlu, split.test)
    metrics = {"task": task, "retrained_head_of": str(base_model), "sizes": {k: len(getattr(split, k)) for k in ("train", "val", "test")},
               "epochs_run": len(history), "train_seconds": round(seconds, 2), "history": history,
               "calibration": calib, "test": evaluation.metrics, "data": data_info or {}}
    save_model(nlu, out_dir, metrics, evaluation, history)
    return metrics


def _fit_head(head: torch.nn.Module, feats: dict[str, torch.Tensor | None], enc: dict[str, Encoded], task: str,
              config: TrainConfig, progress: bool) -> list[dict[str, Any]]:
    """Mini-batch AdamW on fixed embeddings with early stopping on validation macro-F1."""
    x, y = feats["train"], torch.as_tensor(enc["train"].targets[task])
    head.init_from_centroids(torch.stack([x[y == c].mean(0) if (y == c).any() else torch.zeros(x.shape[1])
                                          for c in range(head.weight.shape[0])]))
    opt = torch.optim.AdamW(head.parameters(), lr=config.head_lr, weight_decay=config.weight_decay)
    drop = torch.nn.Dropout(config.dropout)
    gen = torch.Generator().manual_seed(config.seed)
    history, best, best_state, stale = [], -1.0, copy.deepcopy(head.state_dict()), 0
    for epoch in range(1, 10 * config.epochs + 1):
        head.train()
        losses = []
        for idx in torch.randperm(len(y), generator=gen).split(config.batch_size):
            loss = torch.nn.functional.cross_entropy(head(drop(x[idx])), y[idx], label_smoothing=config.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
        head.eval()
        f1, val_loss = float("nan"), None
        if feats["val"] is not None:
            with torch.no_grad():
                z = head(feats["val"])
            yv = torch.as_tensor(enc["val"].targets[task])
            val_loss = float(torch.nn.functional.cross_entropy(z, yv))
            f1 = macro_f1(yv.numpy(), z.argmax(1).numpy())
        score = f1 if feats["val"] is not None else -float(np.mean(losses))
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                        "val_macro_f1": {task: f1} if feats["val"] is not None else {}, "val_score": score})
        if score > best:
            best, best_state, stale = score, copy.deepcopy(head.state_dict()), 0
        elif (stale := stale + 1) >= 3 * config.patience:
            break
    head.load_state_dict(best_state)
    head.eval()
    if progress:
        print(f"{task} head: {len(history)} passes, best validation score {best:.4f}")
    return history


def evaluate_files(model_dir: Path, data: Path, *, out_json: Path | None = None) -> dict[str, Any]:
    """Classification report of a saved model on a labelled file; with ``oos`` rows also AUROC and
    OOS recall at the threshold that keeps in-scope accuracy within 1 point."""
    nlu = NluModel.from_pretrained(Path(model_dir))
    data = Path(data)
    examples = ds.read_labelled(data)
    for head in ("intent", "sentiment", "emotion"):
        if any(ex.label(head) is not None for ex in examples):
            if head not in nlu.meta["heads"]:
                raise InvalidInput(f"data file {data} has {head} labels; the model in {model_dir} has no {head} head")
            known = nlu.labels if head == "intent" else AFFECT_LABELS[head]
            ds.check_known_labels(examples, head, known, path=data)
    evaluation = evaluate_model(nlu, examples)
    result = {"model": str(model_dir), "data": str(data), "data_sha256": ds.file_sha256(data),
              "n_examples": len(examples), **evaluation.metrics, "report_text": report_text(evaluation)}
    if out_json is not None:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(out_json), result)
    return result


__all__ = ["TrainConfig", "evaluate_files", "retrain_head", "train_examples", "train_from_files"]
