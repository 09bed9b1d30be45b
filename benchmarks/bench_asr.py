"""Word error rate and speed of each speech-recognition back-end, in one run.

Sets: the LibriSpeech clips and JFK (``<data>/speech``), the 8 kHz Harvard sentences
(``OSR_us_000_0034_8k.wav``), and customer requests written for this benchmark, spoken by several
espeak-ng voices (and Piper, where installed) and passed through an 8 kHz G.711 mu-law telephone
channel. Back-ends: faster-whisper tiny.en (int8) with Whisper's 30 s encoder window, with the default
15 s window for short clips (``asr.encoder_window_s``) and with 10 s; faster-whisper base (int8);
and openai-whisper tiny.en on the checkpoint converted from the shipped CTranslate2 weights (the
reference implementation, the baseline). Each back-end gets a burn-in, then every clip once.

    nice -n 10 python benchmarks/bench_asr.py            # all sets, all back-ends
    python benchmarks/bench_asr.py --backends fw-tiny --limit 10
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.config import AsrConfig
from agent.messages import AudioClip
from modalities.audio import float32_to_mulaw, mulaw_to_float32, resample

REQUESTS = (
    "I lost my credit card",
    "I want to talk to a person",
    "My card has not arrived yet",
    "Please block my card because it was stolen",
    "Why was my payment declined at the shop",
    "I need to change my home address",
    "What is the balance of my current account",
    "My transfer to my landlord failed this morning",
    "I would like a refund for this purchase",
    "I was charged twice for the same order",
    "How do I activate my new card",
    "My pin is blocked after too many tries",
    "I cannot log in to the banking app",
    "What fees do you charge for using my card abroad",
    "What is the exchange rate for euros today",
    "I want to close my savings account",
    "I want to dispute a charge on my statement",
    "Can you help me with my debit card please",
)
VOICES = (("en-us", 165), ("en-gb", 150), ("en-us+f3", 175), ("en-gb-x-rp+m3", 140))
BACKENDS = {
    "fw-tiny-w30": {"backend": "faster-whisper", "model_name": "tiny.en", "encoder_window_s": 30.0},
    "fw-tiny-w10": {"backend": "faster-whisper", "model_name": "tiny.en", "encoder_window_s": 10.0},
    "fw-tiny": {"backend": "faster-whisper", "model_name": "tiny.en"},  # the default: 15 s window
    "fw-base": {"backend": "faster-whisper", "model_name": "base"},
    "ow-tiny": {"backend": "openai-whisper", "model_name": "tiny.en"},
    "ow-base": {"backend": "openai-whisper", "model_name": "base"},
}
JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def normalise(text: str) -> list[str]:
    """Lower case, no punctuation, no apostrophes: the words to compare."""
    return re.sub(r"[^a-z0-9 ]", " ", text.lower().replace("'", "")).split()


def edit_distance(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def telephone(samples: np.ndarray, rate: int) -> AudioClip:
    """Through an 8 kHz mu-law line: resample, encode, decode."""
    return AudioClip(samples=mulaw_to_float32(float32_to_mulaw(resample(samples, rate, 8000))), sample_rate_hz=8000)


def read(path: Path) -> AudioClip:
    import soundfile as sf

    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return AudioClip(samples=samples.mean(axis=1), sample_rate_hz=int(rate))


def data_sets(data: Path, limit: int | None) -> dict[str, list[tuple[AudioClip, str]]]:
    speech = data / "speech"
    sets: dict[str, list[tuple[AudioClip, str]]] = {}
    if (speech / "transcripts.tsv").is_file():
        rows = [line.split("\t") for line in (speech / "transcripts.tsv").read_text().splitlines()[1:] if line]
        sets["librispeech"] = [(read(speech / f), t) for f, t in rows]
        if (speech / "jfk.flac").is_file():
            sets["librispeech"].append((read(speech / "jfk.flac"), JFK))
    if (speech / "test_samples.json").is_file():
        sample = json.loads((speech / "test_samples.json").read_text())[0]
        sets["harvard-8k"] = [(read(speech / sample["filename"]), sample["transcription"])]
    if not sets:
        print(f"no speech data under {speech}; only synthesised sets are measured", file=sys.stderr)
    for voice, rate in VOICES:
        sets[f"espeak-{voice}-{rate}wpm-mulaw"] = [(espeak(t, voice, rate), t) for t in REQUESTS[:limit]]
    piper = piper_voice()
    if piper is not None:
        sets["piper-joe-mulaw"] = [(telephone(*piper(t)), t) for t in REQUESTS[:limit]]
    return sets


def espeak(text: str, voice: str, rate_wpm: int) -> AudioClip:
    import soundfile as sf

    wav = subprocess.run(["espeak-ng", "--stdout", "-v", voice, "-s", str(rate_wpm)], input=text.encode(),
                         capture_output=True, check=True, timeout=30).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    return telephone(samples * 0.8, int(rate))


def piper_voice() -> Callable[[str], tuple[np.ndarray, int]] | None:
    """Piper's voice as ``text -> (samples, rate)``; None where the optional extra is absent."""
    from agent.config import TtsConfig
    from agent.errors import DependencyUnavailable
    from models.tts import PiperSynthesizer

    try:
        synthesizer = PiperSynthesizer(TtsConfig())
    except DependencyUnavailable:
        return None

    def speak(text: str) -> tuple[np.ndarray, int]:
        clip = synthesizer.synthesize(text)
        return clip.samples * 0.8, clip.sample_rate_hz

    return speak


def measure(recognizer, clips: list[tuple[AudioClip, str]]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    errors = words = 0
    audio_s = busy_s = 0.0
    latencies = []
    for clip, truth in clips:
        started = time.perf_counter()
        heard = recognizer.inner.transcribe(clip)  # past the memo: every clip is decoded
        elapsed = time.perf_counter() - started
        latencies.append(elapsed * 1000.0)
        errors += edit_distance(normalise(heard.text), normalise(truth))
        words += len(normalise(truth))
        audio_s += clip.duration_s
        busy_s += elapsed
    return {"wer": errors / max(1, words), "words": words, "clips": len(clips), "audio_s": round(audio_s, 2),
            "rtf": busy_s / audio_s, "p50_ms": float(np.percentile(latencies, 50)),
            "p95_ms": float(np.percentile(latencies, 95))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("AGENT_SHARED_DATA", ROOT.parent / "shared" / "data")))
    parser.add_argument("--backends", default="fw-tiny-w30,fw-tiny,fw-tiny-w10,fw-base,ow-tiny", help=f"comma-separated, of {sorted(BACKENDS)}")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N customer requests")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "asr.jsonl")
    args = parser.parse_args()
    import torch

    from models.speech import load_recognizer

    torch.set_num_threads(min(2, args.threads))
    sets = data_sets(args.data, args.limit)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in args.backends.split(","):
        config = replace(AsrConfig(), cpu_threads=args.threads, **BACKENDS[name])
        if args.cache_dir:
            config = replace(config, cache_dir=args.cache_dir)
        started = time.perf_counter()
        recognizer = load_recognizer(config)
        load_s = time.perf_counter() - started
        burn = next(iter(sets.values()))[0][0]
        for _ in range(2):  # burn-in
            recognizer.inner.transcribe(burn)
        results[name] = {s: measure(recognizer, clips) for s, clips in sets.items()}
        results[name]["load"] = {"seconds": load_s}
        for s, r in results[name].items():
            if s != "load":
                print(f"{name:12} {s:32} WER {100 * r['wer']:5.1f}% ({r['words']} words, {r['clips']} clips)  "
                      f"RTF {r['rtf']:.3f}  p50 {r['p50_ms']:.0f} ms  p95 {r['p95_ms']:.0f} ms", flush=True)
    record = {"bench": "asr", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "commit": _commit(),
              "machine": f"{os.cpu_count()} CPUs visible, load average {os.getloadavg()[0]:.1f}",
              "config": {"backends": args.backends, "threads": args.threads, "limit": args.limit,
                         "voices": [v for v, _ in VOICES]}, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    return 0


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
