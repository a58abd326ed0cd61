// What every page may use, without inline script (the CSP forbids it): show a password,
// copy or print a text, and check again by itself on a page that waits for someone else.
(function () {
  "use strict";
  var announcer = document.getElementById("announce");

  function announce(text) {
    if (!announcer) { return; }
    announcer.textContent = "";
    setTimeout(function () { announcer.textContent = text; }, 50);
  }

  // A form that came back with an error: the cursor goes to the first field in question (the
  // error itself is read out by its role=alert and tied to the field by aria-describedby).
  // This script runs deferred, so a quick person may already have moved on: the cursor is
  // taken only while it is still where the page put it, in a field nobody has typed in yet.
  var invalid = document.querySelector("[aria-invalid=true]");
  var current = document.activeElement;
  var untouched = !current || current === document.body ||
    (current.hasAttribute("autofocus") && current.value === current.defaultValue);
  if (invalid && untouched) { invalid.focus(); }

  // Show / hide a password: one toggle button per field, its name fixed, its state pressed.
  Array.prototype.forEach.call(document.querySelectorAll("button.reveal"), function (button) {
    var field = document.getElementById(button.getAttribute("aria-controls"));
    if (!field) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var show = field.type === "password";
      field.type = show ? "text" : "password";
      button.setAttribute("aria-pressed", show ? "true" : "false");
    });
  });

  // Copy the text (or value) of the element a button names.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var done = document.execCommand("copy");
      document.body.removeChild(area);
      if (done) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("button[data-copy]"), function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = /^(INPUT|TEXTAREA)$/.test(source.tagName) ? source.value : source.innerText;
      copyText(text).then(function () {
        announce(button.getAttribute("data-copied"));
        button.classList.add("done");
      }, function () {
        if (source.select) { source.select(); }
      });
    });
  });

  Array.prototype.forEach.call(document.querySelectorAll("button[data-print]"), function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });

  // A page waiting for someone else (an administrator's approval) asks again every few
  // seconds, without reloading itself under the reader; once the answer is a redirect, the
  // wait is over and the browser follows it.
  var waiting = document.querySelector("[data-poll-url]");
  if (waiting && window.fetch) {
    var every = Math.max(2, parseInt(waiting.getAttribute("data-poll-seconds"), 10) || 10) * 1000;
    var url = waiting.getAttribute("data-poll-url");
    var check = function () {
      fetch(url, { credentials: "same-origin", redirect: "manual" }).then(function (response) {
        if (response.type === "opaqueredirect" || (response.status >= 300 && response.status < 400)) {
          window.location.assign(url);
        } else {
          setTimeout(check, every);
        }
      }, function () { setTimeout(check, every); });
    };
    setTimeout(check, every);
  }
}());
