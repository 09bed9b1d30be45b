"""KnowledgeIndex with a deterministic bag-of-words embedding (fast); the real encoder is tested
in test_nlu_model.py."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pytest

from agent.errors import InvalidInput
from models.knowledge import KnowledgeIndex

VOCAB = ["contactless", "limit", "open", "hours", "branch", "overdraft", "statement", "pay", "tap", "close"]


def bow(texts: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(texts), len(VOCAB)), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in re.findall(r"[a-z]+", text.lower()):
            if word in VOCAB:
                out[i, VOCAB.index(word)] += 1
    out[:, 0] += 1e-3
    return out


ENTRIES = [
    ("kb_contactless", ["What is the contactless limit?", "max to pay by tap"], "100 pounds."),
    ("kb_hours", ["When are branches open?", "what hours is the branch open"], "9 to 5."),
    ("kb_overdraft", ["How do I get an overdraft?"], "In the app."),
]


def test_search_finds_entry_by_alternative_phrasing() -> None:
    index = KnowledgeIndex.build(ENTRIES, bow)
    hits = index.search("when does the branch close", k=2)
    assert hits[0].entry_id == "kb_hours"
    assert hits[0].question == "When are branches open?" and hits[0].answer == "9 to 5."
    assert hits[0].score >= hits[1].score and -1 <= hits[1].score <= 1
    assert index.search("tap to pay", k=1)[0].entry_id == "kb_contactless"
    assert len(index) == 3


def test_search_vector_matches_search() -> None:
    index = KnowledgeIndex.build(ENTRIES, bow)
    assert index.search_vector(bow(["overdraft please"])[0], k=3) == index.search("overdraft please", k=3)
    assert len(index.search_vector(bow(["x"])[0], k=10)) == 3


def test_bad_input() -> None:
    with pytest.raises(InvalidInput, match=r"entry #0 \('a'\): expected a unique id"):
        KnowledgeIndex.build([("a", [], "answer")], bow)
    with pytest.raises(InvalidInput, match="entry #1"):
        KnowledgeIndex.build([("a", ["q"], "x"), ("a", ["q2"], "y")], bow)
    index = KnowledgeIndex.build(ENTRIES, bow)
    with pytest.raises(InvalidInput, match=r"expected 10 dimensions, got 3"):
        index.search_vector(np.ones(3))
    with pytest.raises(InvalidInput, match="non-empty string"):
        index.search("  ")


def test_empty_index_returns_nothing() -> None:
    assert KnowledgeIndex.build([], bow).search("anything") == ()
