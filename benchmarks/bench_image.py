"""Image turns: latency (decode, encoder, OCR), receipt reading accuracy, image-kind accuracy.

Builds the image stage exactly as the runtime does (``load_image_analyzer``), then:

1. kind accuracy on the held-out part of the labelled set (rendered pictures plus the shared
   receipts and screenshots): the head with OCR cues, the head without OCR, and the baseline of
   rules on ImageNet labels, all in this run; field reading on the held-out rendered pictures
   (error message and code, card last four digits, receipt total);
2. latency of whole image turns from uploaded bytes (burn-in first): decode + encoder + OCR +
   kind + fields, p50/p95 per stage, with OCR and without (the same uploads, OCR off);
3. receipt totals and dates read exactly on the 40 shared receipts, as the runtime reads them
   (kind predicted) and by the extractor alone, and the same with RapidOCR's default settings
   as the OCR baseline (slower: it upscales receipts and runs the angle classifier).

Appends one JSON line to benchmarks/results/image.jsonl. Run with ``nice -n 10`` on shared
machines. Example::

    nice -n 10 python benchmarks/bench_image.py --threads 2
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.config import DEFAULT_CACHE_DIR, VisionConfig
from modalities.image import load_image
from models.image_analyzer import (
    DEFAULT_PER_KIND,
    KindHeadImageAnalyzer,
    as_image_input,
    load_image_analyzer,
)
from models.image_data import build_labelled_set, receipt_keys
from models.image_fields import read_fields
from models.image_kind import kind_from_labels

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 40_000_000}


def percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"p50": round(float(np.percentile(a, 50)), 1), "p95": round(float(np.percentile(a, 95)), 1),
            "mean": round(float(a.mean()), 1), "n": int(a.size)}


def kind_and_fields(analyzer: KindHeadImageAnalyzer, items: list) -> dict[str, object]:
    """Held-out kind accuracy (with OCR, without, baseline) and field reading on rendered truth."""
    from models.image_data import render

    hits = {"head_with_ocr": 0, "head_no_ocr": 0, "baseline_imagenet_rules": 0}
    by_source: dict[str, dict[str, int]] = {}
    fields_ok: dict[str, list[int]] = {}
    confusions: dict[str, int] = {}
    for item in items:
        picture = as_image_input(item.load())
        analysis = analyzer.analyze(picture)
        guesses = {"head_with_ocr": analysis.kind,
                   "head_no_ocr": analyzer.head.predict(analysis.embedding, picture.width_px, picture.height_px)[0],
                   "baseline_imagenet_rules": kind_from_labels(analysis.labels)}
        source = by_source.setdefault(item.source, {"n": 0} | {k: 0 for k in hits})
        source["n"] += 1
        for name, guess in guesses.items():
            hits[name] += guess == item.kind
            source[name] += guess == item.kind
        if analysis.kind != item.kind:
            key = f"{item.kind}->{analysis.kind}"
            confusions[key] = confusions.get(key, 0) + 1
        if item.source == "rendered":
            for name, value in render(item.kind, item.seed).truth:
                if name in ("error_message", "error_code", "card_last4", "expiry", "total", "date"):
                    fields_ok.setdefault(f"{item.kind}.{name}", [0, 0])
                    fields_ok[f"{item.kind}.{name}"][0] += analysis.field(name) == value
                    fields_ok[f"{item.kind}.{name}"][1] += 1
    n = len(items)
    return {"n_test": n, **{k: round(v / n, 4) for k, v in hits.items()},
            "by_source": {s: {k: (round(v / c["n"], 4) if k != "n" else v) for k, v in c.items()}
                          for s, c in by_source.items()},
            "rendered_fields_exact": {k: f"{ok}/{total}" for k, (ok, total) in sorted(fields_ok.items())},
            "confusions": confusions}


def uploads(items: list, shared: Path | None) -> list[tuple[str, bytes]]:
    """(group, bytes): held-out rendered pictures as JPEG or PNG uploads, and the shared files."""
    out = []
    for i, item in enumerate(it for it in items if it.source == "rendered"):
        buffer = io.BytesIO()
        item.load().save(buffer, format="JPEG" if i % 2 else "PNG", quality=90)
        out.append(("rendered", buffer.getvalue()))
    if shared is not None:
        out += [("shared_receipt", p.read_bytes()) for p in sorted((shared / "receipts").glob("*.jpg"))]
        out += [("shared_screenshot", p.read_bytes()) for p in sorted((shared / "screenshots").glob("*.png"))]
    return out


def latency(analyzer: KindHeadImageAnalyzer, data: list[tuple[str, bytes]], burn_in: int) -> dict[str, object]:
    """Per-stage milliseconds of whole image turns from bytes; the first ``burn_in`` are not counted."""
    for _, blob in data[:burn_in]:
        analyzer.analyze(load_image(blob, **LIMITS))
    stages: dict[str, dict[str, list[float]]] = {}
    analyses = []
    for group, blob in data:
        t0, c0 = time.perf_counter(), time.process_time()
        picture = load_image(blob, **LIMITS)
        decode_ms = (time.perf_counter() - t0) * 1e3
        analysis, timings = analyzer.analyze_timed(picture)
        total = decode_ms + sum(timings.values())
        cpu_ms = (time.process_time() - c0) * 1e3  # all threads of this process: robust to a busy machine
        for name, value in {"decode_ms": decode_ms, **timings, "turn_ms": total, "turn_cpu_ms": cpu_ms}.items():
            for key in (group, "all"):
                stages.setdefault(key, {}).setdefault(name, []).append(value)
        analyses.append((group, analysis))
    return {"stages": {g: {k: percentiles(v) for k, v in s.items()} for g, s in stages.items()}, "analyses": analyses}


def receipt_scores(fields_list: list[dict[str, str]], keys: list[dict]) -> dict[str, str]:
    totals = sum(f.get("total") == k["total"] for f, k in zip(fields_list, keys) if k["total"] is not None)
    dates = sum(f.get("date") == k["date"] for f, k in zip(fields_list, keys))
    n_totals = sum(k["total"] is not None for k in keys)
    return {"totals": f"{totals}/{n_totals}", "dates": f"{dates}/{len(keys)}",
            "totals_and_dates_pct": round(100 * (totals + dates) / max(1, n_totals + len(keys)), 1)}


def ocr_baseline(receipts: list[tuple[Path, dict]]) -> dict[str, object]:
    """RapidOCR with its default settings (angle classifier on, shorter side upscaled to 736 px)."""
    from rapidocr_onnxruntime import RapidOCR

    from agent.messages import OcrLine

    engine = RapidOCR(intra_op_num_threads=2, inter_op_num_threads=1)
    times, fields_list = [], []
    for path, _ in receipts:
        rgb = load_image(path.read_bytes(), **LIMITS).rgb
        bgr = np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])
        t0 = time.perf_counter()
        result, _ = engine(bgr)
        times.append((time.perf_counter() - t0) * 1e3)
        lines = [OcrLine(text=t, confidence=float(c), box=tuple((float(x), float(y)) for x, y in b))
                 for b, t, c in result or ()]
        fields_list.append(dict(read_fields(lines, kind="receipt")))
    return {"ocr_ms": percentiles(times), **receipt_scores(fields_list, [k for _, k in receipts])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(os.environ.get("AGENT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "images",
                        help="shared images folder with receipts/ and screenshots/ (default: %(default)s)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="where the kind head is cached")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (OCR uses 2 onnxruntime threads)")
    parser.add_argument("--device", default="cpu", help="only cpu is supported by this stage")
    parser.add_argument("--burn-in", type=int, default=3)
    parser.add_argument("--no-ocr-baseline", action="store_true", help="skip RapidOCR's default settings")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "image.jsonl")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    shared = args.shared if (args.shared / "receipts").is_dir() else None
    if shared is None:
        print(f"shared images not found at {args.shared}: rendered pictures only", file=sys.stderr)
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    analyzer = load_image_analyzer(VisionConfig(), args.cache_dir, shared_images_dir=shared)
    no_ocr = KindHeadImageAnalyzer(encoder=analyzer.encoder, head=analyzer.head, ocr=None)
    startup_s = time.perf_counter() - t0
    test_items = [it for it in build_labelled_set(per_kind=DEFAULT_PER_KIND, shared_dir=shared) if it.split == "test"]
    kinds = kind_and_fields(analyzer, test_items)
    data = uploads(test_items, shared)
    with_ocr = latency(analyzer, data, args.burn_in)
    without_ocr = latency(no_ocr, data, args.burn_in)
    result: dict[str, object] = {"kind_accuracy": kinds, "latency_with_ocr_ms": with_ocr["stages"],
                                 "latency_without_ocr_ms": without_ocr["stages"]}
    if shared is not None:
        receipts = list(receipt_keys(shared))
        produced = [dict(a.fields) for g, a in with_ocr["analyses"] if g == "shared_receipt"]
        alone = [dict(read_fields(a.ocr_lines, kind="receipt")) for g, a in with_ocr["analyses"] if g == "shared_receipt"]
        result["receipts_as_runtime"] = receipt_scores(produced, [k for _, k in receipts])
        result["receipts_extractor_alone"] = receipt_scores(alone, [k for _, k in receipts])
        result["receipts_kind_receipt"] = sum(a.kind == "receipt" for g, a in with_ocr["analyses"] if g == "shared_receipt")
        if not args.no_ocr_baseline:
            result["ocr_baseline_default_settings"] = ocr_baseline(receipts)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    record = {"bench": "image", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "commit": commit,
              "machine": f"{platform.machine()} {os.cpu_count()} cpus (shared)", "threads": args.threads,
              "load_avg_start": [round(v, 2) for v in load_start], "load_avg_end": [round(v, 2) for v in os.getloadavg()],
              "startup_s": round(startup_s, 1), "head": analyzer.head.info, **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, default=str) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "head"}, indent=1, default=str))
    all_with, all_without = with_ocr["stages"]["all"], without_ocr["stages"]["all"]
    print(f"image turn p50/p95: with OCR {all_with['turn_ms']['p50']}/{all_with['turn_ms']['p95']} ms, "
          f"without {all_without['turn_ms']['p50']}/{all_without['turn_ms']['p95']} ms; "
          f"kind acc {kinds['head_with_ocr']} (no OCR {kinds['head_no_ocr']}, baseline {kinds['baseline_imagenet_rules']}); "
          f"receipts {result.get('receipts_as_runtime')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
