"""The tracker store interface, and what one atomic commit writes.

A ``Commit`` carries everything one step of a conversation writes: the new state, the turns to
append, the customer's profile, a hand-off record and monitoring events. A store writes all of
it or none of it, after checking that each record it replaces is still at the version the
caller read (each new record's ``version`` is the stored one plus 1); otherwise it raises
``ConcurrentUpdate`` and the caller reloads and tries again. Re-sending a commit that was
already applied (a reply lost on the network) is recognised by its ``commit_id`` and is a no-op.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agent.errors import DependencyUnavailable, InvalidInput
from dialogue import codec
from dialogue.state import DialogueState, HandoffRecord, TurnRecord, UserProfile

MAX_ID_CHARS = 128
MAX_BLOB_BYTES = 20_000_000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_TYPE = re.compile(r"^[a-z]+/[a-z0-9.+-]+$")


class CorruptRecord(DependencyUnavailable):
    """A stored record cannot be read back (written by something else, or damaged)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One entry of the events stream (monitoring, fine-tuning export)."""

    type: str  # turn | handoff | handoff_claimed | handoff_released | agent_message | profile
    conversation_id: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # JSON-able


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    commit_id: str
    state: DialogueState | None = None
    turns: tuple[TurnRecord, ...] = ()  # appended after the stored ones; needs ``state``
    profile: UserProfile | None = None
    handoff: HandoffRecord | None = None  # version 1: a new hand-off, queued for agents
    events: tuple[Event, ...] = ()

    def __post_init__(self) -> None:
        if self.turns and self.state is None:
            raise ValueError("a commit that appends turns must carry the conversation state")
        if self.state is not None:
            first = self.state.turn_count - len(self.turns)
            if any(t.index != first + i for i, t in enumerate(self.turns)):
                raise ValueError("turn indexes must follow on from the stored turns")


@dataclass(frozen=True, slots=True, kw_only=True)
class EncodedCommit:
    """A commit as the strings a store writes (the same for every store)."""

    state: str | None
    turns: tuple[str, ...]
    profile: str | None
    handoff: str | None
    events: tuple[tuple[str, str, str], ...]  # (type, conversation_id, data JSON)

    @property
    def n_bytes(self) -> int:
        parts = [self.state or "", self.profile or "", self.handoff or "", *self.turns]
        parts += [p for event in self.events for p in event]
        return sum(len(p.encode("utf-8")) for p in parts)


def encode_commit(commit: Commit) -> EncodedCommit:
    return EncodedCommit(
        state=codec.dumps(commit.state) if commit.state is not None else None,
        turns=tuple(codec.dumps(t) for t in commit.turns),
        profile=codec.dumps(commit.profile) if commit.profile is not None else None,
        handoff=codec.dumps(commit.handoff) if commit.handoff is not None else None,
        events=tuple(
            (e.type, e.conversation_id, json.dumps(e.data, separators=(",", ":"), ensure_ascii=False))
            for e in commit.events
        ),
    )


@dataclass(slots=True)
class StoreStats:
    """Running totals, for tests and benchmarks of per-turn cost."""

    commits: int = 0
    commit_bytes: int = 0  # payload bytes of the records written
    last_commit_bytes: int = 0
    round_trips: int = 0  # requests sent to the server (Redis) or store operations (memory)

    def count_commit(self, n_bytes: int) -> None:
        self.commits += 1
        self.commit_bytes += n_bytes
        self.last_commit_bytes = n_bytes


@runtime_checkable
class TrackerStore(Protocol):
    """Conversations, profiles, hand-offs, blobs and events; all writes go through ``commit``."""

    stats: StoreStats

    async def load(self, conversation_id: str) -> DialogueState | None: ...

    async def get_turns(self, conversation_id: str, *, start: int = 0, stop: int | None = None) -> list[TurnRecord]: ...

    async def load_profile(self, user_id: str) -> UserProfile | None: ...

    async def load_handoff(self, handoff_id: str) -> HandoffRecord | None: ...

    async def list_handoffs(self, *, status: str | None) -> list[HandoffRecord]: ...

    async def next_queued_handoff(self, *, consumer: str) -> str | None: ...

    async def ack_queued_handoff(self, handoff_id: str) -> None: ...

    async def commit(self, commit: Commit) -> None: ...  # raises ConcurrentUpdate

    async def put_blob(self, sha256: str, data: bytes, *, content_type: str) -> None: ...

    async def get_blob(self, sha256: str) -> tuple[bytes, str] | None: ...

    async def read_events(self, *, count: int = 100) -> list[dict[str, Any]]: ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...


# --- checks shared by the stores ---------------------------------------------------------------


def check_id(what: str, value: object) -> str:
    """Ids become part of store keys: 1-128 printable characters, no spaces or braces."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what}: expected a string, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_ID_CHARS:
        raise InvalidInput(f"{what}: expected 1 to {MAX_ID_CHARS} characters, got {len(value)}")
    if not value.isprintable() or any(c.isspace() or c in "{}" for c in value):
        raise InvalidInput(f"{what}: expected printable characters without spaces or braces")
    return value


def check_blob(sha256: str, data: bytes, content_type: str) -> None:
    import hashlib

    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise InvalidInput("blob sha256: expected 64 lowercase hex characters")
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidInput(f"blob data: expected bytes, got {type(data).__name__}")
    if not 0 < len(data) <= MAX_BLOB_BYTES:
        raise InvalidInput(f"blob data: expected 1 to {MAX_BLOB_BYTES:,} bytes, got {len(data):,}")
    if not isinstance(content_type, str) or not _CONTENT_TYPE.match(content_type):
        raise InvalidInput("blob content_type: expected a media type such as 'image/png'")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise InvalidInput("blob sha256: does not match the SHA-256 of the data")


def decode_record(cls: type[Any], text: str | bytes, *, what: str) -> Any:
    """Parse a stored record; ``CorruptRecord`` (never a crash) when it is malformed."""
    try:
        return codec.loads(cls, text, what=what)
    except codec.RecordDecodeError as e:
        raise CorruptRecord(f"state store holds an unreadable {what}: {e}") from e
