"""Rendering answers and hand-off summaries from the domain's templates.

Fields available to templates: the conversation's slots and the customer's profile (``name``,
``tier``, ``language``), plus the fields a system response defines (``option_a`` ...). Missing
fields never crash: a template whose fields are unknown falls back to another variant, then to
``response_missing_slot``, then to the built-in text.
"""

from __future__ import annotations

import datetime as dt

from dialogue.domain import SYSTEM_RESPONSES, Domain, IntentSpec
from dialogue.state import DialogueState, TurnRecord, UserProfile
from dialogue.templates import render, render_first

SUMMARY_TEXT_CHARS = 300  # each turn's text is cut to this in a hand-off summary


def template_values(state: DialogueState, profile: UserProfile | None, **extra: str) -> dict[str, str]:
    values = dict(state.slots)
    if profile is not None:
        for key in ("name", "tier", "language"):
            value = getattr(profile, key)
            if value:
                values[key] = value
    values.update({k: v for k, v in extra.items() if v})
    return values


def system_text(domain: Domain, key: str, values: dict[str, str]) -> str:
    """A system response; the built-in text if the domain's needs a field that is missing."""
    for template in (domain.response(key), SYSTEM_RESPONSES[key][1]):
        text = render(template, values)
        if text is not None:
            return text
    return render(domain.response("fallback"), {}) or SYSTEM_RESPONSES["fallback"][1]


def intent_text(domain: Domain, spec: IntentSpec, values: dict[str, str], *, turn_index: int) -> str | None:
    """The intent's answer (variants rotate with the turn), or ``None`` if it has no answer."""
    if not spec.response:
        return None
    text = render_first(spec.response, values, start=turn_index)
    if text is None and spec.response_missing_slot:
        text = render(spec.response_missing_slot, values)
    return text if text is not None else system_text(domain, "fallback", values)


def template_text(domain: Domain, variants: tuple[str, ...], values: dict[str, str], *, turn_index: int) -> str:
    text = render_first(variants, values, start=turn_index)
    return text if text is not None else system_text(domain, "fallback", values)


def when_phrase(then_s: float, now_s: float) -> str:
    """'earlier today', 'yesterday', '3 days ago', 'on 12 March' (UTC calendar days)."""
    then = dt.datetime.fromtimestamp(then_s, tz=dt.UTC).date()
    now = dt.datetime.fromtimestamp(now_s, tz=dt.UTC).date()
    days = (now - then).days
    if days <= 0:
        return "earlier today"
    if days == 1:
        return "yesterday"
    if days < 7:
        return f"{days} days ago"
    return f"on {then.day} {then.strftime('%B')}"


def _trend_word(trend: tuple[float, ...]) -> str:
    if len(trend) < 2:
        return "steady"
    delta = trend[-1] - trend[0]
    return "falling" if delta < -0.2 else "rising" if delta > 0.2 else "steady"


def handoff_summary(
    state: DialogueState, *, reason: str, detail: str, last_turns: tuple[tuple[str, str], ...]
) -> str:
    """What the human agent reads first: why, what about, what was collected, how it went."""
    lines = [f"Reason: {reason.replace('_', ' ')}" + (f" ({detail})" if detail else "")]
    lines.append("Intents: " + (", ".join(state.intent_trail) or "none recognised"))
    if state.slots:
        lines.append("Details: " + ", ".join(f"{k}={v}" for k, v in state.slots))
    if state.sentiment_trend:
        scores = ", ".join(f"{s:+.2f}" for s in state.sentiment_trend)
        lines.append(f"Sentiment: {scores} ({_trend_word(state.sentiment_trend)})")
    if last_turns:
        lines.append("Last turns:")
        lines.extend(f"  {role}: {text}" for role, text in last_turns)
    return "\n".join(lines)


def summary_turns(turns: list[TurnRecord], *, limit: int) -> tuple[tuple[str, str], ...]:
    """(role, text) of the last ``limit`` turns that have text, each cut to a readable length."""
    picked = [t for t in turns if t.text][-limit:]
    return tuple(
        (t.role, t.text if len(t.text) <= SUMMARY_TEXT_CHARS else t.text[: SUMMARY_TEXT_CHARS - 1] + "…")
        for t in picked
    )
