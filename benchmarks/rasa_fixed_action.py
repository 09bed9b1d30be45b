"""The baseline of benchmarks/bench_rasa.py: a rasa-sdk action that returns a fixed response,
served by the same rasa-sdk action server (``python -m rasa_sdk --actions rasa_fixed_action``,
run from benchmarks/). It reads nothing and calls nothing: what any custom action costs."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher


class ActionFixedResponse(Action):
    def name(self) -> str:
        return "action_fixed_response"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        dispatcher.utter_message(text="Thanks, a fixed answer.")
        return [SlotSet("agent_decision", "answer")]
