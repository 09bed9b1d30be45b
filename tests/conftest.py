"""Fixtures shared by the whole suite.

Redis: ``--redis-url`` (or ``AGENT_TEST_REDIS_URL``) names a server; tests that need one use the
``redis_url`` fixture and a key prefix of their own (``redis_prefix``), and delete their keys
afterwards. Without a server those tests skip, unless ``AGENT_TEST_REQUIRE_REDIS=1`` (set by
``.ci/run``), where they fail instead.

Shared data: ``AGENT_SHARED_DATA`` (default ``../shared/data`` next to the project) is read by
path, never copied; tests that need it skip with a message where it is absent.
"""

from __future__ import annotations

import os
import uuid

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see agent/cli.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--redis-url",
        default=os.environ.get("AGENT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
        help="Redis server for tests marked 'redis' (default: %(default)s)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests run last: Playwright's sync API holds an event loop while it is open."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


def _redis_answers(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        ok = bool(client.ping())
        client.close()
        return ok
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    url = str(request.config.getoption("--redis-url"))
    if not _redis_answers(url):
        message = f"no Redis server answers at {url} (start one, or pass --redis-url)"
        if os.environ.get("AGENT_TEST_REQUIRE_REDIS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    import redis

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        for pattern in (f"{prefix}:*", f"*{{{prefix}*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Path(os.environ.get("AGENT_SHARED_DATA", ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set AGENT_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model (full default domain and sentiment examples), trained once per session
    with fewer epochs than production (``AGENT_TEST_EPOCHS``, default 4) through the same
    ``ensure_default_model`` path the runtime takes on first start. Cached in ``AGENT_CACHE_DIR``
    when set (``.ci/run`` sets it), so repeated local runs reuse it."""
    from dataclasses import replace

    from models.default_model import DEFAULT_CONFIG, ensure_default_model

    cache = os.environ.get("AGENT_CACHE_DIR")
    cache_dir = Path(cache) if cache else tmp_path_factory.mktemp("model-cache")
    config = replace(DEFAULT_CONFIG, epochs=int(os.environ.get("AGENT_TEST_EPOCHS", "4")))
    return ensure_default_model(ROOT / "assets" / "domain.yaml", cache_dir, progress=False, config=config)


@pytest.fixture(scope="session")
def image_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the runtime's default image-kind head (trained once per session, as
    ``load_image_analyzer`` does on a first start), for tests that start a server which must
    answer its first picture at once. ``AGENT_CACHE_DIR`` when set, so local runs reuse it."""
    from agent.config import VisionConfig
    from models.image_analyzer import load_image_analyzer

    cache = os.environ.get("AGENT_CACHE_DIR")
    cache_dir = Path(cache) if cache else tmp_path_factory.mktemp("image-cache")
    load_image_analyzer(VisionConfig(), cache_dir)
    return cache_dir
