"""One live call, whatever the gateway: hear turns, answer them, let the caller interrupt.

Audio comes in as 20 ms frames of 8 kHz float32. The turn detector (Silero VAD) says when
the caller has finished; the utterance goes to ``agent.handle_turn`` as a 16 kHz clip (the
runtime transcribes, understands, decides and saves the turn), and the reply is spoken by a
``Speaker``. When the caller speaks over a reply for ``barge_in_min_speech_ms`` (or presses a
key), the reply stops, the gateway's queued audio is cleared, and the new turn is taken. A
hand-off is spoken, then the gateway's transfer action runs. When the call ends mid-utterance,
what was said is still handed to the runtime, so it is saved.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.config import Secret
from agent.messages import (
    AudioClip,
    Handoff,
    HandoffReason,
    PolicyDecision,
    TurnResult,
    UserTurn,
    reply_text,
)
from agent.voice.playback import CallClosed, CallTransport, Speaker
from agent.voice.workers import in_background
from modalities.audio import SAMPLE_RATE, TELEPHONE_RATE, resample

log = logging.getLogger("agent.voice")

APOLOGY = "Sorry, something went wrong on our side. I'm passing you to a colleague."
MARK_GRACE_S = 2.0  # how long after its audio should have played a mark may still come back
FINISH_TIMEOUT_S = 60.0  # at hang-up, turns still being handled get this long to be saved


def caller_user_id(number: str | None, salt: Secret) -> str | None:
    """The profile key of a caller: salted SHA-256 of the number's digits (None without digits)."""
    digits = "".join(ch for ch in (number or "") if ch.isdigit())
    if not digits:
        return None
    return "tel-" + hashlib.sha256(f"{salt.reveal()}:{digits}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True, kw_only=True)
class CallInfo:
    conversation_id: str  # Twilio call SID or AudioSocket UUID
    user_id: str | None  # hashed caller number
    gateway: str  # "twilio" | "audiosocket"


@dataclass(slots=True)
class CallStats:
    turns: int = 0
    dtmf: int = 0
    barge_ins: int = 0
    protocol_errors: int = 0
    handoffs: int = 0
    failed_turns: int = 0
    turn_end_times: list[float] = field(default_factory=list)  # monotonic s, end of each turn detected
    reply_latencies_ms: list[float] = field(default_factory=list)  # end of turn detected -> first reply frame
    turn_latencies_ms: list[float] = field(default_factory=list)  # end of turn detected -> handle_turn returned
    results: list[TurnResult] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallReport:
    """A finished call, for monitoring and benchmarks (no customer content)."""

    conversation_id: str
    gateway: str
    duration_s: float
    turns: int
    barge_ins: int
    dtmf: int
    handoffs: int
    failed_turns: int
    protocol_errors: int
    frames_sent: int
    max_late_ms: float  # the latest any reply frame went out after its due time
    frames_late_100ms: int
    underruns: int  # the next sentence was not ready when the previous one had played
    reply_latencies_ms: tuple[float, ...]
    turn_latencies_ms: tuple[float, ...]  # the runtime's part of reply_latencies_ms (hearing, understanding, saving)


RECENT_CALLS: deque[CallReport] = deque(maxlen=1000)  # newest last


@dataclass(frozen=True, slots=True)
class _Pending:
    turn: UserTurn
    speak: bool
    ended_at: float


class CallSession:
    """Call state and turn-taking. Feed it with ``on_audio`` / ``on_dtmf`` / ``on_mark``."""

    def __init__(self, agent: Any, transport: CallTransport, info: CallInfo,
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        self.agent, self.transport, self.info, self.clock = agent, transport, info, clock
        self.config = agent.config
        self.detector = agent.vad_factory()
        self.speaker = Speaker(transport, lambda: agent.synthesizer, lead_ms=self.config.telephony.frame_lead_ms,
                               clock=clock, on_mark=self._mark_sent,
                               first_max_chars=self.config.tts.first_chunk_max_chars)
        self.stats = CallStats()
        self.started_at = clock()
        self.closed = False
        self.transferred = False
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._speaking: asyncio.Task[list[str]] | None = None
        self._unechoed: set[str] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._replies = 0

    def start(self) -> None:
        log.info("call %s started (%s)", self.info.conversation_id, self.info.gateway)
        self._worker = asyncio.create_task(self._turn_loop())
        self._spawn(self._load_models())

    async def _load_models(self) -> None:
        """Build the recognizer and the voice in a low-priority worker if nothing has yet."""
        try:
            await in_background(lambda: (self.agent.recognizer, self.agent.synthesizer))
        except Exception as e:  # noqa: BLE001 - the turn that needs the part reports it properly
            log.warning("call %s: voice models could not be loaded (%s)", self.info.conversation_id, type(e).__name__)

    # --- input ------------------------------------------------------------------------------

    def on_audio(self, samples_8k: np.ndarray) -> None:
        """One inbound frame of 8 kHz float32 audio."""
        if self.closed or self.transferred:
            return
        for event in self.detector.push(samples_8k):
            if event.kind == "candidate" and self.config.telephony.speculative_transcription:
                self._spawn(self._prefetch(self._clip(event.samples)))
            elif event.kind == "turn_ended":
                self._enqueue(self._audio_turn(event.samples, event.reason), speak=True)
        if self.talking and self.detector.in_speech and self.detector.voiced_ms >= self.config.vad.barge_in_min_speech_ms:
            self.barge_in()

    def on_dtmf(self, digit: str) -> None:
        if self.closed or self.transferred:
            return
        self.stats.dtmf += 1
        if self.talking:
            self.barge_in()
        self._enqueue(UserTurn(conversation_id=self.info.conversation_id, channel="voice", dtmf=digit,
                               user_id=self.info.user_id, metadata=(("gateway", self.info.gateway),)), speak=True)

    def on_mark(self, name: str) -> None:
        self._unechoed.discard(name)

    def protocol_error(self, what: str) -> bool:
        """Count a malformed gateway message; True when the call has had too many and should close."""
        self.stats.protocol_errors += 1
        log.warning("call %s: ignored a bad %s message: %s", self.info.conversation_id, self.info.gateway, what)
        limit: int = self.config.telephony.max_protocol_errors
        return self.stats.protocol_errors > limit

    # --- talking ----------------------------------------------------------------------------

    @property
    def talking(self) -> bool:
        """True while reply audio is being sent or has not finished playing."""
        if self._speaking is not None and not self._speaking.done():
            return True
        ends = self.speaker.played_until
        if self.transport.echoes_marks and self._unechoed:
            return self.clock() < ends + MARK_GRACE_S
        return self.clock() < ends

    def barge_in(self) -> None:
        """Stop speaking now and drop the audio queued at the gateway."""
        self.stats.barge_ins += 1
        if self._speaking is not None and not self._speaking.done():
            self._speaking.cancel()
        self._unechoed.clear()
        self.speaker.played_until = min(self.speaker.played_until, self.clock())
        self._spawn(self._clear())
        log.info("call %s: barge-in", self.info.conversation_id)

    async def _clear(self) -> None:
        try:
            await self.transport.clear()
        except CallClosed:
            pass

    def _mark_sent(self, name: str) -> None:
        if self.transport.echoes_marks:
            self._unechoed.add(name)

    # --- turns ------------------------------------------------------------------------------

    def _clip(self, samples_8k: np.ndarray | None) -> AudioClip:
        samples = np.zeros(0, np.float32) if samples_8k is None else samples_8k
        return AudioClip(samples=resample(samples, TELEPHONE_RATE, SAMPLE_RATE), sample_rate_hz=SAMPLE_RATE)

    def _audio_turn(self, samples_8k: np.ndarray | None, reason: str) -> UserTurn:
        return UserTurn(conversation_id=self.info.conversation_id, channel="voice", audio=self._clip(samples_8k),
                        user_id=self.info.user_id,
                        metadata=(("gateway", self.info.gateway), ("end_of_turn", reason)))

    def _enqueue(self, turn: UserTurn, *, speak: bool) -> None:
        now = self.clock()
        self.stats.turn_end_times.append(now)
        self._queue.put_nowait(_Pending(turn=turn, speak=speak, ended_at=now))

    async def _prefetch(self, clip: AudioClip) -> None:
        """Transcribe the utterance before the turn is declared over; the recognizer remembers it."""
        def transcribe() -> None:
            recognizer = self.agent.recognizer  # built here, not on the event loop, if not yet loaded
            if getattr(recognizer, "reuses_results", False):  # else the early result would be thrown away
                recognizer.transcribe(clip)

        try:
            await in_background(transcribe)
        except Exception as e:  # noqa: BLE001 - the real turn transcribes again and reports properly
            log.debug("speculative transcription failed: %s", type(e).__name__)

    async def _turn_loop(self) -> None:
        while (item := await self._queue.get()) is not None:
            decision = await self._handle(item.turn)
            self.stats.turn_latencies_ms.append((self.clock() - item.ended_at) * 1000.0)
            if not item.speak or self.closed or self.transferred:
                continue
            if not self._queue.empty() or self.detector.in_speech:
                continue  # the caller has moved on: answer the newer turn instead
            try:
                await self._respond(decision, ended_at=item.ended_at)
            except CallClosed:
                self.closed = True

    async def _handle(self, turn: UserTurn) -> PolicyDecision:
        try:
            result: TurnResult = await self.agent.handle_turn(turn)
        except Exception as e:  # the outermost per-turn loop of a live call: log, hand off, stay up
            self.stats.failed_turns += 1
            log.exception("call %s: turn failed (%s)", self.info.conversation_id, type(e).__name__)
            return Handoff(reason=HandoffReason.DEPENDENCY_DOWN, text=APOLOGY,
                           summary=f"voice turn failed: {type(e).__name__}")
        self.stats.turns += 1
        self.stats.results.append(result)
        log.info("call %s: turn %d -> %s", self.info.conversation_id, result.turn_index,
                 type(result.decision).__name__.lower())
        return result.decision

    async def _respond(self, decision: PolicyDecision, *, ended_at: float) -> None:
        text = reply_text(decision)
        first_frames = self.speaker.stats.first_frame_times
        if text:
            replies_before = len(first_frames)
            self._replies += 1
            self._speaking = asyncio.create_task(self.speaker.speak(text, reply_id=f"r{self._replies}"))
            await asyncio.wait({self._speaking})
            if not self._speaking.cancelled() and self._speaking.exception() is not None:
                error = self._speaking.exception()
                if isinstance(error, CallClosed):
                    raise error
                log.error("call %s: reply could not be spoken (%s)", self.info.conversation_id, type(error).__name__)
            if len(first_frames) > replies_before:
                self.stats.reply_latencies_ms.append((first_frames[replies_before] - ended_at) * 1000.0)
        if isinstance(decision, Handoff) and not self.closed:
            await self._until_played()
            self.stats.handoffs += 1
            self.transferred = await self.transport.transfer(decision.summary)
            log.info("call %s: hand-off %s (%s)", self.info.conversation_id,
                     "transferred" if self.transferred else "transfer failed", decision.reason.value)

    async def _until_played(self) -> None:
        """Wait until the reply has played (marks echoed, or its audio time has passed)."""
        deadline = self.speaker.played_until + MARK_GRACE_S
        while self.talking and self.clock() < deadline:
            await asyncio.sleep(0.02)

    # --- end --------------------------------------------------------------------------------

    async def finish(self, reason: str) -> None:
        """The call is over: save an utterance in progress, let queued turns be saved, stop speaking."""
        if self.closed and self._worker is None:
            return
        self.closed = True
        event = self.detector.flush()
        if event is not None and event.voiced_ms >= self.config.vad.min_speech_ms and not self.transferred:
            self._enqueue(self._audio_turn(event.samples, "hangup"), speak=False)
        if self._speaking is not None and not self._speaking.done():
            self._speaking.cancel()
        self._queue.put_nowait(None)
        worker, self._worker = self._worker, None
        try:
            if worker is not None:
                await asyncio.wait_for(worker, FINISH_TIMEOUT_S)
        except TimeoutError:
            log.error("call %s: turns still unsaved at hang-up were abandoned", self.info.conversation_id)
        finally:
            for task in list(self._background):
                task.cancel()
        RECENT_CALLS.append(self.report())
        log.info("call %s ended (%s): %d turns, %d barge-ins, %d protocol errors", self.info.conversation_id,
                 reason, self.stats.turns, self.stats.barge_ins, self.stats.protocol_errors)

    def report(self) -> CallReport:
        s, p = self.stats, self.speaker.stats
        return CallReport(
            conversation_id=self.info.conversation_id, gateway=self.info.gateway,
            duration_s=self.clock() - self.started_at, turns=s.turns, barge_ins=s.barge_ins, dtmf=s.dtmf,
            handoffs=s.handoffs, failed_turns=s.failed_turns, protocol_errors=s.protocol_errors,
            frames_sent=p.frames_sent, max_late_ms=p.max_late_ms, frames_late_100ms=p.frames_late_100ms,
            underruns=p.underruns, reply_latencies_ms=tuple(s.reply_latencies_ms),
            turn_latencies_ms=tuple(s.turn_latencies_ms),
        )

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def prepare(agent: Any) -> None:
    """Load and run the voice models once, in a low-priority worker (see ``agent.voice.workers``),
    so the first caller does not wait and inference yields to the calls' frame pacing."""
    await in_background(warm_up, agent)


def warm_up(agent: Any) -> None:
    """Load and run the recognizer, the voice and the VAD once (blocking)."""
    agent.recognizer.transcribe(AudioClip(samples=np.zeros(SAMPLE_RATE, np.float32), sample_rate_hz=SAMPLE_RATE))
    agent.synthesizer.synthesize("Hello.")
    agent.vad_factory().push(np.zeros(TELEPHONE_RATE // 10, np.float32))


class CallLimiter:
    """Counts the calls in progress and refuses more than ``max_calls``."""

    def __init__(self, max_calls: int) -> None:
        self.max_calls = max_calls
        self.active = 0

    def try_acquire(self) -> bool:
        if self.active >= self.max_calls:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active = max(0, self.active - 1)
