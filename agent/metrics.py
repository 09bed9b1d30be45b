"""Prometheus metrics: turns, latency, decisions by kind, hand-offs by reason, errors.

One registry per process (``REGISTRY``), exposed at ``GET /metrics``. Labels never carry
customer data: only channel names, decision kinds, hand-off reasons and error classes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from agent.messages import Handoff, PolicyDecision, decision_kind

REGISTRY = CollectorRegistry(auto_describe=True)

TURNS = Counter("agent_turns_total", "Turns handled, by channel", ["channel"], registry=REGISTRY)
TURN_LATENCY = Histogram(
    "agent_turn_latency_seconds",
    "Time to handle one turn, from parsed input to recorded decision",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
DECISIONS = Counter("agent_decisions_total", "Policy decisions, by kind", ["kind"], registry=REGISTRY)
HANDOFFS = Counter("agent_handoffs_total", "Hand-offs to humans, by reason", ["reason"], registry=REGISTRY)
ERRORS = Counter(
    "agent_errors_total", "Turns that failed, by error class and channel", ["error", "channel"], registry=REGISTRY
)

FALLBACKS = Counter(
    "agent_fusion_fallbacks_total", "Voice and image turns the text path answered because the fusion model failed",
    ["error"], registry=REGISTRY,
)


def observe_turn(channel: str, decision: PolicyDecision, latency_s: float) -> None:
    TURNS.labels(channel=channel).inc()
    TURN_LATENCY.labels(channel=channel).observe(latency_s)
    DECISIONS.labels(kind=decision_kind(decision)).inc()
    if isinstance(decision, Handoff):
        HANDOFFS.labels(reason=decision.reason.value).inc()


def observe_error(channel: str, error: BaseException) -> None:
    ERRORS.labels(error=type(error).__name__, channel=channel).inc()


def render() -> bytes:
    return generate_latest(REGISTRY)
