// The portal's only script: Tonight's "in progress" table kept live by server-sent
// events. Each event carries the table as HTML rendered and escaped by the server's
// template, so it is placed as it is; no page needs this script to work.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  var events = new EventSource(live.getAttribute("data-events"));
  events.addEventListener("live", function (e) { live.innerHTML = e.data; });
  events.onerror = function () {
    // Closed for good (logged off, or the server went away): reload, which shows the
    // log-in page when the session has ended.
    if (events.readyState === EventSource.CLOSED) { window.location.reload(); }
  };
});
