// edudesk web console: keep the page current without a manual reload, and stop double submits.
// The page carries the stamp it was rendered from; /api/version answers as soon as it moves (long poll).
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.sent) { event.preventDefault(); return; }
    form.dataset.sent = "1";
    var button = event.submitter;
    if (button) { setTimeout(function () { button.disabled = true; }, 0); }
  });

  var live = document.getElementById("live");
  if (!live || !window.fetch) { return; }
  var scope = live.dataset.scope, stamp = live.dataset.stamp, url = live.dataset.url || location.pathname;
  var controller = null;

  function busy() {
    var active = document.activeElement;  // someone typing: a reload would lose it
    if (active && (active.tagName === "TEXTAREA" || (active.tagName === "INPUT" && /^(text|search)$/.test(active.type)))) {
      return true;
    }
    if (document.querySelector("details[open]")) { return true; }
    var areas = document.getElementsByTagName("textarea");
    for (var i = 0; i < areas.length; i++) { if (areas[i].value.trim()) { return true; } }
    return false;
  }

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function visible() {
    if (!document.hidden) { return Promise.resolve(); }
    return new Promise(function (resolve) {
      document.addEventListener("visibilitychange", function wake() {
        if (!document.hidden) { document.removeEventListener("visibilitychange", wake); resolve(); }
      });
    });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden && controller) { controller.abort(); }  // a background tab holds no connection
  });

  async function poll() {
    for (;;) {
      await visible();
      controller = new AbortController();
      try {
        var query = "?scope=" + encodeURIComponent(scope) + "&since=" + encodeURIComponent(stamp) + "&wait=20";
        var response = await fetch("/api/version" + query, {signal: controller.signal, cache: "no-store",
                                                            credentials: "same-origin"});
        if (response.status === 401) { location.replace(url); return; }
        if (!response.ok) { await sleep(2000); continue; }
        var data = await response.json();
        if (data.stamp !== stamp) {
          stamp = data.stamp;
          if (!busy()) { location.replace(url); return; }
          document.getElementById("changed").classList.add("show");
        }
      } catch (error) {
        if (!document.hidden) { await sleep(2000); }
      }
    }
  }
  poll();
})();
