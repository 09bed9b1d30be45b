"""Message text normalisation: what channels hand to NLU."""

from __future__ import annotations

import pytest

from agent.errors import InvalidInput
from modalities.text import fold_digits, fold_for_matching, normalize_text, preview


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  hello   there  ", "hello there"),
        ("line one\nline two\r\nline three", "line one line two line three"),
        ("tab\tseparated\x0bvertical\x0cfeed", "tab separated vertical feed"),
        ("bell\x07 and null\x00 and del\x7f", "bell and null and del"),
        ("c1\x85control\x9f", "c1 control"),
        ("\ufb01nance \u2460", "finance 1"),  # NFKC: ligature, circled digit
        ("\uff21\uff22\uff23 \uff11\uff12\uff13", "ABC 123"),  # fullwidth letters and digits
        ("caf\u0065\u0301", "caf\u00e9"),  # combining accent composed
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("\u202eevil\u202c override", "evil override"),  # bidi controls removed
        ("soft\u00adhyphen", "softhyphen"),
        ("non\u00a0breaking\u2003em space", "non breaking em space"),
        (
            "family \U0001f468\u200d\U0001f469\u200d\U0001f467",
            "family \U0001f468\u200d\U0001f469\u200d\U0001f467",
        ),
        ("lone \ud800 surrogate", "lone surrogate"),
        ("£12.50 — ok", "£12.50 — ok"),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    out = normalize_text(raw, max_chars=2000)
    assert out == expected
    out.encode("utf-8")  # always encodable: no lone surrogates survive


@pytest.mark.parametrize("raw", ["", "   ", "\n\t\r", "\x00\x01", "\u200b\ufeff", "\u202e"])
def test_empty_after_normalisation(raw: str) -> None:
    with pytest.raises(InvalidInput, match="^message text is empty$"):
        normalize_text(raw, max_chars=2000)


@pytest.mark.parametrize("bad", [None, 12, b"hello", ["hi"], {"text": "hi"}])
def test_not_a_string(bad: object) -> None:
    with pytest.raises(InvalidInput, match=f"expected a string, got {type(bad).__name__}"):
        normalize_text(bad, max_chars=2000)  # type: ignore[arg-type]


def test_over_the_limit_says_both_numbers() -> None:
    with pytest.raises(InvalidInput, match="^message text is 2,345 characters; the limit is 2,000$"):
        normalize_text("x" * 2345, max_chars=2000)


def test_limit_counts_after_normalisation() -> None:
    padded = "  " + "word " * 399 + "word" + "\n" * 500  # 2,500+ raw characters, 1,999 after
    assert len(normalize_text(padded, max_chars=2000)) == 1999
    assert normalize_text("x" * 2000, max_chars=2000) == "x" * 2000


def test_huge_input_refused_before_work() -> None:
    with pytest.raises(InvalidInput, match="^message text is 10,000,000 characters; the limit is 2,000$"):
        normalize_text(" " * 10_000_000, max_chars=2000)


def test_error_never_echoes_the_text() -> None:
    secret = "my card is 4111111111111111 " * 100
    with pytest.raises(InvalidInput) as info:
        normalize_text(secret, max_chars=100)
    assert "4111" not in str(info.value)


@pytest.mark.parametrize("limit", [0, -1, 2.5, True, "2000"])
def test_bad_limit_is_a_programming_error(limit: object) -> None:
    with pytest.raises(ValueError, match="max_chars must be a positive int"):
        normalize_text("hi", max_chars=limit)  # type: ignore[arg-type]


def test_fold_digits_keeps_length_and_ascii_text() -> None:
    assert fold_digits("card \u0664\u0668\u0662\u0661") == "card 4821"  # Arabic-Indic
    assert fold_digits("\u096a\u096b") == "45"  # Devanagari
    assert fold_digits("\uff11\uff12") == "12"  # fullwidth
    mixed = "x\u0661y\u0662z" * 1000
    assert len(fold_digits(mixed)) == len(mixed)
    plain = "already ascii 123"
    assert fold_digits(plain) is plain


def test_fold_for_matching() -> None:
    assert fold_for_matching("Café, PLEASE!") == fold_for_matching("cafe please") == "cafe please"
    assert fold_for_matching("  Where's my   CARD?? ") == "where s my card"
    assert fold_for_matching("Straße") == "strasse"


def test_preview() -> None:
    assert preview("short") == "short"
    assert preview("a" * 100, max_chars=10) == "a" * 9 + "\u2026"
    assert len(preview("word " * 50, max_chars=20)) <= 20
    with pytest.raises(ValueError):
        preview("x", max_chars=1)
