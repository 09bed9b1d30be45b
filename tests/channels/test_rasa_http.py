"""The runtime endpoints the HTTP mode of the Rasa actions calls (agent/channels/rasa_http.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from agent.config import AgentConfig
from agent.server import create_app
from tests.channels.rasa_fake_agent import build_agent


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(build_agent(AgentConfig()), wait_for_model=True)
    with TestClient(app) as test_client:
        yield test_client


def test_handoff_endpoint(client: TestClient) -> None:
    response = client.post("/v1/conversations/h-1/handoff", json={"summary": "asked for a human", "user_id": "u1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["handoff"]["reason"] == "rasa_action" and body["reply"]["text"]
    pending = client.get("/v1/handoffs").json()["handoffs"]
    assert body["handoff"]["id"] in [h["id"] for h in pending]
    down = client.post("/v1/conversations/h-2/handoff", json={"summary": "x", "reason": "dependency_down"})
    assert down.json()["handoff"]["reason"] == "dependency_down"


@pytest.mark.parametrize("path, body, expected", [
    ("/v1/conversations/h-3/handoff", {"summary": "x", "reason": "user_asked"}, "'reason' must be one of"),
    ("/v1/conversations/h-3/handoff", {"summary": "x" * 5000}, "the limit is 4,000"),
    ("/v1/conversations/bad id/handoff", {"summary": "x"}, "conversation_id must be"),
    ("/v1/understand", {"message": "hi"}, "'text' must be a string"),
])
def test_bad_requests_are_refused(client: TestClient, path: str, body: dict, expected: str) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422 and expected in response.json()["error"]


def test_understand_records_nothing(client: TestClient) -> None:
    body = client.post("/v1/understand", json={"text": "I lost my card, I'm furious"}).json()
    assert body["intent"] == "lost_or_stolen_card" and body["sentiment"] == "negative"
    assert client.get("/v1/handoffs", params={"status": "all"}).json()["handoffs"] == []


def test_profile_patch(client: TestClient) -> None:
    response = client.patch("/v1/users/u-p/profile", json={"name": "Ana", "tier": "gold"})
    assert response.status_code == 200 and response.json()["name"] == "Ana"
    assert client.get("/v1/users/u-p/profile").json()["tier"] == "gold"
    bad = client.patch("/v1/users/u-p/profile", json={"email": "a@b.c"})
    assert bad.status_code == 422 and "unknown profile fields ['email']" in bad.json()["error"]
    assert "a@b.c" not in bad.text
