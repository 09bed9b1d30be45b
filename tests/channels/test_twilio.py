"""agent/channels/twilio.py: Media Streams messages from literal JSON, TwiML, signatures."""

from __future__ import annotations

import base64
import json
from xml.etree import ElementTree

import pytest

from agent.channels import twilio
from agent.errors import InvalidInput

S = "MZ18ad3ab5a668481ce02b83e7395059f0"
START = {
    "event": "start", "sequenceNumber": "1", "streamSid": S,
    "start": {"accountSid": "AC123", "streamSid": S, "callSid": "CA456", "tracks": ["inbound"],
              "customParameters": {"user_id": "tel-abc"},
              "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
}


def test_parses_each_event_twilio_sends() -> None:
    assert twilio.parse_event('{"event": "connected", "protocol": "Call", "version": "1.0.0"}') == \
        twilio.Connected(protocol="Call")
    start = twilio.parse_event(json.dumps(START))
    assert isinstance(start, twilio.Start)
    assert (start.stream_sid, start.call_sid, start.account_sid) == (S, "CA456", "AC123")
    assert start.parameter("user_id") == "tel-abc" and start.sample_rate_hz == 8000
    payload = base64.b64encode(b"\xff" * 160).decode()
    media = twilio.parse_event(json.dumps({"event": "media", "sequenceNumber": "3", "streamSid": S,
                                           "media": {"track": "inbound", "chunk": "1", "timestamp": "5",
                                                     "payload": payload}}))
    assert media == twilio.Media(stream_sid=S, payload=b"\xff" * 160, timestamp_ms=5, track="inbound")
    assert twilio.parse_event(json.dumps({"event": "dtmf", "streamSid": S, "dtmf": {"track": "inbound_track",
                                                                                    "digit": "0"}})) == \
        twilio.Dtmf(stream_sid=S, digit="0")
    assert twilio.parse_event(json.dumps({"event": "mark", "streamSid": S, "mark": {"name": "r1.0"}})) == \
        twilio.Mark(stream_sid=S, name="r1.0")
    assert twilio.parse_event(json.dumps({"event": "stop", "streamSid": S, "stop": {"callSid": "CA456"}})) == \
        twilio.Stop(stream_sid=S, call_sid="CA456")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x00\x01binary", "expected a JSON text frame, got a binary frame of 8 bytes"),
        ("not json {", "expected a JSON object, got text that is not JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"event": "hello"}', "expected an event in .*got 'hello'"),
        ('{"event": 7}', "got 'int'"),
        ('{"event": "media", "streamSid": "MZ1", "media": {"payload": "@@@not base64@@@"}}', "invalid base64"),
        ('{"event": "media", "streamSid": "MZ1"}', "expected 'media' as dict, got nothing"),
        ('{"event": "media", "media": {"payload": ""}}', "expected 'streamSid' as str, got nothing"),
        ('{"event": "media", "streamSid": "MZ1", "media": {"payload": 5}}', "expected 'payload' as str, got int"),
        ('{"event": "dtmf", "streamSid": "MZ1", "dtmf": {"digit": "12"}}', "expected one of 0-9"),
        (('{"event": "start", "start": {"streamSid": "MZ1", "callSid": "CA1", "mediaFormat": '
          '{"encoding": "audio/l16", "sampleRate": 16000, "channels": 1}}}'), "expected audio/x-mulaw, 8000 Hz"),
        ('{"event": "start", "start": {"callSid": "CA1"}}', "expected 'streamSid' as str"),
    ],
)
def test_bad_messages_are_invalid_input_saying_what_was_expected(payload: str | bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        twilio.parse_event(payload)


def test_absurd_sizes_are_refused_before_decoding() -> None:
    huge = json.dumps({"event": "media", "streamSid": S, "media": {"payload": "A" * 100_000}})
    with pytest.raises(InvalidInput, match="the limit is 64,000"):
        twilio.parse_event(huge)
    big = json.dumps({"event": "media", "streamSid": S, "media": {"payload": "A" * 20_000}})
    with pytest.raises(InvalidInput, match="1 s of audio"):
        twilio.parse_event(big, max_bytes=1_000_000)


def test_error_messages_do_not_echo_what_was_sent() -> None:
    secret = "my card number is 4111111111111111"
    with pytest.raises(InvalidInput) as caught:
        twilio.parse_event(json.dumps({"event": secret}))
    assert "4111" not in str(caught.value)


def test_outbound_messages_have_twilios_shape() -> None:
    media = json.loads(twilio.media_message(S, b"\x7f\xff"))
    assert media == {"event": "media", "streamSid": S, "media": {"payload": base64.b64encode(b"\x7f\xff").decode()}}
    assert json.loads(twilio.mark_message(S, "r1.0")) == {"event": "mark", "streamSid": S, "mark": {"name": "r1.0"}}
    assert json.loads(twilio.clear_message(S)) == {"event": "clear", "streamSid": S}


def test_twiml_connects_a_bidirectional_stream_with_escaped_parameters() -> None:
    xml = twilio.connect_stream_twiml("wss://agent.example.com/twilio/media", {"user_id": 'a"<b>&'})
    root = ElementTree.fromstring(xml)
    stream = root.find("./Connect/Stream")
    assert root.tag == "Response" and stream is not None
    assert stream.get("url") == "wss://agent.example.com/twilio/media"
    parameter = stream.find("Parameter")
    assert parameter is not None and (parameter.get("name"), parameter.get("value")) == ("user_id", 'a"<b>&')


def test_signature_matches_twilios_published_examples() -> None:
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675310", "Digits": "1234",
              "From": "+14158675310", "To": "+18005551212"}
    assert twilio.signature("12345", url, params) == "GvWf1cFY/Q7PnoempGyD5oXAezc="
    assert twilio.signature_is_valid("12345", url, params, "GvWf1cFY/Q7PnoempGyD5oXAezc=")
    assert not twilio.signature_is_valid("12345", url, {**params, "Digits": "9"}, "GvWf1cFY/Q7PnoempGyD5oXAezc=")
    assert not twilio.signature_is_valid("12345", url, params, None)
    assert not twilio.signature_is_valid("", url, params, "GvWf1cFY/Q7PnoempGyD5oXAezc=")


def test_redirect_request_targets_the_live_call() -> None:
    url, form = twilio.redirect_call_request("https://api.twilio.com/", "AC1", "CA2", "<Response/>")
    assert url == "https://api.twilio.com/2010-04-01/Accounts/AC1/Calls/CA2.json"
    assert form == {"Twiml": "<Response/>"}
