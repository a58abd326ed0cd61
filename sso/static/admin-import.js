// The import progress page: asks the progress endpoint every two seconds and shows the
// figures; once the import has ended, the page is loaded again (it then lists the refused
// rows and links to the users). Without script, the page's reload link does the same.
(function () {
  "use strict";
  var job = document.getElementById("import-job");
  if (!job || job.getAttribute("data-finished") === "true" || !window.fetch) { return; }
  var url = job.getAttribute("data-progress-url");
  var bar = document.getElementById("import-bar");
  var status = document.getElementById("import-status");
  var summary = document.getElementById("import-progress");
  var check = function () {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(function (state) {
        if (state.total) { bar.max = state.total; bar.value = state.done; }
        status.textContent = state.status_text;
        if (summary.textContent !== state.summary) { summary.textContent = state.summary; }
        if (state.finished) {
          window.location.reload();
        } else {
          setTimeout(check, 2000);
        }
      }, function () { setTimeout(check, 5000); });
  };
  setTimeout(check, 1000);
}());
