"""Rasa custom actions that put our runtime behind a Rasa assistant.

Serve them with ``agent rasa-actions [--port 5055]`` or ``python -m rasa_sdk --actions
agent.channels.rasa_action`` and point Rasa's ``action_endpoint`` at ``/webhook``:

- ``action_agent_respond``: the latest user message (text, and an image or audio attachment in
  its metadata) goes to our runtime under the Rasa ``sender_id``; our reply comes back as a bot
  message, with ``agent_*`` slots (intent, confidence, sentiment, emotion, decision, entities),
  and a ``pause`` event when our policy handed the conversation to a human;
- ``action_handoff_to_human``: a hand-off with a summary of the Rasa tracker, a message to the
  customer and the ``pause`` event;
- ``action_agent_profile``: the ``agent_profile_*`` slots from our profile store (profile
  fields still empty there are filled from the same slots when Rasa has them);
- ``action_agent_sentiment``: sentiment and emotion slots for the latest message, nothing recorded.

Errors: unusable input raises ``ActionExecutionRejection`` (rasa-sdk answers ``400 {"error",
"action_name"}`` and Rasa predicts another action); nothing is written for a rejected call.
A runtime that is down (or any unexpected error) becomes an apology to the customer plus a
hand-off where one can still be recorded (``agent_decision`` = ``handoff`` and a ``pause``),
else ``agent_decision`` = ``unavailable``; never a 500. Slot names and the runtime's
configuration (``AGENT_*`` environment, ``rasa`` section) are in docs/rasa.md.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.interfaces import ActionExecutionRejection

from agent.channels import rasa_tracker as rt
from agent.channels.rasa_attachments import AttachmentLimits, load_attachments
from agent.channels.rasa_client import RasaTurn, RuntimeClient, make_runtime_client
from agent.channels.rasa_server import register_plugin, serve_actions
from agent.config import AgentConfig
from agent.errors import ConcurrentUpdate, Conflict, DependencyUnavailable, InvalidInput, NotFound
from agent.messages import Handoff, HandoffReason

log = logging.getLogger("agent.rasa")

UNAVAILABLE_TEXT = ("Sorry, I can't look into this right now because of a problem on our side. "
                    "Please try again in a few minutes.")
DOWN_HANDOFF_TEXT = ("Sorry, something went wrong on our side. I've passed your conversation to a "
                     "colleague, who will reply here.")
UNAVAILABLE_RESPONSE = "utter_agent_unavailable"  # used instead of UNAVAILABLE_TEXT when the domain has it
DOWN_HANDOFF_RESPONSE = "utter_agent_down_handoff"
PROFILE_SLOT_FIELDS = ((rt.PROFILE_NAME, "name"), (rt.PROFILE_TIER, "tier"), (rt.PROFILE_LANGUAGE, "language"))


class RuntimeHolder:
    """This process's runtime client, built on first use from ``configure``d or environment config."""

    def __init__(self) -> None:
        self._config: AgentConfig | None = None
        self._client: RuntimeClient | None = None
        self._lock: asyncio.Lock | None = None

    @property
    def config(self) -> AgentConfig:
        if self._config is None:
            self._config = AgentConfig.from_env()
        return self._config

    def configure(self, config: AgentConfig) -> None:
        self._config = config

    def use(self, client: RuntimeClient | None, config: AgentConfig | None = None) -> None:
        """Install a client (tests, embedding); ``None`` forgets the current one."""
        self._client, self._lock = client, None
        if config is not None:
            self._config = config

    async def get(self) -> RuntimeClient:
        if self._client is None:
            self._lock = self._lock or asyncio.Lock()
            async with self._lock:
                if self._client is None:
                    client = make_runtime_client(self.config)
                    start = getattr(client, "start", None)
                    if start is not None:
                        start()  # in-process: the text model loads in the background
                    self._client = client
        return self._client

    def peek(self) -> RuntimeClient | None:
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


RUNTIME = RuntimeHolder()


class AgentAction(Action, abc.ABC):  # type: ignore[misc]  # rasa_sdk.Action is untyped
    """Maps our errors to Rasa's; no exception leaves ``run`` except ``ActionExecutionRejection``."""

    action_name: ClassVar[str]
    handoff_when_down: ClassVar[bool] = True

    def name(self) -> str:
        return self.action_name

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            return await self.act(dispatcher, tracker, domain or {})
        except (InvalidInput, NotFound, Conflict) as e:  # messages hold no customer text
            log.info("%s rejected: %s", self.action_name, e)
            raise ActionExecutionRejection(self.action_name, str(e)) from None
        except (DependencyUnavailable, ConcurrentUpdate) as e:
            log.warning("%s: runtime unavailable: %s", self.action_name, e)
        except Exception as e:  # never let rasa-sdk's catch-all (which echoes the body) see one
            log.exception("%s failed unexpectedly (%s)", self.action_name, type(e).__name__)
        return await runtime_down(dispatcher, tracker, domain or {}, action=self.action_name,
                                  try_handoff=self.handoff_when_down)

    @abc.abstractmethod
    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]: ...


async def runtime_down(dispatcher: CollectingDispatcher, tracker: Tracker, domain: Mapping[str, Any], *,
                       action: str, try_handoff: bool) -> list[dict[str, Any]]:
    """An apology, plus a hand-off (``pause``) if one can still be recorded."""
    handoff: Handoff | None = None
    client = RUNTIME.peek()
    if try_handoff and client is not None:
        try:
            summary = f"The runtime failed during {action}. " + rt.handoff_summary(tracker)
            handoff = await client.handoff(tracker.sender_id, summary=summary, user_id=_user_id_or_none(tracker),
                                           reason=HandoffReason.DEPENDENCY_DOWN)
        except Exception as e:  # noqa: BLE001 (the store is down too: tell the customer, no pause)
            log.warning("%s: no hand-off could be recorded (%s)", action, type(e).__name__)
    found = domain.get("responses")
    responses: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    if handoff is not None:
        _utter(dispatcher, responses, DOWN_HANDOFF_RESPONSE, DOWN_HANDOFF_TEXT)
        slots = [(rt.DECISION, "handoff"), (rt.HANDOFF_ID, handoff.handoff_id or None)]
        return rt.slot_events(slots, domain) + [rt.pause_event()]
    _utter(dispatcher, responses, UNAVAILABLE_RESPONSE, UNAVAILABLE_TEXT)
    return rt.slot_events([(rt.DECISION, rt.UNAVAILABLE)], domain)


def _utter(dispatcher: CollectingDispatcher, responses: Mapping[str, Any], name: str, text: str) -> None:
    if name in responses:
        dispatcher.utter_message(response=name)
    else:
        dispatcher.utter_message(text=text)


def _user_id_or_none(tracker: Tracker) -> str | None:
    try:
        message = rt.latest_user_message(tracker, action="hand-off")
    except InvalidInput:
        message = None
    try:
        return rt.user_id_of(tracker, message)
    except InvalidInput:
        return None


def _limits(config: AgentConfig) -> AttachmentLimits:
    return AttachmentLimits(allow_list=config.rasa.attachment_allow_list,
                            max_bytes=config.rasa.max_attachment_bytes, timeout_s=config.rasa.attachment_timeout_s)


def _turn_metadata(message: rt.RasaMessage) -> tuple[tuple[str, str], ...]:
    items = (("rasa_intent", message.rasa_intent), ("rasa_message_id", message.message_id),
             ("rasa_input_channel", message.input_channel))
    return tuple((k, v[:128]) for k, v in items if v)


class ActionAgentRespond(AgentAction):
    action_name = "action_agent_respond"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        message = rt.latest_user_message(tracker, action=self.action_name)
        attachments = await load_attachments(message.metadata, _limits(RUNTIME.config))
        if message.text is None and not attachments:
            raise InvalidInput(f"{self.action_name} needs text or an attachment in the latest user message; got neither")
        client = await RUNTIME.get()
        result = await client.respond(RasaTurn(
            conversation_id=tracker.sender_id, user_id=rt.user_id_of(tracker, message), text=message.text,
            attachments=attachments, metadata=_turn_metadata(message),
        ))
        reply = rt.utterance(result)
        if reply is not None:
            dispatcher.utter_message(**reply)
        events = rt.slot_events(rt.turn_slots(result), domain)
        if isinstance(result.decision, Handoff):
            events.append(rt.pause_event())
        return events


class ActionHandoffToHuman(AgentAction):
    action_name = "action_handoff_to_human"
    handoff_when_down = False  # the hand-off itself just failed

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        client = await RUNTIME.get()
        handoff = await client.handoff(tracker.sender_id, summary=rt.handoff_summary(tracker),
                                       user_id=_user_id_or_none(tracker))
        dispatcher.utter_message(text=handoff.text)
        slots = [(rt.DECISION, "handoff"), (rt.HANDOFF_ID, handoff.handoff_id or None)]
        return rt.slot_events(slots, domain) + [rt.pause_event()]


class ActionAgentProfile(AgentAction):
    action_name = "action_agent_profile"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        user_id = _user_id_or_none(tracker)
        if user_id is None:
            raise InvalidInput(f"{self.action_name} needs a customer id (tracker sender_id); got none")
        client = await RUNTIME.get()
        profile = await client.get_profile(user_id)
        gaps = {}
        for slot, field in PROFILE_SLOT_FIELDS:
            value = tracker.slots.get(slot)
            if isinstance(value, str) and value.strip() and getattr(profile, field, None) is None:
                gaps[field] = value.strip()
        if gaps:  # the assistant collected what the store did not know
            profile = await client.update_profile(user_id, gaps)
        return rt.slot_events(rt.profile_slots(profile), domain)


class ActionAgentSentiment(AgentAction):
    action_name = "action_agent_sentiment"

    async def act(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        message = rt.latest_user_message(tracker, action=self.action_name)
        if message.text is None:
            raise InvalidInput(f"{self.action_name} needs the text of the latest user message; got none")
        client = await RUNTIME.get()
        return rt.slot_events(rt.sentiment_slots(await client.understand(message.text)), domain)


register_plugin()  # body checks and no echo of request bodies in any server that loads these actions

__all__ = [
    "RUNTIME",
    "ActionAgentProfile",
    "ActionAgentRespond",
    "ActionAgentSentiment",
    "ActionHandoffToHuman",
    "serve_actions",
]
