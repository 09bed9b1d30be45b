"""Multi-turn conversations through DialogueService with hand-made NLU results (no model)."""

from __future__ import annotations

import pytest

from agent.errors import Conflict
from agent.messages import Answer, Handoff, HandoffReason, ImageAnalysis, KnowledgeHit, Silence, Transcript
from dialogue.domain import Domain
from dialogue.service import DialogueService
from dialogue.stores.memory import InMemoryTrackerStore
from tests.dialogue.conftest import FakeClock, nlu, say

DAY_S = 86_400.0


@pytest.fixture
def memory_service(domain: Domain, clock: FakeClock) -> DialogueService:
    return DialogueService(InMemoryTrackerStore(clock=clock), domain, clock=clock)


def answer(decision: object) -> Answer:
    assert isinstance(decision, Answer), f"expected an answer, got {decision!r}"
    return decision


def handoff(decision: object) -> Handoff:
    assert isinstance(decision, Handoff), f"expected a hand-off, got {decision!r}"
    return decision


# --- the hand-off cycle (both stores) ---------------------------------------------------------


async def test_full_handoff_cycle(service: DialogueService) -> None:
    await say(service, "cyc", "I lost my card", nlu("lost_or_stolen_card", entities=(("card_last4", "4821"),)),
              user_id="u-cyc")
    out = await say(service, "cyc", "let me talk to a person", nlu("talk_to_human", sentiment=-0.2))
    h = handoff(out.decision)
    assert h.reason is HandoffReason.USER_ASKED and h.handoff_id
    assert out.state.mode == "human"
    for part in ("user asked", "lost_or_stolen_card", "card_last4=4821", "let me talk to a person"):
        assert part in h.summary

    silent = await say(service, "cyc", "hello? anyone there?", nlu("greeting"))
    assert isinstance(silent.decision, Silence)
    pending = await service.list_handoffs()
    assert [p.id for p in pending] == [h.handoff_id]
    assert pending[0].last_turns[-1] == ("user", "let me talk to a person")

    claimed = await service.claim_handoff(h.handoff_id, agent_id="sam")
    assert (claimed.status, claimed.agent_id) == ("claimed", "sam")
    with pytest.raises(Conflict):
        await service.claim_handoff(h.handoff_id, agent_id="kim")
    with pytest.raises(Conflict):
        await service.post_agent_message(h.handoff_id, agent_id="kim", text="not mine")
    turn = await service.post_agent_message(h.handoff_id, agent_id="sam", text="Hi, Sam here. I can help.")
    assert turn.role == "human_agent"
    released = await service.release_handoff(h.handoff_id, agent_id="sam")
    assert released.status == "released"
    assert await service.list_handoffs() == []

    back = await say(service, "cyc", "thanks", nlu("greeting"))
    assert answer(back.decision).text == "Hello! How can I help?"
    state, turns = await service.get_conversation("cyc")
    assert state.mode == "bot" and state.turn_count == len(turns)
    roles = [t.role for t in turns]
    assert roles == ["user", "bot", "user", "bot", "user", "system", "human_agent", "bot", "user", "bot"]
    assert turns[4].text == "hello? anyone there?"  # recorded although the bot stayed silent
    kinds = [e["type"] for e in await service.read_events(count=100)]
    assert kinds.count("turn") == 4 and "handoff" in kinds and "handoff_claimed" in kinds


async def test_claim_next_uses_the_queue(service: DialogueService) -> None:
    first = handoff((await say(service, "q1", "human", nlu("talk_to_human"))).decision)
    second = handoff((await say(service, "q2", "human", nlu("talk_to_human"))).decision)
    await service.claim_handoff(first.handoff_id, agent_id="kim")  # claimed by id before the queue got to it
    taken = await service.claim_next_handoff(agent_id="sam")
    assert taken is not None and taken.id == second.handoff_id and taken.agent_id == "sam"
    assert await service.claim_next_handoff(agent_id="sam") is None


# --- forms --------------------------------------------------------------------------------------


async def test_form_with_corrections(memory_service: DialogueService) -> None:
    s = memory_service
    out = await say(s, "f", "I want to dispute a charge", nlu("dispute_charge"))
    assert answer(out.decision).text == "How much was the charge?"
    out = await say(s, "f", "it was 50 quid", nlu("check_balance", 0.3, entities=(("amount", "50.00 GBP"),)))
    assert answer(out.decision).text == "On what date did it happen?"
    out = await say(s, "f", "no, it was £45", nlu("deny", 0.6, entities=(("amount", "45.00 GBP"),)))
    assert answer(out.decision).text == "Got it, I've changed the amount to 45.00 GBP. On what date did it happen?"
    out = await say(s, "f", "last Tuesday", nlu("greeting", 0.2, entities=(("date", "2025-11-25"),)))
    assert answer(out.decision).text == "Thanks. I've opened a dispute for 45.00 GBP on 2025-11-25."
    out = await say(s, "f", "sorry, it was the 24th", nlu("deny", 0.5, entities=(("date", "2025-11-24"),)))
    text = answer(out.decision).text
    assert text.startswith("Got it, I've changed the date to 2025-11-24.")
    assert text.endswith("I've opened a dispute for 45.00 GBP on 2025-11-24.")
    assert dict(out.state.slots)["date"] == "2025-11-24"


async def test_form_takes_values_from_the_first_message_and_an_image(memory_service: DialogueService) -> None:
    s = memory_service
    out = await say(s, "fi", "dispute a £12 charge", nlu("dispute_charge", entities=(("amount", "12.00 GBP"),)))
    assert answer(out.decision).text == "On what date did it happen?"
    receipt = ImageAnalysis(sha256="a" * 64, kind="receipt", kind_confidence=0.9,
                            fields=(("total", "12.00"), ("date", "2025-11-20")))
    out = await say(s, "fi", "", None, image=receipt)
    assert answer(out.decision).text == "Thanks. I've opened a dispute for 12.00 GBP on 2025-11-20."


async def test_text_slot_takes_the_whole_reply(memory_service: DialogueService) -> None:
    s = memory_service
    await say(s, "addr", "I moved house", nlu("change_address"))
    out = await say(s, "addr", "12 High Street, Leeds LS1 1AA", nlu("check_balance", 0.3))
    assert answer(out.decision).text == "Done: your address is now 12 High Street, Leeds LS1 1AA."


async def test_customer_can_leave_a_form_for_another_topic(memory_service: DialogueService) -> None:
    s = memory_service
    await say(s, "dig", "dispute a charge", nlu("dispute_charge"))
    out = await say(s, "dig", "what's my balance", nlu("check_balance", 0.95))
    assert answer(out.decision).text == "Your balance is in the app under Accounts."
    assert out.state.active_form is None


async def test_template_values_are_data_not_templates(memory_service: DialogueService) -> None:
    s = memory_service
    await say(s, "tpl", "I moved", nlu("change_address"))
    out = await say(s, "tpl", "{name} {0.__class__} }{", nlu("check_balance", 0.2))
    assert answer(out.decision).text == "Done: your address is now {name} {0.__class__} }{."


# --- clarifying questions ----------------------------------------------------------------------


async def test_close_intents_ask_which_one_then_yes_takes_the_first(memory_service: DialogueService) -> None:
    s = memory_service
    out = await say(s, "cl", "card problem", nlu("lost_or_stolen_card", 0.42, second=("card_not_arrived", 0.38)))
    a = answer(out.decision)
    assert a.kind == "clarify"
    assert a.text == "Sorry, did you want to report a lost or stolen card or ask where your new card is?"
    assert a.buttons == ("report a lost or stolen card", "ask where your new card is")
    out = await say(s, "cl", "yes", nlu("affirm", 0.8))
    assert answer(out.decision).intent == "lost_or_stolen_card"
    assert out.state.clarify_options == ()


async def test_clarify_resolved_by_the_button_text(memory_service: DialogueService) -> None:
    s = memory_service
    await say(s, "cl2", "card problem", nlu("lost_or_stolen_card", 0.42, second=("card_not_arrived", 0.38)))
    out = await say(s, "cl2", "ask where your new card is", nlu("card_not_arrived", 0.3))
    assert answer(out.decision).text == "Cards take up to 10 working days to arrive."


async def test_clarify_denied_asks_to_rephrase(memory_service: DialogueService) -> None:
    s = memory_service
    await say(s, "cl3", "card problem", nlu("lost_or_stolen_card", 0.42, second=("card_not_arrived", 0.38)))
    out = await say(s, "cl3", "no, neither", nlu("deny", 0.7))
    a = answer(out.decision)
    assert a.kind == "clarify" and "another way" in a.text
    assert out.state.failure_count("lost_or_stolen_card") == 1


# --- follow-ups, knowledge, personalisation ----------------------------------------------------


async def test_followup_uses_the_active_intent(memory_service: DialogueService) -> None:
    s = memory_service
    await say(s, "fu", "my card hasn't arrived", nlu("card_not_arrived"))
    out = await say(s, "fu", "how long will that take?", nlu("ask_how_long"))
    assert answer(out.decision).text == "It should be with you within 10 working days of ordering."
    await say(s, "fu", "I lost my card", nlu("lost_or_stolen_card"))
    out = await say(s, "fu", "how long will that take?", nlu("ask_how_long"))
    assert answer(out.decision).text == "A replacement card arrives in 3 to 5 working days."


async def test_followup_without_context_asks(memory_service: DialogueService) -> None:
    out = await say(memory_service, "fu2", "how much does it cost?", nlu("ask_cost"))
    assert answer(out.decision).kind == "clarify"


async def test_knowledge_answers_out_of_scope_and_low_confidence(memory_service: DialogueService) -> None:
    s = memory_service
    hit = KnowledgeHit(entry_id="kb_contactless_limit", question="What is the contactless limit?",
                       answer="The contactless limit is £100 per payment.", score=0.81)
    out = await say(s, "kb", "contactless max?", nlu("card_fees", 0.3, oos=0.8), knowledge=hit)
    a = answer(out.decision)
    assert (a.kind, a.text) == ("knowledge", "The contactless limit is £100 per payment.")
    _, turns = await s.get_conversation("kb")
    assert turns[-1].knowledge_id == "kb_contactless_limit"
    weak = KnowledgeHit(entry_id="kb_opening_hours", question="q", answer="a", score=0.3)
    out = await say(s, "kb", "hmm", nlu("card_fees", 0.3), knowledge=weak)
    assert answer(out.decision).kind == "clarify"


async def test_returning_customer_is_greeted_by_name(memory_service: DialogueService, clock: FakeClock) -> None:
    s = memory_service
    await s.update_profile("u-ada", name="Ada", tier="premium")
    first = await say(s, "r1", "hello", nlu("greeting"), user_id="u-ada")
    assert answer(first.decision).text == "Hello! How can I help?"  # first conversation
    clock.advance(3 * DAY_S)
    out = await say(s, "r2", "hi", nlu("greeting"), user_id="u-ada")
    assert answer(out.decision).text == "Welcome back, Ada! How can I help?"
    out = await say(s, "r2", "fees?", nlu("card_fees"))
    assert answer(out.decision).text == "UK card payments are free, Ada."
    profile = await s.get_profile("u-ada")
    assert profile.conversations == 2
    assert profile.intent_history == (("greeting", 2), ("card_fees", 1))


async def test_recent_issue_is_recalled_in_a_new_conversation(memory_service: DialogueService, clock: FakeClock) -> None:
    s = memory_service
    await say(s, "i1", "lost my card", nlu("lost_or_stolen_card", entities=(("card_last4", "4821"),)), user_id="u-bo")
    clock.advance(DAY_S)
    out = await say(s, "i2", "my new card hasn't come", nlu("card_not_arrived"), user_id="u-bo")
    a = answer(out.decision)
    assert a.text == "Is this about the lost card you reported yesterday?"
    assert a.buttons == ("Yes", "No")
    out = await say(s, "i2", "yes", nlu("affirm", 0.9))
    assert answer(out.decision).text == "Cards take up to 10 working days to arrive."
    assert out.state.slot("card_last4") == "4821"  # carried over from the remembered issue


async def test_recall_declined_still_answers(memory_service: DialogueService, clock: FakeClock) -> None:
    s = memory_service
    await say(s, "j1", "lost my card", nlu("lost_or_stolen_card"), user_id="u-cy")
    clock.advance(2 * DAY_S)
    await say(s, "j2", "my card hasn't arrived", nlu("card_not_arrived"), user_id="u-cy")
    out = await say(s, "j2", "no", nlu("deny", 0.9))
    assert answer(out.decision).text == "Cards take up to 10 working days to arrive."
    assert out.state.slot("card_last4") is None


async def test_old_issues_are_not_recalled(memory_service: DialogueService, clock: FakeClock) -> None:
    s = memory_service
    await say(s, "k1", "lost my card", nlu("lost_or_stolen_card"), user_id="u-dee")
    clock.advance(30 * DAY_S)
    out = await say(s, "k2", "my card hasn't arrived", nlu("card_not_arrived"), user_id="u-dee")
    assert answer(out.decision).text == "Cards take up to 10 working days to arrive."


# --- each hand-off rule ------------------------------------------------------------------------


async def test_caller_pressing_zero_is_handed_off(memory_service: DialogueService) -> None:
    out = await say(memory_service, "d0", "", None, dtmf="0")
    assert handoff(out.decision).reason is HandoffReason.USER_ASKED


async def test_sensitive_intent_answers_then_hands_off(memory_service: DialogueService) -> None:
    out = await say(memory_service, "sens", "close my account", nlu("close_account"))
    h = handoff(out.decision)
    assert h.reason is HandoffReason.SENSITIVE_INTENT
    assert h.text == "I'm sorry to see you go. I'm passing you to a colleague who can help."


async def test_low_confidence_twice_hands_off(memory_service: DialogueService) -> None:
    s = memory_service
    out = await say(s, "lc", "mmm card thing", nlu("card_fees", 0.3))
    assert "another way" in answer(out.decision).text
    out = await say(s, "lc", "the thing with the card", nlu("card_fees", 0.35))
    assert handoff(out.decision).reason is HandoffReason.LOW_CONFIDENCE


async def test_an_understood_turn_resets_the_low_confidence_streak(memory_service: DialogueService) -> None:
    s = memory_service
    await say(s, "lc2", "mmm", nlu("card_fees", 0.3))
    await say(s, "lc2", "balance please", nlu("check_balance", 0.9))
    out = await say(s, "lc2", "mmm", nlu("card_fees", 0.3))
    assert answer(out.decision).kind == "clarify"


async def test_strongly_negative_turns_hand_off(memory_service: DialogueService) -> None:
    s = memory_service
    out = await say(s, "neg", "this is useless", nlu("check_balance", sentiment=-0.8))
    assert isinstance(out.decision, Answer)
    out = await say(s, "neg", "absolutely terrible service", nlu("check_balance", sentiment=-0.9))
    h = handoff(out.decision)
    assert h.reason is HandoffReason.NEGATIVE_SENTIMENT
    assert "Sentiment: -0.80, -0.90 (steady)" in h.summary


async def test_same_intent_failing_three_times_hands_off(memory_service: DialogueService) -> None:
    s = memory_service
    await say(s, "rf", "dispute a charge", nlu("dispute_charge"))
    for _ in range(2):
        out = await say(s, "rf", "I don't know", nlu("dispute_charge", 0.8))
        assert answer(out.decision).text == "How much was the charge?"
    out = await say(s, "rf", "whatever", nlu("dispute_charge", 0.8))
    h = handoff(out.decision)
    assert h.reason is HandoffReason.REPEATED_FAILURE and "dispute_charge failed 3 times" in h.summary


async def test_unheard_speech_is_asked_again_then_handed_off(memory_service: DialogueService) -> None:
    s = memory_service
    mumble = Transcript(text="", language="en", avg_logprob=-2.0, no_speech_prob=0.9, duration_s=1.2,
                        low_confidence=True)
    out = await say(s, "uh", "", None, transcript=mumble)
    assert answer(out.decision).text == "Sorry, I didn't catch that. Could you say it again?"
    out = await say(s, "uh", "", None, transcript=mumble)
    assert handoff(out.decision).reason is HandoffReason.UNHEARD
    _, turns = await s.get_conversation("uh")
    assert turns[0].audio_duration_s == 1.2


async def test_request_handoff_is_idempotent_while_open(memory_service: DialogueService) -> None:
    s = memory_service
    await say(s, "rq", "hello", nlu("greeting"))
    first = await s.request_handoff("rq", reason=HandoffReason.RASA_ACTION, summary="Rasa gave up")
    again = await s.request_handoff("rq", reason=HandoffReason.RASA_ACTION)
    assert first.handoff_id == again.handoff_id
    record = await s.get_handoff(first.handoff_id)
    assert record.summary == "Rasa gave up" and record.reason == "rasa_action"
    fresh = await s.request_handoff("new-conv", reason=HandoffReason.DEPENDENCY_DOWN)
    state, turns = await s.get_conversation("new-conv")
    assert state.mode == "human" and turns[0].handoff_id == fresh.handoff_id


async def test_voice_turn_text_comes_from_the_transcript(memory_service: DialogueService) -> None:
    from agent.messages import UserTurn

    heard = Transcript(text="I lost my card", language="en", avg_logprob=-0.2, no_speech_prob=0.01, duration_s=1.5)
    turn = UserTurn(conversation_id="voice", channel="voice", user_id="caller-hash")
    out = await memory_service.handle_turn(turn, nlu("lost_or_stolen_card"), transcript=heard)
    assert answer(out.decision).intent == "lost_or_stolen_card"
    _, turns = await memory_service.get_conversation("voice")
    assert (turns[0].text, turns[0].channel, turns[0].transcript_language) == ("I lost my card", "voice", "en")
