"""Rasa action server: webhook round trip p50/p95 and requests per second with N concurrent clients.

Two real rasa-sdk action servers are started in one run, one after the other, on this machine:

  baseline  ``python -m rasa_sdk --actions rasa_fixed_action``: an action that returns a fixed
            response (benchmarks/rasa_fixed_action.py), i.e. what rasa-sdk itself costs;
  ours      ``python -m rasa_sdk --actions agent.channels.rasa_action`` with the runtime
            in-process (``load_agent``: the real fine-tuned text model, a real Redis), measured
            for ``action_agent_respond`` (a whole turn), ``action_agent_sentiment`` (the text
            model only, nothing stored) and ``action_agent_profile`` (a Redis read).

Every request is a webhook body of the shape Rasa 3 sends (tracker with events, slots,
latest_message, the example domain), with customer messages from Banking77's test set
(``--data``, read by path; a few built-in messages where it is absent). Each client keeps its own
conversation. A burn-in stage (not timed) precedes each measured stage. ``--models fake`` swaps
the text model for the keyword fake of the tests, to see the cost of our layers without it.
One JSON line per run goes to benchmarks/results/bench_rasa.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.channels.rasa_payloads import webhook
from tests.channels.rasa_server_process import ActionServerProcess

DEFAULT_DATA = Path(os.environ.get("AGENT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "banking77" / "test.csv"
FALLBACK_TEXTS = ["I lost my card yesterday", "why was my payment declined?", "I want a refund for this",
                  "my transfer has not arrived", "how do I change my address", "what is my balance"]
SCENARIOS = {"respond": "action_agent_respond", "sentiment": "action_agent_sentiment", "profile": "action_agent_profile"}


def texts_from(path: Path, n: int, seed: int) -> tuple[list[str], str]:
    if not path.is_file():
        print(f"note: {path} not found; using {len(FALLBACK_TEXTS)} built-in messages", file=sys.stderr)
        return FALLBACK_TEXTS, "built-in"
    with path.open(encoding="utf-8", newline="") as f:
        rows = [r["text"] for r in csv.DictReader(f)]
    random.Random(seed).shuffle(rows)
    return rows[:n], str(path)


def bodies(action: str, texts: list[str], n: int, clients: int, tag: str) -> list[list[dict[str, Any]]]:
    """``clients`` lists of webhook bodies; client k talks in conversation ``bench-<tag>-k``."""
    out: list[list[dict[str, Any]]] = [[] for _ in range(clients)]
    for i in range(n):
        k = i % clients
        text = texts[i % len(texts)]
        history = [("user", texts[(i + 1) % len(texts)]), ("bot", "Thanks, I can help with that."), ("user", text)]
        out[k].append(webhook(action, f"bench-{tag}-{k}", history, metadata={"user_id": f"bench-user-{tag}-{k}"}))
    return out


async def run_stage(url: str, per_client: list[list[dict[str, Any]]]) -> tuple[list[float], float, int]:
    """Send each client's bodies in order, clients concurrently; latencies (s), wall time (s), failures."""
    latencies: list[float] = []
    failures = 0

    async def client(items: list[dict[str, Any]]) -> None:
        nonlocal failures
        async with httpx.AsyncClient(timeout=300) as http:
            for body in items:
                started = time.perf_counter()
                response = await http.post(url + "/webhook", json=body)
                latencies.append(time.perf_counter() - started)
                decision = [e.get("value") for e in response.json().get("events", [])
                            if e.get("name") == "agent_decision"] if response.status_code == 200 else []
                if response.status_code != 200 or "unavailable" in decision:
                    failures += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(items) for items in per_client))
    return latencies, time.perf_counter() - started, failures


def measure(server: ActionServerProcess, action: str, texts: list[str], args: argparse.Namespace, tag: str) -> dict[str, Any]:
    asyncio.run(run_stage(server.url, bodies(action, texts, args.burn_in, args.clients, tag + "-burn")))
    latencies, wall_s, failures = asyncio.run(run_stage(server.url, bodies(action, texts, args.requests, args.clients, tag)))
    ordered = sorted(latencies)
    result = {
        "action": action, "requests": len(latencies), "clients": args.clients, "failures": failures,
        "p50_ms": round(1000 * statistics.median(ordered), 2),
        "p95_ms": round(1000 * ordered[max(0, round(0.95 * len(ordered)) - 1)], 2),
        "mean_ms": round(1000 * statistics.fmean(ordered), 2),
        "requests_per_s": round(len(latencies) / wall_s, 2),
    }
    print(f"{tag:>10} {action:<24} p50 {result['p50_ms']:8.1f} ms  p95 {result['p95_ms']:8.1f} ms  "
          f"{result['requests_per_s']:7.1f} req/s  failures {failures}", flush=True)
    return result


def server_env(args: argparse.Namespace, prefix: str) -> dict[str, str]:
    env = {"AGENT_REDIS_URL": args.redis_url, "AGENT_KEY_PREFIX": prefix, "AGENT_NLU_THREADS": str(args.threads),
           "AGENT_VISION_PREPARE_ON_START": "0",  # text turns only: no image models loading meanwhile
           "AGENT_LOG_LEVEL": "WARNING", "AGENT_RASA_START_TIMEOUT_S": "3600"}
    if args.models == "fake":
        env["AGENT_RASA_AGENT_FACTORY"] = "tests.channels.rasa_fake_agent:build_agent"
    elif args.model_dir:
        env["AGENT_MODEL_DIR"] = str(args.model_dir)
    return env


def clean_redis(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for pattern in (f"{prefix}:*", f"*{{{prefix}*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    client.close()


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=False).stdout.strip()
    except OSError:
        return ""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=400, help="measured requests per action (default %(default)s)")
    p.add_argument("--burn-in", type=int, default=40, help="untimed requests before each measured stage")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default %(default)s)")
    p.add_argument("--scenarios", default="respond,sentiment,profile", help="of " + ",".join(SCENARIOS))
    p.add_argument("--models", choices=("real", "fake"), default="real", help="real text model, or the tests' fake")
    p.add_argument("--model-dir", type=Path, default=os.environ.get("AGENT_MODEL_DIR"),
                   help="a trained model (default: AGENT_MODEL_DIR, else the default model from the cache)")
    p.add_argument("--threads", type=int, default=2, help="torch threads in the action server")
    p.add_argument("--redis-url", default=os.environ.get("AGENT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Banking77 test.csv (read by path)")
    p.add_argument("--device", default="cpu", help="only cpu: the action server runs the model on CPU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_rasa.jsonl")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    texts, source = texts_from(args.data, 2000, args.seed)
    load_before = os.getloadavg()[0]
    results: list[dict[str, Any]] = []
    with ActionServerProcess({}, actions="rasa_fixed_action", cwd=ROOT / "benchmarks") as baseline:
        results.append({"server": "baseline", **measure(baseline, "action_fixed_response", texts, args, "baseline")})
    prefix = f"bench-rasa-{uuid.uuid4().hex[:8]}"
    try:
        with ActionServerProcess(server_env(args, prefix)) as ours:
            ours.wait_healthy()
            for name in args.scenarios.split(","):
                results.append({"server": "ours", **measure(ours, SCENARIOS[name.strip()], texts, args, "ours")})
    finally:
        clean_redis(args.redis_url, prefix)
    record = {"bench": "rasa", "commit": commit(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)", "python": platform.python_version(),
              "models": args.models, "model_dir": str(args.model_dir or ""), "data": source, "threads": args.threads,
              "burn_in": args.burn_in, "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
              "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    print(f"load average (1 min) before/after: {record['load_average_1min']}; appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
