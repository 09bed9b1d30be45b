"""The domain file: intents, answers, forms, knowledge base and hand-off rules.

``load_domain(path)`` reads the YAML described in ``docs/domain-format.md`` and checks all of
it, reporting every problem at once with its key path, e.g.
``domain.yaml: intents.refund_request.form: unknown form 'refnd'``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from agent.config import PolicyConfig
from agent.errors import ConfigError
from dialogue import domain_check as check
from dialogue.domain_check import Problems

PROFILE_TEMPLATE_FIELDS: tuple[str, ...] = ("name", "tier", "language")

# System responses: key -> (fields the template may use besides the profile's, default text)
SYSTEM_RESPONSES: dict[str, tuple[tuple[str, ...], str]] = {
    "greeting_returning": ((), "Welcome back, {name}! How can I help?"),
    "clarify": (("option_a", "option_b"), "Sorry, did you want to {option_a} or {option_b}?"),
    "fallback": ((), "Sorry, I didn't get that. Could you say it another way?"),
    "handoff": ((), "I'm passing you to a colleague who can help. They'll see our conversation so far."),
    "human_mode": ((), "A colleague is looking at your conversation and will reply here."),
    "ask_repeat": ((), "Sorry, I didn't catch that. Could you say it again?"),
    "recall_recent_issue": (("issue", "when"), "Is this about the {issue} you reported {when}?"),
    "slot_corrected": (("slot", "value"), "Got it, I've changed the {slot} to {value}."),
    "knowledge": (("answer", "question"), "{answer}"),
    "released": ((), "You're back with the virtual assistant. How else can I help?"),
    "followup_unknown": ((), "Could you tell me what that's about?"),
}


class DomainError(ConfigError):
    """The domain file is unreadable or invalid; ``problems`` lists each problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid domain file:\n  " + "\n  ".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyRules:
    """Hand-off rules and thresholds (``policy:`` in the domain file)."""

    handoff_below_confidence: float = 0.45
    low_confidence_turns_before_handoff: int = 2
    clarify_margin: float = 0.15
    clarify_min_confidence: float = 0.25
    oos_threshold: float = 0.5
    knowledge_min_score: float = 0.55
    negative_sentiment_threshold: float = -0.5
    negative_sentiment_turns: int = 2
    max_failures_per_intent: int = 3
    sensitive_intents: tuple[str, ...] = ()
    handoff_intents: tuple[str, ...] = ()
    greeting_intents: tuple[str, ...] = ("greeting",)  # a returning customer is greeted by name
    affirm_intents: tuple[str, ...] = ("affirm",)  # besides "yes"-like words
    deny_intents: tuple[str, ...] = ("deny",)  # besides "no"-like words
    recall_within_days: float = 14.0  # remembered issues this recent are recalled
    sentiment_window: int = 5  # sentiment scores kept in the trend
    summary_turns: int = 6  # last turns copied into a hand-off summary


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotSpec:
    name: str
    entity: str  # entity kind that fills it; "text" takes the whole reply
    ask: tuple[str, ...]  # question variants


@dataclass(frozen=True, slots=True, kw_only=True)
class FormSpec:
    name: str
    slots: tuple[SlotSpec, ...]
    done: tuple[str, ...]  # template variants rendered when every slot is filled

    def slot(self, name: str) -> SlotSpec | None:
        return next((s for s in self.slots if s.name == name), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class IntentSpec:
    name: str
    title: str  # used in clarifying questions
    examples: tuple[str, ...]
    response: tuple[str, ...] = ()  # template variants; empty: no direct answer
    response_missing_slot: str | None = None
    followups: tuple[tuple[str, str], ...] = ()  # (follow-up intent, template)
    form: str | None = None
    remember: bool = False
    related: tuple[str, ...] = ()  # remembered issues of these intents are recalled too
    label: str = ""  # how a recalled issue is named ({issue}); default: the title

    def followup(self, intent: str) -> str | None:
        return next((t for k, t in self.followups if k == intent), None)

    @property
    def issue_label(self) -> str:
        return self.label or self.title


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeEntry:
    id: str
    question: str
    answer: str
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Domain:
    name: str
    language: str = "en"
    version: int = 1
    policy: PolicyRules = field(default_factory=PolicyRules)
    intents: Mapping[str, IntentSpec] = field(default_factory=lambda: MappingProxyType({}))
    followup_intents: tuple[str, ...] = ()
    forms: Mapping[str, FormSpec] = field(default_factory=lambda: MappingProxyType({}))
    responses: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    knowledge: tuple[KnowledgeEntry, ...] = ()
    out_of_scope: tuple[str, ...] = ()
    path: Path | None = None

    def response(self, key: str) -> str:
        """A system response, or its built-in default."""
        return self.responses.get(key) or SYSTEM_RESPONSES[key][1]

    def title(self, intent: str) -> str:
        spec = self.intents.get(intent)
        return spec.title if spec else intent.replace("_", " ")

    def with_overrides(self, policy: PolicyConfig) -> Domain:
        """This domain with the non-None thresholds of ``policy`` replacing the file's."""
        names = {f.name for f in dataclasses.fields(PolicyRules)}
        changes = {
            f.name: getattr(policy, f.name)
            for f in dataclasses.fields(policy)
            if f.name in names and getattr(policy, f.name) is not None
        }
        if not changes:
            return self
        rules = dataclasses.replace(self.policy, **changes)
        problems = Problems(self.path.name if self.path else "domain")
        check.policy_ranges(rules, problems, "policy")
        problems.raise_if_any(DomainError)
        return dataclasses.replace(self, policy=rules)


# --- loading ----------------------------------------------------------------------------------

TOP_KEYS = ("version", "name", "language", "policy", "intents", "followup_intents", "forms",
            "responses", "knowledge", "out_of_scope")


def load_domain(path: str | Path) -> Domain:
    """Read and check a domain file; raises ``DomainError`` (a ``ConfigError``) listing every problem."""
    path = Path(path)
    data = _read_yaml(path)
    problems = Problems(path.name)
    domain = _build(data, problems, path)
    problems.raise_if_any(DomainError)
    assert domain is not None  # no problems means every part was built
    return domain


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise DomainError([f"{path}: no such domain file"]) from e
    except (OSError, UnicodeDecodeError) as e:
        raise DomainError([f"{path}: unreadable ({type(e).__name__}); expected a UTF-8 YAML file"]) from e
    try:
        return yaml.load(text, Loader=check.StrictLoader)
    except yaml.YAMLError as e:
        raise DomainError([f"{path.name}: not valid YAML: {e}"]) from e


def _build(data: Any, problems: Problems, path: Path) -> Domain | None:
    if not isinstance(data, dict):
        problems.add("", f"expected a mapping at the top level, got {check.kind(data)}")
        return None
    for key in sorted(set(data) - set(TOP_KEYS)):
        problems.add(str(key), f"unknown key; expected one of {list(TOP_KEYS)}")
    if data.get("version", 1) != 1:
        problems.add("version", f"expected 1, got {data.get('version')!r}")
    name = check.string(data.get("name", path.stem), problems, "name")
    language = check.string(data.get("language", "en"), problems, "language")
    forms = check.forms(data.get("forms", {}), problems)
    intents = check.intents(data.get("intents"), problems, forms)
    known = set(intents)
    followups = check.intent_list(data.get("followup_intents", []), problems, "followup_intents", known)
    check.followup_keys(intents, set(followups), problems)
    rules = check.policy(data.get("policy", {}), problems, known, PolicyRules)
    responses = check.responses(data.get("responses", {}), problems, SYSTEM_RESPONSES, PROFILE_TEMPLATE_FIELDS)
    knowledge = check.knowledge(data.get("knowledge", []), problems, KnowledgeEntry)
    oos = check.string_list(data.get("out_of_scope", []), problems, "out_of_scope")
    if problems or rules is None:
        return None
    return Domain(
        name=name or path.stem,
        language=language or "en",
        policy=rules,
        intents=MappingProxyType({k: check.make_intent(IntentSpec, k, v) for k, v in intents.items()}),
        followup_intents=tuple(followups),
        forms=MappingProxyType({k: _form(k, v) for k, v in forms.items()}),
        responses=MappingProxyType(responses),
        knowledge=knowledge,
        out_of_scope=tuple(oos),
        path=path,
    )


def _form(name: str, raw: dict[str, Any]) -> FormSpec:
    slots = tuple(
        SlotSpec(name=s["name"], entity=s.get("entity", s["name"]), ask=check.variants(s["ask"]))
        for s in raw["slots"]
    )
    return FormSpec(name=name, slots=slots, done=check.variants(raw["done"]))
