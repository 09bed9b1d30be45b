"""End-to-end text turn latency and throughput, built with the same ``load_agent`` as production.

Stage 1, in-process: ``Agent.handle_turn`` p50/p95 for {in-memory, Redis} store x {real
fine-tuned model, keyword fake (baseline: what the rest of the turn costs)}.
Stage 2, over HTTP: ``agent serve`` in a subprocess, C concurrent clients (default 16) posting
turns for a fixed time; turns/s and p50/p95, with micro-batching on and off (baseline).

    python benchmarks/bench_turn.py [--model-dir DIR] [--redis-url URL] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MESSAGES = (
    "I lost my card on the train this morning",
    "my new card still hasn't arrived after two weeks",
    "why was my payment at the supermarket declined?",
    "I want to dispute a charge of £45 from last Friday",
    "what is the exchange rate for euros today",
    "how much does it cost to use my card abroad",
    "my PIN is blocked after three wrong tries",
    "I can't log into the app, it keeps saying error",
    "thanks, that's helpful",
    "can you tell me my balance please",
    "the transfer to my landlord failed yesterday",
    "I moved house and need to change my address",
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def in_process(model_dir: Path, redis_url: str | None, fake: bool, turns: int,
                     extra_env: dict[str, str]) -> dict[str, float]:
    from agent.config import AgentConfig
    from agent.messages import UserTurn
    from agent.runtime import load_agent

    env = {"AGENT_MODEL_DIR": str(model_dir), "AGENT_KEY_PREFIX": f"bench-{random.randrange(1 << 30)}", **extra_env}
    if redis_url:
        env["AGENT_REDIS_URL"] = redis_url
    agent = load_agent(AgentConfig.from_env(env))
    if fake:
        sys.path.insert(0, str(ROOT))
        from tests.fakes import FakeNlu

        agent._nlu_loader = FakeNlu  # baseline: the turn without the text model
    await agent.start()
    latencies = []
    for i in range(turns + 20):
        turn = UserTurn(conversation_id=f"bench-{i // 10}", channel="api", text=MESSAGES[i % len(MESSAGES)],
                        user_id=f"user-{i // 10}")
        t0 = time.perf_counter()
        await agent.handle_turn(turn)
        if i >= 20:  # burn-in
            latencies.append((time.perf_counter() - t0) * 1000)
    await agent.aclose()
    return {"p50_ms": statistics.median(latencies), "p95_ms": pct(latencies, 0.95), "n": len(latencies)}


async def http_load(port: int, clients: int, seconds: float) -> dict[str, float]:
    import httpx

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(k: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            i = 0
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                r = await http.post(f"/v1/conversations/load-{k}-{i // 8}/turns",
                                    json={"text": MESSAGES[(i + k) % len(MESSAGES)], "user_id": f"u{k}"})
                if r.status_code == 200:
                    latencies.append((time.perf_counter() - t0) * 1000)
                else:
                    errors += 1
                i += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - started
    return {"turns_per_s": len(latencies) / elapsed, "p50_ms": statistics.median(latencies),
            "p95_ms": pct(latencies, 0.95), "errors": errors, "n": len(latencies)}


def start_server(model_dir: Path, redis_url: str | None, micro_batch: int,
                 extra_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "AGENT_MODEL_DIR": str(model_dir), "AGENT_PORT": str(port),
           "AGENT_NLU_MICRO_BATCH": str(micro_batch), "AGENT_LOG_LEVEL": "WARNING",
           "AGENT_VISION_PREPARE_ON_START": "0",  # text turns only: no image models loading meanwhile
           "AGENT_KEY_PREFIX": f"bench-http-{random.randrange(1 << 30)}", **extra_env}
    if redis_url:
        env["AGENT_REDIS_URL"] = redis_url
    proc = subprocess.Popen([sys.executable, "-m", "agent", "serve"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import httpx

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="trained model (default: the default model, trained if needed)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="'' for no Redis stages")
    parser.add_argument("--turns", type=int, default=200, help="measured turns per in-process stage")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each HTTP load stage")
    parser.add_argument("--device", default="cpu", help="only cpu is supported by this script")
    parser.add_argument("--quantize", action="store_true", help="dynamic int8 text model (nlu.quantize)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads of the text model (0: torch's default)")
    parser.add_argument("--skip-in-process", action="store_true")
    args = parser.parse_args()

    model_dir = args.model_dir
    if model_dir is None:
        from agent.config import AgentConfig
        from models.default_model import ensure_default_model

        config = AgentConfig.from_env()
        model_dir = ensure_default_model(config.domain.path, config.nlu.cache_dir)
    redis_url = args.redis_url or None
    extra_env = {"AGENT_NLU_QUANTIZE": "1" if args.quantize else "0", "AGENT_NLU_THREADS": str(args.threads)}
    rows: dict[str, dict[str, float]] = {}
    for store in () if args.skip_in_process else ("memory", "redis") if redis_url else ("memory",):
        for fake in (True, False):
            name = f"in-process {store:<6} {'fake NLU (baseline)' if fake else 'real model'}"
            rows[name] = asyncio.run(in_process(model_dir, redis_url if store == "redis" else None, fake, args.turns,
                                               extra_env))
            print(f"{name:<45} p50 {rows[name]['p50_ms']:7.2f} ms  p95 {rows[name]['p95_ms']:7.2f} ms", flush=True)
    for micro_batch in (1, 32):
        proc, port = start_server(model_dir, redis_url, micro_batch, extra_env)
        try:
            asyncio.run(http_load(port, args.clients, 3.0))  # burn-in
            name = f"HTTP {args.clients} clients, micro-batch {micro_batch}{' (baseline)' if micro_batch == 1 else ''}"
            rows[name] = asyncio.run(http_load(port, args.clients, args.seconds))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        r = rows[name]
        print(f"{name:<45} {r['turns_per_s']:7.1f} turns/s  p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms"
              f"  errors {r['errors']}", flush=True)
    record = {"bench": "turn", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "commit": _commit(),
              "machine": f"{platform.machine()} {os.cpu_count()} cpus (shared)", "load": os.getloadavg()[0],
              "model_dir": str(model_dir), "quantize": args.quantize, "threads": args.threads, "results": rows}
    out = ROOT / "benchmarks" / "results" / "bench_turn.jsonl"
    with out.open("a") as f:
        f.write(json.dumps(record) + "\n")


def _commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    main()
