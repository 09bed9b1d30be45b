"""Text geometry and values in OCR output: visual rows, money amounts, calendar dates.

``group_rows`` turns OCR lines into rows (lines sharing a baseline, left to right, measured
along the text's own slope); ``parse_amounts`` and ``parse_dates`` read normalised values
(``Decimal("12.50")``, ``"2026-11-27"``) from OCR text, tolerant of what OCR does to spacing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from agent.messages import OcrLine

MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    )
}
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
        out.append(
            Row(
                text=" ".join(g[3].text.strip() for g in row),
                y_px=sum(g[1] for g in row) / len(row),
                height_px=max(g[2] for g in row),
                confidence=min(g[3].confidence for g in row),
            )
        )
    return tuple(out)


# --- amounts and dates ----------------------------------------------------------------------

_AMOUNT = re.compile(
    r"(?<![\d.,])(?P<neg>-)?\s*(?:RM|MYR|USD|GBP|EUR|S\$|\$|S|£|€)?\s*"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<sep>[.,])(?P<dec>\d{2})(?![\d.,]*\d)"
)
CURRENCY_AMOUNT = re.compile(r"(?:[£$€]|RM|GBP|USD|EUR)\s?(\d{1,3}(?:,\d{3})+|\d+)\.(\d{2})(?!\d)")


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
    re.compile(
        r"(?<![\dA-Z/.])(?P<a>\d{1,2})\s?[/.-]\s?(?P<b>\d{1,2})\s?[/.-]\s?(?P<y>(?:19|20)\d{2}|\d{2}(?=\d{1,2}:\d{2})|\d{2}(?!\d))"
    ),
    re.compile(
        rf"(?<!\d)(?P<d>\d{{1,2}})\s*[-/ ]?\s*{_MON}\s*[-/ ,]?\s*(?P<y>(?:19|20)\d{{2}}|\d{{2}}(?!\d))"
    ),
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
