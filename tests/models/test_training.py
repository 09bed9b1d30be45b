"""Training and evaluation entry points: train_from_files, evaluate_files, retrain_head and the
cached default model."""

from __future__ import annotations

import csv
import json
import random
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from agent.errors import DependencyUnavailable, InvalidInput
from models import training
from models.artifacts import META_FILE
from models.default_model import cache_key, ensure_default_model
from models.nlu import BANK_FILE, BANK_FILE_INT8, NluModel


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


# --- bad input, before any model is loaded ------------------------------------------------------


def test_single_example_class_is_refused(tmp_path: Path) -> None:
    rows = [(f"text {i}", "a") for i in range(6)] + [("alone", "b")]
    data = write_csv(tmp_path / "one.csv", rows)
    with pytest.raises(InvalidInput, match=r"one\.csv: 1 intent class\(es\) have too few examples.*'b' \(1 at .*one\.csv:8\)"):
        training.train_from_files(data, tmp_path / "out", epochs=1, progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", r"file is empty"), (b"text,label\n", r"header but no rows"), (b"words,intent_name\nhi,x\n", r"line 1: header has columns"),
     (b"text,label\nok,a\n\xff\xfe,b\n", r"line 3: byte 0xff")],
)
def test_bad_files_fail_cleanly(tmp_path: Path, content: bytes, message: str) -> None:
    data = tmp_path / "bad.csv"
    data.write_bytes(content)
    with pytest.raises(InvalidInput, match=message):
        training.train_from_files(data, tmp_path / "out", epochs=1, progress=False)
    assert not (tmp_path / "out").exists()


def test_missing_file_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        training.train_from_files(tmp_path / "missing.csv", tmp_path / "out", progress=False)
    data = write_csv(tmp_path / "d.csv", [(f"t{i}", "a") for i in range(5)])
    with pytest.raises(InvalidInput, match=r"task 'topics'"):
        training.train_from_files(data, tmp_path / "out", task="topics", progress=False)
    with pytest.raises(InvalidInput, match=r"epochs must be >= 1, got 0"):
        training.train_from_files(data, tmp_path / "out", epochs=0, progress=False)
    with pytest.raises(InvalidInput, match="base_model: applies to task sentiment"):
        training.train_from_files(data, tmp_path / "out", base_model=tmp_path, progress=False)
    with pytest.raises(InvalidInput, match=r"oos_method must be energy\|maxlogit\|msp\|msp\+knn, got 'knn'"):
        training.TrainConfig(oos_method="knn")


def test_cli_offers_every_oos_method() -> None:
    from agent.cli import OOS_METHOD_CHOICES
    from models.calibration import OOS_METHODS

    assert sorted(OOS_METHOD_CHOICES) == sorted(OOS_METHODS)


def test_refuses_to_overwrite_a_directory_that_is_not_a_model(tmp_path: Path) -> None:
    from models.artifacts import atomic_dir

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="exists and is not a model directory"), atomic_dir(tmp_path / "out"):
        pass
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"
    data = write_csv(tmp_path / "d.csv", [(f"t{i}", label) for i in range(5) for label in "ab"])
    with pytest.raises(InvalidInput, match="exists and is not a model directory"):  # before any training
        training.train_from_files(data, tmp_path / "out", epochs=1, progress=False)


def test_failed_write_leaves_no_partial_model(tmp_path: Path) -> None:
    from models.artifacts import atomic_dir

    with pytest.raises(RuntimeError, match="boom"), atomic_dir(tmp_path / "model") as tmp:
        (tmp / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="incomplete"), atomic_dir(tmp_path / "model") as tmp:
        (tmp / "model.safetensors").write_bytes(b"no metadata")
    assert list(tmp_path.iterdir()) == []


# --- with real training -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def banking_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four Banking77 intents, 40 training rows each; test rows of those four plus two unknown
    intents labelled ``oos``."""
    root = shared_data / "banking77"
    if not (root / "train.csv").is_file():
        pytest.skip(f"Banking77 not found at {root}")
    known = ["card_arrival", "exchange_rate", "lost_or_stolen_card", "top_up_failed"]
    unknown = ["age_limit", "apple_pay_or_google_pay"]

    def read(name: str) -> list[dict[str, str]]:
        with (root / name).open(encoding="utf-8") as f:
            return list(csv.DictReader(f))

    train = [(r["text"], r["category"]) for r in read("train.csv") if r["category"] in known]
    random.Random(0).shuffle(train)
    train = [row for label in known for row in [r for r in train if r[1] == label][:40]]
    test = [(r["text"], r["category"] if r["category"] in known else "oos")
            for r in read("test.csv") if r["category"] in known + unknown]
    d = tmp_path_factory.mktemp("banking")
    return {"train": write_csv(d / "train.csv", train, ("text", "category")), "test": write_csv(d / "test.csv", test),
            "closed": write_csv(d / "closed.csv", [r for r in test if r[1] != "oos"]), "dir": d}


@pytest.mark.slow
def test_train_from_files_two_epochs_reaches_stated_accuracy(banking_subset: dict[str, Path]) -> None:
    out = banking_subset["dir"] / "model"
    metrics = training.train_from_files(banking_subset["train"], out, epochs=2, progress=False,
                                        test_data=banking_subset["closed"],
                                        config=replace(training.TrainConfig(), threads=1))
    assert metrics["epochs_run"] == 2 and metrics["sizes"]["test"] == 160
    assert metrics["test"]["intent"]["accuracy"] >= 0.9, metrics["test"]["intent"]  # stated: >= 90% on 160 held out
    assert (out / META_FILE).is_file() and (out / "training_curves.png").stat().st_size > 1000

    result = training.evaluate_files(out, banking_subset["test"], out_json=banking_subset["dir"] / "eval.json")
    oos = result["intent"]["oos"]
    assert oos["n_oos"] == 80 and oos["auroc"] > 0.75, oos
    assert oos["in_scope_accuracy_at_1pt"] >= oos["closed_set_accuracy"] - 0.01 - 1e-9
    assert "out-of-scope: AUROC" in result["report_text"]
    assert json.loads((banking_subset["dir"] / "eval.json").read_text())["intent"]["oos"]["auroc"] == oos["auroc"]

    # no oos class in training: the default method compares with the training messages' embeddings
    meta = json.loads((out / META_FILE).read_text())
    assert meta["oos"]["method"] == "msp+knn" and set(meta["oos"]["standardise"]) == {
        "msp_mean", "msp_std", "knn_mean", "knn_std"}
    bank, bank_int8 = np.load(out / BANK_FILE), np.load(out / BANK_FILE_INT8)
    assert bank.dtype == np.float16 and bank.shape == bank_int8.shape == (metrics["sizes"]["train"], 384)
    assert not np.array_equal(bank, bank_int8) and meta["oos_int8"]["standardise"] != meta["oos"]["standardise"]
    model = NluModel.from_pretrained(out, quantize=True)
    assert model.oos.to_dict() == meta["oos_int8"]  # the int8 model scores with its own bank and calibration
    assert NluModel.from_pretrained(out).oos.to_dict() == meta["oos"]
    unrelated, inside = model.understand_batch(["what's the weather in Leeds", "my new card still hasn't arrived"])
    assert unrelated.oos_score > model.oos_threshold > inside.oos_score, (unrelated, inside)


@pytest.mark.slow
def test_neighbour_model_needs_its_bank_and_keeps_it_when_a_head_is_retrained(
        banking_subset: dict[str, Path], mini_sentiment: Path, tmp_path: Path) -> None:
    out = banking_subset["dir"] / "model"
    if not (out / META_FILE).is_file():
        pytest.skip("needs the model of test_train_from_files_two_epochs_reaches_stated_accuracy")
    retrained = tmp_path / "retrained"
    training.train_from_files(mini_sentiment, retrained, task="sentiment", base_model=out, epochs=1, progress=False)
    for name in (BANK_FILE, BANK_FILE_INT8):
        assert np.allclose(np.load(retrained / name), np.load(out / name), atol=2e-3)
    texts = ["where is my card", "is it going to rain tomorrow"]
    before, after = NluModel.from_pretrained(out), NluModel.from_pretrained(retrained)
    assert [r.oos_score for r in after.understand_batch(texts)] == pytest.approx(
        [r.oos_score for r in before.understand_batch(texts)], abs=1e-6)
    (retrained / BANK_FILE).unlink()
    with pytest.raises(DependencyUnavailable, match=r"msp\+knn.*needs the in-scope training embeddings"):
        NluModel.from_pretrained(retrained)


@pytest.mark.slow
def test_evaluate_rejects_labels_the_model_does_not_know(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "eval.csv", [("hi", "greeting"), ("send money", "transfer_money")])
    with pytest.raises(InvalidInput, match=r"'transfer_money' \(first at .*eval\.csv:3\)"):
        training.evaluate_files(tiny_model_dir, data)


@pytest.mark.slow
def test_retrain_sentiment_head_keeps_intents(tiny_model_dir: Path, tiny_model: NluModel, mini_sentiment: Path,
                                              tmp_path: Path) -> None:
    out = tmp_path / "retrained"
    metrics = training.train_from_files(mini_sentiment, out, task="sentiment", base_model=tiny_model_dir,
                                        epochs=3, progress=False)
    assert metrics["task"] == "sentiment" and metrics["test"]["sentiment"]["n"] >= 3
    new = NluModel.from_pretrained(out)
    texts = ["I lost my card", "what's the euro rate", "thanks, you're great", "this is a disgrace"]
    assert [r.intent for r in new.understand_batch(texts)] == [r.intent for r in tiny_model.understand_batch(texts)]
    assert new.temperatures["sentiment"] > 0
    assert new.meta["training"]["retrained_heads"][0]["task"] == "sentiment"


@pytest.mark.slow
def test_default_model_is_cached(tiny_model_dir: Path, mini_domain: Path, mini_sentiment: Path, tiny_config) -> None:
    t0 = time.perf_counter()
    again = ensure_default_model(mini_domain, tiny_model_dir.parent, sentiment_path=mini_sentiment,
                                 progress=False, config=tiny_config)
    assert again == tiny_model_dir and time.perf_counter() - t0 < 1.0
    assert tiny_model_dir.name.endswith(cache_key(mini_domain, mini_sentiment, tiny_config))


@pytest.mark.slow
def test_concurrent_start_waits_for_the_training_process(tiny_model_dir: Path, mini_domain: Path,
                                                         mini_sentiment: Path, tiny_config, tmp_path: Path) -> None:
    """A second process finds the lock held, waits, and loads what the first one wrote."""
    import shutil

    from filelock import FileLock

    key = cache_key(mini_domain, mini_sentiment, tiny_config)
    target = tmp_path / f"default-nlu-{key}"
    (tmp_path / f".{target.name}.tmp-dead").mkdir()  # left by a killed trainer
    result: dict[str, Path] = {}
    with FileLock(str(target) + ".lock"):
        thread = threading.Thread(target=lambda: result.setdefault("path", ensure_default_model(
            mini_domain, tmp_path, sentiment_path=mini_sentiment, progress=False, config=tiny_config)))
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive() and "path" not in result  # waiting for the lock
        shutil.copytree(tiny_model_dir, target)  # "the other process" finishes
    thread.join(timeout=30)
    assert result["path"] == target
    assert (tmp_path / f".{target.name}.tmp-dead").exists()  # not trained, so nothing was cleaned


def test_default_model_needs_existing_sentiment_file(mini_domain: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="sentiment data .*missing.csv: file does not exist"):
        ensure_default_model(mini_domain, tmp_path, sentiment_path=tmp_path / "missing.csv", progress=False)
