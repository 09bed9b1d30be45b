"""docs/rasa-example/ stays true to the actions: every slot they set is declared with the values
they set, and the rules use only declared actions, intents and slots."""

from __future__ import annotations

import yaml

from agent.channels import rasa_action
from agent.channels import rasa_tracker as rt
from agent.messages import EMOTIONS, SENTIMENTS
from tests.channels.rasa_payloads import ROOT, example_domain

RULES = ROOT / "docs" / "rasa-example" / "rules.yml"
DECISIONS = ("answer", "clarify", "knowledge", "handoff", "silent", rt.UNAVAILABLE)


def test_every_slot_the_actions_set_is_declared() -> None:
    slots = example_domain()["slots"]
    names = {rt.INTENT, rt.CONFIDENCE, rt.SENTIMENT, rt.EMOTION, rt.SENTIMENT_SCORE, rt.EMOTION_CONFIDENCE,
             rt.DECISION, rt.HANDOFF_ID, rt.ENTITIES, rt.PROFILE_KNOWN, rt.PROFILE_NAME, rt.PROFILE_TIER,
             rt.PROFILE_LANGUAGE, rt.PROFILE_ISSUES, rt.PROFILE_CONVERSATIONS, rt.USER_ID}
    assert names <= set(slots)
    assert set(slots[rt.SENTIMENT]["values"]) == set(SENTIMENTS)
    assert set(slots[rt.EMOTION]["values"]) == set(EMOTIONS)
    assert set(slots[rt.DECISION]["values"]) == set(DECISIONS)
    for name, slot in slots.items():
        assert slot["mappings"][0]["type"] == "custom", name


def test_rules_use_declared_actions_intents_and_slots() -> None:
    domain = example_domain()
    actions = set(domain["actions"]) | set(domain["responses"])
    assert {a.action_name for a in (rasa_action.ActionAgentRespond, rasa_action.ActionHandoffToHuman,
                                    rasa_action.ActionAgentProfile, rasa_action.ActionAgentSentiment)} <= actions
    intents = set(domain["intents"]) | {"nlu_fallback"}
    for rule in yaml.safe_load(RULES.read_text(encoding="utf-8"))["rules"]:
        for step in rule["steps"]:
            if "action" in step:
                assert step["action"] in actions, rule["rule"]
            if "intent" in step:
                assert step["intent"] in intents, rule["rule"]
            for condition in step.get("slot_was_set", ()):
                (slot, value), = condition.items()
                assert value in domain["slots"][slot]["values"] and domain["slots"][slot]["influence_conversation"]
    assert {rasa_action.UNAVAILABLE_RESPONSE, rasa_action.DOWN_HANDOFF_RESPONSE} <= set(domain["responses"])
