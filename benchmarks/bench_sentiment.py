"""GoEmotions sentiment and emotion macro-F1: our heads against VADER and two classic baselines.

Data: ``../shared/data/goemotions`` (``--data-dir``); ``group/`` -> sentiment (negative, neutral,
positive; ``ambiguous`` -> neutral), ``ekman/`` -> emotion (7 classes). Multi-label rows are
mapped by the rule in models/goemotions.py (a polar label beats neutral; a row with both
positive and negative, or with two distinct emotions, is dropped for that task) on every split;
the counts are printed and recorded.

In one run, on the test split:
  vader     VADER compound score -> sentiment (>= 0.05 positive, <= -0.05 negative), the lexicon
            baseline; VADER has no emotion output
  tfidf     TF-IDF + logistic regression (class-balanced), sentiment and emotion
  frozen    frozen MiniLM embeddings + logistic regression (class-balanced)
  ours      MiniLM fine-tuned with both heads in one model (models.training.train_examples,
            the code path of ``agent train``), GoEmotions dev split for early stopping and
            temperature scaling

One JSON line per run to benchmarks/results/bench_sentiment.jsonl. Long on 2 cores: use
``--max-train`` for a subset and ``nice -n 10``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
logging.getLogger("httpx").setLevel(logging.WARNING)

DEFAULT_DATA = Path(os.environ.get("AGENT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "goemotions"
TASKS = ("sentiment", "emotion")


def f1(y_true: list[str], y_pred: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "accuracy": float(accuracy_score(y_true, y_pred))}


def labelled(examples, task: str) -> tuple[list[str], list[str]]:
    rows = [(e.text, e.label(task)) for e in examples if e.label(task) is not None]
    return [t for t, _ in rows], [y for _, y in rows]


def vader(texts: list[str]) -> tuple[list[str], float]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    t0 = time.perf_counter()
    out = []
    for text in texts:
        c = analyzer.polarity_scores(text)["compound"]
        out.append("positive" if c >= 0.05 else "negative" if c <= -0.05 else "neutral")
    return out, time.perf_counter() - t0


def sklearn_lr(x_train, y_train, x_test) -> list[str]:
    from sklearn.linear_model import LogisticRegression

    return list(LogisticRegression(C=4.0, max_iter=3000, class_weight="balanced").fit(x_train, y_train).predict(x_test))


def tfidf(train_texts, y, test_texts) -> list[str]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    return sklearn_lr(vec.fit_transform(train_texts), y, vec.transform(test_texts))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    p.add_argument("--parts", default="vader,tfidf,frozen,ours")
    p.add_argument("--max-train", type=int, default=None, help="random subset of the training split")
    p.add_argument("--max-eval", type=int, default=None, help="random subset of dev and test (smoke runs only)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--class-balance", type=float, default=0.5)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--keep-weight", type=float, default=0.0, help="embedding_keep_weight (0: plain fine-tuning)")
    p.add_argument("--max-seq-len", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "out" / "sentiment")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "bench_sentiment.jsonl")
    p.add_argument("--progress", action="store_true")
    args = p.parse_args(argv)
    if not (args.data_dir / "group" / "test.tsv").is_file():
        sys.exit(f"GoEmotions not found at {args.data_dir} (pass --data-dir or set AGENT_SHARED_DATA)")

    import torch

    from models.datasets import subsample
    from models.goemotions import read_goemotions

    torch.set_num_threads(args.threads)
    parts = set(args.parts.split(","))
    data = {s: read_goemotions(args.data_dir, s) for s in ("train", "dev", "test")}
    train = subsample(data["train"][0], args.max_train, seed=0)
    test = subsample(data["test"][0], args.max_eval, seed=0)
    dev = subsample(data["dev"][0], args.max_eval, seed=0)
    result: dict = {"bench": "sentiment", "n_train": len(train), "n_test": len(test), "mapping": {s: asdict(st) for s, (_, st) in data.items()}}
    print("mapping:", json.dumps(result["mapping"]), flush=True)
    truth = {task: labelled(test, task) for task in TASKS}
    if "vader" in parts:
        pred, s = vader(truth["sentiment"][0])
        result["vader"] = {"sentiment": f1(truth["sentiment"][1], pred), "ms_per_text": 1000 * s / len(pred)}
        print("VADER:", result["vader"], flush=True)
    if "tfidf" in parts:
        result["tfidf_lr"] = {task: f1(truth[task][1], tfidf(*labelled(train, task), truth[task][0])) for task in TASKS}
        print("TF-IDF + LR:", result["tfidf_lr"], flush=True)
    if "frozen" in parts:
        from benchmarks.bench_intent import Frozen

        frozen = Frozen()
        result["frozen_lr"] = {}
        for task in TASKS:
            texts, y = labelled(train, task)
            result["frozen_lr"][task] = f1(truth[task][1], sklearn_lr(frozen(texts), y, frozen(truth[task][0])))
        print("frozen MiniLM + LR:", result["frozen_lr"], flush=True)
    if "ours" in parts:
        result["ours"] = ours(args, train, dev, test)
        print("ours:", json.dumps(result["ours"]), flush=True)
    from benchmarks.bench_intent import run_info

    result |= run_info() | {"config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with args.results.open("a", encoding="utf-8") as f:
        f.write(json.dumps(result) + "\n")
    return 0


def ours(args: argparse.Namespace, train, dev, test) -> dict:
    from models.finetune import TrainConfig
    from models.training import train_examples

    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, threads=args.threads,
                         class_balance=args.class_balance, label_smoothing=args.label_smoothing,
                         embedding_keep_weight=args.keep_weight,
                         max_seq_len=args.max_seq_len, patience=2)
    t0 = time.perf_counter()
    metrics = train_examples(train, args.out_dir / "goemotions_model", config=config, test=test, val=dev,
                             data_info={"where": str(args.data_dir), "n_examples": len(train)},
                             progress=args.progress, task="sentiment")
    out = {task: {k: metrics["test"][task][k] for k in ("macro_f1", "accuracy", "ece", "n")} for task in TASKS}
    out |= {"train_seconds": metrics["train_seconds"], "total_seconds": round(time.perf_counter() - t0, 1),
            "epochs_run": metrics["epochs_run"], "best_epoch": metrics["best_epoch"],
            "calibration": {t: metrics["calibration"][t] for t in TASKS},
            "val_macro_f1_per_epoch": [h["val_macro_f1"] for h in metrics["history"]]}
    return out


if __name__ == "__main__":
    raise SystemExit(main())
