"""The HTTP API with the real dialogue layer and stores, and a keyword fake for the text model
(the real model is exercised end to end in tests/integration/test_http_e2e.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from agent.config import AgentConfig
from agent.runtime import Agent
from agent.server import create_app
from dialogue.domain import load_domain
from dialogue.service import DialogueService, make_store
from tests.fakes import FakeNlu


def build_agent(config: AgentConfig) -> Agent:
    domain = load_domain(config.domain.path).with_overrides(config.policy)
    dialogue = DialogueService(make_store(config.store), domain, max_retries=config.store.max_retries)
    return Agent(config=config, dialogue=dialogue, nlu_loader=FakeNlu)


@pytest.fixture(params=["memory", "redis"])
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    env: dict[str, str] = {}
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        env = {"AGENT_REDIS_URL": url, "AGENT_KEY_PREFIX": request.getfixturevalue("redis_prefix")}
    config = AgentConfig.from_env(env)
    with TestClient(create_app(build_agent(config), wait_for_model=True)) as test_client:
        yield test_client


def turn(client: TestClient, conversation: str, text: str, **extra: object) -> dict:
    response = client.post(f"/v1/conversations/{conversation}/turns", json={"text": text, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_turn_returns_reply_decision_and_understanding(client: TestClient) -> None:
    body = turn(client, "c1", "I lost my card yesterday", user_id="u1")
    assert body["conversation_id"] == "c1" and body["turn"] == 0
    assert body["decision"] == "answer" and body["reply"]["text"]
    assert body["nlu"]["intent"] == "lost_or_stolen_card"
    assert 0.0 <= body["nlu"]["confidence"] <= 1.0 and body["nlu"]["sentiment"] in ("negative", "neutral", "positive")
    assert any(e["kind"] == "date" for e in body["nlu"]["entities"])
    second = turn(client, "c1", "thanks")
    assert second["turn"] > body["turn"]
    conversation = client.get("/v1/conversations/c1").json()
    assert [t["role"] for t in conversation["turns"]].count("user") == 2
    assert client.get("/v1/users/u1/profile").status_code == 200


def test_full_handoff_cycle_over_http(client: TestClient) -> None:
    body = turn(client, "h1", "I want to talk to a person", user_id="u-h1")
    assert body["decision"] == "handoff" and body["handoff"]["reason"] == "user_asked"
    handoff_id = body["handoff"]["id"]
    pending = client.get("/v1/handoffs").json()["handoffs"]
    assert handoff_id in [h["id"] for h in pending]

    silent = turn(client, "h1", "hello? anyone there?")
    assert silent["reply"] is None and silent["decision"] == "silent"

    assert client.post(f"/v1/handoffs/{handoff_id}/claim", json={"agent_id": "alice"}).status_code == 200
    again = client.post(f"/v1/handoffs/{handoff_id}/claim", json={"agent_id": "bob"})
    assert again.status_code == 409 and "error" in again.json()
    not_owner = client.post(f"/v1/handoffs/{handoff_id}/messages", json={"agent_id": "bob", "text": "hi"})
    assert not_owner.status_code == 409
    reply = client.post(f"/v1/handoffs/{handoff_id}/messages", json={"agent_id": "alice", "text": "Hi, Alice here."})
    assert reply.status_code == 200
    turns = client.get("/v1/conversations/h1").json()["turns"]
    assert any(t["role"] == "human_agent" and t["text"] == "Hi, Alice here." for t in turns)
    assert any(t["role"] == "user" and t["text"] == "hello? anyone there?" for t in turns)
    assert client.post(f"/v1/handoffs/{handoff_id}/release", json={"agent_id": "alice"}).status_code == 200
    back = turn(client, "h1", "what is my balance")
    assert back["decision"] != "silent" and back["reply"] is not None


@pytest.mark.parametrize(
    "body, status, needle",
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2, 3]", 400, "must be a JSON object"),
        (b'{"text": 42}', 422, "'text' must be a string"),
        (b'{"user_id": "u"}', 422, "'text' must be a string"),
        (b'{"text": "   "}', 422, "empty"),
        (b'{"text": "hi", "user_id": "../../etc/passwd"}', 422, "user_id must be"),
        (b'{"text": "hi", "metadata": [1]}', 422, "'metadata' must be a JSON object"),
        (b"[" * 50_000 + b"]" * 50_000, 413, "limit"),
        (b"[" * 30_000 + b"]" * 30_000, 400, "nested too deeply"),
        (b"\xff\xfe\x00garbage", 400, "not valid JSON"),
    ],
)
def test_bad_turn_bodies_get_clear_errors_and_change_nothing(
    client: TestClient, body: bytes, status: int, needle: str
) -> None:
    turn(client, "bad1", "hello")
    before = client.get("/v1/conversations/bad1").json()
    response = client.post("/v1/conversations/bad1/turns", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]
    assert "garbage" not in response.text and "passwd" not in response.text  # never echoed
    assert client.get("/v1/conversations/bad1").json() == before


def test_text_over_the_limit_says_what_the_limit_is(client: TestClient) -> None:
    response = client.post("/v1/conversations/long/turns", json={"text": "a" * 2001})
    assert response.status_code == 422
    assert "2,000" in response.json()["error"]
    assert client.get("/v1/conversations/long").status_code == 404


def test_oversized_body_wrong_type_and_bad_ids(client: TestClient) -> None:
    big = client.post("/v1/conversations/x/turns", content=b"x" * 13_000_000,
                      headers={"content-type": "application/json"})
    assert big.status_code == 413
    wrong = client.post("/v1/conversations/x/turns", content=b"text=hi",
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert wrong.status_code == 415
    bad_id = client.post("/v1/conversations/" + "x" * 200 + "/turns", json={"text": "hi"})
    assert bad_id.status_code == 422
    assert client.get("/v1/conversations/never-seen").status_code == 404
    assert client.get("/v1/users/nobody/profile").status_code == 404


def test_unknown_handoff_and_bad_handoff_requests(client: TestClient) -> None:
    assert client.post("/v1/handoffs/nope/claim", json={"agent_id": "a"}).status_code == 404
    assert client.get("/v1/handoffs/nope").status_code == 404
    assert client.post("/v1/handoffs/nope/claim", json={}).status_code == 422
    assert client.post("/v1/handoffs/nope/claim", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert client.get("/v1/handoffs", params={"status": "weird"}).status_code == 422


def test_rasa_rest_channel_format(client: TestClient) -> None:
    response = client.post("/webhooks/rest/webhook", json={"sender": "rasa-1", "message": "I lost my card"})
    assert response.status_code == 200
    messages = response.json()
    assert isinstance(messages, list) and messages[0]["recipient_id"] == "rasa-1" and messages[0]["text"]
    assert client.post("/webhooks/rest/webhook", json={"message": "hi"}).status_code == 422
    assert client.post("/webhooks/rest/webhook", content=b"nope", headers={"content-type": "application/json"}).status_code == 400


def test_health_readiness_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    turn(client, "m1", "I want to talk to a person")
    text = client.get("/metrics").text
    assert "agent_turns_total" in text and 'agent_handoffs_total{reason="user_asked"}' in text
    assert "agent_turn_latency_seconds_bucket" in text
    assert client.get("/openapi.json").json()["paths"]["/v1/conversations/{conversation_id}/turns"]


def test_logs_never_contain_message_text_at_info(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    secret_text = "my card 4929123456781234 was stolen, email jo@example.com"
    with caplog.at_level(logging.INFO):
        turn(client, "log1", secret_text, user_id="u-log")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "4929123456781234" not in logged and "jo@example.com" not in logged and "stolen" not in logged


def test_agent_token_protects_the_handoff_api() -> None:
    config = AgentConfig.from_env({"AGENT_SERVER_AGENT_TOKEN": "t0ken"})
    with TestClient(create_app(build_agent(config), wait_for_model=True)) as c:
        assert c.get("/v1/handoffs").status_code == 401
        assert c.get("/v1/handoffs", headers={"Authorization": "Bearer t0ken"}).status_code == 200
        assert "t0ken" not in c.get("/v1/handoffs").text
