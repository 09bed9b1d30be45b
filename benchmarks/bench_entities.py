"""Text normalisation, entity extraction and redaction: latency per customer message, and the
worst case on 200 KB hostile inputs, against a one-regex baseline measured in the same run.

Messages: every intent example, out-of-scope message and knowledge question in
assets/domain.yaml, every row of assets/sentiment.csv, and Banking77's test set where present
(``--data``, read by path; skipped with a note where absent).

Stages: a burn-in pass over all messages (not timed), then ``--repeats`` timed passes; each call
is timed on its own (``time.perf_counter_ns``) and p50/p95/mean are reported in microseconds.
Baseline: one precompiled regex pass (``\\d+`` findall) over the same message, the floor of any
scan. Hostile inputs (digit runs, "a@" runs, nested brackets, Unicode digits, cue words...) of
200,000 characters are each timed once after one untimed call.
One JSON line per run goes to benchmarks/results/bench_entities.jsonl.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modalities.entities import extract_entities, redact
from modalities.text import normalize_text

DEFAULT_DATA = Path(os.environ.get("AGENT_SHARED_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "benchmarks" / "results" / "bench_entities.jsonl"
TODAY = date(2026, 3, 4)
_DIGITS = re.compile(r"\d+")
HOSTILE = {
    "digits": "1" * 200_000,
    "digits and spaces": "1 " * 100_000,
    "at signs": "a@" * 100_000,
    "dotted domain": "x@" + "a." * 100_000,
    "nested brackets": "(" * 100_000 + ")" * 100_000,
    "bracketed zeros": "(0" * 100_000,
    "unicode digits": "\u0664" * 200_000,
    "pound commas": "£1," * 66_667,
    "number words": "one hundred and " * 12_500,
    "card cues": "card ending " * 16_667,
    "slashes": "on 1/" * 40_000,
    "card numbers": "4111 1111 1111 1111 " * 10_000,
}


def messages(data: Path) -> tuple[list[str], str]:
    domain = yaml.safe_load((ROOT / "assets" / "domain.yaml").read_text(encoding="utf-8"))
    texts = [e for intent in domain["intents"].values() for e in intent["examples"]]
    texts += domain["out_of_scope"]
    texts += [q for k in domain["knowledge"] for q in (k["question"], *k.get("alternatives", []))]
    with (ROOT / "assets" / "sentiment.csv").open(encoding="utf-8", newline="") as f:
        texts += [row["text"] for row in csv.DictReader(f)]
    banking = data / "banking77" / "test.csv"
    if banking.is_file():
        with banking.open(encoding="utf-8", newline="") as f:
            texts += [row["text"] for row in csv.DictReader(f)]
        return texts, "assets + banking77/test.csv"
    print(f"note: {banking} not found; assets only", file=sys.stderr)
    return texts, "assets"


def per_call_us(fn: Callable[[str], object], texts: list[str], repeats: int) -> dict[str, float]:
    for text in texts:  # burn-in
        fn(text)
    times_ns = []
    for _ in range(repeats):
        for text in texts:
            started = time.perf_counter_ns()
            fn(text)
            times_ns.append(time.perf_counter_ns() - started)
    times_ns.sort()
    return {
        "p50_us": times_ns[len(times_ns) // 2] / 1000,
        "p95_us": times_ns[int(len(times_ns) * 0.95)] / 1000,
        "mean_us": statistics.fmean(times_ns) / 1000,
        "calls": len(times_ns),
    }


def hostile_ms() -> dict[str, dict[str, float]]:
    out = {}
    for name, text in HOSTILE.items():
        row = {}
        for label, fn in (("extract", _extract), ("redact", redact), ("baseline", _baseline)):
            fn(text)  # burn-in
            started = time.perf_counter()
            fn(text)
            row[f"{label}_ms"] = (time.perf_counter() - started) * 1000
        out[name] = row
    return out


def _extract(text: str) -> object:
    return extract_entities(text, today=TODAY)


def _baseline(text: str) -> object:
    return _DIGITS.findall(text)


def _normalize(text: str) -> object:
    return normalize_text(text, max_chars=2000)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="shared data folder (default: %(default)s)"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed passes over the messages (default: %(default)s)"
    )
    parser.add_argument("--no-hostile", action="store_true", help="skip the 200 KB hostile inputs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON lines file (default: %(default)s)")
    args = parser.parse_args()

    texts, source = messages(args.data)
    stages = (("baseline_regex", _baseline), ("normalize_text", _normalize), ("extract_entities", _extract),
              ("redact", redact))  # fmt: skip
    results: dict[str, object] = {name: per_call_us(fn, texts, args.repeats) for name, fn in stages}
    if not args.no_hostile:
        results["hostile_200k"] = hostile_ms()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    record = {
        "bench": "entities",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "commit": commit.stdout.strip(),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs".strip(),
        "python": platform.python_version(),
        "messages": len(texts),
        "source": source,
        "mean_chars": round(statistics.fmean(len(t) for t in texts), 1),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    for name in ("baseline_regex", "normalize_text", "extract_entities", "redact"):
        r = results[name]
        assert isinstance(r, dict)
        print(f"{name:17s} p50 {r['p50_us']:8.1f} us  p95 {r['p95_us']:8.1f} us  mean {r['mean_us']:8.1f} us")
    if "hostile_200k" in results:
        hostile = results["hostile_200k"]
        assert isinstance(hostile, dict)
        worst = {
            k: max(row[k] for row in hostile.values()) for k in ("extract_ms", "redact_ms", "baseline_ms")
        }
        print("hostile 200 KB, worst of", len(hostile), "inputs:", {k: round(v, 1) for k, v in worst.items()})
    print(f"{len(texts)} messages ({source}), mean {record['mean_chars']} chars; appended to {args.out}")


if __name__ == "__main__":
    main()
