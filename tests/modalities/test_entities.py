"""Entity extraction and redaction: a table of what a customer writes and what must come out."""

from __future__ import annotations

import time
from datetime import date

import pytest

from agent.errors import InvalidInput
from agent.messages import Entity
from modalities.entities import ENTITY_KINDS, MAX_MATCHES_PER_PATTERN, extract_entities, redact

TODAY = date(2026, 3, 4)  # a Wednesday

# (message, expected (kind, value) pairs in order of position). An empty tuple means "nothing".
CASES: list[tuple[str, tuple[tuple[str, str], ...]]] = [
    # amounts
    ("I was charged £12.50 for nothing", (("amount", "12.50 GBP"),)),
    ("it cost 12,50 EUR at the kiosk", (("amount", "12.50 EUR"),)),
    ("lent him 45 quid", (("amount", "45.00 GBP"),)),
    ("they want $3k up front", (("amount", "3000.00 USD"),)),
    ("twenty pounds went missing", (("amount", "20.00 GBP"),)),
    ("a hundred and fifty euros", (("amount", "150.00 EUR"),)),
    ("twenty-five dollars", (("amount", "25.00 USD"),)),
    ("the fee was 50p", (("amount", "0.50 GBP"),)),
    ("EUR 40 at a cash machine", (("amount", "40.00 EUR"),)),
    ("£1,234.56 and €1.234,56", (("amount", "1234.56 GBP"), ("amount", "1234.56 EUR"))),
    ("a payment of £2.5k", (("amount", "2500.00 GBP"),)),
    ("I was charged 45.99 twice", (("amount", "45.99 GBP"),)),
    ("sent 500 to my sister", (("amount", "500.00 GBP"),)),
    ("it was about 35.50", (("amount", "35.50 GBP"),)),
    ("40", (("amount", "40.00 GBP"),)),
    ("paid A$80 for the room", (("amount", "80.00 AUD"),)),
    ("found a tenner in my coat", (("amount", "10.00 GBP"),)),
    ("five grand for the car", (("amount", "5000.00 GBP"),)),
    ("1000 JPY", (("amount", "1000.00 JPY"),)),
    # numbers that are not amounts
    ("the transfer took 3 days", ()),
    ("send 2 payments", ()),
    ("in 2026 I opened the account", ()),
    ("meet me at 12.30 please", ()),
    ("I'll try 20 times", ()),
    ("order 2000 euros of stock", (("amount", "2000.00 EUR"),)),
    # dates, absolute
    ("it happened on 27/11/2025", (("date", "2025-11-27"),)),
    ("statement from 01/01/2025 to 31/03/2025", (("date", "2025-01-01"), ("date", "2025-03-31"))),
    ("dated 2026-11-27.", (("date", "2026-11-27"),)),
    ("on 3rd March", (("date", "2026-03-03"),)),
    ("March 3", (("date", "2026-03-03"),)),
    ("Nov 27th", (("date", "2025-11-27"),)),
    ("3 March 2024", (("date", "2024-03-03"),)),
    ("March 3rd, 2024", (("date", "2024-03-03"),)),
    ("unknown charge on my statement from 14/10", (("date", "2025-10-14"),)),
    ("I ordered it on the 3rd", (("date", "2026-03-03"),)),
    ("the shop refunded me on the 12th", (("date", "2026-02-12"),)),  # 8 days ahead vs 20 back
    ("I'm moving on the 6th", (("date", "2026-03-06"),)),  # 2 days ahead vs 26 back
    ("travelling on 20/03", (("date", "2026-03-20"),)),
    ("27-11-25", (("date", "2025-11-27"),)),
    # dates, relative
    ("yesterday", (("date", "2026-03-03"),)),
    ("this morning at the shop", (("date", "2026-03-04"),)),
    ("the day before yesterday", (("date", "2026-03-02"),)),
    ("last Friday", (("date", "2026-02-27"),)),
    ("on Monday", (("date", "2026-03-02"),)),
    ("next Tuesday", (("date", "2026-03-10"),)),
    ("3 days ago", (("date", "2026-03-01"),)),
    ("a couple of weeks ago", (("date", "2026-02-18"),)),
    ("last week", (("date", "2026-02-25"),)),
    ("two months ago", (("date", "2026-01-04"),)),
    # things that look like dates but are not
    ("we offer 24/7 support", ()),
    ("3/4 of the price", ()),
    ("31/02/2026", ()),
    ("99/99/9999", ()),
    ("this is the 3rd time I've called", ()),
    ("app version 1.2.3", ()),
    # card digits
    ("lost my visa card ending 4821", (("card_last4", "4821"),)),
    ("the card ending in 0932 has been stolen", (("card_last4", "0932"),)),
    ("last 4 digits 4821", (("card_last4", "4821"),)),
    ("the last four digits of my card are 7730", (("card_last4", "7730"),)),
    ("**** **** **** 1188", (("card_last4", "1188"),)),
    ("my contract ending 2026", ()),
    ("my debit card ending 2026", (("card_last4", "2026"),)),
    ("4821", (("card_last4", "4821"), ("amount", "4821.00 GBP"))),
    ("card 4111 1111 1111 1111", (("card_number", "************1111"), ("card_last4", "1111"))),
    ("5555555555554444", (("card_number", "************4444"), ("card_last4", "4444"))),
    ("amex 3782 822463 10005", (("card_number", "***********0005"), ("card_last4", "0005"))),
    ("4111 1111 1111 1112", ()),  # fails the Luhn check
    (
        "4000 0000 0000 0000 006",
        (("card_number", "***************0006"), ("card_last4", "0006")),
    ),  # 19 digits
    # ids
    ("report transaction TXN-88412", (("transaction_id", "TXN-88412"),)),
    ("transaction 8F3K2L9Q", (("transaction_id", "8F3K2L9Q"),)),
    ("transaction reference: ab12cd34", (("transaction_id", "AB12CD34"),)),
    ("transaction declined yesterday", (("date", "2026-03-03"),)),
    ("chase order number 55-19342", (("order_id", "55-19342"),)),
    ("order #A12345 never came", (("order_id", "A12345"),)),
    ("ORD-99812", (("order_id", "ORD-99812"),)),
    ("I ordered it ages ago", ()),
    # contact details and bank details
    ("mail me at Jo.Smith+bank@Example.co.uk.", (("email", "jo.smith+bank@example.co.uk"),)),
    ("call 07700 900123 or +44 (0)20 7946 0958", (("phone", "+447700900123"), ("phone", "+442079460958"))),
    ("my number is +1 (415) 555-0132", (("phone", "+14155550132"),)),
    ("ring 0161 496 0000", (("phone", "+441614960000"),)),
    ("(415) 555-0132", (("phone", "+14155550132"),)),
    ("IBAN GB82 WEST 1234 5698 7654 32", (("iban", "GB82WEST12345698765432"),)),
    ("de89370400440532013000", (("iban", "DE89370400440532013000"),)),
    ("GB82 WEST 1234 5698 7654 33", ()),  # bad check digits
    ("new address 14 Elm Road, Leeds ls6 2ab", (("postcode", "LS6 2AB"),)),
    ("SW1A1AA", (("postcode", "SW1A 1AA"),)),
    # Unicode digits (Arabic-Indic) are digits
    ("card ending \u0664\u0668\u0662\u0661", (("card_last4", "4821"),)),
    ("\uff14\uff18\uff12\uff11", (("card_last4", "4821"), ("amount", "4821.00 GBP"))),  # fullwidth
]


@pytest.mark.parametrize(("message", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_extracts(message: str, expected: tuple[tuple[str, str], ...]) -> None:
    entities = extract_entities(message, today=TODAY)
    assert tuple((e.kind, e.value) for e in entities) == expected


def test_case_table_is_large() -> None:
    assert len(CASES) >= 60


def test_spans_point_at_the_text_as_written() -> None:
    message = "Refund of £34.20 on 3rd March, card ending 4821, ref TXN-88412"
    entities = extract_entities(message, today=TODAY)
    assert [e.kind for e in entities] == ["amount", "date", "card_last4", "transaction_id"]
    for e in entities:
        assert isinstance(e, Entity)
        assert e.kind in ENTITY_KINDS
        assert message[e.start : e.end] == e.text
    assert [e.text for e in entities] == ["£34.20", "3rd March", "4821", "TXN-88412"]


def test_full_card_number_never_comes_back() -> None:
    message = "my card is 4111-1111-1111-1111 please block it"
    entities = extract_entities(message, today=TODAY)
    card = next(e for e in entities if e.kind == "card_number")
    assert "4111-1111-1111" not in card.text and "411111111111" not in card.value
    assert card.text == "****-****-****-1111"
    assert message[card.start : card.end] == "4111-1111-1111-1111"
    assert [e.value for e in entities if e.kind == "card_last4"] == ["1111"]


def test_last4_of_a_19_digit_card_spans_its_digits() -> None:
    message = "4000 0000 0000 0000 006"
    last4 = next(e for e in extract_entities(message, today=TODAY) if e.kind == "card_last4")
    assert (last4.value, last4.text) == ("0006", "0 006")
    assert message[last4.start : last4.end] == last4.text


def test_unicode_digit_spans_keep_original_text() -> None:
    message = "card ending \u0664\u0668\u0662\u0661"
    (entity,) = extract_entities(message, today=TODAY)
    assert entity.text == "\u0664\u0668\u0662\u0661" and entity.value == "4821"


def test_today_defaults_to_the_local_date() -> None:
    (entity,) = extract_entities("today")
    assert entity.value == date.today().isoformat()


def test_year_less_dates_take_the_nearest_year_leaning_to_the_past() -> None:
    assert extract_entities("on 20/12", today=date(2026, 1, 5))[0].value == "2025-12-20"
    assert extract_entities("on 10/01", today=date(2025, 12, 20))[0].value == "2026-01-10"


def test_weekday_today_counts_as_on_but_not_as_last() -> None:
    wednesday = date(2026, 3, 4)
    assert extract_entities("on Wednesday", today=wednesday)[0].value == "2026-03-04"
    assert extract_entities("last Wednesday", today=wednesday)[0].value == "2026-02-25"


@pytest.mark.parametrize("bad", [None, 42, b"bytes", ["list"]])
def test_non_text_is_invalid_input(bad: object) -> None:
    with pytest.raises(InvalidInput, match="expected a string"):
        extract_entities(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="expected a string"):
        redact(bad)  # type: ignore[arg-type]


# --- redaction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("email jo@example.com now", "email [EMAIL] now"),
        ("call 07700 900123", "call [PHONE]"),
        ("card 4111 1111 1111 1111", "card [CARD]"),
        ("card 4111 1111 1111 1112", "card [CARD]"),  # a mistyped card number is still sensitive
        ("card ending 4821", "card ending [CARD_LAST4]"),
        ("4821", "[CARD_LAST4]"),
        ("GB82 WEST 1234 5698 7654 32", "[IBAN]"),
        ("I live at LS6 2AB", "I live at [POSTCODE]"),
        ("ref TXN-88412", "ref [TRANSACTION_ID]"),
        ("sort code 20-00-00 account 12345678", "sort code [SORT_CODE] account [ACCOUNT_NUMBER]"),
        ("£40 on 3 March, order 55-19342", "£40 on 3 March, order 55-19342"),
        ("nothing personal here", "nothing personal here"),
    ],
)
def test_redact(message: str, expected: str) -> None:
    assert redact(message) == expected


def test_redact_leaves_no_digits_of_personal_data() -> None:
    message = (
        "I'm Jo (jo.bloggs@mail.example), phone +44 7911 123456, card 5555 5555 5555 4444, "
        "IBAN DE89 3704 0044 0532 0130 00, postcode M1 1AE, txn TXN-55120"
    )
    out = redact(message)
    for secret in ("jo.bloggs", "7911", "5555", "4444", "DE89", "M1 1AE", "55120"):
        assert secret not in out
    assert out.count("[") == 6


# --- hostile input --------------------------------------------------------------------------

ADVERSARIAL = {
    "digits": "1" * 200_000,
    "digits and spaces": "1 " * 100_000,
    "dashes": "12-" * 66_667,
    "at signs": "a@" * 100_000,
    "dotted domain": "x@" + "a." * 100_000,
    "plus signs": "+44 " * 50_000,
    "nested brackets": "(" * 100_000 + ")" * 100_000,
    "bracketed zeros": "(0" * 100_000,
    "unicode digits": "\u0664" * 200_000,
    "pound commas": "£1," * 66_667,
    "number words": "one hundred and " * 12_500,
    "card cues": "card ending " * 16_667,
    "masks": "xxxx " * 40_000,
    "slashes": "on 1/" * 40_000,
    "iban-like": "AB12" + "CDEF" * 50_000,
    "card numbers": "4111 1111 1111 1111 " * 10_000,
}


def test_extraction_output_is_bounded_but_redaction_is_complete() -> None:
    hostile = "£1, " * 50_000
    entities = extract_entities(hostile, today=TODAY)
    assert 0 < len(entities) <= 10 * MAX_MATCHES_PER_PATTERN
    emails = " ".join(f"u{i}@example.com" for i in range(5_000))
    assert "@" not in redact(emails)
    assert redact(emails).count("[EMAIL]") == 5_000


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_hostile_input_finishes(name: str) -> None:
    text = ADVERSARIAL[name]
    assert len(text) >= 199_000
    started = time.perf_counter()
    extract_entities(text, today=TODAY)
    redact(text)
    # Generous bound: catastrophic backtracking would take minutes; a shared CPU takes < 2 s.
    assert time.perf_counter() - started < 5.0
