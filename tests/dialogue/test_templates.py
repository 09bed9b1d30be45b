"""Templates, short-reply cues and rendered texts."""

from __future__ import annotations

import pytest

from dialogue import cues
from dialogue.responses import when_phrase
from dialogue.templates import TemplateSyntaxError, render, render_first, template_fields

DAY_S = 86_400.0
NOON = 1_764_331_200.0  # 2025-11-28 12:00 UTC


def test_fields_and_literal_braces() -> None:
    assert template_fields("Hi {name}, {{not a field}} {amount}") == {"name", "amount"}
    assert render("Hi {name} {{x}}", {"name": "Ada"}) == "Hi Ada {x}"
    for bad in ("Hi {name", "Hi name}", "{0}", "{a.b}", "{}"):
        with pytest.raises(TemplateSyntaxError):
            template_fields(bad)


def test_values_are_never_parsed_again() -> None:
    evil = "{name} {0.__class__.__mro__} {{"
    assert render("Address: {addr}", {"addr": evil, "name": "Ada"}) == f"Address: {evil}"


def test_missing_fields_choose_another_variant() -> None:
    assert render("Hi {name}", {}) is None
    assert render("Hi {name}", {"name": ""}) is None
    variants = ("Hi {name}, card {card_last4}", "Hi {name}", "Hello")
    assert render_first(variants, {"name": "Ada"}) == "Hi Ada"
    assert render_first(variants, {}) == "Hello"
    assert render_first(variants, {"name": "Ada", "card_last4": "1234"}, start=2) == "Hello"
    assert render_first(("{x}",), {}) is None


@pytest.mark.parametrize("text", ["yes", "Yes please!", "yep", "that's right", "sure, go on", "OK"])
def test_yes(text: str) -> None:
    assert cues.is_yes(text) and not cues.is_no(text)


@pytest.mark.parametrize("text", ["no", "Nope.", "no thanks", "not really", "neither"])
def test_no(text: str) -> None:
    assert cues.is_no(text) and not cues.is_yes(text)


@pytest.mark.parametrize("text", ["I lost my card yesterday and it was stolen", "", "yes no"])
def test_neither_yes_nor_no(text: str) -> None:
    assert not cues.is_yes(text) and not cues.is_no(text)


@pytest.mark.parametrize("text", ["no, it was £45", "actually the 3rd", "sorry I meant Tuesday", "it was 40"])
def test_corrections(text: str) -> None:
    assert cues.is_correction(text)


def test_when_phrases() -> None:
    assert when_phrase(NOON - 3600, NOON) == "earlier today"
    assert when_phrase(NOON - DAY_S, NOON) == "yesterday"
    assert when_phrase(NOON - 3 * DAY_S, NOON) == "3 days ago"
    assert when_phrase(NOON - 10 * DAY_S, NOON) == "on 18 November"
