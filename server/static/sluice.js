// sluice web pages: progressive enhancement only (the pages work without it).
// Live deadline countdowns, and a quiet reload of list pages every 30 s
// unless the reader is typing in a form.
(function () {
  "use strict";
  function fmt(secs) {
    var late = secs < 0, a = Math.abs(Math.round(secs)), t;
    if (a >= 86400) t = Math.floor(a / 86400) + "d " + Math.floor(a % 86400 / 3600) + "h";
    else if (a >= 3600) t = Math.floor(a / 3600) + "h " + Math.floor(a % 3600 / 60) + "m";
    else if (a >= 60) t = Math.floor(a / 60) + "m " + (a % 60) + "s";
    else t = a + "s";
    return (late ? "overdue by " : "in ") + t;
  }
  function tick() {
    var els = document.querySelectorAll("time.deadline[datetime]");
    for (var i = 0; i < els.length; i++) {
      var at = Date.parse(els[i].getAttribute("datetime"));
      if (!isNaN(at)) els[i].textContent = fmt((at - Date.now()) / 1000);
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    var lists = ["my-gates", "no-gates", "runs", "queues"];
    var isList = lists.some(function (id) { return document.getElementById(id); });
    if (isList) {
      setInterval(function () {
        var a = document.activeElement;
        if (!a || (a.tagName !== "INPUT" && a.tagName !== "SELECT" && a.tagName !== "TEXTAREA")) location.reload();
      }, 30000);
    }
  });
})();
