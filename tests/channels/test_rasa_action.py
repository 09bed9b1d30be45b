"""The Rasa actions through rasa-sdk's own ``ActionExecutor``, with a recording fake standing in
for the runtime (the real runtime behind the real action server: tests/integration/
test_rasa_action_server.py)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from PIL import Image
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection

from agent.channels import rasa_action
from agent.channels.rasa_client import RasaTurn
from agent.config import AgentConfig
from agent.errors import ConcurrentUpdate, DependencyUnavailable, InvalidInput
from agent.messages import Answer, Entity, Handoff, HandoffReason, IntentScore, NluResult, Silence, TurnResult
from dialogue.state import RecentIssue, UserProfile
from tests.channels.rasa_payloads import example_domain, webhook


def nlu(intent: str = "dispute_charge", *, sentiment: str = "neutral", entities: tuple[Entity, ...] = ()) -> NluResult:
    return NluResult(intent=intent, confidence=0.87, ranking=(IntentScore(intent=intent, confidence=0.87),),
                     sentiment=sentiment, sentiment_score=-0.8 if sentiment == "negative" else 0.1,
                     emotion="anger" if sentiment == "negative" else "neutral", emotion_confidence=0.7,
                     entities=entities)


@dataclass
class FakeRuntime:
    """Satisfies ``RuntimeClient``; records calls; ``fail`` makes every call raise it."""

    decision: Any = None
    nlu: NluResult = field(default_factory=nlu)
    profile: UserProfile | None = None
    fail: BaseException | None = None
    handoff_fails: bool = False
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    async def respond(self, turn: RasaTurn) -> TurnResult:
        self.calls.append(("respond", turn))
        self._check()
        decision = self.decision or Answer(text="I can help you dispute that charge.", intent=self.nlu.intent)
        return TurnResult(conversation_id=turn.conversation_id, turn_index=0, decision=decision, nlu=self.nlu)

    async def handoff(self, conversation_id: str, *, summary: str, user_id: str | None,
                      reason: HandoffReason = HandoffReason.RASA_ACTION) -> Handoff:
        self.calls.append(("handoff", (conversation_id, summary, user_id, reason)))
        if self.handoff_fails:
            raise DependencyUnavailable("Redis is down")
        return Handoff(reason=reason, summary=summary, text="A colleague will take over shortly.", handoff_id="h-1")

    async def understand(self, text: str) -> NluResult:
        self.calls.append(("understand", text))
        self._check()
        return self.nlu

    async def get_profile(self, user_id: str) -> UserProfile | None:
        self.calls.append(("get_profile", user_id))
        self._check()
        return self.profile

    async def update_profile(self, user_id: str, fields: dict[str, str]) -> UserProfile:
        self.calls.append(("update_profile", (user_id, dict(fields))))
        base = self.profile or UserProfile(user_id=user_id)
        self.profile = UserProfile(**{**{f: getattr(base, f) for f in base.__dataclass_fields__}, **fields})
        return self.profile

    async def aclose(self) -> None:
        pass

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


CONFIG = AgentConfig.from_mapping({"rasa": {"attachment_allow_list": ["https://cdn.example.com/uploads/"],
                                            "max_attachment_bytes": 50_000}})


@pytest.fixture
def runtime() -> Iterator[FakeRuntime]:
    fake = FakeRuntime()
    rasa_action.RUNTIME.use(fake, CONFIG)
    yield fake
    rasa_action.RUNTIME.use(None)


@pytest.fixture(scope="module")
def executor() -> ActionExecutor:
    ex = ActionExecutor()
    ex.register_package("agent.channels.rasa_action")
    return ex


async def run(executor: ActionExecutor, body: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    result = await executor.run(body)
    assert result is not None
    data = result.model_dump()
    return {e["name"]: e["value"] for e in data["events"] if e["event"] == "slot"}, data


def png_b64() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


async def test_all_four_actions_are_registered_and_the_base_class_is_not(executor: ActionExecutor) -> None:
    names = {a.name for a in executor.list_actions()}
    assert {"action_agent_respond", "action_handoff_to_human", "action_agent_profile",
            "action_agent_sentiment"} <= names
    assert not any("AgentAction" in n for n in names)


async def test_respond_sends_the_latest_message_and_returns_reply_and_slots(executor, runtime) -> None:
    runtime.nlu = nlu(entities=(Entity(kind="amount", value="45.20 GBP", text="£45.20", start=20, end=26),
                                Entity(kind="date", value="2026-11-27", text="yesterday", start=30, end=39)))
    body = webhook("action_agent_respond", "conv-7", [("user", "hi"), ("bot", "Hello!"),
                                                    ("user", "I was charged £45.20 yesterday, twice")],
                   metadata={"user_id": "cust-9"})
    slots, data = await run(executor, body)
    turn = runtime.calls[0][1]
    assert turn.conversation_id == "conv-7" and turn.user_id == "cust-9"
    assert turn.text == "I was charged £45.20 yesterday, twice" and not turn.attachments
    assert ("rasa_intent", "ask_support") in turn.metadata
    assert data["responses"][0]["text"] == "I can help you dispute that charge."
    assert slots["agent_intent"] == "dispute_charge" and slots["agent_confidence"] == 0.87
    assert slots["agent_sentiment"] == "neutral" and slots["agent_decision"] == "answer"
    assert slots["agent_amount"] == "45.20 GBP" and slots["agent_date"] == "2026-11-27"
    assert {"entity": "amount", "value": "45.20 GBP"} in slots["agent_entities"]
    assert not any(e["event"] == "pause" for e in data["events"])


async def test_respond_only_sets_slots_the_domain_declares(executor, runtime) -> None:
    domain = example_domain()
    del domain["slots"]["agent_confidence"]
    slots, _ = await run(executor, webhook("action_agent_respond", "c", [("user", "charged twice")], domain=domain))
    assert "agent_intent" in slots and "agent_confidence" not in slots


async def test_respond_with_buttons_and_image(executor, runtime) -> None:
    runtime.decision = Answer(text="Did you mean a refund or a dispute?", kind="clarify",
                              buttons=("refund", "dispute"), image_url="https://cdn.example.com/help.png")
    slots, data = await run(executor, webhook("action_agent_respond", "c", [("user", "money back")]))
    reply = data["responses"][0]
    assert [b["title"] for b in reply["buttons"]] == ["refund", "dispute"]
    assert reply["image"] == "https://cdn.example.com/help.png" and slots["agent_decision"] == "clarify"


async def test_our_handoff_decision_pauses_the_rasa_conversation(executor, runtime) -> None:
    runtime.decision = Handoff(reason=HandoffReason.USER_ASKED, summary="s", text="Passing you to a colleague.",
                               handoff_id="h-42")
    slots, data = await run(executor, webhook("action_agent_respond", "c", [("user", "a person please")]))
    assert data["events"][-1]["event"] == "pause"
    assert slots["agent_decision"] == "handoff" and slots["agent_handoff_id"] == "h-42"
    assert data["responses"][0]["text"] == "Passing you to a colleague."


async def test_silence_while_a_human_has_the_conversation(executor, runtime) -> None:
    runtime.decision = Silence()
    slots, data = await run(executor, webhook("action_agent_respond", "c", [("user", "hello?")]))
    assert data["responses"] == [] and slots["agent_decision"] == "silent"


async def test_base64_image_attachment_reaches_the_runtime(executor, runtime) -> None:
    body = webhook("action_agent_respond", "c", [("user", "here is the receipt")],
                   metadata={"image": {"base64": png_b64(), "content_type": "image/png"}})
    await run(executor, body)
    raw = runtime.calls[0][1].attachments["image"]
    assert raw.data[:8] == b"\x89PNG\r\n\x1a\n" and raw.source == "base64"


async def test_attachment_only_message_is_accepted(executor, runtime) -> None:
    body = webhook("action_agent_respond", "c", [("user", None)], metadata={"image": "data:image/png;base64," + png_b64()})
    await run(executor, body)
    assert runtime.calls[0][1].text is None and "image" in runtime.calls[0][1].attachments


@pytest.mark.parametrize("metadata, expected", [
    ({"image": {"url": "https://evil.example.net/uploads/x.png"}}, "not on the allow-list"),
    ({"image": {"url": "https://cdn.example.com.evil.net/uploads/x.png"}}, "not on the allow-list"),
    ({"image": {"url": "https://cdn.example.com/private/x.png"}}, "not on the allow-list"),
    ({"image": {"url": "https://cdn.example.com/uploads/../private/x.png"}}, "'..'"),
    ({"image": {"url": "ftp://cdn.example.com/uploads/x.png"}}, "http(s)"),
    ({"image": {"base64": "bm90IGJhc2U2NC4uLg=!!"}}, "base64"),
    ({"image": {"base64": "A" * 80_000}}, "over 50,000 bytes"),
    ({"image": {"base64": png_b64(), "content_type": "text/html"}}, "content type 'text/html'"),
    ({"image": {"base64": png_b64(), "url": "https://cdn.example.com/uploads/x"}}, "exactly one"),
    ({"audio": 42}, "metadata.audio"),
])
async def test_unusable_attachments_are_rejected_before_the_runtime_is_called(executor, runtime, metadata, expected) -> None:
    body = webhook("action_agent_respond", "c", [("user", "see attached")], metadata=metadata)
    with pytest.raises(ActionExecutionRejection) as info:
        await executor.run(body)
    assert expected in info.value.message and info.value.action_name == "action_agent_respond"
    assert runtime.calls == []


async def test_a_tracker_without_a_user_message_is_rejected(executor, runtime) -> None:
    with pytest.raises(ActionExecutionRejection, match="needs a user message"):
        await executor.run(webhook("action_agent_respond", "c", [("bot", "Hello!")]))
    with pytest.raises(ActionExecutionRejection, match="needs the text"):
        await executor.run(webhook("action_agent_sentiment", "c", [("user", None)], metadata={"image": png_b64()}))
    assert runtime.calls == []


async def test_invalid_input_from_the_runtime_becomes_a_rejection(executor, runtime) -> None:
    runtime.fail = InvalidInput("image upload: expected a JPEG, PNG, WebP or GIF image, got text")
    with pytest.raises(ActionExecutionRejection, match="expected a JPEG"):
        await executor.run(webhook("action_agent_respond", "c", [("user", "hi")]))


async def test_handoff_action_summarises_the_tracker_and_pauses(executor, runtime) -> None:
    body = webhook("action_handoff_to_human", "conv-h",
                   [("user", "my card was charged twice"), ("bot", "I can help with that."), ("user", "get me a human")],
                   intent="request_human", slots={"agent_amount": "45.20 GBP"})
    slots, data = await run(executor, body)
    conversation_id, summary, user_id, reason = runtime.calls[0][1]
    assert conversation_id == "conv-h" and user_id == "conv-h" and reason is HandoffReason.RASA_ACTION
    assert "ask_support -> request_human" in summary and "agent_amount=45.20 GBP" in summary
    assert "customer: get me a human" in summary and "bot: I can help with that." in summary
    assert data["responses"][0]["text"] == "A colleague will take over shortly."
    assert slots == {"agent_decision": "handoff", "agent_handoff_id": "h-1"}
    assert data["events"][-1]["event"] == "pause"


async def test_profile_action_fills_profile_slots(executor, runtime) -> None:
    runtime.profile = UserProfile(user_id="cust-1", name="Dana", tier="gold", conversations=3,
                                  recent_issues=(RecentIssue(intent="lost_or_stolen_card", at=1.0, conversation_id="x"),))
    slots, _ = await run(executor, webhook("action_agent_profile", "cust-1", [("user", "hi")], intent="greet"))
    assert slots["agent_profile_known"] is True and slots["agent_profile_name"] == "Dana"
    assert slots["agent_profile_tier"] == "gold" and slots["agent_profile_recent_issues"] == ["lost_or_stolen_card"]
    assert slots["agent_profile_conversations"] == 3.0 and runtime.names() == ["get_profile"]


async def test_profile_action_for_an_unknown_customer_and_filling_gaps(executor, runtime) -> None:
    slots, _ = await run(executor, webhook("action_agent_profile", "new-1", [("user", "hi")]))
    assert slots["agent_profile_known"] is False and slots["agent_profile_name"] is None
    slots, _ = await run(executor, webhook("action_agent_profile", "new-1", [("user", "I'm Sam")],
                                           slots={"agent_profile_name": "Sam"}))
    assert ("update_profile", ("new-1", {"name": "Sam"})) in runtime.calls
    assert slots["agent_profile_known"] is True and slots["agent_profile_name"] == "Sam"
    runtime.calls.clear()  # a name the store already has is not overwritten by a slot
    await run(executor, webhook("action_agent_profile", "new-1", [("user", "hi")], slots={"agent_profile_name": "X"}))
    assert runtime.names() == ["get_profile"]


async def test_sentiment_action_sets_sentiment_and_emotion(executor, runtime) -> None:
    runtime.nlu = nlu(sentiment="negative")
    slots, data = await run(executor, webhook("action_agent_sentiment", "c", [("user", "this is outrageous")],
                                              intent="complain"))
    assert runtime.calls == [("understand", "this is outrageous")]
    assert slots == {"agent_sentiment": "negative", "agent_sentiment_score": -0.8, "agent_emotion": "anger",
                     "agent_emotion_confidence": 0.7}
    assert data["responses"] == []


@pytest.mark.parametrize("error", [DependencyUnavailable("Redis is down"), ConcurrentUpdate("busy"),
                                   RuntimeError("a bug")])
async def test_runtime_failure_apologises_and_hands_off(executor, runtime, error) -> None:
    runtime.fail = error
    slots, data = await run(executor, webhook("action_agent_respond", "c-down", [("user", "where is my card")]))
    assert runtime.calls[-1][0] == "handoff" and runtime.calls[-1][1][3] is HandoffReason.DEPENDENCY_DOWN
    assert slots == {"agent_decision": "handoff", "agent_handoff_id": "h-1"}
    assert data["events"][-1]["event"] == "pause"
    assert data["responses"] == [{**data["responses"][0], "response": "utter_agent_down_handoff"}]


async def test_runtime_and_store_down_tells_the_customer_without_pausing(executor, runtime) -> None:
    runtime.fail, runtime.handoff_fails = DependencyUnavailable("Redis is down"), True
    domain = example_domain()
    del domain["responses"]["utter_agent_unavailable"]
    slots, data = await run(executor, webhook("action_agent_sentiment", "c", [("user", "hello")], domain=domain))
    assert slots == {"agent_decision": "unavailable"}
    assert not any(e["event"] == "pause" for e in data["events"])
    assert data["responses"][0]["text"] == rasa_action.UNAVAILABLE_TEXT


async def test_handoff_action_does_not_retry_when_the_store_is_down(executor, runtime) -> None:
    runtime.handoff_fails = True
    slots, data = await run(executor, webhook("action_handoff_to_human", "c", [("user", "human please")]))
    assert runtime.names() == ["handoff"] and slots == {"agent_decision": "unavailable"}
    assert data["responses"][0]["response"] == "utter_agent_unavailable"


async def test_without_a_domain_every_slot_is_returned(runtime) -> None:
    from rasa_sdk import Tracker
    from rasa_sdk.executor import CollectingDispatcher

    body = webhook("action_agent_respond", "c", [("user", "charged twice")], domain=None)
    events = await rasa_action.ActionAgentRespond().run(CollectingDispatcher(), Tracker.from_dict(body["tracker"]), None)
    names = {e["name"] for e in events if e["event"] == "slot"}
    assert {"agent_intent", "agent_confidence", "agent_sentiment", "agent_emotion", "agent_decision",
            "agent_entities"} <= names
