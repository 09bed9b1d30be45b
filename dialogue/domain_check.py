"""Checks for the domain file, each naming the key path of what is wrong.

Used by ``dialogue.domain``; every check records problems and carries on, so one run of
``load_domain`` reports all of them.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import yaml

from dialogue.templates import TemplateSyntaxError, template_fields

IDENT = re.compile(r"^[a-z][a-z0-9_]*$")
INTENT_KEYS = ("title", "examples", "response", "response_missing_slot", "followups", "form",
               "remember", "related", "label")
SLOT_KEYS = ("name", "entity", "ask")


class Problems:
    """Problems found so far, each ``'<file>: <key.path>: <what>'``."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{self.filename}: {path}: {message}" if path else f"{self.filename}: {message}")

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self, error: type[Exception]) -> None:
        if self.items:
            raise error(self.items)


class StrictLoader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate keys (a common slip in long hand-written files)."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )


def string(value: Any, problems: Problems, path: str) -> str | None:
    if not isinstance(value, str) or not value.strip():
        hint = " (quote it: YAML reads bare yes/no/on/off as true/false)" if isinstance(value, bool) else ""
        problems.add(path, f"expected a non-empty string, got {kind(value)}{hint}")
        return None
    return value


def string_list(value: Any, problems: Problems, path: str) -> list[str]:
    if not isinstance(value, list):
        problems.add(path, f"expected a list of strings, got {kind(value)}")
        return []
    out = []
    for i, item in enumerate(value):
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)
        if string(item, problems, f"{path}[{i}]") is not None:
            out.append(item)
    return out


def variants(value: Any) -> tuple[str, ...]:
    """A template given as one string or a list of variants."""
    return (value,) if isinstance(value, str) else tuple(value)


def templates(value: Any, problems: Problems, path: str, allowed: set[str] | None = None) -> list[str]:
    """One template or a non-empty list of them, each with valid ``{field}`` syntax."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        problems.add(path, f"expected a template string or a non-empty list of them, got {kind(value)}")
        return []
    out = []
    for i, item in enumerate(items):
        where = path if isinstance(value, str) else f"{path}[{i}]"
        if string(item, problems, where) is None:
            continue
        try:
            fields = template_fields(item)
        except TemplateSyntaxError as e:
            problems.add(where, str(e))
            continue
        if allowed is not None and not fields <= allowed:
            problems.add(where, f"unknown template fields {sorted(fields - allowed)}; expected some of {sorted(allowed)}")
        out.append(item)
    return out


def intent_list(value: Any, problems: Problems, path: str, known: set[str]) -> list[str]:
    names = string_list(value, problems, path)
    for i, name in enumerate(names):
        if name not in known:
            problems.add(f"{path}[{i}]", f"unknown intent {name!r}")
    return names


def _number(raw: dict[str, Any], key: str, problems: Problems, default: Any) -> Any:
    value = raw.get(key, default)
    want_int = isinstance(default, int) and not isinstance(default, bool)
    ok = isinstance(value, int) if want_int else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        problems.add(f"policy.{key}", f"expected {'an integer' if want_int else 'a number'}, got {value!r}")
        return default
    return value if want_int else float(value)


def policy(raw: Any, problems: Problems, known: set[str], rules_cls: type) -> Any:
    if not isinstance(raw, dict):
        problems.add("policy", f"expected a mapping, got {kind(raw)}")
        return None
    defaults = rules_cls()
    names = [f.name for f in dataclasses.fields(rules_cls)]
    for key in sorted(set(raw) - set(names)):
        problems.add(f"policy.{key}", f"unknown setting; expected one of {names}")
    values: dict[str, Any] = {}
    for name in names:
        default = getattr(defaults, name)
        if name in ("sensitive_intents", "handoff_intents"):
            values[name] = tuple(intent_list(raw.get(name, []), problems, f"policy.{name}", known))
        elif isinstance(default, tuple):  # helper intents (greeting, affirm, deny) may be absent
            values[name] = tuple(string_list(raw.get(name, list(default)), problems, f"policy.{name}"))
        else:
            values[name] = _number(raw, name, problems, default)
    rules = rules_cls(**values)
    policy_ranges(rules, problems, "policy")
    return rules


def policy_ranges(rules: Any, problems: Problems, path: str) -> None:
    unit = ("handoff_below_confidence", "clarify_margin", "clarify_min_confidence", "oos_threshold")
    for name in unit:
        if not 0.0 <= getattr(rules, name) <= 1.0:
            problems.add(f"{path}.{name}", f"expected a number in [0, 1], got {getattr(rules, name)}")
    for name in ("knowledge_min_score", "negative_sentiment_threshold"):
        if not -1.0 <= getattr(rules, name) <= 1.0:
            problems.add(f"{path}.{name}", f"expected a number in [-1, 1], got {getattr(rules, name)}")
    counts = ("low_confidence_turns_before_handoff", "negative_sentiment_turns", "max_failures_per_intent",
              "sentiment_window", "summary_turns")
    for name in counts:
        if not 1 <= getattr(rules, name) <= 100:
            problems.add(f"{path}.{name}", f"expected an integer in [1, 100], got {getattr(rules, name)}")
    if rules.recall_within_days < 0:
        problems.add(f"{path}.recall_within_days", f"expected >= 0 days, got {rules.recall_within_days}")


def forms(raw: Any, problems: Problems) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        problems.add("forms", f"expected a mapping of form name to form, got {kind(raw)}")
        return {}
    out = {}
    for name, form in raw.items():
        path = f"forms.{name}"
        if not isinstance(form, dict):
            problems.add(path, f"expected a mapping with 'slots' and 'done', got {kind(form)}")
            continue
        for key in sorted(set(form) - {"slots", "done"}):
            problems.add(f"{path}.{key}", "unknown key; expected 'slots' or 'done'")
        slots = _slots(form.get("slots"), problems, f"{path}.slots")
        done = templates(form.get("done"), problems, f"{path}.done")
        if slots and done:
            out[str(name)] = {"slots": slots, "done": done}
    return out


def _slots(raw: Any, problems: Problems, path: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        problems.add(path, f"expected a non-empty list of slots, got {kind(raw)}")
        return []
    out, seen = [], set()
    for i, slot in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(slot, dict):
            problems.add(where, f"expected a mapping with name, entity, ask; got {kind(slot)}")
            continue
        for key in sorted(set(slot) - set(SLOT_KEYS)):
            problems.add(f"{where}.{key}", f"unknown key; expected one of {list(SLOT_KEYS)}")
        name = slot.get("name")
        if not isinstance(name, str) or not IDENT.match(name):
            problems.add(f"{where}.name", f"expected a lower_snake_case name, got {name!r}")
            continue
        if name in seen:
            problems.add(f"{where}.name", f"duplicate slot {name!r}")
        seen.add(name)
        entity = slot.get("entity", name)
        if not isinstance(entity, str) or not IDENT.match(entity):
            problems.add(f"{where}.entity", f"expected an entity kind such as 'amount' or 'text', got {entity!r}")
        if templates(slot.get("ask"), problems, f"{where}.ask"):
            out.append({"name": name, "entity": entity, "ask": slot["ask"]})
    return out


def intents(raw: Any, problems: Problems, known_forms: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict) or not raw:
        problems.add("intents", f"expected a non-empty mapping of intent name to intent, got {kind(raw)}")
        return {}
    for name in raw:
        if not isinstance(name, str) or not IDENT.match(name):
            problems.add(f"intents.{name}", "intent names must be lower_snake_case")
    known = {str(n) for n in raw}
    return {str(n): _intent(str(n), v, problems, known_forms, known) for n, v in raw.items()}


def _intent(name: str, raw: Any, problems: Problems, known_forms: dict[str, Any], known: set[str]) -> dict[str, Any]:
    path = f"intents.{name}"
    if not isinstance(raw, dict):
        problems.add(path, f"expected a mapping with title and examples, got {kind(raw)}")
        return {}
    for key in sorted(set(raw) - set(INTENT_KEYS)):
        problems.add(f"{path}.{key}", f"unknown key; expected one of {list(INTENT_KEYS)}")
    string(raw.get("title"), problems, f"{path}.title")
    if not string_list(raw.get("examples"), problems, f"{path}.examples") and isinstance(raw.get("examples"), list):
        problems.add(f"{path}.examples", "expected at least one example utterance")
    for key in ("response",):
        if key in raw:
            templates(raw[key], problems, f"{path}.{key}")
    if "response_missing_slot" in raw:
        templates(raw["response_missing_slot"], problems, f"{path}.response_missing_slot")
    form = raw.get("form")
    if form is not None and form not in known_forms:
        problems.add(f"{path}.form", f"unknown form {form!r}; expected one of {sorted(known_forms)}")
    if not isinstance(raw.get("remember", False), bool):
        problems.add(f"{path}.remember", f"expected true or false, got {raw.get('remember')!r}")
    if "related" in raw:
        intent_list(raw["related"], problems, f"{path}.related", known)
    if "label" in raw:
        string(raw["label"], problems, f"{path}.label")
    followups = raw.get("followups", {})
    if not isinstance(followups, dict):
        problems.add(f"{path}.followups", f"expected a mapping of follow-up intent to answer, got {kind(followups)}")
    else:
        for key, text in followups.items():
            if key not in known:
                problems.add(f"{path}.followups.{key}", f"unknown intent {key!r}")
            templates(text, problems, f"{path}.followups.{key}")
    return raw


def followup_keys(intents_raw: dict[str, dict[str, Any]], followups: set[str], problems: Problems) -> None:
    for name, raw in intents_raw.items():
        for key in (raw.get("followups") or {}) if isinstance(raw.get("followups"), dict) else {}:
            if key not in followups:
                problems.add(f"intents.{name}.followups.{key}", "is not listed in followup_intents")


def make_intent(cls: type, name: str, raw: dict[str, Any]) -> Any:
    missing = raw.get("response_missing_slot")
    return cls(
        name=name,
        title=raw["title"],
        examples=tuple(str(e) for e in raw["examples"]),
        response=variants(raw["response"]) if "response" in raw else (),
        response_missing_slot=missing if isinstance(missing, str) else (missing[0] if missing else None),
        followups=tuple((k, v if isinstance(v, str) else v[0]) for k, v in (raw.get("followups") or {}).items()),
        form=raw.get("form"),
        remember=bool(raw.get("remember", False)),
        related=tuple(raw.get("related", ())),
        label=raw.get("label", ""),
    )


def responses(raw: Any, problems: Problems, system: dict[str, Any], profile_fields: tuple[str, ...]) -> dict[str, str]:
    if not isinstance(raw, dict):
        problems.add("responses", f"expected a mapping of response name to template, got {kind(raw)}")
        return {}
    out = {}
    for key, text in raw.items():
        if key not in system:
            problems.add(f"responses.{key}", f"unknown response; expected one of {sorted(system)}")
            continue
        allowed = set(system[key][0]) | set(profile_fields)
        if templates(text, problems, f"responses.{key}", allowed) and isinstance(text, str):
            out[str(key)] = text
        elif isinstance(text, list):
            problems.add(f"responses.{key}", "expected one template string")
    return out


def knowledge(raw: Any, problems: Problems, entry_cls: type) -> tuple[Any, ...]:
    if not isinstance(raw, list):
        problems.add("knowledge", f"expected a list of question/answer entries, got {kind(raw)}")
        return ()
    out, seen = [], set()
    for i, entry in enumerate(raw):
        path = f"knowledge[{i}]"
        if not isinstance(entry, dict):
            problems.add(path, f"expected a mapping with id, question, answer; got {kind(entry)}")
            continue
        for key in sorted(set(entry) - {"id", "question", "answer", "alternatives"}):
            problems.add(f"{path}.{key}", "unknown key; expected id, question, answer, alternatives")
        entry_id = string(entry.get("id"), problems, f"{path}.id")
        if entry_id in seen:
            problems.add(f"{path}.id", f"duplicate knowledge id {entry_id!r}")
        seen.add(entry_id)
        question = string(entry.get("question"), problems, f"{path}.question")
        answer = string(entry.get("answer"), problems, f"{path}.answer")
        alternatives = string_list(entry.get("alternatives", []), problems, f"{path}.alternatives")
        if entry_id and question and answer:
            out.append(entry_cls(id=entry_id, question=question, answer=answer, alternatives=tuple(alternatives)))
    return tuple(out)
