"""Reading training data: every bad input gets an InvalidInput naming the file, line and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import InvalidInput
from models import datasets as ds
from models.domain_data import read_domain
from models.goemotions import map_emotion, map_sentiment, read_goemotions


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_reads_text_label_and_banking77_columns(tmp_path: Path) -> None:
    a = ds.read_intent_csv(write(tmp_path, "a.csv", "text,label\nI lost my card,lost_card\nhi,greeting\n"))
    b = ds.read_intent_csv(write(tmp_path, "b.csv", "text,category\nwhere is my card,card_arrival\n"))
    assert [(e.text, e.intent) for e in a] == [("I lost my card", "lost_card"), ("hi", "greeting")]
    assert b[0].intent == "card_arrival" and b[0].where.endswith("b.csv:2")


def test_oos_aliases_become_oos(tmp_path: Path) -> None:
    rows = ds.read_intent_csv(write(tmp_path, "a.csv", "text,label\nweather?,out_of_scope\nflight,OOS\n"))
    assert {e.intent for e in rows} == {"oos"}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"nope\.csv: file does not exist"):
        ds.read_intent_csv(tmp_path / "nope.csv")


@pytest.mark.parametrize("content", ["", "   \n\n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    with pytest.raises(InvalidInput, match=r"empty\.csv: file is empty; expected a header"):
        ds.read_intent_csv(write(tmp_path, "empty.csv", content))


def test_header_only(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"has a header but no rows"):
        ds.read_intent_csv(write(tmp_path, "h.csv", "text,label\n"))


def test_csv_without_expected_columns(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"cols\.csv line 1: header has columns \['sentence', 'intent_name'\]; "
                                           r"expected `text` and one of"):
        ds.read_intent_csv(write(tmp_path, "cols.csv", "sentence,intent_name\nhi,greeting\n"))


def test_non_utf8_bytes_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "latin.csv", b"text,label\nhello,greeting\ncaf\xe9 card,lost\n")
    with pytest.raises(InvalidInput, match=r"latin\.csv line 3: byte 0xe9 at column 4 is not valid UTF-8"):
        ds.read_intent_csv(path)


def test_wrong_field_count_and_empty_cells(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"f\.csv line 3: expected 2 fields \(text,label\), got 3"):
        ds.read_intent_csv(write(tmp_path, "f.csv", "text,label\nhi,greeting\nhi,there,greeting\n"))
    with pytest.raises(InvalidInput, match=r"e\.csv line 2: column `label` is empty"):
        ds.read_intent_csv(write(tmp_path, "e.csv", "text,label\nhi,\n"))


def test_errors_do_not_echo_customer_text(tmp_path: Path) -> None:
    secret = "my card number is 4111111111111111"
    with pytest.raises(InvalidInput) as info:
        ds.read_intent_csv(write(tmp_path, "e.csv", f"text,label\n{secret},\n"))
    assert "4111" not in str(info.value)


def test_single_example_class_is_refused_with_its_line(tmp_path: Path) -> None:
    rows = [ds.Example(text=f"t{i}", intent="a", where=f"x.csv:{i + 2}") for i in range(5)]
    rows.append(ds.Example(text="lonely", intent="b", where="x.csv:7"))
    with pytest.raises(InvalidInput, match=r"'b' \(1 at x\.csv:7\); expected at least 3 examples per class"):
        ds.check_class_sizes(rows, "intent", needed=ds.min_examples_per_class(0.15, 0.15), path="x.csv")
    ds.check_class_sizes(rows, "intent", needed=1, path="x.csv")  # no split: one is enough


def test_labels_in_test_but_not_in_training() -> None:
    test = [ds.Example(text="a", intent="known", where="t.csv:2"), ds.Example(text="b", intent="new", where="t.csv:3"),
            ds.Example(text="c", intent="oos", where="t.csv:4")]
    with pytest.raises(InvalidInput, match=r"t\.csv: 1 intent label\(s\) are not in the training data: 'new' \(first at t\.csv:3\)"):
        ds.check_known_labels(test, "intent", ["known"], path="t.csv")
    ds.check_known_labels(test[::2], "intent", ["known"], path="t.csv")  # `oos` is always allowed


def test_stratified_split_keeps_every_class_in_every_part() -> None:
    rows = [ds.Example(text=f"{c}{i}", intent=c) for c in "abc" for i in range(3 if c == "c" else 20)]
    rows += [ds.Example(text=f"s{i}", sentiment="positive") for i in range(10)]
    split = ds.stratified_split(rows, task="intent", val_fraction=0.15, test_fraction=0.15, seed=0)
    for part in (split.train, split.val, split.test):
        assert {e.intent for e in part if e.intent} == {"a", "b", "c"}
    assert len(split.train) + len(split.val) + len(split.test) == len(rows)
    assert len({e.text for e in split.train} & {e.text for e in split.test}) == 0
    again = ds.stratified_split(rows, task="intent", val_fraction=0.15, test_fraction=0.15, seed=0)
    assert again == split


def test_affect_csv(tmp_path: Path) -> None:
    rows = ds.read_affect_csv(write(tmp_path, "s.csv", "text,sentiment,emotion\nugh,negative,anger\nok,neutral,\n"))
    assert (rows[0].sentiment, rows[0].emotion, rows[1].emotion) == ("negative", "anger", None)
    with pytest.raises(InvalidInput, match=r"s2\.csv line 2: sentiment 'angry' is not one of"):
        ds.read_affect_csv(write(tmp_path, "s2.csv", "text,sentiment\nugh,angry\n"))
    generic = ds.read_affect_csv(write(tmp_path, "s3.csv", "text,label\nyay,joy\n"), task="emotion")
    assert generic[0].emotion == "joy"
    with pytest.raises(InvalidInput, match=r"expected `text,sentiment` or `text,label`"):
        ds.read_affect_csv(write(tmp_path, "s4.csv", "text,emotion\nyay,joy\n"), task="sentiment")


def test_read_examples_dispatch(tmp_path: Path, mini_domain: Path) -> None:
    assert len(ds.read_examples(mini_domain)) == 6 * 15 + 15
    with pytest.raises(InvalidInput, match=r"expected a \.csv file or the domain \.yaml"):
        ds.read_examples(write(tmp_path, "x.json", "{}"))
    with pytest.raises(InvalidInput, match=r"task 'topic'"):
        ds.read_examples(mini_domain, task="topic")


def test_domain_file(mini_domain: Path) -> None:
    domain = read_domain(mini_domain)
    names = [name for name, _ in domain.intents]
    assert names[:2] == ["lost_or_stolen_card", "card_not_arrived"] and len(names) == 6
    assert len(domain.out_of_scope) == 15 and len(domain.knowledge) == 8
    entry = domain.knowledge[0]
    assert entry.entry_id == "kb_contactless_limit" and len(entry.questions) == 3
    examples = domain.examples()
    assert examples[0].where == f"{mini_domain}:8"  # "- I lost my card"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name: x\n", r"line 1: expected a top-level `intents` mapping"),
        ("intents:\n  greet:\n    examples: hello\n", r"line 3: intents\.greet\.examples: expected a list of strings"),
        ("intents:\n  greet:\n    examples:\n      - hi\n      - [a, b]\n",
         r"line 5: intents\.greet\.examples: expected a non-empty string"),
        ("intents:\n  greet: {examples: [hi]}\nknowledge:\n  - id: a\n    question: q\n",
         r"line 4: knowledge\[0\] \(a\): expected a non-empty string `answer`"),
        ("intents: [\n", r"not valid YAML"),
        ("intents:\n  oos:\n    examples: [x]\n", r"line 2: intent name 'oos' is reserved"),
    ],
)
def test_domain_file_errors_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        read_domain(write(tmp_path, "domain.yaml", content))


def test_domain_training_hash_ignores_responses(tmp_path: Path) -> None:
    base = "intents:\n  greet:\n    examples: [hi, hello]\n"
    a = read_domain(write(tmp_path, "a.yaml", base + "    response: Hello!\n"))
    b = read_domain(write(tmp_path, "b.yaml", base + "    response: Hi there!\n"))
    c = read_domain(write(tmp_path, "c.yaml", base.replace("hello", "hey")))
    assert a.training_sha256() == b.training_sha256() != c.training_sha256()


@pytest.mark.parametrize(
    ("labels", "expected"),
    [({"ambiguous"}, "neutral"), ({"positive", "neutral"}, "positive"), ({"negative", "ambiguous"}, "negative"),
     ({"positive", "negative"}, None), ({"neutral"}, "neutral")],
)
def test_goemotions_sentiment_mapping(labels: set[str], expected: str | None) -> None:
    assert map_sentiment(labels) == expected


@pytest.mark.parametrize(
    ("labels", "expected"),
    [({"joy", "neutral"}, "joy"), ({"joy", "anger"}, None), ({"neutral"}, "neutral"), ({"fear"}, "fear")],
)
def test_goemotions_emotion_mapping(labels: set[str], expected: str | None) -> None:
    assert map_emotion(labels) == expected


def test_read_goemotions(shared_data: Path) -> None:
    root = shared_data / "goemotions"
    if not root.is_dir():
        pytest.skip(f"GoEmotions not found at {root}")
    examples, stats = read_goemotions(root, "test")
    assert stats.rows == 5427
    assert stats.sentiment_kept + stats.sentiment_mixed_dropped == stats.rows
    assert 0 < stats.emotion_multi_dropped < 500
    assert {e.emotion for e in examples if e.emotion} == {"anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"}
    assert {e.sentiment for e in examples if e.sentiment} == {"negative", "neutral", "positive"}
