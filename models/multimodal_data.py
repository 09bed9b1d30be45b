"""The multimodal training and evaluation set, built by a script and cached (never committed).

Kinds of turn (``MultimodalExample.kind``):
- ``spoken``: a sentence of the default domain (``intents.*.examples``) or of Banking77 (its
  categories mapped to the domain's intents, ``BANKING77_TO_DOMAIN``) spoken by a synthetic
  voice through an 8 kHz mu-law telephone channel with noise, transcribed by Whisper; the
  transcript (with its errors) and the pooled encoder features are kept;
- ``image_decides``: a short message that is ambiguous alone ("what is this?") with a picture
  that decides the intent (``models.multimodal_images.DECIDING_TYPES``);
- ``image_irrelevant``: an unambiguous sentence with a picture that has nothing to do with it
  (a product photo, a landscape, a letter, a card photo, or a deciding picture of another intent);
- ``image_only``: a deciding picture with no text.

Splits: evaluation (``test``) uses voices, message templates, picture wordings and pictures
that training never saw, and domain sentences that the default text model held out (its own
stratified split, reproduced); ``val`` (early stopping) has its own templates and pictures.

Layout of the set directory (``--out``)::

    manifest.json      parameters, counts, voices; written last (marks a complete set)
    examples.jsonl     one MultimodalExample a line
    clips/<key>.npz    transcript and pooled Whisper features of one clip (keyed by what made it)
    images/<key>.npz   embedding, OCR text, kind and fields of one picture

Clips and pictures are cached by key, so a rebuild with other sizes reuses earlier work. Run::

    python -m models.multimodal_data --out DIR [--banking77 ../shared/data/banking77] [--tiny | --scale 0.5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import AgentConfig
from agent.errors import InvalidInput
from models import multimodal_images as MI
from models import multimodal_speech as MS
from models.multimodal_texts import DEFAULT_BANKING77, sentence_pools, unused_banking77_rows

log = logging.getLogger(__name__)

SET_VERSION = 1
MANIFEST = "manifest.json"
KINDS = ("spoken", "image_decides", "image_irrelevant", "image_only")


@dataclass(frozen=True, slots=True, kw_only=True)
class SetConfig:
    """Sizes of the set. Spoken: sentences per split (train sentences are spoken by
    ``train_voices_per_sentence`` voices, test sentences by every test voice), and
    ``extra_spoken_train`` more training sentences drawn last (``_plan_extra_spoken``). Pictures: per
    picture type and split; deciding pictures carry ``texts_per_picture`` messages each."""

    seed: int = 0
    spoken: tuple[int, int, int] = (240, 48, 100)  # train, val, test sentences
    train_voices_per_sentence: int = 2
    # more training sentences, drawn after everything else so that the rest of the set (val and
    # test sentences, voices, pictures) is the same as without them
    extra_spoken_train: int = 480
    deciding: tuple[int, int, int] = (16, 4, 10)  # pictures per deciding type
    irrelevant: tuple[int, int, int] = (8, 2, 6)  # pictures per irrelevant type
    texts_per_picture: int = 2
    irrelevant_texts_per_picture: tuple[int, int, int] = (8, 2, 4)  # train, val, test
    clear_texts_per_deciding_picture: tuple[int, int, int] = (2, 1, 1)  # a deciding picture with an unrelated clear message
    image_only_every: int = 2  # every n-th deciding picture also appears with no text
    rate_wpm: tuple[int, int] = (140, 175)
    snr_db: tuple[float, float] = (15.0, 30.0)
    ocr: bool = True

    def scaled(self, factor: float) -> SetConfig:
        """Every count (sentences, pictures, messages per picture) times ``factor``, rounded, at
        least 1 where it was at least 1: ``--scale 0.5`` builds about half the default set in
        about half the time, with the same voices, templates and held-out splits."""
        if not 0.0 < factor <= 1.0:
            raise ValueError(f"scale: expected a factor in (0, 1], got {factor}")

        def n(x: int) -> int:
            return max(1, round(x * factor)) if x else 0

        return replace(self, spoken=tuple(map(n, self.spoken)), extra_spoken_train=n(self.extra_spoken_train),
                       deciding=tuple(map(n, self.deciding)),
                       irrelevant=tuple(map(n, self.irrelevant)),
                       irrelevant_texts_per_picture=tuple(map(n, self.irrelevant_texts_per_picture)))

    @classmethod
    def tiny(cls) -> SetConfig:
        """A few examples of every kind: for tests (about a minute with OCR off)."""
        return cls(spoken=(4, 2, 2), train_voices_per_sentence=1, extra_spoken_train=0, deciding=(1, 0, 1), irrelevant=(1, 0, 1),
                   texts_per_picture=1, irrelevant_texts_per_picture=(1, 0, 2), clear_texts_per_deciding_picture=(0, 0, 0),
                   image_only_every=2, ocr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class MultimodalExample:
    example_id: str
    split: str  # train | val | test
    kind: str  # one of KINDS
    intent: str
    text: str  # what the text model reads: typed message, transcript, or "" (picture only)
    typed: str  # the sentence as written (spoken turns: before speech synthesis)
    clip: str | None = None  # key under clips/
    image: str | None = None  # key under images/
    picture_type: str | None = None
    image_kind: str | None = None  # the picture's true kind (one of IMAGE_KINDS)
    voice: str | None = None
    source: str = ""  # where the text came from: "domain", "banking77", "ambiguous:generic", ...


@dataclass(frozen=True, slots=True, kw_only=True)
class CachedImage:
    embedding: np.ndarray  # float32 (d,)
    ocr_text: str
    kind: str  # what the image analyzer said
    kind_confidence: float
    fields: tuple[tuple[str, str], ...]


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


# --- planning: which sentences, voices and pictures ----------------------------------------


def _clip_spec(sentence: str, voice: MS.Voice, config: SetConfig, rng: random.Random) -> MS.ClipSpec:
    """A clip of ``sentence`` by ``voice`` at a random rate, noise level and noise seed."""
    return MS.ClipSpec(sentence=sentence, voice=voice, rate_wpm=rng.randint(*config.rate_wpm),
                       snr_db=round(rng.uniform(*config.snr_db), 1), noise_seed=rng.randrange(2**31))


def _plan_spoken(pools: dict[str, list[tuple[str, str, str]]], config: SetConfig,
                 rng: random.Random) -> list[tuple[str, str, str, str, MS.ClipSpec]]:
    """(split, sentence, intent, source, clip spec) for every clip."""
    voices = {"train": MS.TRAIN_VOICES, "val": MS.TRAIN_VOICES, "test": MS.test_voices()}
    out = []
    for split, n in zip(MI.SPLITS, config.spoken):
        pool = pools[f"spoken_{split}"]
        for sentence, intent, source in rng.sample(pool, min(n, len(pool))):
            if split == "train":
                chosen = rng.sample(voices[split], min(config.train_voices_per_sentence, len(voices[split])))
            else:
                chosen = list(voices[split]) if split == "test" else [rng.choice(voices[split])]
            out += [(split, sentence, intent, source, _clip_spec(sentence, voice, config, rng)) for voice in chosen]
    return out


def _plan_extra_spoken(pools: dict[str, list[tuple[str, str, str]]], planned: Sequence[tuple[str, str, str, str, MS.ClipSpec]],
                       config: SetConfig, rng: random.Random,
                       banking77_dir: Path | None = None) -> list[tuple[str, str, str, str, MS.ClipSpec]]:
    """``config.extra_spoken_train`` more training sentences, each spoken by
    ``train_voices_per_sentence`` training voices: the spoken training pool's sentences not planned
    yet, the training sentences typed beside irrelevant pictures, and Banking77 training rows in no
    pool, taken in turn across intents so that no intent dominates. Never a validation or test
    sentence. Drawn last, so the other draws stay as they were."""
    if config.extra_spoken_train <= 0:
        return []
    taken = {sentence for split, sentence, *_ in planned if split == "train"}
    candidates = [row for row in pools["spoken_train"] + pools["irrelevant_train"] if row[0] not in taken]
    candidates += unused_banking77_rows(banking77_dir, {row[0] for pool in pools.values() for row in pool})
    by_intent: dict[str, list[tuple[str, str, str]]] = {}
    for row in candidates:
        by_intent.setdefault(row[1], []).append(row)
    queues = [rng.sample(rows, len(rows)) for _, rows in sorted(by_intent.items())]
    chosen: list[tuple[str, str, str]] = []
    while len(chosen) < config.extra_spoken_train and any(queues):
        for queue in queues:
            if queue and len(chosen) < config.extra_spoken_train:
                chosen.append(queue.pop())
    out = []
    for sentence, intent, source in chosen:
        voices = rng.sample(MS.TRAIN_VOICES, min(config.train_voices_per_sentence, len(MS.TRAIN_VOICES)))
        out += [("train", sentence, intent, source, _clip_spec(sentence, voice, config, rng)) for voice in voices]
    return out


def _plan_pictures(config: SetConfig) -> list[tuple[str, str, int]]:
    """(split, picture type, seed) for every picture."""
    out = []
    for types, counts in ((MI.DECIDING_TYPES, config.deciding), (MI.IRRELEVANT_TYPES, config.irrelevant)):
        for split, n in zip(MI.SPLITS, counts):
            out += [(split, t, config.seed * 10_000 + i) for t in types for i in range(n)]
    return out


def _image_key(split: str, picture_type: str, seed: int, config: SetConfig) -> str:
    return _key("picture", MI.RENDER_VERSION, picture_type, split, seed, config.ocr, SET_VERSION)


def _pair_pictures(pictures: Sequence[tuple[str, str, int]], pools: dict[str, list[tuple[str, str, str]]],
                   config: SetConfig, rng: random.Random) -> list[MultimodalExample]:
    out: list[MultimodalExample] = []
    for index, (split, picture_type, seed) in enumerate(pictures):
        key = _image_key(split, picture_type, seed, config)
        common = {"split": split, "image": key, "picture_type": picture_type,
                  "image_kind": MI.IMAGE_KIND_OF[picture_type]}
        if picture_type in MI.DECIDING_TYPES:
            intent = MI.DECIDING_TYPES[picture_type]
            texts = list(MI.ambiguous_texts(picture_type, split))
            for text in rng.sample(texts, min(config.texts_per_picture, len(texts))):
                family = next(f for f in MI.FAMILIES[picture_type] if text in MI.AMBIGUOUS_TEXTS[f][split])
                out.append(MultimodalExample(example_id=_key(key, text), kind="image_decides", intent=intent, text=text,
                                             typed=text, source=f"ambiguous:{family}", **common))
            if index % config.image_only_every == 0:
                out.append(MultimodalExample(example_id=_key(key, ""), kind="image_only", intent=intent, text="",
                                             typed="", source="none", **common))
            unrelated = [row for row in pools[f"irrelevant_{split}"] if row[1] != intent]
            n = config.clear_texts_per_deciding_picture[MI.SPLITS.index(split)]
            for sentence, other, source in rng.sample(unrelated, min(n, len(unrelated))):
                out.append(MultimodalExample(example_id=_key(key, sentence), kind="image_irrelevant", intent=other,
                                             text=sentence, typed=sentence, source=f"{source}+deciding_picture",
                                             **common))
        else:
            pool = pools[f"irrelevant_{split}"]
            n = config.irrelevant_texts_per_picture[MI.SPLITS.index(split)]
            for sentence, intent, source in rng.sample(pool, min(n, len(pool))):
                out.append(MultimodalExample(example_id=_key(key, sentence), kind="image_irrelevant", intent=intent,
                                             text=sentence, typed=sentence, source=source, **common))
    return out


# --- computing features (cached) ------------------------------------------------------------


def _progress(label: str, i: int, n: int, started: float) -> None:
    if i and (i % 25 == 0 or i == n):
        rate = (time.perf_counter() - started) / i
        log.info("%s: %d/%d done, %.1f s each, about %.0f s left", label, i, n, rate, rate * (n - i))


def _compute_clips(specs: Sequence[MS.ClipSpec], folder: Path, config: AgentConfig) -> dict[str, str]:
    """Clip key -> transcript, synthesising and transcribing only clips not cached yet."""
    from models.speech import load_recognizer

    folder.mkdir(parents=True, exist_ok=True)
    todo = [s for s in specs if not (folder / f"{s.key(config.asr)}.npz").is_file()]
    recognizer, speaker = (load_recognizer(config.asr), MS.Speaker()) if todo else (None, None)
    started = time.perf_counter()
    for i, spec in enumerate(todo, 1):
        clip = MS.hear(spec, speaker, recognizer)
        _save_npz(folder / f"{spec.key(config.asr)}.npz", features=clip.features,
                  meta=np.array(json.dumps({"transcript": clip.transcript, "avg_logprob": clip.avg_logprob,
                                            "duration_s": clip.duration_s, "voice": spec.voice.label})))
        _progress("speech clips", i, len(todo), started)
    return {s.key(config.asr): read_clip(folder, s.key(config.asr))[0] for s in specs}


def _compute_images(pictures: Sequence[tuple[str, str, int]], folder: Path, config: AgentConfig,
                    set_config: SetConfig) -> None:
    from models.image_analyzer import as_image_input, load_image_analyzer

    folder.mkdir(parents=True, exist_ok=True)
    todo = [p for p in pictures if not (folder / f"{_image_key(*p, set_config)}.npz").is_file()]
    if not todo:
        return
    analyzer = load_image_analyzer(replace(config.vision, ocr=set_config.ocr), Path(config.nlu.cache_dir))
    started = time.perf_counter()
    for i, (split, picture_type, seed) in enumerate(todo, 1):
        analysis = analyzer.analyze(as_image_input(MI.render_picture(picture_type, seed, split)))
        meta = {"ocr_text": analysis.ocr_text, "kind": analysis.kind, "kind_confidence": analysis.kind_confidence,
                "fields": [list(f) for f in analysis.fields]}
        _save_npz(folder / f"{_image_key(split, picture_type, seed, set_config)}.npz",
                  embedding=np.asarray(analysis.embedding, dtype=np.float32), meta=np.array(json.dumps(meta)))
        _progress("pictures", i, len(todo), started)


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    tmp.replace(path)


def read_clip(folder: Path, key: str) -> tuple[str, np.ndarray, dict[str, Any]]:
    """(transcript, pooled features float16 (S, d), meta) of a cached clip."""
    with np.load(folder / f"{key}.npz") as data:
        meta = json.loads(str(data["meta"]))
        return str(meta["transcript"]), data["features"], meta


def read_image(folder: Path, key: str) -> CachedImage:
    with np.load(folder / f"{key}.npz") as data:
        meta = json.loads(str(data["meta"]))
        return CachedImage(embedding=data["embedding"].astype(np.float32), ocr_text=meta["ocr_text"], kind=meta["kind"],
                           kind_confidence=float(meta["kind_confidence"]),
                           fields=tuple((str(k), str(v)) for k, v in meta["fields"]))


# --- building and loading -------------------------------------------------------------------


def plan_set(domain_path: Path, banking77_dir: Path | None, set_config: SetConfig) -> tuple[
        dict[str, Any], list[tuple[str, str, str, str, MS.ClipSpec]], list[tuple[str, str, int]], list[MultimodalExample]]:
    """Every draw of the set, in a fixed order from one seeded generator: (pool info, spoken clips
    to make, pictures to make, picture turns). The extra training sentences are drawn last."""
    rng = random.Random(set_config.seed)
    pools, pool_info = sentence_pools(domain_path, banking77_dir, rng)
    spoken = _plan_spoken(pools, set_config, rng)
    pictures = _plan_pictures(set_config)
    examples = _pair_pictures(pictures, pools, set_config, rng)
    spoken += _plan_extra_spoken(pools, spoken, set_config, rng, banking77_dir)
    return pool_info, spoken, pictures, examples


def build_set(out_dir: Path, config: AgentConfig, *, set_config: SetConfig | None = None,
              banking77_dir: Path | None = DEFAULT_BANKING77) -> Path:
    """Build (or complete) the set in ``out_dir``; returns ``out_dir``. Cached parts are reused."""
    set_config = set_config or SetConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    pool_info, spoken, pictures, examples = plan_set(config.domain.path, banking77_dir, set_config)
    t0 = time.perf_counter()
    _compute_images(pictures, out_dir / "images", config, set_config)
    t1 = time.perf_counter()
    transcripts = _compute_clips([s for *_, s in spoken], out_dir / "clips", config)
    t2 = time.perf_counter()
    for split, sentence, intent, source, spec in spoken:
        key = spec.key(config.asr)
        examples.append(MultimodalExample(example_id=key, split=split, kind="spoken", intent=intent,
                                          text=transcripts[key], typed=sentence, clip=key, voice=spec.voice.label,
                                          source=source))
    with open(out_dir / "examples.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(asdict(ex), ensure_ascii=False) + "\n" for ex in examples)
    manifest = {"version": SET_VERSION, "config": asdict(set_config), "pools": pool_info,
                "counts": _counts(examples), "voices": {"train": [v.label for v in MS.TRAIN_VOICES],
                                                        "test": [v.label for v in MS.test_voices()]},
                "asr": {"model": config.asr.model_name, "backend": config.asr.backend},
                "seconds_this_build": {"images": round(t1 - t0, 1), "speech": round(t2 - t1, 1)}}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out_dir


def _counts(examples: Sequence[MultimodalExample]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for ex in examples:
        counts.setdefault(ex.split, {}).setdefault(ex.kind, 0)
        counts[ex.split][ex.kind] += 1
    return counts


@dataclass(frozen=True, slots=True, kw_only=True)
class MultimodalSet:
    path: Path
    manifest: dict[str, Any]
    examples: tuple[MultimodalExample, ...]
    speech: dict[str, np.ndarray]  # clip key -> pooled features float16 (S, d)
    images: dict[str, CachedImage]
    asr_logprob: dict[str, float] = field(default_factory=dict)  # clip key -> Whisper's mean token log-probability

    def split(self, name: str, *, kinds: Sequence[str] = KINDS) -> list[MultimodalExample]:
        return [ex for ex in self.examples if ex.split == name and ex.kind in kinds]


def load_set(path: Path) -> MultimodalSet:
    """A built set, with every clip's features and every picture's analysis in memory."""
    path = Path(path)
    if not (path / MANIFEST).is_file():
        raise InvalidInput(f"multimodal set {path}: {MANIFEST} not found; expected a directory built by "
                           "`python -m models.multimodal_data --out DIR`")
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("version") != SET_VERSION:
        raise InvalidInput(f"multimodal set {path}: version {manifest.get('version')!r}, expected {SET_VERSION}; rebuild it")
    with open(path / "examples.jsonl", encoding="utf-8") as f:
        examples = tuple(MultimodalExample(**json.loads(line)) for line in f if line.strip())
    speech, asr_logprob = {}, {}
    for ex in examples:
        if ex.clip and ex.clip not in speech:
            _, speech[ex.clip], meta = read_clip(path / "clips", ex.clip)
            asr_logprob[ex.clip] = float(meta["avg_logprob"])
    images = {ex.image: read_image(path / "images", ex.image) for ex in examples if ex.image}
    return MultimodalSet(path=path, manifest=manifest, examples=examples, speech=speech, images=images,
                         asr_logprob=asr_logprob)


def ensure_set(path: Path, config: AgentConfig, *, set_config: SetConfig | None = None,
               banking77_dir: Path | None = DEFAULT_BANKING77) -> MultimodalSet:
    """Load the set at ``path``, building it first (under a file lock) when it is not complete."""
    from filelock import FileLock

    path = Path(path)
    if not (path / MANIFEST).is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            if not (path / MANIFEST).is_file():
                build_set(path, config, set_config=set_config, banking77_dir=banking77_dir)
    return load_set(path)


def main(argv: Sequence[str] | None = None) -> int:
    import os

    # OpenMP threads that busy-wait make torch many times slower on shared cores; before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = argparse.ArgumentParser(description="Build the multimodal training and evaluation set (cached).")
    parser.add_argument("--out", type=Path, required=True, help="the set directory (clips and pictures are cached in it)")
    parser.add_argument("--banking77", type=Path, default=DEFAULT_BANKING77, help="Banking77 folder (train.csv, test.csv)")
    parser.add_argument("--tiny", action="store_true", help="a few examples of each kind (tests)")
    parser.add_argument("--no-ocr", action="store_true", help="skip OCR of the pictures (faster)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extra-spoken-train", type=int, default=None,
                        help="training sentences spoken beyond the first draw (default 480, each by 2 training "
                             "voices); val and test stay the same whatever the count")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="every count times this factor (0.5: about half the default set and build time)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    set_config = replace(SetConfig.tiny() if args.tiny else SetConfig(), seed=args.seed)
    if args.scale != 1.0:
        set_config = set_config.scaled(args.scale)
    if args.no_ocr:
        set_config = replace(set_config, ocr=False)
    if args.extra_spoken_train is not None:
        if args.extra_spoken_train < 0:
            parser.error(f"--extra-spoken-train: expected a count >= 0, got {args.extra_spoken_train}")
        set_config = replace(set_config, extra_spoken_train=args.extra_spoken_train)
    out = build_set(args.out, AgentConfig.from_env(), set_config=set_config, banking77_dir=args.banking77)
    print(json.dumps(json.loads((out / MANIFEST).read_text(encoding="utf-8"))["counts"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
