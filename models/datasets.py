"""Labelled text for training and evaluation: CSV files, GoEmotions TSVs and the domain file.

Every problem in a file raises ``agent.errors.InvalidInput`` naming the file, the line and what
was expected. Texts are never echoed in messages (they may hold customer data); labels are.

Readers return ``Example`` tuples. An example carries the labels it has: an intent CSV row has
``intent``; a sentiment CSV row has ``sentiment`` and/or ``emotion``. ``oos`` (or ``out_of_scope``)
as an intent label marks an out-of-scope message.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from agent.errors import InvalidInput
from agent.messages import EMOTIONS, SENTIMENTS

OOS_LABEL = "oos"
OOS_ALIASES = frozenset({"oos", "out_of_scope", "out-of-scope"})
TASKS = ("intent", "sentiment", "emotion")
TEXT_COLUMNS = ("text",)
INTENT_COLUMNS = ("label", "category", "intent")  # Banking77 names its label column `category`


@dataclass(frozen=True, slots=True, kw_only=True)
class Example:
    """One labelled text. ``where`` is ``file:line`` for error messages."""

    text: str
    intent: str | None = None
    sentiment: str | None = None
    emotion: str | None = None
    where: str = ""

    def label(self, task: str) -> str | None:
        return getattr(self, task)


@dataclass(frozen=True, slots=True, kw_only=True)
class Split:
    train: tuple[Example, ...]
    val: tuple[Example, ...]
    test: tuple[Example, ...]


# --- raw file access ------------------------------------------------------------------------


def read_text(path: Path, *, what: str = "data file") -> str:
    """The file decoded as UTF-8 (a BOM is dropped); InvalidInput for missing/empty/non-UTF-8."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{what} {path}: file does not exist")
    if not path.is_file():
        raise InvalidInput(f"{what} {path}: expected a file, got a directory or special file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise InvalidInput(
            f"{what} {path} line {line}: byte 0x{raw[e.start]:02x} at column {column} is not "
            f"valid UTF-8; expected UTF-8 text"
        ) from e
    if not text.strip():
        raise InvalidInput(f"{what} {path}: file is empty; expected a header line and labelled rows")
    return text


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def examples_sha256(examples: Iterable[Example]) -> str:
    """A hash of texts and labels, independent of where they were read from."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex.text, ex.intent, ex.sentiment, ex.emotion]).encode("utf-8"))
    return h.hexdigest()


def _rows(path: Path, text: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(header, [(line, row)]) of a CSV; header names lower-cased and stripped."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
        rows: list[tuple[int, dict[str, str]]] = []
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                raise InvalidInput(
                    f"data file {path} line {reader.line_num}: expected {len(header)} fields "
                    f"({','.join(header)}), got {len(fields)}"
                )
            rows.append((reader.line_num, dict(zip(header, fields, strict=True))))
    except csv.Error as e:
        raise InvalidInput(f"data file {path} line {reader.line_num}: not valid CSV ({e})") from e
    if not rows:
        raise InvalidInput(f"data file {path}: has a header but no rows; expected labelled rows")
    return header, rows


def _pick(header: Sequence[str], wanted: Sequence[str]) -> str | None:
    return next((w for w in wanted if w in header), None)


def _cell(path: Path, line: int, row: dict[str, str], column: str) -> str:
    value = row[column].strip()
    if not value:
        raise InvalidInput(f"data file {path} line {line}: column `{column}` is empty; expected a value")
    return value


# --- CSV readers ----------------------------------------------------------------------------


def read_intent_csv(path: Path) -> list[Example]:
    """``text,label`` (or Banking77's ``text,category``) rows; ``oos`` marks out-of-scope."""
    path = Path(path)
    header, rows = _rows(path, read_text(path))
    label_col = _pick(header, INTENT_COLUMNS)
    if "text" not in header or label_col is None:
        raise InvalidInput(
            f"data file {path} line 1: header has columns {header}; expected `text` and one of "
            f"{list(INTENT_COLUMNS)} (e.g. `text,label`)"
        )
    out = []
    for line, row in rows:
        label = _cell(path, line, row, label_col)
        label = OOS_LABEL if label.lower() in OOS_ALIASES else label
        out.append(Example(text=_cell(path, line, row, "text"), intent=label, where=f"{path}:{line}"))
    return out


def read_affect_csv(path: Path, *, task: str | None = None) -> list[Example]:
    """Sentiment/emotion rows: ``text,sentiment,emotion`` (either may be blank), or ``text,label``
    when ``task`` says which one the label is."""
    path = Path(path)
    header, rows = _rows(path, read_text(path))
    columns = {t: t for t in ("sentiment", "emotion") if t in header}
    if not columns and task in ("sentiment", "emotion") and "label" in header:
        columns = {task: "label"}
    if "text" not in header or not columns or (task in ("sentiment", "emotion") and task not in columns):
        want = "`text,sentiment,emotion`" if task is None else f"`text,{task}` or `text,label`"
        raise InvalidInput(f"data file {path} line 1: header has columns {header}; expected {want}")
    allowed = {"sentiment": SENTIMENTS, "emotion": EMOTIONS}
    out = []
    for line, row in rows:
        labels: dict[str, str | None] = {}
        for t, col in columns.items():
            value = row[col].strip().lower() or None
            if value is not None and value not in allowed[t]:
                raise InvalidInput(
                    f"data file {path} line {line}: {t} {value!r} is not one of {list(allowed[t])}"
                )
            labels[t] = value
        if all(v is None for v in labels.values()):
            raise InvalidInput(f"data file {path} line {line}: no {'/'.join(columns)} label; expected one")
        text = _cell(path, line, row, "text")
        out.append(Example(text=text, where=f"{path}:{line}", **labels))  # type: ignore[arg-type]
    return out


def read_examples(path: Path, *, task: str = "intent") -> list[Example]:
    """Any supported training file for ``task``: the domain YAML, a CSV, or a GoEmotions TSV dir."""
    path = Path(path)
    if task not in TASKS:
        raise InvalidInput(f"task {task!r}: expected one of {list(TASKS)}")
    if path.suffix.lower() in (".yaml", ".yml"):
        if task != "intent":
            raise InvalidInput(f"data file {path}: the domain file holds intents; for task {task!r} "
                               "expected a CSV with columns text,sentiment,emotion")
        from models.domain_data import read_domain

        return read_domain(path).examples()
    if path.suffix.lower() not in (".csv", ".txt", ""):
        raise InvalidInput(f"data file {path}: expected a .csv file or the domain .yaml, got {path.suffix!r}")
    return read_intent_csv(path) if task == "intent" else read_affect_csv(path, task=task)


def read_labelled(path: Path) -> list[Example]:
    """Evaluation data of any kind: the domain YAML, an intent CSV or a sentiment/emotion CSV
    (chosen by its header)."""
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        from models.domain_data import read_domain

        return read_domain(path).examples()
    text = read_text(path)
    header = [h.strip().lower() for h in next(csv.reader(io.StringIO(text, newline="")), [])]
    if _pick(header, INTENT_COLUMNS) is not None:
        return read_intent_csv(path)
    return read_affect_csv(path)


# --- splitting and checks -------------------------------------------------------------------


def min_examples_per_class(val_fraction: float, test_fraction: float) -> int:
    return 1 + int(val_fraction > 0) + int(test_fraction > 0)


def check_class_sizes(examples: Sequence[Example], task: str, *, needed: int, path: Path | str) -> None:
    """InvalidInput naming each class that has fewer than ``needed`` examples (and one line of it)."""
    counts = Counter(ex.label(task) for ex in examples if ex.label(task) is not None)
    small = sorted(label for label, n in counts.items() if n < needed)
    if not small:
        return
    first = {}
    for ex in examples:
        first.setdefault(ex.label(task), ex.where)
    named = ", ".join(f"{label!r} ({counts[label]} at {first[label]})" for label in small[:10])
    raise InvalidInput(
        f"data file {path}: {len(small)} {task} class(es) have too few examples for a stratified "
        f"train/validation/test split: {named}; expected at least {needed} examples per class "
        f"(add examples, or remove the class)"
    )


def stratified_split(
    examples: Sequence[Example], *, task: str, val_fraction: float, test_fraction: float, seed: int
) -> Split:
    """Per class: shuffle, then ``max(1, round(n * fraction))`` to test and to validation, the
    rest to training. Examples without a ``task`` label are grouped by their other labels and
    split in the same shares, without the minimum of 1.
    Call ``check_class_sizes`` first: every class needs 1 example per non-empty part."""
    rng = random.Random(seed)
    groups: dict[tuple[str, str, str], list[Example]] = defaultdict(list)
    for ex in examples:
        primary = ex.label(task)
        key = (primary, "", "") if primary is not None else ("", ex.sentiment or "", ex.emotion or "")
        groups[key].append(ex)
    parts: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    for key in sorted(groups):
        items = groups[key][:]
        rng.shuffle(items)
        n = len(items)
        floor = 1 if key[0] else 0
        n_test = max(floor, round(n * test_fraction)) if test_fraction > 0 else 0
        n_val = max(floor, round(n * val_fraction)) if val_fraction > 0 else 0
        parts["test"] += items[:n_test]
        parts["val"] += items[n_test : n_test + n_val]
        parts["train"] += items[n_test + n_val :]
    for items in parts.values():
        rng.shuffle(items)
    return Split(train=tuple(parts["train"]), val=tuple(parts["val"]), test=tuple(parts["test"]))


def check_known_labels(examples: Sequence[Example], task: str, known: Sequence[str], *, path: Path | str,
                       allow_oos: bool = True) -> None:
    """InvalidInput when evaluation data has labels the model was not trained on."""
    known_set = set(known) | ({OOS_LABEL} if allow_oos and task == "intent" else set())
    unknown: dict[str, str] = {}
    for ex in examples:
        label = ex.label(task)
        if label is not None and label not in known_set:
            unknown.setdefault(label, ex.where)
    if unknown:
        named = ", ".join(f"{label!r} (first at {where})" for label, where in sorted(unknown.items())[:10])
        raise InvalidInput(
            f"data file {path}: {len(unknown)} {task} label(s) are not in the training data: {named}; "
            f"expected only labels the model knows ({len(known)} labels, e.g. {list(known)[:5]})"
        )


def subsample(examples: Sequence[Example], n: int | None, *, seed: int) -> list[Example]:
    """At most ``n`` examples, drawn at random (stable for a seed); None keeps all."""
    items = list(examples)
    if n is None or n >= len(items):
        return items
    if n <= 0:
        raise InvalidInput(f"max_examples must be positive, got {n}")
    return random.Random(seed).sample(items, n)


def relabel(examples: Iterable[Example], **labels: str | None) -> list[Example]:
    return [replace(ex, **labels) for ex in examples]

