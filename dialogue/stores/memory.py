"""An in-process tracker store with the Redis store's semantics.

Records are kept as the same JSON text the Redis store writes, with versions, commit ids,
TTLs (read against an injectable clock), an events list capped like a Redis stream, and a
hand-off queue with a consumer-group cursor and a pending-entries list. Every operation yields
to the event loop once, so concurrent coroutines interleave the way they do against Redis.
For local runs and tests; state is lost when the process exits.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.errors import ConcurrentUpdate
from dialogue.state import DialogueState, HandoffRecord, TurnRecord, UserProfile
from dialogue.stores.base import (
    Commit,
    StoreStats,
    check_blob,
    check_id,
    decode_record,
    encode_commit,
)


@dataclass(slots=True)
class _Entry:
    version: int
    data: str
    commit_id: str
    expires_at: float


@dataclass(slots=True)
class _Conversation:
    state: _Entry
    turns: list[str] = field(default_factory=list)


class InMemoryTrackerStore:
    """``TrackerStore`` in a dict. ``clock`` (Unix seconds) decides expiry; tests can move it."""

    def __init__(
        self,
        *,
        conversation_ttl_s: int = 7 * 24 * 3600,
        profile_ttl_s: int = 365 * 24 * 3600,
        blob_ttl_s: int = 30 * 24 * 3600,
        stream_maxlen: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.conversation_ttl_s = conversation_ttl_s
        self.profile_ttl_s = profile_ttl_s
        self.blob_ttl_s = blob_ttl_s
        self.clock = clock
        self.stats = StoreStats()
        self._conversations: dict[str, _Conversation] = {}
        self._profiles: dict[str, _Entry] = {}
        self._handoffs: dict[str, _Entry] = {}
        self._blobs: dict[str, tuple[bytes, str, float]] = {}
        self._events: deque[dict[str, Any]] = deque(maxlen=stream_maxlen)
        self._queue: list[str] = []  # hand-off ids in the order they were queued
        self._delivered = 0  # the consumer group's cursor into _queue
        self._pending: dict[str, str] = {}  # delivered, not yet acknowledged: id -> consumer
        self._seq = 0

    async def _tick(self) -> None:
        self.stats.round_trips += 1
        await asyncio.sleep(0)

    def _live(self, entry: _Entry | None) -> _Entry | None:
        return entry if entry is not None and entry.expires_at > self.clock() else None

    def _conversation(self, conversation_id: str) -> _Conversation | None:
        conv = self._conversations.get(conversation_id)
        if conv is not None and self._live(conv.state) is None:
            del self._conversations[conversation_id]
            return None
        return conv

    # --- reads --------------------------------------------------------------------------

    async def load(self, conversation_id: str) -> DialogueState | None:
        check_id("conversation_id", conversation_id)
        await self._tick()
        conv = self._conversation(conversation_id)
        if conv is None:
            return None
        state = decode_record(DialogueState, conv.state.data, what="conversation state")
        assert isinstance(state, DialogueState)
        return state

    async def get_turns(self, conversation_id: str, *, start: int = 0, stop: int | None = None) -> list[TurnRecord]:
        check_id("conversation_id", conversation_id)
        await self._tick()
        conv = self._conversation(conversation_id)
        if conv is None:
            return []
        return [decode_record(TurnRecord, t, what="turn record") for t in conv.turns[start:stop]]

    async def load_profile(self, user_id: str) -> UserProfile | None:
        check_id("user_id", user_id)
        await self._tick()
        entry = self._live(self._profiles.get(user_id))
        return decode_record(UserProfile, entry.data, what="user profile") if entry else None

    async def load_handoff(self, handoff_id: str) -> HandoffRecord | None:
        check_id("handoff_id", handoff_id)
        await self._tick()
        entry = self._live(self._handoffs.get(handoff_id))
        return decode_record(HandoffRecord, entry.data, what="hand-off record") if entry else None

    async def list_handoffs(self, *, status: str | None) -> list[HandoffRecord]:
        await self._tick()
        records = [
            decode_record(HandoffRecord, e.data, what="hand-off record")
            for e in self._handoffs.values()
            if self._live(e) is not None
        ]
        picked = [r for r in records if status is None or r.status == status]
        return sorted(picked, key=lambda r: (r.created_at, r.id))

    # --- the hand-off queue (a consumer group over a stream, in Redis) --------------------

    async def next_queued_handoff(self, *, consumer: str) -> str | None:
        await self._tick()
        if self._delivered >= len(self._queue):
            return None
        handoff_id = self._queue[self._delivered]
        self._delivered += 1
        self._pending[handoff_id] = consumer
        return handoff_id

    async def ack_queued_handoff(self, handoff_id: str) -> None:
        await self._tick()
        self._pending.pop(handoff_id, None)

    # --- the one write path --------------------------------------------------------------

    async def commit(self, commit: Commit) -> None:
        await self._tick()
        encoded = encode_commit(commit)
        if self._already_applied(commit):
            return
        self._check_versions(commit)
        now = self.clock()
        if commit.state is not None and encoded.state is not None:
            cid = commit.state.conversation_id
            conv = self._conversation(cid) or _Conversation(state=_Entry(0, "", "", 0.0))
            conv.state = _Entry(commit.state.version, encoded.state, commit.commit_id, now + self.conversation_ttl_s)
            conv.turns.extend(encoded.turns)
            self._conversations[cid] = conv
        if commit.profile is not None and encoded.profile is not None:
            self._profiles[commit.profile.user_id] = _Entry(
                commit.profile.version, encoded.profile, commit.commit_id, now + self.profile_ttl_s
            )
        if commit.handoff is not None and encoded.handoff is not None:
            self._write_handoff(commit.handoff, encoded.handoff, commit.commit_id, now)
        for type_, conversation_id, data in encoded.events:
            self._seq += 1
            self._events.append({"id": f"{int(now * 1000)}-{self._seq}", "type": type_,
                                 "conversation_id": conversation_id, "data": data})
        self.stats.count_commit(encoded.n_bytes)

    def _write_handoff(self, record: HandoffRecord, data: str, commit_id: str, now: float) -> None:
        self._handoffs[record.id] = _Entry(record.version, data, commit_id, now + self.conversation_ttl_s)
        if record.version == 1:
            self._queue.append(record.id)
        if record.status != "pending":
            self._pending.pop(record.id, None)

    def _stored(self, commit: Commit) -> list[tuple[str, _Entry | None, int]]:
        items: list[tuple[str, _Entry | None, int]] = []
        if commit.state is not None:
            conv = self._conversation(commit.state.conversation_id)
            items.append(("conversation", conv.state if conv else None, commit.state.version))
        if commit.profile is not None:
            items.append(("profile", self._live(self._profiles.get(commit.profile.user_id)), commit.profile.version))
        if commit.handoff is not None:
            items.append(("hand-off", self._live(self._handoffs.get(commit.handoff.id)), commit.handoff.version))
        return items

    def _already_applied(self, commit: Commit) -> bool:
        items = self._stored(commit)
        if not items:
            return False
        _, entry, new_version = items[0]
        return entry is not None and entry.version == new_version and entry.commit_id == commit.commit_id

    def _check_versions(self, commit: Commit) -> None:
        for what, entry, new_version in self._stored(commit):
            stored = entry.version if entry is not None else 0
            if stored != new_version - 1:
                raise ConcurrentUpdate(f"{what} is at version {stored}, expected {new_version - 1}")

    # --- blobs, events, health -----------------------------------------------------------

    async def put_blob(self, sha256: str, data: bytes, *, content_type: str) -> None:
        check_blob(sha256, data, content_type)
        await self._tick()
        self._blobs[sha256] = (bytes(data), content_type, self.clock() + self.blob_ttl_s)

    async def get_blob(self, sha256: str) -> tuple[bytes, str] | None:
        await self._tick()
        blob = self._blobs.get(sha256)
        if blob is None or blob[2] <= self.clock():
            self._blobs.pop(sha256, None)
            return None
        return blob[0], blob[1]

    async def read_events(self, *, count: int = 100) -> list[dict[str, Any]]:
        await self._tick()
        picked = list(self._events)[-count:] if count > 0 else []
        return [{**e, "data": json.loads(e["data"])} for e in picked]

    async def ping(self) -> None:
        await self._tick()

    async def aclose(self) -> None:
        return None

    # --- for tests: what a key's time to live is, in seconds -----------------------------

    def ttl_s(self, kind: str, key: str) -> float | None:
        entry: _Entry | None
        if kind == "conversation":
            conv = self._conversations.get(key)
            entry = conv.state if conv else None
        elif kind == "blob":
            blob = self._blobs.get(key)
            return blob[2] - self.clock() if blob else None
        else:
            entry = {"profile": self._profiles, "handoff": self._handoffs}[kind].get(key)
        return entry.expires_at - self.clock() if entry else None

