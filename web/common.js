// What the pages share: JSON calls to the API with the session's CSRF token, building DOM
// nodes without innerHTML (all text goes through textContent), and signing in and out.
(function () {
  "use strict";
  var SB = (window.SB = window.SB || {});
  var csrfToken = null;

  /** An error answered by the API: status, code and message from its JSON error. */
  function APIError(status, code, message, retryAfter) {
    var error = new Error(message);
    error.status = status;
    error.code = code;
    error.retryAfter = retryAfter;
    return error;
  }

  /** Calls the API with the sign-in cookie; state-changing calls carry X-CSRF-Token. */
  SB.api = async function (method, path, body) {
    var headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
    var response = await fetch(path, {
      method: method,
      credentials: "same-origin",
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 204) return null;
    var data = null;
    try { data = await response.json(); } catch (ignored) { data = null; }
    if (!response.ok) {
      var detail = (data && data.error) || {};
      throw APIError(response.status, detail.code || "error", detail.message || response.statusText,
        response.headers.get("Retry-After"));
    }
    return data;
  };

  /**
   * Uploads `file` as multipart/form-data (`POST path`, part `file`) with the sign-in cookie and
   * the CSRF token; answers the JSON body or throws the API's error like SB.api.
   */
  SB.upload = async function (path, file) {
    var form = new FormData();
    form.append("file", file, file.name);
    var headers = { Accept: "application/json" };
    if (csrfToken) headers["X-CSRF-Token"] = csrfToken;
    var response = await fetch(path, { method: "POST", credentials: "same-origin", headers: headers, body: form });
    var data = null;
    try { data = await response.json(); } catch (ignored) { data = null; }
    if (!response.ok) {
      var detail = (data && data.error) || {};
      throw APIError(response.status, detail.code || "error", detail.message || response.statusText,
        response.headers.get("Retry-After"));
    }
    return data;
  };

  /** An element with attributes and children (strings become text nodes, never markup). */
  SB.el = function (tag, attributes, children) {
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
  };

  SB.setCSRF = function (token) { csrfToken = token; };

  /**
   * Shows the sign-in form or the page: asks who is signed in; on 401 shows the form, whose
   * submission signs in and then calls onSignedIn(session) like an open session does.
   */
  SB.signIn = async function (onSignedIn) {
    var form = document.getElementById("signin-form");
    var signinView = document.getElementById("signin");
    var app = document.getElementById("app");
    var who = document.getElementById("who");
    var signOut = document.getElementById("sign-out");
    var errorLine = document.getElementById("signin-error");

    function show(session) {
      SB.setCSRF(session.csrfToken);
      signinView.hidden = true;
      app.hidden = false;
      who.hidden = false;
      who.textContent = session.user.email;
      signOut.hidden = false;
      onSignedIn(session);
    }

    function showForm() {
      app.hidden = true;
      who.hidden = true;
      signOut.hidden = true;
      signinView.hidden = false;
      document.getElementById("login-email").focus();
    }

    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      errorLine.textContent = "";
      var email = document.getElementById("login-email").value.trim();
      var password = document.getElementById("login-password").value;
      if (!email || !password) {
        errorLine.textContent = "Enter your email and password.";
        return;
      }
      var button = document.getElementById("login-submit");
      button.disabled = true;
      try {
        var session = await SB.api("POST", "/api/v1/auth/login", { email: email, password: password });
        document.getElementById("login-password").value = "";
        show(session);
      } catch (error) {
        errorLine.textContent = error.status === 429
          ? "Too many attempts. Try again in " + (error.retryAfter || "a few") + " seconds."
          : error.status === 401 ? "Wrong email or password." : "Could not sign in: " + error.message;
        document.getElementById("login-password").select();
      } finally {
        button.disabled = false;
      }
    });

    signOut.addEventListener("click", async function () {
      try { await SB.api("POST", "/api/v1/auth/logout"); } catch (ignored) { /* signed out anyway */ }
      SB.setCSRF(null);
      sessionStorage.clear();
      location.reload();
    });

    try {
      var session = await SB.api("GET", "/api/v1/auth/session");
      show(session);
    } catch (error) {
      showForm();
    }
  };
})();
