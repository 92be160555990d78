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
  var KEPT = "edudesk-flash", KEEP_MS = 15000, loadedAt = Date.now();

  // An action's answer ("Đã ghi nhận") is shown once, on the page the action redirects to. The action's own jobs
  // (the mail to the requester, its audit entry) then move the stamp, often within a second, and the live reload
  // would take the answer away before it is read. So a reload soon after carries it over, once, in this tab only.
  function keepFlash() {
    var shown = document.querySelector("main > .flash.ok[role=status]");
    var first = shown ? Number(shown.dataset.first || loadedAt) : 0;
    if (!shown || Date.now() - first > KEEP_MS) { return; }
    try {
      sessionStorage.setItem(KEPT, JSON.stringify({url: url, text: shown.textContent, first: first}));
    } catch (error) { /* storage off: the answer is simply not carried over */ }
  }

  function restoreFlash() {
    var kept = null;
    try {
      kept = JSON.parse(sessionStorage.getItem(KEPT) || "null");
      sessionStorage.removeItem(KEPT);
    } catch (error) { return; }
    if (!kept || kept.url !== url || !(Date.now() - kept.first <= KEEP_MS)) { return; }
    if (document.querySelector("main > .flash")) { return; }  // the page has its own answer
    var box = document.createElement("div");
    box.className = "flash ok";
    box.setAttribute("role", "status");
    box.dataset.first = String(kept.first);
    box.textContent = String(kept.text);
    var main = document.querySelector("main"), banner = document.getElementById("changed");
    if (main) { main.insertBefore(box, banner ? banner.nextSibling : main.firstChild); }
  }
  restoreFlash();

  function reload() {
    keepFlash();
    location.replace(url);
  }

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
          if (!busy()) { reload(); return; }
          document.getElementById("changed").classList.add("show");
        }
      } catch (error) {
        if (!document.hidden) { await sleep(2000); }
      }
    }
  }
  poll();
})();
