"""Reading a Rasa tracker, and the slot events our actions return. Pure functions.

Slot events are only returned for slots the assistant's domain declares (Rasa warns about, and
drops, events for unknown slots); when the request carried no domain, every slot is returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import ConversationPaused, SlotSet

from agent.errors import InvalidInput
from agent.messages import Answer, Handoff, NluResult, TurnResult, decision_kind

# slot names (declare the ones you use in the Rasa domain; see docs/rasa.md)
INTENT, CONFIDENCE, SENTIMENT, EMOTION = "agent_intent", "agent_confidence", "agent_sentiment", "agent_emotion"
SENTIMENT_SCORE, EMOTION_CONFIDENCE = "agent_sentiment_score", "agent_emotion_confidence"
DECISION, HANDOFF_ID, ENTITIES = "agent_decision", "agent_handoff_id", "agent_entities"
ENTITY_PREFIX = "agent_"  # + entity kind: agent_amount, agent_date, agent_card_last4, ...
PROFILE_KNOWN, PROFILE_NAME, PROFILE_TIER = "agent_profile_known", "agent_profile_name", "agent_profile_tier"
PROFILE_LANGUAGE, PROFILE_ISSUES = "agent_profile_language", "agent_profile_recent_issues"
PROFILE_CONVERSATIONS, USER_ID = "agent_profile_conversations", "agent_user_id"
UNAVAILABLE = "unavailable"  # agent_decision when the runtime failed and no hand-off could be recorded

MAX_SUMMARY_CHARS = 2000
SUMMARY_MESSAGES = 6  # the last customer and bot messages quoted in a hand-off summary
SUMMARY_MESSAGE_CHARS = 200
SUMMARY_SLOTS = 12


@dataclass(frozen=True, slots=True, kw_only=True)
class RasaMessage:
    """The latest user message of a tracker, as our actions need it."""

    sender_id: str
    text: str | None
    metadata: Mapping[str, Any]
    rasa_intent: str | None
    message_id: str | None
    input_channel: str | None


def latest_user_message(tracker: Tracker, *, action: str) -> RasaMessage:
    """The tracker's latest user message; ``InvalidInput`` if there is none."""
    latest = tracker.latest_message if isinstance(tracker.latest_message, dict) else {}
    last_event = _last_user_event(tracker.events)
    if not latest.get("text") and not latest.get("metadata") and last_event is None:
        raise InvalidInput(f"{action} needs a user message, but the tracker holds none")
    text = latest.get("text")
    if text is None and last_event is not None:
        text = last_event.get("text")
    if text is not None and not isinstance(text, str):
        raise InvalidInput(f"latest_message.text: expected a string, got {type(text).__name__}")
    metadata = latest.get("metadata") or (last_event.get("metadata") if last_event else None) or {}
    if not isinstance(metadata, Mapping):
        raise InvalidInput(f"the user message's metadata: expected an object, got {type(metadata).__name__}")
    intent = latest.get("intent")
    return RasaMessage(
        sender_id=tracker.sender_id,
        text=text if text and text.strip() else None,
        metadata=metadata,
        rasa_intent=intent.get("name") if isinstance(intent, dict) and isinstance(intent.get("name"), str) else None,
        message_id=_str_or_none(latest.get("message_id")),
        input_channel=_str_or_none(last_event.get("input_channel") if last_event else None),
    )


def _last_user_event(events: Any) -> dict[str, Any] | None:
    if not isinstance(events, list):
        return None
    for event in reversed(events):
        if isinstance(event, dict) and event.get("event") == "user":
            return event
    return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def user_id_of(tracker: Tracker, message: RasaMessage | None = None) -> str:
    """Whose profile: ``metadata.user_id``, else the ``agent_user_id`` slot, else the sender id."""
    candidates = [message.metadata.get("user_id") if message else None, tracker.slots.get(USER_ID),
                  tracker.sender_id]
    for value in candidates:
        if isinstance(value, str) and value:
            return value
    raise InvalidInput("the tracker has no sender_id; expected the conversation's id")


# --- events -----------------------------------------------------------------------------------


def domain_slots(domain: Mapping[str, Any] | None) -> frozenset[str] | None:
    """The slot names a domain declares; None when there is no domain to go by."""
    if not isinstance(domain, Mapping) or not isinstance(domain.get("slots"), Mapping):
        return None
    return frozenset(str(name) for name in domain["slots"])


def slot_events(values: Iterable[tuple[str, Any]], domain: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    allowed = domain_slots(domain)
    events: list[dict[str, Any]] = [SlotSet(name, value) for name, value in values
                                    if allowed is None or name in allowed]
    return events


def pause_event() -> dict[str, Any]:
    event: dict[str, Any] = ConversationPaused()
    return event


def nlu_slots(nlu: NluResult | None) -> list[tuple[str, Any]]:
    if nlu is None:
        return []
    entity_values: dict[str, str] = {}
    for entity in nlu.entities:
        entity_values.setdefault(entity.kind, entity.value)  # the first of each kind
    return [
        (INTENT, nlu.intent),
        (CONFIDENCE, round(float(nlu.confidence), 4)),
        (SENTIMENT, nlu.sentiment),
        (EMOTION, nlu.emotion),
        (ENTITIES, [{"entity": e.kind, "value": e.value} for e in nlu.entities]),
        *((ENTITY_PREFIX + kind, value) for kind, value in entity_values.items()),
    ]


def sentiment_slots(nlu: NluResult) -> list[tuple[str, Any]]:
    return [
        (SENTIMENT, nlu.sentiment),
        (SENTIMENT_SCORE, round(float(nlu.sentiment_score), 4)),
        (EMOTION, nlu.emotion),
        (EMOTION_CONFIDENCE, round(float(nlu.emotion_confidence), 4)),
    ]


def turn_slots(result: TurnResult) -> list[tuple[str, Any]]:
    values = nlu_slots(result.nlu)
    values.append((DECISION, decision_kind(result.decision)))
    if isinstance(result.decision, Handoff):
        values.append((HANDOFF_ID, result.decision.handoff_id or None))
    return values


def utterance(result: TurnResult) -> dict[str, Any] | None:
    """Keyword arguments of ``dispatcher.utter_message`` for the reply, or None for no reply."""
    decision = result.decision
    if isinstance(decision, Answer):
        message: dict[str, Any] = {"text": decision.text}
        if decision.buttons:
            message["buttons"] = [{"title": b, "payload": b} for b in decision.buttons]
        if decision.image_url:
            message["image"] = decision.image_url
        return message
    if isinstance(decision, Handoff):
        return {"text": decision.text}
    return None


def profile_slots(profile: Any | None) -> list[tuple[str, Any]]:
    """Profile slots from a ``UserProfile`` (or None: an unknown customer)."""
    if profile is None:
        return [(PROFILE_KNOWN, False), (PROFILE_NAME, None), (PROFILE_TIER, None), (PROFILE_LANGUAGE, None),
                (PROFILE_ISSUES, []), (PROFILE_CONVERSATIONS, 0.0)]
    return [
        (PROFILE_KNOWN, True),
        (PROFILE_NAME, profile.name),
        (PROFILE_TIER, profile.tier),
        (PROFILE_LANGUAGE, profile.language),
        (PROFILE_ISSUES, [issue.intent for issue in profile.recent_issues]),
        (PROFILE_CONVERSATIONS, float(profile.conversations)),
    ]


# --- hand-off summary -------------------------------------------------------------------------


def handoff_summary(tracker: Tracker) -> str:
    """What the human agent reads first: intents, filled slots and the last messages (bounded)."""
    events = tracker.events if isinstance(tracker.events, list) else []
    intents: list[str] = []
    lines: list[str] = []
    for event in events:
        if not isinstance(event, dict):
            continue
        kind, text = event.get("event"), event.get("text")
        if kind == "user":
            intent = (event.get("parse_data") or {}).get("intent") if isinstance(event.get("parse_data"), dict) else None
            name = intent.get("name") if isinstance(intent, dict) else None
            if isinstance(name, str) and (not intents or intents[-1] != name):
                intents.append(name)
        if kind in ("user", "bot") and isinstance(text, str) and text.strip():
            who = "customer" if kind == "user" else "bot"
            lines.append(f"{who}: {_clip(text.strip(), SUMMARY_MESSAGE_CHARS)}")
    slots = [f"{k}={_clip(str(v), 60)}" for k, v in tracker.slots.items()
             if v not in (None, "", [], {}) and isinstance(v, (str, int, float, bool))][:SUMMARY_SLOTS]
    parts = [f"Rasa assistant asked for a human (conversation {tracker.sender_id})."]
    if intents:
        parts.append("Intents (Rasa): " + " -> ".join(intents[-8:]) + ".")
    if slots:
        parts.append("Slots: " + ", ".join(slots) + ".")
    if lines:
        parts.append("Last messages: " + " | ".join(lines[-SUMMARY_MESSAGES:]))
    return _clip(" ".join(parts), MAX_SUMMARY_CHARS)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
