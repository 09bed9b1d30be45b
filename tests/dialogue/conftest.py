"""Fixtures for the dialogue tests: the small test domain, a movable clock, and both stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.config import Secret, StoreConfig
from agent.messages import Entity, IntentScore, NluResult, UserTurn
from dialogue.domain import Domain, load_domain
from dialogue.service import DialogueOutcome, DialogueService
from dialogue.stores.base import TrackerStore
from dialogue.stores.memory import InMemoryTrackerStore

HERE = Path(__file__).resolve().parent
ROOT_DIR = HERE.parent.parent
SMALL_DOMAIN = HERE / "domain_small.yaml"
T0 = 1_764_300_000.0  # 2025-11-28, a fixed start time for the fake clock


class FakeClock:
    """Unix seconds that only move when a test moves them."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def domain() -> Domain:
    return load_domain(SMALL_DOMAIN)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def redis_config(url: str, prefix: str, **overrides: object) -> StoreConfig:
    return StoreConfig(redis_url=Secret(url), key_prefix=prefix, **overrides)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[TrackerStore]:
    """Each test using this runs once per store: the contract both must keep."""
    if request.param == "memory":
        yield InMemoryTrackerStore(clock=clock)
        return
    from dialogue.stores.redis import RedisTrackerStore

    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    redis_store = RedisTrackerStore.from_config(redis_config(url, prefix))
    yield redis_store
    await redis_store.aclose()


@pytest.fixture
def service(store: TrackerStore, domain: Domain, clock: FakeClock) -> DialogueService:
    return DialogueService(store, domain, clock=clock)


def nlu(intent: str, confidence: float = 0.9, *, second: tuple[str, float] | None = None, oos: float = 0.0,
        sentiment: float = 0.0, entities: tuple[tuple[str, str], ...] = ()) -> NluResult:
    """A hand-made NLU result: the intent, an optional runner-up, sentiment and entities."""
    ranking = [IntentScore(intent=intent, confidence=confidence)]
    if second is not None:
        ranking.append(IntentScore(intent=second[0], confidence=second[1]))
    label = "negative" if sentiment <= -0.3 else "positive" if sentiment >= 0.3 else "neutral"
    ents = tuple(Entity(kind=k, value=v, text=v, start=0, end=len(v)) for k, v in entities)
    return NluResult(intent=intent, confidence=confidence, ranking=tuple(ranking), oos_score=oos,
                     sentiment=label, sentiment_score=sentiment, entities=ents)


async def say(service: DialogueService, conversation_id: str, text: str, result: NluResult | None, *,
              user_id: str | None = None, **kwargs: object) -> DialogueOutcome:
    """One customer turn through the service, on the web chat channel."""
    turn = UserTurn(conversation_id=conversation_id, channel="web_chat", text=text, user_id=user_id,
                    dtmf=kwargs.pop("dtmf", None))  # type: ignore[arg-type]
    return await service.handle_turn(turn, result, **kwargs)  # type: ignore[arg-type]
