// The embeddable live-support widget. A site adds one tag:
//
//   <script src="https://switchboard.example/widget.js" data-widget="wgt_…" async></script>
//
// and gets a launcher bubble that opens a conversation panel. The api serves this file at
// /widget.js inside one closure together with realtime.js (handed in as `SBRealtime`), so the
// host page gains a single global, `window.Switchboard`, and no CSS: everything lives in a
// shadow root, styled by /assets/widget.css loaded into that root only.
//
// What it does: asks the widget's config first (an origin the widget does not allow gets 403,
// and then nothing is drawn); opens a visitor session on the first message and keeps its id and
// token in localStorage (this site's storage), so a reload continues the conversation; streams
// the assistant's reply from the message's SSE events URL (fetch, since EventSource cannot send
// the session token); follows the session's gateway channels for messages, mode changes and
// typing, recovering missed publications by offset/epoch (kept in localStorage across loads)
// and reading the transcript route when the gateway says it could not recover.
(function () {
  "use strict";

  var script = document.currentScript || document.querySelector("script[data-widget]");
  if (!script || !script.getAttribute("data-widget")) return;
  var publicId = script.getAttribute("data-widget");
  var base = new URL(script.src, location.href).origin;
  var root = (window.Switchboard = window.Switchboard || {});
  root.widgets = root.widgets || {};
  if (root.widgets[publicId]) return; // the tag twice on one page
  var widget = (root.widgets[publicId] = { publicId: publicId, state: "loading" });

  var TYPING_SEND_INTERVAL = 2000; // at most one typing frame per 2 s while typing
  var TYPING_HIDE_AFTER = 6000; // an indicator is gone 6 s after its last frame
  var storageKey = "switchboard-widget:" + publicId;
  var apiBase = base + "/api/v1/widget/" + encodeURIComponent(publicId);

  // MARK: storage (this site's localStorage; a browser that refuses it gets a per-page session)

  var memory = {};
  function loadState() {
    try { return JSON.parse(localStorage.getItem(storageKey) || "null") || {}; } catch (ignored) { return memory; }
  }
  function saveState(patch) {
    var state = Object.assign(loadState(), patch);
    memory = state;
    try { localStorage.setItem(storageKey, JSON.stringify(state)); } catch (ignored) { /* memory only */ }
    return state;
  }
  function clearState() {
    memory = {};
    try { localStorage.removeItem(storageKey); } catch (ignored) { /* nothing kept */ }
  }

  // MARK: API calls

  function APIError(status, code, message) {
    var error = new Error(message || "request failed");
    error.status = status;
    error.code = code;
    return error;
  }

  async function call(method, path, body, idempotencyKey) {
    var state = loadState();
    var headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (state.sessionToken) headers.Authorization = "Bearer " + state.sessionToken;
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    var response = await fetch(apiBase + path, {
      method: method, headers: headers, mode: "cors", credentials: "omit",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    var data = null;
    try { data = await response.json(); } catch (ignored) { data = null; }
    if (!response.ok) {
      var detail = (data && data.error) || {};
      throw APIError(response.status, detail.code, detail.message);
    }
    return data;
  }

  function sessionPath(suffix) {
    return "/sessions/" + encodeURIComponent(loadState().sessionId) + suffix;
  }

  // MARK: DOM (text only ever goes in through textContent)

  function el(tag, attributes, children) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      var value = attributes[name];
      if (value === null || value === undefined || value === false) return;
      if (name === "text") node.textContent = String(value);
      else node.setAttribute(name, value === true ? "" : String(value));
    });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  var ui = {};
  var config = null;

  /** A speech bubble drawn as SVG (no font needed). */
  function bubbleIcon() {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "26");
    svg.setAttribute("height", "26");
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z");
    path.setAttribute("fill", "currentColor");
    svg.appendChild(path);
    return svg;
  }

  function build() {
    var host = el("div", { "data-switchboard-widget": publicId });
    // Keep the host element out of the page's layout; the shadow root draws everything.
    host.style.setProperty("all", "initial");
    var shadow = host.attachShadow({ mode: "open" });
    shadow.appendChild(el("link", { rel: "stylesheet", href: base + "/assets/widget.css" }));
    var title = config.name || "Chat";

    ui.launcher = el("button", {
      type: "button", class: "launcher", "data-testid": "sb-launcher", "aria-expanded": "false",
      "aria-controls": "sb-panel", "aria-label": "Open chat: " + title,
    }, [bubbleIcon()]);

    ui.mode = el("p", { class: "mode", "data-testid": "sb-mode", "data-mode": "ai", role: "status", text: "Assistant" });
    ui.close = el("button", { type: "button", class: "close", "aria-label": "Close chat", text: "×" });
    ui.log = el("ol", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Conversation" });
    ui.log.appendChild(el("li", { class: "greeting", text: config.greeting || "Hello! How can we help?" }));
    ui.typing = el("p", { class: "typing", "data-testid": "sb-typing", "aria-live": "polite", hidden: true });
    ui.input = el("textarea", {
      id: "sb-input", class: "input", "data-testid": "sb-input", rows: "2", maxlength: "4000",
      placeholder: "Write a message…",
    });
    ui.send = el("button", { type: "submit", class: "send", "data-testid": "sb-send", text: "Send" });
    ui.handoff = el("button", { type: "button", class: "handoff", "data-testid": "sb-handoff", text: "Talk to a person" });
    ui.error = el("p", { class: "error", role: "alert" });
    ui.restart = el("button", { type: "button", class: "restart", hidden: true, text: "Start a new conversation" });
    ui.form = el("form", { class: "composer" }, [
      el("label", { for: "sb-input", class: "visually-hidden", text: "Your message" }),
      ui.input, ui.send,
    ]);
    ui.panel = el("section", { id: "sb-panel", class: "panel", role: "dialog", "aria-label": title, hidden: true }, [
      el("header", { class: "head" }, [el("div", {}, [el("h2", { text: title }), ui.mode]), ui.close]),
      ui.log, ui.typing, ui.error, ui.form,
      el("div", { class: "actions" }, [ui.handoff, ui.restart]),
    ]);
    shadow.appendChild(el("div", { class: "widget" }, [ui.panel, ui.launcher]));
    document.body.appendChild(host);
    ui.host = host;

    ui.launcher.addEventListener("click", function () { setOpen(ui.panel.hidden); });
    ui.close.addEventListener("click", function () { setOpen(false); ui.launcher.focus(); });
    ui.panel.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { setOpen(false); ui.launcher.focus(); }
    });
    ui.form.addEventListener("submit", function (event) { event.preventDefault(); sendMessage(); });
    ui.input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); sendMessage(); }
    });
    ui.input.addEventListener("input", function () { if (ui.input.value.trim()) sendTyping(); });
    ui.handoff.addEventListener("click", askForHuman);
    ui.restart.addEventListener("click", function () {
      clearState();
      location.reload();
    });
  }

  function setOpen(open) {
    ui.panel.hidden = !open;
    ui.launcher.setAttribute("aria-expanded", open ? "true" : "false");
    ui.launcher.setAttribute("aria-label", (open ? "Close chat: " : "Open chat: ") + (config.name || "Chat"));
    saveState({ open: open });
    if (open) {
      ui.input.focus();
      scrollDown();
    }
  }

  function scrollDown() { ui.log.scrollTop = ui.log.scrollHeight; }

  function showError(text) { ui.error.textContent = text || ""; }

  // MARK: transcript

  var shown = {}; // message id → element
  var lastId = 0;
  var pending = null; // the assistant's reply being streamed: {element, text, messageId, replyId}

  function roleLabel(role, operatorName) {
    if (role === "visitor") return "You";
    if (role === "operator") return operatorName || "Operator";
    return "Assistant";
  }

  function messageElement(role, content, operatorName) {
    var text = el("p", { class: "text", text: content });
    return el("li", { class: "message " + role, "data-testid": "sb-message", "data-role": role }, [
      el("span", { class: "who", text: roleLabel(role, operatorName) }), text,
    ]);
  }

  function showMessage(message) {
    if (message.id && shown[message.id]) return shown[message.id];
    var element;
    if (message.role === "assistant" && pending && !pending.replyId) {
      // The stored reply of the turn being streamed: the streamed bubble becomes it.
      element = pending.element;
      element.querySelector(".text").textContent = message.content;
      element.removeAttribute("data-streaming");
      pending.replyId = message.id;
    } else {
      element = messageElement(message.role, message.content, message.operatorName);
      ui.log.appendChild(element);
    }
    if (message.id) {
      shown[message.id] = element;
      element.setAttribute("data-message-id", String(message.id));
      if (message.id > lastId) lastId = message.id;
    }
    if (message.role !== "visitor") hideTyping(message.role);
    scrollDown();
    return element;
  }

  function showNote(text) {
    ui.log.appendChild(el("li", { class: "note", text: text }));
    scrollDown();
  }

  /** Reads the transcript after the last message shown (all of it the first time). */
  async function syncTranscript() {
    if (!loadState().sessionId) return;
    var after = lastId;
    for (var page = 0; page < 50; page++) {
      var query = "?limit=100" + (after ? "&after=" + after : "");
      var result = await call("GET", sessionPath("/messages" + query));
      (result.data || []).forEach(showMessage);
      if (!result.nextCursor) break;
      after = Number(result.nextCursor);
    }
  }

  // MARK: mode

  var mode = "ai";
  function showMode(next, operatorName, announce) {
    var previous = mode;
    mode = next;
    saveState({ mode: next, operatorName: operatorName || null });
    ui.mode.setAttribute("data-mode", next);
    if (next === "human") ui.mode.textContent = "You are talking with " + (operatorName || "a person");
    else if (next === "waiting") ui.mode.textContent = "Waiting for a person to join…";
    else if (next === "closed") ui.mode.textContent = "This conversation has ended";
    else ui.mode.textContent = "Assistant";
    ui.handoff.hidden = next !== "ai";
    var closed = next === "closed";
    ui.input.disabled = closed;
    ui.send.disabled = closed;
    ui.restart.hidden = !closed;
    if (!announce || previous === next) return;
    if (next === "human") showNote((operatorName || "A person") + " joined the conversation.");
    else if (next === "ai" && (previous === "human" || previous === "waiting")) {
      showNote("You are back with the assistant. It answers from here on.");
    } else if (next === "waiting") showNote("We asked a person to join. You can keep writing.");
    else if (closed) showNote("The conversation was closed.");
  }

  // MARK: typing

  var lastTypingSent = 0;
  var typingTimers = {};
  var typingFrom = {};

  function sendTyping() {
    var now = Date.now();
    if (!realtime.typing || now - lastTypingSent < TYPING_SEND_INTERVAL) return;
    lastTypingSent = now;
    realtime.typing.publish({ type: "typing", ts: now, data: { from: "visitor", ts: now } }).catch(function () {});
  }

  function showTyping(from, name) {
    typingFrom[from] = name || true;
    clearTimeout(typingTimers[from]);
    typingTimers[from] = setTimeout(function () { hideTyping(from); }, TYPING_HIDE_AFTER);
    renderTyping();
  }

  function hideTyping(from) {
    clearTimeout(typingTimers[from]);
    delete typingFrom[from];
    renderTyping();
  }

  function renderTyping() {
    var who = typingFrom.operator ? (typeof typingFrom.operator === "string" ? typingFrom.operator : "The operator")
      : typingFrom.assistant ? "The assistant" : null;
    ui.typing.hidden = !who;
    ui.typing.setAttribute("data-from", typingFrom.operator ? "operator" : typingFrom.assistant ? "assistant" : "");
    ui.typing.textContent = who ? who + " is typing…" : "";
  }

  // MARK: the gateway

  var realtime = { client: null, session: null, typing: null };

  function connectRealtime(initial) {
    var state = loadState();
    var channels = initial.channels;
    saveState({ channels: channels });
    var client = new SBRealtime.Client(config.realtime.url, {
      token: initial.token,
      getToken: async function () {
        var fresh = await call("POST", sessionPath("/realtime-token"));
        return fresh.token;
      },
      name: "switchboard-widget",
    });
    var session = client.subscribe(channels.session, {
      onPublication: function (publication) {
        saveState({ offset: publication.offset, epoch: realtime.session.epoch });
        handleEvent(publication.data);
      },
    });
    // Continue where the last page load stopped: the gateway replays what was missed.
    if (state.epoch && typeof state.offset === "number") {
      session.offset = state.offset;
      session.epoch = state.epoch;
      session.recoverable = true;
    }
    session.on("subscribed", function (info) {
      saveState({ offset: session.offset, epoch: session.epoch });
      widget.recovered = info.recovered;
      // Whatever the gateway could not replay is read from the transcript.
      if (!info.recovered) syncTranscript().catch(function () {});
    });
    var typing = client.subscribe(channels.typing, {
      onPublication: function (publication) {
        var event = publication.data || {};
        var data = event.data || {};
        if (event.type !== "typing" || data.from === "visitor") return;
        showTyping(data.from, data.from === "operator" ? loadState().operatorName : null);
      },
    });
    client.on("connected", function () { widget.connected = true; ui.panel.setAttribute("data-connected", "true"); });
    client.on("disconnected", function () { widget.connected = false; ui.panel.setAttribute("data-connected", "false"); });
    realtime = { client: client, session: session, typing: typing };
    widget.realtime = client;
    client.connect();
  }

  function handleEvent(event) {
    if (!event || !event.type) return;
    var data = event.data || {};
    if (event.type === "message") {
      showMessage({ id: data.id, role: data.role, content: data.content, operatorName: data.operatorName });
    } else if (event.type === "mode") {
      showMode(data.mode, data.operatorName, true);
    } else if (event.type === "closed") {
      showMode("closed", null, true);
    }
  }

  // MARK: the session

  async function ensureSession() {
    if (loadState().sessionId) return;
    var created = await call("POST", "/sessions", {});
    clearState();
    saveState({ sessionId: created.sessionId, sessionToken: created.sessionToken, mode: "ai", open: !ui.panel.hidden });
    connectRealtime(created.realtime);
  }

  async function resumeSession() {
    var state = loadState();
    if (!state.sessionId || !state.sessionToken) return;
    showMode(state.mode || "ai", state.operatorName, false);
    try {
      await syncTranscript();
      var fresh = await call("POST", sessionPath("/realtime-token"));
      connectRealtime(fresh);
    } catch (error) {
      if (error.status === 401 || error.status === 404) {
        clearState(); // the session is gone: the next message starts a new one
        return;
      }
      showError("Could not reach the chat. It will try again when you send a message.");
    }
    if (state.turn) followTurn(state.turn.messageId, state.turn.events);
    if (state.open) setOpen(true);
  }

  var sending = false;
  // The key of a message whose answer did not arrive: sending the same text again reuses it, so
  // a message the server stored before the connection failed is not stored twice.
  var unsent = null;
  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
  }
  async function sendMessage() {
    var content = ui.input.value.trim();
    if (!content || sending || mode === "closed") return;
    sending = true;
    ui.send.disabled = true;
    showError("");
    if (!unsent || unsent.content !== content) unsent = { content: content, key: newKey() };
    try {
      await ensureSession();
      var accepted = await call("POST", sessionPath("/messages"), { content: content }, unsent.key);
      unsent = null;
      ui.input.value = "";
      showMessage({ id: accepted.messageId, role: "visitor", content: content });
      if (accepted.mode && accepted.mode !== mode) showMode(accepted.mode, loadState().operatorName, false);
      if (accepted.events) followTurn(accepted.messageId, accepted.events);
    } catch (error) {
      if (error.status === 409 && error.code === "session_closed") showMode("closed", null, true);
      else if (error.status === 429) showError("You are sending messages too fast. Please wait a moment.");
      else showError("The message could not be sent. Please try again.");
    } finally {
      sending = false;
      ui.send.disabled = mode === "closed";
      ui.input.focus();
    }
  }

  async function askForHuman() {
    showError("");
    ui.handoff.disabled = true;
    try {
      await ensureSession();
      var result = await call("POST", sessionPath("/handoff"));
      showMode(result.mode, loadState().operatorName, true);
    } catch (error) {
      showError("Could not ask for a person. Please try again.");
    } finally {
      ui.handoff.disabled = false;
    }
  }

  // MARK: the assistant's reply, streamed

  /** Reads the turn's SSE stream (from its start: a reload replays it) into a streaming bubble. */
  async function followTurn(messageId, eventsPath) {
    if (pending && pending.messageId === messageId) return;
    var element = messageElement("assistant", "");
    element.setAttribute("data-streaming", "true");
    pending = { element: element, text: "", messageId: messageId, replyId: null };
    var mine = pending;
    saveState({ turn: { messageId: messageId, events: eventsPath } });
    ui.log.appendChild(element);
    var lastEventId = null;
    var finished = false;
    for (var attempt = 0; attempt < 5 && !finished; attempt++) {
      try {
        finished = await readStream(eventsPath, lastEventId, function (event) {
          if (event.id) lastEventId = event.id;
          return onTurnEvent(mine, event);
        });
      } catch (error) {
        if (error && error.status && error.status < 500) break;
        await new Promise(function (resolve) { setTimeout(resolve, 1000 * (attempt + 1)); });
      }
    }
    if (pending === mine) endTurn(mine);
  }

  function onTurnEvent(turn, event) {
    var data = {};
    try { data = JSON.parse(event.data || "{}"); } catch (ignored) { data = {}; }
    if (event.event === "chunk" && !turn.replyId) {
      turn.text += data.text || "";
      turn.element.querySelector(".text").textContent = turn.text;
      hideTyping("assistant");
      scrollDown();
    } else if (event.event === "status" && data.stage === "restarted" && !turn.replyId) {
      turn.text = "";
      turn.element.querySelector(".text").textContent = "";
    } else if (event.event === "complete") {
      var stored = data.replyId && shown[data.replyId];
      if (stored && stored !== turn.element) turn.element.remove();
      else if (data.replyId) {
        turn.replyId = data.replyId;
        shown[data.replyId] = turn.element;
        turn.element.setAttribute("data-message-id", String(data.replyId));
        if (data.replyId > lastId) lastId = data.replyId;
      }
      turn.element.removeAttribute("data-streaming");
      endTurn(turn);
      return true;
    } else if (event.event === "error") {
      // Stopped by a takeover (or failed): the partial reply is not the answer.
      if (!turn.replyId) turn.element.remove();
      endTurn(turn);
      return true;
    }
    return false;
  }

  function endTurn(turn) {
    if (pending === turn) pending = null;
    var state = loadState();
    if (state.turn && state.turn.messageId === turn.messageId) saveState({ turn: null });
    if (!turn.replyId && !turn.text && turn.element.parentNode && turn.element.hasAttribute("data-streaming")) turn.element.remove();
  }

  /** Reads an SSE response with fetch; calls onEvent per event; answers true once onEvent does. */
  async function readStream(path, lastEventId, onEvent) {
    var headers = { Accept: "text/event-stream", Authorization: "Bearer " + loadState().sessionToken };
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    var response = await fetch(base + path, { headers: headers, mode: "cors", credentials: "omit" });
    if (!response.ok || !response.body) throw APIError(response.status, "stream_failed", "the reply stream failed");
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) return false;
      buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, "\n");
      var end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        var block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        var event = { id: null, event: "message", data: "" };
        var lines = [];
        block.split("\n").forEach(function (line) {
          if (!line || line[0] === ":") return;
          var colon = line.indexOf(":");
          var field = colon < 0 ? line : line.slice(0, colon);
          var value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "id") event.id = value;
          else if (field === "event") event.event = value;
          else if (field === "data") lines.push(value);
        });
        if (!lines.length) continue;
        event.data = lines.join("\n");
        if (onEvent(event)) {
          reader.cancel().catch(function () {});
          return true;
        }
      }
    }
  }

  // MARK: start

  async function start() {
    try {
      config = await call("GET", "/config");
    } catch (error) {
      // A refused origin gets no CORS headers, so the browser reports a network error (no status).
      widget.state = error.status === 403 || error.status === undefined ? "refused" : "failed";
      if (window.console) console.warn("Switchboard widget " + publicId + ": not loaded (" + (error.message || error.status) + ")");
      return;
    }
    build();
    widget.state = "ready";
    ui.host.setAttribute("data-state", "ready");
    await resumeSession();
  }

  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
