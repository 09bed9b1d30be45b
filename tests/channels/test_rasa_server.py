"""The webhook body checks that run before rasa-sdk's handler (the real server: tests/integration/
test_rasa_action_server.py)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.channels.rasa_server import check_action_call
from tests.channels.rasa_payloads import webhook


def test_a_rasa_webhook_body_passes() -> None:
    assert check_action_call(webhook("action_agent_respond", "c1", [("user", "hi")])) is None
    assert check_action_call(webhook("action_agent_respond", "c1", [("user", "hi")], domain=None)) is None


@pytest.mark.parametrize("body, expected", [
    (["x"], "must be a JSON object, got a JSON list"),
    ({"tracker": {"sender_id": "c"}}, "'next_action' is required"),
    ({"next_action": 5, "tracker": {"sender_id": "c"}}, "'next_action' is required"),
    ({"next_action": "a" * 300, "tracker": {"sender_id": "c"}}, "the limit is 200"),
    ({"next_action": "x"}, "'tracker' is required and must be an object, got nothing"),
    ({"next_action": "x", "tracker": "secret text"}, "got a JSON str"),
    ({"next_action": "x", "tracker": {}}, "'tracker.sender_id' must be a non-empty string"),
    ({"next_action": "x", "tracker": {"sender_id": "c", "events": {}}}, "'tracker.events' must be a JSON array"),
    ({"next_action": "x", "tracker": {"sender_id": "c", "slots": []}}, "'tracker.slots' must be a JSON object"),
    ({"next_action": "x", "tracker": {"sender_id": "c", "events": [{"event": "user"}, 3]}}, "JSON objects only"),
    ({"next_action": "x", "tracker": {"sender_id": "c"}, "domain": "d"}, "'domain' must be an object"),
])
def test_malformed_bodies_are_named_without_quoting_them(body: Any, expected: str) -> None:
    problem = check_action_call(body)
    assert problem is not None and expected in problem
    assert "secret text" not in problem
