"""The dialogue policy: answer, clarify, answer from the knowledge base, hand off, or stay silent.

``Policy.decide(state, profile, turn)`` is pure: it returns a ``Plan`` (the new state and
profile, and the decision with its reason) and writes nothing. Rules, in order:

1. human mode -> ``Silence`` (the turn is still recorded);
2. DTMF ``0`` or a confident ``handoff_intents`` intent -> hand-off (``user_asked``);
3. nothing understood (no NLU, or a low-confidence transcript) -> ask to repeat; repeatedly -> ``unheard``;
4. strongly negative sentiment over ``negative_sentiment_turns`` turns -> hand-off;
5. a pending clarifying question or "is this about ...?" is resolved by yes/no or a choice;
6. a confident sensitive intent -> its answer, then hand-off;
7. a running form takes the reply (slots, corrections) unless the customer changed topic;
   right after a form completes, a correction updates it;
8. out of scope or low confidence -> a knowledge-base answer if one is good enough, else ask to
   rephrase; twice in a row -> hand-off (``low_confidence``);
9. the top two intents close -> ask which one was meant;
10. otherwise the intent: a follow-up of the active intent, a recalled recent issue, a form,
    a returning-customer greeting, or its templated answer. The same intent failing
    ``max_failures_per_intent`` times -> hand-off (``repeated_failure``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from agent.messages import Answer, HandoffReason, ImageAnalysis, KnowledgeHit, NluResult, Silence, Transcript
from dialogue import cues, forms, responses
from dialogue.domain import Domain
from dialogue.state import (
    DialogueState,
    RecentIssue,
    UserProfile,
    apply_failure,
    apply_intent,
    apply_intent_history,
    apply_recent_issue,
    apply_sentiment,
    apply_slot,
)

DAY_S = 86_400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnInput:
    """What the policy sees of one user turn."""

    text: str  # typed or transcribed; "" if none
    nlu: NluResult | None  # None: no text could be understood
    turn_index: int  # the index the user's turn gets
    now: float  # Unix seconds
    dtmf: str | None = None
    transcript: Transcript | None = None
    image: ImageAnalysis | None = None
    knowledge: KnowledgeHit | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """The policy's result. ``decision`` None means hand off for ``handoff_reason``."""

    state: DialogueState
    profile: UserProfile | None
    decision: Answer | Silence | None = None
    handoff_reason: HandoffReason | None = None
    detail: str = ""  # why, for the record and the hand-off summary
    prefix: str = ""  # said before the hand-off message (a sensitive intent's answer)
    knowledge_id: str | None = None

    @property
    def reason(self) -> str:
        if isinstance(self.decision, Answer):
            return self.decision.reason
        if isinstance(self.decision, Silence):
            return self.decision.reason
        assert self.handoff_reason is not None
        return f"{self.handoff_reason.value}: {self.detail}" if self.detail else self.handoff_reason.value


class Policy:
    def __init__(self, domain: Domain) -> None:
        self.domain = domain
        self.rules = domain.policy

    def decide(self, state: DialogueState, profile: UserProfile | None, inp: TurnInput) -> Plan:
        rules, nlu = self.rules, inp.nlu
        if nlu is not None:
            state = apply_sentiment(state, nlu.sentiment_score, threshold=rules.negative_sentiment_threshold,
                                    window=rules.sentiment_window)
        if state.mode == "human":
            return Plan(state=state, profile=profile, decision=Silence(reason="human_mode"))
        if inp.dtmf == "0":
            return self._handoff(state, profile, HandoffReason.USER_ASKED, "caller pressed 0")
        if nlu is None or (inp.transcript is not None and inp.transcript.low_confidence):
            return self._unheard(state, profile, inp)
        state = replace(state, unheard_streak=0)
        if self._confident(nlu) and nlu.intent in rules.handoff_intents:
            return self._handoff(state, profile, HandoffReason.USER_ASKED, f"intent {nlu.intent}")
        if state.negative_streak >= rules.negative_sentiment_turns:
            detail = f"{state.negative_streak} strongly negative turns in a row"
            return self._handoff(state, profile, HandoffReason.NEGATIVE_SENTIMENT, detail)
        state, plan = self._resolve_pending(state, profile, inp)
        if plan is not None:
            return plan
        if self._confident(nlu) and nlu.intent in rules.sensitive_intents:
            return self._sensitive(state, profile, inp, nlu.intent)
        state, plan = self._continue_forms(state, profile, inp)
        return plan if plan is not None else self._understand(state, profile, inp)

    # --- understanding -------------------------------------------------------------------

    def _confident(self, nlu: NluResult) -> bool:
        return (
            nlu.intent in self.domain.intents
            and nlu.confidence >= self.rules.handoff_below_confidence
            and nlu.oos_score <= self.rules.oos_threshold
        )

    def _understand(self, state: DialogueState, profile: UserProfile | None, inp: TurnInput) -> Plan:
        nlu = inp.nlu
        assert nlu is not None
        if nlu.intent not in self.domain.intents or nlu.oos_score > self.rules.oos_threshold:
            why = f"out of scope ({nlu.oos_score:.2f} > {self.rules.oos_threshold})"
            return self._knowledge_or_rephrase(state, profile, inp, why)
        plan = self._clarify(state, profile, nlu)
        if plan is not None:
            return plan
        if nlu.confidence < self.rules.handoff_below_confidence:
            why = f"low confidence {nlu.confidence:.2f} < {self.rules.handoff_below_confidence}"
            return self._knowledge_or_rephrase(state, profile, inp, why)
        return self._answer_intent(state, profile, inp, nlu.intent, f"intent {nlu.intent} ({nlu.confidence:.2f})")

    def _knowledge_or_rephrase(self, state: DialogueState, profile: UserProfile | None, inp: TurnInput,
                               why: str) -> Plan:
        hit = inp.knowledge
        if hit is not None and hit.score >= self.rules.knowledge_min_score:
            values = responses.template_values(state, profile, answer=hit.answer, question=hit.question)
            text = responses.system_text(self.domain, "knowledge", values)
            state = replace(state, low_confidence_streak=0)
            reason = f"knowledge {hit.entry_id} ({hit.score:.2f}); {why}"
            answer = Answer(text=text, kind="knowledge", reason=reason)
            return Plan(state=state, profile=profile, decision=answer, knowledge_id=hit.entry_id)
        top = inp.nlu.intent if inp.nlu and inp.nlu.intent in self.domain.intents else None
        return self._not_understood(state, profile, top, why)

    def _not_understood(self, state: DialogueState, profile: UserProfile | None, top: str | None,
                        why: str) -> Plan:
        rules = self.rules
        state = replace(state, low_confidence_streak=state.low_confidence_streak + 1)
        streak, limit = state.low_confidence_streak, rules.low_confidence_turns_before_handoff
        if top is not None:
            state = apply_failure(state, top)
        if streak >= limit:
            return self._handoff(state, profile, HandoffReason.LOW_CONFIDENCE,
                                 f"{streak} turns in a row not understood; {why}")
        if top is not None and state.failure_count(top) >= rules.max_failures_per_intent:
            return self._repeated_failure(state, profile, top)
        text = responses.system_text(self.domain, "fallback", responses.template_values(state, profile))
        answer = Answer(text=text, kind="clarify", reason=f"{why} ({streak} of {limit})")
        return Plan(state=state, profile=profile, decision=answer)

    def _clarify(self, state: DialogueState, profile: UserProfile | None, nlu: NluResult) -> Plan | None:
        second, rules = nlu.second(), self.rules
        if second is None or second.intent == nlu.intent or second.intent not in self.domain.intents:
            return None
        if nlu.confidence - second.confidence >= rules.clarify_margin or second.confidence < rules.clarify_min_confidence:
            return None
        options = (nlu.intent, second.intent)
        titles = (self.domain.title(options[0]), self.domain.title(options[1]))
        values = responses.template_values(state, profile, option_a=titles[0], option_b=titles[1])
        text = responses.system_text(self.domain, "clarify", values)
        reason = f"clarify: {options[0]} {nlu.confidence:.2f} vs {options[1]} {second.confidence:.2f}"
        answer = Answer(text=text, kind="clarify", reason=reason, buttons=titles)
        return Plan(state=replace(state, clarify_options=options), profile=profile, decision=answer)

    # --- pending questions ---------------------------------------------------------------

    def _yes(self, inp: TurnInput) -> bool:
        nlu = inp.nlu
        return cues.is_yes(inp.text) or (nlu is not None and nlu.intent in self.rules.affirm_intents
                                         and nlu.confidence >= self.rules.clarify_min_confidence)

    def _no(self, inp: TurnInput) -> bool:
        nlu = inp.nlu
        return cues.is_no(inp.text) or (nlu is not None and nlu.intent in self.rules.deny_intents
                                        and nlu.confidence >= self.rules.clarify_min_confidence)

    def _resolve_pending(self, state: DialogueState, profile: UserProfile | None,
                         inp: TurnInput) -> tuple[DialogueState, Plan | None]:
        if state.clarify_options:
            options = state.clarify_options
            state = replace(state, clarify_options=())
            chosen = self._pick_option(options, inp)
            if chosen is not None:
                return state, self._answer_intent(state, profile, inp, chosen, f"clarified: {chosen}")
            if self._no(inp):
                return state, self._not_understood(state, profile, options[0], "neither option was meant")
        if state.recall_intent is not None:
            held, issue_intent = state.recall_intent, state.recall_issue
            state = replace(state, recall_intent=None, recall_issue=None)
            if self._yes(inp):
                state = self._merge_issue_slots(state, profile, issue_intent)
                return state, self._answer_intent(state, profile, inp, held, f"recall confirmed: {issue_intent}")
            if self._no(inp):
                return state, self._answer_intent(state, profile, inp, held, "recall denied")
        return state, None

    def _pick_option(self, options: tuple[str, ...], inp: TurnInput) -> str | None:
        said = cues.normalised(inp.text)
        for option in options:
            if said and said in (cues.normalised(self.domain.title(option)), cues.normalised(option)):
                return option
        nlu = inp.nlu
        if nlu is not None and nlu.intent in options and nlu.confidence >= self.rules.clarify_min_confidence:
            return nlu.intent
        return options[0] if self._yes(inp) else None

    @staticmethod
    def _merge_issue_slots(state: DialogueState, profile: UserProfile | None, intent: str | None) -> DialogueState:
        issue = next((i for i in profile.recent_issues if i.intent == intent), None) if profile else None
        for name, value in issue.slots if issue else ():
            if state.slot(name) is None:
                state = apply_slot(state, name, value)
        return state

    # --- forms ---------------------------------------------------------------------------

    def _form_input(self, inp: TurnInput) -> forms.FormInput:
        fields = inp.image.fields if inp.image is not None else ()
        return forms.FormInput(text=inp.text, nlu=inp.nlu, image_fields=fields, turn_index=inp.turn_index)

    def _continue_forms(self, state: DialogueState, profile: UserProfile | None,
                        inp: TurnInput) -> tuple[DialogueState, Plan | None]:
        if state.active_form is not None:
            step = forms.proceed(self.domain, state, profile, self._form_input(inp),
                                 digressing=self._digressing(state, inp.nlu))
            if step is not None:
                return state, self._form_plan(step, profile, inp)
            state = replace(state, active_form=None, requested_slot=None)
        if state.completed_form is not None:
            cue_intents = self.rules.deny_intents + ((state.active_intent,) if state.active_intent else ())
            step = forms.correct_after_done(self.domain, state, profile, self._form_input(inp),
                                            cue_intents=cue_intents)
            if step is not None:
                return state, self._form_plan(step, profile, inp)
            state = replace(state, completed_form=None)
        return state, None

    def _digressing(self, state: DialogueState, nlu: NluResult | None) -> bool:
        return (
            nlu is not None
            and self._confident(nlu)
            and nlu.intent != state.active_intent
            and nlu.intent not in self.domain.followup_intents
            and nlu.intent not in self.rules.affirm_intents + self.rules.deny_intents
        )

    def _form_plan(self, step: forms.FormStep, profile: UserProfile | None, inp: TurnInput) -> Plan:
        state, owner = step.state, step.state.active_intent
        if step.failed and owner is not None:
            state = apply_failure(state, owner)
            if state.failure_count(owner) >= self.rules.max_failures_per_intent:
                return self._repeated_failure(state, profile, owner)
        else:
            state = replace(state, low_confidence_streak=0)
        if step.completed and owner is not None:
            state = replace(state, last_answered_intent=owner)
            profile = self._remember(state, profile, owner, inp.now)
        answer = Answer(text=step.text, kind="answer", intent=owner, reason=step.reason)
        return Plan(state=state, profile=profile, decision=answer)

    # --- answering an intent -------------------------------------------------------------

    def _answer_intent(self, state: DialogueState, profile: UserProfile | None, inp: TurnInput, intent: str,
                       reason: str) -> Plan:
        spec = self.domain.intents[intent]
        state = replace(state, low_confidence_streak=0)
        if intent in self.domain.followup_intents:
            return self._followup(state, profile, inp, intent)
        if state.last_answered_intent == intent and spec.form is None and intent not in self.rules.greeting_intents:
            state = apply_failure(state, intent)  # asked again: the answer did not help
            if state.failure_count(intent) >= self.rules.max_failures_per_intent:
                return self._repeated_failure(state, profile, intent)
        recall = self._recall(state, profile, intent, inp.now)
        if recall is not None:
            return recall
        if intent not in self.rules.greeting_intents:
            state = replace(state, recall_asked=True)
        profile = apply_intent_history(profile, intent) if profile is not None else None
        state = apply_intent(state, intent)
        for entity in inp.nlu.entities if inp.nlu is not None else ():
            state = apply_slot(state, entity.kind, entity.value)  # {card_last4} etc. in answers
        if spec.form is not None:
            step = forms.start(self.domain, state, profile, spec.form, self._form_input(inp))
            return self._form_plan(replace(step, reason=f"{reason}; {step.reason}"), profile, inp)
        values = responses.template_values(state, profile)
        returning = profile is not None and profile.name and profile.conversations >= 2
        if intent in self.rules.greeting_intents and returning:
            text: str | None = responses.system_text(self.domain, "greeting_returning", values)
            reason = f"{reason}; returning customer"
        else:
            text = responses.intent_text(self.domain, spec, values, turn_index=inp.turn_index)
        if text is None:
            text = responses.system_text(self.domain, "fallback", values)
            reason = f"{reason}; intent has no answer"
        state = replace(state, last_answered_intent=intent)
        profile = self._remember(state, profile, intent, inp.now)
        return Plan(state=state, profile=profile, decision=Answer(text=text, intent=intent, reason=reason))

    def _followup(self, state: DialogueState, profile: UserProfile | None, inp: TurnInput, intent: str) -> Plan:
        active = self.domain.intents.get(state.active_intent or "")
        template = active.followup(intent) if active is not None else None
        values = responses.template_values(state, profile)
        if template is not None and active is not None:
            text = responses.template_text(self.domain, (template,), values, turn_index=inp.turn_index)
            answer = Answer(text=text, intent=active.name, reason=f"follow-up {intent} of {active.name}")
            return Plan(state=state, profile=profile, decision=answer)
        own = responses.intent_text(self.domain, self.domain.intents[intent], values, turn_index=inp.turn_index)
        if own is not None:
            answer = Answer(text=own, intent=intent, reason=f"follow-up {intent} with no active intent")
        else:
            text = responses.system_text(self.domain, "followup_unknown", values)
            answer = Answer(text=text, kind="clarify", reason=f"follow-up {intent} with no active intent")
        return Plan(state=state, profile=profile, decision=answer)

    def _recall(self, state: DialogueState, profile: UserProfile | None, intent: str, now: float) -> Plan | None:
        """At the start of a conversation, ask whether it is about a recent remembered issue."""
        if profile is None or state.recall_asked or intent in self.rules.greeting_intents:
            return None
        related = set(self.domain.intents[intent].related) | {intent}
        window_s = self.rules.recall_within_days * DAY_S
        for issue in profile.recent_issues:
            issue_spec = self.domain.intents.get(issue.intent)
            linked = issue.intent in related or (issue_spec is not None and intent in issue_spec.related)
            if linked and issue.conversation_id != state.conversation_id and now - issue.at <= window_s:
                label = issue_spec.issue_label if issue_spec else issue.intent.replace("_", " ")
                values = responses.template_values(state, profile, issue=label,
                                                   when=responses.when_phrase(issue.at, now))
                text = responses.system_text(self.domain, "recall_recent_issue", values)
                state = replace(state, recall_intent=intent, recall_issue=issue.intent, recall_asked=True)
                answer = Answer(text=text, kind="clarify", intent=intent, buttons=("Yes", "No"),
                                reason=f"recall recent issue {issue.intent}")
                return Plan(state=state, profile=profile, decision=answer)
        return None

    def _remember(self, state: DialogueState, profile: UserProfile | None, intent: str,
                  now: float) -> UserProfile | None:
        if profile is None or not self.domain.intents[intent].remember:
            return profile
        issue = RecentIssue(intent=intent, at=now, conversation_id=state.conversation_id, slots=state.slots)
        return apply_recent_issue(profile, issue)

    # --- hand-offs -----------------------------------------------------------------------

    def _sensitive(self, state: DialogueState, profile: UserProfile | None, inp: TurnInput, intent: str) -> Plan:
        state = apply_intent(state, intent)
        profile = apply_intent_history(profile, intent) if profile is not None else None
        values = responses.template_values(state, profile)
        prefix = responses.intent_text(self.domain, self.domain.intents[intent], values,
                                       turn_index=inp.turn_index) or ""
        return self._handoff(state, profile, HandoffReason.SENSITIVE_INTENT, f"intent {intent}", prefix=prefix)

    def _repeated_failure(self, state: DialogueState, profile: UserProfile | None, intent: str) -> Plan:
        detail = f"{intent} failed {state.failure_count(intent)} times"
        return self._handoff(state, profile, HandoffReason.REPEATED_FAILURE, detail)

    def _unheard(self, state: DialogueState, profile: UserProfile | None, inp: TurnInput) -> Plan:
        if inp.nlu is None and inp.image is not None and not inp.text.strip():
            state, plan = self._continue_forms(state, profile, inp)  # a photo may answer a form
            if plan is not None:
                return plan
            text = responses.system_text(self.domain, "fallback", responses.template_values(state, profile))
            return Plan(state=state, profile=profile,
                        decision=Answer(text=text, kind="clarify", reason="image with no text understood"))
        state = replace(state, unheard_streak=state.unheard_streak + 1)
        limit = self.rules.low_confidence_turns_before_handoff
        if state.unheard_streak >= limit:
            return self._handoff(state, profile, HandoffReason.UNHEARD,
                                 f"{state.unheard_streak} turns in a row not understood")
        text = responses.system_text(self.domain, "ask_repeat", responses.template_values(state, profile))
        answer = Answer(text=text, kind="clarify", reason=f"nothing understood ({state.unheard_streak} of {limit})")
        return Plan(state=state, profile=profile, decision=answer)

    @staticmethod
    def _handoff(state: DialogueState, profile: UserProfile | None, reason: HandoffReason, detail: str,
                 *, prefix: str = "") -> Plan:
        return Plan(state=state, profile=profile, handoff_reason=reason, detail=detail, prefix=prefix)
