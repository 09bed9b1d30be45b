"""The real rasa-sdk action server (``python -m rasa_sdk --actions agent.channels.rasa_action``
and ``agent rasa-actions``) in a subprocess, with the runtime in-process inside it and a real
Redis, answering webhook bodies of the shape Rasa 3 sends.

Most tests use the real dialogue layer with fake models (``rasa.agent_factory``), so they are
about the protocol and the wiring; ``test_real_model_*`` uses ``load_agent`` with the real
fine-tuned text model (``trained_model_dir`` where the suite provides it, else the default model
from ``AGENT_CACHE_DIR``, trained there once).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from agent.config import DEFAULT_CACHE_DIR, AgentConfig
from dialogue.domain import load_domain
from dialogue.service import DialogueService, make_store
from tests.channels.rasa_payloads import webhook
from tests.channels.rasa_server_process import ActionServerProcess, free_port
from tests.channels.test_rasa_attachments import PNG, files_url  # noqa: F401 (fixture: a real local file server)

pytestmark = pytest.mark.redis
FAKE_MODELS = "tests.channels.rasa_fake_agent:build_agent"
SECRET = "Pat-Q-Customer-7f3a"  # customer text that must never come back in an error or a log


@pytest.fixture(scope="module")
def prefix(redis_url: str) -> Iterator[str]:
    value = f"test-rasa-{uuid.uuid4().hex[:10]}"
    yield value
    client = redis.Redis.from_url(redis_url)
    for pattern in (f"{value}:*", f"*{{{value}*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    client.close()


def server_env(redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return {"AGENT_REDIS_URL": redis_url, "AGENT_KEY_PREFIX": prefix, "AGENT_RASA_AGENT_FACTORY": FAKE_MODELS,
            "AGENT_LOG_LEVEL": "INFO", **extra}


@pytest.fixture(scope="module")
def server(redis_url: str, prefix: str, files_url: str) -> Iterator[ActionServerProcess]:  # noqa: F811
    env = server_env(redis_url, prefix, AGENT_RASA_ATTACHMENT_ALLOW_LIST=files_url,
                     AGENT_RASA_MAX_ATTACHMENT_BYTES="100000", AGENT_RASA_MAX_WEBHOOK_BYTES="2000000")
    with ActionServerProcess(env) as process:
        yield process


def post(server: ActionServerProcess, body: Any, **kwargs: Any) -> httpx.Response:
    if not isinstance(body, (bytes, str)):
        kwargs["json"] = body
    else:
        kwargs["content"] = body
        kwargs.setdefault("headers", {"content-type": "application/json"})
    return httpx.post(server.url + "/webhook", timeout=120, **kwargs)


def slots_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return {e["name"]: e["value"] for e in response.json()["events"] if e["event"] == "slot"}


def dialogue(redis_url: str, prefix: str) -> DialogueService:
    config = AgentConfig.from_mapping({"store": {"redis_url": redis_url, "key_prefix": prefix}})
    return DialogueService(make_store(config.store), load_domain(config.domain.path))


def read(redis_url: str, prefix: str, what: str, *args: Any) -> Any:
    async def go() -> Any:
        service = dialogue(redis_url, prefix)
        try:
            return await getattr(service, what)(*args)
        finally:
            await service.aclose()

    return asyncio.run(go())


def test_health_and_actions(server: ActionServerProcess) -> None:
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    names = {a["name"] for a in httpx.get(server.url + "/actions").json()}
    assert names == {"action_agent_respond", "action_handoff_to_human", "action_agent_profile", "action_agent_sentiment"}


def test_a_conversation_across_webhook_calls_keeps_its_profile_in_redis(server, redis_url, prefix) -> None:
    sender, meta = "rasa-int-1", {"user_id": "cust-int-1"}
    history: list[tuple[str, str]] = [("user", "hello")]
    first = post(server, webhook("action_agent_respond", sender, history, metadata=meta))
    assert slots_of(first)["agent_intent"] == "greeting"
    history += [("bot", first.json()["responses"][0]["text"]), ("user", "I lost my card on Friday")]
    second = post(server, webhook("action_agent_respond", sender, history, metadata=meta))
    slots = slots_of(second)
    assert slots["agent_intent"] == "lost_or_stolen_card" and slots["agent_decision"] == "answer"
    assert slots["agent_date"] and second.json()["responses"][0]["text"]
    state, turns = read(redis_url, prefix, "get_conversation", sender)
    assert [t.role for t in turns] == ["user", "bot", "user", "bot"] and state.user_id == "cust-int-1"

    profile = post(server, webhook("action_agent_profile", "rasa-int-2", [("user", "hi")], intent="greet",
                                   metadata=meta, slots={"agent_profile_name": "Kim"}))
    slots = slots_of(profile)
    assert slots["agent_profile_known"] is True and slots["agent_profile_recent_issues"] == ["lost_or_stolen_card"]
    assert read(redis_url, prefix, "get_profile", "cust-int-1").name == "Kim"


def test_handoff_pauses_and_is_pending_in_redis(server, redis_url, prefix) -> None:
    history = [("user", "my transfer failed twice"), ("bot", "Sorry to hear that."), ("user", "get me a person")]
    response = post(server, webhook("action_handoff_to_human", "rasa-int-h", history, intent="request_human"))
    slots, events = slots_of(response), response.json()["events"]
    assert events[-1]["event"] == "pause" and slots["agent_decision"] == "handoff"
    assert response.json()["responses"][0]["text"]
    record = read(redis_url, prefix, "get_handoff", slots["agent_handoff_id"])
    assert record.status == "pending" and "customer: get me a person" in record.summary


def test_sentiment_for_rules_to_branch_on(server) -> None:
    response = post(server, webhook("action_agent_sentiment", "rasa-int-s", [("user", "you are useless, I'm furious")],
                                    intent="complain"))
    assert slots_of(response) == {"agent_sentiment": "negative", "agent_sentiment_score": -0.9,
                                  "agent_emotion": "anger", "agent_emotion_confidence": 0.0}


def test_an_allow_listed_image_url_is_fetched_by_the_server(server, redis_url, prefix, files_url) -> None:  # noqa: F811
    response = post(server, webhook("action_agent_respond", "rasa-int-img", [("user", "charged twice for this")],
                                    metadata={"image": {"url": files_url + "card.png"}}))
    assert response.status_code == 200, response.text
    _, turns = read(redis_url, prefix, "get_conversation", "rasa-int-img")
    assert turns[0].image_kind == "receipt"


def test_deflate_compressed_bodies_are_accepted(server) -> None:
    body = zlib.compress(json.dumps(webhook("action_agent_respond", "rasa-int-z", [("user", "hello")])).encode())
    response = post(server, body, headers={"content-type": "application/json", "content-encoding": "deflate"})
    assert slots_of(response)["agent_intent"] == "greeting"


def test_a_deflate_bomb_is_refused(server) -> None:
    bomb = zlib.compress(b"[" + b" " * 30_000_000 + b"]", 9)
    response = post(server, bomb, headers={"content-type": "application/json", "content-encoding": "deflate"})
    assert response.status_code == 400 and "over the limit of 2,000,000 bytes" in response.json()["error"]
    assert httpx.get(server.url + "/health").status_code == 200


def _bad_bodies(files_url: str) -> list[tuple[str, Any, int, str]]:  # noqa: F811
    no_user = webhook("action_agent_respond", "rasa-bad-1", [("bot", SECRET)])
    far_url = webhook("action_agent_respond", "rasa-bad-2", [("user", SECRET)],
                      metadata={"image": {"url": "https://elsewhere.example.com/x.png"}})
    too_big = webhook("action_agent_respond", "rasa-bad-3", [("user", SECRET)],
                      metadata={"image": {"url": files_url + "big.png"}})
    no_tracker = {"next_action": "action_agent_respond", "sender_id": SECRET, "domain": {}}
    bad_tracker = {"next_action": "action_agent_respond", "tracker": {"sender_id": "x", "latest_message": SECRET}}
    return [
        ("not JSON", f'{{"text": "{SECRET}"', 400, "not valid JSON"),
        ("a JSON list", json.dumps([SECRET]), 400, "must be a JSON object"),
        ("no next_action", {"tracker": {"sender_id": SECRET}}, 400, "'next_action' is required"),
        ("no tracker", no_tracker, 400, "'tracker' is required"),
        ("a tracker of the wrong shape", bad_tracker, 400, "'tracker.latest_message' must be"),
        ("no user message", no_user, 400, "needs a user message"),
        ("an attachment URL off the allow-list", far_url, 400, "not on the allow-list"),
        ("an attachment over the size cap", too_big, 400, "the limit is 100,000"),
        ("an unknown action", {**no_user, "next_action": "action_nope"}, 404, "No registered action"),
    ]


def test_bad_webhooks_get_rasa_sdk_error_shapes_and_write_nothing(server, redis_url, prefix, files_url) -> None:  # noqa: F811
    for name, body, status, expected in _bad_bodies(files_url):
        response = post(server, body)
        assert response.status_code == status, (name, response.text)
        data = response.json()
        assert set(data) == {"error", "action_name"} and expected in data["error"], (name, data)
        assert SECRET not in response.text, name
    for sender in ("rasa-bad-1", "rasa-bad-2", "rasa-bad-3"):
        with pytest.raises(Exception, match="not found"):
            read(redis_url, prefix, "get_conversation", sender)
    assert SECRET not in server.log_text()


def test_runtime_down_is_an_apology_not_a_500(redis_url, prefix) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    with ActionServerProcess(server_env(dead_redis, prefix)) as down:
        response = post(down, webhook("action_agent_respond", "rasa-down", [("user", SECRET)]))
        assert slots_of(response) == {"agent_decision": "unavailable"}
        assert response.json()["responses"][0]["response"] == "utter_agent_unavailable"
        assert not any(e["event"] == "pause" for e in response.json()["events"])
        assert SECRET not in down.log_text()


def test_a_model_that_fails_to_load_hands_off(redis_url, prefix, tmp_path: Path) -> None:
    env = server_env(redis_url, prefix, AGENT_RASA_AGENT_FACTORY="", AGENT_MODEL_DIR=str(tmp_path / "no-model"))
    with ActionServerProcess(env) as broken:
        response = post(broken, webhook("action_agent_respond", "rasa-nomodel", [("user", "hello")]))
        slots = slots_of(response)
        assert slots["agent_decision"] == "handoff" and response.json()["events"][-1]["event"] == "pause"
    record = read(redis_url, prefix, "get_handoff", slots["agent_handoff_id"])
    assert record.reason == "dependency_down"


def test_agent_rasa_actions_cli_over_http_to_a_runtime(redis_url, prefix) -> None:
    import uvicorn

    from agent.server import create_app
    from tests.channels.rasa_fake_agent import build_agent

    config = AgentConfig.from_mapping({"store": {"redis_url": redis_url, "key_prefix": prefix}})
    app = create_app(build_agent(config), wait_for_model=True)
    port = free_port()
    runtime = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    try:
        env = {"AGENT_RASA_RUNTIME_URL": f"http://127.0.0.1:{port}", "AGENT_REDIS_URL": ""}
        with ActionServerProcess(env, command="agent") as actions:
            slots = slots_of(post(actions, webhook("action_agent_respond", "rasa-http-1", [("user", "I lost my card")])))
            assert slots["agent_intent"] == "lost_or_stolen_card"
            handoff = post(actions, webhook("action_handoff_to_human", "rasa-http-1", [("user", "a human please")]))
            assert handoff.json()["events"][-1]["event"] == "pause"
            assert slots_of(post(actions, webhook("action_agent_sentiment", "rasa-http-1",
                                                  [("user", "furious")])))["agent_sentiment"] == "negative"
            runtime.should_exit = True
            thread.join(timeout=10)
            down = post(actions, webhook("action_agent_respond", "rasa-http-2", [("user", "hello")]))
            assert slots_of(down) == {"agent_decision": "unavailable"}
    finally:
        runtime.should_exit = True
        thread.join(timeout=10)
    state, _ = read(redis_url, prefix, "get_conversation", "rasa-http-1")
    assert state.mode == "human"


# --- the real text model ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_env(request: pytest.FixtureRequest) -> dict[str, str]:
    try:
        return {"AGENT_MODEL_DIR": str(request.getfixturevalue("trained_model_dir"))}
    except pytest.FixtureLookupError:
        return {"AGENT_CACHE_DIR": os.environ.get("AGENT_CACHE_DIR", str(DEFAULT_CACHE_DIR)),
                "AGENT_RASA_START_TIMEOUT_S": "3600"}


@pytest.mark.slow
def test_real_model_behind_the_action_server(redis_url, prefix, model_env, image_cache_dir) -> None:
    env = {"AGENT_REDIS_URL": redis_url, "AGENT_KEY_PREFIX": prefix, "AGENT_NLU_THREADS": "2",
           "AGENT_CACHE_DIR": str(image_cache_dir), **model_env}
    with ActionServerProcess(env) as real:
        stolen = slots_of(post(real, webhook("action_agent_respond", "rasa-real-1",
                                             [("user", "I think my card was stolen on the bus")])))
        assert stolen["agent_intent"] == "lost_or_stolen_card" and stolen["agent_decision"] in ("answer", "clarify")
        angry = slots_of(post(real, webhook("action_agent_sentiment", "rasa-real-1", [
            ("user", "This is absolutely ridiculous, I am furious with your useless bank")])))
        assert angry["agent_sentiment"] == "negative"
        image = base64.b64encode(PNG).decode()
        with_image = post(real, webhook("action_agent_respond", "rasa-real-2", [("user", "what is this charge")],
                                        metadata={"image": {"base64": image, "content_type": "image/png"}}))
        assert with_image.status_code == 200 and slots_of(with_image)["agent_decision"] != "unavailable"
