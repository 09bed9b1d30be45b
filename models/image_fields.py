"""Key fields read from the text OCR found in an image.

Receipts: ``total`` (``"12.50"``), ``date`` (ISO ``"2026-11-27"``), ``merchant``. Error screens:
``error_message`` (the headline, ``"Transfer failed"``), ``error_detail``, ``error_code``
(``"E102"``), ``amount``. Cards: ``card_last4`` and ``expiry`` (``"MM/YY"``). Every extractor
works on visual rows (OCR lines whose boxes share a baseline, left to right), so a label and its
value printed apart on one row ("Total:" ... "9.00") are read together. Rules, no model: they
are cheap, explainable, and measured on the shared receipts by ``benchmarks/bench_image.py``.
Full card numbers are never returned: ``mask_card_numbers`` hides all but the last four digits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

from agent.messages import OcrLine
from models.image_text import CURRENCY_AMOUNT, Row, group_rows, parse_amounts, parse_dates

__all__ = [  # the text helpers are re-exported: callers read fields and values from one place
    "CURRENCY_AMOUNT",
    "Row",
    "card_fields",
    "error_fields",
    "group_rows",
    "mask_card_numbers",
    "parse_amounts",
    "parse_dates",
    "read_fields",
    "receipt_merchant",
    "receipt_total",
]

# --- receipts -------------------------------------------------------------------------------

TOTAL_LABEL = re.compile(r"T[O0]T|AMOUNT\s*DUE|BALANCE\s*DUE|GRAND|PAYABLE")
_TOTAL_STRONG = re.compile(
    r"ROUND|NETT?\s*T[O0]TAL|GRAND|T[O0]TAL\s*AMOUNT|AMOUNT\s*DUE|T[O0]TAL\s*DUE|PAYABLE|T[O0]TAL\s*\(?\s*INCL"
    r"|T[O0]TAL\s*SALES"
)
_TOTAL_NOT = re.compile(
    r"SUB|QTY|QUANTITY|ITEM|EXCL|DISC|SAVING|INCLUDES|T[O0]TAL\s*(?:TAX|GST|VAT)|(?:TAX|GST|VAT)\s*T[O0]TAL"
    r"|POINT|TENDER|CHANGE|ADJ|ROUNDING(?!.*T[O0]TAL)"
)
_CASH = re.compile(r"\bCASH\b|TENDERED|PAID")
_CHANGE = re.compile(r"CHANGE|BALANCE(?!\s*DUE)")


def _amount_after_label(rows: Sequence[Row], index: int) -> tuple[Decimal, ...]:
    """Amounts on the label's row, else on the next row when that row holds only an amount."""
    amounts = parse_amounts(rows[index].text)
    if amounts:
        return amounts
    if index + 1 < len(rows):
        following = rows[index + 1].text
        if not re.search(r"[A-Za-z]{3,}", following):
            return parse_amounts(following)
    return ()


def _cash_minus_change(rows: Sequence[Row]) -> Decimal | None:
    cash = change = None
    for i, row in enumerate(rows):
        upper = row.text.upper()
        if cash is None and _CASH.search(upper) and not TOTAL_LABEL.search(upper):
            found = _amount_after_label(rows, i)
            cash = found[-1] if found else None
        elif cash is not None and change is None and _CHANGE.search(upper):
            found = _amount_after_label(rows, i)
            change = found[-1] if found else None
    if cash is None or change is None or change > cash:
        return None
    return cash - change


ROUNDING_TOLERANCE = Decimal("0.05")  # cash rounding; a total this close to cash - change is that


def receipt_total(rows: Sequence[Row]) -> str | None:
    """The amount paid: the best "total" label's amount (rounded/nett/grand over plain, larger
    over smaller), agreeing with cash minus change when the receipt shows both."""
    candidates: list[tuple[int, Decimal]] = []
    for i, row in enumerate(rows):
        upper = row.text.upper()
        if not TOTAL_LABEL.search(upper) or _TOTAL_NOT.search(upper):
            continue
        priority = 2 if _TOTAL_STRONG.search(upper) else 1
        candidates.extend((priority, amount) for amount in _amount_after_label(rows, i))
    paid = _cash_minus_change(rows)
    if candidates:
        best = max(candidates)[1]
        if paid is not None and abs(paid - best) <= ROUNDING_TOLERANCE:  # rounded, or misread by a digit
            return f"{paid:.2f}"
        return f"{best:.2f}"
    return f"{paid:.2f}" if paid is not None and paid > 0 else None


def first_date(rows: Sequence[Row], *, day_first: bool = True) -> str | None:
    """The date on a row labelled "date" (or the row after the label), else the first date."""
    for i, row in enumerate(rows):
        if re.search(r"DATE|TARIKH", row.text.upper()):
            for candidate in rows[i : i + 2]:
                found = parse_dates(candidate.text, day_first=day_first)
                if found:
                    return found[0]
    for row in rows:
        found = parse_dates(row.text, day_first=day_first)
        if found:
            return found[0]
    return None


_COMPANY = re.compile(
    r"SDN\.?\s*BHD|\bBHD\b|\bS/B\b|ENTERPRISE|TRADING|\bLTD\b|LIMITED|\bLLC\b|\bINC\b|\bPLC\b|\bCO\b\.?"
    r"|COMPANY|MART\b|STORE|SHOP|RESTAURANT|RESTORAN|CAFE|HARDWARE|STATIONERY|MARKET|PHARMACY|BAKERY"
    r"|GALLERY|MOTOR|PETRO|HOTEL|KEDAI|PERNIAGAAN"
)
_NOT_MERCHANT = re.compile(r"RECEIPT|INVOICE|\bTAX\b|\bBILL\b|\bTEL\b|\bFAX\b|WELCOME|\bGST\b|DATE")


def receipt_merchant(rows: Sequence[Row], *, top_rows: int = 8) -> str | None:
    """The shop's name: a company-like row near the top, else the first wordy row there.

    All-lowercase rows are skipped: printed shop names are capitalised, handwriting often is not.
    """
    top = [
        r for r in rows[:top_rows] if len(re.findall(r"[A-Za-z]", r.text)) >= 3 and r.text.lower() != r.text
    ]
    for row in top:
        if _COMPANY.search(row.text.upper()) and not _NOT_MERCHANT.search(row.text.upper()):
            return _clean(row.text)
    wordy = [r for r in top if not _NOT_MERCHANT.search(r.text.upper()) and _letter_share(r.text) >= 0.6]
    return _clean(wordy[0].text) if wordy else None


def _letter_share(text: str) -> float:
    chars = [c for c in text if not c.isspace()]
    return sum(c.isalpha() for c in chars) / len(chars) if chars else 0.0


def _clean(text: str, *, limit: int = 120) -> str:
    return re.sub(r"\s+", " ", text).strip(" .:;,-")[:limit]


# --- error screens --------------------------------------------------------------------------

ERROR_WORDS = re.compile(
    r"FAIL|ERROR|DECLINED|UNABLE|COULD\s*N[O']?T|CAN\s*N[O']?T|CAN'T|COULDN'T|UNSUCCESSFUL|DENIED"
    r"|INVALID|INSUFFICIENT|EXPIRED|BLOCKED|REJECTED|TIMED\s*OUT|WENT\s*WRONG|NOT\s*(?:BE\s*)?COMPLETED"
    r"|PROBLEM|UNAVAILABLE|SUSPENDED|NOT\s*AUTHORI[SZ]ED|LIMIT\s*EXCEEDED|EXCEEDS"
)
_ERROR_CODE = re.compile(
    r"(?:ERROR|ERR|CODE|REF(?:ERENCE)?)\s*(?:CODE|NO\.?|NUMBER|ID)?\s*[:#.]?\s*"
    r"(?P<code>(?=[A-Z0-9_-]*\d)[A-Z0-9][A-Z]{0,3}[-_]?\d{2,6}[A-Z]?)\b"
)
_BARE_CODE = re.compile(r"[(\[]\s*(?P<code>[A-Z]{1,4}[-_]?\d{2,6})\s*[)\]]")
_CODE_TOKEN = re.compile(r"\b(?P<code>ERR[-_]?\d{2,6}|E\d{3,5})\b")


def error_fields(rows: Sequence[Row]) -> tuple[tuple[str, str], ...]:
    """``error_message`` (the tallest row saying something failed), ``error_detail``,
    ``error_code`` and a currency ``amount`` on the error rows."""
    flagged = [r for r in rows if ERROR_WORDS.search(r.text.upper())]
    out: list[tuple[str, str]] = []
    code = _error_code(rows)
    messages = [r for r in flagged if not _ERROR_CODE.fullmatch(r.text.upper().strip())]
    if messages:
        headline = max(messages, key=lambda r: (r.height_px, -r.y_px))
        start = rows.index(headline)
        title_rows = _headline(rows, start)
        out.append(("error_message", _clean(_strip_code(" ".join(r.text for r in title_rows)))))
        details = [r for r in messages if r not in title_rows]
        if details:
            detail = _paragraph(rows, rows.index(details[0]), avoid=range(start, start + len(title_rows)))
            out.append(("error_detail", _clean(_strip_code(detail), limit=200)))
    if code and (messages or re.search(r"ERR", " ".join(r.text.upper() for r in rows))):
        out.append(("error_code", code))
    near = sorted(
        {j for r in flagged for j in range(rows.index(r) - 1, rows.index(r) + 2) if 0 <= j < len(rows)}
    )
    for j in near:
        m = CURRENCY_AMOUNT.search(rows[j].text.upper())
        if m:
            out.append(("amount", f"{Decimal(m.group(1).replace(',', '') + '.' + m.group(2)):.2f}"))
            break
    return tuple(out)


def _headline(rows: Sequence[Row], index: int) -> list[Row]:
    """The headline row, with the rows that continue it when it wraps: set in about the same
    size, right below, starting with a lowercase letter ("Unable to complete" / "transfer")."""
    parts, j = [rows[index]], index + 1
    while (
        j < len(rows)
        and rows[j].text[:1].islower()
        and abs(rows[j].height_px - rows[j - 1].height_px) <= 0.3 * rows[j - 1].height_px
        and rows[j].y_px - rows[j - 1].y_px <= 1.8 * rows[j - 1].height_px
    ):
        parts.append(rows[j])
        j += 1
    return parts


def _paragraph(rows: Sequence[Row], index: int, *, avoid: range = range(0)) -> str:
    """The row at ``index`` joined with the rows above and below set in the same size, close by,
    never reaching into the rows of ``avoid``."""

    def same_block(a: int, b: int) -> bool:
        ra, rb = rows[a], rows[b]
        return (
            a not in avoid
            and b not in avoid
            and abs(ra.height_px - rb.height_px) <= 0.25 * max(ra.height_px, rb.height_px)
            and abs(ra.y_px - rb.y_px) <= 1.8 * max(ra.height_px, rb.height_px)
        )

    start = end = index
    while start > 0 and same_block(start - 1, start):
        start -= 1
    while end + 1 < len(rows) and same_block(end, end + 1):
        end += 1
    return " ".join(r.text for r in rows[start : end + 1])


def _error_code(rows: Sequence[Row]) -> str | None:
    for pattern in (_ERROR_CODE, _BARE_CODE, _CODE_TOKEN):
        for row in rows:
            m = pattern.search(row.text.upper())
            if m:
                return m.group("code")
    return None


def _strip_code(text: str) -> str:
    """The headline without a trailing "(E102)" or "Error code: E102"."""
    text = re.sub(r"[(\[]\s*[A-Za-z]{1,4}[-_]?\d{2,6}\s*[)\]]", "", text)
    return re.sub(r"(?i)\b(?:error|err)?\s*code\s*[:#]?\s*[A-Z]{0,4}[-_]?\d{2,6}[A-Z]?\b", "", text).strip()


# --- cards ----------------------------------------------------------------------------------

_PAN = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_MASKED = re.compile(r"(?:[*•xX#·.●]{2,}[\s-]*){1,3}(?P<last4>\d{4})(?!\d)")
_GROUPED = re.compile(r"(?<!\d)\d{4}[ -]\d{4}[ -]\d{4}[ -](?P<last4>\d{4})(?!\d)")
_ENDING = re.compile(r"ENDING(?:\s*IN)?\s*[:#]?\s*(?P<last4>\d{4})(?!\d)")
_EXPIRY = re.compile(r"(?<![\d/])(?P<m>0[1-9]|1[0-2])\s?/\s?(?P<y>\d{2}|20\d{2})(?![\d/])")
_EXPIRY_LABEL = re.compile(r"VALID|THRU|EXP|GOOD|UNTIL")


def mask_card_numbers(text: str) -> str:
    """Replace 13-19 digit card numbers with ``•••• 1234`` (the last four kept)."""

    def mask(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        return f"•••• {digits[-4:]}" if 13 <= len(digits) <= 19 else m.group(0)

    return _PAN.sub(mask, text)


_FOUR_DIGITS = re.compile(r"(?<![\d/])\d{4}(?![\d/])")


def card_fields(rows: Sequence[Row], *, on_card: bool) -> tuple[tuple[str, str], ...]:
    """``card_last4`` from a masked, grouped or "ending in" number (on a card, also a lone group of
    four digits: OCR drops the mask dots); ``expiry`` as MM/YY (unlabelled only on a card)."""
    out: list[tuple[str, str]] = []
    last4 = None
    for row in rows:
        m = (
            _MASKED.search(row.text.upper())
            or _GROUPED.search(row.text.upper())
            or _ENDING.search(row.text.upper())
        )
        if m:
            last4 = m.group("last4")
            break
    if last4 is None and on_card:
        groups = next((found for row in rows if (found := _FOUR_DIGITS.findall(row.text))), [])
        last4 = groups[-1] if groups else None
    if last4:
        out.append(("card_last4", last4))
    for i, row in enumerate(rows):
        upper = row.text.upper()
        labelled = _EXPIRY_LABEL.search(upper) or (i > 0 and _EXPIRY_LABEL.search(rows[i - 1].text.upper()))
        m = _EXPIRY.search(upper)
        if m and (labelled or on_card):
            out.append(("expiry", f"{m.group('m')}/{m.group('y')[-2:]}"))
            break
    return tuple(out)


# --- all together ---------------------------------------------------------------------------


def read_fields(
    lines: Sequence[OcrLine], *, kind: str | None = None, day_first: bool = True
) -> tuple[tuple[str, str], ...]:
    """Key fields for an image of ``kind`` (None: try every extractor) as (name, value) pairs."""
    rows = group_rows(lines)
    if not rows:
        return ()
    out: list[tuple[str, str]] = []
    if kind in (None, "receipt"):
        for name, value in (
            ("total", receipt_total(rows)),
            ("date", first_date(rows, day_first=day_first)),
            ("merchant", receipt_merchant(rows) if kind == "receipt" else None),
        ):
            if value:
                out.append((name, value))
    if kind in ("document", "screenshot"):
        found = first_date(rows, day_first=day_first)
        if found:
            out.append(("date", found))
    if kind != "receipt":
        out.extend(error_fields(rows))
    out.extend(card_fields(rows, on_card=kind == "card"))
    names = set()
    return tuple(pair for pair in out if not (pair[0] in names or names.add(pair[0])))
