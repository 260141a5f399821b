// The operator console: after sign-in, the live list of the sessions of every widget the user
// owns or operates (waiting ones first), kept current by the `widget:operators.{id}`
// notifications on the realtime gateway; an open session's transcript followed live on its
// `widget:session.…` channel; take over, reply, hand back and close; typing both ways and the
// visitor's presence on the session's `widgettyping:…` channel. The API is called with the
// sign-in cookie and the CSRF token (common.js); the gateway token comes from
// POST /api/v1/realtime/token. After a reconnect the gateway replays what was missed
// (offset/epoch); when it cannot, the list and the transcript are read again from the API.
(function () {
  "use strict";
  var SB = window.SB;
  var TYPING_SEND_INTERVAL = 2000;
  var TYPING_HIDE_AFTER = 6000;
  var MODE_ORDER = { waiting: 0, human: 1, ai: 2, closed: 3 };
  var MODE_LABEL = { waiting: "Waiting", human: "Human", ai: "AI", closed: "Closed" };

  var list = document.getElementById("session-list");
  var noSessions = document.getElementById("no-sessions");
  var connection = document.getElementById("connection");
  var title = document.getElementById("session-title");
  var empty = document.getElementById("session-empty");
  var view = document.getElementById("session-view");
  var modeBadge = document.getElementById("session-mode");
  var presence = document.getElementById("presence");
  var takeover = document.getElementById("takeover");
  var handback = document.getElementById("handback");
  var closeButton = document.getElementById("close-session");
  var transcript = document.getElementById("transcript");
  var typing = document.getElementById("typing");
  var form = document.getElementById("reply-form");
  var input = document.getElementById("reply-input");
  var send = document.getElementById("reply-send");
  var statusLine = document.getElementById("console-status");

  var me = null;
  var widgets = {}; // id → widget
  var sessions = {}; // sessionId → session (with widgetId)
  var client = null;
  var open = null; // {sessionId, widget, shown: {id → element}, lastId, sub, typingSub, visitors: {client → true}}
  var refreshTimers = {};
  var typingTimer = null;
  var lastTypingSent = 0;

  function setStatus(text) { statusLine.textContent = text || ""; }

  function sessionPath(session, suffix) {
    return "/api/v1/widgets/" + session.widgetId + "/sessions/" + encodeURIComponent(session.sessionId) + (suffix || "");
  }

  // MARK: the list

  async function loadWidgets() {
    var cursor = null;
    do {
      var page = await SB.api("GET", "/api/v1/widgets?limit=100" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
      page.data.forEach(function (widget) { widgets[widget.id] = widget; });
      cursor = page.nextCursor;
    } while (cursor);
    await Promise.all(Object.keys(widgets).map(function (id) { return loadSessions(widgets[id]); }));
  }

  async function loadSessions(widget) {
    var page = await SB.api("GET", "/api/v1/widgets/" + widget.id + "/sessions?limit=100");
    page.data.forEach(function (session) {
      session.widgetId = widget.id;
      if (session.closed) session.mode = "closed";
      sessions[session.sessionId] = Object.assign(sessions[session.sessionId] || {}, session);
    });
    renderList();
  }

  /** Reads a widget's sessions again soon (several notifications at once make one request). */
  function refreshSoon(widgetId) {
    clearTimeout(refreshTimers[widgetId]);
    refreshTimers[widgetId] = setTimeout(function () {
      if (widgets[widgetId]) loadSessions(widgets[widgetId]).catch(function () {});
    }, 150);
  }

  function ordered() {
    return Object.keys(sessions).map(function (id) { return sessions[id]; }).sort(function (a, b) {
      var byMode = (MODE_ORDER[a.mode] || 0) - (MODE_ORDER[b.mode] || 0);
      if (byMode) return byMode;
      return String(b.lastActivityAt || b.createdAt || "").localeCompare(String(a.lastActivityAt || a.createdAt || ""));
    });
  }

  var entries = {}; // sessionId → its list entry, kept and updated in place (a click is never lost to a redraw)

  function renderList() {
    ordered().forEach(function (session, index) {
      var entry = entries[session.sessionId];
      if (!entry) {
        entry = {
          badge: SB.el("span", {}), name: SB.el("span", { class: "widget-name" }), preview: SB.el("span", { class: "preview" }),
        };
        entry.button = SB.el("button", {
          type: "button", class: "session", "data-testid": "session-item", "data-session-id": session.sessionId,
        }, [entry.badge, entry.name, entry.preview]);
        entry.button.addEventListener("click", function () { openSession(session.sessionId); });
        entry.li = SB.el("li", {}, [entry.button]);
        entries[session.sessionId] = entry;
      }
      var widget = widgets[session.widgetId] || {};
      var last = session.lastMessage;
      var who = last ? (last.role === "visitor" ? "Visitor: " : last.role === "operator" ? "You: " : "AI: ") : "";
      entry.badge.className = "badge mode-" + session.mode;
      entry.badge.textContent = MODE_LABEL[session.mode] || session.mode;
      entry.name.textContent = widget.name || "";
      entry.preview.textContent = who + (last ? last.content : "No messages yet");
      entry.button.setAttribute("data-mode", session.mode);
      if (open && open.sessionId === session.sessionId) entry.button.setAttribute("aria-current", "page");
      else entry.button.removeAttribute("aria-current");
      if (list.children[index] !== entry.li) list.insertBefore(entry.li, list.children[index] || null);
    });
    noSessions.hidden = list.children.length > 0;
  }

  function onNotification(widgetId, event) {
    if (!event || event.type !== "notification") return;
    var data = event.data || {};
    var session = sessions[data.sessionId] || (sessions[data.sessionId] = {
      sessionId: data.sessionId, widgetId: widgetId, mode: "ai", createdAt: new Date().toISOString(),
    });
    if (data.kind === "handoff") session.mode = "waiting";
    if (data.kind === "mode_changed") {
      // Another operator (or this one, in another tab) took over, handed back or closed it.
      session.mode = data.closed ? "closed" : data.mode;
      session.operatorName = data.operatorName || null;
      if (open && open.sessionId === data.sessionId) showSessionState();
    }
    if (data.preview && data.kind === "new_message") session.lastMessage = { role: "visitor", content: data.preview };
    session.lastActivityAt = new Date(event.ts || Date.now()).toISOString();
    renderList();
    refreshSoon(widgetId);
  }

  // MARK: the gateway

  async function connectRealtime() {
    var first = await SB.api("POST", "/api/v1/realtime/token");
    client = new SBRealtime.Client(first.url, {
      token: first.token,
      getToken: async function () { return (await SB.api("POST", "/api/v1/realtime/token")).token; },
      name: "switchboard-console",
    });
    client.on("connected", function () {
      connection.textContent = "Live";
      connection.setAttribute("data-state", "connected");
    });
    client.on("disconnected", function () {
      connection.textContent = "Reconnecting…";
      connection.setAttribute("data-state", "disconnected");
    });
    Object.keys(widgets).forEach(function (id) {
      var sub = client.subscribe("widget:operators." + id, {
        onPublication: function (publication) { onNotification(Number(id), publication.data); },
      });
      // A reconnect the gateway could not fill in: read the list again.
      sub.on("subscribed", function (info) { if (info.wasRecovering && !info.recovered) loadSessions(widgets[id]).catch(function () {}); });
    });
    client.connect();
  }

  // MARK: the open session

  async function openSession(sessionId) {
    var session = sessions[sessionId];
    if (!session) return;
    closeOpen();
    var widget = widgets[session.widgetId];
    open = { sessionId: sessionId, widget: widget, shown: {}, lastId: 0, visitors: {} };
    var current = open;
    title.textContent = "Visitor " + sessionId.slice(-8) + " · " + (widget ? widget.name : "");
    empty.hidden = true;
    view.hidden = false;
    transcript.replaceChildren();
    hideTyping();
    setPresence();
    showSessionState();
    renderList();
    setStatus("");
    try {
      await syncTranscript(current);
    } catch (error) {
      setStatus("Could not read the transcript: " + error.message);
    }
    if (open !== current || !client) return;
    var channel = "widget:session." + widget.publicId + "." + sessionId;
    current.sub = client.subscribe(channel, {
      onPublication: function (publication) { if (open === current) onSessionEvent(current, publication.data); },
    });
    current.sub.on("subscribed", function (info) {
      if (open === current && !info.recovered) syncTranscript(current).catch(function () {});
    });
    current.typingSub = client.subscribe("widgettyping:" + widget.publicId + "." + sessionId, {
      onPublication: function (publication) { if (open === current) onTyping(publication.data); },
      onJoin: function (info) { if (open === current && isVisitor(info)) { current.visitors[info.client] = true; setPresence(); } },
      onLeave: function (info) { if (open === current && isVisitor(info)) { delete current.visitors[info.client]; setPresence(); } },
    });
    current.typingSub.on("subscribed", function () {
      current.typingSub.presence().then(function (clients) {
        if (open !== current) return;
        current.visitors = {};
        Object.keys(clients).forEach(function (id) { if (isVisitor(clients[id])) current.visitors[id] = true; });
        setPresence();
      }).catch(function () { /* presence not offered: leave it unknown */ });
    });
  }

  function closeOpen() {
    if (!open) return;
    if (open.sub) client.unsubscribe(open.sub.channel).catch(function () {});
    if (open.typingSub) client.unsubscribe(open.typingSub.channel).catch(function () {});
    open = null;
  }

  function isVisitor(info) { return !!(info && String(info.user || "").indexOf("visitor:") === 0); }

  function setPresence() {
    var online = !!(open && Object.keys(open.visitors).length);
    presence.textContent = online ? "Visitor online" : "Visitor offline";
    presence.setAttribute("data-online", online ? "true" : "false");
  }

  function showSessionState() {
    var session = open && sessions[open.sessionId];
    if (!session) return;
    var text = MODE_LABEL[session.mode] || session.mode;
    if (session.mode === "human") text += " · " + (session.operatorName || "an operator");
    modeBadge.textContent = text;
    modeBadge.className = "badge mode-" + session.mode;
    modeBadge.setAttribute("data-mode", session.mode);
    var closed = session.mode === "closed";
    takeover.disabled = closed || (session.mode === "human" && session.operatorId === me.id);
    handback.disabled = closed || session.mode === "ai";
    closeButton.disabled = closed;
    var mine = session.mode === "human";
    input.disabled = !mine;
    send.disabled = !mine;
    input.placeholder = mine ? "Write a reply; Enter sends" : closed ? "The session is closed" : "Take over to reply";
  }

  async function syncTranscript(current) {
    var session = sessions[current.sessionId];
    var after = current.lastId;
    for (var page = 0; page < 50; page++) {
      var result = await SB.api("GET", sessionPath(session, "/messages?limit=100" + (after ? "&after=" + after : "")));
      if (open !== current) return;
      result.data.forEach(function (message) { showMessage(current, message); });
      if (!result.nextCursor) break;
      after = Number(result.nextCursor);
    }
  }

  function showMessage(current, message) {
    if (message.id && current.shown[message.id]) return;
    var label = message.role === "visitor" ? "Visitor" : message.role === "operator" ? (message.operatorName || "Operator") : "AI";
    var node = SB.el("li", {
      class: "message " + message.role, "data-testid": "message", "data-role": message.role, "data-message-id": message.id,
    }, [SB.el("span", { class: "who", text: label }), SB.el("div", { class: "content", text: message.content })]);
    if (message.delivered === false) node.appendChild(SB.el("p", { class: "note", text: "Not delivered: the session was taken over." }));
    transcript.appendChild(node);
    transcript.scrollTop = transcript.scrollHeight;
    if (message.id) {
      current.shown[message.id] = node;
      if (message.id > current.lastId) current.lastId = message.id;
    }
    if (message.role === "visitor" || message.role === "assistant") hideTyping();
  }

  function onSessionEvent(current, event) {
    if (!event) return;
    var data = event.data || {};
    var session = sessions[current.sessionId];
    if (event.type === "message") {
      showMessage(current, { id: data.id, role: data.role, content: data.content, operatorName: data.operatorName });
      session.lastMessage = { role: data.role, content: data.content };
      session.lastActivityAt = new Date(event.ts || Date.now()).toISOString();
      renderList();
    } else if (event.type === "mode") {
      session.mode = data.mode;
      session.operatorName = data.operatorName || null;
      refreshSoon(session.widgetId); // the operator's id comes with the list
      transcript.appendChild(SB.el("li", { class: "note", text: modeNote(data) }));
      showSessionState();
      renderList();
    } else if (event.type === "closed") {
      session.mode = "closed";
      session.closed = true;
      transcript.appendChild(SB.el("li", { class: "note", text: "The session was closed." }));
      showSessionState();
      renderList();
    }
  }

  function modeNote(data) {
    if (data.mode === "human") return (data.operatorName || "An operator") + " took over.";
    if (data.mode === "waiting") return "The visitor asked for a person.";
    return "Handed back to the AI.";
  }

  // MARK: typing

  function onTyping(event) {
    if (!event || event.type !== "typing") return;
    var from = (event.data || {}).from;
    if (from !== "visitor" && from !== "assistant") return;
    typing.textContent = from === "visitor" ? "Visitor is typing…" : "AI is writing…";
    typing.setAttribute("data-from", from);
    typing.hidden = false;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, TYPING_HIDE_AFTER);
  }

  function hideTyping() {
    clearTimeout(typingTimer);
    typing.hidden = true;
    typing.textContent = "";
  }

  function sendTyping() {
    var now = Date.now();
    if (!open || !open.typingSub || now - lastTypingSent < TYPING_SEND_INTERVAL) return;
    lastTypingSent = now;
    open.typingSub.publish({ type: "typing", ts: now, data: { from: "operator", ts: now } }).catch(function () {});
  }

  // MARK: actions

  async function act(suffix, doneText) {
    if (!open) return;
    var session = sessions[open.sessionId];
    setStatus("");
    try {
      var changed = await SB.api("POST", sessionPath(session, suffix));
      changed.widgetId = session.widgetId;
      if (changed.closed) changed.mode = "closed";
      Object.assign(session, changed);
      showSessionState();
      renderList();
      setStatus(doneText);
      if (changed.mode === "human") input.focus();
    } catch (error) {
      setStatus(error.message);
    }
  }

  async function reply() {
    var content = input.value.trim();
    if (!open || !content) return;
    var current = open;
    var session = sessions[current.sessionId];
    send.disabled = true;
    try {
      var message = await SB.api("POST", sessionPath(session, "/messages"), { content: content });
      input.value = "";
      if (open === current) showMessage(current, message);
      setStatus("");
    } catch (error) {
      setStatus(error.message);
    } finally {
      showSessionState();
      input.focus();
    }
  }

  takeover.addEventListener("click", function () { act("/takeover", "You took over: the AI is silent until you hand back."); });
  handback.addEventListener("click", function () { act("/handback", "Handed back: the AI answers again."); });
  closeButton.addEventListener("click", function () { act("/close", "The session is closed."); });
  form.addEventListener("submit", function (event) { event.preventDefault(); reply(); });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); reply(); }
  });
  input.addEventListener("input", function () { if (input.value.trim()) sendTyping(); });

  SB.signIn(async function (session) {
    me = session.user;
    try {
      await loadWidgets();
      if (Object.keys(widgets).length === 0) {
        connection.textContent = "You operate no widget yet.";
        return;
      }
      await connectRealtime();
    } catch (error) {
      connection.textContent = "Could not load the sessions: " + error.message;
    }
  });
})();
