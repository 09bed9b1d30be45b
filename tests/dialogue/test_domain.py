"""Loading and checking the domain file; the default domain in assets/."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.config import PolicyConfig
from agent.errors import ConfigError
from dialogue.domain import Domain, DomainError, load_domain
from tests.dialogue.conftest import ROOT_DIR, SMALL_DOMAIN

DEFAULT_DOMAIN = ROOT_DIR / "assets" / "domain.yaml"


def _write(tmp_path: Path, data: object, name: str = "domain.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _small() -> dict[str, object]:
    data = yaml.safe_load(SMALL_DOMAIN.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_small_domain_loads(domain: Domain) -> None:
    assert domain.name == "Test bank"
    assert domain.intents["dispute_charge"].form == "dispute_charge"
    assert [s.name for s in domain.forms["dispute_charge"].slots] == ["amount", "date"]
    assert domain.intents["lost_or_stolen_card"].followup("ask_how_long") is not None
    assert domain.policy.sensitive_intents == ("close_account",)
    assert domain.knowledge[0].alternatives == ("How much can I pay contactless?",)
    assert domain.response("human_mode")  # absent from the file: the built-in text


def test_every_problem_is_reported_with_its_key_path(tmp_path: Path) -> None:
    data = _small()
    intents = data["intents"]
    assert isinstance(intents, dict)
    intents["dispute_charge"]["form"] = "refnd"
    intents["check_balance"]["examples"] = []
    intents["card_fees"]["response"] = "Fees are {amount"
    intents["greeting"]["colour"] = "blue"
    data["policy"]["clarify_margin"] = 1.5  # type: ignore[index]
    data["policy"]["sensitive_intents"] = ["close_acount"]  # type: ignore[index]
    data["responses"]["clarify"] = "Did you mean {option_c}?"  # type: ignore[index]
    data["knowledge"].append({"id": "kb_opening_hours", "question": "dup?", "answer": "dup"})  # type: ignore[attr-defined]
    with pytest.raises(DomainError) as caught:
        load_domain(_write(tmp_path, data))
    problems = caught.value.problems
    expected = [
        "domain.yaml: intents.dispute_charge.form: unknown form 'refnd'",
        "domain.yaml: intents.check_balance.examples: expected at least one example utterance",
        "domain.yaml: intents.card_fees.response: stray '{' at character 9",
        "domain.yaml: intents.greeting.colour: unknown key",
        "domain.yaml: policy.clarify_margin: expected a number in [0, 1], got 1.5",
        "domain.yaml: policy.sensitive_intents[0]: unknown intent 'close_acount'",
        "domain.yaml: responses.clarify: unknown template fields ['option_c']",
        "domain.yaml: knowledge[2].id: duplicate knowledge id 'kb_opening_hours'",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in problems), (line, problems)
    assert isinstance(caught.value, ConfigError)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DomainError, match="no such domain file"):
        load_domain(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("intents: [unclosed", encoding="utf-8")
    with pytest.raises(DomainError, match="not valid YAML"):
        load_domain(bad)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DomainError, match="UTF-8"):
        load_domain(binary)
    listed = _write(tmp_path, ["not", "a", "mapping"], "list.yaml")
    with pytest.raises(DomainError, match="expected a mapping at the top level"):
        load_domain(listed)


def test_duplicate_keys_and_bare_yes_are_caught(tmp_path: Path) -> None:
    text = SMALL_DOMAIN.read_text(encoding="utf-8")
    dup = tmp_path / "dup.yaml"
    dup.write_text(text.replace("  check_balance:\n", "  greeting:\n", 1), encoding="utf-8")
    with pytest.raises(DomainError, match="duplicate key 'greeting'"):
        load_domain(dup)
    bare = tmp_path / "bare.yaml"
    bare.write_text(text.replace('examples: ["yes", yep]', "examples: [yes, yep]"), encoding="utf-8")
    with pytest.raises(DomainError, match=r"intents.affirm.examples\[0\].*quote it"):
        load_domain(bare)


def test_policy_overrides_from_config(domain: Domain) -> None:
    changed = domain.with_overrides(PolicyConfig(handoff_below_confidence=0.6, negative_sentiment_turns=3))
    assert changed.policy.handoff_below_confidence == 0.6
    assert changed.policy.negative_sentiment_turns == 3
    assert changed.policy.clarify_margin == domain.policy.clarify_margin
    assert domain.with_overrides(PolicyConfig()) is domain
    with pytest.raises(DomainError, match="handoff_below_confidence"):
        domain.with_overrides(PolicyConfig(handoff_below_confidence=2.0))


def test_the_default_domain_meets_the_brief() -> None:
    if not DEFAULT_DOMAIN.exists():
        pytest.skip(f"{DEFAULT_DOMAIN} not written yet")
    domain = load_domain(DEFAULT_DOMAIN)
    required = {"lost_or_stolen_card", "card_not_arrived", "declined_payment", "failed_transfer", "refund_request",
                "dispute_charge", "change_address", "activate_card", "check_balance", "exchange_rate", "card_fees",
                "pin_blocked", "close_account", "app_login_problem", "talk_to_human", "greeting", "goodbye",
                "thanks", "complaint"}
    assert required <= set(domain.intents)
    assert len(domain.intents) >= 25
    assert all(len(i.examples) >= 20 for i in domain.intents.values())
    assert len(domain.knowledge) >= 40
    assert [s.entity for s in domain.forms[domain.intents["dispute_charge"].form or ""].slots] == ["amount", "date"]
    assert domain.intents["change_address"].form is not None
