"""Fusion training variants side by side on one held-out test split (exploration, one line each).

Each variant is ``NAME[@SET_DIR][:key=value,...]``: the fusion trained on SET_DIR's train split
(default: the ``--set`` directory) with those ``FusionTrainConfig`` fields changed (or, prefixed
``fusion.``, ``FusionConfig`` fields), and evaluated on the test split of ``--set``. Sets built
with ``--extra-spoken-train`` share their val and test splits with the default set, so variants
trained on different sets are compared on the same turns. Example::

    python benchmarks/explore_fusion.py --variants base@~/.cache/support-agent/multimodal-base \\
        more@~/.cache/support-agent/multimodal typed:typed_pool_weight=1

Prints accuracy by kind of turn and by test voice, the text model alone and the spoken
sentences typed as baselines, and appends one JSON line per run to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from agent.config import AgentConfig
from models.fusion_eval import baselines, by_kind, by_voice, picture_router_use
from models.fusion_fit import FusionTrainConfig, TextStates, intents_of, predict, prepare
from models.fusion_layers import FusionConfig
from models.fusion_training import train_fusion
from models.multimodal_data import load_set
from models.nlu import NluModel


def _value(text: str, like: Any) -> Any:
    if isinstance(like, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() in ("true", "1")
    return type(like)(text) if like is not None else (None if text == "none" else int(text))


def parse_variant(spec: str, default_set: Path) -> tuple[str, Path, dict[str, Any], dict[str, Any]]:
    """``NAME[@SET][:k=v,...]`` -> (name, set dir, train config changes, fusion config changes)."""
    head, _, options = spec.partition(":")
    name, _, set_dir = head.partition("@")
    if not name:
        raise ValueError(f"variant {spec!r}: expected NAME[@SET_DIR][:key=value,...]")
    train, fusion = FusionTrainConfig(), FusionConfig()
    changes: dict[str, Any] = {}
    fusion_changes: dict[str, Any] = {}
    for item in filter(None, options.split(",")):
        key, eq, raw = item.partition("=")
        target, into = (fusion, fusion_changes) if key.startswith("fusion.") else (train, changes)
        key = key.removeprefix("fusion.")
        if not eq or not hasattr(target, key):
            raise ValueError(f"variant {spec!r}: {item!r} is not key=value of a {type(target).__name__} field")
        into[key] = _value(raw, getattr(target, key))
    return name, Path(set_dir).expanduser() if set_dir else default_set, changes, fusion_changes


def _by_voice(test: list, predicted: list[str]) -> dict[str, float]:
    return {voice: scores["accuracy"] for voice, scores in by_voice(test, predicted).items()}


def _row(name: str, test: list, predicted: list[str], extra: str = "") -> dict[str, Any]:
    scores = by_kind(test, predicted)
    voices = _by_voice(test, predicted)
    cells = " | ".join(f"{scores[k]['accuracy']:.1f}" if scores.get(k, {}).get("n") else "-"
                       for k in ("all", "spoken", "image_decides", "image_irrelevant", "image_only"))
    print(f"| {name} | {cells} | " + " / ".join(f"{v:.1f}" for v in voices.values()) + f" | {extra} |", flush=True)
    return {"scores": scores, "by_voice": voices}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, default=None, help="set whose test split is scored (default <cache>/multimodal)")
    parser.add_argument("--text-model", type=Path, default=None, help="text model directory (default: the default model)")
    parser.add_argument("--variants", nargs="+", default=["fusion"], help="NAME[@SET_DIR][:key=value,...], see above")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--router-thresholds", type=float, nargs="*", default=[],
                        help="also score each trained model with its picture router at these thresholds")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "explore_fusion.jsonl")
    args = parser.parse_args(argv)
    import torch

    from models.default_model import ensure_default_model

    torch.set_num_threads(args.threads)
    config = AgentConfig.from_env()
    text_dir = args.text_model or ensure_default_model(config.domain.path, config.nlu.cache_dir)
    set_dir = args.set or Path(config.nlu.cache_dir) / "multimodal"
    try:
        variants = [parse_variant(v, set_dir) for v in args.variants]
    except ValueError as exc:
        parser.error(str(exc))
    data = load_set(set_dir)
    test = data.split("test")
    base = baselines(NluModel.from_pretrained(text_dir), test, data)
    voices = sorted({ex.voice for ex in test if ex.voice})
    print("| model | all | spoken | image decides | image irrelevant | image only | spoken by voice: "
          + " / ".join(voices) + " | train s |\n|---|---|---|---|---|---|---|---|")
    spoken = [i for i, ex in enumerate(test) if ex.kind == "spoken"]
    results: dict[str, Any] = {"text alone": {**_row("text alone", test, base["text"]), "predicted": base["text"]}}
    typed = by_kind([test[i] for i in spoken], [base["typed"][i] for i in spoken])["all"]
    print(f"| spoken sentences typed | - | {typed['accuracy']:.1f} | - | - | - | - | |", flush=True)
    results["typed"] = typed
    loaded: dict[Path, Any] = {set_dir: data}
    for name, train_dir, changes, fusion_changes in variants:
        if train_dir not in loaded:
            loaded[train_dir] = load_set(train_dir)
        train_set = loaded[train_dir]
        for seed in args.seeds:
            cfg = dataclasses.replace(FusionTrainConfig(), threads=args.threads, seed=seed, **changes)
            t0 = time.perf_counter()
            fusion, _ = train_fusion(train_set, NluModel.from_pretrained(text_dir), text_model_dir=text_dir, out_dir=None,
                                     train_config=cfg, fusion_config=dataclasses.replace(FusionConfig(), **fusion_changes),
                                     progress=False)
            seconds = time.perf_counter() - t0
            prep, states = prepare(data, test, fusion.intent_classes), TextStates(fusion, trainable=False)
            out = predict(fusion, states, prep)
            predicted = intents_of(fusion, out["intent"])
            results[f"{name}, seed {seed}"] = {**_row(f"{name}, seed {seed}", test, predicted, f"{seconds:.0f}"),
                                               "train_set": str(train_dir), "changes": changes,
                                               "fusion_changes": fusion_changes, "train_seconds": round(seconds, 1),
                                               "pictures_read": picture_router_use(test, out), "predicted": predicted}
            if fusion.module.router is not None:  # the same model reading every picture, or at other thresholds
                results[f"{name}, seed {seed}"]["relevance"] = [round(float(x), 4) for x in out["relevance"]]
                print("  pictures read:", json.dumps(results[f"{name}, seed {seed}"]["pictures_read"]), flush=True)
                fusion.module.routing = False
                unrouted = intents_of(fusion, predict(fusion, states, prep)["intent"])
                results[f"{name}, seed {seed}, router off at test"] = {
                    **_row(f"{name}, seed {seed}, router off at test", test, unrouted), "predicted": unrouted}
                fusion.module.routing, config_was = True, fusion.module.config
                for threshold in args.router_thresholds:
                    fusion.module.config = dataclasses.replace(config_was, router_threshold=threshold)
                    at = predict(fusion, states, prep)
                    label = f"{name}, seed {seed}, router threshold {threshold:g} at test"
                    results[label] = {**_row(label, test, intents_of(fusion, at["intent"])),
                                      "pictures_read": picture_router_use(test, at)}
                fusion.module.config = config_was
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "commit": commit, "set": str(set_dir),
                            "text_model": str(text_dir), "threads": args.threads, "results": results}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
