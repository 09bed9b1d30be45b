"""Building the records a step writes: turn records, hand-off records and events."""

from __future__ import annotations

from typing import Any

from agent.messages import (
    Answer,
    Handoff,
    ImageAnalysis,
    KnowledgeHit,
    NluResult,
    PolicyDecision,
    Transcript,
    UserTurn,
    decision_kind,
)
from dialogue import responses
from dialogue.state import DialogueState, HandoffRecord, TurnRecord
from dialogue.stores.base import Event


def user_turn_record(index: int, turn: UserTurn, text: str, nlu: NluResult | None, *, now: float,
                     transcript: Transcript | None, image: ImageAnalysis | None) -> TurnRecord:
    return TurnRecord(
        index=index,
        role="user",
        text=text,
        timestamp=now,
        channel=turn.channel,
        intent=nlu.intent if nlu else None,
        confidence=round(nlu.confidence, 4) if nlu else None,
        oos_score=round(nlu.oos_score, 4) if nlu else None,
        sentiment=nlu.sentiment if nlu else None,
        sentiment_score=round(nlu.sentiment_score, 4) if nlu else None,
        emotion=nlu.emotion if nlu else None,
        entities=tuple((e.kind, e.value) for e in nlu.entities) if nlu else (),
        image_sha256=image.sha256 if image else (turn.image.sha256 if turn.image else None),
        image_kind=image.kind if image else None,
        transcript_language=transcript.language if transcript else None,
        transcript_avg_logprob=round(transcript.avg_logprob, 4) if transcript else None,
        audio_duration_s=round(transcript.duration_s, 3) if transcript else None,
        dtmf=turn.dtmf,
    )


def bot_turn_record(index: int, decision: Answer | Handoff, *, now: float, channel: str, reason: str,
                    knowledge: KnowledgeHit | None = None) -> TurnRecord:
    is_answer = isinstance(decision, Answer)
    return TurnRecord(
        index=index,
        role="bot",
        text=decision.text,
        timestamp=now,
        channel=channel,
        intent=decision.intent if isinstance(decision, Answer) else None,
        decision=decision_kind(decision),
        reason=reason,
        buttons=decision.buttons if isinstance(decision, Answer) else (),
        knowledge_id=knowledge.entry_id if (is_answer and knowledge and decision_kind(decision) == "knowledge") else None,
        handoff_id=decision.handoff_id if isinstance(decision, Handoff) and decision.handoff_id else None,
    )


def system_turn_record(index: int, text: str, *, now: float, handoff_id: str | None = None,
                       agent_id: str | None = None) -> TurnRecord:
    return TurnRecord(index=index, role="system", text=text, timestamp=now, handoff_id=handoff_id, agent_id=agent_id)


def handoff_record(handoff_id: str, state: DialogueState, *, reason: str, detail: str, summary: str | None,
                   recent: list[TurnRecord], summary_turns: int, now: float) -> HandoffRecord:
    """A new (version 1, pending) hand-off with the summary a human agent reads first."""
    last = responses.summary_turns(recent, limit=summary_turns)
    text = summary or responses.handoff_summary(state, reason=reason, detail=detail, last_turns=last)
    return HandoffRecord(
        id=handoff_id,
        conversation_id=state.conversation_id,
        user_id=state.user_id,
        version=1,
        reason=reason,
        summary=text,
        created_at=now,
        intents=state.intent_trail,
        slots=state.slots,
        sentiment_trend=state.sentiment_trend,
        last_turns=last,
    )


def turn_event(state: DialogueState, user: TurnRecord, decision: PolicyDecision, reason: str) -> Event:
    """The monitoring / fine-tuning export record of one user turn and what the bot decided."""
    data: dict[str, Any] = {
        "turn_index": user.index,
        "channel": user.channel,
        "user_id": state.user_id,
        "text": user.text,
        "intent": user.intent,
        "confidence": user.confidence,
        "oos_score": user.oos_score,
        "sentiment": user.sentiment,
        "sentiment_score": user.sentiment_score,
        "decision": decision_kind(decision),
        "reason": reason,
        "mode": state.mode,
    }
    if isinstance(decision, Handoff):
        data["handoff_id"] = decision.handoff_id
        data["handoff_reason"] = decision.reason.value
    return Event(type="turn", conversation_id=state.conversation_id, data=data)


def handoff_event(kind: str, record: HandoffRecord) -> Event:
    data = {"handoff_id": record.id, "reason": record.reason, "status": record.status, "agent_id": record.agent_id}
    return Event(type=kind, conversation_id=record.conversation_id, data=data)
