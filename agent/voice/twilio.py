"""Twilio gateway: ``POST /twilio/voice`` (TwiML) and the ``/twilio/media`` Media Streams WebSocket.

A call rings -> Twilio posts the voice webhook -> we answer with TwiML that connects the call
to our WebSocket (``<Connect><Stream>``, bidirectional), passing the hashed caller number as
a stream parameter -> Twilio streams 8 kHz mu-law both ways. A hand-off redirects the live
call with Twilio's REST API (``POST .../Calls/{CallSid}.json`` with ``Twiml``), which ends
the stream and puts the caller in the human queue.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from agent.channels import twilio as codec
from agent.config import TelephonyConfig
from agent.errors import InvalidInput
from agent.messages import AudioClip
from agent.voice.playback import CallClosed
from agent.voice.session import CallInfo, CallLimiter, CallSession, caller_user_id
from modalities.audio import TELEPHONE_FRAME_SAMPLES, mulaw_to_float32, to_telephone_mulaw

log = logging.getLogger("agent.voice.twilio")

MAX_WEBHOOK_BYTES = 64_000
SOCKET_PATH = "/twilio/media"


class TwilioTransport:
    """Outbound side of one Media Stream: media, mark and clear messages; REST redirect to transfer."""

    frame_bytes = TELEPHONE_FRAME_SAMPLES  # 160 mu-law bytes = 20 ms
    silence = b"\xff"
    echoes_marks = True

    def __init__(self, websocket: WebSocket, config: TelephonyConfig, start: codec.Start) -> None:
        self.websocket = websocket
        self.config = config
        self.stream_sid = start.stream_sid
        self.call_sid = start.call_sid
        self.account_sid = config.twilio_account_sid or start.account_sid
        self._lock = asyncio.Lock()
        self._closed = False

    def encode(self, clip: AudioClip) -> bytes:
        return to_telephone_mulaw(clip)

    async def _send(self, text: str) -> None:
        if self._closed:
            raise CallClosed("the media stream is closed")
        try:
            async with self._lock:
                await asyncio.wait_for(self.websocket.send_text(text), self.config.send_timeout_s)
        except (TimeoutError, RuntimeError, OSError) as e:
            self._closed = True
            raise CallClosed(f"sending to Twilio failed: {type(e).__name__}") from e
        except Exception as e:  # websockets' ConnectionClosed and friends, by whatever server runs us
            self._closed = True
            raise CallClosed(f"sending to Twilio failed: {type(e).__name__}") from e

    async def send_frame(self, frame: bytes) -> None:
        await self._send(codec.media_message(self.stream_sid, frame))

    async def send_mark(self, name: str) -> None:
        await self._send(codec.mark_message(self.stream_sid, name))

    async def clear(self) -> None:
        await self._send(codec.clear_message(self.stream_sid))

    async def transfer(self, summary: str) -> bool:
        """Redirect the live call to the human queue (TwiML in ``telephony.twilio_transfer_twiml``)."""
        import httpx

        url, form = codec.redirect_call_request(self.config.twilio_api_base, self.account_sid, self.call_sid,
                                                self.config.twilio_transfer_twiml)
        auth = (self.account_sid, self.config.twilio_auth_token.reveal())
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.post(url, data=form, auth=auth)
        except httpx.HTTPError as e:
            log.error("call %s: transfer request failed (%s)", self.call_sid, type(e).__name__)
            return False
        if response.status_code // 100 != 2:
            log.error("call %s: Twilio refused the transfer with HTTP %d", self.call_sid, response.status_code)
            return False
        return True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self.websocket.close(code=1000)
        except Exception:  # noqa: BLE001, S110 - already closed by the peer; nothing is left to do
            pass


class TwilioCall:
    """Reads one Media Stream and drives a ``CallSession``."""

    def __init__(self, agent: Any, websocket: WebSocket) -> None:
        self.agent = agent
        self.websocket = websocket
        self.config: TelephonyConfig = agent.config.telephony
        self.session: CallSession | None = None
        self.transport: TwilioTransport | None = None
        self._early_errors = 0

    async def run(self) -> None:
        reason: str | None = None
        try:
            while reason is None:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    reason = "socket closed"
                    break
                payload = message.get("text")
                reason = self._handle(payload if payload is not None else message.get("bytes") or b"")
        finally:
            if self.session is not None:
                await self.session.finish(reason or "cancelled")
            if self.transport is not None:
                await self.transport.close()

    def _handle(self, payload: str | bytes) -> str | None:
        """Handle one message; the reason the call is over, or None while it goes on."""
        try:
            event = codec.parse_event(payload, max_bytes=self.config.max_frame_bytes)
        except InvalidInput as e:
            return self._error(str(e))
        match event:
            case codec.Start():
                if self.session is not None:
                    return self._error("a second 'start' on the same stream")
                self._start(event)
            case codec.Media() | codec.Dtmf() | codec.Mark() if self.session is None:
                return self._error(f"'{type(event).__name__.lower()}' before 'start'")
            case codec.Media() | codec.Dtmf() | codec.Mark() if event.stream_sid != self.transport.stream_sid:  # type: ignore[union-attr]
                return self._error("a message for another streamSid")
            case codec.Media():
                if event.track in ("inbound", "inbound_track") and event.payload:
                    self.session.on_audio(mulaw_to_float32(event.payload))  # type: ignore[union-attr]
            case codec.Dtmf():
                self.session.on_dtmf(event.digit)  # type: ignore[union-attr]
            case codec.Mark():
                self.session.on_mark(event.name)  # type: ignore[union-attr]
            case codec.Stop():
                return "stop"
        return "gateway stopped taking audio" if self.session is not None and self.session.closed else None

    def _start(self, start: codec.Start) -> None:
        self.transport = TwilioTransport(self.websocket, self.config, start)
        user_id = start.parameter("user_id") or caller_user_id(start.parameter("caller"), self.config.caller_hash_salt)
        info = CallInfo(conversation_id=start.call_sid, user_id=user_id, gateway="twilio")
        self.session = CallSession(self.agent, self.transport, info)
        self.session.start()

    def _error(self, what: str) -> str | None:
        if self.session is not None:
            too_many = self.session.protocol_error(what)
        else:
            self._early_errors += 1
            log.warning("Twilio stream: ignored a bad message before 'start': %s", what)
            too_many = self._early_errors > self.config.max_protocol_errors
        return "too many protocol errors" if too_many else None


# --- routes ---------------------------------------------------------------------------------------


def _public_base(request: Request | WebSocket, public_url: str) -> str:
    if public_url:
        return public_url.rstrip("/")
    host = request.headers.get("host", "localhost")
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return f"{'https' if proto in ('https', 'wss') else 'http'}://{host}"


def stream_url(request: Request, public_url: str) -> str:
    """``wss://<public host>/twilio/media``: Twilio only connects streams over TLS."""
    base = _public_base(request, public_url)
    return "wss://" + base.split("://", 1)[1] + SOCKET_PATH


def _signed_url(request: Request | WebSocket, public_url: str, *, websocket: bool) -> str:
    base = _public_base(request, public_url)
    if websocket:
        base = "wss://" + base.split("://", 1)[1]
    query = f"?{request.url.query}" if request.url.query else ""
    return base + request.url.path + query


def twilio_routes(agent: Any) -> list[BaseRoute]:
    """``POST /twilio/voice`` and WebSocket ``/twilio/media`` for the lead's app to mount."""
    limiter = CallLimiter(agent.config.telephony.max_calls)

    async def voice(request: Request) -> Response:
        return await _voice_webhook(agent, request)

    async def media(websocket: WebSocket) -> None:
        await _media_socket(agent, websocket, limiter)

    return [Route("/twilio/voice", voice, methods=["POST"]), WebSocketRoute(SOCKET_PATH, media)]


async def _voice_webhook(agent: Any, request: Request) -> Response:
    config: TelephonyConfig = agent.config.telephony
    public_url = agent.config.server.public_url
    if int(request.headers.get("content-length") or 0) > MAX_WEBHOOK_BYTES:
        return Response(f"webhook body over {MAX_WEBHOOK_BYTES} bytes", status_code=413)
    form = await request.form()
    params = {k: v for k, v in form.items() if isinstance(v, str)}
    if config.twilio_validate_signature:
        url = _signed_url(request, public_url, websocket=False)
        if not codec.signature_is_valid(config.twilio_auth_token.reveal(), url, params,
                                        request.headers.get("x-twilio-signature")):
            log.warning("Twilio voice webhook: invalid or missing X-Twilio-Signature")
            return Response("invalid X-Twilio-Signature", status_code=403)
    user_id = caller_user_id(params.get("From"), config.caller_hash_salt)
    twiml = codec.connect_stream_twiml(stream_url(request, public_url), {"user_id": user_id} if user_id else {})
    return Response(twiml, media_type="application/xml")


async def _media_socket(agent: Any, websocket: WebSocket, limiter: CallLimiter) -> None:
    config: TelephonyConfig = agent.config.telephony
    if config.twilio_validate_signature:
        url = _signed_url(websocket, agent.config.server.public_url, websocket=True)
        if not codec.signature_is_valid(config.twilio_auth_token.reveal(), url, {},
                                        websocket.headers.get("x-twilio-signature")):
            log.warning("Twilio media stream: invalid or missing X-Twilio-Signature")
            await websocket.close(code=1008)
            return
    await websocket.accept()
    if not limiter.try_acquire():
        log.warning("Twilio media stream refused: %d calls in progress", limiter.active)
        await websocket.close(code=1013)
        return
    try:
        await TwilioCall(agent, websocket).run()
    finally:
        limiter.release()
