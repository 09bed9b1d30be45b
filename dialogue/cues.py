"""Short-reply cues the policy needs whatever the model says: yes, no, and "I meant ...".

The model's ``affirm``/``deny`` intents are used when the domain has them; these word lists
cover short replies ("yep", "no thanks") in domains that do not.
"""

from __future__ import annotations

import re

_WORDS = re.compile(r"[a-z']+")
YES_FIRST = {"yes", "yeah", "yep", "yup", "yes please", "sure", "correct", "right", "ok", "okay",
             "exactly", "indeed", "affirmative", "aye", "y"}
YES_PHRASES = {"that's right", "that is right", "it is", "that's it", "that one", "the first one"}
NO_FIRST = {"no", "nope", "nah", "n", "negative", "wrong"}
NO_PHRASES = {"not really", "no thanks", "neither", "none of them", "something else", "not that"}
CORRECTION_FIRST = {"no", "nope", "actually", "sorry", "wait", "oops", "correction", "wrong", "not"}
CORRECTION_PHRASES = ("i meant", "it was", "it's actually", "should be", "should have been", "change it",
                      "not ", "instead")


def _words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def is_yes(text: str) -> bool:
    words = _words(text)
    if not words or len(words) > 6:
        return False
    joined = " ".join(words)
    return words[0] in YES_FIRST and "no" not in words[1:] or any(joined.startswith(p) for p in YES_PHRASES)


def is_no(text: str) -> bool:
    words = _words(text)
    if not words or len(words) > 6:
        return False
    joined = " ".join(words)
    return words[0] in NO_FIRST or any(joined.startswith(p) for p in NO_PHRASES)


def is_correction(text: str) -> bool:
    words = _words(text)
    if not words:
        return False
    joined = " ".join(words)
    return words[0] in CORRECTION_FIRST or any(p in joined for p in CORRECTION_PHRASES)


def normalised(text: str) -> str:
    return " ".join(_words(text))
