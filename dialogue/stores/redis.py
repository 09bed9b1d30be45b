"""The Redis tracker store (redis-py asyncio).

Key layout (``P`` is the configured key prefix; see ``docs/state-in-redis.md``)::

    P:{conv:<id>}:state     hash  v (version), d (state JSON), c (last commit id)
    P:{conv:<id>}:turns     list  one JSON turn per entry, appended, never rewritten
    P:{user:<id>}:profile   hash  v, d, c
    P:handoff:<id>          hash  v, d, c, sid (its entry in the hand-off stream)
    P:handoffs              stream of new hand-offs; consumer group "agents"
    P:handoffs:<status>     sorted sets (pending, claimed, released) of hand-off ids by creation time
    P:events                stream of turns, decisions and hand-offs (MAXLEN ~ cap)
    P:blob:<sha256>         hash  d (bytes), t (content type)

A conversation's keys share the hash tag ``{conv:<id>}``, so in Redis Cluster they sit on one
shard. Each step is one ``EVALSHA`` of ``commit.lua``, which checks versions and then writes
state, turns, profile, hand-off and events, or nothing. Connection errors and timeouts become
``DependencyUnavailable("state store unavailable")``; the connection pool reconnects on the next
call, so the store recovers by itself when Redis comes back.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

import redis.asyncio as aioredis
from redis import exceptions as rex
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from agent.config import StoreConfig
from agent.errors import ConcurrentUpdate, DependencyUnavailable
from dialogue.state import HANDOFF_STATUSES, DialogueState, HandoffRecord, TurnRecord, UserProfile
from dialogue.stores.base import (
    Commit,
    CorruptRecord,
    StoreStats,
    check_blob,
    check_id,
    decode_record,
    encode_commit,
)

GROUP = "agents"
_COMMIT_LUA = (Path(__file__).with_name("commit.lua")).read_text(encoding="utf-8")
_UNAVAILABLE = (rex.ConnectionError, rex.TimeoutError, rex.ReadOnlyError, rex.MasterDownError,
                rex.TryAgainError, rex.ClusterDownError, rex.OutOfMemoryError, OSError, TimeoutError)

P = ParamSpec("P")
R = TypeVar("R")


def _translated(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn Redis outages into ``DependencyUnavailable`` and wrong key types into ``CorruptRecord``."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except _UNAVAILABLE as e:
            raise DependencyUnavailable(f"state store unavailable ({type(e).__name__})") from e
        except rex.ResponseError as e:
            if "WRONGTYPE" in str(e) or "CORRUPT" in str(e):
                raise CorruptRecord(f"state store holds a key of the wrong type: {e}") from e
            raise

    return wrapper


class RedisTrackerStore:
    """``TrackerStore`` on a Redis server (standalone or Sentinel-managed primary)."""

    def __init__(self, client: aioredis.Redis, *, config: StoreConfig) -> None:
        self._r = client
        self._cfg = config
        self._p = config.key_prefix
        self._commit_script = client.register_script(_COMMIT_LUA)
        self.stats = StoreStats()

    @classmethod
    def from_config(cls, config: StoreConfig) -> RedisTrackerStore:
        """A store with its own connection pool; reconnects (with a short back-off) after an outage."""
        client = aioredis.Redis.from_url(
            config.redis_url.reveal(),
            socket_timeout=config.socket_timeout_s,
            socket_connect_timeout=config.socket_timeout_s,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
            health_check_interval=30,
        )
        return cls(client, config=config)

    # --- keys ---------------------------------------------------------------------------

    def _conv(self, conversation_id: str, part: str) -> str:
        return f"{self._p}:{{conv:{conversation_id}}}:{part}"

    def _profile_key(self, user_id: str) -> str:
        return f"{self._p}:{{user:{user_id}}}:profile"

    def _handoff_key(self, handoff_id: str) -> str:
        return f"{self._p}:handoff:{handoff_id}"

    def _status_key(self, status: str) -> str:
        return f"{self._p}:handoffs:{status}"

    @property
    def events_key(self) -> str:
        return f"{self._p}:events"

    @property
    def handoff_stream_key(self) -> str:
        return f"{self._p}:handoffs"

    # --- reads --------------------------------------------------------------------------

    @_translated
    async def load(self, conversation_id: str) -> DialogueState | None:
        check_id("conversation_id", conversation_id)
        self.stats.round_trips += 1
        data = await self._r.hget(self._conv(conversation_id, "state"), "d")
        return decode_record(DialogueState, data, what="conversation state") if data is not None else None

    @_translated
    async def get_turns(self, conversation_id: str, *, start: int = 0, stop: int | None = None) -> list[TurnRecord]:
        check_id("conversation_id", conversation_id)
        if stop is not None and stop <= start:
            return []
        self.stats.round_trips += 1
        raw = await self._r.lrange(self._conv(conversation_id, "turns"), start, -1 if stop is None else stop - 1)
        return [decode_record(TurnRecord, t, what="turn record") for t in raw]

    @_translated
    async def load_profile(self, user_id: str) -> UserProfile | None:
        check_id("user_id", user_id)
        self.stats.round_trips += 1
        data = await self._r.hget(self._profile_key(user_id), "d")
        return decode_record(UserProfile, data, what="user profile") if data is not None else None

    @_translated
    async def load_handoff(self, handoff_id: str) -> HandoffRecord | None:
        check_id("handoff_id", handoff_id)
        self.stats.round_trips += 1
        data = await self._r.hget(self._handoff_key(handoff_id), "d")
        return decode_record(HandoffRecord, data, what="hand-off record") if data is not None else None

    @_translated
    async def list_handoffs(self, *, status: str | None) -> list[HandoffRecord]:
        statuses = HANDOFF_STATUSES if status is None else (status,)
        ids: list[bytes] = []
        for s in statuses:
            ids.extend(cast(list[bytes], await self._r.zrange(self._status_key(s), 0, -1)))
        if not ids:
            return []
        pipe = self._r.pipeline(transaction=False)
        for handoff_id in ids:
            pipe.hget(self._handoff_key(handoff_id.decode()), "d")
        self.stats.round_trips += 1 + len(statuses)
        raw = await pipe.execute()
        records = [decode_record(HandoffRecord, d, what="hand-off record") for d in raw if d is not None]
        return sorted(records, key=lambda r: (r.created_at, r.id))

    # --- the hand-off queue: a stream with a consumer group ----------------------------

    async def _ensure_group(self) -> None:
        try:
            await self._r.xgroup_create(self.handoff_stream_key, GROUP, id="0", mkstream=True)
        except rex.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    @_translated
    async def next_queued_handoff(self, *, consumer: str) -> str | None:
        """Deliver the next hand-off nobody in the group has read yet to ``consumer`` (XREADGROUP)."""
        check_id("consumer", consumer)
        await self._ensure_group()
        self.stats.round_trips += 2
        reply = cast(list[Any], await self._r.xreadgroup(GROUP, consumer, {self.handoff_stream_key: ">"}, count=1))
        for _stream, entries in reply or ():
            for _entry_id, fields in entries:
                return str(fields[b"handoff_id"].decode())
        return None

    @_translated
    async def ack_queued_handoff(self, handoff_id: str) -> None:
        check_id("handoff_id", handoff_id)
        self.stats.round_trips += 1
        sid = await self._r.hget(self._handoff_key(handoff_id), "sid")
        if sid is not None:
            self.stats.round_trips += 1
            await self._r.xack(self.handoff_stream_key, GROUP, sid)

    # --- the one write path --------------------------------------------------------------

    @_translated
    async def commit(self, commit: Commit) -> None:
        enc = encode_commit(commit)
        cid = commit.state.conversation_id if commit.state else (commit.handoff.conversation_id if commit.handoff else "-")
        uid = commit.profile.user_id if commit.profile else "-"
        hid = commit.handoff.id if commit.handoff else "-"
        keys = [self._conv(cid, "state"), self._conv(cid, "turns"), self._profile_key(uid), self._handoff_key(hid),
                self.events_key, self.handoff_stream_key, *(self._status_key(s) for s in HANDOFF_STATUSES)]
        h = commit.handoff
        args: list[str | int] = [
            commit.commit_id, _written_ms(h), self._cfg.conversation_ttl_s, self._cfg.profile_ttl_s,
            self._cfg.stream_maxlen, GROUP,
            enc.state or "", commit.state.version if commit.state else 0,
            enc.profile or "", commit.profile.version if commit.profile else 0,
            enc.handoff or "", h.version if h else 0, h.status if h else "", hid, h.conversation_id if h else "",
            int(h.created_at * 1000) if h else 0,
            len(enc.turns), *enc.turns, len(enc.events), *(p for e in enc.events for p in e),
        ]
        self.stats.round_trips += 1
        reply = await self._commit_script(keys=keys, args=args)
        result = reply.decode() if isinstance(reply, bytes) else str(reply)
        if result.startswith("CONFLICT"):
            _, what, stored = result.split(" ", 2)
            raise ConcurrentUpdate(f"{what} is at version {stored}, the commit expected another")
        self.stats.count_commit(enc.n_bytes)

    # --- blobs, events, health -----------------------------------------------------------

    @_translated
    async def put_blob(self, sha256: str, data: bytes, *, content_type: str) -> None:
        check_blob(sha256, data, content_type)
        key = f"{self._p}:blob:{sha256}"
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(key, mapping={"d": bytes(data), "t": content_type})
        pipe.expire(key, self._cfg.blob_ttl_s)
        self.stats.round_trips += 1
        await pipe.execute()

    @_translated
    async def get_blob(self, sha256: str) -> tuple[bytes, str] | None:
        self.stats.round_trips += 1
        data, content_type = cast(list[bytes | None], await self._r.hmget(f"{self._p}:blob:{sha256}", ["d", "t"]))
        if data is None or content_type is None:
            return None
        return bytes(data), content_type.decode()

    @_translated
    async def read_events(self, *, count: int = 100) -> list[dict[str, Any]]:
        if count <= 0:
            return []
        self.stats.round_trips += 1
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await self._r.xrevrange(self.events_key, count=count))
        out = []
        for entry_id, fields in reversed(entries):
            try:
                data = json.loads(fields.get(b"data", b"{}"))
            except ValueError as e:
                raise CorruptRecord("state store: an event's data is not JSON") from e
            out.append({"id": entry_id.decode(), "type": fields.get(b"type", b"").decode(),
                        "conversation_id": fields.get(b"conversation_id", b"").decode(), "data": data})
        return out

    @_translated
    async def ping(self) -> None:
        self.stats.round_trips += 1
        await self._r.ping()

    async def aclose(self) -> None:
        await self._r.aclose()

    # --- for tests and docs: the keys of one conversation --------------------------------

    def conversation_keys(self, conversation_id: str) -> tuple[str, str]:
        return self._conv(conversation_id, "state"), self._conv(conversation_id, "turns")

    def profile_key(self, user_id: str) -> str:
        return self._profile_key(user_id)

    def handoff_key(self, handoff_id: str) -> str:
        return self._handoff_key(handoff_id)


def _written_ms(record: HandoffRecord | None) -> int:
    """When a hand-off was last changed (ms, the service's clock): old index entries are trimmed from it."""
    if record is None:
        return 0
    return int(max(record.created_at, record.claimed_at or 0.0, record.released_at or 0.0) * 1000)
