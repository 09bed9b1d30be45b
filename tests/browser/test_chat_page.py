"""The web chat page (/) in headless Chromium against the real server and models."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.browser.driving import (
    IMAGE_LIMIT_BYTES,
    POLL_TIMEOUT_MS,
    conversation_id,
    last_text,
    send_message,
    server_turns,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

sync_api = pytest.importorskip("playwright.sync_api")
expect, PlaywrightError = sync_api.expect, sync_api.Error

# Records whether the typing indicator was ever shown (a reply can come back too fast to catch).
WATCH_TYPING = """() => {
  window.__typingSeen = false;
  new MutationObserver(() => { if (!document.getElementById('typing').hidden) window.__typingSeen = true; })
    .observe(document.getElementById('typing'), {attributes: true});
}"""


def test_a_typed_message_gets_the_agents_reply(pages) -> None:
    page = pages.open("/")
    page.evaluate(WATCH_TYPING)
    body = send_message(page, "I lost my card on the bus this morning")
    assert body["decision"] in ("answer", "clarify", "knowledge") and body["reply"]["text"]
    assert last_text(page, "user") == "I lost my card on the bus this morning"
    assert last_text(page, "bot") == body["reply"]["text"]
    assert page.evaluate("window.__typingSeen") is True
    expect(page.locator("#typing")).to_be_hidden()
    assert page.locator("#message").input_value() == ""
    pages.shot(page, "chat-reply")


def test_a_receipt_upload_gets_a_reply_that_mentions_its_total(
    pages, receipts: Callable[[str], Path], vision_ready: None
) -> None:
    receipt = receipts("000")
    total = json.loads(receipt.with_suffix(".json").read_text())["total"]
    page = pages.open("/")
    page.set_input_files("#file-input", str(receipt))
    expect(page.locator("#attachment")).to_be_visible()
    expect(page.locator("#attachment-preview")).to_have_attribute("src", re.compile(r"^blob:"))
    pages.shot(page, "chat-receipt-preview")
    body = send_message(page, "why was I charged twice?", press_enter=False)
    assert body["image"] is not None and body["image"]["kind"] == "receipt", body["image"]
    reply = last_text(page, "bot")
    assert total in reply, f"the reply does not mention the receipt's total {total}: {reply!r}"
    seen = page.locator(".msg-user .seen").last
    expect(seen).to_contain_text("Receipt")
    expect(seen).to_contain_text(total)
    expect(page.locator(".msg-user img.thumb").last).to_have_js_property("complete", True)
    assert page.locator(".msg-user img.thumb").last.evaluate("img => img.naturalWidth") > 0
    expect(page.locator("#attachment")).to_be_hidden()
    pages.shot(page, "chat-receipt-reply")


def test_an_image_dropped_on_the_page_is_attached_with_a_preview_and_can_be_removed(
    pages, receipts: Callable[[str], Path], vision_ready: None
) -> None:
    page = pages.open("/")
    data = base64.b64encode(receipts("001").read_bytes()).decode()
    drop = """async ([b64, name]) => {
      const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], name, {type: 'image/jpeg'}));
      const app = document.getElementById('app');
      app.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt, bubbles: true, cancelable: true}));
      const overlayShown = !document.getElementById('drop-overlay').hidden;
      app.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
      return overlayShown;
    }"""
    assert page.evaluate(drop, [data, "receipt-001.jpg"]) is True
    expect(page.locator("#drop-overlay")).to_be_hidden()
    expect(page.locator("#attachment-name")).to_contain_text("receipt-001.jpg")
    expect(page.locator("#attachment-preview")).to_be_visible()
    pages.shot(page, "chat-dropped-image")
    page.click("#attachment-remove")
    expect(page.locator("#attachment")).to_be_hidden()
    page.evaluate(drop, [data, "receipt-001.jpg"])
    body = send_message(page, "")  # an image alone is a turn
    assert body["image"] is not None
    expect(page.locator(".msg-user img.thumb")).to_have_count(1)


def test_a_file_that_is_not_an_image_shows_the_servers_error_and_changes_nothing(pages) -> None:
    page = pages.open("/")
    send_message(page, "hello")
    turns_before = server_turns(page)
    page.set_input_files("#file-input", {"name": "statement.pdf", "mimeType": "application/pdf",
                                         "buffer": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"})
    expect(page.locator("#attachment-icon")).to_be_visible()  # no preview for a non-image
    page.fill("#message", "here is my statement")
    with page.expect_response(lambda r: r.url.endswith("/turns")) as info:
        page.press("#message", "Enter")
    assert info.value.status in (415, 422), info.value.status
    message = info.value.json()["error"]
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text(message)
    expect(page.locator(".msg-user")).to_have_count(1)  # the failed message is not shown as sent
    assert page.locator("#message").input_value() == "here is my statement"  # kept to fix and resend
    expect(page.locator("#attachment-name")).to_contain_text("statement.pdf")
    assert server_turns(page) == turns_before
    pages.shot(page, "chat-not-an-image")
    page.click("#attachment-remove")
    send_message(page, "never mind, thanks")
    expect(error).to_be_hidden()


@pytest.mark.parametrize("n_bytes", [IMAGE_LIMIT_BYTES + 1000, 30_000_000], ids=["over-image-limit", "30MB"])
def test_an_upload_over_the_size_limit_shows_the_413_message(pages, n_bytes: int, tmp_path: Path) -> None:
    page = pages.open("/")
    big = tmp_path / "huge.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(n_bytes))
    page.set_input_files("#file-input", str(big))
    with page.expect_response(lambda r: r.url.endswith("/turns"), timeout=60_000) as info:
        page.click("#send")
    assert info.value.status == 413
    try:
        message = info.value.json()["error"]
    except PlaywrightError:  # after a 30 MB request body DevTools no longer holds the response's
        message = "limit"
    expect(page.locator("#error")).to_contain_text(message)
    expect(page.locator("#error")).to_contain_text("limit")
    expect(page.locator("#attachment-name")).to_contain_text("huge.png")
    assert server_turns(page) == []


def test_the_network_going_down_shows_an_error_and_keeps_the_message(pages) -> None:
    page = pages.open("/")
    page.route("**/v1/**", lambda route: route.abort("internetdisconnected"))
    page.fill("#message", "what is my balance")
    page.press("#message", "Enter")
    expect(page.locator("#error")).to_contain_text("cannot reach")
    assert page.locator("#message").input_value() == "what is my balance"
    expect(page.locator(".msg-user")).to_have_count(0)
    pages.shot(page, "chat-offline")
    page.unroute("**/v1/**")
    send_message(page, "what is my balance")
    expect(page.locator("#error")).to_be_hidden()


def test_a_reload_restores_the_conversation_from_the_server(pages) -> None:
    page = pages.open("/")
    send_message(page, "hello")
    send_message(page, "my card has not arrived yet")
    before = page.locator("#log .msg .text").all_text_contents()
    conversation = conversation_id(page)
    page.reload()
    page.wait_for_selector("#log[data-loaded=true]", state="attached")
    assert conversation_id(page) == conversation
    expect(page.locator("#log .msg .text")).to_have_count(len(before))
    assert page.locator("#log .msg .text").all_text_contents() == before
    assert [t["text"] for t in server_turns(page) if t["text"]] == before
    # the restored conversation carries on
    send_message(page, "thanks")
    pages.shot(page, "chat-after-reload")


def test_markup_in_messages_is_shown_as_text(pages) -> None:
    page = pages.open("/")
    attack = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
    send_message(page, attack)
    assert last_text(page, "user") == attack
    assert page.locator("#log img:not(.thumb), #log script").count() == 0
    assert page.evaluate("window.__xss") is None
    page.reload()
    page.wait_for_selector("#log[data-loaded=true]", state="attached")
    expect(page.locator(".msg-user .text").first).to_have_text(attack, timeout=POLL_TIMEOUT_MS)
    assert page.evaluate("window.__xss") is None


def test_the_page_fits_a_phone_screen(pages, receipts: Callable[[str], Path]) -> None:
    page = pages.open("/", phone=True)
    send_message(page, "Hi, I need some help with a payment that was declined at the supermarket today")
    overflow = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px on a phone"
    composer = page.locator("#composer").bounding_box()
    assert composer is not None and composer["y"] + composer["height"] <= 844 + 1
    expect(page.locator("#send")).to_be_in_viewport()
    page.set_input_files("#file-input", str(receipts("002")))
    expect(page.locator("#attachment-preview")).to_be_in_viewport()
    pages.shot(page, "chat-phone")


def test_quick_replies_are_offered_and_send_their_text(pages) -> None:
    """A returning customer (same user id, new conversation) is asked about their recent issue with
    Yes/No buttons (the policy's recall question)."""
    page = pages.open("/")
    send_message(page, "I lost my card")
    first = conversation_id(page)
    page.click("#new-conversation")
    expect(page.locator("#log .msg")).to_have_count(0)
    assert conversation_id(page) != first
    body = send_message(page, "I lost my card")
    assert body["reply"]["buttons"], body  # the policy asks "is this about the card you reported ...?"
    quick = page.locator(".quick-replies .quick")
    expect(quick).to_have_text(body["reply"]["buttons"])
    pages.shot(page, "chat-quick-replies")
    with page.expect_response(lambda r: r.url.endswith("/turns")) as info:
        quick.first.click()
    assert info.value.status == 200
    expect(page.locator(".msg-user .text").last).to_have_text(body["reply"]["buttons"][0])
    expect(page.locator(".msg-bot")).to_have_count(2)
    expect(page.locator(".quick-replies")).to_have_count(1 if info.value.json()["reply"]["buttons"] else 0)
