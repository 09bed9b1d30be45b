"""Voice calls: turn-taking, barge-in, spoken replies, and the Twilio and AudioSocket gateways.

``twilio_routes(agent)`` gives the Starlette routes (``POST /twilio/voice``, WebSocket
``/twilio/media``) for the HTTP app; ``await serve_audiosocket(agent, host, port)`` starts the
Asterisk AudioSocket TCP server. Both drive a ``CallSession`` per call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["CallSession", "prepare", "serve_audiosocket", "twilio_routes", "warm_up"]

if TYPE_CHECKING:
    from agent.voice.audiosocket import serve_audiosocket
    from agent.voice.session import CallSession, prepare, warm_up
    from agent.voice.twilio import twilio_routes


def __getattr__(name: str) -> Any:
    if name == "twilio_routes":
        from agent.voice.twilio import twilio_routes

        return twilio_routes
    if name == "serve_audiosocket":
        from agent.voice.audiosocket import serve_audiosocket

        return serve_audiosocket
    if name in ("CallSession", "prepare", "warm_up"):
        from agent.voice import session

        return getattr(session, name)
    raise AttributeError(f"module 'agent.voice' has no attribute {name!r}")
