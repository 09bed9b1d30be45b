"""The TrackerStore contract, run against the in-memory store and a real Redis server."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace

import pytest

from agent.errors import ConcurrentUpdate, InvalidInput
from dialogue.state import DialogueState, HandoffRecord, TurnRecord, UserProfile, bump, new_state
from dialogue.stores.base import Commit, Event, TrackerStore
from tests.dialogue.conftest import T0


def _commit(state: DialogueState, *texts: str, **kwargs: object) -> Commit:
    """The next version of ``state`` with ``texts`` appended as user turns."""
    turns = tuple(
        TurnRecord(index=state.turn_count + i, role="user", text=t, timestamp=T0) for i, t in enumerate(texts)
    )
    new = replace(bump(state), turn_count=state.turn_count + len(texts))
    return Commit(commit_id=uuid.uuid4().hex, state=new, turns=turns, **kwargs)  # type: ignore[arg-type]


async def test_unknown_records_load_as_none(store: TrackerStore) -> None:
    assert await store.load("nobody") is None
    assert await store.load_profile("nobody") is None
    assert await store.load_handoff("nothing") is None
    assert await store.get_turns("nobody") == []
    assert await store.get_blob("0" * 64) is None
    assert await store.list_handoffs(status=None) == []


async def test_state_and_turns_round_trip(store: TrackerStore) -> None:
    state = new_state("c-1", user_id="u-1", channel="web_chat", now=T0)
    state = replace(state, slots=(("amount", "12.50 GBP"),), sentiment_trend=(-0.5, 0.25), failures=(("x", 2),))
    commit = _commit(state, "hello", "I lost my card £ é 🙂")
    await store.commit(commit)
    loaded = await store.load("c-1")
    assert loaded == commit.state
    turns = await store.get_turns("c-1")
    assert [t.text for t in turns] == ["hello", "I lost my card £ é 🙂"]
    assert [t.index for t in turns] == [0, 1]
    assert [t.text for t in await store.get_turns("c-1", start=1)] == ["I lost my card £ é 🙂"]
    assert await store.get_turns("c-1", start=0, stop=1) == turns[:1]


async def test_turns_are_appended_not_rewritten(store: TrackerStore) -> None:
    state = new_state("c-2", user_id=None, channel="api", now=T0)
    for i in range(5):
        commit = _commit(state, f"turn {i}")
        await store.commit(commit)
        assert commit.state is not None
        state = commit.state
    assert [t.text for t in await store.get_turns("c-2")] == [f"turn {i}" for i in range(5)]
    assert (await store.load("c-2")).version == 5  # type: ignore[union-attr]


async def test_stale_version_is_refused_and_writes_nothing(store: TrackerStore) -> None:
    state = new_state("c-3", user_id=None, channel="api", now=T0)
    first = _commit(state, "one")
    await store.commit(first)
    stale = _commit(state, "lost")  # built from version 0 again, like a second worker would
    with pytest.raises(ConcurrentUpdate):
        await store.commit(stale)
    assert [t.text for t in await store.get_turns("c-3")] == ["one"]
    assert await store.load("c-3") == first.state


async def test_a_resent_commit_is_applied_once(store: TrackerStore) -> None:
    commit = _commit(new_state("c-4", user_id=None, channel="api", now=T0), "only once")
    await store.commit(commit)
    await store.commit(commit)  # the reply was lost and the client sent it again
    assert [t.text for t in await store.get_turns("c-4")] == ["only once"]


async def test_profile_versions_are_checked(store: TrackerStore) -> None:
    profile = bump(UserProfile(user_id="u-5", name="Ada", created_at=T0))
    await store.commit(Commit(commit_id="p1", profile=profile))
    assert await store.load_profile("u-5") == profile
    with pytest.raises(ConcurrentUpdate):
        await store.commit(Commit(commit_id="p2", profile=profile))  # version 1 again
    newer = bump(replace(profile, tier="premium"))
    await store.commit(Commit(commit_id="p3", profile=newer))
    assert (await store.load_profile("u-5")).tier == "premium"  # type: ignore[union-attr]


async def test_one_conflict_refuses_the_whole_commit(store: TrackerStore) -> None:
    profile = bump(UserProfile(user_id="u-6", created_at=T0))
    await store.commit(Commit(commit_id="p", profile=profile))
    state = new_state("c-6", user_id="u-6", channel="api", now=T0)
    stale_profile = bump(UserProfile(user_id="u-6", name="changed", created_at=T0))
    with pytest.raises(ConcurrentUpdate):
        await store.commit(_commit(state, "hi", profile=stale_profile, events=(Event(type="turn"),)))
    assert await store.load("c-6") is None
    assert await store.get_turns("c-6") == []
    assert (await store.load_profile("u-6")).name is None  # type: ignore[union-attr]
    assert await store.read_events(count=10) == []


def _handoff(hid: str, conversation_id: str, created: float) -> HandoffRecord:
    return HandoffRecord(id=hid, conversation_id=conversation_id, version=1, reason="user_asked",
                         summary="Reason: user asked", created_at=created)


async def test_handoffs_are_indexed_by_status_and_queued(store: TrackerStore) -> None:
    for i, hid in enumerate(["h-a", "h-b"]):
        state = new_state(f"c-h{i}", user_id=None, channel="api", now=T0)
        await store.commit(_commit(state, "help", handoff=_handoff(hid, f"c-h{i}", T0 + i)))
    assert [h.id for h in await store.list_handoffs(status="pending")] == ["h-a", "h-b"]
    first = await store.next_queued_handoff(consumer="agent-1")
    second = await store.next_queued_handoff(consumer="agent-2")
    assert (first, second) == ("h-a", "h-b")
    assert await store.next_queued_handoff(consumer="agent-1") is None
    record = await store.load_handoff("h-a")
    assert record is not None
    claimed = bump(replace(record, status="claimed", agent_id="agent-1", claimed_at=T0 + 5))
    await store.commit(Commit(commit_id="claim", handoff=claimed))
    assert [h.id for h in await store.list_handoffs(status="pending")] == ["h-b"]
    assert [h.id for h in await store.list_handoffs(status="claimed")] == ["h-a"]
    assert [h.id for h in await store.list_handoffs(status=None)] == ["h-a", "h-b"]
    with pytest.raises(ConcurrentUpdate):
        await store.commit(Commit(commit_id="claim-2", handoff=claimed))  # someone else's stale claim


async def test_events_are_kept_in_order(store: TrackerStore) -> None:
    state = new_state("c-7", user_id=None, channel="api", now=T0)
    events = (Event(type="turn", conversation_id="c-7", data={"turn_index": 0, "text": "hi £"}),
              Event(type="handoff", conversation_id="c-7", data={"handoff_id": "h"}))
    await store.commit(_commit(state, "hi", events=events))
    got = await store.read_events(count=10)
    assert [(e["type"], e["conversation_id"], e["data"]) for e in got] == [
        ("turn", "c-7", {"turn_index": 0, "text": "hi £"}), ("handoff", "c-7", {"handoff_id": "h"})]
    assert [e["type"] for e in await store.read_events(count=1)] == ["handoff"]


async def test_blobs_round_trip_and_are_checked(store: TrackerStore) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    sha = hashlib.sha256(data).hexdigest()
    await store.put_blob(sha, data, content_type="image/png")
    assert await store.get_blob(sha) == (data, "image/png")
    with pytest.raises(InvalidInput, match="does not match"):
        await store.put_blob(sha, data + b"x", content_type="image/png")
    with pytest.raises(InvalidInput, match="64 lowercase hex"):
        await store.put_blob("abc", data, content_type="image/png")
    with pytest.raises(InvalidInput, match="media type"):
        await store.put_blob(sha, data, content_type="not a type")


@pytest.mark.parametrize("bad", ["", "has space", "a{b}", "x" * 129, "tab\there"])
async def test_bad_ids_are_refused(store: TrackerStore, bad: str) -> None:
    with pytest.raises(InvalidInput, match="conversation_id"):
        await store.load(bad)


async def test_ping(store: TrackerStore) -> None:
    await store.ping()
