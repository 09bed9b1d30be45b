"""Fixtures for the text-model tests: a small domain, and one tiny model trained once per session
(through ``ensure_default_model``, the same path as the runtime's first start) and shared."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
TINY_EPOCHS = 4


@pytest.fixture(scope="session")
def mini_domain() -> Path:
    return DATA / "mini_domain.yaml"


@pytest.fixture(scope="session")
def mini_sentiment() -> Path:
    return DATA / "mini_sentiment.csv"


@pytest.fixture(scope="session")
def tiny_config():
    from dataclasses import replace

    from models.default_model import DEFAULT_CONFIG

    return replace(DEFAULT_CONFIG, epochs=TINY_EPOCHS, threads=1)  # 1 thread: the CI machine is shared


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, mini_domain: Path, mini_sentiment: Path,
                   tiny_config) -> Path:
    """Six intents + out-of-scope + 36 sentiment rows, 4 epochs: about a minute on 2 cores."""
    from models.default_model import ensure_default_model

    cache = tmp_path_factory.mktemp("nlu-cache")
    return ensure_default_model(mini_domain, cache, sentiment_path=mini_sentiment, progress=False,
                                config=tiny_config)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    from models.nlu import NluModel

    return NluModel.from_pretrained(tiny_model_dir)
