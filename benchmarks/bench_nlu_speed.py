"""Text-model speed: single-message latency p50/p95 and batched throughput, fp32 vs dynamic int8,
with a naive pipeline as the baseline in the same run; plus int8's accuracy change.

Variants (one message at a time, texts cycled from the evaluation set, sequence <= 64 tokens):
  naive     the usual recipe: tokenizer padding to max_length=64, torch.no_grad, plain HF forward
  fp32      NluModel.understand: dynamic padding, inference_mode, all heads, calibrated outputs
  int8      NluModel.from_pretrained(..., quantize=True): torch.ao dynamic int8 Linear layers
Batched: understand_batch with --batch texts (sorted by length inside).
Accuracy change: intent accuracy / macro-F1 of fp32 and int8 on --eval-data (default: Banking77
test.csv when the Banking77 model from bench_intent.py exists, else the default model's data).

Burn-in of --warmup calls, then --n measured calls per variant. One JSON line per run to
benchmarks/results/bench_nlu_speed.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

BANKING_MODEL = ROOT / "benchmarks" / "out" / "intent" / "banking77_model"
BANKING_TEST = Path(os.environ.get("AGENT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "banking77" / "test.csv"


def timed(fn, items, *, warmup: int, n: int) -> dict[str, float]:
    for i in range(warmup):
        fn(items[i % len(items)])
    ts = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(items[i % len(items)])
        ts.append((time.perf_counter() - t0) * 1000)
    ts.sort()
    return {"p50_ms": round(ts[len(ts) // 2], 2), "p95_ms": round(ts[int(0.95 * len(ts)) - 1], 2),
            "mean_ms": round(statistics.fmean(ts), 2)}


def naive(model_dir: Path):
    import torch

    from models.nlu import NluModel

    m = NluModel.from_pretrained(model_dir)
    tok, module = m.tokenizer, m.module

    def run(text: str):
        enc = tok([text], padding="max_length", truncation=True, max_length=64, return_tensors="pt")
        with torch.no_grad():
            return module(enc["input_ids"], enc["attention_mask"])

    return run


def accuracy(model, texts: list[str], labels: list[str]) -> dict[str, float]:
    from sklearn.metrics import f1_score

    pred = [r.intent for r in model.understand_batch(texts)]
    return {"accuracy": float(np.mean([p == y for p, y in zip(pred, labels, strict=True)])),
            "macro_f1": float(f1_score(labels, pred, average="macro", zero_division=0))}


def eval_set(args: argparse.Namespace, model) -> tuple[list[str], list[str], str]:
    from models.datasets import read_labelled

    path = args.eval_data
    if path is None and args.model == BANKING_MODEL and BANKING_TEST.is_file():
        path = BANKING_TEST
    if path is None:
        meta = model.meta["training"]["data"]
        path = Path(meta["where"])
    rows = [e for e in read_labelled(path) if e.intent in set(model.labels)]
    return [e.text for e in rows], [e.intent for e in rows], str(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=None, help="model dir (default: Banking77 model if built, "
                   "else the default model, trained on first use)")
    p.add_argument("--eval-data", type=Path, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "bench_nlu_speed.jsonl")
    args = p.parse_args(argv)

    import torch

    from models.nlu import NluModel

    torch.set_num_threads(args.threads)
    if args.model is None:
        if (BANKING_MODEL / "nlu.json").is_file():
            args.model = BANKING_MODEL
        else:
            from agent.config import ASSETS_DIR
            from models.default_model import ensure_default_model

            args.model = ensure_default_model(ASSETS_DIR / "domain.yaml", ROOT / "benchmarks" / "out" / "cache")
    fp32 = NluModel.from_pretrained(args.model, device=args.device)
    int8 = NluModel.from_pretrained(args.model, quantize=True)
    texts, labels, source = eval_set(args, fp32)
    lengths = [len(ids) for ids in fp32.tokenizer(texts[: args.n])["input_ids"]]
    result: dict = {"bench": "nlu_speed", "model": str(args.model), "eval_data": source, "threads": args.threads,
                    "tokens_per_message": {"median": statistics.median(lengths), "max": max(lengths)}}
    single = {"naive": naive(args.model), "fp32": fp32.understand, "int8": int8.understand}
    result["single"] = {name: timed(fn, texts, warmup=args.warmup, n=args.n) for name, fn in single.items()}
    batches = [texts[i : i + args.batch] for i in range(0, len(texts) - args.batch + 1, args.batch)] or [texts]
    result["batched"] = {}
    for name, model in (("fp32", fp32), ("int8", int8)):
        r = timed(model.understand_batch, batches, warmup=2, n=max(10, args.n // args.batch))
        result["batched"][name] = r | {"batch": args.batch, "messages_per_s": round(1000 * args.batch / r["mean_ms"], 1)}
    result["accuracy"] = {"n": len(texts), "fp32": accuracy(fp32, texts, labels), "int8": accuracy(int8, texts, labels)}
    result["accuracy"]["int8_minus_fp32_points"] = round(
        100 * (result["accuracy"]["int8"]["accuracy"] - result["accuracy"]["fp32"]["accuracy"]), 2)
    from benchmarks.bench_intent import run_info

    result |= run_info()
    print(json.dumps(result, indent=1))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with args.results.open("a", encoding="utf-8") as f:
        f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
