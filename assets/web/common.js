/* Helpers shared by the chat page and the console: DOM building without innerHTML, calls to
   the HTTP API with clear errors, and small storage helpers. No dependencies, no build step. */
"use strict";

(function (global) {
  /** Builds an element. `attrs`: attributes or properties (`text` sets textContent, `class`,
      `dataset`, `on<event>` listeners). Children: nodes or strings (added as text nodes). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (key in node && typeof value !== "string") node[key] = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** An error from the API or the network, with a message fit to show to the person. */
  class ApiError extends Error {
    constructor(message, status, kind) {
      super(message);
      this.status = status;   // HTTP status, or 0 when the server could not be reached
      this.kind = kind;       // "network" | "too_large" | "invalid" | "unavailable" | "auth" | "not_found" | "conflict" | "server"
    }
  }

  const KIND_BY_STATUS = { 400: "invalid", 401: "auth", 404: "not_found", 409: "conflict", 413: "too_large", 422: "invalid", 503: "unavailable" };

  function fallbackMessage(status) {
    switch (status) {
      case 413: return "The upload is too large for the server.";
      case 401: return "The server wants an agent token.";
      case 503: return "The service is unavailable for the moment; please try again shortly.";
      default: return `The server answered with an error (HTTP ${status}).`;
    }
  }

  /** Calls the API. `body`: a plain object (sent as JSON) or a FormData (multipart).
      Returns the parsed JSON; throws ApiError with the server's `error` message on failure. */
  async function api(method, path, { body, token, signal } = {}) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    let payload;
    if (body instanceof FormData) payload = body;  // the browser sets the multipart boundary
    else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body: payload, signal, cache: "no-store" });
    } catch (e) {
      if (e && e.name === "AbortError") throw e;
      throw new ApiError("Cannot reach the support service. Check your connection; we will keep trying.", 0, "network");
    }
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (!response.ok) {
      const message = data && typeof data.error === "string" && data.error ? data.error : fallbackMessage(response.status);
      throw new ApiError(message, response.status, KIND_BY_STATUS[response.status] || "server");
    }
    return data;
  }

  /** Fetches binary content (an image) with the same auth; returns an object URL. */
  async function blobUrl(path, { token } = {}) {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const response = await fetch(path, { headers });
    if (!response.ok) throw new ApiError(`image not available (HTTP ${response.status})`, response.status, "not_found");
    return URL.createObjectURL(await response.blob());
  }

  function newId(prefix) {
    const random = global.crypto && crypto.randomUUID ? crypto.randomUUID().replace(/-/g, "").slice(0, 20)
      : Math.random().toString(16).slice(2) + Date.now().toString(16);
    return `${prefix}-${random}`;
  }

  /** localStorage that keeps working (in memory) where storage is blocked. */
  const memory = {};
  const store = {
    get(key) { try { return global.localStorage.getItem(key); } catch (_) { return memory[key] ?? null; } },
    set(key, value) { try { global.localStorage.setItem(key, value); } catch (_) { memory[key] = value; } },
    remove(key) { try { global.localStorage.removeItem(key); } catch (_) { delete memory[key]; } },
  };

  /** "14:05" from epoch seconds, milliseconds or an ISO string; "" when absent or unreadable. */
  function timeOf(value) {
    if (!value) return "";  // absent, or 0 (a record's "never")
    let date;
    if (typeof value === "number") date = new Date(value > 1e12 ? value : value * 1000);
    else date = new Date(value);
    if (Number.isNaN(date.getTime())) return "";
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function formatBytes(n) {
    if (n < 1024) return `${n} bytes`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
    return `${(n / 1024 / 1024).toFixed(1)} MB`;
  }

  /** "merchant_name" -> "Merchant name". */
  function labelOf(key) {
    const text = String(key).replace(/[_-]+/g, " ").trim();
    return text ? text[0].toUpperCase() + text.slice(1) : text;
  }

  /** The sha256 of a turn's stored image, whatever the record calls it; null if none. */
  function imageShaOf(turn) {
    if (!turn) return null;
    const candidates = [turn.image_sha256, turn.image && turn.image.sha256, turn.image_id,
      typeof turn.image === "string" ? turn.image : null];
    for (const value of candidates) {
      if (typeof value === "string" && /^[0-9a-f]{64}$/.test(value)) return value;
    }
    return null;
  }

  /** A turn's seen-in-image facts ({kind, fields}) when the record carries them; null if not. */
  function imageFactsOf(turn) {
    if (!turn) return null;
    const image = turn.image && typeof turn.image === "object" ? turn.image : {};
    const kind = image.kind || turn.image_kind || null;
    let fields = image.fields || turn.image_fields || null;
    if (Array.isArray(fields)) fields = Object.fromEntries(fields.filter((f) => Array.isArray(f) && f.length === 2));
    if (!kind && !(fields && Object.keys(fields).length)) return null;
    // `fields: null` means the record does not keep them (not "nothing was read")
    return { kind, kind_confidence: image.kind_confidence, fields };
  }

  global.Support = { el, api, blobUrl, ApiError, newId, store, timeOf, formatBytes, labelOf, imageShaOf, imageFactsOf };
})(window);
