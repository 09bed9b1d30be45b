"""Per-turn cost of the dialogue store as a conversation grows, and DialogueService turn latency.

Stage 1, growth: ``--conversations`` conversations of ``--turns`` turns each go through
``DialogueService.handle_turn`` (hand-made NLU results cycling through a few intents of the
default domain, no model) on four stores side by side in the same run:

* ``redis``: the project's RedisTrackerStore (small state hash + appended turn list, one Lua commit);
* ``memory``: the project's InMemoryTrackerStore;
* ``redis-json-blob`` (baseline): the usual approach, the whole conversation (state and every turn)
  as one JSON value, read with GET and rewritten with SET each turn (WATCH/MULTI version check);
* ``memory-json-blob`` (baseline): the same in process memory.

For turn 1, 100 and 1,000 it reports the median and p95 of the turn's wall time (over a window
of 30 turns ending there, over every long conversation; turn 1 over ``--first-turn-samples`` fresh
conversations) and the bytes the store wrote for it (state, turns, profile and events).

Stage 2, latency: ``--latency-conversations`` fresh conversations of 10 turns on ``redis`` and
``memory``; p50/p95 of ``handle_turn``. A burn-in conversation runs first on every store.
One JSON line per run goes to benchmarks/results/bench_store.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from agent.config import Secret, StoreConfig
from agent.errors import ConcurrentUpdate
from agent.messages import Entity, IntentScore, NluResult, UserTurn
from dialogue import codec
from dialogue.domain import Domain, load_domain
from dialogue.service import DialogueService
from dialogue.state import DialogueState, TurnRecord
from dialogue.stores.base import Commit, encode_commit
from dialogue.stores.memory import InMemoryTrackerStore
from dialogue.stores.redis import RedisTrackerStore

RESULTS = ROOT / "benchmarks" / "results" / "bench_store.jsonl"
CHECKPOINTS = (1, 100, 1000)
WINDOW = 30  # turns ending at each checkpoint: five whole cycles of SCRIPT
SCRIPT = [  # (text, intent, entities): a cycle that never repeats an intent twice in a row
    ("hello there", "greeting", ()),
    ("what's my balance please", "check_balance", ()),
    ("what does the card cost abroad", "card_fees", ()),
    ("what's the euro rate today", "exchange_rate", ()),
    ("thanks a lot", "thanks", ()),
    ("my card ending 4821 got frozen, can I unfreeze it", "freeze_card", (("card_last4", "4821"),)),
]


# --- the baseline: the whole conversation as one JSON value ---------------------------------------


def _blob(state: DialogueState, turns: list[Any], new_turns: tuple[str, ...]) -> str:
    """The whole conversation as one JSON value: the state and every turn so far."""
    data = {"state": codec.to_json_dict(state), "turns": turns + [json.loads(t) for t in new_turns]}
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _unblob(text: str | bytes) -> tuple[DialogueState, list[Any]]:
    """Parse the whole value (the cost the usual approach pays on every load); turns stay dicts."""
    data = json.loads(text)
    return codec.from_json_dict(DialogueState, data["state"], what="state"), data["turns"]


def _turns(raw: list[Any], start: int, stop: int | None) -> list[TurnRecord]:
    return [codec.from_json_dict(TurnRecord, t, what="turn") for t in raw[start:stop]]


class RedisJsonBlobStore(RedisTrackerStore):
    """Baseline: GET the whole conversation, SET it back whole (WATCH for the version check)."""

    def _blob_key(self, conversation_id: str) -> str:
        return f"{self._p}:blob-conv:{conversation_id}"

    async def load(self, conversation_id: str) -> DialogueState | None:
        raw = await self._r.get(self._blob_key(conversation_id))
        self.stats.round_trips += 1
        return _unblob(raw)[0] if raw is not None else None

    async def get_turns(self, conversation_id: str, *, start: int = 0, stop: int | None = None) -> list[TurnRecord]:
        raw = await self._r.get(self._blob_key(conversation_id))
        self.stats.round_trips += 1
        return _turns(_unblob(raw)[1], start, stop) if raw is not None else []

    async def commit(self, commit: Commit) -> None:
        if commit.state is None:
            return await super().commit(commit)
        key = self._blob_key(commit.state.conversation_id)
        enc = encode_commit(commit)
        async with self._r.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                raw = await pipe.get(key)
                state, turns = _unblob(raw) if raw is not None else (None, [])
                if (state.version if state else 0) != commit.state.version - 1:
                    raise ConcurrentUpdate("conversation changed")
                blob = _blob(commit.state, turns, enc.turns)
                pipe.multi()
                pipe.set(key, blob, ex=self._cfg.conversation_ttl_s)
                if enc.profile is not None and commit.profile is not None:
                    pipe.hset(self.profile_key(commit.profile.user_id), mapping={"v": commit.profile.version, "d": enc.profile})
                for type_, cid, data in enc.events:
                    pipe.xadd(self.events_key, {"type": type_, "conversation_id": cid, "data": data},
                              maxlen=self._cfg.stream_maxlen, approximate=True)
                await pipe.execute()
            except WatchError as e:
                raise ConcurrentUpdate("conversation changed") from e
        self.stats.round_trips += 3
        self.stats.count_commit(len(blob.encode()) + (len(enc.profile.encode()) if enc.profile else 0)
                                + sum(len(p.encode()) for e in enc.events for p in e))
        return None


class MemoryJsonBlobStore(InMemoryTrackerStore):
    """Baseline in memory: the conversation is one JSON string, parsed and rebuilt every turn."""

    def __init__(self) -> None:
        super().__init__()
        self._blobs_by_conv: dict[str, str] = {}

    async def load(self, conversation_id: str) -> DialogueState | None:
        await self._tick()
        raw = self._blobs_by_conv.get(conversation_id)
        return _unblob(raw)[0] if raw is not None else None

    async def get_turns(self, conversation_id: str, *, start: int = 0, stop: int | None = None) -> list[TurnRecord]:
        await self._tick()
        raw = self._blobs_by_conv.get(conversation_id)
        return _turns(_unblob(raw)[1], start, stop) if raw is not None else []

    async def commit(self, commit: Commit) -> None:
        if commit.state is None:
            return await super().commit(commit)
        await self._tick()
        cid = commit.state.conversation_id
        raw = self._blobs_by_conv.get(cid)
        state, turns = _unblob(raw) if raw is not None else (None, [])
        if (state.version if state else 0) != commit.state.version - 1:
            raise ConcurrentUpdate("conversation changed")
        enc = encode_commit(commit)
        blob = _blob(commit.state, turns, enc.turns)
        self._blobs_by_conv[cid] = blob
        rest = replace(commit, state=None, turns=())
        if rest.profile is not None or rest.events:
            await super().commit(rest)  # counts the profile and event bytes
        self.stats.count_commit(self.stats.last_commit_bytes + len(blob.encode()))
        self.stats.commits -= 1
        return None


# --- driving turns ------------------------------------------------------------------------------


def _nlu(step: int) -> tuple[str, NluResult]:
    text, intent, entities = SCRIPT[step % len(SCRIPT)]
    ents = tuple(Entity(kind=k, value=v, text=v, start=0, end=len(v)) for k, v in entities)
    result = NluResult(intent=intent, confidence=0.92, ranking=(IntentScore(intent=intent, confidence=0.92),
                       IntentScore(intent="greeting" if intent != "greeting" else "thanks", confidence=0.03)),
                       sentiment_score=0.1, entities=ents)
    return text, result


async def run_conversation(service: DialogueService, n_turns: int, *, user_id: str,
                           offset: int = 0) -> tuple[list[float], list[int]]:
    """Times (ms) and bytes written of each turn of one new conversation, starting at SCRIPT[offset]."""
    cid = f"bench-{uuid.uuid4().hex[:12]}"
    times, sizes = [], []
    for i in range(n_turns):
        text, result = _nlu(offset + i)
        turn = UserTurn(conversation_id=cid, channel="api", text=text, user_id=user_id)
        started = time.perf_counter()
        outcome = await service.handle_turn(turn, result)
        times.append((time.perf_counter() - started) * 1000.0)
        sizes.append(service.store.stats.last_commit_bytes)
        if i == 0 and outcome.state.mode != "bot":
            raise RuntimeError("the benchmark script should never hand off")
    return times, sizes


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def checkpoint_stats(runs: list[tuple[list[float], list[int]]], first_turns: list[float]) -> dict[str, Any]:
    """Turn 1 from many fresh conversations; turn k > 1 from the WINDOW turns ending at k of each long one."""
    out = {}
    for k in CHECKPOINTS:
        times = first_turns if k == 1 else [t for run, _ in runs for t in run[max(0, k - WINDOW):k]]
        out[f"turn_{k}"] = {"p50_ms": round(statistics.median(times), 3), "p95_ms": round(_pct(times, 0.95), 3),
                            "bytes_written": runs[0][1][k - 1]}
    first, last = out[f"turn_{CHECKPOINTS[0]}"], out[f"turn_{CHECKPOINTS[-1]}"]
    out["ratio_last_to_first_p50"] = round(last["p50_ms"] / first["p50_ms"], 3)
    out["ratio_last_to_first_bytes"] = round(last["bytes_written"] / first["bytes_written"], 3)
    return out


async def make_stores(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    config = StoreConfig(redis_url=Secret(args.redis_url), key_prefix=prefix)
    stores: dict[str, Any] = {"memory": InMemoryTrackerStore(), "memory-json-blob": MemoryJsonBlobStore()}
    if not args.no_redis:
        stores["redis"] = RedisTrackerStore.from_config(config)
        stores["redis-json-blob"] = RedisJsonBlobStore.from_config(replace(config))
        await stores["redis"].ping()
    return stores


async def cleanup(url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(keys), 500):
            await client.delete(*keys[i:i + 500])
    finally:
        await client.aclose()


async def bench(args: argparse.Namespace, domain: Domain) -> dict[str, Any]:
    prefix = f"bench-store-{uuid.uuid4().hex[:8]}"
    stores = await make_stores(args, prefix)
    growth: dict[str, Any] = {}
    latency: dict[str, Any] = {}
    try:
        for name, store in stores.items():
            service = DialogueService(store, domain)
            await run_conversation(service, 50, user_id="burn-in")  # burn-in, not timed
            firsts = [(await run_conversation(service, 1, user_id=f"first-{name}-{c}", offset=c))[0][0]
                      for c in range(args.first_turn_samples)]  # a new customer each, every intent alike
            runs = [await run_conversation(service, args.turns, user_id=f"user-{name}-{c}")
                    for c in range(args.conversations)]
            growth[name] = checkpoint_stats(runs, firsts)
            print(f"{name:18s} " + "  ".join(f"turn {k}: {growth[name][f'turn_{k}']['p50_ms']:.2f} ms "
                                               f"{growth[name][f'turn_{k}']['bytes_written']} B" for k in CHECKPOINTS),
                  flush=True)
        for name in ("redis", "memory"):
            if name not in stores:
                continue
            service = DialogueService(stores[name], domain)
            times = []
            for c in range(args.latency_conversations):
                t, _ = await run_conversation(service, 10, user_id=f"lat-{c % 20}")
                times.extend(t)
            latency[name] = {"p50_ms": round(statistics.median(times), 3), "p95_ms": round(_pct(times, 0.95), 3),
                             "turns": len(times)}
            print(f"handle_turn {name:7s} p50 {latency[name]['p50_ms']:.2f} ms  p95 {latency[name]['p95_ms']:.2f} ms",
                  flush=True)
    finally:
        for store in stores.values():
            await store.aclose()
        if not args.no_redis:
            await cleanup(args.redis_url, prefix)
    return {"growth": growth, "handle_turn": latency}


def _commit_id() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default=os.environ.get("AGENT_REDIS_URL", "redis://127.0.0.1:6379/15"))
    parser.add_argument("--no-redis", action="store_true", help="in-memory stores only")
    parser.add_argument("--turns", type=int, default=1000, help="turns per conversation (>= 1000 for turn 1,000)")
    parser.add_argument("--conversations", type=int, default=2, help="long conversations per store")
    parser.add_argument("--first-turn-samples", type=int, default=60, help="fresh conversations timed for turn 1")
    parser.add_argument("--latency-conversations", type=int, default=100)
    parser.add_argument("--domain", type=Path, default=ROOT / "assets" / "domain.yaml")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.turns < max(CHECKPOINTS):
        parser.error(f"--turns must be at least {max(CHECKPOINTS)}")
    results = asyncio.run(bench(args, load_domain(args.domain)))
    line = {"bench": "store", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "commit": _commit_id(),
            "machine": f"{platform.machine()} {os.cpu_count()} CPUs (shared)", "python": platform.python_version(),
            "config": {"turns": args.turns, "conversations": args.conversations,
                       "first_turn_samples": args.first_turn_samples,
                       "latency_conversations": args.latency_conversations, "redis": not args.no_redis},
            "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
    print(json.dumps(line["results"]["growth"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
