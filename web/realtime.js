// A small browser client for Centrifugo's client protocol v2 (JSON over WebSocket), as the
// Switchboard gateway speaks it: connect with a token, subscribe with recovery (offset/epoch),
// publish, presence, history, ping/pong, reconnect with backoff and jitter, and token refresh
// before `exp` through a callback. One file, no dependencies; it defines window.SBRealtime only.
//
//   var client = new SBRealtime.Client("ws://host:8000/connection/websocket", {
//     token: "<connection JWT>",
//     getToken: function () { return fetch(...).then(...) },   // a new token when it expires
//   });
//   var sub = client.subscribe("chat:room", { onPublication: function (pub) { ... } });
//   client.connect();
//   sub.publish({ text: "hi" }); client.presence("chat:room").then(...);
(function (global) {
  "use strict";

  // Close codes after which the client stays disconnected (Centrifugo: 3500-3999).
  function isTerminal(code) { return code >= 3500 && code <= 3999; }

  /** Backoff with jitter: half the exponential step plus a random share of the other half. */
  function backoff(attempt, min, max) {
    var step = Math.min(max, min * Math.pow(2, Math.min(attempt, 16)));
    return Math.floor(step / 2 + Math.random() * (step / 2));
  }

  function Emitter() { this._handlers = {}; }
  Emitter.prototype.on = function (name, handler) {
    (this._handlers[name] = this._handlers[name] || []).push(handler);
    return this;
  };
  Emitter.prototype.off = function (name, handler) {
    this._handlers[name] = (this._handlers[name] || []).filter(function (h) { return h !== handler; });
    return this;
  };
  Emitter.prototype._emit = function (name, value) {
    (this._handlers[name] || []).slice().forEach(function (handler) {
      try { handler(value); } catch (error) { if (global.console) console.error(error); }
    });
  };

  /** A channel subscription; it survives reconnects and resubscribes with recovery. */
  function Subscription(client, channel, options) {
    Emitter.call(this);
    this.client = client;
    this.channel = channel;
    this.options = options || {};
    this.state = "unsubscribed";
    this.offset = null;
    this.epoch = null;
    this.recoverable = false;
    if (this.options.onPublication) this.on("publication", this.options.onPublication);
    if (this.options.onSubscribed) this.on("subscribed", this.options.onSubscribed);
    if (this.options.onJoin) this.on("join", this.options.onJoin);
    if (this.options.onLeave) this.on("leave", this.options.onLeave);
  }
  Subscription.prototype = Object.create(Emitter.prototype);

  Subscription.prototype._subscribeCommand = async function () {
    var request = { channel: this.channel };
    if (this.options.getToken) request.token = await this.options.getToken(this.channel);
    else if (this.options.token) request.token = this.options.token;
    if (this.options.data !== undefined) request.data = this.options.data;
    // Join/leave pushes come only when asked for (and the namespace allows them).
    if (this.options.joinLeave || this.options.onJoin || this.options.onLeave) request.join_leave = true;
    if (this.recoverable && this.offset !== null && this.epoch !== null) {
      request.recover = true;
      request.offset = this.offset;
      request.epoch = this.epoch;
    }
    return request;
  };

  Subscription.prototype._handleSubscribed = function (result) {
    var recovering = !!result.was_recovering;
    var previousEpoch = this.epoch;
    this.state = "subscribed";
    this.recoverable = !!result.recoverable;
    if (result.epoch !== undefined) this.epoch = result.epoch;
    var self = this;
    (result.publications || []).forEach(function (pub) { self._handlePublication(pub); });
    if (result.offset !== undefined && (this.offset === null || result.offset > this.offset)) this.offset = result.offset;
    if (this.offset === null) this.offset = 0;
    this._emit("subscribed", {
      channel: this.channel, recoverable: this.recoverable, wasRecovering: recovering,
      recovered: !!result.recovered, epochChanged: previousEpoch !== null && previousEpoch !== this.epoch,
      data: result.data,
    });
  };

  Subscription.prototype._handlePublication = function (pub) {
    if (pub.offset !== undefined && this.offset !== null && pub.offset <= this.offset && this.recoverable) return; // seen
    if (pub.offset !== undefined) this.offset = pub.offset;
    this._emit("publication", { channel: this.channel, data: pub.data, offset: pub.offset, info: pub.info, tags: pub.tags });
  };

  Subscription.prototype.publish = function (data) { return this.client.publish(this.channel, data); };
  Subscription.prototype.presence = function () { return this.client.presence(this.channel); };
  Subscription.prototype.presenceStats = function () { return this.client.presenceStats(this.channel); };
  Subscription.prototype.history = function (options) { return this.client.history(this.channel, options); };
  Subscription.prototype.unsubscribe = function () { return this.client.unsubscribe(this.channel); };

  /**
   * The connection. Options: token, getToken() → Promise<token> (called when the token
   * expires or is refused as expired), name, version, minReconnectDelay (ms, 500),
   * maxReconnectDelay (ms, 20000), timeout (ms per command, 10000), maxServerPingDelay (ms,
   * 10000: how much later than announced a ping may come before the connection is deemed dead),
   * refreshMargin (s before expiry to refresh, 10).
   */
  function Client(url, options) {
    Emitter.call(this);
    this.url = url;
    this.options = Object.assign({
      minReconnectDelay: 500, maxReconnectDelay: 20000, timeout: 10000, maxServerPingDelay: 10000,
      refreshMargin: 10, name: "sb-realtime", version: "1",
    }, options || {});
    this.token = this.options.token || "";
    this.state = "disconnected";
    this.clientId = null;
    this.subscriptions = {};
    this.stats = { connects: 0, pings: 0, pongs: 0, refreshes: 0, reconnects: 0 };
    this._ws = null;
    this._nextId = 1;
    this._pending = {};
    this._attempt = 0;
    this._timers = {};
    this._wanted = false;
  }
  Client.prototype = Object.create(Emitter.prototype);

  Client.prototype.subscribe = function (channel, options) {
    var subscription = this.subscriptions[channel];
    if (!subscription) {
      subscription = new Subscription(this, channel, options);
      this.subscriptions[channel] = subscription;
    }
    if (this.state === "connected") this._subscribe(subscription);
    return subscription;
  };

  Client.prototype.unsubscribe = function (channel) {
    var subscription = this.subscriptions[channel];
    delete this.subscriptions[channel];
    if (subscription) subscription.state = "unsubscribed";
    if (this.state !== "connected") return Promise.resolve();
    return this._call({ unsubscribe: { channel: channel } });
  };

  Client.prototype.connect = function () {
    this._wanted = true;
    if (this.state === "connected" || this.state === "connecting") return;
    this._open();
  };

  Client.prototype.disconnect = function () {
    this._wanted = false;
    this._clearTimers();
    if (this._ws) this._ws.close(1000, "client disconnect");
    this._teardown({ code: 0, reason: "disconnect called", reconnect: false });
  };

  Client.prototype.publish = function (channel, data) {
    return this._call({ publish: { channel: channel, data: data } });
  };
  Client.prototype.presence = function (channel) {
    return this._call({ presence: { channel: channel } }).then(function (result) { return result.presence || {}; });
  };
  Client.prototype.presenceStats = function (channel) {
    return this._call({ presence_stats: { channel: channel } });
  };
  Client.prototype.history = function (channel, options) {
    var request = Object.assign({ channel: channel }, options || {});
    return this._call({ history: request });
  };
  Client.prototype.rpc = function (method, data) {
    return this._call({ rpc: { method: method, data: data } }).then(function (result) { return result.data; });
  };

  // MARK: connection lifecycle

  Client.prototype._open = function () {
    var self = this;
    this.state = "connecting";
    this._emit("connecting", { attempt: this._attempt });
    var ws;
    try {
      ws = new WebSocket(this.url);
    } catch (error) {
      this._scheduleReconnect({ code: 0, reason: String(error) });
      return;
    }
    this._ws = ws;
    ws.onopen = function () { self._sendConnect(); };
    ws.onmessage = function (event) { self._receive(event.data); };
    ws.onclose = function (event) {
      if (self._ws !== ws) return;
      self._ws = null;
      var code = event.code;
      var reconnect = self._wanted && !isTerminal(code);
      self._teardown({ code: code, reason: event.reason, reconnect: reconnect });
      if (reconnect) self._scheduleReconnect({ code: code, reason: event.reason });
    };
  };

  Client.prototype._sendConnect = async function () {
    var self = this;
    try {
      if (!this.token && this.options.getToken) this.token = await this.options.getToken();
      var request = { name: this.options.name, version: this.options.version };
      if (this.token) request.token = this.token;
      var result = await this._call({ connect: request }, true);
      this._onConnected(result);
    } catch (error) {
      if (error && error.code === 109 && this.options.getToken) {
        // The token expired: fetch another and try again at once.
        this.token = "";
        if (this._ws) this._ws.close(3000, "token expired");
        return;
      }
      self._emit("error", { type: "connect", error: error });
      if (this._ws) this._ws.close(3000, "connect failed");
    }
  };

  Client.prototype._onConnected = function (result) {
    var self = this;
    this.state = "connected";
    this.clientId = result.client;
    this._attempt = 0;
    this.stats.connects += 1;
    this._pingInterval = (result.ping || 0) * 1000;
    this._sendPong = !!result.pong;
    this._armPingWatch();
    if (result.expires && result.ttl) this._scheduleRefresh(result.ttl);
    this._emit("connected", { client: result.client, version: result.version, data: result.data });
    Object.keys(this.subscriptions).forEach(function (channel) { self._subscribe(self.subscriptions[channel]); });
  };

  Client.prototype._subscribe = async function (subscription) {
    subscription.state = "subscribing";
    try {
      var result = await this._call({ subscribe: await subscription._subscribeCommand() });
      if (this.subscriptions[subscription.channel] !== subscription) return;
      subscription._handleSubscribed(result);
    } catch (error) {
      subscription.state = "error";
      subscription._emit("error", error);
      this._emit("error", { type: "subscribe", channel: subscription.channel, error: error });
      if (error && (error.temporary || error.code === 100 || error.code === 111) && this.state === "connected") {
        // A temporary failure on the server's side: try again after a backoff step.
        var self = this;
        setTimeout(function () {
          if (self.state === "connected" && self.subscriptions[subscription.channel] === subscription) self._subscribe(subscription);
        }, backoff(1, this.options.minReconnectDelay, this.options.maxReconnectDelay));
      } else if (error && error.code === 112) {
        // Unrecoverable position: start over from the current position.
        subscription.offset = null;
        subscription.epoch = null;
        if (this.state === "connected") this._subscribe(subscription);
      }
    }
  };

  Client.prototype._teardown = function (info) {
    var wasConnected = this.state === "connected" || this.state === "connecting";
    this._clearTimers();
    var pending = this._pending;
    this._pending = {};
    Object.keys(pending).forEach(function (id) {
      clearTimeout(pending[id].timer);
      pending[id].reject({ code: 0, message: "disconnected" });
    });
    var self = this;
    Object.keys(this.subscriptions).forEach(function (channel) {
      if (self.subscriptions[channel].state === "subscribed") self.subscriptions[channel].state = "subscribing";
    });
    this.state = "disconnected";
    if (wasConnected) this._emit("disconnected", info);
  };

  Client.prototype._scheduleReconnect = function () {
    var self = this;
    if (!this._wanted) return;
    var delay = backoff(this._attempt, this.options.minReconnectDelay, this.options.maxReconnectDelay);
    this._attempt += 1;
    this.stats.reconnects += 1;
    this._timers.reconnect = setTimeout(function () { if (self._wanted) self._open(); }, delay);
  };

  Client.prototype._clearTimers = function () {
    var timers = this._timers;
    Object.keys(timers).forEach(function (name) { clearTimeout(timers[name]); });
    this._timers = {};
  };

  // MARK: ping/pong and refresh

  Client.prototype._armPingWatch = function () {
    var self = this;
    clearTimeout(this._timers.ping);
    if (!this._pingInterval) return;
    this._timers.ping = setTimeout(function () {
      // No ping from the server for too long: the connection is dead even if the socket is not.
      if (self._ws) self._ws.close(3012, "no ping");
    }, this._pingInterval + this.options.maxServerPingDelay);
  };

  Client.prototype._scheduleRefresh = function (ttl) {
    var self = this;
    clearTimeout(this._timers.refresh);
    var delay = Math.max(0, (ttl - this.options.refreshMargin) * 1000);
    if (ttl <= this.options.refreshMargin) delay = Math.max(0, ttl * 500);
    this._timers.refresh = setTimeout(function () { self._refresh(); }, delay);
  };

  Client.prototype._refresh = async function () {
    if (!this.options.getToken || this.state !== "connected") return;
    try {
      this.token = await this.options.getToken();
      var result = await this._call({ refresh: { token: this.token } });
      this.stats.refreshes += 1;
      this._emit("refreshed", result);
      if (result.expires && result.ttl) this._scheduleRefresh(result.ttl);
    } catch (error) {
      this._emit("error", { type: "refresh", error: error });
      var self = this;
      this._timers.refresh = setTimeout(function () { self._refresh(); }, 5000);
    }
  };

  // MARK: frames

  Client.prototype._call = function (command, beforeConnected) {
    var self = this;
    if (!beforeConnected && this.state !== "connected") return Promise.reject({ code: 0, message: "not connected" });
    var id = this._nextId++;
    command.id = id;
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () {
        delete self._pending[id];
        reject({ code: 0, message: "timeout" });
        if (self._ws) self._ws.close(3000, "command timeout");
      }, self.options.timeout);
      self._pending[id] = { resolve: resolve, reject: reject, timer: timer };
      self._send(command);
    });
  };

  Client.prototype._send = function (message) {
    if (this._ws && this._ws.readyState === WebSocket.OPEN) this._ws.send(JSON.stringify(message));
  };

  Client.prototype._receive = function (text) {
    var self = this;
    String(text).split("\n").forEach(function (line) {
      if (!line.trim()) return;
      var reply;
      try { reply = JSON.parse(line); } catch (error) { return; }
      self._handleReply(reply);
    });
  };

  Client.prototype._handleReply = function (reply) {
    if (reply.id) {
      var pending = this._pending[reply.id];
      if (!pending) return;
      delete this._pending[reply.id];
      clearTimeout(pending.timer);
      if (reply.error) pending.reject(reply.error);
      else pending.resolve(reply[Object.keys(reply).find(function (key) { return key !== "id"; })] || {});
      return;
    }
    if (reply.push) {
      this._handlePush(reply.push);
      return;
    }
    // An empty reply is the server's ping.
    this.stats.pings += 1;
    this._armPingWatch();
    if (this._sendPong) {
      this._send({});
      this.stats.pongs += 1;
    }
  };

  Client.prototype._handlePush = function (push) {
    var subscription = push.channel ? this.subscriptions[push.channel] : null;
    if (push.pub) {
      if (subscription) subscription._handlePublication(push.pub);
      else this._emit("publication", { channel: push.channel, data: push.pub.data, offset: push.pub.offset, info: push.pub.info });
    } else if (push.join && subscription) {
      subscription._emit("join", push.join.info);
    } else if (push.leave && subscription) {
      subscription._emit("leave", push.leave.info);
    } else if (push.unsubscribe && subscription) {
      subscription.state = "unsubscribed";
      subscription._emit("unsubscribed", push.unsubscribe);
      if (push.unsubscribe.code >= 2500 && this.state === "connected") this._subscribe(subscription);
    } else if (push.subscribe) {
      this._emit("subscribed", { channel: push.channel });
    } else if (push.message) {
      this._emit("message", push.message.data);
    } else if (push.disconnect) {
      if (this._ws) this._ws.close(push.disconnect.code || 3000, push.disconnect.reason || "");
    } else if (push.refresh) {
      this._refresh();
    }
  };

  global.SBRealtime = { Client: Client, Subscription: Subscription, backoff: backoff };
})(typeof window !== "undefined" ? window : this);
