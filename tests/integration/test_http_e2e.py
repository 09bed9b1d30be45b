"""End to end through HTTP with the real fine-tuned text model (trained once per test session on
the default domain, see ``trained_model_dir``) and a real Redis server."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent.config import AgentConfig
from agent.runtime import load_agent
from agent.server import create_app

pytestmark = [pytest.mark.slow, pytest.mark.redis]


@pytest.fixture
def env(trained_model_dir: Path, redis_url: str, redis_prefix: str) -> dict[str, str]:
    return {"AGENT_MODEL_DIR": str(trained_model_dir), "AGENT_REDIS_URL": redis_url,
            "AGENT_KEY_PREFIX": redis_prefix}


@pytest.fixture
def client(env: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(load_agent(AgentConfig.from_env(env)), wait_for_model=True)) as c:
        yield c


def say(client: TestClient, conversation: str, text: str, **extra: object) -> dict:
    response = client.post(f"/v1/conversations/{conversation}/turns", json={"text": text, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_real_model_understands_and_answers(client: TestClient) -> None:
    body = say(client, "e2e-1", "I think my card was stolen on the bus", user_id="cust-1")
    assert body["nlu"]["intent"] == "lost_or_stolen_card"
    assert body["decision"] in ("answer", "clarify") and body["reply"]["text"]
    angry = say(client, "e2e-1", "This is absolutely ridiculous, I am furious with your useless bank")
    assert angry["nlu"]["sentiment"] == "negative"


def test_form_with_a_correction(client: TestClient) -> None:
    first = say(client, "e2e-form", "I want to dispute a charge on my card", user_id="cust-2")
    assert first["nlu"]["intent"] == "dispute_charge"
    assert first["decision"] == "answer"
    say(client, "e2e-form", "it was £45.20")
    say(client, "e2e-form", "yesterday")
    corrected = say(client, "e2e-form", "sorry, no, the amount was £54.20")
    state = client.get("/v1/conversations/e2e-form").json()["state"]
    slots = dict(state["slots"]) if isinstance(state["slots"], list) else state["slots"]
    assert "54.20" in str(slots.get("amount")), (corrected, slots)


def test_handoff_cycle_with_the_real_model(client: TestClient) -> None:
    body = say(client, "e2e-h", "Please let me talk to a real person", user_id="cust-3")
    assert body["decision"] == "handoff"
    handoff = body["handoff"]["id"]
    assert client.post(f"/v1/handoffs/{handoff}/claim", json={"agent_id": "ann"}).status_code == 200
    assert say(client, "e2e-h", "hello?")["decision"] == "silent"
    assert client.post(f"/v1/handoffs/{handoff}/messages", json={"agent_id": "ann", "text": "Hello, Ann here"}).status_code == 200
    assert client.post(f"/v1/handoffs/{handoff}/release", json={"agent_id": "ann"}).status_code == 200
    assert say(client, "e2e-h", "what's my balance?")["decision"] != "silent"


def _post_many(env: dict[str, str], conversation: str, texts: list[str], queue: multiprocessing.Queue) -> None:
    import asyncio

    from agent.messages import UserTurn

    async def run() -> list[int]:
        agent = load_agent(AgentConfig.from_env(env))
        await agent.start()
        indexes = []
        for text in texts:
            result = await agent.handle_turn(UserTurn(conversation_id=conversation, channel="api", text=text))
            indexes.append(result.turn_index)
        await agent.aclose()
        return indexes

    queue.put(asyncio.run(run()))


def test_two_processes_posting_to_one_conversation_lose_no_turn(env: dict[str, str]) -> None:
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = context.Queue()
    texts = [f"what is my balance {i}" for i in range(8)]
    workers = [context.Process(target=_post_many, args=(env, "e2e-race", texts, queue)) for _ in range(2)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    user_turn_indexes = sorted(results[0] + results[1])
    assert len(set(user_turn_indexes)) == 16  # every turn got its own index
    with TestClient(create_app(load_agent(AgentConfig.from_env(env)), wait_for_model=True)) as client:
        turns = client.get("/v1/conversations/e2e-race").json()["turns"]
    assert sum(1 for t in turns if t["role"] == "user") == 16
