"""The human-agent console (/console) and the chat page together: a hand-off from request to
release, in two browser contexts (the customer's and the agent's), against the real server."""

from __future__ import annotations

import pytest

from tests.browser.driving import (
    AGENT_TOKEN,
    POLL_TIMEOUT_MS,
    conversation_id,
    last_text,
    open_console,
    open_handoff_of,
    send_message,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def labelled(key: str) -> str:
    """How the pages show a key: "product_photo" -> "Product photo"."""
    text = key.replace("_", " ")
    return text[:1].upper() + text[1:]

expect = pytest.importorskip("playwright.sync_api").expect


def test_a_handoff_is_claimed_answered_and_released_from_the_console(pages) -> None:
    chat = pages.open("/")
    body = send_message(chat, "I want to talk to a person")
    assert body["decision"] == "handoff", body
    notice = chat.locator("#human-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("person from our support team")
    pages.shot(chat, "chat-handed-off")
    conversation = conversation_id(chat)

    console = open_console(pages, "sam")
    open_handoff_of(console, conversation)
    expect(console.locator("#detail-status")).to_have_text("Waiting for an agent")
    expect(console.locator("#detail-summary")).not_to_be_empty()
    expect(console.locator("#reply")).to_be_disabled()
    expect(console.locator("#transcript .msg-user .text").first).to_have_text("I want to talk to a person")
    console.click("#claim")
    expect(console.locator("#detail-status")).to_have_text("Claimed by you")
    expect(console.locator("#tab-mine")).to_have_attribute("aria-selected", "true")

    # the customer writes while a person owns the conversation: no bot reply, seen in the console
    attack = "<img src=x onerror=\"window.__xss=1\">are you there?"
    silent = send_message(chat, attack)
    assert silent["decision"] == "silent" and silent["reply"] is None
    expect(console.locator("#transcript .msg-user .text").last).to_have_text(attack, timeout=POLL_TIMEOUT_MS)
    assert console.evaluate("window.__xss") is None

    answer = "Hi, this is Sam from the <b>card team</b>. I can see your account."
    console.fill("#reply", answer)
    console.press("#reply", "Enter")
    expect(console.locator("#transcript .msg-human_agent .text").last).to_have_text(answer)
    expect(console.locator("#reply")).to_have_value("")
    pages.shot(console, "console-claimed", full_page=True)

    human = chat.locator(".msg-human_agent")
    expect(human).to_have_count(1, timeout=POLL_TIMEOUT_MS)
    expect(human.locator(".text")).to_have_text(answer)
    expect(human.locator(".badge")).to_have_text("Person")
    expect(notice).to_contain_text("talking with a person")
    assert chat.locator("#log b").count() == 0
    pages.shot(chat, "chat-human-reply")

    # both pages come back to the same place after a reload
    console.reload()
    console.wait_for_selector("#handoff-list[data-loaded=true]", state="attached")
    expect(console.locator("#detail-status")).to_have_text("Claimed by you")
    expect(console.locator("#agent-id")).to_have_value("sam")
    chat.reload()
    chat.wait_for_selector("#log[data-loaded=true]", state="attached")
    expect(chat.locator(".msg-human_agent .text")).to_have_text(answer)
    expect(notice).to_contain_text("talking with a person")

    console.click("#release")
    expect(console.locator("#detail-status")).to_have_text("Released to the assistant")
    expect(console.locator("#reply")).to_be_disabled()
    expect(notice).to_contain_text("back to the virtual assistant", timeout=POLL_TIMEOUT_MS)
    pages.shot(chat, "chat-released")

    back = send_message(chat, "what is my balance")
    assert back["decision"] != "silent" and back["reply"]["text"]
    assert last_text(chat, "bot") == back["reply"]["text"]


def test_the_console_asks_for_an_agent_id_before_claiming(pages) -> None:
    chat = pages.open("/")
    assert send_message(chat, "can I speak to a human please")["decision"] == "handoff"
    console = pages.open("/console")
    open_handoff_of(console, conversation_id(chat))
    console.click("#claim")
    expect(console.locator("#error")).to_contain_text("agent id")
    expect(console.locator("#detail-status")).to_have_text("Waiting for an agent")


def test_a_handoff_claimed_by_another_agent_cannot_be_taken(pages, receipts, vision_ready: None) -> None:
    chat = pages.open("/")
    chat.set_input_files("#file-input", str(receipts("003")))
    image_turn = send_message(chat, "this receipt is wrong")
    assert send_message(chat, "let me talk to a real person")["decision"] == "handoff"
    conversation = conversation_id(chat)
    first = open_console(pages, "ann")
    open_handoff_of(first, conversation)
    # the customer's image, fetched from GET /v1/images/{sha256}, and its kind
    thumb = first.locator("#transcript img.thumb")
    expect(thumb).to_have_count(1)
    expect(thumb).to_have_js_property("complete", True)
    assert thumb.evaluate("img => img.naturalWidth") > 0
    expect(first.locator("#transcript .seen")).to_contain_text(labelled(image_turn["image"]["kind"]))
    second = open_console(pages, "bob")
    open_handoff_of(second, conversation)
    first.click("#claim")
    expect(first.locator("#detail-status")).to_have_text("Claimed by you")
    # bob clicks before his page's next poll shows the claim (the button may already be hidden)
    second.locator("#claim").dispatch_event("click")
    expect(second.locator("#error")).to_be_visible()
    expect(second.locator("#detail-status")).to_have_text("Claimed by ann")
    expect(second.locator("#reply")).to_be_disabled()
    expect(second.locator("#release")).to_be_hidden()
    pages.shot(second, "console-claimed-by-another", full_page=True)


def test_the_console_sends_the_agent_token_when_the_server_wants_one(pages, token_server) -> None:
    chat = pages.open("/", server=token_server)
    assert send_message(chat, "I want to talk to a person")["decision"] == "handoff"
    console = pages.open("/console", server=token_server)
    expect(console.locator("#error")).to_contain_text("agent token")
    console.fill("#agent-id", "tess")
    console.fill("#token", AGENT_TOKEN)
    console.press("#token", "Tab")
    open_handoff_of(console, conversation_id(chat))
    expect(console.locator("#error")).to_be_hidden()
    console.click("#claim")
    expect(console.locator("#detail-status")).to_have_text("Claimed by you")
    console.reload()  # the token is kept for this tab
    console.wait_for_selector("#handoff-list[data-loaded=true]", state="attached")
    expect(console.locator("#detail-status")).to_have_text("Claimed by you")
    console.fill("#reply", "Hello from Tess")
    console.press("#reply", "Enter")
    expect(chat.locator(".msg-human_agent .text")).to_have_text("Hello from Tess", timeout=POLL_TIMEOUT_MS)
    expect(console.locator("#error")).to_be_hidden()
