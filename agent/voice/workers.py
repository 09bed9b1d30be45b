"""Low-priority threads for the heavy work of live calls (synthesis, early transcription, loading).

Reply frames are paced by the event loop; when Whisper or the voice model keep both cores busy,
the loop must still wake every 20 ms. Work submitted here runs in threads whose scheduling
priority is lowered (Linux ``nice``, per thread), and the native thread pools that CTranslate2
and onnxruntime create while a model loads inherit that priority, so inference yields to the
loop. Where lowering priority is not allowed, the work runs at normal priority.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

log = logging.getLogger("agent.voice")

NICE_INCREMENT = 10  # added to the process's niceness for worker threads
MAX_WORKERS = 4
T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _lower_priority() -> None:
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + NICE_INCREMENT))
    except (AttributeError, OSError) as e:  # not Linux, or not permitted: run at normal priority
        log.debug("voice workers keep normal priority (%s)", type(e).__name__)


def pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="voice-worker", initializer=_lower_priority)
        return _pool


async def in_background(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a low-priority worker thread."""
    return await asyncio.get_running_loop().run_in_executor(pool(), fn, *args)
