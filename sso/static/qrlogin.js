// Scan to sign in, the desktop side: make a code, wait for the phone (server-sent events,
// long-poll where EventSource is missing or blocked), then complete the sign-in.
(function () {
  "use strict";
  var root = document.getElementById("qr-login");
  if (!root) { return; }
  var image = document.getElementById("qr-image");
  var frame = image.parentNode;
  var renew = document.getElementById("qr-renew");
  var status = document.getElementById("qr-status");
  var numberLine = document.getElementById("qr-number");
  var form = document.getElementById("qr-complete");
  var scannedMark = document.getElementById("qr-scanned");
  var linkBox = document.getElementById("qr-link");
  var linkText = document.getElementById("qr-link-text");
  var FINAL = { consumed: true, denied: true, expired: true };
  var countdown = document.getElementById("qr-countdown");
  var timer = null;
  var renewals = 0;
  // A code lives 60-120 s (RFC 10027); while nobody has scanned it, a fresh one replaces it a
  // few seconds before it expires, without reloading the page (a bounded number of times, so
  // a forgotten tab does not make codes all day).
  var RENEW_BEFORE = 5;
  var MAX_RENEWALS = 20;
  var current = null;
  var source = null;
  var known = "";
  var generation = 0;

  function say(key, isError) {
    status.textContent = root.dataset[key] || "";
    status.className = isError ? "error" : "message";
  }

  function stopTimer() {
    if (timer) { clearInterval(timer); timer = null; }
    countdown.hidden = true;
  }

  function startTimer(expiresIn) {
    stopTimer();
    var deadline = Date.now() + expiresIn * 1000;
    function tick() {
      var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      countdown.textContent = countdown.dataset.template.replace("{s}", String(Math.max(0, left - RENEW_BEFORE)));
      countdown.hidden = known !== "pending";
      if (known === "pending" && left <= RENEW_BEFORE) {
        stopTimer();
        if (renewals < MAX_RENEWALS) { renewals += 1; create(); } else { stale("msgExpired"); }
      }
    }
    tick();
    timer = setInterval(tick, 1000);
  }

  function stop() {
    stopTimer();
    generation += 1;
    if (source) { source.close(); source = null; }
  }

  // Once scanned, the code leaves the screen: a second phone (or a camera over a shoulder)
  // has nothing left to read, and the person sees that the phone took it.
  function showCode(visible) {
    frame.hidden = !visible;
    scannedMark.hidden = visible;
    if (!visible) { linkBox.hidden = true; linkBox.open = false; }
  }

  function stale(key) {
    stop();
    showCode(true);
    linkBox.hidden = true;
    frame.className = "qr-frame stale";
    renew.hidden = false;
    numberLine.hidden = true;
    say(key, key === "msgUnavailable");
  }

  function onState(state) {
    if (!current || state === known || state === "reconnect") { return; }
    known = state;
    if (state === "pending") {
      say("msgPending");
    } else if (state === "scanned") {
      showCode(false);
      say("msgScanned");
      if (current.number !== null && current.number !== undefined) {
        document.getElementById("qr-number-value").textContent = String(current.number);
        numberLine.hidden = false;
      } else {
        // A phone on another network makes the number mandatory at the scan: ask for it.
        var asked = current;
        fetch(current.number_url, { credentials: "same-origin" })
          .then(function (r) { return r.json(); })
          .then(function (body) {
            if (asked !== current || body.number === null || body.number === undefined) { return; }
            current.number = body.number;
            document.getElementById("qr-number-value").textContent = String(body.number);
            numberLine.hidden = false;
          }).catch(function () {});
      }
    } else if (state === "approved") {
      stop();
      say("msgApproved");
      form.action = current.complete_url;
      form.submit();
    } else if (state === "denied") {
      stale("msgDenied");
    } else if (FINAL[state]) {
      stale("msgExpired");
    }
  }

  function poll(mine) {
    if (mine !== generation) { return; }
    fetch(current.poll_url + "?known=" + encodeURIComponent(known), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        if (mine !== generation) { return; }
        onState(body.state);
        if (!FINAL[body.state] && body.state !== "approved") { poll(mine); }
      })
      .catch(function () { if (mine === generation) { setTimeout(function () { poll(mine); }, 2000); } });
  }

  function listen() {
    var mine = generation;
    if (!window.EventSource) { poll(mine); return; }
    var opened = false;
    var failures = 0;
    source = new EventSource(current.events_url);
    source.onopen = function () { opened = true; failures = 0; };
    source.onmessage = function (event) { onState(JSON.parse(event.data).state); };
    source.onerror = function () {
      failures += 1;
      // EventSource reconnects by itself; if it never got through (a proxy that buffers or
      // blocks streams), fall back to long-polling.
      if (!opened && failures >= 2 && mine === generation) {
        source.close();
        source = null;
        poll(mine);
      }
    };
  }

  function create() {
    stop();
    current = null;
    known = "";
    renew.hidden = true;
    numberLine.hidden = true;
    showCode(true);
    linkBox.hidden = true;
    frame.className = "qr-frame";
    say("msgLoading");
    fetch(root.dataset.createUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": root.dataset.csrf,
                 "Content-Type": "application/x-www-form-urlencoded" },
      body: "flow=" + encodeURIComponent(root.dataset.flow || "")
    }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (result) {
      if (!result.ok) {
        stale(result.body.error === "unavailable" ? "msgUnavailable" : "msgExpired");
        if (result.body.message) { status.textContent = result.body.message; }
        return;
      }
      current = result.body;
      image.src = current.image_url;
      image.hidden = false;
      // The same address as the code, for whoever cannot scan it: to be opened on the phone.
      linkText.value = root.dataset.phoneUrl + current.id;
      linkBox.hidden = false;
      onState("pending");
      listen();
      startTimer(current.expires_in);
    }).catch(function () { stale("msgUnavailable"); });
  }

  renew.addEventListener("click", function () { renewals = 0; create(); });
  create();
}());
