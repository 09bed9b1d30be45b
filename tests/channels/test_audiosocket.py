"""agent/channels/audiosocket.py: AudioSocket framing from literal bytes."""

from __future__ import annotations

import uuid

import pytest

from agent.channels import audiosocket as a
from agent.errors import InvalidInput

CALL = uuid.UUID("40325ec2-5efd-4bd3-805f-53576e581d13")


def test_frames_are_type_length_payload() -> None:
    assert a.encode(a.KIND_AUDIO, b"\x01\x02") == b"\x10\x00\x02\x01\x02"
    assert a.HANGUP_FRAME == b"\x00\x00\x00"
    assert a.audio_frame(b"\x00" * 320)[:3] == b"\x10\x01\x40"  # 320 = 0x0140, big-endian


def test_decoder_reads_a_stream_split_anywhere() -> None:
    stream = (a.encode(a.KIND_UUID, CALL.bytes) + a.encode(a.KIND_AUDIO, b"\x00\x01" * 160)
              + a.encode(a.KIND_DTMF, b"5") + a.HANGUP_FRAME)
    for cut in (1, 2, 3, 7, 100, len(stream)):
        decoder = a.Decoder()
        messages = []
        for i in range(0, len(stream), cut):
            messages += decoder.feed(stream[i : i + cut])
        decoder.close()
        assert [m.kind_name for m in messages] == ["uuid", "audio", "dtmf", "hangup"]
        assert a.parse_uuid(messages[0].payload) == str(CALL)
        assert a.parse_dtmf(messages[2].payload) == "5"
        assert len(a.parse_audio(messages[1].payload)) == 320


def test_unknown_types_decode_and_are_named() -> None:
    (message,) = a.Decoder().feed(b"\x42\x00\x01x")
    assert message.kind_name == "unknown(0x42)"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: a.parse_header(b"\x10\x00"), "expected a 3-byte header, got 2 bytes"),
        (lambda: a.parse_header(b"\x10\xff\xff", max_payload_bytes=1000), "payload length 65535 is over the limit"),
        (lambda: a.parse_uuid(b"\x01" * 15), "expected 16 bytes, got 15"),
        (lambda: a.parse_dtmf(b"x"), "expected one ASCII byte of 0-9"),
        (lambda: a.parse_dtmf(b"12"), "got 2 bytes"),
        (lambda: a.parse_audio(b"\x00" * 321), "whole 16-bit samples, got 321 bytes"),
    ],
)
def test_bad_frames_are_invalid_input(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match=message):
        call()


def test_a_length_larger_than_what_follows_is_reported_at_end_of_stream() -> None:
    decoder = a.Decoder()
    assert decoder.feed(b"\x10\x01\x40" + b"\x00" * 100) == []  # 320 announced, 100 sent
    with pytest.raises(InvalidInput, match="ended inside a message \\(103 bytes left over\\)"):
        decoder.close()
