"""``agent chat``: a conversation in the terminal, showing what the agent understood each turn."""

from __future__ import annotations

import sys
import uuid

from agent.config import AgentConfig
from agent.errors import DependencyUnavailable, InvalidInput
from agent.messages import Handoff, UserTurn, decision_kind, reply_text


def _describe(result) -> str:  # type: ignore[no-untyped-def]
    nlu = result.nlu
    parts = [f"decision={decision_kind(result.decision)}"]
    if nlu is not None:
        parts[:0] = [f"intent={nlu.intent}", f"confidence={nlu.confidence:.2f}",
                     f"sentiment={nlu.sentiment}({nlu.sentiment_score:+.2f})", f"emotion={nlu.emotion}"]
        if nlu.entities:
            parts.append("entities=" + ",".join(f"{e.kind}:{e.value}" for e in nlu.entities))
    if isinstance(result.decision, Handoff):
        parts.append(f"handoff={result.decision.reason.value}#{result.decision.handoff_id}")
    return "  [" + " ".join(parts) + f" {result.latency_ms:.0f}ms]"


async def run_chat(config: AgentConfig, *, user_id: str, conversation_id: str | None) -> int:
    from agent.runtime import load_agent

    agent = load_agent(config)
    interactive = sys.stdin.isatty()
    if interactive:
        print("Loading the text model (the first start trains it; later starts take seconds)...", file=sys.stderr)
    await agent.start()
    conversation_id = conversation_id or f"cli-{uuid.uuid4().hex[:10]}"
    if interactive:
        print(f"Conversation {conversation_id}. Type a message; Ctrl-D or /quit to leave.", file=sys.stderr)
    try:
        while True:
            if interactive:
                print("you> ", end="", flush=True)
            line = sys.stdin.readline()
            if not line or line.strip() in ("/quit", "/exit"):
                break
            if not line.strip():
                continue
            turn = UserTurn(conversation_id=conversation_id, channel="cli", text=line, user_id=user_id)
            try:
                result = await agent.handle_turn(turn)
            except (InvalidInput, DependencyUnavailable) as e:
                print(f"error: {e}", file=sys.stderr)
                continue
            text = reply_text(result.decision)
            print(f"agent> {text}" if text is not None else "agent> (a colleague has the conversation)")
            print(_describe(result))
            sys.stdout.flush()
    finally:
        await agent.aclose()
    return 0
