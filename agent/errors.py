"""Errors this package raises on purpose.

Each boundary maps them once: HTTP turns ``InvalidInput`` into 4xx with its message,
``DependencyUnavailable`` into 503; voice calls apologise and hand off; Rasa actions raise
``ActionExecutionRejection``. Messages never contain customer text or secrets.
"""

from __future__ import annotations


class AgentError(Exception):
    """Base for errors this package raises on purpose."""


class InvalidInput(AgentError):
    """The caller sent something unusable. The message is safe to show to the caller."""


class NotFound(AgentError):
    """A conversation, user, hand-off or blob that the caller named does not exist."""


class Conflict(AgentError):
    """The request is valid but the target is in the wrong state (e.g. a claimed hand-off)."""


class DependencyUnavailable(AgentError):
    """Redis, model weights or another dependency failed; a retry later may work."""


class ConcurrentUpdate(AgentError):
    """Another worker kept saving this conversation first, more times than the retry limit."""


class ConfigError(AgentError):
    """The configuration is invalid; the message lists every problem found."""


class PayloadTooLarge(InvalidInput):
    """A body, file or field is over its documented size limit (HTTP 413)."""


class Unauthorized(AgentError):
    """A protected endpoint was called without the right credentials (HTTP 401)."""
