// Front-channel logout: wait until every app's logout page has loaded in its iframe (or the
// wait is over), then say so and go on to the app that asked for the sign-out, if any.
(function () {
  "use strict";
  var status = document.getElementById("frontchannel-status");
  if (!status) { return; }
  var frames = Array.prototype.slice.call(document.querySelectorAll("iframe.frontchannel-logout"));
  var pending = frames.length;
  var done = false;
  function finish() {
    if (done) { return; }
    done = true;
    status.setAttribute("data-done", "1");
    var target = status.getAttribute("data-target");
    if (target) { window.location.assign(target); }
  }
  frames.forEach(function (frame) {
    frame.addEventListener("load", function () {
      pending -= 1;
      if (pending <= 0) { finish(); }
    });
  });
  var wait = parseFloat(status.getAttribute("data-wait") || "3") * 1000;
  window.setTimeout(finish, wait);
})();
