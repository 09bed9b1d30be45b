"""The agent: one turn end to end, and ``load_agent`` that wires the parts.

A turn moves one way: decode (done by the channel) -> hear / see -> understand -> dialogue
(load state, policy, save atomically) -> decision. Model calls are synchronous and run in
threads (``asyncio.to_thread``); storage is async. This module holds no model code.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from agent import metrics
from agent.batching import TextBatcher
from agent.config import AgentConfig
from agent.errors import DependencyUnavailable, InvalidInput
from agent.messages import (
    AudioClip,
    ImageAnalysis,
    ImageInput,
    KnowledgeHit,
    NluResult,
    Transcript,
    TurnResult,
    UserTurn,
)
from modalities.entities import extract_entities
from modalities.text import normalize_text

if TYPE_CHECKING:
    from agent.interfaces import ImageAnalyzer, SpeechRecognizer, SpeechSynthesizer
    from dialogue.service import DialogueService

log = logging.getLogger("agent.runtime")

# An image's own text is understood too when the typed text says this little.
IMAGE_TEXT_MIN_CONFIDENCE = 0.5


class Agent:
    """Handles turns from any channel. Build it with ``load_agent(config)``."""

    def __init__(
        self,
        *,
        config: AgentConfig,
        dialogue: DialogueService,
        nlu_loader: Callable[[], Any] | None,
        knowledge_builder: Callable[[Any], Any] | None = None,
        recognizer_factory: Callable[[], SpeechRecognizer] | None = None,
        synthesizer_factory: Callable[[], SpeechSynthesizer] | None = None,
        vad_factory: Callable[[], Any] | None = None,
        image_analyzer_factory: Callable[[], ImageAnalyzer] | None = None,
        fusion_loader: Callable[[], Any] | None = None,
    ) -> None:
        self.config = config
        self.dialogue = dialogue
        self._nlu_loader = nlu_loader
        self._knowledge_builder = knowledge_builder
        self._factories: dict[str, Callable[[], Any] | None] = {
            "recognizer": recognizer_factory,
            "synthesizer": synthesizer_factory,
            "image_analyzer": image_analyzer_factory,
        }
        self._vad_factory = vad_factory
        self._fusion_loader = fusion_loader
        self._built: dict[str, Any] = {}
        self._building: dict[str, concurrent.futures.Future[Any]] = {}
        self._build_lock = threading.Lock()
        self._nlu: Any = None
        self._knowledge: Any = None
        self._fusion: Any = None
        self._nlu_error: str | None = None
        self._start_task: asyncio.Task[None] | None = None
        self._text_batcher: TextBatcher | None = None
        self.prepare_parts: tuple[str, ...] = ()  # lazily built parts to start building once the text model is up

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Load (or train, on first start) the text model and the knowledge index."""
        if self._nlu is not None or self._nlu_loader is None:
            return
        try:
            self._nlu = await asyncio.to_thread(self._nlu_loader)
            if self._knowledge_builder is not None:
                self._knowledge = await asyncio.to_thread(self._knowledge_builder, self._nlu)
            if self._fusion_loader is not None:
                self._fusion = await asyncio.to_thread(self._fusion_loader)
            self._nlu_error = None
            log.info("text model ready (%d intents)", len(getattr(self._nlu, "labels", ())))
            for name in self.prepare_parts:  # in the background: the first picture need not wait
                if self._factories.get(name) is not None:
                    self._ensure_building(name)
        except Exception as e:  # the server stays up and reports not ready
            self._nlu_error = f"{type(e).__name__}: {e}"
            log.exception("text model failed to load")
            raise

    def start_in_background(self) -> asyncio.Task[None]:
        """For servers: answer /healthz at once, /readyz once the model has loaded."""

        async def run() -> None:
            try:
                await self.start()
            except Exception:  # already logged; /readyz shows the error
                pass

        self._start_task = asyncio.get_running_loop().create_task(run())
        return self._start_task

    async def aclose(self) -> None:
        if self._start_task is not None and not self._start_task.done():
            self._start_task.cancel()
        if self._text_batcher is not None:
            await self._text_batcher.aclose()
        await self.dialogue.aclose()

    async def readiness(self) -> dict[str, str]:
        """``{"state_store": "ok"|error, "model": "ok"|"loading"|error}``."""
        status: dict[str, str] = {}
        try:
            await self.dialogue.ping()
            status["state_store"] = "ok"
        except DependencyUnavailable as e:
            status["state_store"] = str(e)
        building = self._building.get("image_analyzer")
        if "image_analyzer" in self._built:
            status["images"] = "ok"
        elif building is not None:
            status["images"] = "preparing" if not building.done() else "failed (retried on the next picture)"
        if self._nlu is not None:
            status["model"] = "ok"
        elif self._nlu_error:
            status["model"] = f"failed: {self._nlu_error}"
        else:
            status["model"] = "loading"
        return status

    # --- lazily built parts (voice and vision load only when first used) -------------------

    def _ensure_building(self, name: str) -> concurrent.futures.Future[Any]:
        """The build of a part, started in its own thread if it is not running; a failed build is retried."""
        factory = self._factories.get(name)
        if factory is None:
            raise DependencyUnavailable(f"no {name.replace('_', ' ')} is configured")
        with self._build_lock:
            future = self._building.get(name)
            if future is None or (future.done() and future.exception() is not None):
                future = concurrent.futures.Future()
                self._building[name] = future

                def build(future: concurrent.futures.Future[Any] = future) -> None:
                    try:
                        value = factory()
                    except BaseException as e:  # handed to whoever waits for the part
                        log.warning("building the %s failed: %s", name.replace("_", " "), type(e).__name__)
                        future.set_exception(e)
                    else:
                        self._built[name] = value
                        future.set_result(value)

                threading.Thread(target=build, name=f"build-{name}", daemon=True).start()
            return future

    def _part(self, name: str) -> Any:
        """A lazily built part; blocks until it is built (from worker threads and synchronous code)."""
        if name in self._built:
            return self._built[name]
        return self._ensure_building(name).result()

    async def _part_within(self, name: str, wait_s: float, what: str) -> Any:
        """A lazily built part, waiting at most ``wait_s`` for a build in progress."""
        if name in self._built:
            return self._built[name]
        future = self._ensure_building(name)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout=wait_s)
        except TimeoutError:
            raise DependencyUnavailable(
                f"{what} is still starting (on a first start it prepares its models, which takes a few "
                f"minutes); try again shortly"
            ) from None
        except (DependencyUnavailable, InvalidInput):
            raise
        except Exception as e:  # the next request starts a new build
            raise DependencyUnavailable(
                f"{what} failed to start ({type(e).__name__}); it is tried again on the next request"
            ) from e

    @property
    def recognizer(self) -> SpeechRecognizer:
        return self._part("recognizer")  # type: ignore[no-any-return]

    @property
    def synthesizer(self) -> SpeechSynthesizer:
        return self._part("synthesizer")  # type: ignore[no-any-return]

    @property
    def image_analyzer(self) -> ImageAnalyzer:
        return self._part("image_analyzer")  # type: ignore[no-any-return]

    @property
    def vad_factory(self) -> Callable[[], Any]:
        if self._vad_factory is None:
            raise DependencyUnavailable("no voice activity detector is configured")
        return self._vad_factory

    @property
    def nlu(self) -> Any:
        if self._nlu is None:
            raise DependencyUnavailable(
                "the text model is still loading" if self._nlu_error is None else "the text model failed to load"
            )
        return self._nlu

    @property
    def fusion(self) -> Any:
        return self._fusion

    # --- one turn -------------------------------------------------------------------------

    async def handle_turn(self, turn: UserTurn) -> TurnResult:
        """Hear, see, understand, decide and record one turn; returns what to tell the customer."""
        started = time.perf_counter()
        turn = self._checked(turn)
        stored_image = await asyncio.to_thread(_storable, turn.image) if turn.image is not None else None
        if stored_image is not None and turn.image is not None:  # the turn refers to what is stored
            turn = replace(turn, image=replace(turn.image, sha256=stored_image[0]))
        transcript = await self._transcribe(turn.audio) if turn.audio is not None else None
        image = await self._analyze_image(turn.image) if turn.image is not None else None
        text = _text_of(turn, transcript)
        nlu, knowledge = await self._understand(text, transcript, image)
        if stored_image is not None:
            sha256, data, content_type = stored_image
            await self.dialogue.put_blob(sha256, data, content_type=content_type)
        outcome = await self.dialogue.handle_turn(
            turn, nlu, transcript=transcript, image=image, knowledge=knowledge
        )
        latency_ms = (time.perf_counter() - started) * 1000.0
        metrics.observe_turn(turn.channel, outcome.decision, latency_ms / 1000.0)
        return TurnResult(
            conversation_id=turn.conversation_id,
            turn_index=outcome.turn_index,
            decision=outcome.decision,
            nlu=nlu,
            transcript=transcript,
            image=image,
            knowledge=knowledge,
            latency_ms=latency_ms,
        )

    def _checked(self, turn: UserTurn) -> UserTurn:
        if turn.text is None and turn.audio is None and turn.image is None and not turn.dtmf:
            raise InvalidInput("a turn needs text, audio, an image or DTMF digits; got none of them")
        if turn.text is not None:
            turn = replace(turn, text=normalize_text(turn.text, max_chars=self.config.server.max_text_chars))
        return turn

    async def _transcribe(self, clip: AudioClip) -> Transcript:
        want_features = self._fusion is not None
        return await asyncio.to_thread(self.recognizer.transcribe, clip, with_features=want_features)

    async def _analyze_image(self, image: ImageInput) -> ImageAnalysis:
        analyzer = await self._part_within("image_analyzer", self.config.vision.startup_wait_s, "image understanding")
        return await asyncio.to_thread(analyzer.analyze, image)

    async def _understand(
        self, text: str, transcript: Transcript | None, image: ImageAnalysis | None
    ) -> tuple[NluResult | None, KnowledgeHit | None]:
        if not text and image is None:
            return None, None
        if image is None and (transcript is None or self._fusion is None):
            nlu, embedding = await self._batcher().submit(text)  # shares a forward pass with other turns
            return await asyncio.to_thread(self._finish, nlu, embedding, text)
        return await asyncio.to_thread(self._understand_sync, text, transcript, image)

    def _batcher(self) -> TextBatcher:
        if self._text_batcher is None:
            model = self.nlu
            batch_fn = getattr(model, "understand_batch_with_embeddings", None) or (
                lambda texts: [model.understand_with_embedding(t) for t in texts]
            )
            self._text_batcher = TextBatcher(batch_fn, max_batch=max(1, self.config.nlu.micro_batch))
        return self._text_batcher

    def _understand_sync(
        self, text: str, transcript: Transcript | None, image: ImageAnalysis | None
    ) -> tuple[NluResult | None, KnowledgeHit | None]:
        model = self.nlu
        embedding = None
        nlu = None
        if self._fusion is not None and (transcript is not None or image is not None):
            try:  # the learned fusion reads the words with what was heard and shown
                nlu = self._fusion.understand(text=text, transcript=transcript, image=image)
            except InvalidInput as e:  # unusable features: answer from the text path instead
                log.warning("fusion model rejected this turn's features, using the text path: %s", e)
            except Exception as e:  # a failing fusion model must not fail the turn: the text path answers
                log.error("fusion model failed (%s), using the text path", type(e).__name__, exc_info=True)
                metrics.FALLBACKS.labels(error=type(e).__name__).inc()
        if nlu is None and text:
            nlu, embedding = model.understand_with_embedding(text)
        if nlu is not None and nlu.path == "fusion":
            pass  # the fusion has read the image's own text already
        elif image is not None and image.ocr_text and (nlu is None or nlu.confidence < IMAGE_TEXT_MIN_CONFIDENCE):
            nlu = _prefer_image_reading(nlu, model.understand(_image_prompt(image)))
        if nlu is None:
            return None, None
        return self._finish(nlu, embedding, text)

    def _finish(
        self, nlu: NluResult, embedding: Any, text: str
    ) -> tuple[NluResult, KnowledgeHit | None]:
        """Adds the knowledge-base hit and the entities of the text."""
        knowledge = None
        if self._knowledge is not None and text:
            hits = (
                self._knowledge.search_vector(embedding, k=1)
                if embedding is not None
                else self._knowledge.search(text, k=1)
            )
            knowledge = hits[0] if hits else None
        entities = extract_entities(text) if text else ()
        return replace(nlu, entities=tuple(nlu.entities) + tuple(entities)), knowledge


# Uploaded images are stored re-encoded (metadata already stripped), at most this many pixels a side.
STORED_IMAGE_MAX_SIDE_PX = 2048
STORED_IMAGE_PNG_MAX_PIXELS = 2_000_000  # larger images are stored as JPEG (quality 90)


def _storable(image: ImageInput) -> tuple[str, bytes, str]:
    """``(sha256, bytes, content type)`` of the image as stored; the hash keys the blob and the turn."""
    import hashlib
    import io

    rgb = image.rgb
    if max(rgb.size) > STORED_IMAGE_MAX_SIDE_PX:
        rgb = rgb.copy()
        rgb.thumbnail((STORED_IMAGE_MAX_SIDE_PX, STORED_IMAGE_MAX_SIDE_PX))
    buffer = io.BytesIO()
    if rgb.size[0] * rgb.size[1] <= STORED_IMAGE_PNG_MAX_PIXELS:
        rgb.save(buffer, format="PNG", optimize=False)
        content_type = "image/png"
    else:
        rgb.save(buffer, format="JPEG", quality=90)
        content_type = "image/jpeg"
    data = buffer.getvalue()
    return hashlib.sha256(data).hexdigest(), data, content_type


def _text_of(turn: UserTurn, transcript: Transcript | None) -> str:
    parts = [p for p in (turn.text, transcript.text.strip() if transcript else None) if p]
    return " ".join(parts)


def _image_prompt(image: ImageAnalysis) -> str:
    """What the image says, as a sentence the text model can read (first combination, no fusion)."""
    message = image.field("error_message")
    if message:
        return message
    if image.kind == "receipt":
        return "I was charged for this receipt"
    return image.ocr_text[:300]


def _prefer_image_reading(text_nlu: NluResult | None, image_nlu: NluResult) -> NluResult:
    if text_nlu is None or image_nlu.confidence > text_nlu.confidence:
        return replace(
            image_nlu,
            path="rules",
            sentiment=text_nlu.sentiment if text_nlu else image_nlu.sentiment,
            sentiment_score=text_nlu.sentiment_score if text_nlu else image_nlu.sentiment_score,
            emotion=text_nlu.emotion if text_nlu else image_nlu.emotion,
        )
    return text_nlu


# --- wiring ---------------------------------------------------------------------------------


def load_agent(config: AgentConfig | None = None, *, serving: bool = False) -> Agent:
    """Build an agent from configuration. Models load in ``Agent.start()`` (or lazily).

    ``serving=True`` (``agent serve``, the Rasa action server): once the text model is up, image
    understanding starts loading in the background (``vision.prepare_on_start``), so the first
    picture a customer sends does not wait for it."""
    from dialogue.domain import load_domain
    from dialogue.service import DialogueService, make_store

    config = config or AgentConfig.from_env()
    domain = load_domain(config.domain.path).with_overrides(config.policy)
    store = make_store(config.store)  # Redis when AGENT_REDIS_URL is set, else in memory
    dialogue = DialogueService(store, domain, max_retries=config.store.max_retries)
    agent = Agent(
        config=config,
        dialogue=dialogue,
        nlu_loader=lambda: _load_nlu(config),  # the fine-tuned text model (trained on first start)
        knowledge_builder=lambda nlu: _build_knowledge(domain, nlu),  # KB index, same encoder
        recognizer_factory=lambda: _speech().load_recognizer(config.asr),  # Whisper
        synthesizer_factory=lambda: _tts().load_synthesizer(config.tts),  # Piper or espeak-ng
        vad_factory=lambda: _vad().load_vad(config.vad),  # Silero, one per call
        image_analyzer_factory=lambda: _vision().load_image_analyzer(
            config.vision, config.nlu.cache_dir
        ),  # encoder + OCR + kind + fields
        fusion_loader=lambda: _load_fusion(config),  # learned fusion when a trained one exists
    )
    if serving and config.vision.prepare_on_start:
        agent.prepare_parts = ("image_analyzer",)
    return agent


def _load_nlu(config: AgentConfig) -> Any:
    import torch

    from models.default_model import ensure_default_model
    from models.nlu import NluModel

    if config.nlu.threads > 0:
        torch.set_num_threads(config.nlu.threads)
    model_dir = config.nlu.model_dir
    if model_dir is None:
        model_dir = ensure_default_model(config.domain.path, config.nlu.cache_dir, progress=True)
    return NluModel.from_pretrained(
        model_dir, device=config.nlu.device, quantize=config.nlu.quantize and config.nlu.device == "cpu",
        max_seq_len=config.nlu.max_seq_len,
    )


def _build_knowledge(domain: Any, nlu: Any) -> Any:
    from models.knowledge import KnowledgeIndex

    entries = [(e.id, (e.question, *e.alternatives), e.answer) for e in domain.knowledge]
    if not entries:
        return None
    return KnowledgeIndex.build(entries, nlu.embed)


def _load_fusion(config: AgentConfig) -> Any:
    from models.fusion import load_fusion_model

    return load_fusion_model(config)  # None when no trained fusion model fits: every turn takes the text path


def _speech() -> Any:
    from models import speech

    return speech


def _tts() -> Any:
    from models import tts

    return tts


def _vad() -> Any:
    from models import vad

    return vad


def _vision() -> Any:
    from models import image_analyzer

    return image_analyzer
