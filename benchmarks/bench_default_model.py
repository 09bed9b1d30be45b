"""The default model: training time, held-out accuracy on the default domain, and which embedding
the knowledge base should use.

For each ``--keep-weights`` value the default model is trained from scratch (fresh cache) with
that embedding-preservation weight (0 = plain fine-tuning), timed, and evaluated on its
held-out split (intents incl. out-of-scope, sentiment, emotion). Knowledge-base retrieval is
measured for each fine-tuned encoder and for the pretrained MiniLM (the baseline, same run):
the index holds each entry's main question, every alternative phrasing is a query; top-1,
top-3 accuracy and mean reciprocal rank. A second ``ensure_default_model`` call is timed (cache
hit). One JSON line per run to benchmarks/results/bench_default_model.jsonl.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
logging.getLogger("httpx").setLevel(logging.WARNING)


def kb_retrieval(entries, embed) -> dict[str, float]:
    """Index = main questions; queries = alternatives; rank of the right entry."""
    from models.knowledge import KnowledgeIndex

    index = KnowledgeIndex.build([(e.entry_id, [e.questions[0]], e.answer) for e in entries], embed)
    queries = [(alt, e.entry_id) for e in entries for alt in e.questions[1:]]
    ranks = []
    for text, want in queries:
        hits = [h.entry_id for h in index.search(text, k=len(entries))]
        ranks.append(hits.index(want) + 1)
    r = np.array(ranks)
    return {"n_queries": len(r), "top1": float((r == 1).mean()), "top3": float((r <= 3).mean()),
            "mrr": float((1.0 / r).mean())}


def base_embed():
    import torch

    from models.finetune import collate
    from models.text_encoder import load_base_encoder, load_tokenizer, mean_pool

    tok, enc = load_tokenizer(), load_base_encoder().eval()

    def embed(texts):
        ids, mask = collate(tok(list(texts), truncation=True, max_length=64)["input_ids"])
        with torch.inference_mode():
            v = mean_pool(enc(input_ids=ids, attention_mask=mask).last_hidden_state, mask)
        return torch.nn.functional.normalize(v, dim=-1).numpy()

    return embed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--domain", type=Path, default=ROOT / "assets" / "domain.yaml")
    p.add_argument("--sentiment", type=Path, default=ROOT / "assets" / "sentiment.csv")
    p.add_argument("--keep-weights", type=float, nargs="+", default=[0.0, 1.0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "out" / "default_model")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "bench_default_model.jsonl")
    args = p.parse_args(argv)

    import torch

    from models.default_model import DEFAULT_CONFIG, ensure_default_model
    from models.domain_data import read_domain
    from models.nlu import NluModel

    torch.set_num_threads(args.threads)
    entries = read_domain(args.domain).knowledge
    result: dict = {"bench": "default_model", "domain": str(args.domain), "kb_entries": len(entries),
                    "kb_base_minilm": kb_retrieval(entries, base_embed()), "variants": []}
    print("KB retrieval, pretrained MiniLM:", result["kb_base_minilm"], flush=True)
    for w in args.keep_weights:
        config = replace(DEFAULT_CONFIG, embedding_keep_weight=w, threads=args.threads)
        cache = args.out_dir / f"keep_{w:g}"
        shutil.rmtree(cache, ignore_errors=True)
        t0 = time.perf_counter()
        path = ensure_default_model(args.domain, cache, sentiment_path=args.sentiment, progress=False, config=config)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ensure_default_model(args.domain, cache, sentiment_path=args.sentiment, progress=False, config=config)
        cached_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        model = NluModel.from_pretrained(path)
        load_s = time.perf_counter() - t0
        metrics = json.loads((path / "metrics.json").read_text())
        test = metrics["test"]
        row = {"embedding_keep_weight": w, "first_call_seconds": round(train_s, 1),
               "train_loop_seconds": metrics["train_seconds"], "cached_call_seconds": round(cached_s, 3),
               "load_seconds": round(load_s, 2), "epochs_run": metrics["epochs_run"], "sizes": metrics["sizes"],
               "intent": {k: test["intent"].get(k) for k in ("accuracy", "macro_f1", "closed_set_accuracy", "ece")},
               "oos": test["intent"].get("oos"), "calibration": metrics["calibration"],
               "sentiment": {k: test.get("sentiment", {}).get(k) for k in ("accuracy", "macro_f1", "n")},
               "emotion": {k: test.get("emotion", {}).get(k) for k in ("accuracy", "macro_f1", "n")},
               "kb": kb_retrieval(entries, model.embed)}
        print(json.dumps(row), flush=True)
        result["variants"].append(row)
    from benchmarks.bench_intent import run_info

    result |= run_info()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with args.results.open("a", encoding="utf-8") as f:
        f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
