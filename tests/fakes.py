"""Fakes that satisfy the model Protocols, for testing the runtime and the servers without
training a model. Each fake is small and deterministic; the real parts have their own tests,
and the end-to-end tests (tests/integration/) use the real fine-tuned model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from agent.messages import IntentScore, NluResult, Transcript

# keyword -> intent, checked in order; the first match wins
KEYWORDS: tuple[tuple[str, str], ...] = (
    ("human", "talk_to_human"),
    ("person", "talk_to_human"),
    ("agent please", "talk_to_human"),
    ("lost", "lost_or_stolen_card"),
    ("stolen", "lost_or_stolen_card"),
    ("arrived", "card_not_arrived"),
    ("how long", "ask_how_long"),
    ("dispute", "dispute_charge"),
    ("charged twice", "dispute_charge"),
    ("refund", "refund_request"),
    ("address", "change_address"),
    ("balance", "check_balance"),
    ("close my account", "close_account"),
    ("hello", "greeting"),
    ("hi ", "greeting"),
    ("thank", "thanks"),
    ("bye", "goodbye"),
    ("yes", "affirm"),
    ("no", "deny"),
    ("transfer", "failed_transfer"),
)
NEGATIVE_WORDS = ("furious", "angry", "useless", "terrible", "worst", "hate")


class FakeNlu:
    """Keyword intents with a fixed confidence; 'furious' etc. make the sentiment strongly negative."""

    def __init__(self, labels: Sequence[str] = (), *, confidence: float = 0.9, dim: int = 16) -> None:
        self.labels = tuple(labels) or tuple(sorted({intent for _, intent in KEYWORDS}))
        self.oos_threshold = 0.5
        self.confidence = confidence
        self.dim = dim
        self.calls = 0

    def understand(self, text: str) -> NluResult:
        self.calls += 1
        lowered = f" {text.lower()} "
        intent = next((i for k, i in KEYWORDS if k in lowered), None)
        negative = any(w in lowered for w in NEGATIVE_WORDS)
        sentiment_score = -0.9 if negative else 0.0
        if intent is None:
            return NluResult(
                intent="out_of_scope", confidence=0.2,
                ranking=(IntentScore(intent="out_of_scope", confidence=0.2),),
                oos_score=0.9, sentiment="negative" if negative else "neutral",
                sentiment_score=sentiment_score, emotion="anger" if negative else "neutral",
            )
        runner_up = "refund_request" if intent != "refund_request" else "dispute_charge"
        return NluResult(
            intent=intent,
            confidence=self.confidence,
            ranking=(IntentScore(intent=intent, confidence=self.confidence),
                     IntentScore(intent=runner_up, confidence=(1 - self.confidence) / 2)),
            oos_score=0.05,
            sentiment="negative" if negative else "neutral",
            sentiment_score=sentiment_score,
            emotion="anger" if negative else "neutral",
            emotion_confidence=0.8,
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.lower().encode()).digest()[:4], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)

    def understand_with_embedding(self, text: str) -> tuple[NluResult, np.ndarray]:
        return self.understand(text), self.embed([text])[0]

    def understand_batch(self, texts: Sequence[str]) -> list[NluResult]:
        return [self.understand(t) for t in texts]


class FakeRecognizer:
    """Returns a fixed transcript for any clip."""

    def __init__(self, text: str = "I lost my card") -> None:
        self.text = text

    def transcribe(self, clip, *, with_features: bool = False) -> Transcript:  # type: ignore[no-untyped-def]
        return Transcript(text=self.text, language="en", avg_logprob=-0.2, no_speech_prob=0.01,
                          duration_s=clip.duration_s)
