"""Rule-based entity extraction and redaction of personal data. No models, no I/O.

Kinds, and the normalised ``Entity.value`` each carries:

- ``amount``: "12.50 GBP", always two decimals and an ISO 4217 code. From "£12.50", "12,50 EUR",
  "EUR 40", "45 quid", "$3k", "50p", "twenty pounds", "a tenner", a number after a money verb
  ("charged 45.99", "sent 500 to"), a bare "45.99", or a message that is only a number. Where no
  currency is written the currency is ``DEFAULT_CURRENCY`` (GBP: the default domain is a UK bank).
  "$" is US dollars unless written "A$", "C$", "NZ$", "HK$".
- ``date``: ISO "2026-11-27"; see ``modalities.dates`` for the forms and how they resolve.
- ``card_last4``: "4821", after "card ending (in)", "last 4 digits (are)", "**** 4821"; also from
  a full card number, and from a message that is only four digits (then also an ``amount``).
- ``card_number``: Luhn-checked 13-19 digits starting 2-6. Never returned in full: ``value`` and
  ``text`` keep only the last four digits ("************4821", "**** **** **** 4821").
- ``transaction_id``: "TXN-88412", or the code after "transaction (id/ref)"; upper-cased.
- ``order_id``: the code after "order (number/no/#)", or "ORD-1234"; upper-cased.
- ``email``: lower-cased. ``phone``: E.164 ("+447700900123"); UK national numbers ("07700
  900123") are read as +44, "(415) 555-0132" as +1. ``iban``: compact, upper-cased, mod-97
  checked. ``postcode``: UK, upper-cased with one space ("LS6 2AB").

Where spans overlap, the stronger kind wins (in ``ENTITY_KINDS`` order), then the longer span.
Every pattern starts at a boundary and uses bounded or possessive repeats, so the work is linear
in the length of the text: the worst 200 KB hostile input measured took 0.74 s on a loaded
2-core machine (benchmarks/README.md). Extraction reads at most ``MAX_MATCHES_PER_PATTERN``
matches of each pattern; ``redact`` reads them all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from agent.errors import InvalidInput
from agent.messages import Entity
from modalities.dates import each, find_dates
from modalities.text import fold_digits

DEFAULT_CURRENCY = "GBP"
# Extraction reads at most this many matches of each pattern. A message within the server's
# 2,000-character limit cannot reach it; past it the input is hostile, and the rest is ignored
# rather than returned (66,667 amounts from 200 KB of "£1,£1,..."). ``redact`` reads everything.
MAX_MATCHES_PER_PATTERN = 500
ENTITY_KINDS = (  # strongest first: decides which kind keeps an overlapping span
    "email", "iban", "card_number", "card_last4", "transaction_id", "order_id", "phone",
    "postcode", "date", "amount",
)  # fmt: skip
REDACTED_KINDS = ("email", "iban", "card_number", "card_last4", "transaction_id", "phone", "postcode")
PLACEHOLDERS = {
    "email": "[EMAIL]", "iban": "[IBAN]", "card_number": "[CARD]", "card_last4": "[CARD_LAST4]",
    "transaction_id": "[TRANSACTION_ID]", "phone": "[PHONE]", "postcode": "[POSTCODE]",
    "sort_code": "[SORT_CODE]", "account_number": "[ACCOUNT_NUMBER]",
}  # fmt: skip
_RANK = {kind: i for i, kind in enumerate((*ENTITY_KINDS, "sort_code", "account_number"))}
_I = re.IGNORECASE | re.ASCII

# --- patterns -------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])[a-z0-9][a-z0-9._%+-]{0,63}@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.){1,8}"
    r"[a-z]{2,24}(?![\w-])", _I)  # fmt: skip
_IBAN = re.compile(r"(?<![a-z0-9])[a-z]{2}\d{2}(?: ?[a-z0-9]{4}){2,7}+(?: ?[a-z0-9]{1,3})?(?![a-z0-9])", _I)
_CARD = re.compile(r"(?<![\w+.,-])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\w]|[.,]\d)", _I)
_PHONE = re.compile(r"(?<![\w+])(?:\+|00|\(?0)[\d .()-]{6,24}+", _I)
_PHONE_NANP = re.compile(r"(?<![\w+(])\(?[2-9]\d{2}\)?[ .-]\d{3}[ .-]\d{4}(?![\w]|[.-]\d)", _I)
_POSTCODE = re.compile(
    r"(?<![a-z0-9])(?:gir ?0aa|[a-pr-uwyz][a-hk-y]?\d[a-z\d]? ?\d[abd-hjlnp-uw-z]{2})(?![a-z0-9])", _I)  # fmt: skip
_TXN = re.compile(r"(?<![a-z0-9])txn[-_ ]?[a-z0-9]{4,20}+(?![a-z0-9-])", _I)
_ORDER = re.compile(r"(?<![a-z0-9])ord[-_]?\d[a-z0-9-]{2,29}+(?![a-z0-9-])", _I)
_ID_TAIL = r"(?:\s+(?:id|ref(?:erence)?|number|num|no\.?|code))?\s*(?:[:#]\s*|is\s+|was\s+)?#?"
_TXN_CUED = re.compile(
    r"\b(?:transaction|txn|payment)\b" + _ID_TAIL + r"(?P<id>[a-z0-9][a-z0-9-]{5,29}+)(?![a-z0-9-])", _I
)
_ORDER_CUED = re.compile(r"\border\b" + _ID_TAIL + r"(?P<id>[a-z0-9][a-z0-9-]{3,29}+)(?![a-z0-9-])", _I)
_LAST4 = re.compile(
    r"(?P<cue>\b(?:ending|ends)(?:\s+(?:in|with))?"
    r"|\blast\s+(?:4|four)(?:\s+(?:digits?|numbers?|nos?\.?))?(?:\s+(?:of|on)\s+(?:my|the|your)\s+card)?"
    r"(?:\s+(?:is|are|were|was))?"
    r"|(?<![*x\u2022])(?:[*x\u2022]{4}[ -]?){1,4})[\s:#-]*(?P<d>\d{4})(?![\d])", _I)  # fmt: skip
_CARD_WORD = re.compile(r"\b(?:card|visa|mastercard|amex|debit|credit|one)\b", _I)
_SORT_CODE = re.compile(r"(?<![\w-])\d{2}-\d{2}-\d{2}(?![\w]|-\d)")
_ACCOUNT = re.compile(r"\baccount\s+(?:number\s+|no\.?\s+)?(?:is\s+)?(?P<n>\d{8})(?!\d)", _I)

_NUM = r"(?:\d{1,3}(?:[,.]\d{3})++(?:[.,]\d{1,2})?|\d{1,12}(?:[.,]\d{1,2})?)(?!\d|[.,]\d)"
_SYMBOLS = {"US$": "USD", "AU$": "AUD", "A$": "AUD", "CA$": "CAD", "C$": "CAD", "NZ$": "NZD",
            "HK$": "HKD", "£": "GBP", "$": "USD", "€": "EUR", "¥": "JPY"}  # fmt: skip
_CODES = ("GBP", "EUR", "USD", "JPY", "CHF", "AUD", "CAD", "NZD", "HKD", "SGD", "PLN", "SEK", "NOK", "DKK",
          "CZK", "HUF", "INR", "CNY", "ZAR", "TRY", "AED", "MXN", "BRL")  # fmt: skip
_UNITS = {"pound": "GBP", "pounds": "GBP", "quid": "GBP", "sterling": "GBP", "euro": "EUR",
          "euros": "EUR", "dollar": "USD", "dollars": "USD", "bucks": "USD", "yen": "JPY",
          "franc": "CHF", "francs": "CHF", "pence": "GBP", "p": "GBP", "grand": "GBP"}  # fmt: skip
_MULTS = {"k": 1000, "thousand": 1000, "grand": 1000, "m": 10**6, "mn": 10**6, "million": 10**6,
          "bn": 10**9, "billion": 10**9}  # fmt: skip
_SYM = "(?P<sym>" + "|".join(re.escape(s) for s in sorted(_SYMBOLS, key=len, reverse=True)) + ")"
_CODE = "(?P<code>" + "|".join(_CODES) + ")"
_UNIT = "(?i:(?P<unit>" + "|".join(sorted(_UNITS, key=len, reverse=True)) + "))"
_MULT = r"(?:\s?(?i:(?P<mult>k|thousand|m|mn|million|bn|billion))(?![a-z]))?"
_AMOUNT_SYMBOL = re.compile(r"(?<![a-z0-9])" + _SYM + r"\s?(?P<num>" + _NUM + ")" + _MULT, re.ASCII)
_AMOUNT_CODE = re.compile(r"(?<![A-Za-z])" + _CODE + r"\s?(?P<num>" + _NUM + ")" + _MULT, re.ASCII)
_AMOUNT_AFTER = re.compile(
    r"(?<![\w.,])(?P<num>" + _NUM + ")" + _MULT + r"(?P<gap>\s?)(?:" + _CODE + "|" + _UNIT + r")(?![A-Za-z])", re.ASCII)  # fmt: skip
_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")  # fmt: skip
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_WORD_VALUES = {w: i for i, w in enumerate(_ONES)} | {w: 10 * (i + 2) for i, w in enumerate(_TENS)}
_WORD_VALUES.update({"hundred": 100, "thousand": 1000, "million": 10**6})
_W = "(?:" + "|".join(sorted(_WORD_VALUES, key=len, reverse=True)) + ")"
_AMOUNT_WORDS = re.compile(
    r"\b(?P<words>(?:an?\s+)?" + _W + r"(?:(?:\s+|-)(?:and\s+)?" + _W + r"){0,8})\s+"
    r"(?P<unit>pounds?|quid|euros?|dollars?|bucks|pence|grand)\b", _I)  # fmt: skip
_AMOUNT_SLANG = re.compile(r"\ban?\s+(?P<slang>fiver|tenner|pound|quid|euro|dollar)\b", _I)
_SLANG = {"fiver": ("5", "GBP"), "tenner": ("10", "GBP"), "pound": ("1", "GBP"), "quid": ("1", "GBP"),
          "euro": ("1", "EUR"), "dollar": ("1", "USD")}  # fmt: skip
_APPROX = (
    r"(?:(?:about|around|roughly|approximately|approx\.?|over|under|nearly|almost|just|only|exactly)\s+)?"
)
_AMOUNT_CUED = re.compile(
    r"\b(?:charged|paid|pay|costs?|costing|spent|spend|refund(?:ed)?|refund\s+of|amount(?:\s+(?:of|was|is))?"
    r"|total(?:\s+(?:of|was|is))?|price(?:\s+(?:was|is))?|billed|debited|withdrew|withdraw|transferred"
    r"|transfer(?:\s+of)?|sent|send|owe[ds]?|deposit(?:ed)?|payment\s+of|balance\s+(?:of|is|was)"
    r"|(?:took|take|taking)\s+out)(?:\s+(?:me|us|him|her|them))?\s+" + _APPROX + r"(?P<num>" + _NUM + ")"
    r"(?:\s?(?P<mult>k|grand)(?![a-z]))?"
    r"(?=\s*$|\s*[,;!?)]|\.(?!\d)|\s+(?:to|for|on|at|from|in|into|out|and|but|yesterday|today|last|this"
    r"|which|that|when|so|by|via|with|please|twice|instead|extra|more|too|back|each|per|a|an|the|or|i|it"
    r"|was|is)\b)", _I)  # fmt: skip
_AMOUNT_DECIMAL = re.compile(
    r"(?<![\w.,/:$\u00a3\u20ac\u00a5-])(?<!\bat\s)(?<!\bon\s)(?<!\bby\s)(?P<num>\d{1,9}\.\d{2})"
    r"(?![\w%]|[.,/:]\d|\s?(?:am|pm|hrs?|h)\b)", _I)  # fmt: skip
_BARE = re.compile(
    r"^\s*(?:(?:it\s+was|it\s+is|it'?s|its|about|around|roughly|approx\.?|approximately|just|only)\s+){0,2}"
    r"(?P<num>" + _NUM + r")\s*[.!?]?\s*$", _I)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Found:
    start: int
    end: int
    kind: str
    value: str
    text: str | None = None  # None: the original span; set where the span must not be echoed


# --- public API -----------------------------------------------------------------------------


def extract_entities(text: str, *, today: date | None = None) -> tuple[Entity, ...]:
    """Every entity in ``text``, in order of position. ``today`` (default: the local date)
    anchors relative and year-less dates. Offsets index ``text`` as given (pass the output of
    ``modalities.text.normalize_text``); Unicode digits count as digits."""
    _check(text)
    folded = fold_digits(text)
    day = today or date.today()
    n = MAX_MATCHES_PER_PATTERN
    found = _resolve([*_personal(folded, n), *_ids(folded, n), *_dates(folded, day, n), *_amounts(folded, n)])
    found += _card_last4_of(folded, found) + _bare_reply(folded, found)
    found.sort(key=lambda f: (f.start, _RANK[f.kind]))
    return tuple(_entity(f, text) for f in found)


def _entity(f: _Found, text: str) -> Entity:
    shown = text[f.start : f.end] if f.text is None else f.text
    return Entity(kind=f.kind, value=f.value, text=shown, start=f.start, end=f.end)


def redact(text: str) -> str:
    """``text`` with personal data replaced by placeholders: ``[EMAIL]``, ``[PHONE]``,
    ``[CARD]`` (card numbers, including ones that fail the Luhn check), ``[CARD_LAST4]``,
    ``[IBAN]``, ``[POSTCODE]``, ``[TRANSACTION_ID]``, ``[SORT_CODE]``, ``[ACCOUNT_NUMBER]``.
    Amounts, dates and order ids stay. For logs and exported conversations."""
    _check(text)
    folded = fold_digits(text)
    spans = _resolve([*_personal(folded, None, luhn=False), *_ids(folded, None), *_sort_and_account(folded)])
    spans = [f for f in spans if f.kind in PLACEHOLDERS]
    spans += [f for f in _bare_reply(folded, spans) if f.kind == "card_last4"]
    pieces: list[str] = []
    pos = 0
    for f in sorted(spans, key=lambda f: f.start):
        pieces += (text[pos : f.start], PLACEHOLDERS[f.kind])
        pos = f.end
    pieces.append(text[pos:])
    return "".join(pieces)


def _check(text: object) -> None:
    if not isinstance(text, str):
        raise InvalidInput(f"entity text: expected a string, got {type(text).__name__}")


# --- candidates -----------------------------------------------------------------------------


def _personal(text: str, limit: int | None, *, luhn: bool = True) -> Iterator[_Found]:
    for m in each(_EMAIL, text, limit):
        yield _Found(m.start(), m.end(), "email", m.group().lower())
    for m in each(_IBAN, text, limit):
        compact = m.group().replace(" ", "").upper()
        if 15 <= len(compact) <= 34 and _iban_ok(compact):
            yield _Found(m.start(), m.end(), "iban", compact)
    for m in each(_CARD, text, limit):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and _card_groups_ok(m.group()) and (not luhn or _luhn_ok(digits)):
            masked = re.sub(r"\d(?=(?:\D*\d){4})", "*", m.group())
            yield _Found(m.start(), m.end(), "card_number", "*" * (len(digits) - 4) + digits[-4:], masked)
    yield from _phones(text, limit)
    for m in each(_POSTCODE, text, limit):
        compact = m.group().replace(" ", "").upper()
        yield _Found(m.start(), m.end(), "postcode", compact[:-3] + " " + compact[-3:])
    yield from _last4(text, limit)


def _phones(text: str, limit: int | None) -> Iterator[_Found]:
    for m in each(_PHONE, text, limit):
        raw = m.group().rstrip(" .(-")
        value = _phone_value(raw)
        if value is not None:
            yield _Found(m.start(), m.start() + len(raw), "phone", value)
    for m in each(_PHONE_NANP, text, limit):
        yield _Found(m.start(), m.end(), "phone", "+1" + re.sub(r"\D", "", m.group()))


def _phone_value(raw: str) -> str | None:
    if any(sep in raw for sep in ("  ", "..", "--", "((", "))")):
        return None
    digits = re.sub(r"\D", "", raw.replace("(0)", ""))
    if raw.startswith("+") and 8 <= len(digits) <= 15:
        return "+" + digits
    if raw.startswith("00") and 8 <= len(digits) - 2 <= 15:
        return "+" + digits[2:]
    if raw.lstrip("(").startswith("0") and len(digits) in (10, 11) and digits[1] != "0":
        return "+44" + digits[1:]
    return None


def _last4(text: str, limit: int | None) -> Iterator[_Found]:
    for m in each(_LAST4, text, limit):
        cue = m["cue"].lower()
        looks_like_year = cue.startswith("end") and m["d"][:2] in ("19", "20")
        if looks_like_year and not _CARD_WORD.search(text, max(0, m.start() - 30), m.start()):
            continue  # "contract ending 2026": a year, not a card
        yield _Found(m.start("d"), m.end("d"), "card_last4", m["d"])


def _ids(text: str, limit: int | None) -> Iterator[_Found]:
    for pattern, kind in ((_TXN, "transaction_id"), (_ORDER, "order_id")):
        for m in each(pattern, text, limit):
            yield _Found(m.start(), m.end(), kind, m.group().upper().replace(" ", "-"))
    for pattern, kind in ((_TXN_CUED, "transaction_id"), (_ORDER_CUED, "order_id")):
        for m in each(pattern, text, limit):
            code = m["id"]
            has_digit = any(c.isdigit() for c in code)
            min_digits_only = 5 if kind == "order_id" else 8  # "order 2000 euros" is an amount
            if has_digit and (not code.isdigit() or len(code) >= min_digits_only):
                yield _Found(m.start("id"), m.end("id"), kind, code.upper())


def _sort_and_account(text: str) -> Iterator[_Found]:
    for m in _SORT_CODE.finditer(text):
        yield _Found(m.start(), m.end(), "sort_code", m.group())
    for m in _ACCOUNT.finditer(text):
        yield _Found(m.start("n"), m.end("n"), "account_number", m["n"])


def _dates(text: str, today: date, limit: int | None) -> Iterator[_Found]:
    for start, end, d in find_dates(text, today=today, limit=limit):
        yield _Found(start, end, "date", d.isoformat())


def _amounts(text: str, limit: int | None) -> Iterator[_Found]:
    for m in each(_AMOUNT_SYMBOL, text, limit):
        yield from _amount(m, m["num"], _SYMBOLS[m["sym"]], m["mult"])
    for m in each(_AMOUNT_CODE, text, limit):
        yield from _amount(m, m["num"], m["code"], m["mult"])
    for m in each(_AMOUNT_AFTER, text, limit):
        unit = (m["unit"] or "").lower()
        if unit == "p" and (m["gap"] or text.startswith(".m", m.end())):
            continue  # "3 p" or "3p.m.": not pence
        currency = m["code"] or _UNITS[unit]
        mult = "grand" if unit == "grand" else m["mult"]
        yield from _amount(
            m, m["num"], currency, mult, scale=Decimal("0.01") if unit in ("p", "pence") else 1
        )
    for m in each(_AMOUNT_WORDS, text, limit):
        if (n := _words_to_int(m["words"])) is not None:
            unit = m["unit"].lower()
            yield from _amount(m, str(n), _UNITS[unit], "grand" if unit == "grand" else None,
                               scale=Decimal("0.01") if unit == "pence" else 1)  # fmt: skip
    for m in each(_AMOUNT_SLANG, text, limit):
        number, currency = _SLANG[m["slang"].lower()]
        yield from _amount(m, number, currency, None)
    for pattern in (_AMOUNT_CUED, _AMOUNT_DECIMAL):
        for m in each(pattern, text, limit):
            yield from _amount(m, m["num"], DEFAULT_CURRENCY, m.groupdict().get("mult"), span="num")


def _amount(m: re.Match[str], number: str, currency: str, mult: str | None, *,
            scale: Decimal | int = 1, span: str | None = None) -> Iterator[_Found]:  # fmt: skip
    value = _to_decimal(number) * _MULTS.get((mult or "").lower(), 1) * scale
    start = m.start(span) if span else m.start()
    end = m.end() if not span or m.groupdict().get("mult") else m.end(span)
    yield _Found(start, end, "amount", f"{value:.2f} {currency}")


def _card_last4_of(text: str, found: list[_Found]) -> list[_Found]:
    """The last four digits of each full card number (overlapping it, by design)."""
    extra = []
    for f in (f for f in found if f.kind == "card_number"):
        start = f.end
        for _ in range(4):
            start = next(i for i in range(start - 1, f.start - 1, -1) if text[i].isdigit())
        extra.append(_Found(start, f.end, "card_last4", f.value[-4:]))
    return extra


def _bare_reply(text: str, found: list[_Found]) -> list[_Found]:
    """A message that is only a number ("40", "it was about 35.50", "4821") is read as an
    amount, and with four digits also as a card's last four: the form asking decides which."""
    m = _BARE.match(text)
    if m is None or any(f.start <= m.start("num") < f.end for f in found):
        return []
    num, start, end = m["num"], m.start("num"), m.end("num")
    extra = [_Found(start, end, "amount", f"{_to_decimal(num):.2f} {DEFAULT_CURRENCY}")]
    if len(num) == 4 and num.isdigit():
        extra.append(_Found(start, end, "card_last4", num))
    return extra


# --- helpers --------------------------------------------------------------------------------


def _resolve(found: list[_Found]) -> list[_Found]:
    """Keep the strongest kind, then the longest span, where spans overlap. Linear in the total
    span length: a byte per character marks what has been taken."""
    taken = bytearray(max((f.end for f in found), default=0))
    kept = []
    for f in sorted(found, key=lambda f: (_RANK[f.kind], f.start - f.end, f.start)):
        if f.end > f.start and 1 not in taken[f.start : f.end]:
            taken[f.start : f.end] = b"\x01" * (f.end - f.start)
            kept.append(f)
    return kept


def _to_decimal(number: str) -> Decimal:
    """ "1,234.56", "1.234,56", "12,50", "1,234" (thousands) -> Decimal. A last separator with
    one or two digits after it is the decimal point; every other separator groups thousands."""
    last = max(number.rfind(","), number.rfind("."))
    if last >= 0 and len(number) - last - 1 in (1, 2):
        return Decimal(re.sub(r"[,.]", "", number[:last]) + "." + number[last + 1 :])
    return Decimal(re.sub(r"[,.]", "", number))


def _words_to_int(words: str) -> int | None:
    total = current = 0
    for token in re.split(r"[\s-]+", words.lower()):
        if token in ("a", "an"):
            current = 1
        elif token == "and":
            continue
        elif token == "hundred":
            current = max(current, 1) * 100
        elif token in ("thousand", "million"):
            total += max(current, 1) * _WORD_VALUES[token]
            current = 0
        elif token in _WORD_VALUES:
            current += _WORD_VALUES[token]
        else:
            return None
    return total + current


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _card_groups_ok(raw: str) -> bool:
    groups = [len(g) for g in re.split(r"[ -]", raw)]
    return len(groups) == 1 or groups[:-1] == [4] * (len(groups) - 1) or groups in ([4, 6, 5], [4, 6, 4])


def _iban_ok(iban: str) -> bool:
    if not iban[:2].isalpha():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
