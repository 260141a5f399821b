// The web chat: lists the signed-in user's chats, opens one, sends a message and streams the
// reply over the turn's server-sent events (GET /api/v1/messages/{id}/events), with a card per
// task of the turn's plan and a stop button. The turn being streamed is kept in sessionStorage
// (its last event id, the text and cards so far), so a reload resumes the stream right after
// the last event seen (?lastEventId=...) instead of losing it. Files picked with the attach
// control are uploaded at once (POST /api/v1/files), shown as chips with their status until
// indexed, and sent with the next message as `fileIds`; an answer drawn from the user's
// documents lists its sources. No message text or file name is ever parsed as markup: every
// string reaches the page through textContent.
(function () {
  "use strict";
  var SB = window.SB;
  var TURN_KEY = "sb.chat.turn";
  var state = { chatId: null, turn: null, source: null, node: null, leaving: false, files: [] };
  var FILE_POLL_MS = 1000;
  var FILE_DONE = ["indexed", "failed"];

  var list = document.getElementById("chat-list");
  var messages = document.getElementById("messages");
  var title = document.getElementById("chat-title");
  var input = document.getElementById("chat-input");
  var send = document.getElementById("chat-send");
  var stop = document.getElementById("stop");
  var statusLine = document.getElementById("status");
  var attach = document.getElementById("chat-attach");
  var attached = document.getElementById("attached");

  function saveTurn() {
    if (state.turn) sessionStorage.setItem(TURN_KEY, JSON.stringify(state.turn));
    else sessionStorage.removeItem(TURN_KEY);
  }

  function storedTurn() {
    try { return JSON.parse(sessionStorage.getItem(TURN_KEY) || "null"); } catch (ignored) { return null; }
  }

  function setStatus(text) { statusLine.textContent = text || ""; }

  // MARK: chats

  async function loadChats() {
    var page = await SB.api("GET", "/api/v1/chats?limit=50");
    list.replaceChildren();
    page.data.forEach(function (chat) {
      var button = SB.el("button", {
        type: "button", "data-chat-id": chat.id, "data-testid": "chat-item",
        "aria-current": chat.id === state.chatId ? "page" : null, text: chat.title,
      });
      button.addEventListener("click", function () { openChat(chat.id, chat.title); });
      list.appendChild(SB.el("li", {}, [button]));
    });
  }

  function markCurrent() {
    list.querySelectorAll("button[data-chat-id]").forEach(function (button) {
      if (Number(button.getAttribute("data-chat-id")) === state.chatId) button.setAttribute("aria-current", "page");
      else button.removeAttribute("aria-current");
    });
  }

  function newChat() {
    closeStream();
    state.chatId = null;
    title.textContent = "New chat";
    messages.replaceChildren();
    markCurrent();
    input.focus();
  }

  async function openChat(id, chatTitle) {
    if (state.turn && state.turn.chatId !== id) closeStream();
    state.chatId = id;
    title.textContent = chatTitle || "Chat " + id;
    markCurrent();
    var page = await SB.api("GET", "/api/v1/chats/" + id + "/messages?limit=100");
    messages.replaceChildren();
    var pending = storedTurn();
    page.data.slice().reverse().forEach(function (message) {
      var node = renderMessage(message.role, message.content);
      if (message.role === "user" && message.status === "failed") addNote(node, "failed: " + (message.error || "no reply"));
      if (message.role === "user" && message.status === "cancelled") addNote(node, "stopped");
    });
    if (pending && pending.chatId === id) {
      var asked = page.data.find(function (message) { return message.id === pending.messageId; });
      var finished = asked && ["completed", "failed", "cancelled"].indexOf(asked.status) >= 0;
      if (finished) {
        state.turn = null;
        saveTurn();
      } else {
        resume(pending);
      }
    }
  }

  // MARK: messages

  function renderMessage(role, text) {
    var content = SB.el("div", { class: "content", text: text });
    var node = SB.el("li", { class: "message " + role, "data-testid": "message", "data-role": role }, [
      SB.el("span", { class: "visually-hidden", text: role === "user" ? "You said:" : "Assistant:" }),
      content,
    ]);
    messages.appendChild(node);
    node.scrollIntoView({ block: "end" });
    return node;
  }

  function addNote(node, text) {
    node.appendChild(SB.el("p", { class: "note", text: text }));
  }

  function taskList(node) {
    var tasks = node.querySelector("ul.tasks");
    if (!tasks) {
      tasks = SB.el("ul", { class: "tasks", "aria-label": "Tasks of this answer" });
      node.insertBefore(tasks, node.querySelector(".content"));
    }
    return tasks;
  }

  function renderTask(node, task) {
    var tasks = taskList(node);
    var card = tasks.querySelector('[data-node-id="' + CSS.escape(task.id) + '"]');
    if (!card) {
      card = SB.el("li", { class: "task", "data-testid": "task-card", "data-node-id": task.id }, [
        SB.el("span", { class: "capability", text: task.capability }),
        SB.el("span", { class: "state" }),
      ]);
      tasks.appendChild(card);
    }
    card.setAttribute("data-state", task.state);
    card.querySelector(".state").textContent = task.state + (task.error ? ": " + task.error : "");
  }

  function renderSources(node, sources) {
    node.querySelectorAll(".sources, .sources-title").forEach(function (old) { old.remove(); });
    if (!sources || !sources.length) return;
    var items = sources.map(function (source) {
      return SB.el("li", {
        "data-testid": "source", "data-file-id": source.fileId,
        text: source.name + (source.position ? " (" + source.position + ")" : ""),
      });
    });
    node.appendChild(SB.el("p", { class: "sources-title", "aria-hidden": "true", text: "Sources" }));
    node.appendChild(SB.el("ul", { class: "sources", "data-testid": "sources", "aria-label": "Sources of this answer" }, items));
  }

  // MARK: attached files

  // Each file keeps its chip: a status change updates it in place (screen readers and tests keep
  // hold of the same element).
  function renderFiles() {
    state.files.forEach(function (file) {
      if (!file.node) {
        var remove = SB.el("button", { type: "button", "aria-label": "Remove " + file.name, text: "×" });
        remove.addEventListener("click", function () {
          file.removed = true;
          state.files = state.files.filter(function (other) { return other !== file; });
          renderFiles();
        });
        file.node = SB.el("li", { class: "file-chip", "data-testid": "file-chip" }, [
          SB.el("span", { class: "file-name" }),
          SB.el("span", { class: "file-status", "data-testid": "file-status" }),
          remove,
        ]);
      }
      if (file.id) file.node.setAttribute("data-file-id", file.id);
      file.node.setAttribute("data-status", file.status);
      file.node.querySelector(".file-name").textContent = file.name;
      file.node.querySelector(".file-status").textContent = file.status + (file.error ? ": " + file.error : "");
      if (file.node.parentNode !== attached) attached.appendChild(file.node);
    });
    Array.prototype.slice.call(attached.children).forEach(function (node) {
      if (!state.files.some(function (file) { return file.node === node; })) node.remove();
    });
  }

  async function watchFile(file) {
    while (!file.removed && file.id && FILE_DONE.indexOf(file.status) < 0) {
      await new Promise(function (resolve) { setTimeout(resolve, FILE_POLL_MS); });
      try {
        var current = await SB.api("GET", "/api/v1/files/" + file.id);
        file.status = current.status;
        file.error = current.error;
      } catch (error) {
        file.status = "failed";
        file.error = error.message;
      }
      renderFiles();
    }
  }

  async function uploadFile(picked) {
    var file = { id: null, name: picked.name, status: "uploading", error: null, removed: false };
    state.files.push(file);
    renderFiles();
    try {
      var stored = await SB.upload("/api/v1/files", picked);
      file.id = stored.id;
      file.name = stored.name;
      file.status = stored.status;
    } catch (error) {
      file.status = "failed";
      file.error = error.message;
    }
    renderFiles();
    watchFile(file);
  }

  // MARK: the turn's stream

  function assistantNode(turn) {
    var node = renderMessage("assistant", turn.text || "");
    node.setAttribute("aria-busy", "true");
    (turn.plan || []).forEach(function (task) { renderTask(node, task); });
    return node;
  }

  function start(turn) {
    state.turn = turn;
    saveTurn();
    state.node = assistantNode(turn);
    stop.hidden = false;
    send.disabled = true;
    openStream();
  }

  function resume(turn) {
    setStatus("Resuming the answer…");
    start(turn);
  }

  function openStream() {
    var turn = state.turn;
    var url = "/api/v1/messages/" + turn.messageId + "/events";
    if (turn.lastEventId) url += "?lastEventId=" + encodeURIComponent(turn.lastEventId);
    var source = new EventSource(url);
    state.source = source;

    function track(event) {
      if (event.lastEventId) turn.lastEventId = event.lastEventId;
    }
    function content() { return state.node.querySelector(".content"); }

    source.addEventListener("status", function (event) {
      track(event);
      var data = JSON.parse(event.data);
      if (data.stage === "restarted") {
        turn.text = "";
        content().textContent = "";
      }
      setStatus(data.stage === "generating" ? "Writing…" : data.stage + "…");
      saveTurn();
    });
    source.addEventListener("plan", function (event) {
      track(event);
      var data = JSON.parse(event.data);
      turn.plan = data.nodes.map(function (node) { return { id: node.id, capability: node.capability, state: "pending" }; });
      turn.plan.forEach(function (task) { renderTask(state.node, task); });
      saveTurn();
    });
    source.addEventListener("task_update", function (event) {
      track(event);
      var data = JSON.parse(event.data);
      var task = (turn.plan || []).find(function (candidate) { return candidate.id === data.node_id; });
      if (!task) {
        task = { id: data.node_id, capability: data.node_id, state: data.state };
        turn.plan = (turn.plan || []).concat([task]);
      }
      task.state = data.state;
      task.error = data.error;
      renderTask(state.node, task);
      saveTurn();
    });
    source.addEventListener("task_chunk", track);
    source.addEventListener("task_file", track);
    source.addEventListener("chunk", function (event) {
      track(event);
      turn.text = (turn.text || "") + JSON.parse(event.data).text;
      content().textContent = turn.text;
      saveTurn();
    });
    source.addEventListener("complete", function (event) {
      track(event);
      var data = JSON.parse(event.data || "{}");
      renderSources(state.node, data.sources);
      finish("");
    });
    source.addEventListener("error", function (event) {
      if (event.data) {
        track(event);
        var data = JSON.parse(event.data);
        addNote(state.node, data.code === "cancelled" ? "Stopped." : "The answer failed: " + data.message);
        finish(data.code === "cancelled" ? "Stopped." : "");
        return;
      }
      // A dropped connection: EventSource reconnects by itself with Last-Event-ID unless the
      // server told it to stop (204, the end was seen already). A page being left closes its
      // stream too: the turn stays stored so the next load resumes it.
      if (state.leaving) return;
      if (source.readyState === EventSource.CLOSED) finish("");
      else setStatus("Reconnecting…");
    });
  }

  function finish(text) {
    if (state.source) state.source.close();
    state.source = null;
    if (state.node) state.node.removeAttribute("aria-busy");
    state.turn = null;
    saveTurn();
    stop.hidden = true;
    send.disabled = false;
    setStatus(text);
    loadChats().catch(function () {});
  }

  function closeStream() {
    if (state.source) state.source.close();
    state.source = null;
    stop.hidden = true;
    send.disabled = false;
  }

  // MARK: sending and stopping

  async function submit(event) {
    if (event) event.preventDefault();
    var text = input.value.trim();
    if (!text || state.turn) return;
    if (state.files.some(function (file) { return file.status === "uploading"; })) {
      setStatus("Wait for the files to finish uploading.");
      return;
    }
    var files = state.files.filter(function (file) { return file.id && file.status !== "failed"; });
    var body = { content: text };
    if (files.length) body.fileIds = files.map(function (file) { return file.id; });
    send.disabled = true;
    setStatus("Sending…");
    try {
      var accepted = state.chatId
        ? await SB.api("POST", "/api/v1/chats/" + state.chatId + "/messages", body)
        : await SB.api("POST", "/api/v1/messages", body);
      input.value = "";
      state.files.forEach(function (file) { file.removed = true; });
      state.files = [];
      renderFiles();
      if (!state.chatId) {
        state.chatId = accepted.chatId;
        title.textContent = text.split("\n")[0].slice(0, 80);
        loadChats().catch(function () {});
      }
      var mine = renderMessage("user", text);
      if (files.length) {
        mine.appendChild(SB.el("p", {
          class: "files", "data-testid": "message-files",
          text: "Attached: " + files.map(function (file) { return file.name; }).join(", "),
        }));
      }
      start({ messageId: accepted.messageId, chatId: accepted.chatId, lastEventId: null, text: "", plan: [] });
    } catch (error) {
      send.disabled = false;
      setStatus(error.status === 429 ? "Slow down: " + error.message : "Not sent: " + error.message);
    }
  }

  async function stopTurn() {
    if (!state.turn) return;
    setStatus("Stopping…");
    try {
      await SB.api("POST", "/api/v1/messages/" + state.turn.messageId + "/stop");
    } catch (error) {
      if (error.status !== 409) setStatus("Could not stop: " + error.message);
    }
  }

  window.addEventListener("pagehide", function () { state.leaving = true; });
  window.addEventListener("beforeunload", function () { state.leaving = true; });
  document.getElementById("composer").addEventListener("submit", submit);
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) submit(event);
  });
  stop.addEventListener("click", stopTurn);
  attach.addEventListener("change", function () {
    Array.prototype.slice.call(attach.files || []).forEach(uploadFile);
    attach.value = "";
  });
  document.getElementById("new-chat").addEventListener("click", newChat);

  SB.signIn(async function () {
    await loadChats();
    var pending = storedTurn();
    if (pending) {
      var item = list.querySelector('button[data-chat-id="' + pending.chatId + '"]');
      await openChat(pending.chatId, item ? item.textContent : null);
    }
    input.focus();
  });
})();
