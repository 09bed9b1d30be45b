"""DialogueService: bad input, concurrency, profiles, TTLs and damaged stored data (both stores)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from agent.config import Secret, StoreConfig
from agent.errors import ConcurrentUpdate, Conflict, InvalidInput, NotFound
from dialogue.domain import Domain
from dialogue.service import DialogueService, make_store
from dialogue.stores.base import CorruptRecord, TrackerStore
from dialogue.stores.memory import InMemoryTrackerStore
from tests.dialogue.conftest import FakeClock, nlu, say

# --- bad input -----------------------------------------------------------------------------------


async def test_unknown_things_are_not_found(service: DialogueService) -> None:
    with pytest.raises(NotFound, match="conversation"):
        await service.get_conversation("never-seen")
    with pytest.raises(NotFound):
        await service.get_turns("never-seen")
    with pytest.raises(NotFound, match="profile"):
        await service.get_profile("nobody")
    with pytest.raises(NotFound, match="hand-off"):
        await service.get_handoff("no-such-handoff")
    with pytest.raises(NotFound):
        await service.claim_handoff("no-such-handoff", agent_id="sam")
    with pytest.raises(NotFound):
        await service.release_handoff("no-such-handoff", agent_id="sam")
    with pytest.raises(NotFound):
        await service.post_agent_message("no-such-handoff", agent_id="sam", text="hi")
    with pytest.raises(NotFound, match="image"):
        await service.get_blob("0" * 64)


async def test_handoff_state_errors_are_conflicts(service: DialogueService) -> None:
    out = await say(service, "conf", "human", nlu("talk_to_human"))
    hid = out.decision.handoff_id  # type: ignore[union-attr]
    with pytest.raises(Conflict, match="pending by nobody"):
        await service.post_agent_message(hid, agent_id="sam", text="too early")
    with pytest.raises(Conflict):
        await service.release_handoff(hid, agent_id="sam")
    await service.claim_handoff(hid, agent_id="sam")
    with pytest.raises(Conflict, match="claimed"):
        await service.claim_handoff(hid, agent_id="sam")  # claiming twice
    with pytest.raises(Conflict, match="another agent"):
        await service.release_handoff(hid, agent_id="kim")
    await service.release_handoff(hid, agent_id="sam")
    with pytest.raises(Conflict, match="released"):
        await service.post_agent_message(hid, agent_id="sam", text="after release")


async def test_bad_arguments_say_what_was_expected(service: DialogueService) -> None:
    secret = "my card number is 4111 1111 1111 1111 " * 400
    with pytest.raises(InvalidInput, match="at most 10,000 characters") as caught:
        await say(service, "bad", secret, nlu("greeting"))
    assert "4111" not in str(caught.value)  # customer text is never echoed
    with pytest.raises(InvalidInput, match="conversation_id"):
        await say(service, "has space", "hi", nlu("greeting"))
    with pytest.raises(InvalidInput, match=r"confidence: expected a number in \[0, 1\], got 1.5"):
        await say(service, "bad", "hi", nlu("greeting", 1.5))
    with pytest.raises(InvalidInput, match="turn: expected a UserTurn"):
        await service.handle_turn("hello", None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="text: expected some text"):
        out = await say(service, "bad2", "human", nlu("talk_to_human"))
        await service.claim_handoff(out.decision.handoff_id, agent_id="sam")  # type: ignore[union-attr]
        await service.post_agent_message(out.decision.handoff_id, agent_id="sam", text="  ")  # type: ignore[union-attr]
    with pytest.raises(InvalidInput, match="status"):
        await service.list_handoffs(status="open")
    with pytest.raises(InvalidInput, match="count"):
        await service.read_events(count=0)
    with pytest.raises(InvalidInput, match="start"):
        await service.get_turns("bad2", start=-1)


async def test_a_conversation_keeps_its_user(service: DialogueService) -> None:
    await say(service, "own", "hi", nlu("greeting"), user_id="u-1")
    with pytest.raises(InvalidInput, match="user_id"):
        await say(service, "own", "hi", nlu("greeting"), user_id="u-2")
    anon = await say(service, "anon", "hi", nlu("greeting"))
    assert anon.state.user_id is None
    later = await say(service, "anon", "hi", nlu("greeting"), user_id="u-3")  # signs in mid-chat
    assert later.state.user_id == "u-3"
    assert (await service.get_profile("u-3")).conversations == 1


async def test_profile_updates_are_checked(service: DialogueService) -> None:
    profile = await service.update_profile("u-p", name="Ada", tier="premium", preferences={"contact": "email"})
    assert (profile.name, profile.tier, profile.preferences) == ("Ada", "premium", (("contact", "email"),))
    assert (await service.get_profile("u-p")).to_dict()["preferences"] == [["contact", "email"]]
    with pytest.raises(InvalidInput, match="unknown profile fields"):
        await service.update_profile("u-p", password="x")
    with pytest.raises(InvalidInput, match="name: expected a string of 1 to 100"):
        await service.update_profile("u-p", name="x" * 101)
    with pytest.raises(InvalidInput, match="preferences"):
        await service.update_profile("u-p", preferences=["not", "a", "mapping"])


async def test_records_are_json_for_the_api(service: DialogueService) -> None:
    import json

    await say(service, "js", "lost card", nlu("lost_or_stolen_card", entities=(("card_last4", "1234"),)),
              user_id="u-js")
    state, turns = await service.get_conversation("js")
    payload = {"state": state.to_dict(), "turns": [t.to_dict() for t in turns],
               "profile": (await service.get_profile("u-js")).to_dict()}
    text = json.dumps(payload)
    assert json.loads(text)["turns"][0]["entities"] == [["card_last4", "1234"]]
    assert json.loads(text)["profile"]["recent_issues"][0]["intent"] == "lost_or_stolen_card"


async def test_blobs_through_the_service(service: DialogueService) -> None:
    data = b"GIF89a" + b"\x00" * 100
    sha = hashlib.sha256(data).hexdigest()
    await service.put_blob(sha, data, content_type="image/gif")
    assert await service.get_blob(sha) == (data, "image/gif")


# --- concurrency ---------------------------------------------------------------------------------


async def test_concurrent_turns_on_one_conversation_lose_nothing(store: TrackerStore, domain: Domain,
                                                                 clock: FakeClock) -> None:
    service = DialogueService(store, domain, clock=clock, max_retries=60)
    texts = [f"message {i}" for i in range(12)]
    outcomes = await asyncio.gather(*(say(service, "race", t, nlu("greeting")) for t in texts))
    state, turns = await service.get_conversation("race")
    user_texts = [t.text for t in turns if t.role == "user"]
    assert sorted(user_texts) == sorted(texts)  # every turn recorded exactly once
    assert state.turn_count == len(turns) == 24
    assert sorted(o.turn_index for o in outcomes) == list(range(0, 24, 2))
    for o in outcomes:  # each bot answer sits right after its own user turn
        assert turns[o.turn_index].role == "user" and turns[o.turn_index + 1].role == "bot"


async def test_retries_are_bounded_and_a_lost_race_records_nothing(store: TrackerStore, domain: Domain,
                                                                   clock: FakeClock) -> None:
    service = DialogueService(store, domain, clock=clock, max_retries=0)
    results = await asyncio.gather(*(say(service, "race0", f"m{i}", nlu("greeting")) for i in range(8)),
                                   return_exceptions=True)
    failed = [r for r in results if isinstance(r, ConcurrentUpdate)]
    assert failed, "eight simultaneous writers with no retries should collide"
    assert all("nothing was recorded" in str(e) for e in failed)
    _, turns = await service.get_conversation("race0")
    assert len(turns) == 2 * (len(results) - len(failed))


# --- TTLs and damaged data (memory store; the Redis TTLs are in test_redis_store.py) --------------


async def test_memory_store_expires_with_its_clock(domain: Domain, clock: FakeClock) -> None:
    store = InMemoryTrackerStore(conversation_ttl_s=100, profile_ttl_s=1000, blob_ttl_s=50, clock=clock)
    service = DialogueService(store, domain, clock=clock)
    await say(service, "ttl", "hi", nlu("greeting"), user_id="u-ttl")
    assert store.ttl_s("conversation", "ttl") == 100 and store.ttl_s("profile", "u-ttl") == 1000
    clock.advance(101)
    with pytest.raises(NotFound):
        await service.get_conversation("ttl")
    assert (await service.get_profile("u-ttl")).conversations == 1  # the profile outlives it
    out = await say(service, "ttl", "hi again", nlu("greeting"))
    assert out.turn_index == 0  # a fresh conversation
    clock.advance(1000)
    with pytest.raises(NotFound):
        await service.get_profile("u-ttl")


async def test_damaged_stored_state_gives_a_clear_error(domain: Domain, clock: FakeClock) -> None:
    store = InMemoryTrackerStore(clock=clock)
    service = DialogueService(store, domain, clock=clock)
    await say(service, "dmg", "hi", nlu("greeting"))
    store._conversations["dmg"].state.data = '{"conversation_id": 5}'
    with pytest.raises(CorruptRecord, match=r"conversation state: .*conversation_id: expected str"):
        await say(service, "dmg", "hi", nlu("greeting"))
    store._conversations["dmg"].state.data = "not json"
    with pytest.raises(CorruptRecord, match="unparseable"):
        await service.get_conversation("dmg")


def test_make_store_picks_by_url() -> None:
    assert isinstance(make_store(StoreConfig()), InMemoryTrackerStore)
    from dialogue.stores.redis import RedisTrackerStore

    assert isinstance(make_store(StoreConfig(redis_url=Secret("redis://127.0.0.1:1/0"))), RedisTrackerStore)


async def test_memory_store_turn_cost_does_not_grow(domain: Domain, clock: FakeClock) -> None:
    store = InMemoryTrackerStore(clock=clock)
    service = DialogueService(store, domain, clock=clock)
    cost = {}
    for i in range(301):
        trips = store.stats.round_trips
        await say(service, "long", "hello again", nlu("greeting"), user_id="u-long")
        if i in (20, 300):
            cost[i] = (store.stats.round_trips - trips, store.stats.last_commit_bytes)
    assert cost[300][0] == cost[20][0] == 3  # load state, load profile, commit
    assert abs(cost[300][1] - cost[20][1]) <= 10  # only the version numbers got longer
