"""A sentence-embedding index over the knowledge base: cosine similarity, best phrasing per entry.

Every phrasing of an entry (its question and its alternatives) is embedded; an entry's score for
a query is the best cosine similarity over its phrasings. The embedding function is the NLU
model's ``embed`` (see docs/nlu.md for why the fine-tuned encoder's space is used).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from agent.errors import InvalidInput
from agent.messages import KnowledgeHit

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Entry:
    entry_id: str
    question: str
    answer: str


class KnowledgeIndex:
    """Exact cosine search over (n_phrasings, d) L2-normalised embeddings held in memory."""

    def __init__(self, entries: Sequence[_Entry], vectors: np.ndarray, owner: np.ndarray, embed: Embed) -> None:
        self._entries = tuple(entries)
        self._vectors = vectors  # (n_phrasings, d) float32, unit rows
        self._owner = owner  # (n_phrasings,) entry index of each phrasing
        self._embed = embed

    @classmethod
    def build(cls, entries: Sequence[tuple[str, Sequence[str], str]], embed: Embed) -> KnowledgeIndex:
        """``entries``: ``(entry_id, [question, *alternatives], answer)``."""
        items, phrasings, owner, seen = [], [], [], set()
        for i, entry in enumerate(entries):
            if not isinstance(entry, (tuple, list)) or len(entry) != 3:
                raise InvalidInput(f"knowledge entry #{i}: expected (entry_id, [question, ...], answer)")
            entry_id, questions, answer = entry
            if isinstance(questions, str):
                questions = [questions]
            questions = [q.strip() for q in questions if isinstance(q, str) and q.strip()]
            if not entry_id or entry_id in seen or not questions or not str(answer).strip():
                raise InvalidInput(f"knowledge entry #{i} ({entry_id!r}): expected a unique id, at "
                                   "least one non-empty question and a non-empty answer")
            seen.add(entry_id)
            items.append(_Entry(entry_id=str(entry_id), question=questions[0], answer=str(answer)))
            phrasings += questions
            owner += [len(items) - 1] * len(questions)
        vectors = _unit(np.asarray(embed(phrasings), dtype=np.float32)) if phrasings else np.zeros((0, 1), np.float32)
        if len(vectors) != len(phrasings):
            raise ValueError(f"embed returned {len(vectors)} vectors for {len(phrasings)} texts")
        return cls(items, vectors, np.asarray(owner, dtype=np.int64), embed)

    def __len__(self) -> int:
        return len(self._entries)

    def search_vector(self, vector: np.ndarray, *, k: int = 3) -> tuple[KnowledgeHit, ...]:
        """The ``k`` best entries for a (d,) query embedding, best first."""
        if not self._entries or k <= 0:
            return ()
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        if v.shape[0] != self._vectors.shape[1]:
            raise InvalidInput(f"query vector: expected {self._vectors.shape[1]} dimensions, got {v.shape[0]}")
        sims = self._vectors @ _unit(v[None, :])[0]
        best = np.full(len(self._entries), -np.inf, dtype=np.float32)
        np.maximum.at(best, self._owner, sims)
        top = np.argsort(-best)[:k]
        return tuple(
            KnowledgeHit(entry_id=self._entries[i].entry_id, question=self._entries[i].question,
                         answer=self._entries[i].answer, score=float(np.clip(best[i], -1.0, 1.0)))
            for i in top
        )

    def search(self, text: str, *, k: int = 3) -> tuple[KnowledgeHit, ...]:
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("knowledge search: expected a non-empty string")
        return self.search_vector(self._embed([text])[0], k=k)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
