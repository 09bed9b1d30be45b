"""Every value that crosses a stage boundary.

Frozen, keyword-only dataclasses (the shape of whisper's ``DecodingResult``). Sequences are
tuples; to change a message make a new one with ``dataclasses.replace``. Arrays inside
(``numpy.ndarray``) are treated as read-only. This module imports neither torch nor any model
code, so ``dialogue/`` can use it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:  # PIL is only needed for type checking here
    from PIL import Image

ChannelKind = Literal["api", "web_chat", "voice", "rasa", "rest", "cli"]
Sentiment = Literal["negative", "neutral", "positive"]
SENTIMENTS: tuple[Sentiment, ...] = ("negative", "neutral", "positive")
EMOTIONS: tuple[str, ...] = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
ImageKind = Literal["receipt", "screenshot", "card", "product_photo", "document", "other"]
IMAGE_KINDS: tuple[str, ...] = ("receipt", "screenshot", "card", "product_photo", "document", "other")
NluPath = Literal["text", "fusion", "rules", "none"]


# --- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioClip:
    """Mono audio. ``samples``: float32, shape (n_samples,), range [-1, 1]."""

    samples: np.ndarray
    sample_rate_hz: int

    @property
    def duration_s(self) -> float:
        return float(len(self.samples)) / float(self.sample_rate_hz)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageInput:
    """A checked upload: RGB, EXIF orientation applied, metadata stripped."""

    rgb: Image.Image
    sha256: str  # hex digest of the upload; the runtime re-keys it to the stored (re-encoded) bytes
    source_format: str  # "JPEG" | "PNG" | "WEBP" | "GIF"
    width_px: int
    height_px: int
    n_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UserTurn:
    """One thing a customer said, typed, showed or keyed in."""

    conversation_id: str
    channel: ChannelKind
    text: str | None = None
    audio: AudioClip | None = None
    image: ImageInput | None = None
    dtmf: str | None = None  # keys pressed on a phone, e.g. "0"
    user_id: str | None = None  # keys the customer profile; hashed phone number on calls
    metadata: tuple[tuple[str, str], ...] = ()


# --- what the models make of it -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Transcript:
    text: str
    language: str
    avg_logprob: float  # mean token log-probability of the decoded text
    no_speech_prob: float  # Whisper's probability that the clip held no speech
    duration_s: float
    low_confidence: bool = False  # the policy asks the caller to repeat when set
    features: np.ndarray | None = None  # encoder output, shape (n_frames, d_model), float32


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageEmbedding:
    vector: np.ndarray  # float32, shape (d,)
    labels: tuple[tuple[str, float], ...] = ()  # top ImageNet labels with probabilities


@dataclass(frozen=True, slots=True, kw_only=True)
class OcrLine:
    text: str
    confidence: float
    box: tuple[tuple[float, float], ...]  # corner points in pixels, clockwise from top-left


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageAnalysis:
    """What was seen in an uploaded image."""

    sha256: str
    kind: str  # one of IMAGE_KINDS
    kind_confidence: float
    labels: tuple[tuple[str, float], ...] = ()
    ocr_lines: tuple[OcrLine, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()  # e.g. ("total", "12.50"), ("error_code", "E102")
    embedding: np.ndarray | None = None  # float32, shape (d,)
    ocr: str = "read"  # "read" | "skipped" (a kind whose text nothing reads) | "off" (no OCR configured)

    @property
    def ocr_text(self) -> str:
        return "\n".join(line.text for line in self.ocr_lines)

    def field(self, name: str) -> str | None:
        return next((v for k, v in self.fields if k == name), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Entity:
    kind: str  # "amount" | "currency" | "date" | "card_last4" | "transaction_id" | "order_id" | "email" | "phone" | ...
    value: str  # normalised: "12.50 GBP", "2026-11-27", "4821"
    text: str  # the span as written
    start: int
    end: int


@dataclass(frozen=True, slots=True, kw_only=True)
class IntentScore:
    intent: str
    confidence: float


@dataclass(frozen=True, slots=True, kw_only=True)
class NluResult:
    intent: str
    confidence: float  # calibrated probability of ``intent``
    ranking: tuple[IntentScore, ...] = ()  # best first, at least the top 3 where available
    oos_score: float = 0.0  # in [0, 1]; high means the message fits no known intent
    sentiment: Sentiment = "neutral"
    sentiment_score: float = 0.0  # in [-1, 1]
    emotion: str = "neutral"
    emotion_confidence: float = 0.0
    entities: tuple[Entity, ...] = ()
    path: NluPath = "text"  # which model answered
    # the fusion path with a picture: whether it read the picture (False: its router judged the
    # picture irrelevant to what was said, and the words answered alone); None otherwise
    picture_used: bool | None = None

    def second(self) -> IntentScore | None:
        return self.ranking[1] if len(self.ranking) > 1 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeHit:
    entry_id: str
    question: str
    answer: str
    score: float  # cosine similarity in [-1, 1]


# --- decisions ------------------------------------------------------------------------------


class HandoffReason(str, enum.Enum):
    USER_ASKED = "user_asked"
    LOW_CONFIDENCE = "low_confidence"
    NEGATIVE_SENTIMENT = "negative_sentiment"
    SENSITIVE_INTENT = "sensitive_intent"
    REPEATED_FAILURE = "repeated_failure"
    UNHEARD = "unheard"  # speech could not be understood, repeatedly
    DEPENDENCY_DOWN = "dependency_down"
    RASA_ACTION = "rasa_action"  # a Rasa assistant asked for it


AnswerKind = Literal["answer", "clarify", "knowledge"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    text: str
    kind: AnswerKind = "answer"
    intent: str | None = None
    reason: str = ""  # why the policy chose this, e.g. "form dispute_charge asks amount"
    buttons: tuple[str, ...] = ()  # quick replies, e.g. the two intents of a clarification
    image_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Handoff:
    reason: HandoffReason
    summary: str  # what the human agent reads first
    text: str  # what the customer is told
    handoff_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Silence:
    """No bot reply: a human agent owns the conversation."""

    reason: str = "human_mode"


PolicyDecision = Answer | Handoff | Silence


def decision_kind(decision: PolicyDecision) -> str:
    """``answer | clarify | knowledge | handoff | silent``: the value the API reports."""
    match decision:
        case Answer(kind=kind):
            return kind
        case Handoff():
            return "handoff"
        case Silence():
            return "silent"
    raise TypeError(f"not a policy decision: {type(decision).__name__}")


def reply_text(decision: PolicyDecision) -> str | None:
    match decision:
        case Answer(text=text) | Handoff(text=text):
            return text
        case _:
            return None


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnResult:
    """What ``Agent.handle_turn`` returns to a channel."""

    conversation_id: str
    turn_index: int  # 0-based index of the user's turn in the conversation
    decision: PolicyDecision
    nlu: NluResult | None
    transcript: Transcript | None = None
    image: ImageAnalysis | None = None
    knowledge: KnowledgeHit | None = None
    latency_ms: float = 0.0
