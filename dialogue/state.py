"""Dialogue records: conversation state, turns, customer profiles and hand-offs.

Every record is a frozen, keyword-only dataclass holding only str, int, float, bool, None and
tuples (and the small ``RecentIssue``), so it round-trips through JSON (``dialogue.codec``).
The ``apply_*`` functions are pure: they return a new record and never touch a store.
Times are Unix seconds (float).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from dialogue.codec import to_json_dict

Mode = Literal["bot", "human"]
Role = Literal["user", "bot", "human_agent", "system"]
HandoffStatus = Literal["pending", "claimed", "released"]
VersionedT = TypeVar("VersionedT", "DialogueState", "UserProfile", "HandoffRecord")
HANDOFF_STATUSES: tuple[str, ...] = ("pending", "claimed", "released")

INTENT_TRAIL_LEN = 8  # intents kept in the state for hand-off summaries
INTENT_HISTORY_LEN = 30  # distinct intents kept in a profile
RECENT_ISSUES_LEN = 5  # remembered issues kept in a profile
MAX_PREFERENCES = 32


class _Record:
    """``to_dict()`` for the HTTP API: every field, tuples as lists."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return to_json_dict(self, keep_defaults=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class DialogueState(_Record):
    """The small, bounded state of one conversation; its turns are stored apart."""

    conversation_id: str
    user_id: str | None = None
    version: int = 0  # 0: never saved; each commit adds 1
    turn_count: int = 0  # turns recorded (user, bot, human agent and system)
    mode: Mode = "bot"
    channel: str = ""
    active_intent: str | None = None  # the intent the conversation is about (follow-ups use it)
    slots: tuple[tuple[str, str], ...] = ()
    active_form: str | None = None
    requested_slot: str | None = None
    completed_form: str | None = None  # the form completed by the last bot turn (corrections)
    clarify_options: tuple[str, ...] = ()  # the two intents offered by a clarifying question
    recall_intent: str | None = None  # intent held while "is this about ...?" waits for yes/no
    recall_issue: str | None = None  # the remembered issue's intent
    recall_asked: bool = False
    low_confidence_streak: int = 0
    unheard_streak: int = 0
    negative_streak: int = 0
    failures: tuple[tuple[str, int], ...] = ()  # (intent, count)
    sentiment_trend: tuple[float, ...] = ()  # the last few sentiment scores, oldest first
    intent_trail: tuple[str, ...] = ()  # the last few intents, oldest first
    last_answered_intent: str | None = None
    last_handoff_id: str | None = None
    handoff_count: int = 0
    last_commit_id: str = ""  # the commit that wrote this version (makes re-sent commits idempotent)
    created_at: float = 0.0
    updated_at: float = 0.0

    def slot(self, name: str) -> str | None:
        return next((v for k, v in self.slots if k == name), None)

    def failure_count(self, intent: str) -> int:
        return next((n for k, n in self.failures if k == intent), 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnRecord(_Record):
    """One recorded turn. ``index`` is its 0-based position in the conversation."""

    index: int
    role: Role
    text: str = ""
    timestamp: float = 0.0
    channel: str = ""
    intent: str | None = None
    confidence: float | None = None
    oos_score: float | None = None
    sentiment: str | None = None
    sentiment_score: float | None = None
    emotion: str | None = None
    entities: tuple[tuple[str, str], ...] = ()  # (kind, normalised value)
    decision: str | None = None  # answer | clarify | knowledge | handoff | silent (bot turns)
    reason: str = ""
    buttons: tuple[str, ...] = ()
    knowledge_id: str | None = None
    image_sha256: str | None = None
    image_kind: str | None = None
    transcript_language: str | None = None
    transcript_avg_logprob: float | None = None
    audio_duration_s: float | None = None
    dtmf: str | None = None
    handoff_id: str | None = None
    agent_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecentIssue(_Record):
    """An issue a customer raised, remembered in the profile ("the lost card you reported")."""

    intent: str
    at: float
    conversation_id: str
    slots: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class UserProfile(_Record):
    """What is remembered about a customer across conversations; outlives them."""

    user_id: str
    version: int = 0
    name: str | None = None
    language: str | None = None
    tier: str | None = None
    preferences: tuple[tuple[str, str], ...] = ()
    intent_history: tuple[tuple[str, int], ...] = ()  # (intent, times asked), most recent last, bounded
    recent_issues: tuple[RecentIssue, ...] = ()  # most recent first, bounded
    conversations: int = 0
    last_contact: float = 0.0
    created_at: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoffRecord(_Record):
    """A conversation handed to a human agent, and where that hand-off stands."""

    id: str
    conversation_id: str
    user_id: str | None = None
    version: int = 0
    reason: str
    summary: str
    status: HandoffStatus = "pending"
    agent_id: str | None = None
    created_at: float = 0.0
    claimed_at: float | None = None
    released_at: float | None = None
    intents: tuple[str, ...] = ()
    slots: tuple[tuple[str, str], ...] = ()
    sentiment_trend: tuple[float, ...] = ()
    last_turns: tuple[tuple[str, str], ...] = ()  # (role, text), oldest first


# --- pure transitions -------------------------------------------------------------------------


def new_state(conversation_id: str, *, user_id: str | None, channel: str, now: float) -> DialogueState:
    return DialogueState(
        conversation_id=conversation_id, user_id=user_id, channel=channel, created_at=now, updated_at=now
    )


def apply_turns(state: DialogueState, n_turns: int, *, now: float) -> DialogueState:
    """Count ``n_turns`` more recorded turns."""
    return replace(state, turn_count=state.turn_count + n_turns, updated_at=now)


def apply_slot(state: DialogueState, name: str, value: str) -> DialogueState:
    slots = tuple((k, v) for k, v in state.slots if k != name) + ((name, value),)
    return replace(state, slots=slots)


def apply_sentiment(state: DialogueState, score: float, *, threshold: float, window: int) -> DialogueState:
    """Append a sentiment score to the trend and update the strongly-negative streak."""
    trend = (state.sentiment_trend + (round(score, 3),))[-window:]
    streak = state.negative_streak + 1 if score <= threshold else 0
    return replace(state, sentiment_trend=trend, negative_streak=streak)


def apply_intent(state: DialogueState, intent: str) -> DialogueState:
    """Make ``intent`` the active one and add it to the trail (a repeat of the last one is not added)."""
    if state.intent_trail and state.intent_trail[-1] == intent:
        return replace(state, active_intent=intent)
    trail = (state.intent_trail + (intent,))[-INTENT_TRAIL_LEN:]
    return replace(state, active_intent=intent, intent_trail=trail)


def apply_failure(state: DialogueState, intent: str) -> DialogueState:
    count = state.failure_count(intent) + 1
    failures = tuple((k, n) for k, n in state.failures if k != intent) + ((intent, count),)
    return replace(state, failures=failures)


def apply_handoff(state: DialogueState, handoff_id: str) -> DialogueState:
    """Human mode: the bot stays silent until the hand-off is released."""
    return replace(
        state,
        mode="human",
        last_handoff_id=handoff_id,
        handoff_count=state.handoff_count + 1,
        active_form=None,
        requested_slot=None,
        clarify_options=(),
        recall_intent=None,
    )


def apply_release(state: DialogueState) -> DialogueState:
    """Back to the bot, with the streaks and failure counts that led to the hand-off cleared."""
    return replace(
        state,
        mode="bot",
        low_confidence_streak=0,
        unheard_streak=0,
        negative_streak=0,
        failures=(),
        completed_form=None,
        last_answered_intent=None,
    )


def new_profile(user_id: str, *, now: float) -> UserProfile:
    return UserProfile(user_id=user_id, created_at=now)


def apply_contact(profile: UserProfile, *, new_conversation: bool, now: float) -> UserProfile:
    """The customer got in touch: count a new conversation and the time of last contact."""
    return replace(
        profile,
        conversations=profile.conversations + (1 if new_conversation else 0),
        last_contact=now,
    )


def apply_intent_history(profile: UserProfile, intent: str) -> UserProfile:
    """Count ``intent`` and move it to the end (most recent); the size is bounded by distinct intents."""
    count = next((n for k, n in profile.intent_history if k == intent), 0) + 1
    others = tuple((k, n) for k, n in profile.intent_history if k != intent)
    return replace(profile, intent_history=(others + ((intent, count),))[-INTENT_HISTORY_LEN:])


def apply_recent_issue(profile: UserProfile, issue: RecentIssue) -> UserProfile:
    """Remember ``issue`` first; an older entry for the same intent and conversation is replaced."""
    others = tuple(
        i
        for i in profile.recent_issues
        if not (i.intent == issue.intent and i.conversation_id == issue.conversation_id)
    )
    return replace(profile, recent_issues=((issue,) + others)[:RECENT_ISSUES_LEN])


PROFILE_FIELDS: tuple[str, ...] = ("name", "language", "tier", "preferences")


def apply_profile_fields(profile: UserProfile, fields: dict[str, Any]) -> UserProfile:
    """Set the editable profile fields; the caller has already validated them."""
    changes: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "preferences":
            changes[key] = tuple(sorted((str(k), str(v)) for k, v in dict(value).items()))
        else:
            changes[key] = value
    return replace(profile, **changes)


def bump(record: VersionedT) -> VersionedT:
    """The record as its next version (what a commit stores)."""
    return dataclasses.replace(record, version=record.version + 1)
