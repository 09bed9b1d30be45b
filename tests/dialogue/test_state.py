"""Dialogue records: JSON round trips, strict decoding, and the pure transitions."""

from __future__ import annotations

import json

import pytest

from dialogue import codec
from dialogue.state import (
    INTENT_HISTORY_LEN,
    RECENT_ISSUES_LEN,
    DialogueState,
    HandoffRecord,
    RecentIssue,
    TurnRecord,
    UserProfile,
    apply_failure,
    apply_intent,
    apply_intent_history,
    apply_recent_issue,
    apply_release,
    apply_sentiment,
    apply_slot,
    new_state,
)


def test_records_round_trip_through_json() -> None:
    records = [
        DialogueState(conversation_id="c", slots=(("amount", "£5"),), sentiment_trend=(-0.5,), failures=(("x", 1),)),
        TurnRecord(index=3, role="bot", text="hé 🙂", buttons=("a", "b"), confidence=0.5, entities=(("date", "d"),)),
        UserProfile(user_id="u", name="Ada", intent_history=(("greeting", 2),),
                    recent_issues=(RecentIssue(intent="i", at=1.5, conversation_id="c", slots=(("k", "v"),)),)),
        HandoffRecord(id="h", conversation_id="c", reason="user_asked", summary="s", last_turns=(("user", "hi"),)),
    ]
    for record in records:
        text = codec.dumps(record)
        assert codec.loads(type(record), text, what="record") == record
        assert json.loads(json.dumps(record.to_dict())) == record.to_dict()


def test_defaults_are_not_stored() -> None:
    assert json.loads(codec.dumps(TurnRecord(index=0, role="user", text="hi"))) == {
        "index": 0, "role": "user", "text": "hi"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"conversation_id": 1}', "conversation_id: expected str, got int"),
        ('{"conversation_id": "c", "mode": "robot"}', "mode: expected one of"),
        ('{"conversation_id": "c", "slots": [["a"]]}', r"slots\[0\]: expected 2 items"),
        ('{"conversation_id": "c", "version": true}', "version: expected int, got bool"),
        ('{"conversation_id": "c", "surprise": 1}', "unexpected fields"),
        ("{}", "missing required fields"),
        ("[]", "expected a JSON object"),
        ("{", "unparseable"),
    ],
)
def test_malformed_records_are_refused_with_a_path(text: str, message: str) -> None:
    with pytest.raises(codec.RecordDecodeError, match=message):
        codec.loads(DialogueState, text, what="state")


def test_transitions_are_pure_and_bounded() -> None:
    state = new_state("c", user_id=None, channel="api", now=1.0)
    changed = apply_slot(apply_slot(state, "amount", "1"), "amount", "2")
    assert state.slots == () and changed.slots == (("amount", "2"),)
    for score in (-0.9, -0.8, 0.1, -0.7, -0.6, -0.9, -0.9):
        changed = apply_sentiment(changed, score, threshold=-0.5, window=5)
    assert changed.sentiment_trend == (0.1, -0.7, -0.6, -0.9, -0.9) and changed.negative_streak == 4
    changed = apply_failure(apply_failure(changed, "x"), "x")
    assert changed.failure_count("x") == 2
    assert apply_release(changed).failures == () and apply_release(changed).negative_streak == 0
    trail = apply_intent(apply_intent(apply_intent(state, "a"), "a"), "b")
    assert trail.intent_trail == ("a", "b") and trail.active_intent == "b"


def test_profile_history_and_issues_are_bounded() -> None:
    profile = UserProfile(user_id="u")
    for i in range(INTENT_HISTORY_LEN + 10):
        profile = apply_intent_history(profile, f"i{i}")
    profile = apply_intent_history(profile, "i20")
    assert len(profile.intent_history) == INTENT_HISTORY_LEN and profile.intent_history[-1] == ("i20", 2)
    for i in range(RECENT_ISSUES_LEN + 3):
        profile = apply_recent_issue(profile, RecentIssue(intent=f"x{i}", at=float(i), conversation_id="c"))
    assert len(profile.recent_issues) == RECENT_ISSUES_LEN and profile.recent_issues[0].intent == "x7"
