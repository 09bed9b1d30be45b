"""Asterisk AudioSocket framing: a pure codec (no sockets).

Every message is 1 byte of type, 2 bytes of payload length (big-endian), then the payload:
``0x00`` hang-up, ``0x01`` UUID (16 bytes, first), ``0x03`` DTMF (one ASCII byte), ``0x10``
audio (signed 16-bit little-endian PCM, 8 kHz mono; 320 bytes = 20 ms), ``0xff`` error.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from agent.errors import InvalidInput

HEADER_BYTES = 3
KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO = 0x10
KIND_ERROR = 0xFF
KINDS = {KIND_HANGUP: "hangup", KIND_UUID: "uuid", KIND_DTMF: "dtmf", KIND_AUDIO: "audio", KIND_ERROR: "error"}
FRAME_BYTES = 320  # 20 ms of 8 kHz 16-bit mono
MAX_PAYLOAD_BYTES = 0xFFFF
DTMF_DIGITS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    kind: int
    payload: bytes

    @property
    def kind_name(self) -> str:
        return KINDS.get(self.kind, f"unknown(0x{self.kind:02x})")


def encode(kind: int, payload: bytes = b"") -> bytes:
    if not 0 <= kind <= 0xFF:
        raise ValueError(f"AudioSocket type must be a byte, got {kind}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"AudioSocket payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    return struct.pack(">BH", kind, len(payload)) + payload


def audio_frame(pcm16: bytes) -> bytes:
    return encode(KIND_AUDIO, pcm16)


HANGUP_FRAME = encode(KIND_HANGUP)


def parse_header(header: bytes, *, max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> tuple[int, int]:
    """``(type, payload length)`` from 3 header bytes; InvalidInput on a short header or an absurd length."""
    if len(header) != HEADER_BYTES:
        raise InvalidInput(f"AudioSocket: expected a {HEADER_BYTES}-byte header, got {len(header)} bytes")
    kind, length = struct.unpack(">BH", header)
    if length > max_payload_bytes:
        raise InvalidInput(f"AudioSocket: payload length {length} is over the limit of {max_payload_bytes} bytes")
    return kind, length


def parse_uuid(payload: bytes) -> str:
    if len(payload) != 16:
        raise InvalidInput(f"AudioSocket UUID: expected 16 bytes, got {len(payload)}")
    return str(uuid.UUID(bytes=payload))


def parse_dtmf(payload: bytes) -> str:
    digit = payload[:1].decode("ascii", errors="replace")
    if len(payload) != 1 or digit not in DTMF_DIGITS:
        raise InvalidInput(f"AudioSocket DTMF: expected one ASCII byte of 0-9 * # A-D, got {len(payload)} bytes")
    return digit


def parse_audio(payload: bytes) -> bytes:
    if len(payload) % 2:
        raise InvalidInput(f"AudioSocket audio: expected whole 16-bit samples, got {len(payload)} bytes")
    return payload


class Decoder:
    """Incremental decoder for a byte stream: ``feed`` bytes, get whole messages back."""

    def __init__(self, *, max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> None:
        self._buffer = bytearray()
        self.max_payload_bytes = max_payload_bytes

    def feed(self, data: bytes) -> list[Message]:
        self._buffer.extend(data)
        out = []
        while len(self._buffer) >= HEADER_BYTES:
            kind, length = parse_header(bytes(self._buffer[:HEADER_BYTES]), max_payload_bytes=self.max_payload_bytes)
            if len(self._buffer) < HEADER_BYTES + length:
                break
            out.append(Message(kind=kind, payload=bytes(self._buffer[HEADER_BYTES : HEADER_BYTES + length])))
            del self._buffer[: HEADER_BYTES + length]
        return out

    def close(self) -> None:
        """At end of stream: InvalidInput if a message was cut short."""
        if self._buffer:
            raise InvalidInput(f"AudioSocket: the stream ended inside a message ({len(self._buffer)} bytes left over)")
