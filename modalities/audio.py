"""Audio in: G.711 mu-law and 16-bit PCM conversions, resampling, and decoding of uploads.

Everything is numpy (no ``audioop``, which Python 3.13 removed). Float audio is float32 in
[-1, 1], mono, shape (n_samples,). Resampling uses a polyphase FIR filter with a Kaiser
window (``scipy.signal.resample_poly``), which low-pass filters before decimating, so
downsampling to the telephone rate does not alias.
"""

from __future__ import annotations

import io
import math
import subprocess

import numpy as np
from scipy.signal import resample_poly  # imported up front: it takes seconds the first time

from agent.errors import InvalidInput
from agent.messages import AudioClip

SAMPLE_RATE = 16_000  # Hz: what the recognizers and the VAD take
TELEPHONE_RATE = 8_000  # Hz: Twilio Media Streams and Asterisk AudioSocket
FRAME_MS = 20  # both gateways send and expect 20 ms frames
TELEPHONE_FRAME_SAMPLES = TELEPHONE_RATE * FRAME_MS // 1000  # 160 samples = 160 mu-law bytes = 320 PCM bytes

MAX_UPLOAD_BYTES = 20_000_000
MAX_UPLOAD_DURATION_S = 120.0
UPLOAD_FORMATS = frozenset({"WAV", "WAVEX", "FLAC", "MP3", "OGG"})

_MULAW_BIAS = 0x84  # 132, added before finding the segment (G.711)
_MULAW_BIAS_14 = _MULAW_BIAS >> 2
_MULAW_CLIP_14 = 8_159


# --- G.711 mu-law and PCM ---------------------------------------------------------------------


def _build_mulaw_decode_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    return np.where(codes & 0x80, -magnitude, magnitude).astype(np.int16)


_MULAW_TO_PCM16 = _build_mulaw_decode_table()  # shape (256,), int16


def mulaw_to_pcm16(data: bytes) -> np.ndarray:
    """G.711 mu-law bytes -> int16 samples, shape (len(data),)."""
    return _MULAW_TO_PCM16[np.frombuffer(data, dtype=np.uint8)]


def pcm16_to_mulaw(samples: np.ndarray) -> bytes:
    """int16 samples -> G.711 mu-law bytes (one byte a sample); the inverse of ``mulaw_to_pcm16``.

    The 14-bit formulation of the ITU/Sun reference coder (and of the old ``audioop``).
    """
    v = np.asarray(samples, dtype=np.int32) >> 2  # 14-bit, arithmetic shift as in the reference
    negative = v < 0
    magnitude = np.minimum(np.minimum(np.abs(v), _MULAW_CLIP_14) + _MULAW_BIAS_14, 0x1FFF)
    segment = np.floor(np.log2(magnitude)).astype(np.int32) - 5  # 0..7
    mantissa = (magnitude >> (segment + 1)) & 0x0F
    codes = ((segment << 4) | mantissa) ^ np.where(negative, 0x7F, 0xFF)
    return bytes(codes.astype(np.uint8).tobytes())


def pcm16_bytes_to_float32(data: bytes) -> np.ndarray:
    """Signed 16-bit little-endian PCM bytes -> float32 in [-1, 1)."""
    if len(data) % 2:
        raise InvalidInput(f"16-bit PCM audio: expected an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def float32_to_pcm16(samples: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1] -> int16, clipping what is outside."""
    scaled = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767.0
    return np.round(scaled).astype(np.int16)


def float32_to_pcm16_bytes(samples: np.ndarray) -> bytes:
    return float32_to_pcm16(samples).astype("<i2").tobytes()


def mulaw_to_float32(data: bytes) -> np.ndarray:
    return mulaw_to_pcm16(data).astype(np.float32) / 32768.0


def float32_to_mulaw(samples: np.ndarray) -> bytes:
    return pcm16_to_mulaw(float32_to_pcm16(samples))


# --- resampling -------------------------------------------------------------------------------


def resample(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample float mono audio with an anti-aliasing polyphase filter; returns float32.

    8 kHz <-> 16 kHz is up 2 / down 2; 22,050 Hz -> 8 kHz is up 160 / down 441.
    """
    if from_hz <= 0 or to_hz <= 0:
        raise InvalidInput(f"sample rates must be positive, got {from_hz} Hz -> {to_hz} Hz")
    x = np.asarray(samples, dtype=np.float32)
    if from_hz == to_hz or len(x) == 0:
        return x.copy()
    g = math.gcd(from_hz, to_hz)
    out: np.ndarray = resample_poly(x, to_hz // g, from_hz // g).astype(np.float32)
    return out


def to_16k(clip: AudioClip) -> AudioClip:
    """The clip at ``SAMPLE_RATE``, resampled if needed."""
    if clip.sample_rate_hz == SAMPLE_RATE:
        return clip
    return AudioClip(samples=resample(clip.samples, clip.sample_rate_hz, SAMPLE_RATE), sample_rate_hz=SAMPLE_RATE)


def to_telephone_mulaw(clip: AudioClip) -> bytes:
    """A clip (any rate) as 8 kHz mu-law bytes, ready to cut into 160-byte frames."""
    return float32_to_mulaw(resample(clip.samples, clip.sample_rate_hz, TELEPHONE_RATE))


def to_telephone_pcm16(clip: AudioClip) -> bytes:
    """A clip (any rate) as 8 kHz signed 16-bit little-endian PCM bytes (320 bytes per 20 ms)."""
    return float32_to_pcm16_bytes(resample(clip.samples, clip.sample_rate_hz, TELEPHONE_RATE))


def check_samples(samples: np.ndarray, *, what: str = "audio") -> np.ndarray:
    """float32 mono, finite; raises InvalidInput otherwise."""
    x = np.asarray(samples)
    if x.ndim != 1:
        raise InvalidInput(f"{what}: expected mono samples of shape (n_samples,), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise InvalidInput(f"{what}: expected float samples, got {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise InvalidInput(f"{what}: expected finite samples, got NaN or infinity")
    return x.astype(np.float32, copy=False)


# --- uploads ----------------------------------------------------------------------------------


def decode_upload(
    data: bytes,
    *,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_duration_s: float = MAX_UPLOAD_DURATION_S,
) -> AudioClip:
    """A WAV, FLAC, MP3 or OGG file -> 16 kHz mono float32 clip; InvalidInput on anything else."""
    if not data:
        raise InvalidInput("audio upload is empty; expected a WAV, FLAC, MP3 or OGG file")
    if len(data) > max_bytes:
        raise InvalidInput(f"audio upload is {len(data):,} bytes; the limit is {max_bytes:,}")
    try:
        samples, rate_hz = _decode_soundfile(data, max_duration_s)
    except _NotDecodable as e:
        if not _looks_like_mp3(data):
            raise InvalidInput(
                f"audio upload is not a readable audio file; expected one of {sorted(UPLOAD_FORMATS)}"
            ) from e
        samples, rate_hz = _decode_ffmpeg(data, max_duration_s), SAMPLE_RATE
    if len(samples) == 0:
        raise InvalidInput("audio upload holds no samples; expected at least some audio")
    samples = check_samples(samples, what="audio upload")
    return AudioClip(samples=resample(samples, rate_hz, SAMPLE_RATE), sample_rate_hz=SAMPLE_RATE)


class _NotDecodable(Exception):
    pass


def _decode_soundfile(data: bytes, max_duration_s: float) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise _NotDecodable(str(e)) from e
    fmt = info.format.upper()
    if fmt == "MPEG":
        fmt = "MP3"
    if fmt not in UPLOAD_FORMATS:
        raise InvalidInput(f"audio upload: expected one of {sorted(UPLOAD_FORMATS)}, got {fmt}")
    if info.samplerate <= 0 or info.channels <= 0:
        raise InvalidInput(f"audio upload: expected a positive rate and channel count, got "
                           f"{info.samplerate} Hz, {info.channels} channels")
    _check_duration(info.frames / info.samplerate if info.frames > 0 else 0.0, max_duration_s)
    try:
        frames, rate_hz = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise InvalidInput(f"audio upload: the {fmt} data is damaged and could not be decoded") from e
    _check_duration(len(frames) / rate_hz, max_duration_s)
    return frames.mean(axis=1).astype(np.float32), int(rate_hz)


def _check_duration(duration_s: float, max_duration_s: float) -> None:
    if duration_s > max_duration_s:
        raise InvalidInput(f"audio upload lasts {duration_s:.1f} s; the limit is {max_duration_s:.0f} s")


def _looks_like_mp3(data: bytes) -> bool:
    return data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0)


def _decode_ffmpeg(data: bytes, max_duration_s: float) -> np.ndarray:
    """MP3 through ffmpeg, for builds of libsndfile without MPEG support; 16 kHz mono float32."""
    command = ["ffmpeg", "-nostdin", "-v", "error", "-i", "pipe:0", "-t", str(max_duration_s + 1),
               "-f", "f32le", "-ac", "1", "-ar", str(SAMPLE_RATE), "pipe:1"]
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InvalidInput("audio upload: the MP3 could not be decoded") from e
    if done.returncode != 0 or not done.stdout:
        raise InvalidInput("audio upload is not a readable audio file; expected WAV, FLAC, MP3 or OGG")
    samples = np.frombuffer(done.stdout[: len(done.stdout) // 4 * 4], dtype="<f4").astype(np.float32)
    _check_duration(len(samples) / SAMPLE_RATE, max_duration_s)
    return samples


MULAW_SILENCE = b"\xff"  # mu-law code of 0
PCM16_SILENCE = b"\x00"


def frames_of(data: bytes, frame_bytes: int, *, pad: bytes) -> list[bytes]:
    """Cut ``data`` into frames of ``frame_bytes``; the last is padded with ``pad`` (silence)."""
    if frame_bytes <= 0:
        raise ValueError(f"frame_bytes must be positive, got {frame_bytes}")
    frames = [data[i : i + frame_bytes] for i in range(0, len(data), frame_bytes)]
    if frames and len(frames[-1]) < frame_bytes:
        frames[-1] = frames[-1] + pad * (frame_bytes - len(frames[-1]))
    return frames
