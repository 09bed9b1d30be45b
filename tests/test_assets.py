"""The default domain (assets/domain.yaml) and the sentiment set (assets/sentiment.csv).

Read with plain ``yaml.safe_load`` and ``csv``: these tests check the files against
docs/domain-format.md, independently of the loader in ``dialogue/``.
"""

from __future__ import annotations

import collections
import csv
import string
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.messages import EMOTIONS, SENTIMENTS
from modalities.entities import ENTITY_KINDS
from modalities.text import fold_for_matching

ASSETS = Path(__file__).resolve().parent.parent / "assets"
REQUIRED_INTENTS = {
    "lost_or_stolen_card", "card_not_arrived", "declined_payment", "failed_transfer",
    "refund_request", "dispute_charge", "change_address", "activate_card", "check_balance",
    "exchange_rate", "card_fees", "pin_blocked", "close_account", "app_login_problem",
    "talk_to_human", "greeting", "goodbye", "thanks", "complaint", "affirm", "deny",
    "ask_how_long", "ask_cost", "ask_why",
}  # fmt: skip
PROFILE_FIELDS = {"name", "tier"}
POLICY_FIELDS = {
    "handoff_below_confidence", "low_confidence_turns_before_handoff", "clarify_margin",
    "clarify_min_confidence", "oos_threshold", "knowledge_min_score",
    "negative_sentiment_threshold", "negative_sentiment_turns", "max_failures_per_intent",
    "sensitive_intents", "handoff_intents",
}  # fmt: skip
SYSTEM_RESPONSES = {  # key -> the fields its template may use (docs/domain-format.md)
    "greeting_returning": {"name"}, "clarify": {"option_a", "option_b"}, "fallback": set(),
    "handoff": set(), "human_mode": set(), "ask_repeat": set(), "recall_recent_issue": {"issue", "when"},
    "slot_corrected": {"slot", "value"}, "knowledge": {"answer"}, "released": set(),
}  # fmt: skip


@pytest.fixture(scope="module")
def domain() -> dict[str, Any]:
    data = yaml.safe_load((ASSETS / "domain.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def sentiment_rows() -> list[dict[str, str]]:
    with (ASSETS / "sentiment.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["text", "sentiment", "emotion"]
        return list(reader)


def fields(template: str) -> set[str]:
    """The ``{field}`` names in a template; raises ValueError on unbalanced braces."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def variants(response: str | list[str]) -> list[str]:
    return [response] if isinstance(response, str) else list(response)


def slot_names(domain: dict[str, Any]) -> set[str]:
    return {slot["name"] for form in domain["forms"].values() for slot in form["slots"]}


# --- the domain -----------------------------------------------------------------------------


def test_header(domain: dict[str, Any]) -> None:
    assert domain["version"] == 1
    assert domain["language"] == "en"
    assert isinstance(domain["name"], str) and domain["name"]


def test_policy_fields_and_ranges(domain: dict[str, Any]) -> None:
    policy = domain["policy"]
    assert set(policy) == POLICY_FIELDS
    for key in ("handoff_below_confidence", "clarify_margin", "clarify_min_confidence",
                "oos_threshold", "knowledge_min_score"):  # fmt: skip
        assert 0.0 < policy[key] < 1.0, key
    assert -1.0 <= policy["negative_sentiment_threshold"] < 0.0
    for key in ("low_confidence_turns_before_handoff", "negative_sentiment_turns", "max_failures_per_intent"):
        assert isinstance(policy[key], int) and policy[key] >= 1, key
    assert policy["clarify_min_confidence"] < policy["handoff_below_confidence"]
    for key in ("sensitive_intents", "handoff_intents"):
        assert set(policy[key]) <= set(domain["intents"]), key


def test_every_policy_field_is_documented() -> None:
    lines = (ASSETS / "domain.yaml").read_text(encoding="utf-8").splitlines()
    start = lines.index("policy:")
    block = lines[
        start + 1 : start + 1 + next(i for i, ln in enumerate(lines[start + 1 :]) if not ln.startswith(" "))
    ]
    for key in POLICY_FIELDS:
        at = next(i for i, ln in enumerate(block) if ln.strip().startswith(f"{key}:"))
        assert "#" in block[at] or block[at - 1].strip().startswith("#"), f"policy.{key} has no comment"


def test_intent_counts(domain: dict[str, Any]) -> None:
    intents = domain["intents"]
    assert len(intents) >= 25
    assert REQUIRED_INTENTS <= set(intents)
    for name, intent in intents.items():
        examples = intent["examples"]
        assert len(examples) >= 20, name
        assert all(isinstance(e, str) and e.strip() for e in examples), name  # "yes"/"no" quoted
        assert isinstance(intent["title"], str) and intent["title"], name


def test_no_duplicate_examples_within_or_across_intents(domain: dict[str, Any]) -> None:
    owners: dict[str, list[str]] = collections.defaultdict(list)
    for name, intent in domain["intents"].items():
        for example in intent["examples"]:
            owners[fold_for_matching(example)].append(name)
    duplicates = {text: names for text, names in owners.items() if len(names) > 1}
    assert not duplicates


def test_followup_intents(domain: dict[str, Any]) -> None:
    followups = set(domain["followup_intents"])
    assert followups == {"ask_how_long", "ask_cost", "ask_why"}
    assert followups <= set(domain["intents"])
    with_answers = [n for n, i in domain["intents"].items() if i.get("followups")]
    assert len(with_answers) >= 15
    for name in with_answers:
        assert set(domain["intents"][name]["followups"]) <= followups, name


def test_every_intent_has_a_response_that_can_always_render(domain: dict[str, Any]) -> None:
    for name, intent in domain["intents"].items():
        texts = variants(intent["response"])
        assert texts and all(isinstance(t, str) and t for t in texts), name
        fallback = intent.get("response_missing_slot")
        assert fallback is None or not fields(fallback), name
        assert fallback is not None or any(not fields(t) for t in texts), (
            f"{name}: every variant needs a slot"
        )
        assert isinstance(intent.get("remember", False), bool), name


def test_issue_intents_are_remembered(domain: dict[str, Any]) -> None:
    intents = domain["intents"]
    for name in ("lost_or_stolen_card", "card_not_arrived", "declined_payment", "failed_transfer",
                 "refund_request", "dispute_charge", "pin_blocked", "complaint"):  # fmt: skip
        assert intents[name].get("remember") is True, name
    assert not intents["greeting"].get("remember", False)


def test_remembered_issues_read_well_when_recalled(domain: dict[str, Any]) -> None:
    """``{issue}`` in recall_recent_issue is the intent's label (the title is a verb phrase)."""
    intents = domain["intents"]
    for name, intent in intents.items():
        assert set(intent.get("related", [])) <= set(intents) - {name}, name
        if intent.get("remember"):
            assert isinstance(intent.get("label"), str) and intent["label"], name
    assert "{issue}" in domain["responses"]["recall_recent_issue"]


def test_template_fields_are_known(domain: dict[str, Any]) -> None:
    known = slot_names(domain) | set(ENTITY_KINDS) | PROFILE_FIELDS
    for name, intent in domain["intents"].items():
        templates = [*variants(intent["response"]), *intent.get("followups", {}).values()]
        for template in templates + [intent.get("response_missing_slot") or ""]:
            assert fields(template) <= known, (name, fields(template) - known)
    for form_name, form in domain["forms"].items():
        own = {slot["name"] for slot in form["slots"]} | PROFILE_FIELDS
        assert fields(form["done"]) <= own, form_name
        for slot in form["slots"]:
            assert not fields(slot["ask"]), (form_name, slot["name"])


def test_forms(domain: dict[str, Any]) -> None:
    forms = domain["forms"]
    assert {"dispute_charge", "change_address"} <= set(forms)
    for name, intent in domain["intents"].items():
        if "form" in intent:
            assert intent["form"] in forms, name
    for form_name, form in forms.items():
        assert form["slots"] and isinstance(form["done"], str), form_name
        for slot in form["slots"]:
            assert set(slot) == {"name", "entity", "ask"}, (form_name, slot)
            assert slot["entity"] in (*ENTITY_KINDS, "text"), (form_name, slot)
            assert isinstance(slot["ask"], str) and slot["ask"].strip(), (form_name, slot)
    dispute = {s["name"]: s["entity"] for s in forms["dispute_charge"]["slots"]}
    assert dispute == {"amount": "amount", "date": "date"}
    assert {s["name"]: s["entity"] for s in forms["change_address"]["slots"]} == {"new_address": "text"}


def test_system_responses(domain: dict[str, Any]) -> None:
    responses = domain["responses"]
    assert set(SYSTEM_RESPONSES) <= set(responses)
    for key, allowed in SYSTEM_RESPONSES.items():
        assert fields(responses[key]) <= allowed, key


def test_knowledge_base(domain: dict[str, Any]) -> None:
    entries = domain["knowledge"]
    assert len(entries) >= 40
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids))
    questions: list[str] = []
    for entry in entries:
        assert entry["id"].startswith("kb_")
        assert isinstance(entry["question"], str) and isinstance(entry["answer"], str)
        assert len(entry["answer"]) >= 30, entry["id"]
        alternatives = entry.get("alternatives", [])
        assert all(isinstance(a, str) and a for a in alternatives), entry["id"]
        questions += [entry["question"], *alternatives]
    assert sum(1 for e in entries if e.get("alternatives")) >= len(entries) // 2
    folded = [fold_for_matching(q) for q in questions]
    assert len(folded) == len(set(folded))


def test_out_of_scope(domain: dict[str, Any]) -> None:
    oos = domain["out_of_scope"]
    assert len(oos) >= 60
    assert all(isinstance(m, str) and m for m in oos)
    folded = {fold_for_matching(m) for m in oos}
    assert len(folded) == len(oos)
    examples = {fold_for_matching(e) for i in domain["intents"].values() for e in i["examples"]}
    assert not folded & examples


def test_domain_is_not_copied_from_banking77(domain: dict[str, Any], shared_data: Path) -> None:
    folder = shared_data / "banking77"
    if not folder.is_dir():
        pytest.skip(f"Banking77 not found at {folder}")
    banking77 = set()
    for split in ("train.csv", "test.csv"):
        with (folder / split).open(encoding="utf-8", newline="") as f:
            banking77 |= {fold_for_matching(row["text"]) for row in csv.DictReader(f)}
    ours = [e for i in domain["intents"].values() for e in i["examples"]] + domain["out_of_scope"]
    ours += [q for e in domain["knowledge"] for q in (e["question"], *e.get("alternatives", []))]
    assert [t for t in ours if fold_for_matching(t) in banking77] == []


# --- the sentiment set ----------------------------------------------------------------------


def test_sentiment_labels_and_counts(sentiment_rows: list[dict[str, str]]) -> None:
    assert len(sentiment_rows) >= 700
    assert {r["sentiment"] for r in sentiment_rows} <= set(SENTIMENTS)
    assert {r["emotion"] for r in sentiment_rows} <= set(EMOTIONS)
    emotions = collections.Counter(r["emotion"] for r in sentiment_rows)
    assert set(emotions) == set(EMOTIONS)
    assert min(emotions.values()) >= 70, emotions
    sentiments = collections.Counter(r["sentiment"] for r in sentiment_rows)
    assert min(sentiments[s] for s in SENTIMENTS) >= 100, sentiments


def test_sentiment_rows_are_clean(sentiment_rows: list[dict[str, str]]) -> None:
    texts = [r["text"] for r in sentiment_rows]
    assert all(t and t == t.strip() and "\n" not in t for t in texts)
    assert len({fold_for_matching(t) for t in texts}) == len(texts)


def test_sentiment_labels_agree_with_emotions(sentiment_rows: list[dict[str, str]]) -> None:
    pairs = collections.Counter((r["emotion"], r["sentiment"]) for r in sentiment_rows)
    for emotion in ("anger", "disgust", "fear", "sadness"):
        assert {s for e, s in pairs if e == emotion} == {"negative"}, emotion
    assert {s for e, s in pairs if e == "joy"} == {"positive"}
    assert {s for e, s in pairs if e == "surprise"} == set(SENTIMENTS)  # surprise goes both ways
