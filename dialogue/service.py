"""The dialogue facade the runtime calls: one turn in, one decision out, state saved atomically.

Every change to a conversation is load -> apply (pure) -> one atomic commit with a version
check. When another worker committed first, the step is redone on fresh state, up to
``max_retries`` times, then ``ConcurrentUpdate`` is raised; a step is either fully recorded or
not at all.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from agent.config import StoreConfig
from agent.errors import ConcurrentUpdate, Conflict, InvalidInput, NotFound
from agent.messages import (
    Handoff,
    HandoffReason,
    ImageAnalysis,
    KnowledgeHit,
    NluResult,
    PolicyDecision,
    Silence,
    Transcript,
    UserTurn,
)
from dialogue import records, responses
from dialogue.domain import Domain
from dialogue.policy import Plan, Policy, TurnInput
from dialogue.service_checks import check_nlu, check_profile_fields, check_text
from dialogue.state import (
    HANDOFF_STATUSES,
    DialogueState,
    HandoffRecord,
    TurnRecord,
    UserProfile,
    apply_contact,
    apply_handoff,
    apply_profile_fields,
    apply_release,
    apply_turns,
    bump,
    new_profile,
    new_state,
)
from dialogue.stores.base import Commit, Event, TrackerStore, check_id
from dialogue.stores.memory import InMemoryTrackerStore

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class DialogueOutcome:
    turn_index: int  # index of the user's turn
    decision: PolicyDecision
    state: DialogueState  # as saved


class DialogueService:
    def __init__(self, store: TrackerStore, domain: Domain, *, max_retries: int = 5,
                 clock: Callable[[], float] = time.time) -> None:
        if not 0 <= max_retries <= 100:
            raise ValueError(f"max_retries must be in [0, 100], got {max_retries}")
        self.store = store
        self.domain = domain
        self.max_retries = max_retries
        self.clock = clock
        self.retries = 0  # steps redone because another worker committed first (for monitoring)
        self._policy = Policy(domain)

    async def _retrying(self, what: str, step: Callable[[], Awaitable[T]]) -> T:
        """Run ``step`` (load, apply, commit) again on fresh state while another worker wins."""
        for attempt in range(self.max_retries + 1):
            try:
                return await step()
            except ConcurrentUpdate:
                if attempt == self.max_retries:
                    break
                self.retries += 1
                log.debug("concurrent update of %s; retry %d", what, attempt + 1)
                await asyncio.sleep(random.uniform(0.0, 0.002 * (attempt + 1)))  # spread the racers
        raise ConcurrentUpdate(
            f"{what}: another worker saved it first {self.max_retries + 1} times in a row; nothing was recorded"
        )

    # --- turns ---------------------------------------------------------------------------

    async def handle_turn(self, turn: UserTurn, nlu: NluResult | None, *, transcript: Transcript | None = None,
                          image: ImageAnalysis | None = None, knowledge: KnowledgeHit | None = None) -> DialogueOutcome:
        if not isinstance(turn, UserTurn):
            raise InvalidInput(f"turn: expected a UserTurn, got {type(turn).__name__}")
        check_id("conversation_id", turn.conversation_id)
        if turn.user_id is not None:
            check_id("user_id", turn.user_id)
        text = turn.text if turn.text is not None else (transcript.text if transcript is not None else "")
        check_text("text", text, allow_empty=True)
        check_nlu(nlu)

        async def step() -> DialogueOutcome:
            return await self._turn_step(turn, text, nlu, transcript, image, knowledge)

        return await self._retrying(f"conversation {turn.conversation_id}", step)

    async def _turn_step(self, turn: UserTurn, text: str, nlu: NluResult | None, transcript: Transcript | None,
                         image: ImageAnalysis | None, knowledge: KnowledgeHit | None) -> DialogueOutcome:
        now = self.clock()
        state, profile = await self._load_for_turn(turn, now)
        index = state.turn_count
        inp = TurnInput(text=text, nlu=nlu, turn_index=index, now=now, dtmf=turn.dtmf,
                        transcript=transcript, image=image, knowledge=knowledge)
        plan = self._policy.decide(state, profile, inp)
        user = records.user_turn_record(index, turn, text, nlu, now=now, transcript=transcript, image=image)
        decision, state, turns, handoff = await self._realise(plan, user, turn.channel, knowledge, now)
        commit_id = uuid.uuid4().hex
        state = replace(bump(apply_turns(state, len(turns), now=now)), last_commit_id=commit_id)
        events = [records.turn_event(state, user, decision, plan.reason)]
        if handoff is not None:
            events.append(records.handoff_event("handoff", handoff))
        commit = Commit(commit_id=commit_id, state=state, turns=turns,
                        profile=bump(plan.profile) if plan.profile is not None else None,
                        handoff=handoff, events=tuple(events))
        await self.store.commit(commit)
        if handoff is not None:
            log.info("hand-off %s of conversation %s: %s", handoff.id, state.conversation_id, handoff.reason)
        return DialogueOutcome(turn_index=index, decision=decision, state=state)

    async def _load_for_turn(self, turn: UserTurn, now: float) -> tuple[DialogueState, UserProfile | None]:
        state = await self.store.load(turn.conversation_id)
        if state is not None and state.user_id and turn.user_id and turn.user_id != state.user_id:
            raise InvalidInput("user_id: expected the user this conversation belongs to, got another")
        new_contact = state is None or (state.user_id is None and turn.user_id is not None)
        user_id = turn.user_id or (state.user_id if state else None)
        if state is None:
            state = new_state(turn.conversation_id, user_id=user_id, channel=turn.channel, now=now)
        elif state.user_id is None and user_id is not None:
            state = replace(state, user_id=user_id)
        if user_id is None:
            return state, None
        profile = await self.store.load_profile(user_id) or new_profile(user_id, now=now)
        return state, apply_contact(profile, new_conversation=new_contact, now=now)

    async def _realise(self, plan: Plan, user: TurnRecord, channel: str, knowledge: KnowledgeHit | None,
                       now: float) -> tuple[PolicyDecision, DialogueState, tuple[TurnRecord, ...], HandoffRecord | None]:
        """The plan as a decision, the turns to append and, for a hand-off, its record."""
        state = plan.state
        if isinstance(plan.decision, Silence):
            return plan.decision, state, (user,), None
        if plan.decision is not None:
            bot = records.bot_turn_record(user.index + 1, plan.decision, now=now, channel=channel,
                                          reason=plan.reason, knowledge=knowledge)
            return plan.decision, state, (user, bot), None
        assert plan.handoff_reason is not None
        handoff_id = uuid.uuid4().hex[:16]
        recent = await self._recent_turns(state) + [user]
        record = records.handoff_record(handoff_id, state, reason=plan.handoff_reason.value, detail=plan.detail,
                                        summary=None, recent=recent,
                                        summary_turns=self.domain.policy.summary_turns, now=now)
        text = responses.system_text(self.domain, "handoff", responses.template_values(state, plan.profile))
        decision = Handoff(reason=plan.handoff_reason, summary=record.summary,
                           text=f"{plan.prefix} {text}" if plan.prefix else text, handoff_id=handoff_id)
        bot = records.bot_turn_record(user.index + 1, decision, now=now, channel=channel, reason=plan.reason)
        return decision, apply_handoff(state, handoff_id), (user, bot), record

    async def _recent_turns(self, state: DialogueState) -> list[TurnRecord]:
        if state.version == 0:
            return []
        start = max(0, state.turn_count - self.domain.policy.summary_turns)
        return await self.store.get_turns(state.conversation_id, start=start)

    # --- reading conversations and profiles ---------------------------------------------

    async def get_conversation(self, conversation_id: str) -> tuple[DialogueState, list[TurnRecord]]:
        state = await self.store.load(conversation_id)
        if state is None:
            raise NotFound(f"conversation {conversation_id} not found (never started, or expired)")
        return state, await self.store.get_turns(conversation_id, stop=state.turn_count)

    async def get_turns(self, conversation_id: str, *, start: int = 0) -> list[TurnRecord]:
        if not isinstance(start, int) or start < 0:
            raise InvalidInput(f"start: expected a turn index >= 0, got {start!r}")
        state = await self.store.load(conversation_id)
        if state is None:
            raise NotFound(f"conversation {conversation_id} not found (never started, or expired)")
        return await self.store.get_turns(conversation_id, start=start, stop=state.turn_count)

    async def get_profile(self, user_id: str) -> UserProfile:
        profile = await self.store.load_profile(user_id)
        if profile is None:
            raise NotFound(f"no profile for user {user_id}")
        return profile

    async def update_profile(self, user_id: str, **fields: Any) -> UserProfile:
        """Set ``name``, ``tier``, ``language`` or ``preferences`` (a dict of str to str)."""
        check_id("user_id", user_id)
        check_profile_fields(fields)

        async def step() -> UserProfile:
            now = self.clock()
            profile = await self.store.load_profile(user_id) or new_profile(user_id, now=now)
            profile = bump(apply_profile_fields(profile, fields))
            event = Event(type="profile", data={"user_id": user_id, "fields": sorted(fields)})
            await self.store.commit(Commit(commit_id=uuid.uuid4().hex, profile=profile, events=(event,)))
            return profile

        return await self._retrying(f"profile {user_id}", step)

    # --- hand-offs -----------------------------------------------------------------------

    async def request_handoff(self, conversation_id: str, *, reason: HandoffReason, summary: str | None = None,
                              user_id: str | None = None) -> Handoff:
        """Hand a conversation to a human on the caller's say-so (Rasa action, DTMF, an error)."""
        check_id("conversation_id", conversation_id)
        if user_id is not None:
            check_id("user_id", user_id)
        if not isinstance(reason, HandoffReason):
            raise InvalidInput(f"reason: expected one of {[r.value for r in HandoffReason]}, got {reason!r}")
        if summary is not None:
            check_text("summary", summary)

        async def step() -> Handoff:
            return await self._handoff_step(conversation_id, reason, summary, user_id)

        return await self._retrying(f"conversation {conversation_id}", step)

    async def _handoff_step(self, conversation_id: str, reason: HandoffReason, summary: str | None,
                            user_id: str | None) -> Handoff:
        now = self.clock()
        state = await self.store.load(conversation_id) or new_state(conversation_id, user_id=user_id,
                                                                     channel="api", now=now)
        text = responses.system_text(self.domain, "handoff", {})
        if state.mode == "human" and state.last_handoff_id:
            existing = await self.store.load_handoff(state.last_handoff_id)
            if existing is not None and existing.status != "released":
                return Handoff(reason=HandoffReason(existing.reason), summary=existing.summary, text=text,
                               handoff_id=existing.id)
        handoff_id = uuid.uuid4().hex[:16]
        record = records.handoff_record(handoff_id, state, reason=reason.value, detail="requested", summary=summary,
                                        recent=await self._recent_turns(state),
                                        summary_turns=self.domain.policy.summary_turns, now=now)
        decision = Handoff(reason=reason, summary=record.summary, text=text, handoff_id=handoff_id)
        bot = records.bot_turn_record(state.turn_count, decision, now=now, channel=state.channel,
                                      reason=f"{reason.value}: requested")
        commit_id = uuid.uuid4().hex
        state = replace(bump(apply_turns(apply_handoff(state, handoff_id), 1, now=now)), last_commit_id=commit_id)
        await self.store.commit(Commit(commit_id=commit_id, state=state, turns=(bot,), handoff=record,
                                       events=(records.handoff_event("handoff", record),)))
        log.info("hand-off %s of conversation %s requested: %s", handoff_id, conversation_id, reason.value)
        return decision

    async def list_handoffs(self, *, status: str | None = "pending") -> list[HandoffRecord]:
        if status is not None and status not in HANDOFF_STATUSES:
            raise InvalidInput(f"status: expected one of {list(HANDOFF_STATUSES)} or none, got {status!r}")
        return await self.store.list_handoffs(status=status)

    async def get_handoff(self, handoff_id: str) -> HandoffRecord:
        record = await self.store.load_handoff(handoff_id)
        if record is None:
            raise NotFound(f"hand-off {handoff_id} not found")
        return record

    async def claim_handoff(self, handoff_id: str, *, agent_id: str) -> HandoffRecord:
        check_id("agent_id", agent_id)

        async def step() -> HandoffRecord:
            record = await self.get_handoff(handoff_id)
            if record.status != "pending":
                raise Conflict(f"hand-off {handoff_id} is {record.status}; only a pending hand-off can be claimed")
            now = self.clock()
            claimed = bump(replace(record, status="claimed", agent_id=agent_id, claimed_at=now))
            note = f"hand-off {handoff_id} claimed by agent {agent_id}"
            await self._commit_handoff(claimed, "handoff_claimed", note, agent_id, now)
            return claimed

        return await self._retrying(f"hand-off {handoff_id}", step)

    async def claim_next_handoff(self, *, agent_id: str) -> HandoffRecord | None:
        """Take the oldest hand-off not yet delivered to any agent (the stream's consumer group)."""
        check_id("agent_id", agent_id)
        while (handoff_id := await self.store.next_queued_handoff(consumer=agent_id)) is not None:
            try:
                return await self.claim_handoff(handoff_id, agent_id=agent_id)
            except (Conflict, NotFound):
                await self.store.ack_queued_handoff(handoff_id)  # claimed by id meanwhile, or expired
        return None

    async def post_agent_message(self, handoff_id: str, *, agent_id: str, text: str) -> TurnRecord:
        check_id("agent_id", agent_id)
        check_text("text", text)

        async def step() -> TurnRecord:
            record = await self._owned(handoff_id, agent_id)
            state = await self.store.load(record.conversation_id)
            if state is None:
                raise NotFound(f"conversation {record.conversation_id} of hand-off {handoff_id} has expired")
            now = self.clock()
            turn = TurnRecord(index=state.turn_count, role="human_agent", text=text, timestamp=now,
                              channel=state.channel, handoff_id=handoff_id, agent_id=agent_id)
            commit_id = uuid.uuid4().hex
            state = replace(bump(apply_turns(state, 1, now=now)), last_commit_id=commit_id)
            event = Event(type="agent_message", conversation_id=state.conversation_id,
                          data={"handoff_id": handoff_id, "agent_id": agent_id, "turn_index": turn.index, "text": text})
            await self.store.commit(Commit(commit_id=commit_id, state=state, turns=(turn,), events=(event,)))
            return turn

        return await self._retrying(f"hand-off {handoff_id}", step)

    async def release_handoff(self, handoff_id: str, *, agent_id: str) -> HandoffRecord:
        """Give the conversation back to the bot."""
        check_id("agent_id", agent_id)

        async def step() -> HandoffRecord:
            record = await self._owned(handoff_id, agent_id)
            now = self.clock()
            released = bump(replace(record, status="released", released_at=now))
            await self._commit_handoff(released, "handoff_released", None, agent_id, now)
            return released

        return await self._retrying(f"hand-off {handoff_id}", step)

    async def _owned(self, handoff_id: str, agent_id: str) -> HandoffRecord:
        record = await self.get_handoff(handoff_id)
        if record.status != "claimed" or record.agent_id != agent_id:
            who = "another agent" if record.status == "claimed" else "nobody"
            raise Conflict(f"hand-off {handoff_id} is {record.status} by {who}; expected it claimed by agent {agent_id}")
        return record

    async def _commit_handoff(self, record: HandoffRecord, kind: str, note: str | None, agent_id: str,
                              now: float) -> None:
        """Save a hand-off's new status with its conversation's matching turn (if it has not expired)."""
        state = await self.store.load(record.conversation_id)
        commit_id = uuid.uuid4().hex
        turns: tuple[TurnRecord, ...] = ()
        if state is not None:
            if record.status == "released":
                state = apply_release(state)
                text = responses.system_text(self.domain, "released", {})
                turn = TurnRecord(index=state.turn_count, role="bot", text=text, timestamp=now,
                                  channel=state.channel, decision="answer", reason="hand-off released",
                                  handoff_id=record.id, agent_id=agent_id)
            else:
                turn = records.system_turn_record(state.turn_count, note or kind, now=now, handoff_id=record.id,
                                                  agent_id=agent_id)
            turns = (turn,)
            state = replace(bump(apply_turns(state, 1, now=now)), last_commit_id=commit_id)
        await self.store.commit(Commit(commit_id=commit_id, state=state, turns=turns, handoff=record,
                                       events=(records.handoff_event(kind, record),)))

    # --- blobs, events, health -----------------------------------------------------------

    async def put_blob(self, sha256: str, data: bytes, *, content_type: str) -> None:
        await self.store.put_blob(sha256, data, content_type=content_type)

    async def get_blob(self, sha256: str) -> tuple[bytes, str]:
        blob = await self.store.get_blob(sha256)
        if blob is None:
            raise NotFound(f"no stored image with sha256 {sha256[:12]}... (never uploaded, or expired)")
        return blob

    async def read_events(self, *, count: int = 100) -> list[dict[str, Any]]:
        if not isinstance(count, int) or not 1 <= count <= 10_000:
            raise InvalidInput(f"count: expected an integer in [1, 10000], got {count!r}")
        return await self.store.read_events(count=count)

    async def ping(self) -> None:
        await self.store.ping()

    async def aclose(self) -> None:
        await self.store.aclose()


def make_store(config: StoreConfig) -> TrackerStore:
    """The Redis store when ``config.redis_url`` is set, else the in-memory store."""
    if config.redis_url:
        from dialogue.stores.redis import RedisTrackerStore

        return RedisTrackerStore.from_config(config)
    return InMemoryTrackerStore(conversation_ttl_s=config.conversation_ttl_s, profile_ttl_s=config.profile_ttl_s,
                                blob_ttl_s=config.blob_ttl_s, stream_maxlen=config.stream_maxlen)
