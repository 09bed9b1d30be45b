"""One OS process posting turns to a shared conversation (run by test_redis_store.py, twice at once).

Usage: python -m tests.dialogue.race_worker URL PREFIX CONVERSATION_ID WORKER N_TURNS START_AT
Prints one line: the number of turns it got recorded, and how many steps it had to redo.
"""

from __future__ import annotations

import asyncio
import sys
import time

from agent.messages import IntentScore, NluResult, UserTurn
from dialogue.domain import load_domain
from dialogue.service import DialogueService
from dialogue.stores.redis import RedisTrackerStore
from tests.dialogue.conftest import SMALL_DOMAIN, redis_config


async def main(url: str, prefix: str, conversation_id: str, worker: str, n_turns: int, start_at: float) -> None:
    store = RedisTrackerStore.from_config(redis_config(url, prefix))
    service = DialogueService(store, load_domain(SMALL_DOMAIN), max_retries=50)
    result = NluResult(intent="greeting", confidence=0.9, ranking=(IntentScore(intent="greeting", confidence=0.9),))
    await asyncio.sleep(max(0.0, start_at - time.time()))  # both workers start together
    done = 0
    for i in range(n_turns):
        turn = UserTurn(conversation_id=conversation_id, channel="api", text=f"{worker} {i}")
        await service.handle_turn(turn, result)
        done += 1
    await service.aclose()
    print(done, service.retries)


if __name__ == "__main__":
    url, prefix, conversation_id, worker, n_turns, start_at = sys.argv[1:7]
    asyncio.run(main(url, prefix, conversation_id, worker, int(n_turns), float(start_at)))
