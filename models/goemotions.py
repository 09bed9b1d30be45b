"""GoEmotions (google-research) read as single-label sentiment and emotion examples.

Files: ``<root>/group/<split>.tsv`` (ambiguous, negative, neutral, positive) and
``<root>/ekman/<split>.tsv`` (anger, disgust, fear, joy, neutral, sadness, surprise); each line is
``text<TAB>comma-separated label ids<TAB>comment id``, label names in ``labels.txt``. The two
folders hold the same comments in the same order.

Mapping to one label per task (the same rule for train, dev and test):

* sentiment: ``ambiguous`` (surprise, confusion, curiosity, realization in the 28-label
  taxonomy) -> ``neutral``. A row with both ``positive`` and ``negative`` is dropped (mixed);
  otherwise a polar label wins over ``neutral``.
* emotion: ``neutral`` is dropped when an emotion is also present; a row with two or more
  distinct emotions is dropped for that task.

A row dropped for one task can keep its label for the other. ``GoEmotionsStats`` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.errors import InvalidInput
from models.datasets import Example, read_text

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True, slots=True, kw_only=True)
class GoEmotionsStats:
    rows: int
    sentiment_kept: int
    sentiment_mixed_dropped: int
    emotion_kept: int
    emotion_multi_dropped: int


def map_sentiment(labels: set[str]) -> str | None:
    mapped = {"neutral" if x == "ambiguous" else x for x in labels}
    if {"positive", "negative"} <= mapped:
        return None
    polar = mapped - {"neutral"}
    return polar.pop() if polar else "neutral"


def map_emotion(labels: set[str]) -> str | None:
    emotions = labels - {"neutral"}
    if len(emotions) > 1:
        return None
    return emotions.pop() if emotions else "neutral"


def _read(path: Path, names: list[str]) -> list[tuple[str, set[str], str, int]]:
    rows = []
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise InvalidInput(f"data file {path} line {line_no}: expected 3 tab-separated fields "
                               f"(text, label ids, id), got {len(fields)}")
        try:
            labels = {names[int(i)] for i in fields[1].split(",")}
        except (ValueError, IndexError) as e:
            raise InvalidInput(f"data file {path} line {line_no}: label ids {fields[1]!r} are not "
                               f"comma-separated integers below {len(names)}") from e
        rows.append((fields[0], labels, fields[2], line_no))
    return rows


def read_goemotions(root: Path, split: str) -> tuple[list[Example], GoEmotionsStats]:
    """Examples with ``sentiment`` and/or ``emotion`` of one split (``train|dev|test``)."""
    if split not in SPLITS:
        raise InvalidInput(f"GoEmotions split {split!r}: expected one of {list(SPLITS)}")
    root = Path(root)
    tables = {}
    for task, folder in (("sentiment", "group"), ("emotion", "ekman")):
        names = [n.strip() for n in read_text(root / folder / "labels.txt").splitlines() if n.strip()]
        tables[task] = _read(root / folder / f"{split}.tsv", names)
    if len(tables["sentiment"]) != len(tables["emotion"]):
        raise InvalidInput(f"GoEmotions {root}: group/{split}.tsv and ekman/{split}.tsv differ in length")
    out, s_drop, e_drop = [], 0, 0
    for (text, s_labels, s_id, line), (_, e_labels, e_id, _) in zip(
        tables["sentiment"], tables["emotion"], strict=True
    ):
        if s_id != e_id:
            raise InvalidInput(f"GoEmotions {root} line {line}: group and ekman rows differ ({s_id} vs {e_id})")
        sentiment, emotion = map_sentiment(s_labels), map_emotion(e_labels)
        s_drop += sentiment is None
        e_drop += emotion is None
        if sentiment is None and emotion is None:
            continue
        out.append(Example(text=text, sentiment=sentiment, emotion=emotion,
                           where=f"{root / 'group' / split}.tsv:{line}"))
    n = len(tables["sentiment"])
    stats = GoEmotionsStats(rows=n, sentiment_kept=n - s_drop, sentiment_mixed_dropped=s_drop,
                            emotion_kept=n - e_drop, emotion_multi_dropped=e_drop)
    return out, stats
