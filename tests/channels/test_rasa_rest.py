"""Rasa's REST channel on our HTTP server (``POST /webhooks/rest/webhook``): attachments in
``metadata``, ``buttons`` and ``image`` in replies. Real dialogue layer and store; fake models."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from agent.config import AgentConfig
from agent.messages import Answer, Handoff, HandoffReason, NluResult, Silence, TurnResult
from agent.serialize import rasa_messages
from agent.server import create_app
from tests.channels.rasa_fake_agent import build_agent, digest
from tests.channels.test_rasa_attachments import files_url  # noqa: F401 (fixture: a real local file server)

URL = "/webhooks/rest/webhook"


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), (10, 200, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def client(files_url: str) -> Iterator[TestClient]:  # noqa: F811
    config = AgentConfig.from_mapping({"rasa": {"attachment_allow_list": [files_url], "max_attachment_bytes": 100_000}})
    with TestClient(create_app(build_agent(config), wait_for_model=True)) as test_client:
        yield test_client


def test_a_text_message_gets_rasa_bot_messages(client: TestClient) -> None:
    response = client.post(URL, json={"sender": "rest-1", "message": "I lost my card", "metadata": {"user_id": "u-rest"}})
    assert response.status_code == 200, response.text
    [message] = response.json()
    assert message["recipient_id"] == "rest-1" and message["text"]
    assert message["custom"]["intent"] == "lost_or_stolen_card" and message["custom"]["decision"] == "answer"
    assert client.get("/v1/users/u-rest/profile").status_code == 200


def test_a_base64_image_in_metadata_is_analysed(client: TestClient) -> None:
    data = png()
    body = {"sender": "rest-img", "metadata": {"image": {"base64": base64.b64encode(data).decode(),
                                                         "content_type": "image/png"}}}
    assert client.post(URL, json=body).status_code == 200
    turns = client.get("/v1/conversations/rest-img").json()["turns"]
    user = next(t for t in turns if t["role"] == "user")
    assert user["image_kind"] == "receipt" and user["image_sha256"] == digest(data)


def test_an_allow_listed_image_url_is_fetched(client: TestClient, files_url: str) -> None:  # noqa: F811
    body = {"sender": "rest-url", "message": "charged twice for this", "metadata": {"image": files_url + "card.png"}}
    assert client.post(URL, json=body).status_code == 200
    turns = client.get("/v1/conversations/rest-url").json()["turns"]
    assert next(t for t in turns if t["role"] == "user")["image_kind"] == "receipt"


@pytest.mark.parametrize("body, expected", [
    ({"sender": "rest-bad"}, "'message' is required"),
    ({"sender": "rest-bad", "message": "hi", "metadata": ["x"]}, "'metadata' must be a JSON object"),
    ({"sender": "rest-bad", "message": "hi", "metadata": {"image": "https://elsewhere.example/x.png"}},
     "not on the allow-list"),
    ({"sender": "rest-bad", "metadata": {"image": {"base64": base64.b64encode(b"plain text").decode()}}},
     "image upload"),
    ({"sender": "rest-bad", "message": "hi", "metadata": {"audio": {"base64": "@@@"}}}, "base64"),
])
def test_bad_rest_messages_are_refused_and_write_nothing(client: TestClient, body: dict, expected: str) -> None:
    response = client.post(URL, json=body)
    assert response.status_code == 422 and expected in response.json()["error"]
    assert "https://elsewhere.example/x.png" not in response.text
    assert client.get("/v1/conversations/rest-bad").status_code == 404


def test_reply_shapes_follow_rasa_collecting_output_channel() -> None:
    nlu = NluResult(intent="refund_request", confidence=0.5)
    clarify = TurnResult(conversation_id="c", turn_index=0, nlu=nlu,
                         decision=Answer(text="Refund or dispute?", kind="clarify", buttons=("refund", "dispute"),
                                         image_url="https://cdn.example.com/how.png"))
    text, image = rasa_messages("c", clarify)
    assert text["buttons"] == [{"title": "refund", "payload": "refund"}, {"title": "dispute", "payload": "dispute"}]
    assert image == {"recipient_id": "c", "image": "https://cdn.example.com/how.png"}
    handoff = TurnResult(conversation_id="c", turn_index=1, nlu=nlu, decision=Handoff(
        reason=HandoffReason.USER_ASKED, summary="s", text="A colleague will reply.", handoff_id="h1"))
    [message] = rasa_messages("c", handoff)
    assert message["custom"]["handoff"] == {"id": "h1", "reason": "user_asked"} and "image" not in message
    assert rasa_messages("c", TurnResult(conversation_id="c", turn_index=2, nlu=None, decision=Silence())) == []
