"""Steps the browser tests share: send a chat message, wait for its reply, open the console."""

from __future__ import annotations

import json
from typing import Any

REPLY_TIMEOUT_MS = 90_000  # a turn with an image runs the encoder and OCR on 2 shared cores
POLL_TIMEOUT_MS = 20_000  # the pages poll every 2-3 s
IMAGE_LIMIT_BYTES = 3_000_000  # the test servers' image limit (AGENT_VISION_MAX_BYTES), so a 413 is easy to reach
AGENT_TOKEN = "browser-test-token"  # the hand-off API token of the ``token_server`` fixture


def send_message(page: Any, text: str, *, press_enter: bool = True, timeout_ms: int = REPLY_TIMEOUT_MS) -> dict:
    """Types ``text`` and sends it; returns the API's JSON reply once the page has rendered it."""
    from playwright.sync_api import expect

    bots_before = page.locator(".msg-bot").count()
    page.fill("#message", text)
    with page.expect_response(lambda r: r.url.endswith("/turns") and r.request.method == "POST",
                              timeout=timeout_ms) as info:
        if press_enter:
            page.press("#message", "Enter")
        else:
            page.click("#send")
    response = info.value
    body = response.json()
    assert response.status == 200, body
    if body.get("reply"):
        expect(page.locator(".msg-bot")).to_have_count(bots_before + 1, timeout=POLL_TIMEOUT_MS)
    return body


def last_text(page: Any, role: str) -> str:
    """The text of the latest message of ``role`` (user, bot, human_agent) on a chat page."""
    return str(page.locator(f".msg-{role} .text").last.text_content())


def conversation_id(page: Any) -> str:
    return str(page.evaluate("localStorage.getItem('supportChat.conversationId')"))


def server_turns(page: Any) -> list[dict]:
    """The conversation's records as the server has them (read through the page's origin)."""
    result = page.evaluate(
        """async (id) => {
             const r = await fetch(`/v1/conversations/${encodeURIComponent(id)}`);
             return {status: r.status, body: await r.text()};
           }""",
        conversation_id(page),
    )
    if result["status"] == 404:
        return []
    assert result["status"] == 200, result
    return list(json.loads(result["body"])["turns"])


def open_console(pages: Any, agent_id: str) -> Any:
    console = pages.open("/console")
    console.fill("#agent-id", agent_id)
    console.press("#agent-id", "Tab")  # "change" stores it
    return console


def open_handoff_of(console: Any, conversation: str) -> None:
    """Opens the queue entry of ``conversation`` (the queue is shared by every test's hand-offs)."""
    item = console.locator(".handoff", has_text=conversation)
    item.wait_for(timeout=POLL_TIMEOUT_MS)
    item.locator("button").click()
    console.locator("#detail-body").wait_for()
