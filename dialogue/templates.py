"""Response templates: ``{field}`` placeholders filled with plain values.

Templates come from the domain file and are trusted; values (slots, profile fields, knowledge
answers) are data: they are inserted as-is and never parsed again, so a customer typing
``{name}`` or ``{0.__class__}`` into a slot prints exactly that. ``{{`` and ``}}`` are literal
braces. ``str.format`` is never used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")


class TemplateSyntaxError(ValueError):
    """A template with a stray brace or a malformed field."""


def template_fields(template: str) -> set[str]:
    """The field names a template uses; raises ``TemplateSyntaxError`` on a stray brace."""
    fields = set()
    for match in _TOKEN.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        if match.group(1) is None:
            raise TemplateSyntaxError(
                f"stray {token!r} at character {match.start()}; expected {{field_name}}, or {token * 2} for a brace"
            )
        fields.add(match.group(1))
    return fields


def render(template: str, values: Mapping[str, str]) -> str | None:
    """Fill ``template``; ``None`` if a field it uses has no (non-empty) value."""
    missing = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal missing
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        value = values.get(name) if name is not None else None
        if not value:
            missing = True
            return ""
        return value

    text = _TOKEN.sub(substitute, template)
    return None if missing else text


def render_first(variants: tuple[str, ...], values: Mapping[str, str], *, start: int = 0) -> str | None:
    """The first variant, counting round from ``start``, whose fields all have values."""
    n = len(variants)
    for i in range(n):
        text = render(variants[(start + i) % n], values)
        if text is not None:
            return text
    return None
