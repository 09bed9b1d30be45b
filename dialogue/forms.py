"""Slot-filling forms: ask for missing slots one at a time, take corrections, then say ``done``.

Slots are filled from the NLU's entities (by kind), from fields read off an uploaded image
(a receipt's ``total`` fills an ``amount`` slot), or, for ``entity: text`` slots, from the
whole reply. A value for a slot that is already filled is a correction, both while the form
runs and on the turn right after it completes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from agent.messages import NluResult
from dialogue import cues, responses
from dialogue.domain import Domain, FormSpec, SlotSpec
from dialogue.state import DialogueState, UserProfile, apply_slot

TEXT_ENTITY = "text"
MAX_TEXT_SLOT_CHARS = 500
# image field -> entity kind it can stand for
IMAGE_FIELD_ENTITY = {"total": "amount", "amount": "amount", "date": "date", "card_last4": "card_last4",
                      "transaction_id": "transaction_id", "order_id": "order_id", "error_code": "error_code"}


@dataclass(frozen=True, slots=True, kw_only=True)
class FormInput:
    text: str
    nlu: NluResult | None
    image_fields: tuple[tuple[str, str], ...] = ()
    turn_index: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class FormStep:
    state: DialogueState
    text: str
    reason: str
    failed: bool = False  # the reply filled nothing: counts as a failure of the form's intent
    completed: bool = False


def extract(form: FormSpec, inp: FormInput, *, said_only: bool = False) -> dict[str, str]:
    """Values for the form's non-text slots in this turn's entities (and image fields, unless ``said_only``)."""
    by_kind: dict[str, str] = {}
    for key, value in () if said_only else inp.image_fields:
        kind = IMAGE_FIELD_ENTITY.get(key, key)
        by_kind.setdefault(kind, value)
    for entity in inp.nlu.entities if inp.nlu else ():
        by_kind[entity.kind] = entity.value  # what was said wins over what was read in an image
    return {s.name: by_kind[s.entity] for s in form.slots if s.entity != TEXT_ENTITY and s.entity in by_kind}


def start(domain: Domain, state: DialogueState, profile: UserProfile | None, form_name: str,
          inp: FormInput) -> FormStep:
    """Begin ``form_name``: forget its old slot values, keep what this message already says."""
    form = domain.forms[form_name]
    names = {s.name for s in form.slots}
    state = replace(state, slots=tuple((k, v) for k, v in state.slots if k not in names),
                    active_form=form_name, completed_form=None)
    for name, value in extract(form, inp).items():
        state = apply_slot(state, name, value)
    return _next(domain, state, profile, form, inp, prefix="", reason=f"form {form_name} started")


def proceed(domain: Domain, state: DialogueState, profile: UserProfile | None, inp: FormInput,
            *, digressing: bool) -> FormStep | None:
    """The reply to a form question; ``None`` if the customer moved to another topic."""
    assert state.active_form is not None
    form = domain.forms[state.active_form]
    requested = form.slot(state.requested_slot or "")
    found = extract(form, inp)
    corrections = {k: v for k, v in extract(form, inp, said_only=True).items()
                   if k != getattr(requested, "name", None) and state.slot(k) is not None and state.slot(k) != v}
    fills = {k: v for k, v in found.items() if k not in corrections and state.slot(k) is None}
    if requested is not None and requested.entity == TEXT_ENTITY and not corrections and inp.text.strip():
        fills[requested.name] = inp.text.strip()[:MAX_TEXT_SLOT_CHARS]
    if not fills and not corrections:
        if digressing:
            return None
        ask = _ask(domain, state, profile, form, requested, inp)
        return FormStep(state=state, text=ask, reason=f"form {form.name}: reply filled no slot", failed=True)
    for name, value in {**fills, **corrections}.items():
        state = apply_slot(state, name, value)
    prefix = _corrected_text(domain, state, profile, corrections)
    reason = f"form {form.name}: corrected {', '.join(corrections)}" if corrections else f"form {form.name}"
    return _next(domain, state, profile, form, inp, prefix=prefix, reason=reason)


def correct_after_done(domain: Domain, state: DialogueState, profile: UserProfile | None,
                       inp: FormInput, *, cue_intents: tuple[str, ...]) -> FormStep | None:
    """A correction on the turn right after a form completed ("no, it was £45")."""
    assert state.completed_form is not None
    form = domain.forms[state.completed_form]
    found = extract(form, inp, said_only=True)  # a correction is something the customer says
    changed = {k: v for k, v in found.items() if state.slot(k) is not None and state.slot(k) != v}
    cued = cues.is_correction(inp.text) or (inp.nlu is not None and inp.nlu.intent in cue_intents)
    if not changed or not cued:
        return None
    for name, value in changed.items():
        state = apply_slot(state, name, value)
    prefix = _corrected_text(domain, state, profile, changed)
    values = responses.template_values(state, profile)
    done = responses.template_text(domain, form.done, values, turn_index=inp.turn_index)
    return FormStep(state=state, text=f"{prefix} {done}", reason=f"form {form.name}: corrected {', '.join(changed)} after completion", completed=True)


def _next(domain: Domain, state: DialogueState, profile: UserProfile | None, form: FormSpec,
          inp: FormInput, *, prefix: str, reason: str) -> FormStep:
    missing = next((s for s in form.slots if state.slot(s.name) is None), None)
    if missing is not None:
        state = replace(state, requested_slot=missing.name)
        ask = _ask(domain, state, profile, form, missing, inp)
        text = f"{prefix} {ask}" if prefix else ask
        return FormStep(state=state, text=text, reason=f"{reason}; asks {missing.name}")
    state = replace(state, active_form=None, requested_slot=None, completed_form=form.name)
    values = responses.template_values(state, profile)
    done = responses.template_text(domain, form.done, values, turn_index=inp.turn_index)
    text = f"{prefix} {done}" if prefix else done
    return FormStep(state=state, text=text, reason=f"{reason}; done", completed=True)


def _ask(domain: Domain, state: DialogueState, profile: UserProfile | None, form: FormSpec,
         slot: SlotSpec | None, inp: FormInput) -> str:
    spec = slot if slot is not None else form.slots[0]
    values = responses.template_values(state, profile)
    return responses.template_text(domain, spec.ask, values, turn_index=inp.turn_index)


def _corrected_text(domain: Domain, state: DialogueState, profile: UserProfile | None,
                    corrections: dict[str, str]) -> str:
    parts = []
    for name, value in corrections.items():
        values = responses.template_values(state, profile, slot=name.replace("_", " "), value=value)
        parts.append(responses.system_text(domain, "slot_corrected", values))
    return " ".join(parts)
