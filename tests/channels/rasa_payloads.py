"""Webhook payloads of the shape Rasa 3 sends to an action server (``RemoteAction``): a tracker
with ``action_session_start``, ``user`` events with ``parse_data``, ``bot`` events, slots,
``latest_message`` and the domain of docs/rasa-example/domain.yml as a dict."""

from __future__ import annotations

import itertools
import time
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DOMAIN = ROOT / "docs" / "rasa-example" / "domain.yml"
RASA_VERSION = "3.10.0"
_clock = itertools.count()


@cache
def _example_domain() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE_DOMAIN.read_text(encoding="utf-8"))


def example_domain() -> dict[str, Any]:
    """The documented example domain (a fresh copy)."""
    import copy

    return copy.deepcopy(_example_domain())


def _ts() -> float:
    return time.time() + next(_clock) * 1e-3


def _action(name: str) -> dict[str, Any]:
    return {"event": "action", "timestamp": _ts(), "name": name, "policy": "RulePolicy",
            "confidence": 1.0, "action_text": None, "hide_rule_turn": False}


def parse_data(text: str | None, intent: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "intent": {"name": intent, "confidence": 0.93},
        "entities": [],
        "text": text,
        "message_id": uuid.uuid4().hex,
        "metadata": metadata or {},
        "intent_ranking": [{"name": intent, "confidence": 0.93}, {"name": "nlu_fallback", "confidence": 0.07}],
    }


def user_event(text: str | None, intent: str = "ask_support", metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    data = parse_data(text, intent, metadata)
    return {"event": "user", "timestamp": _ts(), "metadata": metadata or {}, "text": text, "parse_data": data,
            "input_channel": "rest", "message_id": data["message_id"]}


def bot_event(text: str, utter_action: str = "utter_greet") -> dict[str, Any]:
    return {"event": "bot", "timestamp": _ts(), "metadata": {"utter_action": utter_action}, "text": text,
            "data": {"elements": None, "quick_replies": None, "buttons": None, "attachment": None,
                     "image": None, "custom": None}}


def webhook(
    action: str,
    sender: str,
    messages: list[tuple[str, str]] | None = None,
    *,
    intent: str = "ask_support",
    metadata: dict[str, Any] | None = None,
    slots: dict[str, Any] | None = None,
    domain: dict[str, Any] | None | bool = True,
) -> dict[str, Any]:
    """A webhook body for ``action``. ``messages``: (``"user"``|``"bot"``, text) oldest first; the
    last user message gets ``intent`` and ``metadata``. ``domain=True``: the example domain."""
    messages = messages if messages is not None else [("user", "hello")]
    events: list[dict[str, Any]] = [_action("action_session_start"),
                                    {"event": "session_started", "timestamp": _ts()}, _action("action_listen")]
    last_user = max((i for i, (role, _) in enumerate(messages) if role == "user"), default=None)
    latest: dict[str, Any] = {"intent": {}, "entities": [], "text": None, "message_id": None, "metadata": {}}
    for i, (role, text) in enumerate(messages):
        if role == "user":
            event = user_event(text, intent if i == last_user else "ask_support", metadata if i == last_user else None)
            events.append(event)
            events.append({"event": "user_featurization", "timestamp": _ts(), "use_text_for_featurization": False})
            latest = dict(event["parse_data"])
        else:
            events.append(_action("action_agent_respond"))
            events.append(bot_event(text))
            events.append(_action("action_listen"))
    events.append(_action(action))
    all_slots = {name: None for name in _example_domain()["slots"]}
    all_slots.update(slots or {})
    tracker = {
        "sender_id": sender, "slots": all_slots, "latest_message": latest, "latest_event_time": _ts(),
        "followup_action": None, "paused": False, "events": events, "latest_input_channel": "rest",
        "active_loop": {}, "latest_action": {"action_name": action}, "latest_action_name": action,
    }
    return {"next_action": action, "sender_id": sender, "tracker": tracker,
            "domain": example_domain() if domain is True else (domain or None), "version": RASA_VERSION}
