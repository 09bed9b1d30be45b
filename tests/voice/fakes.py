"""Fakes for the voice tests: an agent with the runtime's voice-facing API, a scripted
recognizer, and a transport that records what a call sent."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from agent.config import AgentConfig
from agent.messages import Answer, AudioClip, Handoff, HandoffReason, TurnResult, UserTurn

HANDOFF_TEXT = "I'm passing you to a colleague who can help."


class FakeVoiceAgent:
    """The runtime's voice-facing API (config, handle_turn, recognizer, synthesizer, vad_factory)
    with real Whisper, real TTS and real VAD, and keyword intents (tests.fakes.FakeNlu)."""

    def __init__(self, config: AgentConfig | None = None, *, fail_turns: int = 0, slow_s: float = 0.0,
                 recognizer: Any = None, answer_text: str | None = None) -> None:
        from tests.fakes import FakeNlu

        self.config = config or AgentConfig()
        self._recognizer = recognizer
        self.answer_text = answer_text or "I've frozen your card. A new one will arrive in three to five days."
        self.nlu = FakeNlu()
        self.turns: list[UserTurn] = []
        self.results: list[TurnResult] = []
        self.fail_turns = fail_turns  # the first N turns raise, as a broken store would
        self.slow_s = slow_s

    @property
    def recognizer(self) -> Any:
        from models.speech import load_recognizer

        if self._recognizer is not None:
            return self._recognizer
        return load_recognizer(self.config.asr)

    @property
    def synthesizer(self) -> Any:
        from models.tts import load_synthesizer

        return load_synthesizer(self.config.tts)

    @property
    def vad_factory(self) -> Any:
        from models.vad import load_vad

        return lambda: load_vad(self.config.vad)

    async def handle_turn(self, turn: UserTurn) -> TurnResult:
        self.turns.append(turn)
        if self.slow_s:
            await asyncio.sleep(self.slow_s)
        if self.fail_turns > 0:
            self.fail_turns -= 1
            raise ConnectionError("state store unavailable")
        transcript = await asyncio.to_thread(self.recognizer.transcribe, turn.audio) if turn.audio else None
        text = transcript.text if transcript else (turn.text or "")
        nlu = self.nlu.understand(" ".join(re.sub(r"[^\w' ]", " ", text).split())) if text else None
        if turn.dtmf == "0" or (nlu is not None and nlu.intent == "talk_to_human"):
            decision: Any = Handoff(reason=HandoffReason.USER_ASKED, summary="caller asked for a person",
                                    text=HANDOFF_TEXT)
        elif nlu is not None and nlu.intent == "lost_or_stolen_card":
            decision = Answer(text=self.answer_text, intent=nlu.intent)
        else:
            decision = Answer(text="Sorry, could you say that again?", kind="clarify")
        result = TurnResult(conversation_id=turn.conversation_id, turn_index=len(self.turns) - 1,
                            decision=decision, nlu=nlu, transcript=transcript)
        self.results.append(result)
        return result


class ScriptedRecognizer:
    """Stands in for Whisper where a test is about turn-taking: says the next scripted line."""

    def __init__(self, *lines: str) -> None:
        self.lines = list(lines)
        self.calls = 0

    def transcribe(self, clip: AudioClip, *, with_features: bool = False) -> Any:
        from agent.messages import Transcript

        text = self.lines[min(self.calls, len(self.lines) - 1)]
        self.calls += 1
        return Transcript(text=text, language="en", avg_logprob=-0.2, no_speech_prob=0.01, duration_s=clip.duration_s)


class RecordingTransport:
    """A CallTransport that keeps what was sent, with monotonic timestamps."""

    frame_bytes = 160
    silence = b"\xff"

    def __init__(self, *, echoes_marks: bool = False, transfer_ok: bool = True) -> None:
        self.echoes_marks = echoes_marks
        self.transfer_ok = transfer_ok
        self.frames: list[bytes] = []
        self.frame_times: list[float] = []
        self.marks: list[tuple[float, str]] = []
        self.clears: list[float] = []
        self.transfers: list[str] = []
        self.closed = False

    def encode(self, clip: AudioClip) -> bytes:
        from modalities.audio import to_telephone_mulaw

        return to_telephone_mulaw(clip)

    async def send_frame(self, frame: bytes) -> None:
        from agent.voice.playback import CallClosed

        if self.closed:
            raise CallClosed("closed")
        self.frames.append(frame)
        self.frame_times.append(time.monotonic())

    async def send_mark(self, name: str) -> None:
        self.marks.append((time.monotonic(), name))

    async def clear(self) -> None:
        self.clears.append(time.monotonic())

    async def transfer(self, summary: str) -> bool:
        self.transfers.append(summary)
        return self.transfer_ok

    async def close(self) -> None:
        self.closed = True
