"""OCR settings side by side on the same pictures, interleaved (each picture read by every
variant in turn, so a busy machine slows them alike): wall time per kind, how similar each
variant's text is to the first variant's, and receipt totals and dates read exactly.

    python benchmarks/explore_ocr_settings.py [--variants b8:8:960,b4:4:960] [--per-kind 6]

A variant is ``name:rec_batch:det_limit_side_px[:rec_workers[:simplify]]`` (workers default 1;
simplify 1 or 0: the simplified ONNX graphs of ``models.ocr_graph`` or the shipped ones, default 1). Pictures: rendered receipts, screenshots,
cards and documents (seed 7, not the labelled set's) and shared receipts 020-039.
"""

from __future__ import annotations

import argparse
import difflib
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
DEFAULT_SHARED = ROOT.parent / "shared" / "data" / "images"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="b8:8:960,b4:4:960,b4d736:4:736")
    parser.add_argument("--per-kind", type=int, default=6)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="shared images folder (receipts/)")
    args = parser.parse_args(argv)

    from PIL import Image

    from models.image_data import build_labelled_set, receipt_keys
    from models.image_fields import read_fields
    from models.ocr import OcrSettings, RapidOcrRecognizer

    pictures = [(it.kind, it.load(), None) for it in build_labelled_set(per_kind=args.per_kind, seed=7)
                if it.kind in ("receipt", "screenshot", "card", "document")]
    if (args.shared / "receipts").is_dir():
        keys = list(receipt_keys(args.shared))[20:40]
        pictures += [("shared_receipt", Image.open(path).convert("RGB"), key) for path, key in keys]
    else:
        print(f"shared receipts not found under {args.shared}; rendered pictures only", file=sys.stderr)
    variants = {}
    for spec in args.variants.split(","):
        name, batch, det, *extra = spec.split(":")
        variants[name] = RapidOcrRecognizer(OcrSettings(
            rec_batch=int(batch), det_limit_side_px=int(det), rec_workers=int(extra[0]) if extra else 1,
            simplify_graphs=extra[1:2] != ["0"],
        ))
        variants[name].read_pil(pictures[0][1])  # warm-up
    times: dict[str, list[tuple[str, float]]] = {n: [] for n in variants}
    texts: dict[str, list] = {n: [] for n in variants}
    for kind, picture, _ in pictures:
        for name, ocr in variants.items():
            start = time.perf_counter()
            texts[name].append(ocr.read_pil(picture))
            times[name].append((kind, (time.perf_counter() - start) * 1e3))
    first = next(iter(variants))
    for name in variants:
        per_kind: dict[str, list[float]] = {}
        for kind, ms in times[name]:
            per_kind.setdefault(kind, []).append(ms)
        similarity = [difflib.SequenceMatcher(None, "\n".join(x.text for x in a), "\n".join(x.text for x in b)).ratio()
                      for a, b in zip(texts[first], texts[name], strict=True)]
        fields = [dict(read_fields(lines, kind="receipt")) for lines in texts[name]]
        keyed = [(f, key) for f, (_, _, key) in zip(fields, pictures, strict=True) if key is not None]
        totals = sum(f.get("total") == k["total"] for f, k in keyed if k["total"] is not None)
        dates = sum(f.get("date") == k["date"] for f, k in keyed)
        print(f"{name:8s} p50 ms " + "  ".join(f"{k} {statistics.median(v):.0f}" for k, v in per_kind.items())
              + f" | text similarity to {first} {np.mean(similarity):.4f} | receipts: totals {totals}, "
              f"dates {dates} of {len(keyed)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
