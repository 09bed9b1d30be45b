/* The web chat page: one customer conversation with the agent runtime's HTTP API.

   The server is the source of truth: after each turn the page reads the conversation's new
   records (GET /v1/conversations/{id}?since=N) and renders them, so a reload, a second tab and
   a human agent's replies all show the same thing. The POST reply adds what only it carries:
   what was seen in an image and quick-reply buttons. Text is always set with textContent. */
"use strict";

(function () {
  const { el, api, ApiError, newId, store, timeOf, formatBytes, labelOf, imageShaOf, imageFactsOf } = window.Support;

  const KEYS = { conversation: "supportChat.conversationId", user: "supportChat.userId" };
  const POLL_HUMAN_MS = 2000;      // while a person owns the conversation
  const POLL_RETRY_MS = 4000;      // after a failed read, until one succeeds
  const LARGE_UPLOAD_BYTES = 5e6;  // above this, a dropped connection is probably the size

  const $ = (id) => document.getElementById(id);
  const ui = {
    log: $("log"), empty: $("empty-hint"), typing: $("typing"), typingText: document.querySelector("#typing .typing-text"),
    notice: $("human-notice"), noticeText: $("human-notice-text"), error: $("error"), errorText: $("error-text"),
    form: $("composer"), text: $("message"), send: $("send"), file: $("file-input"),
    attachment: $("attachment"), preview: $("attachment-preview"), previewIcon: $("attachment-icon"),
    attachmentName: $("attachment-name"), overlay: $("drop-overlay"), conversation: $("conversation"), conversationLabel: $("conversation-id"),
  };

  const state = {
    conversationId: store.get(KEYS.conversation) || newId("web"),
    userId: store.get(KEYS.user) || newId("customer"),
    seen: 0,                 // records read from the server so far (the next ?since=)
    rendered: new Set(),     // record indexes already on the page
    mode: "bot",             // "bot" | "human", from the conversation state
    humanReplied: false,     // a person has written since the last hand-off
    file: null,              // the attached File, if any
    previewUrl: null,
    sending: false,
    syncChain: Promise.resolve(),
    pollTimer: null,
    needsSync: false,        // a read failed; keep polling until one works
  };
  store.set(KEYS.conversation, state.conversationId);
  store.set(KEYS.user, state.userId);

  const turnsPath = () => `/v1/conversations/${encodeURIComponent(state.conversationId)}/turns`;
  const conversationPath = (since) =>
    `/v1/conversations/${encodeURIComponent(state.conversationId)}${since ? `?since=${since}` : ""}`;

  // --- rendering ----------------------------------------------------------------------------

  const WHO = { user: "You", bot: "Assistant", human_agent: "Support team", system: "" };

  function humanName(turn) {
    const id = turn.agent_id || turn.author || "";
    return id ? `${id}, support team` : "Support team";
  }

  function messageNode(turn, index) {
    const role = ["user", "bot", "human_agent", "system"].includes(turn.role) ? turn.role : "bot";
    if (role === "system") {
      return el("li", { class: "msg msg-system", dataset: { role, index: String(index) } },
        el("p", { class: "system-text", text: turn.text || "" }));
    }
    const who = role === "human_agent" ? humanName(turn) : WHO[role];
    const bubble = el("div", { class: "bubble" });
    if (turn.text) bubble.append(el("p", { class: "text", text: turn.text }));
    const sha = imageShaOf(turn);
    if (sha) bubble.append(storedImage(sha));
    const facts = imageFactsOf(turn);
    if (facts) bubble.append(seenNode(facts));
    const meta = el("div", { class: "meta" },
      el("span", { class: "who", text: who }),
      role === "human_agent" ? el("span", { class: "badge", text: "Person" }) : null,
      el("time", { text: timeOf(turn.at ?? turn.timestamp ?? turn.created_at) }));
    return el("li", { class: `msg msg-${role}`, dataset: { role, index: String(index) } }, meta, bubble);
  }

  function storedImage(sha) {
    return el("img", { class: "thumb", src: `/v1/images/${sha}`, alt: "Image you sent", onload: toBottom });
  }

  /** "Seen in your image: Receipt (93%) — Total: 12.50, Date: 2019-03-01" as DOM nodes. */
  function seenNode(image) {
    const list = el("dl", { class: "fields" });
    const known = image.fields !== null && image.fields !== undefined;
    for (const [key, value] of Object.entries(image.fields || {})) {
      list.append(el("dt", { text: labelOf(key) }), el("dd", { text: String(value) }));
    }
    const kind = image.kind ? labelOf(image.kind) : "Image";
    const confidence = typeof image.kind_confidence === "number" ? ` (${Math.round(image.kind_confidence * 100)}% sure)` : "";
    return el("div", { class: "seen", dataset: { kind: image.kind || "" } },
      el("p", { class: "seen-title" }, "Seen in your image: ", el("strong", { text: kind }), confidence),
      list.childElementCount ? list : known ? el("p", { class: "seen-none", text: "No details could be read from it." }) : null);
  }

  function append(node) {
    ui.log.append(node);
    ui.empty.hidden = ui.log.childElementCount > 0;
    toBottom();
  }

  function toBottom() {
    ui.conversation.scrollTop = ui.conversation.scrollHeight;
  }

  function renderTurn(turn, index) {
    if (state.rendered.has(index)) return;
    state.rendered.add(index);
    if (turn.role === "human_agent") state.humanReplied = true;
    if (turn.role === "bot" && turn.decision === "handoff") state.humanReplied = false;
    append(messageNode(turn, index));
  }

  function pendingNode(text, file, previewUrl) {
    const bubble = el("div", { class: "bubble" });
    if (text) bubble.append(el("p", { class: "text", text }));
    if (file && previewUrl) bubble.append(el("img", { class: "thumb", src: previewUrl, alt: "Image you are sending", onload: toBottom }));
    else if (file) bubble.append(el("p", { class: "file-chip", text: `${file.name} (${formatBytes(file.size)})` }));
    return el("li", { class: "msg msg-user pending", dataset: { role: "user", provisional: "true" } },
      el("div", { class: "meta" }, el("span", { class: "who", text: "You" }), el("span", { class: "sending", text: "sending…" })),
      bubble);
  }

  function clearProvisional() {
    for (const node of ui.log.querySelectorAll('[data-provisional="true"]')) node.remove();
  }

  // --- conversation state: hand-off notice ---------------------------------------------------

  function applyState(conversationState) {
    const mode = (conversationState && conversationState.mode) || "bot";
    const previous = state.mode;
    state.mode = mode;
    if (mode === "human") {
      showNotice(state.humanReplied
        ? "You are talking with a person from our support team."
        : "A person from our support team is taking over. Their replies will appear here.", "human");
    } else if (previous === "human") {
      showNotice("The person from our team has passed you back to the virtual assistant.", "released");
    }
    schedulePoll();
  }

  function showNotice(text, kind) {
    ui.noticeText.textContent = text;
    ui.notice.dataset.kind = kind;
    ui.notice.hidden = false;
  }

  // --- talking to the server ------------------------------------------------------------------

  /** Reads records the page has not seen yet. Calls are queued so none overlap. */
  function sync() {
    state.syncChain = state.syncChain.then(readNew, readNew);
    return state.syncChain;
  }

  async function readNew() {
    let data;
    try {
      data = await api("GET", conversationPath(state.seen));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {  // not started yet, or expired on the server
        state.needsSync = false;
        return;
      }
      state.needsSync = true;
      schedulePoll();
      throw e;
    }
    state.needsSync = false;
    const turns = Array.isArray(data.turns) ? data.turns : [];
    if (turns.length) clearProvisional();
    turns.forEach((turn, i) => renderTurn(turn, typeof turn.index === "number" ? turn.index : state.seen + i));
    state.seen += turns.length;
    if (turns.length) showQuickRepliesOf(turns[turns.length - 1]);
    applyState(data.state);
    hideErrorOf("network");
  }

  async function send(rawText, file) {
    if (state.sending) return;
    const text = (rawText || "").trim();
    if (!text && !file) {
      showError("Type a message or attach an image first.", "empty");
      return;
    }
    hideError();
    state.sending = true;
    setBusy(true);
    const previewUrl = state.previewUrl;
    const pending = pendingNode(text, file, previewUrl);
    append(pending);
    clearComposer({ keepPreviewUrl: true });
    removeQuickReplies();
    showTyping(state.mode === "human" ? "Sending" : "The assistant is typing");
    try {
      const result = await api("POST", turnsPath(), { body: turnBody(text, file) });
      pending.querySelector(".sending").textContent = "sent";
      await afterTurn(result, pending);
    } catch (e) {
      pending.remove();
      restoreComposer(rawText, file, previewUrl);
      showError(describeSendError(e, file), e.kind || "server");
    } finally {
      hideTyping();
      state.sending = false;
      setBusy(false);
      ui.text.focus();
    }
  }

  function turnBody(text, file) {
    if (!file) return { text, user_id: state.userId };
    const form = new FormData();
    if (text) form.append("text", text);
    form.append("user_id", state.userId);
    form.append("image", file, file.name || "image");
    return form;
  }

  function describeSendError(error, file) {
    if (error.kind === "network" && file && file.size > LARGE_UPLOAD_BYTES) {
      return `The upload failed: the file is ${formatBytes(file.size)}, which may be over the server's limit.`;
    }
    if (error.kind === "network") return "Your message was not sent: cannot reach the support service. Please try again.";
    return `Your message was not sent: ${error.message}`;
  }

  /** After a turn the server accepted: read the records back, then add what only the reply has. */
  async function afterTurn(result, pending) {
    pending.dataset.provisional = "true";
    try {
      await sync();
    } catch (_) {
      showProvisionalReply(result);  // shown now, replaced by the records when a read works
      showError("Your message was sent, but the conversation could not be refreshed; retrying.", "network");
    }
    addImageFacts(result && result.image);
    if (result && result.decision === "handoff" && state.mode !== "human") applyState({ mode: "human" });
  }

  function showProvisionalReply(result) {
    const text = result && result.reply && result.reply.text;
    if (!text) return;
    const node = messageNode({ role: "bot", text }, -1);
    node.dataset.provisional = "true";
    append(node);
    addQuickReplies(Array.isArray(result.reply.buttons) ? result.reply.buttons : []);
  }

  /** Quick replies belong to the latest bot turn only; any newer record removes them. */
  function showQuickRepliesOf(turn) {
    removeQuickReplies();
    if (turn.role === "bot" && Array.isArray(turn.buttons)) addQuickReplies(turn.buttons);
  }

  function addImageFacts(image) {
    if (!image) return;
    const users = ui.log.querySelectorAll(".msg-user");
    const last = users[users.length - 1];
    if (!last) return;
    const old = last.querySelector(".seen");  // the record's kind only; the reply has the fields too
    const node = seenNode(image);
    if (old) old.replaceWith(node); else last.querySelector(".bubble").append(node);
  }

  function addQuickReplies(buttons) {
    const labels = buttons.map((b) => (typeof b === "string" ? b : b && (b.title || b.payload))).filter(Boolean);
    if (!labels.length) return;
    const group = el("div", { class: "quick-replies", role: "group", "aria-label": "Suggested replies" },
      labels.map((label) => el("button", { type: "button", class: "quick", text: label, onclick: () => send(label, null) })));
    append(el("li", { class: "msg msg-quick" }, group));
  }

  function removeQuickReplies() {
    for (const node of ui.log.querySelectorAll(".msg-quick")) node.remove();
  }

  // --- polling --------------------------------------------------------------------------------

  function schedulePoll() {
    const wanted = state.mode === "human" || state.needsSync;
    if (!wanted) {
      clearTimeout(state.pollTimer);
      state.pollTimer = null;
      return;
    }
    if (state.pollTimer) return;
    const delay = state.needsSync ? POLL_RETRY_MS : POLL_HUMAN_MS;
    state.pollTimer = setTimeout(async () => {
      state.pollTimer = null;
      try { await sync(); } catch (e) { showError(e.message, e.kind); }
      schedulePoll();
    }, delay);
  }

  // --- composer: text, attachment, drag and drop ----------------------------------------------

  function attach(file) {
    if (!file) return;
    clearAttachment();
    state.file = file;
    const isImage = /^image\//.test(file.type);
    state.previewUrl = isImage ? URL.createObjectURL(file) : null;
    ui.preview.hidden = !isImage;
    ui.previewIcon.hidden = isImage;
    if (isImage) {
      ui.preview.src = state.previewUrl;
      ui.preview.alt = `Preview of ${file.name}`;
    } else {
      ui.preview.removeAttribute("src");
    }
    ui.attachmentName.textContent = `${file.name || "pasted image"} · ${formatBytes(file.size)}`;
    ui.attachment.hidden = false;
  }

  function clearAttachment({ keepPreviewUrl = false } = {}) {
    if (state.previewUrl && !keepPreviewUrl) URL.revokeObjectURL(state.previewUrl);
    state.file = null;
    state.previewUrl = null;
    ui.file.value = "";
    ui.preview.removeAttribute("src");
    ui.attachment.hidden = true;
  }

  function clearComposer(options) {
    ui.text.value = "";
    autosize();
    clearAttachment(options);
  }

  function restoreComposer(text, file, previewUrl) {
    ui.text.value = text || "";
    autosize();
    if (file) {
      if (previewUrl) URL.revokeObjectURL(previewUrl);
      attach(file);
    }
  }

  function autosize() {
    ui.text.style.height = "auto";
    ui.text.style.height = `${Math.min(ui.text.scrollHeight, 160)}px`;
  }

  function setBusy(busy) {
    ui.send.disabled = busy;
    ui.form.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function showTyping(text) {
    ui.typingText.textContent = text;
    ui.typing.hidden = false;
    toBottom();
  }

  function hideTyping() { ui.typing.hidden = true; }

  function showError(message, kind) {
    ui.errorText.textContent = message;
    ui.error.dataset.kind = kind || "";
    ui.error.hidden = false;
  }

  function hideError() { ui.error.hidden = true; ui.error.dataset.kind = ""; }

  function hideErrorOf(kind) { if (ui.error.dataset.kind === kind) hideError(); }

  function wireComposer() {
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      send(ui.text.value, state.file);
    });
    ui.text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        send(ui.text.value, state.file);
      }
    });
    ui.text.addEventListener("input", autosize);
    ui.text.addEventListener("paste", (event) => {
      const item = [...(event.clipboardData ? event.clipboardData.items : [])].find((i) => i.kind === "file");
      if (item) { event.preventDefault(); attach(item.getAsFile()); }
    });
    ui.file.addEventListener("change", () => attach(ui.file.files[0]));
    $("attachment-remove").addEventListener("click", () => { clearAttachment(); ui.text.focus(); });
    $("error-dismiss").addEventListener("click", hideError);
    $("new-conversation").addEventListener("click", newConversation);
  }

  function wireDragAndDrop() {
    const zone = document.getElementById("app");
    let depth = 0;
    const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
    zone.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth += 1;
      ui.overlay.hidden = false;
    });
    zone.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    zone.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) ui.overlay.hidden = true;
    });
    zone.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      ui.overlay.hidden = true;
      const files = [...event.dataTransfer.files];
      attach(files[0]);
      if (files.length > 1) showError(`One image per message: attached ${files[0].name}, left out ${files.length - 1} more.`, "files");
      ui.text.focus();
    });
  }

  function newConversation() {
    state.conversationId = newId("web");
    store.set(KEYS.conversation, state.conversationId);
    Object.assign(state, { seen: 0, rendered: new Set(), mode: "bot", humanReplied: false, needsSync: false });
    clearTimeout(state.pollTimer);
    state.pollTimer = null;
    ui.log.replaceChildren();
    ui.empty.hidden = false;
    ui.notice.hidden = true;
    hideError();
    showConversationId();
    ui.text.focus();
  }

  function showConversationId() {
    ui.conversationLabel.textContent = state.conversationId;
  }

  async function start() {
    wireComposer();
    wireDragAndDrop();
    showConversationId();
    try {
      await sync();
    } catch (e) {
      showError(e.message, e.kind);
    }
    ui.log.dataset.loaded = "true";
    ui.text.focus();
  }

  start();
})();
