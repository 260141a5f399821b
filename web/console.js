// The operator console: sign-in and the page's shell. The live list of widget sessions, the
// transcript, takeover and replies come with live support (its routes are not on this server yet).
(function () {
  "use strict";
  window.SB.signIn(function () {
    document.getElementById("session-list").replaceChildren();
  });
})();
