"""JSON shapes of the HTTP API's replies (pure functions over messages)."""

from __future__ import annotations

from typing import Any

from agent.messages import (
    Answer,
    Handoff,
    ImageAnalysis,
    NluResult,
    Transcript,
    TurnResult,
    decision_kind,
    reply_text,
)


def nlu_json(nlu: NluResult | None) -> dict[str, Any] | None:
    if nlu is None:
        return None
    return {
        "intent": nlu.intent,
        "confidence": round(nlu.confidence, 4),
        "ranking": [{"intent": s.intent, "confidence": round(s.confidence, 4)} for s in nlu.ranking[:5]],
        "oos_score": round(nlu.oos_score, 4),
        "sentiment": nlu.sentiment,
        "sentiment_score": round(nlu.sentiment_score, 4),
        "emotion": nlu.emotion,
        "emotion_confidence": round(nlu.emotion_confidence, 4),
        "entities": [{"kind": e.kind, "value": e.value, "start": e.start, "end": e.end} for e in nlu.entities],
        "path": nlu.path,
        "picture_used": nlu.picture_used,
    }


def image_json(image: ImageAnalysis | None) -> dict[str, Any] | None:
    if image is None:
        return None
    return {
        "sha256": image.sha256,
        "kind": image.kind,
        "kind_confidence": round(image.kind_confidence, 4),
        "labels": [{"label": label, "score": round(score, 4)} for label, score in image.labels[:3]],
        "fields": dict(image.fields),
        "text_lines": len(image.ocr_lines),
        "ocr": image.ocr,
    }


def transcript_json(transcript: Transcript | None) -> dict[str, Any] | None:
    if transcript is None:
        return None
    return {
        "text": transcript.text,
        "language": transcript.language,
        "avg_logprob": round(transcript.avg_logprob, 4),
        "no_speech_prob": round(transcript.no_speech_prob, 4),
        "low_confidence": transcript.low_confidence,
        "duration_s": round(transcript.duration_s, 3),
    }


def turn_json(result: TurnResult) -> dict[str, Any]:
    decision = result.decision
    text = reply_text(decision)
    reply: dict[str, Any] | None = None
    if text is not None:
        reply = {"text": text}
        if isinstance(decision, Answer):
            reply["buttons"] = list(decision.buttons)
            if decision.image_url:
                reply["image"] = decision.image_url
    body: dict[str, Any] = {
        "conversation_id": result.conversation_id,
        "turn": result.turn_index,
        "reply": reply,
        "decision": decision_kind(decision),
        "reason": _reason(decision),
        "nlu": nlu_json(result.nlu),
        "handoff": None,
        "image": image_json(result.image),
        "transcript": transcript_json(result.transcript),
        "knowledge": None,
        "latency_ms": round(result.latency_ms, 2),
    }
    if isinstance(decision, Handoff):
        body["handoff"] = {"id": decision.handoff_id, "reason": decision.reason.value, "summary": decision.summary}
    if result.knowledge is not None and body["decision"] == "knowledge":
        body["knowledge"] = {"id": result.knowledge.entry_id, "score": round(result.knowledge.score, 4)}
    return body


def _reason(decision: Any) -> str:
    if isinstance(decision, Answer):
        return decision.reason
    if isinstance(decision, Handoff):
        return decision.reason.value
    return getattr(decision, "reason", "")


def rasa_messages(sender: str, result: TurnResult) -> list[dict[str, Any]]:
    """Rasa REST channel reply, as Rasa's own ``CollectingOutputChannel`` makes it: a text message
    ``{"recipient_id", "text", "buttons"?, "custom"}`` and, when the answer has an image, a second
    message ``{"recipient_id", "image"}``. ``custom`` holds what the runtime decided. No reply: ``[]``."""
    decision = result.decision
    text = reply_text(decision)
    if text is None:
        return []
    message: dict[str, Any] = {"recipient_id": sender, "text": text}
    image: dict[str, Any] | None = None
    if isinstance(decision, Answer):
        if decision.buttons:
            message["buttons"] = [{"title": b, "payload": b} for b in decision.buttons]
        if decision.image_url:
            image = {"recipient_id": sender, "image": decision.image_url}
    message["custom"] = {
        "decision": decision_kind(decision),
        "intent": result.nlu.intent if result.nlu else None,
        "confidence": round(result.nlu.confidence, 4) if result.nlu else None,
        "sentiment": result.nlu.sentiment if result.nlu else None,
    }
    if isinstance(decision, Handoff):
        message["custom"]["handoff"] = {"id": decision.handoff_id, "reason": decision.reason.value}
    return [message] if image is None else [message, image]
