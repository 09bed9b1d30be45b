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

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from agent.messages import OcrLine

MONTHS = {m: i + 1 for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"))}
_MON = r"(JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)[A-Z]*\.?"


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """OCR lines on one visual row, left to right. ``height_px``: the tallest line's height."""

    text: str
    y_px: float
    height_px: float
    confidence: float


def skew_rad(lines: Sequence[OcrLine]) -> float:
    """The median slope of the lines' top edges, in radians (0 for a level picture)."""
    angles = []
    for line in lines:
        if len(line.box) == 4:
            (x0, y0), (x1, y1) = line.box[0], line.box[1]
            if abs(x1 - x0) > 1e-6:
                angles.append(math.atan2(y1 - y0, x1 - x0))
    return float(sorted(angles)[len(angles) // 2]) if angles else 0.0


def _geometry(line: OcrLine, angle: float) -> tuple[float, float, float]:
    """(x_min, y_centre, height) of a line's box in pixels, measured along the text direction
    (the box turned by -``angle``); lines without a box get zeros."""
    if not line.box:
        return 0.0, 0.0, 0.0
    cos, sin = math.cos(angle), math.sin(angle)
    xs = [x * cos + y * sin for x, y in line.box]
    ys = [y * cos - x * sin for x, y in line.box]
    return min(xs), (min(ys) + max(ys)) / 2.0, max(ys) - min(ys)


def group_rows(lines: Sequence[OcrLine]) -> tuple[Row, ...]:
    """Lines whose vertical centres are within half a line height of each other form a row.

    Positions are measured along the text's own direction, so a photo taken at an angle still
    puts "TOTAL" and its amount on one row.
    """
    angle = skew_rad(lines)
    placed = sorted(((*_geometry(line, angle), line) for line in lines), key=lambda g: g[1])
    rows: list[list[tuple[float, float, float, OcrLine]]] = []
    for geo in placed:
        if rows and geo[2] > 0:
            last = rows[-1]
            centre = sum(g[1] for g in last) / len(last)
            height = min(geo[2], max(g[2] for g in last))
            if abs(geo[1] - centre) < 0.5 * height:
                last.append(geo)
                continue
        rows.append([geo])
    out = []
    for row in rows:
        row.sort(key=lambda g: g[0])
        out.append(Row(
            text=" ".join(g[3].text.strip() for g in row),
            y_px=sum(g[1] for g in row) / len(row),
            height_px=max(g[2] for g in row),
            confidence=min(g[3].confidence for g in row),
        ))
    return tuple(out)


# --- amounts and dates ----------------------------------------------------------------------

_AMOUNT = re.compile(
    r"(?<![\d.,])(?P<neg>-)?\s*(?:RM|MYR|USD|GBP|EUR|S\$|\$|S|£|€)?\s*"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<sep>[.,])(?P<dec>\d{2})(?![\d.,]*\d)"
)
_CURRENCY_AMOUNT = re.compile(r"(?:[£$€]|RM|GBP|USD|EUR)\s?(\d{1,3}(?:,\d{3})+|\d+)\.(\d{2})(?!\d)")


def parse_amounts(text: str) -> tuple[Decimal, ...]:
    """Money amounts with two decimals in ``text``, in order; negatives are left out."""
    found = []
    for m in _AMOUNT.finditer(text.upper()):
        if m.group("neg"):
            continue
        integer = m.group("int").replace(",", "") if m.group("sep") == "." else m.group("int")
        if m.group("sep") == "," and "," in integer:
            continue  # "1,234,56" is not an amount
        try:
            found.append(Decimal(f"{integer}.{m.group('dec')}"))
        except InvalidOperation:
            continue
    return tuple(found)


_DATE_PATTERNS = (
    re.compile(r"(?<![\d/.-])(?P<y>(?:19|20)\d{2})[/.-](?P<m>\d{1,2})[/.-](?P<d>\d{1,2})(?!\d)"),
    re.compile(r"(?<![\dA-Z/.])(?P<a>\d{1,2})\s?[/.-]\s?(?P<b>\d{1,2})\s?[/.-]\s?(?P<y>(?:19|20)\d{2}|\d{2}(?=\d{1,2}:\d{2})|\d{2}(?!\d))"),
    re.compile(rf"(?<!\d)(?P<d>\d{{1,2}})\s*[-/ ]?\s*{_MON}\s*[-/ ,]?\s*(?P<y>(?:19|20)\d{{2}}|\d{{2}}(?!\d))"),
    re.compile(rf"\b{_MON}\s*(?P<d>\d{{1,2}})(?:ST|ND|RD|TH)?\s*,?\s*(?P<y>(?:19|20)\d{{2}})(?!\d)"),
)


def _valid(year: int, month: int, day: int) -> str | None:
    if year < 100:
        year += 2000
    if not 1990 <= year <= 2099:
        return None
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return None


def _overlapping(pattern: re.Pattern[str], text: str) -> list[re.Match[str]]:
    """Matches that may overlap ("19-18/01/2018" holds "18/01/2018" after a false start)."""
    found, pos = [], 0
    while (m := pattern.search(text, pos)) is not None:
        found.append(m)
        pos = m.start() + 1
    return found


def parse_dates(text: str, *, day_first: bool = True) -> tuple[str, ...]:
    """Calendar dates in ``text`` as ISO strings, in order of appearance.

    Numeric dates are read day first ("12/01/19" is 12 January 2019) unless that is impossible
    ("12/28/2017" is 28 December); ``day_first=False`` prefers month first.
    """
    upper = text.upper()
    found: list[tuple[int, str]] = []
    for index, pattern in enumerate(_DATE_PATTERNS):
        for m in _overlapping(pattern, upper):
            groups = m.groupdict()
            year = int(groups["y"])
            if index == 1:
                a, b = int(groups["a"]), int(groups["b"])
                first = (a, b) if day_first else (b, a)
                iso = _valid(year, first[1], first[0]) or _valid(year, first[0], first[1])
            elif index == 0:
                iso = _valid(year, int(groups["m"]), int(groups["d"]))
            else:
                month = MONTHS[m.group(1 if index == 3 else 2)[:3]]
                iso = _valid(year, month, int(groups["d"]))
            if iso:
                found.append((m.start(), iso))
    return tuple(iso for _, iso in sorted(found))


# --- receipts -------------------------------------------------------------------------------

_TOTAL = re.compile(r"T[O0]T|AMOUNT\s*DUE|BALANCE\s*DUE|GRAND|PAYABLE")
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
        if cash is None and _CASH.search(upper) and not _TOTAL.search(upper):
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
        if not _TOTAL.search(upper) or _TOTAL_NOT.search(upper):
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
            for candidate in rows[i:i + 2]:
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
    top = [r for r in rows[:top_rows] if len(re.findall(r"[A-Za-z]", r.text)) >= 3 and r.text.lower() != r.text]
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

_ERROR = re.compile(
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
    flagged = [r for r in rows if _ERROR.search(r.text.upper())]
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
    near = sorted({j for r in flagged for j in range(rows.index(r) - 1, rows.index(r) + 2) if 0 <= j < len(rows)})
    for j in near:
        m = _CURRENCY_AMOUNT.search(rows[j].text.upper())
        if m:
            out.append(("amount", f"{Decimal(m.group(1).replace(',', '') + '.' + m.group(2)):.2f}"))
            break
    return tuple(out)


def _headline(rows: Sequence[Row], index: int) -> list[Row]:
    """The headline row, with the rows that continue it when it wraps: set in about the same
    size, right below, starting with a lowercase letter ("Unable to complete" / "transfer")."""
    parts, j = [rows[index]], index + 1
    while j < len(rows) and rows[j].text[:1].islower() and \
            abs(rows[j].height_px - rows[j - 1].height_px) <= 0.3 * rows[j - 1].height_px and \
            rows[j].y_px - rows[j - 1].y_px <= 1.8 * rows[j - 1].height_px:
        parts.append(rows[j])
        j += 1
    return parts


def _paragraph(rows: Sequence[Row], index: int, *, avoid: range = range(0)) -> str:
    """The row at ``index`` joined with the rows above and below set in the same size, close by,
    never reaching into the rows of ``avoid``."""
    def same_block(a: int, b: int) -> bool:
        ra, rb = rows[a], rows[b]
        return a not in avoid and b not in avoid and \
            abs(ra.height_px - rb.height_px) <= 0.25 * max(ra.height_px, rb.height_px) and \
            abs(ra.y_px - rb.y_px) <= 1.8 * max(ra.height_px, rb.height_px)
    start = end = index
    while start > 0 and same_block(start - 1, start):
        start -= 1
    while end + 1 < len(rows) and same_block(end, end + 1):
        end += 1
    return " ".join(r.text for r in rows[start:end + 1])


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
        m = _MASKED.search(row.text.upper()) or _GROUPED.search(row.text.upper()) or _ENDING.search(row.text.upper())
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
        for name, value in (("total", receipt_total(rows)), ("date", first_date(rows, day_first=day_first)),
                            ("merchant", receipt_merchant(rows) if kind == "receipt" else None)):
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
