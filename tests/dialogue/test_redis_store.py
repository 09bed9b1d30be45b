"""The Redis store against real servers: key layout, TTLs, outages, per-turn cost, two processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from agent.errors import DependencyUnavailable
from dialogue.domain import Domain
from dialogue.service import DialogueService
from dialogue.stores.base import CorruptRecord
from dialogue.stores.redis import RedisTrackerStore
from tests.dialogue.conftest import ROOT_DIR, nlu, redis_config, say
from tests.dialogue.redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
async def redis_service(redis_url: str, redis_prefix: str, domain: Domain) -> AsyncIterator[DialogueService]:
    config = redis_config(redis_url, redis_prefix, conversation_ttl_s=3600, profile_ttl_s=86_400, blob_ttl_s=600)
    service = DialogueService(RedisTrackerStore.from_config(config), domain)
    yield service
    await service.aclose()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[RedisServer]:
    try:
        server = RedisServer(tmp_path)
    except FileNotFoundError:
        pytest.skip("redis-server is not installed")
    server.start()
    yield server
    server.stop()


async def test_keys_share_the_conversation_hash_tag_and_have_ttls(redis_service: DialogueService,
                                                                  redis_prefix: str, raw: redis.Redis) -> None:
    out = await say(redis_service, "abc", "human please", nlu("talk_to_human"), user_id="u-1")
    state_key, turns_key = f"{redis_prefix}:{{conv:abc}}:state", f"{redis_prefix}:{{conv:abc}}:turns"
    assert raw.type(state_key) == b"hash" and raw.type(turns_key) == b"list"
    assert key_slot(state_key.encode()) == key_slot(turns_key.encode())
    assert 3590 <= raw.ttl(state_key) <= 3600 and 3590 <= raw.ttl(turns_key) <= 3600
    assert 86_390 <= raw.ttl(f"{redis_prefix}:{{user:u-1}}:profile") <= 86_400
    handoff_key = f"{redis_prefix}:handoff:{out.decision.handoff_id}"  # type: ignore[union-attr]
    assert 3590 <= raw.ttl(handoff_key) <= 3600
    assert raw.xinfo_groups(f"{redis_prefix}:handoffs")[0]["name"] == b"agents"
    assert raw.xlen(f"{redis_prefix}:events") == 2  # the turn and the hand-off


async def test_blob_ttl(redis_service: DialogueService, redis_prefix: str, raw: redis.Redis) -> None:
    import hashlib

    data = b"\xff\xd8\xff" + b"\x01" * 64
    sha = hashlib.sha256(data).hexdigest()
    await redis_service.put_blob(sha, data, content_type="image/jpeg")
    assert 590 <= raw.ttl(f"{redis_prefix}:blob:{sha}") <= 600


async def test_damaged_redis_data_gives_a_clear_error(redis_service: DialogueService, redis_prefix: str,
                                                      raw: redis.Redis) -> None:
    await say(redis_service, "dmg", "hi", nlu("greeting"))
    raw.hset(f"{redis_prefix}:{{conv:dmg}}:state", "d", b"\xff not json")
    with pytest.raises(CorruptRecord, match="unparseable"):
        await say(redis_service, "dmg", "hi", nlu("greeting"))
    raw.delete(f"{redis_prefix}:{{conv:dmg}}:state")
    raw.set(f"{redis_prefix}:{{conv:dmg}}:state", "a string where a hash belongs")
    with pytest.raises(CorruptRecord, match="wrong type"):
        await say(redis_service, "dmg", "hi", nlu("greeting"))
    raw.delete(f"{redis_prefix}:{{conv:dmg}}:state")
    raw.set(f"{redis_prefix}:{{conv:dmg}}:turns", "not a list")
    with pytest.raises(CorruptRecord):
        await say(redis_service, "dmg", "hi", nlu("greeting"))
    assert raw.exists(f"{redis_prefix}:{{conv:dmg}}:state") == 0  # the refused commit wrote nothing


async def test_redis_killed_then_restarted(private_server: RedisServer, domain: Domain) -> None:
    store = RedisTrackerStore.from_config(redis_config(private_server.url, "outage", socket_timeout_s=1.0))
    service = DialogueService(store, domain)
    try:
        await say(service, "o", "before", nlu("greeting"), user_id="u-o")
        private_server.kill()
        with pytest.raises(DependencyUnavailable, match="state store unavailable"):
            await say(service, "o", "while down", nlu("greeting"))
        with pytest.raises(DependencyUnavailable):
            await service.ping()
        private_server.start()  # same port, same directory: the append-only file is replayed
        await service.ping()  # the same service object recovers by itself
        out = await say(service, "o", "after", nlu("greeting"))
        assert out.turn_index == 2
        state, turns = await service.get_conversation("o")
        assert [t.text for t in turns if t.role == "user"] == ["before", "after"]
        assert state.turn_count == len(turns) == 4
    finally:
        await service.aclose()


async def test_redis_paused_mid_conversation(private_server: RedisServer, domain: Domain) -> None:
    store = RedisTrackerStore.from_config(redis_config(private_server.url, "pause", socket_timeout_s=0.5))
    service = DialogueService(store, domain)
    try:
        await say(service, "p", "one", nlu("greeting"))
        private_server.pause()
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable, match="state store unavailable"):
            await say(service, "p", "two", nlu("greeting"))
        assert time.monotonic() - started < 10
        private_server.resume()
        await say(service, "p", "three", nlu("greeting"))
        state, turns = await service.get_conversation("p")
        users = [t.text for t in turns if t.role == "user"]
        assert users[0] == "one" and users[-1] == "three" and len(set(users)) == len(users)
        assert state.turn_count == len(turns) == 2 * len(users)  # whole turns only
        assert [t.index for t in turns] == list(range(len(turns)))
    finally:
        await service.aclose()


def _server_counters(client: redis.Redis) -> tuple[int, int, int]:
    stats = client.info("stats")
    calls = sum(v["calls"] for v in client.info("commandstats").values())
    return int(stats["total_net_input_bytes"]), int(stats["total_net_output_bytes"]), calls


async def test_per_turn_cost_does_not_grow_with_length(private_server: RedisServer, domain: Domain) -> None:
    store = RedisTrackerStore.from_config(redis_config(private_server.url, "cost"))
    service = DialogueService(store, domain)
    client = redis.Redis(port=private_server.port)
    try:
        costs = {}
        for i in range(301):
            before = _server_counters(client)
            await say(service, "long", "what's my balance", nlu("greeting"), user_id="u-long")
            after = _server_counters(client)
            if i in (5, 300):
                costs[i] = tuple(a - b for a, b in zip(after, before))
        (in5, out5, calls5), (in300, out300, calls300) = costs[5], costs[300]
        assert calls300 == calls5  # the same commands: no history re-read or re-written
        assert abs(in300 - in5) <= 0.05 * in5, (in5, in300)  # bytes sent to Redis
        assert abs(out300 - out5) <= 0.05 * out5, (out5, out300)  # bytes read back
        assert client.llen("cost:{conv:long}:turns") == 602
    finally:
        client.close()
        await service.aclose()


def test_two_processes_posting_to_one_conversation(redis_url: str, redis_prefix: str) -> None:
    n_turns = 25
    start_at = time.time() + 3.0
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.dialogue.race_worker", redis_url, redis_prefix, "shared", name,
             str(n_turns), str(start_at)],
            cwd=ROOT_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name in ("alpha", "beta")
    ]
    outputs = [w.communicate(timeout=120) for w in workers]
    retries = 0
    for w, (out, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err[-2000:]
        done, redone = out.split()
        assert int(done) == n_turns
        retries += int(redone)
    print(f"two workers redid {retries} steps after losing a race")  # shown with -s; usually > 0

    async def read() -> list[str]:
        store = RedisTrackerStore.from_config(redis_config(redis_url, redis_prefix))
        try:
            state = await store.load("shared")
            turns = await store.get_turns("shared")
            assert state is not None and state.turn_count == len(turns)
            assert [t.index for t in turns] == list(range(len(turns)))
            return [t.text for t in turns if t.role == "user"]
        finally:
            await store.aclose()

    users = asyncio.run(read())
    expected = [f"{name} {i}" for name in ("alpha", "beta") for i in range(n_turns)]
    assert sorted(users) == sorted(expected)
    assert [u for u in users if u.startswith("alpha")] == [f"alpha {i}" for i in range(n_turns)]  # order kept
