"""Twilio Media Streams and voice webhooks: a pure codec (no sockets).

Inbound WebSocket text frames (``connected``, ``start``, ``media``, ``dtmf``, ``mark``,
``stop``) parse into small frozen events; anything else raises ``InvalidInput`` saying what was
expected. Outbound ``media`` / ``mark`` / ``clear`` messages are rendered as JSON text. Also:
the TwiML that connects a call to our stream, the REST request that redirects a live call, and
the ``X-Twilio-Signature`` check (HMAC-SHA1 of the URL and the sorted POST parameters).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from agent.errors import InvalidInput

MULAW_FORMAT = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
MAX_MEDIA_BYTES = 8_000  # 1 s of 8 kHz mu-law in one message; Twilio sends 160 bytes (20 ms)
EVENTS = ("connected", "start", "media", "dtmf", "mark", "stop")
DTMF_DIGITS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected:
    protocol: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    custom_parameters: tuple[tuple[str, str], ...]
    encoding: str
    sample_rate_hz: int
    channels: int

    def parameter(self, name: str) -> str | None:
        return next((v for k, v in self.custom_parameters if k == name), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Media:
    stream_sid: str
    payload: bytes  # raw 8 kHz mu-law
    timestamp_ms: int
    track: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Dtmf:
    stream_sid: str
    digit: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Mark:
    stream_sid: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop:
    stream_sid: str
    call_sid: str


TwilioEvent = Connected | Start | Media | Dtmf | Mark | Stop


def _field(obj: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        got = "nothing" if value is None else type(value).__name__
        raise InvalidInput(f"Twilio {where}: expected {name!r} as {kind.__name__}, got {got}")
    return value


def _section(message: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    return _field(message, name, dict, f"'{message.get('event')}' message")  # type: ignore[no-any-return]


def parse_event(payload: str | bytes, *, max_bytes: int = 64_000) -> TwilioEvent:
    """One inbound WebSocket message -> an event; raises InvalidInput on anything else."""
    if isinstance(payload, (bytes, bytearray)):
        raise InvalidInput(f"Twilio media stream: expected a JSON text frame, got a binary frame of {len(payload)} bytes")
    if len(payload) > max_bytes:
        raise InvalidInput(f"Twilio media stream: message is {len(payload):,} characters; the limit is {max_bytes:,}")
    try:
        message = json.loads(payload)
    except (json.JSONDecodeError, RecursionError) as e:
        raise InvalidInput("Twilio media stream: expected a JSON object, got text that is not JSON") from e
    if not isinstance(message, dict):
        raise InvalidInput(f"Twilio media stream: expected a JSON object, got {type(message).__name__}")
    event = message.get("event")
    if event not in EVENTS:
        shown = event if isinstance(event, str) and len(event) <= 32 else type(event).__name__
        raise InvalidInput(f"Twilio media stream: expected an event in {list(EVENTS)}, got {shown!r}")
    return _PARSERS[event](message)


def _connected(m: Mapping[str, Any]) -> Connected:
    return Connected(protocol=str(m.get("protocol", "")))


def _start(m: Mapping[str, Any]) -> Start:
    start = _section(m, "start")
    fmt = start.get("mediaFormat") or {}
    if not isinstance(fmt, dict):
        raise InvalidInput(f"Twilio 'start': expected 'mediaFormat' as an object, got {type(fmt).__name__}")
    params = start.get("customParameters") or {}
    if not isinstance(params, dict):
        raise InvalidInput(f"Twilio 'start': expected 'customParameters' as an object, got {type(params).__name__}")
    encoding = str(fmt.get("encoding", MULAW_FORMAT["encoding"]))
    rate, channels = fmt.get("sampleRate", 8000), fmt.get("channels", 1)
    if encoding != MULAW_FORMAT["encoding"] or rate != 8000 or channels != 1:
        raise InvalidInput(f"Twilio 'start': expected audio/x-mulaw, 8000 Hz, 1 channel, got "
                           f"{encoding[:40]}, {rate!r} Hz, {channels!r} channels")
    return Start(
        stream_sid=_field(start, "streamSid", str, "'start'"),
        call_sid=_field(start, "callSid", str, "'start'"),
        account_sid=str(start.get("accountSid", "")),
        custom_parameters=tuple((str(k), str(v)) for k, v in params.items()),
        encoding=encoding, sample_rate_hz=8000, channels=1,
    )


def _media(m: Mapping[str, Any]) -> Media:
    media = _section(m, "media")
    text = _field(media, "payload", str, "'media'")
    if len(text) > MAX_MEDIA_BYTES * 4 // 3 + 4:
        raise InvalidInput(f"Twilio 'media': payload is {len(text):,} base64 characters; the limit is "
                           f"{MAX_MEDIA_BYTES * 4 // 3 + 4:,} (1 s of audio)")
    try:
        audio = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidInput("Twilio 'media': expected a base64 payload, got invalid base64") from e
    timestamp = media.get("timestamp", 0)
    try:
        timestamp_ms = int(timestamp)
    except (TypeError, ValueError):
        raise InvalidInput(f"Twilio 'media': expected a numeric timestamp, got {type(timestamp).__name__}") from None
    return Media(stream_sid=_field(m, "streamSid", str, "'media' message"), payload=audio,
                 timestamp_ms=timestamp_ms, track=str(media.get("track", "inbound")))


def _dtmf(m: Mapping[str, Any]) -> Dtmf:
    digit = _field(_section(m, "dtmf"), "digit", str, "'dtmf'")
    if len(digit) != 1 or digit not in DTMF_DIGITS:
        raise InvalidInput(f"Twilio 'dtmf': expected one of 0-9 * # A-D, got {len(digit)} characters")
    return Dtmf(stream_sid=_field(m, "streamSid", str, "'dtmf' message"), digit=digit)


def _mark(m: Mapping[str, Any]) -> Mark:
    name = _field(_section(m, "mark"), "name", str, "'mark'")
    return Mark(stream_sid=_field(m, "streamSid", str, "'mark' message"), name=name[:200])


def _stop(m: Mapping[str, Any]) -> Stop:
    section = m.get("stop")
    stop: Mapping[str, Any] = section if isinstance(section, dict) else {}
    return Stop(stream_sid=str(m.get("streamSid", "")), call_sid=str(stop.get("callSid", "")))


_PARSERS: dict[str, Callable[[Mapping[str, Any]], TwilioEvent]] = {
    "connected": _connected, "start": _start, "media": _media, "dtmf": _dtmf, "mark": _mark, "stop": _stop,
}


# --- outbound -----------------------------------------------------------------------------------


def media_message(stream_sid: str, mulaw: bytes) -> str:
    """Audio for the caller: raw 8 kHz mu-law, no header, base64."""
    payload = base64.b64encode(mulaw).decode("ascii")
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def mark_message(stream_sid: str, name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    """Drop the audio Twilio has queued for the caller (barge-in)."""
    return json.dumps({"event": "clear", "streamSid": stream_sid})


def connect_stream_twiml(stream_url: str, parameters: Mapping[str, str] | None = None) -> str:
    """TwiML answering a call by connecting it to a bidirectional media stream at ``stream_url``."""
    params = "".join(
        f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in (parameters or {}).items()
    )
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            f"<Response><Connect><Stream url={quoteattr(stream_url)}>{params}</Stream></Connect></Response>")


def redirect_call_request(api_base: str, account_sid: str, call_sid: str, twiml: str) -> tuple[str, dict[str, str]]:
    """``(url, form)`` of the REST request that replaces a live call's instructions with ``twiml``."""
    url = f"{api_base.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json"
    return url, {"Twiml": twiml}


def signature(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """Twilio's ``X-Twilio-Signature``: base64 HMAC-SHA1 of the URL followed by the sorted parameters."""
    data = url + "".join(f"{k}{v}" for k, v in sorted((params or {}).items()))
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_is_valid(auth_token: str, url: str, params: Mapping[str, str] | None, given: str | None) -> bool:
    if not given or not auth_token:
        return False
    return hmac.compare_digest(signature(auth_token, url, params), given)
