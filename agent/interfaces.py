"""Protocols for the pluggable parts. Test fakes satisfy them without inheriting.

Model calls are synchronous (torch, onnxruntime, CTranslate2); the runtime moves them off the
event loop with ``asyncio.to_thread``. The dialogue store's protocol lives with the stores
(``dialogue/stores/base.py``) because it speaks in dialogue state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from agent.messages import (
    AudioClip,
    ImageAnalysis,
    ImageEmbedding,
    ImageInput,
    KnowledgeHit,
    NluResult,
    OcrLine,
    PolicyDecision,
    Transcript,
    UserTurn,
)


@runtime_checkable
class SpeechRecognizer(Protocol):
    def transcribe(self, clip: AudioClip, *, with_features: bool = False) -> Transcript: ...


@runtime_checkable
class SpeechSynthesizer(Protocol):
    def synthesize(self, text: str) -> AudioClip: ...


@runtime_checkable
class ImageEncoder(Protocol):
    def encode(self, image: ImageInput) -> ImageEmbedding: ...


@runtime_checkable
class TextRecognizer(Protocol):
    """OCR: the lines of text in an image."""

    def read(self, image: ImageInput) -> tuple[OcrLine, ...]: ...


@runtime_checkable
class ImageAnalyzer(Protocol):
    """Encoder + OCR + kind + key fields, in one call."""

    def analyze(self, image: ImageInput) -> ImageAnalysis: ...


@runtime_checkable
class TextUnderstanding(Protocol):
    """Intent, calibrated confidence, out-of-scope score, sentiment and emotion of a message."""

    def understand(self, text: str) -> NluResult: ...

    def embed(self, texts: Sequence[str]): ...  # -> np.ndarray float32 (n, d), L2-normalised


@runtime_checkable
class KnowledgeSearch(Protocol):
    def search(self, text: str, *, k: int = 3) -> tuple[KnowledgeHit, ...]: ...


@runtime_checkable
class Channel(Protocol):
    """A pure codec between a wire payload and messages; sockets stay in the server."""

    def parse(self, payload: bytes | str) -> UserTurn | None: ...  # raises InvalidInput

    def render(self, conversation_id: str, decision: PolicyDecision) -> bytes | str: ...
