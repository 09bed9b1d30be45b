"""Adaptive micro-batching of text-model calls across concurrent turns.

Under load many turns wait for the text model at once; one forward pass over all of them
costs far less than one pass each. ``TextBatcher.submit`` queues a message; a single worker
takes whatever is queued (up to ``max_batch``) as soon as the model is free, so a lone
request is never held back waiting for company and a busy server batches by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from agent.messages import NluResult

BatchFn = Callable[[Sequence[str]], list[tuple[NluResult, np.ndarray]]]


class TextBatcher:
    def __init__(self, batch_fn: BatchFn, *, max_batch: int = 32) -> None:
        self._batch_fn = batch_fn
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[Any]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0  # forward passes run, for tests and metrics
        self.items = 0

    async def submit(self, text: str) -> tuple[NluResult, np.ndarray]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            self._loop, self._queue = loop, asyncio.Queue()
            self._worker = loop.create_task(self._run())
        assert self._queue is not None
        future: asyncio.Future[Any] = loop.create_future()
        await self._queue.put((text, future))
        return await future  # type: ignore[no-any-return]

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while len(batch) < self._max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            live = [(t, f) for t, f in batch if not f.done()]
            if not live:
                continue
            try:
                results = await asyncio.to_thread(self._batch_fn, [t for t, _ in live])
            except BaseException as e:  # every waiter gets the error; the worker goes on
                for _, future in live:
                    if not future.done():
                        future.set_exception(e)
                if isinstance(e, asyncio.CancelledError):
                    raise
                continue
            self.batches += 1
            self.items += len(live)
            for (_, future), result in zip(live, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except (asyncio.CancelledError, Exception):
                pass
            self._worker = None
