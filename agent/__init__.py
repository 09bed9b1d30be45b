"""Multimodal conversational agent runtime for customer service.

Public API: ``Agent``, ``AgentConfig``, ``load_agent``. Imported lazily, so that
``import agent.messages`` (used by ``dialogue/``) does not pull in torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Agent", "AgentConfig", "load_agent"]

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.runtime import Agent, load_agent


def __getattr__(name: str) -> Any:
    if name == "AgentConfig":
        from agent.config import AgentConfig

        return AgentConfig
    if name in ("Agent", "load_agent"):
        from agent import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
