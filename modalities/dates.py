"""Dates in customer messages, resolved to calendar dates against a given ``today``.

Absolute: ``27/11/2026`` and ``27-11-26`` (day first, the UK order), ``2026-11-27``,
``3rd March``, ``3 March 2026``, ``March 3``, ``Nov 27th``, ``14/10`` (two-digit day and month,
or after "on", "from", "since", "dated"), ``the 3rd``. Relative: ``today``, ``this morning``,
``yesterday``, ``last night``, ``the day before yesterday``, ``tomorrow``, ``3 days ago``,
``a couple of weeks ago``, ``last week`` (7 days before today), ``last month``, ``on Monday``,
``last Friday``, ``next Tuesday``.

Where the year (or month) is not written, the nearest such date to ``today`` is taken, where a
day ahead counts as far as three days back (customers mostly report what already happened: "on
the 12th", said on 4 March, is 12 February; "on 20/03" is 20 March). A bare weekday ("on Monday") is the most recent one, today included; "last
Friday" is the most recent one before today; "next Friday" the first one after today. Impossible
dates (31/02/2026) and fractions or slogans ("3/4 of", "24/7") are not dates.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from datetime import date, timedelta
from itertools import islice

MONTHS = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3, "apr": 4, "april": 4,
    "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7, "aug": 8, "august": 8, "sep": 9,
    "sept": 9, "september": 9, "oct": 10, "october": 10, "nov": 11, "november": 11, "dec": 12,
    "december": 12,
}  # fmt: skip
WEEKDAYS = {
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5,
    "sunday": 6,
}  # fmt: skip
_COUNTS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "a few": 3,
}  # fmt: skip
_FLAGS = re.IGNORECASE | re.ASCII
_MONTH = "(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_ORD = r"(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s+(?P<year>\d{4}))?(?!\d)"
_COUNT = "|".join(sorted((re.escape(k) for k in _COUNTS), key=len, reverse=True))

_ISO = re.compile(r"(?<![\d./-])(?P<y>\d{4})(?P<s>[-/.])(?P<m>\d{1,2})(?P=s)(?P<d>\d{1,2})(?!\d|[-/.]\d)")
_DMY = re.compile(
    r"(?<![\d./-])(?P<d>\d{1,2})(?P<s>[-/.])(?P<m>\d{1,2})(?P=s)(?P<y>\d{4}|\d{2})(?![\d]|[-/.]\d)"
)
_DM = re.compile(
    r"(?P<cue>\b(?:on|from|since|dated|date)\s+)?(?<![\d./-])(?P<d>\d{1,2})/(?P<m>\d{1,2})(?![\d/]|[.-]\d)",
    _FLAGS,
)
_D_MONTH = re.compile(
    r"(?<![\w.,])(?P<d>\d{1,2})" + _ORD + r"(?:\s+of)?\s+" + _MONTH + r"(?![a-z])" + _YEAR, _FLAGS
)
_MONTH_D = re.compile(
    r"\b" + _MONTH + r"\s+(?:the\s+)?(?P<d>\d{1,2})" + _ORD + r"(?![\d:a-z])" + _YEAR, _FLAGS
)
_THE_DAY = re.compile(
    r"\bthe\s+(?P<d>\d{1,2})(?:st|nd|rd|th)\b(?!\s+(?:times?|attempts?|try|tries|calls?|floor|one|party"
    r"|person|payments?|cards?|transactions?|months?|weeks?|years?|days?)\b)", _FLAGS)  # fmt: skip
_RELATIVE = re.compile(
    r"\b(?P<word>the day before yesterday|yesterday|last night|today|tonight|tomorrow"
    r"|this (?:morning|afternoon|evening))\b", _FLAGS)  # fmt: skip
_AGO = re.compile(r"\b(?P<n>\d{1,3}|" + _COUNT + r")\s+(?P<unit>day|week|month|year)s?\s+ago\b", _FLAGS)
_LAST_PERIOD = re.compile(r"\blast\s+(?P<unit>week|month|year)\b", _FLAGS)
_WEEKDAY = re.compile(r"\b(?:(?P<which>last|this|next|on)\s+)?(?P<day>" + "|".join(WEEKDAYS) + r")\b", _FLAGS)

DateSpan = tuple[int, int, date]  # start, end (character offsets), the date


def find_dates(text: str, *, today: date, limit: int | None = None) -> Iterator[DateSpan]:
    """Every date-like span in ``text`` with the date it means; spans may overlap (the caller
    keeps the longest). ``text`` should have ASCII digits (``modalities.text.fold_digits``).
    ``limit``: read at most this many matches of each pattern (None: all)."""
    yield from _numeric(text, today, limit)
    yield from _named(text, today, limit)
    yield from _relative(text, today, limit)


def each(pattern: re.Pattern[str], text: str, limit: int | None) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)``, stopping after ``limit`` matches (None: no limit)."""
    return islice(pattern.finditer(text), limit)


def _numeric(text: str, today: date, limit: int | None) -> Iterator[DateSpan]:
    for m in each(_ISO, text, limit):
        if (d := _make(int(m["y"]), int(m["m"]), int(m["d"]))) is not None:
            yield m.start(), m.end(), d
    for m in each(_DMY, text, limit):
        year = int(m["y"]) + (2000 if len(m["y"]) == 2 else 0)
        if (d := _make(year, int(m["m"]), int(m["d"]))) is not None:
            yield m.start(), m.end(), d
    for m in each(_DM, text, limit):
        if not m["cue"] and (len(m["d"]) < 2 or len(m["m"]) < 2):
            continue  # "3/4 of the price", "24/7": not dates without a cue
        if (d := _nearest(today, int(m["m"]), int(m["d"]))) is not None:
            yield m.start("d"), m.end(), d


def _named(text: str, today: date, limit: int | None) -> Iterator[DateSpan]:
    for pattern in (_D_MONTH, _MONTH_D):
        for m in each(pattern, text, limit):
            month, day = MONTHS[m["month"].lower()], int(m["d"])
            d = _make(int(m["year"]), month, day) if m["year"] else _nearest(today, month, day)
            if d is not None:
                yield m.start(), m.end(), d
    for m in each(_THE_DAY, text, limit):
        if (d := _nearest_day_of_month(today, int(m["d"]))) is not None:
            yield m.start(), m.end(), d


def _relative(text: str, today: date, limit: int | None) -> Iterator[DateSpan]:
    offsets = {"the day before yesterday": -2, "yesterday": -1, "last night": -1, "tomorrow": 1}
    for m in each(_RELATIVE, text, limit):
        yield m.start(), m.end(), today + timedelta(days=offsets.get(m["word"].lower(), 0))
    for m in each(_AGO, text, limit):
        n = int(m["n"]) if m["n"].isdigit() else _COUNTS[" ".join(m["n"].lower().split())]
        if (d := _back(today, m["unit"].lower(), n)) is not None:
            yield m.start(), m.end(), d
    for m in each(_LAST_PERIOD, text, limit):
        if (d := _back(today, m["unit"].lower(), 1)) is not None:
            yield m.start(), m.end(), d
    for m in each(_WEEKDAY, text, limit):
        which = (m["which"] or "").lower()
        start = m.start("day") if which in ("", "on") else m.start()
        yield start, m.end(), _weekday(today, WEEKDAYS[m["day"].lower()], which)


def _make(year: int, month: int, day: int) -> date | None:
    if not 1900 <= year <= 2100:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _nearest(today: date, month: int, day: int) -> date | None:
    """The date with this month and day nearest ``today`` (see ``_distance``)."""
    options = [d for y in (today.year - 1, today.year, today.year + 1) if (d := _make(y, month, day))]
    return min(options, key=lambda d: _distance(today, d), default=None)


def _nearest_day_of_month(today: date, day: int) -> date | None:
    options = []
    for shift in (-1, 0, 1):
        year, month = divmod(today.year * 12 + today.month - 1 + shift, 12)
        if (d := _make(year, month + 1, day)) is not None:
            options.append(d)
    return min(options, key=lambda d: _distance(today, d), default=None)


def _distance(today: date, d: date) -> tuple[int, bool]:
    """How far ``d`` is from ``today`` for choosing a year or month: days ahead count triple."""
    days = (d - today).days
    return (3 * days if days > 0 else -days), days > 0


def _back(today: date, unit: str, n: int) -> date | None:
    if unit in ("day", "week"):
        days = n * (7 if unit == "week" else 1)
        return today - timedelta(days=days) if days <= 36_500 else None
    months = n * (12 if unit == "year" else 1)
    year, month = divmod(today.year * 12 + today.month - 1 - months, 12)
    if year < 1900:
        return None
    return date(year, month + 1, min(today.day, calendar.monthrange(year, month + 1)[1]))


def _weekday(today: date, weekday: int, which: str) -> date:
    back = (today.weekday() - weekday) % 7
    if which == "last":
        return today - timedelta(days=back or 7)
    if which == "next":
        return today + timedelta(days=(weekday - today.weekday()) % 7 or 7)
    if which == "this":
        return today + timedelta(days=weekday - today.weekday())
    return today - timedelta(days=back)
