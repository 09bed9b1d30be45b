"""Text normalisation: the one shape every typed or transcribed message takes before NLU.

``normalize_text`` is the boundary check for message text (channels call it with the server's
``max_text_chars``). The helpers below it are pure and length-aware, for the entity extractor,
log lines and de-duplication.
"""

from __future__ import annotations

import re
import unicodedata

from agent.errors import InvalidInput

# Format characters that hide or reorder text (zero-width space, BOM, soft hyphen, word joiner,
# bidi embeddings, overrides and isolates). Zero-width (non-)joiners stay: emoji and some
# scripts need them.
_INVISIBLE = "\u00ad\u200b\u2060\ufeff\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}]")
# C0/C1 controls (tabs and newlines included: they become spaces) and lone surrogates, which
# cannot be encoded as UTF-8 and would fail later in Redis or JSON.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SPACE_RE = re.compile(r"\s+")
_NON_ASCII_DIGIT_RE = re.compile(r"(?![0-9])\d")  # str patterns: \d is every Unicode Nd digit
_PRECHECK_FACTOR = 4  # NFKC and whitespace collapse rarely change length more than this


def normalize_text(text: str, *, max_chars: int) -> str:
    """Return ``text`` as NFKC, without control or invisible characters, with each run of
    whitespace (newlines included) collapsed to one space and the ends trimmed.

    Raises ``InvalidInput`` when ``text`` is not a ``str``, is empty after normalisation, or is
    longer than ``max_chars`` characters (counted after normalisation, so padding does not count;
    input far over the limit is refused before any work is done on it).
    """
    if not isinstance(text, str):
        raise InvalidInput(f"message text: expected a string, got {type(text).__name__}")
    if not isinstance(max_chars, int) or isinstance(max_chars, bool) or max_chars <= 0:
        raise ValueError(f"max_chars must be a positive int, got {max_chars!r}")
    if len(text) > _PRECHECK_FACTOR * max_chars + 1024:
        raise _too_long(len(text), max_chars)
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE_RE.sub("", text)
    text = _CONTROL_RE.sub(" ", text)
    text = _SPACE_RE.sub(" ", text).strip()
    if not text:
        raise InvalidInput("message text is empty")
    if len(text) > max_chars:
        raise _too_long(len(text), max_chars)
    return text


def _too_long(n_chars: int, max_chars: int) -> InvalidInput:
    return InvalidInput(f"message text is {n_chars:,} characters; the limit is {max_chars:,}")


def fold_digits(text: str) -> str:
    """Replace every Unicode decimal digit (Arabic-Indic, Devanagari, fullwidth...) with its
    ASCII digit. One character for one, so offsets into the result are offsets into ``text``."""
    if text.isascii():
        return text
    return _NON_ASCII_DIGIT_RE.sub(lambda m: str(unicodedata.decimal(m.group())), text)


def fold_for_matching(text: str) -> str:
    """A key for comparing messages loosely: NFKC, case-folded, accents removed, punctuation
    dropped, whitespace collapsed. "Café, PLEASE!" and "cafe please" give the same key."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[^\w\s]", " ", unicodedata.normalize("NFKC", text))
    return _SPACE_RE.sub(" ", text).strip()


def preview(text: str, *, max_chars: int = 60) -> str:
    """``text`` cut to at most ``max_chars`` characters, ending in an ellipsis when cut.
    For DEBUG logs only, and only after ``modalities.entities.redact``."""
    if max_chars < 2:
        raise ValueError(f"max_chars must be >= 2, got {max_chars}")
    return text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "\u2026"
