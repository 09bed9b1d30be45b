"""Banking77 intent accuracy: our fine-tuned model against the usual choices, in one run.

Parts (``--parts``, default all):
  tfidf     TF-IDF (word 1-2 grams + char 2-5 grams) + logistic regression
  frozen    frozen all-MiniLM-L6-v2 sentence embeddings + logistic regression
  finetune  our fine-tuned model, through ``models.training.train_from_files`` (the path of
            ``agent train``), evaluated with ``models.training.evaluate_files`` (``agent eval``)
  fewshot   10 examples per intent, 3 fixed seeds, mean: TF-IDF, frozen+LR and ours
  oos       25% of the intents held out as unknown (3 random splits): AUROC and OOS recall at
            the threshold keeping in-scope accuracy within 1 point of closed-set accuracy; ours
            (the model's own method, msp+knn by default, fp32 and int8; and energy, max-logit,
            max-softmax, Mahalanobis, 1-NN scores) and frozen+LR max-softmax as the baseline

All figures on the full test set (3,080) unless ``--quick`` (20 intents, 40 training examples
each). One JSON line per run goes to benchmarks/results/bench_intent.jsonl. Long: run it with
``nice -n 10`` on a shared machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no spin-waiting threads on a shared machine
os.environ.setdefault("HF_HUB_OFFLINE", "1")
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
logging.getLogger("httpx").setLevel(logging.WARNING)

DEFAULT_DATA = Path(os.environ.get("AGENT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "banking77"


def read_csv(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def write_csv(path: Path, texts: list[str], labels: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(zip(texts, labels, strict=True))
    return path


def scores(y_true: list[str], y_pred: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0))}


def tfidf_lr(train: tuple[list[str], list[str]], test_texts: list[str]) -> tuple[list[str], float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    t0 = time.perf_counter()
    clf = make_pipeline(
        make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                   TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)),
        LogisticRegression(C=20.0, max_iter=3000),
    )
    clf.fit(*train)
    return list(clf.predict(test_texts)), time.perf_counter() - t0


class Frozen:
    """all-MiniLM-L6-v2 as shipped: mean-pooled, L2-normalised embeddings (cached per text)."""

    def __init__(self) -> None:
        import torch

        from models.text_encoder import load_base_encoder, load_tokenizer

        self.torch, self.tok, self.enc = torch, load_tokenizer(), load_base_encoder().eval()
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        from models.finetune import collate
        from models.text_encoder import mean_pool

        todo = sorted({t for t in texts if t not in self.cache}, key=len)
        with self.torch.inference_mode():
            for i in range(0, len(todo), 64):
                chunk = todo[i : i + 64]
                ids, mask = collate(self.tok(chunk, truncation=True, max_length=64)["input_ids"])
                v = mean_pool(self.enc(input_ids=ids, attention_mask=mask).last_hidden_state, mask)
                v = self.torch.nn.functional.normalize(v, dim=-1).numpy()
                self.cache.update(zip(chunk, v, strict=True))
        return np.stack([self.cache[t] for t in texts])


def frozen_lr(frozen: Frozen, train: tuple[list[str], list[str]], test_texts: list[str]):
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    clf = LogisticRegression(C=20.0, max_iter=3000).fit(frozen(train[0]), train[1])
    seconds = time.perf_counter() - t0
    return clf, list(clf.predict(frozen(test_texts))), seconds


def ours(train_csv: Path, test_csv: Path, out: Path, args: argparse.Namespace, *, epochs: int, **config) -> dict:
    from models.finetune import TrainConfig
    from models.training import evaluate_files, train_from_files

    config.setdefault("val_fraction", args.val_fraction)
    config.setdefault("embedding_keep_weight", args.keep_weight)
    cfg = TrainConfig(max_seq_len=args.max_seq_len, label_smoothing=args.label_smoothing,
                      threads=args.threads, patience=args.patience, **config)
    t0 = time.perf_counter()
    metrics = train_from_files(train_csv, out, epochs=epochs, batch_size=args.batch_size, lr=args.lr,
                               seed=cfg.seed, progress=args.progress, test_data=test_csv, config=cfg)
    seconds = time.perf_counter() - t0
    ev = evaluate_files(out, test_csv)
    return {"metrics": metrics, "eval": ev, "seconds": seconds}


def part_fewshot(args, train, test, frozen, tmp: Path) -> dict:
    per_seed = []
    for seed in args.seeds:
        rng = random.Random(seed)
        by = {}
        for t, y in zip(*train, strict=True):
            by.setdefault(y, []).append(t)
        texts, labels = [], []
        for y in sorted(by):
            for t in rng.sample(by[y], min(args.shots, len(by[y]))):
                texts.append(t)
                labels.append(y)
        row = {"seed": seed, "n_train": len(texts)}
        pred, _ = tfidf_lr((texts, labels), test[0])
        row["tfidf_lr"] = scores(test[1], pred)
        _, pred, _ = frozen_lr(frozen, (texts, labels), test[0])
        row["frozen_lr"] = scores(test[1], pred)
        path = write_csv(tmp / f"fewshot_{seed}.csv", texts, labels)
        r = ours(path, args.test_csv, tmp / f"fewshot_model_{seed}", args, epochs=args.fewshot_epochs,
                 val_fraction=0.0, test_fraction=0.0, seed=seed)
        row["ours"] = {k: r["eval"]["intent"][k] for k in ("accuracy", "macro_f1")}
        row["ours_train_seconds"] = round(r["seconds"], 1)
        print(f"10-shot seed {seed}: {json.dumps(row)}", flush=True)
        per_seed.append(row)
    mean = {m: {k: float(np.mean([r[m][k] for r in per_seed])) for k in ("accuracy", "macro_f1")}
            for m in ("tfidf_lr", "frozen_lr", "ours")}
    return {"shots": args.shots, "seeds": args.seeds, "mean": mean, "per_seed": per_seed}


def feature_scores(model, train: tuple[list[str], list[str]], test_texts: list[str]) -> dict[str, np.ndarray]:
    """Out-of-scope scores from the fine-tuned embeddings: Mahalanobis distance to the nearest
    class mean (shared Ledoit-Wolf covariance; Podolskiy et al. 2021) and 1-nearest-neighbour
    cosine distance to the training set (Sun et al. 2022), both on L2-normalised embeddings."""
    from sklearn.covariance import LedoitWolf

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    f_train, f_test = unit(model.forward(train[0])["pooled"]), unit(model.forward(test_texts)["pooled"])
    labels = sorted(set(train[1]))
    y = np.array([labels.index(t) for t in train[1]])
    means = np.stack([f_train[y == c].mean(0) for c in range(len(labels))])
    precision = LedoitWolf().fit(f_train - means[y]).precision_
    maha = np.full(len(f_test), np.inf)
    for c in range(len(labels)):
        d = f_test - means[c]
        maha = np.minimum(maha, np.einsum("nd,de,ne->n", d, precision, d))
    knn = -(f_test @ f_train.T).max(1)
    return {"mahalanobis": maha, "knn1": knn}


def part_oos(args, train, test, frozen, tmp: Path) -> dict:
    from models.calibration import oos_metrics, oos_raw
    from models.nlu import NluModel

    intents = sorted(set(train[1]))
    splits = []
    for seed in args.seeds:
        unknown = set(random.Random(seed).sample(intents, round(0.25 * len(intents))))
        keep = [i for i, y in enumerate(train[1]) if y not in unknown]
        tr = ([train[0][i] for i in keep], [train[1][i] for i in keep])
        te_labels = ["oos" if y in unknown else y for y in test[1]]
        train_csv = write_csv(tmp / f"oos_train_{seed}.csv", *tr)
        test_csv = write_csv(tmp / f"oos_test_{seed}.csv", test[0], te_labels)
        r = ours(train_csv, test_csv, tmp / f"oos_model_{seed}", args, epochs=args.oos_epochs, test_fraction=0.0, seed=seed)
        row = {"seed": seed, "unknown_intents": sorted(unknown), "ours_model": r["eval"]["intent"]["oos"]}
        model = NluModel.from_pretrained(tmp / f"oos_model_{seed}")
        out = model.forward(test[0])
        logits = out["intent"]
        is_oos = np.array([y == "oos" for y in te_labels])
        pred = np.array(model.labels)[logits.argmax(1)]
        correct = pred == np.array(te_labels)
        if model.oos_bank is not None:  # the model's own method, fp32 and as the runtime loads it (int8)
            row["ours_msp+knn"] = oos_metrics(model.oos_scores(logits, out["pooled"]), is_oos, correct)
            q = NluModel.from_pretrained(tmp / f"oos_model_{seed}", quantize=True)
            q_out = q.forward(test[0])
            q_correct = np.array(q.labels)[q_out["intent"].argmax(1)] == np.array(te_labels)
            row["ours_msp+knn_int8"] = oos_metrics(q.oos_scores(q_out["intent"], q_out["pooled"]), is_oos, q_correct)
        for method in ("energy", "maxlogit", "msp"):
            raw = oos_raw(logits, temperature=model.temperatures["intent"], method=method, oos_index=None)
            row[f"ours_{method}"] = oos_metrics(raw, is_oos, correct)
        for name, raw in feature_scores(model, tr, test[0]).items():
            row[f"ours_{name}"] = oos_metrics(raw, is_oos, correct)
        clf, fpred, _ = frozen_lr(frozen, tr, test[0])
        msp = -clf.predict_proba(frozen(test[0])).max(1)
        row["frozen_lr_msp"] = oos_metrics(msp, is_oos, np.array(fpred) == np.array(te_labels))
        print(f"oos split {seed}: " + json.dumps({k: v for k, v in row.items() if k != "unknown_intents"}), flush=True)
        splits.append(row)
    keys = [k for k in splits[0] if k.startswith(("ours", "frozen"))]
    mean = {k: {m: float(np.mean([s[k][m] for s in splits])) for m in ("auroc", "oos_recall_at_1pt", "closed_set_accuracy")}
            for k in keys}
    return {"held_out_share": 0.25, "seeds": args.seeds, "mean": mean, "splits": splits}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="folder with train.csv, test.csv")
    p.add_argument("--parts", default="tfidf,frozen,finetune,fewshot,oos")
    p.add_argument("--quick", action="store_true", help="20 intents, 40 training examples each")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--fewshot-epochs", type=int, default=30)
    p.add_argument("--oos-epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--keep-weight", type=float, default=4.0, help="embedding_keep_weight (0: plain fine-tuning)")
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--val-fraction", type=float, default=0.1, help="of the training file, for early stopping")
    p.add_argument("--max-seq-len", type=int, default=64)
    p.add_argument("--shots", type=int, default=10)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "out" / "intent")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "bench_intent.jsonl")
    p.add_argument("--progress", action="store_true", help="show per-batch progress bars")
    return p.parse_args(argv)


def load_data(args: argparse.Namespace, tmp: Path):
    for name in ("train.csv", "test.csv"):
        if not (args.data_dir / name).is_file():
            sys.exit(f"Banking77 not found: {args.data_dir / name} (pass --data-dir or set AGENT_SHARED_DATA)")
    train, test = read_csv(args.data_dir / "train.csv"), read_csv(args.data_dir / "test.csv")
    if args.quick:
        keep = set(sorted(set(train[1]))[:20])
        rng, by = random.Random(0), {}
        for t, y in zip(*train, strict=True):
            if y in keep:
                by.setdefault(y, []).append(t)
        pairs = [(t, y) for y in sorted(by) for t in rng.sample(by[y], min(40, len(by[y])))]
        train = ([t for t, _ in pairs], [y for _, y in pairs])
        test = tuple(map(list, zip(*[(t, y) for t, y in zip(*test, strict=True) if y in keep], strict=True)))
    args.train_csv = write_csv(tmp / "train.csv", *train)
    args.test_csv = write_csv(tmp / "test.csv", *test)
    return train, test


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    parts = set(args.parts.split(","))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_intent_", dir=args.out_dir))
    train, test = load_data(args, tmp)
    result: dict = {"bench": "intent", "quick": args.quick, "n_train": len(train[0]), "n_test": len(test[0]),
                    "n_intents": len(set(train[1]))}
    frozen = Frozen() if parts & {"frozen", "fewshot", "oos"} else None
    if "tfidf" in parts:
        pred, s = tfidf_lr(train, test[0])
        result["tfidf_lr"] = scores(test[1], pred) | {"train_seconds": round(s, 1)}
        print("TF-IDF + LR:", result["tfidf_lr"], flush=True)
    if "frozen" in parts:
        t0 = time.perf_counter()
        frozen(train[0])
        embed_s = time.perf_counter() - t0
        _, pred, s = frozen_lr(frozen, train, test[0])
        result["frozen_lr"] = scores(test[1], pred) | {"train_seconds": round(s + embed_s, 1), "embed_seconds": round(embed_s, 1)}
        print("frozen MiniLM + LR:", result["frozen_lr"], flush=True)
    if "finetune" in parts:
        r = ours(args.train_csv, args.test_csv, args.out_dir / "banking77_model", args, epochs=args.epochs)
        m = r["metrics"]
        result["ours"] = {k: r["eval"]["intent"][k] for k in ("accuracy", "macro_f1")} | {
            "train_seconds": round(m["train_seconds"], 1), "total_seconds": round(r["seconds"], 1),
            "epochs_run": m["epochs_run"], "best_epoch": m["best_epoch"], "calibration": m["calibration"]["intent"],
            "test_ece": r["eval"]["intent"].get("ece"),
            "val_macro_f1_per_epoch": [h["val_macro_f1"].get("intent") for h in m["history"]]}
        print("ours (fine-tuned):", json.dumps(result["ours"]), flush=True)
    if "fewshot" in parts:
        result["fewshot"] = part_fewshot(args, train, test, frozen, tmp)
        print("10-shot mean:", json.dumps(result["fewshot"]["mean"]), flush=True)
    if "oos" in parts:
        result["oos"] = part_oos(args, train, test, frozen, tmp)
        print("out-of-scope mean:", json.dumps(result["oos"]["mean"]), flush=True)
    result["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result |= run_info()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with args.results.open("a", encoding="utf-8") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("fewshot", "oos", "config")}, indent=1))
    return 0


def run_info() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {"commit": commit, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "device": "cpu (2 cores shared with other jobs)",
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}


if __name__ == "__main__":
    raise SystemExit(main())
