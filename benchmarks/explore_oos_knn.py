"""Out-of-scope scores on the models ``bench_intent.py --parts oos`` saved (one per split, 25% of
Banking77's intents held out): AUROC of the model's max-softmax score, of ``-max cosine`` between
a message's embedding and the in-scope training embeddings, and of their sum after standardising
each by its mean and spread on the training messages (leave-one-out for the neighbour score):
the ``msp+knn`` method, here with the bank and standardisation computed by the model as loaded
(int8 by default, as the runtime loads it; ``--fp32``). For a model directory that has its own
bank (trained since msp+knn became the default) the model's own score is shown too.

    python benchmarks/explore_oos_knn.py benchmarks/out/intent/bench_intent_XXXX [--fp32]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _read(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return [(row["text"], row["label"]) for row in csv.DictReader(f)]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a bench_intent output folder with oos_model_K, oos_train_K.csv, oos_test_K.csv")
    parser.add_argument("--fp32", action="store_true", help="fp32 model (default: int8, as the runtime loads it)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch
    from sklearn.metrics import roc_auc_score

    from models.calibration import oos_raw
    from models.nlu import NluModel

    torch.set_num_threads(args.threads)
    rows = []
    for model_dir in sorted(args.run_dir.glob("oos_model_*")):
        k = model_dir.name.rsplit("_", 1)[1]
        model = NluModel.from_pretrained(model_dir, quantize=not args.fp32)
        train = [t for t, label in _read(args.run_dir / f"oos_train_{k}.csv") if label in model.labels]
        test = _read(args.run_dir / f"oos_test_{k}.csv")
        is_oos = np.array([label not in model.labels for _, label in test])
        out_train, out_test = model.forward(train), model.forward([t for t, _ in test])
        bank, queries = _unit(out_train["pooled"]), _unit(out_test["pooled"])
        temperature = model.temperatures.get("intent", 1.0)
        msp_train = oos_raw(out_train["intent"], temperature=temperature, method="msp", oos_index=None)
        msp_test = oos_raw(out_test["intent"], temperature=temperature, method="msp", oos_index=None)
        knn_test = -(queries @ bank.T).max(axis=1)
        self_sim = bank @ bank.T
        np.fill_diagonal(self_sim, -1.0)
        knn_train = -self_sim.max(axis=1)
        combined = ((msp_test - msp_train.mean()) / msp_train.std()
                    + (knn_test - knn_train.mean()) / knn_train.std())
        row = {"split": k, "n_test": len(test), "n_oos": int(is_oos.sum()),
               "msp": roc_auc_score(is_oos, msp_test), "knn": roc_auc_score(is_oos, knn_test),
               "msp+knn": roc_auc_score(is_oos, combined)}
        if model.oos_bank is not None:
            row["model's own"] = roc_auc_score(is_oos, model.oos_scores(out_test["intent"], out_test["pooled"]))
        rows.append(row)
        print(f"split {k}: AUROC " + "  ".join(f"{m} {v:.4f}" for m, v in row.items() if isinstance(v, float))
              + f"  ({row['n_oos']} of {row['n_test']} test messages out of scope)", flush=True)
    if rows:
        names = [m for m in rows[0] if isinstance(rows[0][m], float)]
        means = {m: float(np.mean([r[m] for r in rows])) for m in names}
        print("mean: " + "  ".join(f"{m} {v:.4f}" for m, v in means.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
