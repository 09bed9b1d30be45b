/* The human-agent console: pending hand-offs, claim, read the conversation, reply, release.

   Talks to GET /v1/handoffs, GET /v1/handoffs/{id}, POST /v1/handoffs/{id}/claim|messages|release
   and GET /v1/conversations/{conversation_id}; polls the queue and the open conversation. The
   agent id and the open hand-off are kept in localStorage (the token only for this tab, in
   sessionStorage) so a reload comes back to the same place. Text is set with textContent. */
"use strict";

(function () {
  const { el, api, ApiError, store, timeOf, labelOf, imageShaOf, imageFactsOf, blobUrl } = window.Support;

  const KEYS = { agent: "supportConsole.agentId", handoff: "supportConsole.handoffId", token: "supportConsole.token", tab: "supportConsole.tab" };
  const POLL_QUEUE_MS = 3000;
  const POLL_CONVERSATION_MS = 2000;
  const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$/;

  const $ = (id) => document.getElementById(id);
  const ui = {
    agent: $("agent-id"), token: $("token"), error: $("error"), errorText: $("error-text"),
    list: $("handoff-list"), queueEmpty: $("queue-empty"), updated: $("queue-updated"),
    countPending: $("count-pending"), countMine: $("count-mine"),
    detailEmpty: $("detail-empty"), detail: $("detail-body"), title: $("detail-title"), sub: $("detail-sub"),
    status: $("detail-status"), summary: $("detail-summary"), claim: $("claim"), release: $("release"),
    transcript: $("transcript"), replyForm: $("reply-form"), reply: $("reply"), replySend: $("reply-send"), replyHint: $("reply-hint"),
  };

  const state = {
    tab: store.get(KEYS.tab) === "mine" ? "mine" : "pending",
    handoffs: { pending: [], mine: [] },
    current: null,            // the open hand-off record
    conversationId: null,
    seen: 0,
    rendered: new Set(),
    imageUrls: [],
    busy: false,
  };

  const sessionToken = {
    get() { try { return sessionStorage.getItem(KEYS.token) || ""; } catch (_) { return ""; } },
    set(value) { try { sessionStorage.setItem(KEYS.token, value); } catch (_) { /* storage blocked */ } },
  };

  const agentId = () => ui.agent.value.trim();
  const token = () => ui.token.value.trim();
  const call = (method, path, body) => api(method, path, { body, token: token() });
  const handoffPath = (id, action) => `/v1/handoffs/${encodeURIComponent(id)}${action ? `/${action}` : ""}`;
  const claimedBy = (record) => record.agent_id || record.claimed_by || "";

  // --- errors ---------------------------------------------------------------------------------

  function showError(message, kind) {
    ui.errorText.textContent = message;
    ui.error.dataset.kind = kind || "";
    ui.error.hidden = false;
  }

  function hideError() { ui.error.hidden = true; ui.error.dataset.kind = ""; }

  function reportError(e, doing) {
    if (e instanceof ApiError && e.status === 401) showError("The server needs an agent token: enter it above.", "auth");
    else showError(`Could not ${doing}: ${e.message}`, e.kind || "server");
  }

  function needAgentId() {
    if (ID_PATTERN.test(agentId())) return true;
    showError("Enter your agent id first (letters, digits and . _ : @ + -).", "agent_id");
    ui.agent.focus();
    return false;
  }

  // --- the queue ------------------------------------------------------------------------------

  async function refreshQueue() {
    try {
      const [pending, claimed] = await Promise.all([
        call("GET", "/v1/handoffs?status=pending"),
        call("GET", "/v1/handoffs?status=claimed"),
      ]);
      state.handoffs.pending = pending.handoffs || [];
      state.handoffs.mine = (claimed.handoffs || []).filter((r) => claimedBy(r) === agentId());
      renderQueue();
      ui.updated.textContent = `Updated ${timeOf(Date.now())}`;
      if (["network", "auth"].includes(ui.error.dataset.kind)) hideError();
    } catch (e) {
      reportError(e, "load the hand-offs");
    }
    ui.list.dataset.loaded = "true";
  }

  function renderQueue() {
    ui.countPending.textContent = `(${state.handoffs.pending.length})`;
    ui.countMine.textContent = `(${state.handoffs.mine.length})`;
    for (const tab of document.querySelectorAll('[role="tab"]')) {
      tab.setAttribute("aria-selected", String(tab.dataset.status === state.tab));
    }
    const records = state.handoffs[state.tab];
    ui.list.replaceChildren(...records.map(queueItem));
    ui.queueEmpty.hidden = records.length > 0;
    ui.queueEmpty.textContent = state.tab === "pending" ? "No hand-offs are waiting." : "You have no claimed hand-offs.";
  }

  function queueItem(record) {
    const open = state.current && state.current.id === record.id;
    const firstLine = (record.summary || "").split("\n")[0];
    return el("li", { class: `handoff${open ? " open" : ""}`, dataset: { id: record.id } },
      el("button", { type: "button", class: "handoff-open", "aria-current": open ? "true" : null, onclick: () => openHandoff(record.id) },
        el("span", { class: "reason", text: labelOf(record.reason || "hand-off") }),
        el("span", { class: "when", text: timeOf(record.created_at ?? record.at) }),
        el("span", { class: "handoff-summary", text: firstLine }),
        el("span", { class: "conv", text: record.conversation_id || "" })));
  }

  // --- the open hand-off ----------------------------------------------------------------------

  async function openHandoff(id) {
    let record;
    try {
      record = await call("GET", handoffPath(id));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) { closeDetail(); store.remove(KEYS.handoff); }
      reportError(e, "open the hand-off");
      return;
    }
    store.set(KEYS.handoff, id);
    if (!state.current || state.current.conversation_id !== record.conversation_id) resetTranscript(record.conversation_id);
    showRecord(record);
    renderQueue();
    await refreshConversation();
  }

  function closeDetail() {
    state.current = null;
    ui.detail.hidden = true;
    ui.detailEmpty.hidden = false;
  }

  function resetTranscript(conversationId) {
    state.conversationId = conversationId;
    state.seen = 0;
    state.rendered = new Set();
    for (const url of state.imageUrls) URL.revokeObjectURL(url);
    state.imageUrls = [];
    ui.transcript.replaceChildren();
  }

  function showRecord(record) {
    state.current = record;
    ui.detailEmpty.hidden = true;
    ui.detail.hidden = false;
    ui.detail.dataset.status = record.status || "";
    ui.title.textContent = labelOf(record.reason || "hand-off");
    ui.sub.textContent = `Conversation ${record.conversation_id || "?"}${record.user_id ? ` · customer ${record.user_id}` : ""}` +
      (record.created_at ? ` · handed over at ${timeOf(record.created_at)}` : "");
    ui.summary.textContent = record.summary || "No summary.";
    const owner = claimedBy(record);
    const mine = record.status === "claimed" && owner === agentId();
    const label = record.status === "claimed" ? (mine ? "Claimed by you" : `Claimed by ${owner || "another agent"}`)
      : record.status === "released" ? "Released to the assistant" : "Waiting for an agent";
    ui.status.textContent = label;
    ui.status.dataset.status = record.status || "";
    ui.claim.hidden = record.status !== "pending";
    ui.release.hidden = !mine;
    ui.reply.disabled = !mine;
    ui.replySend.disabled = !mine;
    ui.replyHint.textContent = mine ? "The customer sees your replies in their chat, marked as from a person."
      : record.status === "pending" ? "Claim the hand-off to reply." : record.status === "released"
        ? "This conversation is back with the assistant." : "Another agent owns this conversation.";
  }

  async function refreshConversation() {
    const conversation = state.conversationId;
    if (!conversation) return;
    const since = state.seen;
    let data;
    try {
      data = await call("GET", `/v1/conversations/${encodeURIComponent(conversation)}${since ? `?since=${since}` : ""}`);
    } catch (e) {
      reportError(e, "load the conversation");
      return;
    }
    if (conversation !== state.conversationId || since !== state.seen) return;  // switched, or read meanwhile
    const turns = Array.isArray(data.turns) ? data.turns : [];
    turns.forEach((turn, i) => renderTurn(turn, typeof turn.index === "number" ? turn.index : since + i));
    state.seen += turns.length;
  }

  const WHO = { user: "Customer", bot: "Assistant", system: "" };

  function renderTurn(turn, index) {
    if (state.rendered.has(index)) return;
    state.rendered.add(index);
    const role = ["user", "bot", "human_agent", "system"].includes(turn.role) ? turn.role : "bot";
    let node;
    if (role === "system") {
      node = el("li", { class: "msg msg-system", dataset: { role } }, el("p", { class: "system-text", text: turn.text || "" }));
    } else {
      const author = turn.agent_id || turn.author || "";
      const who = role === "human_agent" ? (author === agentId() ? "You" : author || "Agent") : WHO[role];
      const bubble = el("div", { class: "bubble" });
      if (turn.text) bubble.append(el("p", { class: "text", text: turn.text }));
      const sha = imageShaOf(turn);
      if (sha) bubble.append(imageNode(sha));
      const facts = imageFactsOf(turn);
      if (facts) bubble.append(factsNode(facts));
      node = el("li", { class: `msg msg-${role}`, dataset: { role, index: String(index) } },
        el("div", { class: "meta" }, el("span", { class: "who", text: who }), understood(turn),
          el("time", { text: timeOf(turn.at ?? turn.timestamp ?? turn.created_at) })),
        bubble);
    }
    ui.transcript.append(node);
    node.scrollIntoView({ block: "nearest" });
  }

  /** What the assistant made of a customer turn, when the record says: intent, confidence, mood. */
  function understood(turn) {
    if (turn.role !== "user" || !turn.intent) return null;
    const parts = [labelOf(turn.intent)];
    if (typeof turn.confidence === "number") parts.push(`${Math.round(turn.confidence * 100)}%`);
    if (turn.sentiment && turn.sentiment !== "neutral") parts.push(turn.sentiment);
    return el("span", { class: "nlu", text: parts.join(" · ") });
  }

  function imageNode(sha) {
    const img = el("img", { class: "thumb", alt: "Image the customer sent" });
    blobUrl(`/v1/images/${sha}`, { token: token() })
      .then((url) => { state.imageUrls.push(url); img.src = url; })
      .catch(() => { img.replaceWith(el("p", { class: "file-chip", text: "Image no longer available" })); });
    return img;
  }

  function factsNode(facts) {
    const text = Object.entries(facts.fields || {}).map(([k, v]) => `${labelOf(k)}: ${v}`).join(" · ");
    return el("p", { class: "seen" }, "Seen: ", el("strong", { text: labelOf(facts.kind || "image") }), text ? ` — ${text}` : "");
  }

  // --- actions --------------------------------------------------------------------------------

  async function act(action, body, doing) {
    if (!state.current || state.busy || !needAgentId()) return null;
    state.busy = true;
    try {
      const result = await call("POST", handoffPath(state.current.id, action), { agent_id: agentId(), ...body });
      hideError();
      return result;
    } catch (e) {
      reportError(e, doing);
      if (e instanceof ApiError && e.status === 409) await openHandoff(state.current.id);
      return null;
    } finally {
      state.busy = false;
    }
  }

  async function claim() {
    const record = await act("claim", {}, "claim the hand-off");
    if (!record) return;
    showRecord({ ...state.current, ...record });
    if (state.tab === "pending") state.tab = "mine";
    store.set(KEYS.tab, state.tab);
    await refreshQueue();
    ui.reply.focus();
  }

  async function release() {
    const record = await act("release", {}, "release the hand-off");
    if (!record) return;
    showRecord({ ...state.current, ...record });
    await refreshQueue();
    await refreshConversation();
  }

  async function reply(event) {
    event.preventDefault();
    const text = ui.reply.value.trim();
    if (!text) { showError("Write a reply first.", "empty"); return; }
    const turn = await act("messages", { text }, "send the reply");
    if (!turn) return;
    ui.reply.value = "";
    await refreshConversation();
    ui.reply.focus();
  }

  // --- start ----------------------------------------------------------------------------------

  function wire() {
    ui.agent.value = store.get(KEYS.agent) || "";
    ui.token.value = sessionToken.get();
    ui.agent.addEventListener("change", () => {
      if (ID_PATTERN.test(agentId())) store.set(KEYS.agent, agentId());
      refreshQueue();
      if (state.current) showRecord(state.current);
    });
    ui.token.addEventListener("change", () => { sessionToken.set(token()); refreshQueue(); });
    $("settings").addEventListener("submit", (event) => event.preventDefault());
    $("error-dismiss").addEventListener("click", hideError);
    for (const tab of document.querySelectorAll('[role="tab"]')) {
      tab.addEventListener("click", () => { state.tab = tab.dataset.status; store.set(KEYS.tab, state.tab); renderQueue(); });
    }
    ui.claim.addEventListener("click", claim);
    ui.release.addEventListener("click", release);
    ui.replyForm.addEventListener("submit", reply);
    ui.reply.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        ui.replyForm.requestSubmit();
      }
    });
  }

  function poll(fn, ms) {
    const tick = async () => { await fn(); setTimeout(tick, ms); };
    setTimeout(tick, ms);
  }

  async function pollCurrent() {
    if (!state.current) return;
    try {
      const record = await call("GET", handoffPath(state.current.id));
      if (state.current && record.id === state.current.id) showRecord(record);
    } catch (_) { /* the queue poll reports errors */ }
    await refreshConversation();
  }

  async function start() {
    wire();
    await refreshQueue();
    const saved = store.get(KEYS.handoff);
    if (saved) await openHandoff(saved);
    poll(refreshQueue, POLL_QUEUE_MS);
    poll(pollCurrent, POLL_CONVERSATION_MS);
  }

  start();
})();
