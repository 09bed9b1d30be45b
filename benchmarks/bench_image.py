"""Image turns: latency (decode, encoder, OCR), receipt reading accuracy, image-kind accuracy.

Builds the image stage exactly as the runtime does (``load_image_analyzer``; the kind head is
trained on first use, with the shared receipts and screenshots when present), then sends uploads
(bytes: rendered pictures saved as JPEG or PNG, and the shared files) through whole image turns,
decode + encoder + OCR + kind + fields, once with OCR and once without, after a burn-in:

- latency p50/p95 per stage and per group, wall clock and CPU time of the process;
- image-kind accuracy on pictures the head never saw: the held-out quarter of the labelled set
  (rendered + shared) and a fresh rendered set (other seeds), for the head with OCR, the head
  without OCR, and the baseline of rules on ImageNet labels, all in this run;
- fields read exactly on the fresh rendered pictures (their drawn truth), and totals and dates
  of the 40 shared receipts (as the runtime reads them, and by the extractor alone);
- the OCR baseline: RapidOCR with its default settings on the 40 receipts (time, totals, dates);
- the head the runtime trains by default (rendered pictures only) on all 44 shared files.

Appends one JSON line to benchmarks/results/image.jsonl. Run with ``nice -n 10`` on shared
machines: ``nice -n 10 python benchmarks/bench_image.py --threads 2``.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# OpenMP threads that busy-wait make torch 20x slower on shared cores (measured: EfficientNet
# 1.8 s instead of 90 ms at load 10); passive waiting must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from agent.config import DEFAULT_CACHE_DIR, VisionConfig
from modalities.image import load_image
from models.image_analyzer import DEFAULT_PER_KIND, KindHeadImageAnalyzer, default_head, load_image_analyzer
from models.image_data import build_labelled_set, receipt_keys, render
from models.image_fields import read_fields
from models.image_kind import kind_from_labels, ocr_cues

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 40_000_000}
FRESH_SEED = 7  # rendered pictures with seeds no training or rule-writing looked at


@dataclass(frozen=True, slots=True, kw_only=True)
class Upload:
    group: str  # "rendered" | "rendered_fresh" | "shared_receipt" | "shared_screenshot"
    kind: str
    held_out: bool  # never seen by the kind head
    truth: tuple[tuple[str, str], ...]
    data: bytes
    key: dict | None = None  # a shared receipt's key


def percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {
        "p50": round(float(np.percentile(a, 50)), 1),
        "p95": round(float(np.percentile(a, 95)), 1),
        "mean": round(float(a.mean()), 1),
        "n": int(a.size),
    }


def _encoded(picture, index: int) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG" if index % 2 else "PNG", quality=90)
    return buffer.getvalue()


def build_uploads(shared: Path | None, per_kind_fresh: int) -> list[Upload]:
    items = build_labelled_set(per_kind=DEFAULT_PER_KIND, shared_dir=shared)
    out = [
        Upload(
            group="rendered",
            kind=it.kind,
            held_out=True,
            truth=render(it.kind, it.seed).truth,
            data=_encoded(it.load(), i),
        )
        for i, it in enumerate(it for it in items if it.split == "test" and it.source == "rendered")
    ]
    for i, it in enumerate(build_labelled_set(per_kind=per_kind_fresh, seed=FRESH_SEED)):
        drawn = render(it.kind, it.seed)
        out.append(
            Upload(
                group="rendered_fresh",
                kind=it.kind,
                held_out=True,
                truth=drawn.truth,
                data=_encoded(drawn.image, i),
            )
        )
    if shared is not None:
        split = {it.path: it.split for it in items if it.path is not None}
        keys = dict(receipt_keys(shared))
        for path in sorted((shared / "receipts").glob("*.jpg")) + sorted(
            (shared / "screenshots").glob("*.png")
        ):
            kind = "receipt" if path.suffix == ".jpg" else "screenshot"
            out.append(
                Upload(
                    group=f"shared_{kind}",
                    kind=kind,
                    held_out=split[path] == "test",
                    truth=(),
                    data=path.read_bytes(),
                    key=keys.get(path),
                )
            )
    return out


def run_turns(
    analyzers: dict[str, KindHeadImageAnalyzer], uploads: list[Upload], burn_in: int
) -> dict[str, list[tuple[Upload, object, dict]]]:
    """Whole image turns from bytes, every upload through each analyzer in turn (interleaved, so
    a machine that gets busier or a runtime that warms up affects them alike); per analyzer and
    upload the analysis and stage milliseconds (wall, and CPU time of the process, which a busy
    shared machine inflates less)."""
    for upload in uploads[:burn_in]:
        for analyzer in analyzers.values():
            analyzer.analyze(load_image(upload.data, **LIMITS))
    out: dict[str, list[tuple[Upload, object, dict]]] = {name: [] for name in analyzers}
    for upload in uploads:
        for name, analyzer in analyzers.items():
            t0, c0 = time.perf_counter(), time.process_time()
            picture = load_image(upload.data, **LIMITS)
            decode_ms = (time.perf_counter() - t0) * 1e3
            analysis, timings = analyzer.analyze_timed(picture)
            cpu_ms = (time.process_time() - c0) * 1e3
            out[name].append(
                (
                    upload,
                    analysis,
                    {
                        "decode_ms": decode_ms,
                        **timings,
                        "turn_ms": decode_ms + sum(timings.values()),
                        "turn_cpu_ms": cpu_ms,
                    },
                )
            )
    return out


def latency_table(turns: list) -> dict[str, dict[str, dict[str, float]]]:
    groups: dict[str, dict[str, list[float]]] = {}
    for upload, _, timings in turns:
        for group in (upload.group, "all"):
            for name, value in timings.items():
                groups.setdefault(group, {}).setdefault(name, []).append(value)
    return {g: {k: percentiles(v) for k, v in stages.items()} for g, stages in groups.items()}


def kind_accuracy(with_ocr: list, without_ocr: list) -> dict[str, object]:
    """Accuracy on held-out uploads, overall and per group, for both heads and the baseline."""
    rows = [
        (u, a.kind, b.kind, kind_from_labels(a.labels))
        for (u, a, _), (_, b, _) in zip(with_ocr, without_ocr)
        if u.held_out
    ]
    out: dict[str, object] = {}
    for group in ["all", *sorted({r[0].group for r in rows})]:
        chosen = [r for r in rows if group == "all" or r[0].group == group]
        out[group] = {"n": len(chosen)} | {
            name: round(sum(r[i] == r[0].kind for r in chosen) / len(chosen), 4)
            for i, name in ((1, "head_with_ocr"), (2, "head_no_ocr"), (3, "baseline_imagenet_rules"))
        }
    confusions: dict[str, int] = {}
    for upload, kind, _, _ in rows:
        if kind != upload.kind:
            confusions[f"{upload.kind}->{kind}"] = confusions.get(f"{upload.kind}->{kind}", 0) + 1
    out["confusions_with_ocr"] = confusions
    return out


def production_head_on_shared(
    analyzer: KindHeadImageAnalyzer, turns: list, cache_dir: Path
) -> dict[str, object]:
    """The head the runtime trains by default (rendered pictures only, no shared data) on every
    shared file, none of which it saw; OCR lines and embeddings are reused from ``turns``."""
    started = time.perf_counter()
    head = default_head(analyzer.encoder, analyzer.ocr, cache_dir)
    out: dict[str, object] = {"load_or_train_s": round(time.perf_counter() - started, 1)}
    for group in ("shared_receipt", "shared_screenshot"):
        hits = {"head_with_ocr": 0, "head_no_ocr": 0, "n": 0}
        for upload, analysis, _ in turns:
            if upload.group != group:
                continue
            picture = load_image(upload.data, **LIMITS)
            size = (picture.width_px, picture.height_px)
            cues = ocr_cues(analysis.ocr_lines, *size)
            hits["head_with_ocr"] += head.predict(analysis.embedding, *size, cues)[0] == upload.kind
            hits["head_no_ocr"] += head.predict(analysis.embedding, *size)[0] == upload.kind
            hits["n"] += 1
        out[group] = hits
    return out


def rendered_fields(turns: list) -> dict[str, str]:
    """Fields read on the fresh rendered pictures against what was drawn: exactly, and ignoring
    spaces and case (OCR often drops the spaces of JPEG-compressed text: "Cardpaymentfailed")."""
    counts: dict[str, list[int]] = {}
    for upload, analysis, _ in turns:
        if upload.group != "rendered_fresh":
            continue
        for name, value in upload.truth:
            if name in ("total", "date", "merchant", "error_message", "error_code", "card_last4", "expiry"):
                hit = counts.setdefault(f"{upload.kind}.{name}", [0, 0, 0])
                read = analysis.field(name)
                hit[0] += read == value
                hit[1] += read is not None and _squash(read) == _squash(value)
                hit[2] += 1
    return {k: f"{ok}/{n} ({loose}/{n} ignoring spaces)" for k, (ok, loose, n) in sorted(counts.items())}


def _squash(text: str) -> str:
    return "".join(text.split()).lower()


def receipt_scores(fields_list: list[dict[str, str]], keys: list[dict]) -> dict[str, object]:
    totals = sum(f.get("total") == k["total"] for f, k in zip(fields_list, keys) if k["total"] is not None)
    dates = sum(f.get("date") == k["date"] for f, k in zip(fields_list, keys))
    n_totals = sum(k["total"] is not None for k in keys)
    return {
        "totals": f"{totals}/{n_totals}",
        "dates": f"{dates}/{len(keys)}",
        "totals_and_dates_pct": round(100 * (totals + dates) / max(1, n_totals + len(keys)), 1),
    }


def ocr_baseline(receipts: list[Upload]) -> dict[str, object]:
    """RapidOCR with its default settings (angle classifier on, shorter side upscaled to 736 px)."""
    from rapidocr_onnxruntime import RapidOCR

    from agent.messages import OcrLine

    engine = RapidOCR(intra_op_num_threads=2, inter_op_num_threads=1)
    times, cpu, fields_list = [], [], []
    for upload in receipts:
        rgb = load_image(upload.data, **LIMITS).rgb
        bgr = np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])
        t0, c0 = time.perf_counter(), time.process_time()
        result, _ = engine(bgr)
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
        lines = [
            OcrLine(text=t, confidence=float(c), box=tuple((float(x), float(y)) for x, y in b))
            for b, t, c in result or ()
        ]
        fields_list.append(dict(read_fields(lines, kind="receipt")))
    return {
        "ocr_ms": percentiles(times),
        "ocr_cpu_ms": percentiles(cpu),
        **receipt_scores(fields_list, [u.key for u in receipts]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--shared",
        type=Path,
        default=Path(os.environ.get("AGENT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "images",
        help="shared images folder with receipts/ and screenshots/ (default: %(default)s)",
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="where the kind head is cached"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads (OCR uses 2 onnxruntime threads)"
    )
    parser.add_argument("--device", default="cpu", help="only cpu: the image stage runs on CPU")
    parser.add_argument("--burn-in", type=int, default=3)
    parser.add_argument("--fresh-per-kind", type=int, default=10, help="fresh rendered pictures per kind")
    parser.add_argument("--no-ocr-baseline", action="store_true", help="skip RapidOCR's default settings")
    parser.add_argument(
        "--limit", type=int, default=0, help="at most this many uploads per group (smoke runs)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "image.jsonl")
    parser.add_argument("--compare-read-all", action="store_true",
                        help="also time OCR on every picture (vision.ocr_skip_kinds empty), interleaved in the same run")
    args = parser.parse_args()
    if args.device != "cpu":
        parser.error(f"--device: expected 'cpu', got {args.device!r}")

    import torch

    torch.set_num_threads(args.threads)
    shared = args.shared if (args.shared / "receipts").is_dir() else None
    if shared is None:
        print(f"shared images not found at {args.shared}: rendered pictures only", file=sys.stderr)
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    analyzer = load_image_analyzer(VisionConfig(), args.cache_dir, shared_images_dir=shared)
    startup_s = time.perf_counter() - t0
    no_ocr = KindHeadImageAnalyzer(encoder=analyzer.encoder, head=analyzer.head, ocr=None)
    uploads = build_uploads(shared, args.fresh_per_kind)
    if args.limit:
        uploads = [
            u for u in uploads if sum(v.group == u.group for v in uploads[: uploads.index(u)]) < args.limit
        ]
    analyzers = {"with_ocr": analyzer, "without_ocr": no_ocr}
    if args.compare_read_all:
        analyzers["read_all"] = KindHeadImageAnalyzer(encoder=analyzer.encoder, head=analyzer.head, ocr=analyzer.ocr)
    turns = run_turns(analyzers, uploads, args.burn_in)
    with_ocr, without_ocr = turns["with_ocr"], turns["without_ocr"]
    skipped: dict[str, dict[str, int]] = {}
    for upload, analysis, _ in with_ocr:
        for group in (upload.group, "all"):
            row = skipped.setdefault(group, {"n": 0, "ocr_skipped": 0, "skipped_but_kind_has_text": 0})
            row["n"] += 1
            row["ocr_skipped"] += analysis.ocr == "skipped"
            row["skipped_but_kind_has_text"] += analysis.ocr == "skipped" and upload.kind not in analyzer.ocr_skip_kinds
    result: dict[str, object] = {
        "n_uploads": len(uploads),
        "ocr_skip": {"kinds": sorted(analyzer.ocr_skip_kinds), "confidence": analyzer.ocr_skip_confidence,
                     "per_group": skipped},
        "latency_with_ocr_ms": latency_table(with_ocr),
        "latency_without_ocr_ms": latency_table(without_ocr),
        "kind_accuracy_held_out": kind_accuracy(with_ocr, without_ocr),
        "rendered_fields_exact": rendered_fields(with_ocr),
    }
    if "read_all" in turns:
        result["latency_with_ocr_read_all_ms"] = latency_table(turns["read_all"])
    receipts = [u for u in uploads if u.group == "shared_receipt"]
    if shared is not None:
        result["production_head_rendered_only_on_shared"] = production_head_on_shared(
            analyzer, with_ocr, args.cache_dir
        )
    if receipts:
        turns = [(u, a) for u, a, _ in with_ocr if u.group == "shared_receipt"]
        keys = [u.key for u, _ in turns]
        result["receipts_as_runtime"] = receipt_scores([dict(a.fields) for _, a in turns], keys)
        result["receipts_extractor_alone"] = receipt_scores(
            [dict(read_fields(a.ocr_lines, kind="receipt")) for _, a in turns], keys
        )
        if not args.no_ocr_baseline:
            result["ocr_baseline_default_settings"] = ocr_baseline(receipts)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    record = {
        "bench": "image",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "commit": commit,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus (shared)",
        "threads": args.threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_avg_start": [round(v, 2) for v in load_start],
        "load_avg_end": [round(v, 2) for v in os.getloadavg()],
        "startup_s": round(startup_s, 1),
        "head": analyzer.head.info,
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, default=str) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "head"}, indent=1, default=str))
    w, wo, acc = (
        result["latency_with_ocr_ms"]["all"],
        result["latency_without_ocr_ms"]["all"],
        result["kind_accuracy_held_out"]["all"],
    )
    print(
        f"image turn p50/p95 ms: with OCR {w['turn_ms']['p50']}/{w['turn_ms']['p95']} "
        f"(cpu {w['turn_cpu_ms']['p50']}/{w['turn_cpu_ms']['p95']}), without OCR {wo['turn_ms']['p50']}/"
        f"{wo['turn_ms']['p95']}; kind {acc['head_with_ocr']} (no OCR {acc['head_no_ocr']}, ImageNet rules "
        f"{acc['baseline_imagenet_rules']}); receipts {result.get('receipts_as_runtime')}; OCR skipped on "
        f"{skipped['all']['ocr_skipped']} of {skipped['all']['n']} uploads"
    )
    if "latency_with_ocr_read_all_ms" in result:
        r = result["latency_with_ocr_read_all_ms"]["all"]  # type: ignore[index]
        print(f"OCR on every picture (same run): turn p50/p95 ms {r['turn_ms']['p50']}/{r['turn_ms']['p95']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
