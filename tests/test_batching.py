"""The micro-batcher: concurrent turns share forward passes; errors reach every waiter."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from agent.batching import TextBatcher
from agent.messages import NluResult


def slow_batch(calls: list[int]):  # type: ignore[no-untyped-def]
    def run(texts: Sequence[str]) -> list[tuple[NluResult, np.ndarray]]:
        calls.append(len(texts))
        time.sleep(0.02)  # a forward pass takes time, so others queue behind it
        return [(NluResult(intent=t, confidence=1.0), np.zeros(2, np.float32)) for t in texts]

    return run


async def test_a_lone_request_is_answered_at_once() -> None:
    calls: list[int] = []
    batcher = TextBatcher(slow_batch(calls))
    result, _ = await batcher.submit("hello")
    assert result.intent == "hello" and calls == [1]
    await batcher.aclose()


async def test_concurrent_requests_share_forward_passes_and_keep_their_order() -> None:
    calls: list[int] = []
    batcher = TextBatcher(slow_batch(calls), max_batch=8)
    texts = [f"t{i}" for i in range(40)]
    results = await asyncio.gather(*(batcher.submit(t) for t in texts))
    assert [r.intent for r, _ in results] == texts
    assert sum(calls) == 40 and len(calls) < 40 and max(calls) <= 8
    await batcher.aclose()


async def test_an_error_reaches_every_waiter_and_the_worker_goes_on() -> None:
    fail = threading.Event()
    fail.set()

    def flaky(texts: Sequence[str]) -> list[tuple[NluResult, np.ndarray]]:
        if fail.is_set():
            raise RuntimeError("model broke")
        return [(NluResult(intent=t, confidence=1.0), np.zeros(2, np.float32)) for t in texts]

    batcher = TextBatcher(flaky)
    outcomes = await asyncio.gather(*(batcher.submit(f"x{i}") for i in range(5)), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    fail.clear()
    result, _ = await batcher.submit("after")
    assert result.intent == "after"
    await batcher.aclose()


def test_a_batcher_survives_a_new_event_loop() -> None:
    calls: list[int] = []
    batcher = TextBatcher(slow_batch(calls))
    assert asyncio.run(batcher.submit("a"))[0].intent == "a"
    assert asyncio.run(batcher.submit("b"))[0].intent == "b"


@pytest.mark.parametrize("n", [1, 3])
async def test_cancelled_waiters_do_not_block_others(n: int) -> None:
    calls: list[int] = []
    batcher = TextBatcher(slow_batch(calls))
    doomed = [asyncio.ensure_future(batcher.submit(f"c{i}")) for i in range(n)]
    await asyncio.sleep(0)
    for task in doomed:
        task.cancel()
    result, _ = await batcher.submit("kept")
    assert result.intent == "kept"
    await batcher.aclose()
