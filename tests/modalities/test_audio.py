"""modalities/audio.py: G.711 mu-law, PCM, resampling, uploads."""

from __future__ import annotations

import io
import subprocess
import warnings

import numpy as np
import pytest
import soundfile as sf

from agent.errors import InvalidInput
from modalities import audio
from modalities.audio import (
    SAMPLE_RATE,
    decode_upload,
    float32_to_mulaw,
    float32_to_pcm16_bytes,
    frames_of,
    mulaw_to_float32,
    mulaw_to_pcm16,
    pcm16_bytes_to_float32,
    pcm16_to_mulaw,
    resample,
)


def tone(freq_hz: float, rate_hz: int, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# --- mu-law ---------------------------------------------------------------------------------------


def test_mulaw_decodes_the_g711_reference_values() -> None:
    decoded = mulaw_to_pcm16(bytes([0xFF, 0x7F, 0x00, 0x80, 0xFE, 0x7E]))
    assert decoded.tolist() == [0, 0, -32124, 32124, 8, -8]


def test_mulaw_encoder_matches_audioop_on_every_16_bit_value() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        audioop = pytest.importorskip("audioop")  # gone in Python 3.13; the reference where present
    everything = np.arange(-32768, 32768, dtype=np.int16)
    assert pcm16_to_mulaw(everything) == audioop.lin2ulaw(everything.tobytes(), 2)
    codes = bytes(range(256))
    assert mulaw_to_pcm16(codes).tobytes() == audioop.ulaw2lin(codes, 2)


def test_mulaw_round_trip_keeps_speech_quality() -> None:
    x = tone(440, 8000, amplitude=0.3)
    y = mulaw_to_float32(float32_to_mulaw(x))
    snr_db = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((x - y).astype(np.float64) ** 2))
    assert snr_db > 30  # G.711 gives about 38 dB on a full-scale tone
    assert len(float32_to_mulaw(x)) == len(x)  # one byte a sample, no header


def test_every_mulaw_code_survives_decode_then_encode() -> None:
    codes = bytes(range(256))
    again = pcm16_to_mulaw(mulaw_to_pcm16(codes))
    # 0x7F (negative zero) re-encodes as 0xFF (positive zero); every other code is its own inverse
    assert [a for a, b in zip(codes, again) if a != b] == [0x7F]


# --- PCM -----------------------------------------------------------------------------------------


def test_pcm16_round_trip_and_clipping() -> None:
    x = np.array([0.0, 0.5, -0.5, 1.5, -2.0], dtype=np.float32)
    data = float32_to_pcm16_bytes(x)
    assert len(data) == 10
    assert np.frombuffer(data, "<i2").tolist() == [0, 16384, -16384, 32767, -32767]
    back = pcm16_bytes_to_float32(data)
    np.testing.assert_allclose(back[:3], x[:3], atol=1e-4)


def test_pcm16_rejects_half_a_sample() -> None:
    with pytest.raises(InvalidInput, match="even number of bytes, got 3"):
        pcm16_bytes_to_float32(b"\x00\x01\x02")


# --- resampling -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 8000), (22050, 8000), (8000, 22050), (22050, 16000)])
def test_resample_keeps_duration_and_a_tone_in_band(src: int, dst: int) -> None:
    x = tone(1000, src, seconds=1.0)
    y = resample(x, src, dst)
    assert y.dtype == np.float32
    assert abs(len(y) - dst) <= 1
    assert rms(y[200:-200]) == pytest.approx(rms(x), rel=0.02)
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * dst / len(y) - 1000) < 5


def test_downsampling_filters_out_what_would_alias() -> None:
    """A 6 kHz tone cannot exist at 8 kHz; naive decimation would fold it to 2 kHz at full level."""
    x = tone(6000, 16000, seconds=1.0)
    naive = x[::2]
    assert rms(naive) > 0.3
    filtered = resample(x, 16000, 8000)
    assert rms(filtered[100:-100]) < 0.01 * rms(x)


def test_resample_rejects_a_zero_rate() -> None:
    with pytest.raises(InvalidInput, match="sample rates must be positive"):
        resample(np.zeros(10, np.float32), 0, 8000)


def test_frames_of_pads_the_last_frame_with_silence() -> None:
    frames = frames_of(b"\x01" * 350, 160, pad=audio.MULAW_SILENCE)
    assert [len(f) for f in frames] == [160, 160, 160]
    assert frames[-1][30:] == b"\xff" * 130


# --- uploads --------------------------------------------------------------------------------------


def encoded(samples: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize(("fmt", "subtype"), [("WAV", "PCM_16"), ("WAV", "ULAW"), ("FLAC", None), ("OGG", "VORBIS")])
def test_decode_upload_reads_common_formats_to_16k_mono(fmt: str, subtype: str | None) -> None:
    stereo = np.stack([tone(440, 44100, 0.5), tone(440, 44100, 0.5)], axis=1)
    clip = decode_upload(encoded(stereo, 44100, fmt, subtype))
    assert clip.sample_rate_hz == SAMPLE_RATE
    assert clip.samples.ndim == 1
    assert clip.duration_s == pytest.approx(0.5, abs=0.01)
    assert rms(clip.samples) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


def test_decode_upload_reads_mp3() -> None:
    x = tone(440, 16000, 1.0)
    try:
        data = encoded(x, 16000, "MP3")
    except (sf.LibsndfileError, TypeError, ValueError):
        data = subprocess.run(["ffmpeg", "-v", "error", "-f", "f32le", "-ar", "16000", "-ac", "1", "-i", "pipe:0",
                               "-f", "mp3", "pipe:1"], input=x.tobytes(), capture_output=True, check=True).stdout
    clip = decode_upload(data)
    assert clip.duration_s == pytest.approx(1.0, abs=0.1)
    assert rms(clip.samples) > 0.2


def test_decode_upload_reads_the_shared_flac(shared_data) -> None:  # type: ignore[no-untyped-def]
    path = shared_data / "speech" / "jfk.flac"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    clip = decode_upload(path.read_bytes())
    assert clip.duration_s == pytest.approx(11.0, abs=0.1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not audio at all" * 10, "not a readable audio file"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt garbage", "not a readable audio file"),
        (b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(200), "not a readable audio file"),
    ],
)
def test_decode_upload_rejects_garbage(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        decode_upload(data)


def test_decode_upload_enforces_size_and_duration_limits() -> None:
    long_wav = encoded(np.zeros(16000 * 5, np.float32), 16000, "WAV", "PCM_16")
    with pytest.raises(InvalidInput, match="lasts 5.0 s; the limit is 2 s"):
        decode_upload(long_wav, max_duration_s=2.0)
    with pytest.raises(InvalidInput, match="the limit is 1,000"):
        decode_upload(long_wav, max_bytes=1000)


def test_decode_upload_rejects_formats_that_are_not_allowed() -> None:
    aiff = encoded(tone(440, 8000, 0.2), 8000, "AIFF", "PCM_16")
    with pytest.raises(InvalidInput, match="expected one of .*got AIFF"):
        decode_upload(aiff)


def test_decode_upload_rejects_non_finite_samples() -> None:
    x = tone(440, 8000, 0.2)
    x[5] = np.nan
    with pytest.raises(InvalidInput, match="NaN or infinity"):
        decode_upload(encoded(x, 8000, "WAV", "FLOAT"))
