"""Asterisk AudioSocket gateway: a TCP server, one connection per call.

The dialplan's ``AudioSocket(<uuid>,host:port)`` connects, sends the call's UUID, then 20 ms
frames of 8 kHz 16-bit PCM (and DTMF); we answer with audio frames. A hand-off emits an event
(log line and the optional ``on_handoff`` callback) and hangs up cleanly (type ``0x00``), so the
dialplan goes on to its next step, for example ``Queue(support)``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
from collections.abc import Callable
from typing import Any

from agent.channels import audiosocket as codec
from agent.config import TelephonyConfig
from agent.errors import InvalidInput
from agent.messages import AudioClip
from agent.voice.playback import CallClosed
from agent.voice.session import CallInfo, CallLimiter, CallSession
from modalities.audio import pcm16_bytes_to_float32, to_telephone_pcm16

log = logging.getLogger("agent.voice.audiosocket")

FIRST_MESSAGE_TIMEOUT_S = 10.0  # the UUID must come this soon after connecting
IDLE_TIMEOUT_S = 30.0  # Asterisk sends audio every 20 ms; this much silence on the wire ends the call
SEND_BUFFER_BYTES = 16_384  # kernel send buffer per call (Linux doubles it): about 2 s of audio
WRITE_BUFFER_BYTES = 8_192  # audio queued in the process before writing waits: about 0.5 s
HandoffHook = Callable[[dict[str, str]], Any]  # called with {"conversation_id", "summary"}; may be async


class AudioSocketTransport:
    """Outbound side of one AudioSocket connection."""

    frame_bytes = codec.FRAME_BYTES  # 320 bytes = 20 ms
    silence = b"\x00"
    echoes_marks = False  # AudioSocket has no marks: what is sent paced in real time has played

    def __init__(self, writer: asyncio.StreamWriter, config: TelephonyConfig, conversation_id: str,
                 on_handoff: HandoffHook | None) -> None:
        self.writer = writer
        self.config = config
        self.conversation_id = conversation_id
        self.on_handoff = on_handoff
        self._closed = False
        writer.transport.set_write_buffer_limits(high=WRITE_BUFFER_BYTES)

    def encode(self, clip: AudioClip) -> bytes:
        return to_telephone_pcm16(clip)

    async def _write(self, data: bytes) -> None:
        if self._closed or self.writer.is_closing():
            raise CallClosed("the AudioSocket connection is closed")
        try:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), self.config.send_timeout_s)
        except (TimeoutError, ConnectionError, OSError) as e:
            self._closed = True
            raise CallClosed(f"Asterisk stopped taking audio ({type(e).__name__})") from e

    async def send_frame(self, frame: bytes) -> None:
        await self._write(codec.audio_frame(frame))

    async def send_mark(self, name: str) -> None:
        return None

    async def clear(self) -> None:
        return None  # nothing is queued beyond the frame lead; sending simply stops

    async def transfer(self, summary: str) -> bool:
        """Emit the hand-off event, then hang up so the dialplan continues (to a human queue)."""
        event = {"event": "handoff", "conversation_id": self.conversation_id, "summary": summary}
        log.info("call %s: hand-off event; hanging up to the dialplan", self.conversation_id)
        if self.on_handoff is not None:
            try:
                outcome = self.on_handoff(event)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("call %s: the hand-off hook failed", self.conversation_id)
        await self.close()
        return True

    async def close(self) -> None:
        """Hang up (type 0x00) and close the connection; drop it outright if it stopped taking data."""
        if not self._closed:
            try:
                await self._write(codec.HANGUP_FRAME)
            except CallClosed:
                pass
        stuck = self._closed and self.writer.transport.get_write_buffer_size() > 0
        self._closed = True
        if stuck or not self.writer.can_write_eof():
            self.writer.transport.abort()  # close() would wait for a reader that is not reading
            return
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        except (TimeoutError, ConnectionError, OSError):
            self.writer.transport.abort()


class _Ended(Exception):
    """The connection ended, cleanly or not; ``reason`` says how."""


class AudioSocketCall:
    def __init__(self, agent: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 on_handoff: HandoffHook | None) -> None:
        self.agent, self.reader, self.writer = agent, reader, writer
        self.config: TelephonyConfig = agent.config.telephony
        self.on_handoff = on_handoff
        self.session: CallSession | None = None
        self.transport: AudioSocketTransport | None = None

    async def _read(self, timeout_s: float) -> codec.Message:
        try:
            header = await asyncio.wait_for(self.reader.readexactly(codec.HEADER_BYTES), timeout_s)
            kind, length = codec.parse_header(header, max_payload_bytes=self.config.max_frame_bytes)
            payload = await asyncio.wait_for(self.reader.readexactly(length), timeout_s)
        except asyncio.IncompleteReadError as e:
            raise _Ended("connection closed" if not e.partial else "connection closed inside a message") from e
        except TimeoutError as e:
            raise _Ended("no data from Asterisk") from e
        except (ConnectionError, OSError) as e:
            raise _Ended(f"connection error ({type(e).__name__})") from e
        except InvalidInput as e:  # an absurd length: the stream cannot be resynchronised
            raise _Ended(str(e)) from e
        return codec.Message(kind=kind, payload=payload)

    async def run(self) -> None:
        reason = "hangup"
        try:
            first = await self._read(FIRST_MESSAGE_TIMEOUT_S)
            if first.kind != codec.KIND_UUID:
                raise _Ended(f"expected a UUID message first, got {first.kind_name}")
            self._start(codec.parse_uuid(first.payload))
            while not self.session.closed:  # type: ignore[union-attr]
                if not self._dispatch(await self._read(IDLE_TIMEOUT_S)):
                    break
        except _Ended as e:
            reason = str(e)
        except InvalidInput as e:  # a bad UUID
            reason = str(e)
        finally:
            await self._end(reason)

    def _start(self, call_uuid: str) -> None:
        self.transport = AudioSocketTransport(self.writer, self.config, call_uuid, self.on_handoff)
        self.session = CallSession(self.agent, self.transport,
                                   CallInfo(conversation_id=call_uuid, user_id=None, gateway="audiosocket"))
        self.session.start()

    def _dispatch(self, message: codec.Message) -> bool:
        """Handle one message; False when the call is over."""
        session = self.session
        assert session is not None
        try:
            if message.kind == codec.KIND_AUDIO:
                session.on_audio(pcm16_bytes_to_float32(codec.parse_audio(message.payload)))
            elif message.kind == codec.KIND_DTMF:
                session.on_dtmf(codec.parse_dtmf(message.payload))
            elif message.kind == codec.KIND_HANGUP:
                return False
            elif message.kind == codec.KIND_ERROR:
                log.warning("call %s: Asterisk reported an error (code %s)", session.info.conversation_id,
                            message.payload[:1].hex() or "none")
                return False
            else:
                return not session.protocol_error(f"a message of type {message.kind_name}")
        except InvalidInput as e:
            return not session.protocol_error(str(e))
        return True

    async def _end(self, reason: str) -> None:
        if self.session is not None:
            await self.session.finish(reason)
        else:
            log.warning("AudioSocket connection closed before a call started: %s", reason)
        if self.transport is not None:
            await self.transport.close()
        else:
            self.writer.close()


async def serve_audiosocket(agent: Any, host: str, port: int, *,
                            on_handoff: HandoffHook | None = None) -> asyncio.Server:
    """Start the AudioSocket server (port 0 picks a free one); the caller closes it."""
    limiter = CallLimiter(agent.config.telephony.max_calls)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:  # a caller whose line stops reading is noticed in seconds, not minutes
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        if not limiter.try_acquire():
            log.warning("AudioSocket call refused: %d calls in progress", limiter.active)
            writer.write(codec.HANGUP_FRAME)
            writer.close()
            return
        try:
            await AudioSocketCall(agent, reader, writer, on_handoff).run()
        except Exception:  # one call's failure never takes the server down
            log.exception("AudioSocket call failed")
        finally:
            limiter.release()

    server = await asyncio.start_server(handle, host, port)
    return server
