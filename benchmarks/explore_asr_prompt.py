"""Does a domain prompt help Whisper on telephone audio? Word error rate per test voice of the
multimodal set (Piper "joe" and espeak-ng en-us+f3, neither used for training), sentences from
its held-out spoken pool, through its telephone channel (300 Hz high-pass, 8 kHz, noise at
15-30 dB SNR, mu-law); greedy and beam 5, tiny.en and base, with and without
``asr.initial_prompt``. Every variant decodes with faster-whisper's own ``transcribe`` on the
30 s window, so they differ only in what is named.

    python benchmarks/explore_asr_prompt.py [--sentences 40] [--only "tiny greedy,tiny prompt"]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
DEFAULT_BANKING77 = ROOT.parent / "shared" / "data" / "banking77"


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=40, help="held-out sentences, each spoken by every test voice")
    parser.add_argument("--banking77", type=Path, default=DEFAULT_BANKING77)
    parser.add_argument("--only", default="", help="comma-separated variant names")
    args = parser.parse_args(argv)

    from bench_asr import edit_distance  # the word-level Levenshtein distance bench_asr scores WER with

    from agent.config import DEFAULT_ASR_PROMPT, AsrConfig
    from modalities.audio import resample
    from models import multimodal_speech as ms
    from models.multimodal_texts import sentence_pools
    from models.speech import load_recognizer

    banking = args.banking77 if (args.banking77 / "train.csv").is_file() else None
    pools, _ = sentence_pools(ROOT / "assets" / "domain.yaml", banking, random.Random(0))
    rng = random.Random(1)
    sentences = rng.sample(pools["spoken_test"], min(args.sentences, len(pools["spoken_test"])))
    speaker, clips = ms.Speaker(), []
    for voice in ms.test_voices():
        for sentence, _, _ in sentences:
            spec = ms.ClipSpec(sentence=sentence, voice=voice, rate_wpm=rng.randint(140, 175),
                               snr_db=round(rng.uniform(15, 30), 1), noise_seed=rng.randrange(2**31))
            heard = ms.telephone_channel(speaker.speak(spec), snr_db=spec.snr_db, seed=spec.noise_seed)
            clips.append((voice.label, sentence, resample(heard.samples, heard.sample_rate_hz, 16000)))
    print(f"{len(clips)} clips ({len(sentences)} sentences x {len(ms.test_voices())} voices)", flush=True)
    variants = [("tiny greedy", {}, None), ("tiny prompt", {}, DEFAULT_ASR_PROMPT),
                ("tiny beam5", {"beam_size": 5}, None), ("tiny beam5+prompt", {"beam_size": 5}, DEFAULT_ASR_PROMPT),
                ("base greedy", {"model_name": "base"}, None), ("base prompt", {"model_name": "base"}, DEFAULT_ASR_PROMPT)]
    only = {v.strip() for v in args.only.split(",") if v.strip()}
    for name, options, prompt in variants:
        if only and name not in only:
            continue
        config = AsrConfig(encoder_window_s=30.0, initial_prompt="", **options)
        model = load_recognizer(config).inner._model  # the faster-whisper model itself
        errors: dict[str, list[int]] = {}
        start = time.perf_counter()
        for label, sentence, audio in clips:
            segments, _ = model.transcribe(audio.astype(np.float32), language="en", beam_size=config.beam_size,
                                           temperature=0.0, condition_on_previous_text=False,
                                           without_timestamps=True, vad_filter=False, initial_prompt=prompt)
            said = " ".join(s.text for s in segments)
            tally = errors.setdefault(label, [0, 0])
            tally[0] += edit_distance(_words(sentence), _words(said))
            tally[1] += len(_words(sentence))
        print(f"{name:18s} " + "  ".join(f"{label} WER {e / n:.3f}" for label, (e, n) in errors.items())
              + f"  ({time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
