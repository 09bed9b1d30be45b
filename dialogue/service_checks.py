"""Input checks at the dialogue service's boundary: what was expected, what came (never the text)."""

from __future__ import annotations

import math
from typing import Any

from agent.errors import InvalidInput
from agent.messages import NluResult
from dialogue.state import MAX_PREFERENCES, PROFILE_FIELDS

MAX_TEXT_CHARS = 10_000  # one turn's text as stored; channels apply their own, smaller limits
PROFILE_LIMITS = {"name": 100, "tier": 40, "language": 16}
MAX_PREFERENCE_CHARS = 200


def check_text(what: str, text: object, *, allow_empty: bool = False) -> str:
    if not isinstance(text, str):
        raise InvalidInput(f"{what}: expected a string, got {type(text).__name__}")
    if not allow_empty and not text.strip():
        raise InvalidInput(f"{what}: expected some text, got an empty string")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInput(f"{what}: expected at most {MAX_TEXT_CHARS:,} characters, got {len(text):,}")
    return text


def _unit(value: object, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and low <= value <= high


def check_nlu(nlu: object) -> None:
    if nlu is None:
        return
    if not isinstance(nlu, NluResult):
        raise InvalidInput(f"nlu: expected an NluResult or None, got {type(nlu).__name__}")
    problems = []
    if not isinstance(nlu.intent, str) or not nlu.intent:
        problems.append("intent: expected a non-empty string")
    if not _unit(nlu.confidence, 0.0, 1.0):
        problems.append(f"confidence: expected a number in [0, 1], got {nlu.confidence!r}")
    if not _unit(nlu.oos_score, 0.0, 1.0):
        problems.append(f"oos_score: expected a number in [0, 1], got {nlu.oos_score!r}")
    if not _unit(nlu.sentiment_score, -1.0, 1.0):
        problems.append(f"sentiment_score: expected a number in [-1, 1], got {nlu.sentiment_score!r}")
    if any(not _unit(s.confidence, 0.0, 1.0) for s in nlu.ranking):
        problems.append("ranking: expected confidences in [0, 1]")
    if problems:
        raise InvalidInput("nlu: " + "; ".join(problems))


def check_profile_fields(fields: dict[str, Any]) -> None:
    problems = []
    unknown = sorted(set(fields) - set(PROFILE_FIELDS))
    if unknown:
        problems.append(f"unknown profile fields {unknown}; expected some of {list(PROFILE_FIELDS)}")
    for key, limit in PROFILE_LIMITS.items():
        value = fields.get(key)
        if key in fields and value is not None and (not isinstance(value, str) or not 1 <= len(value) <= limit):
            problems.append(f"{key}: expected a string of 1 to {limit} characters or null")
    if "preferences" in fields:
        prefs = fields["preferences"]
        if not isinstance(prefs, dict) or len(prefs) > MAX_PREFERENCES:
            problems.append(f"preferences: expected a mapping of at most {MAX_PREFERENCES} entries")
        elif any(not isinstance(k, str) or not isinstance(v, str) or not k or len(k) > MAX_PREFERENCE_CHARS
                 or len(v) > MAX_PREFERENCE_CHARS for k, v in prefs.items()):
            problems.append(f"preferences: expected string keys and values of at most {MAX_PREFERENCE_CHARS} characters")
    if not fields:
        problems.append(f"expected at least one of {list(PROFILE_FIELDS)}")
    if problems:
        raise InvalidInput("profile: " + "; ".join(problems))
