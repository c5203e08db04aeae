// millrace relay console: polls the relay's JSON state and renders it. Read-only:
// it only sends GET requests to its own origin. No dependencies, no build step.
"use strict";
(function () {
  var API = "/console/api/state";
  var POLL_MS = 2000;

  function $(sel) { return document.querySelector(sel); }
  function all(sel) { return Array.prototype.slice.call(document.querySelectorAll(sel)); }

  function setMetric(name, text) {
    all('[data-metric="' + name + '"]').forEach(function (el) { el.textContent = text; });
  }

  function fmtInt(n) { return String(Math.round(n)); }
  function fmt1(x) { return (Math.round(x * 10) / 10).toFixed(1); }

  function ago(iso) {
    if (!iso) { return "never"; }
    var s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 60) { return Math.round(s) + "s ago"; }
    if (s < 3600) { return Math.round(s / 60) + "m ago"; }
    return Math.round(s / 3600) + "h ago";
  }

  // chart draws the points (t in ms, v) of the last window as a polyline scaled to
  // the highest value; it returns that value.
  function chart(svg, points, nowMs, windowMs) {
    var W = 600, H = 140, pad = 6;
    var maxV = 0;
    points.forEach(function (p) { if (p.v > maxV) { maxV = p.v; } });
    var top = maxV > 0 ? maxV * 1.1 : 1;
    var coords = points.map(function (p) {
      var x = W - ((nowMs - p.t) / windowMs) * W;
      var y = H - pad - (p.v / top) * (H - 2 * pad);
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    var ns = "http://www.w3.org/2000/svg";
    for (var i = 1; i < 4; i++) {
      var g = document.createElementNS(ns, "line");
      g.setAttribute("class", "grid");
      g.setAttribute("x1", "0"); g.setAttribute("x2", String(W));
      g.setAttribute("y1", String(i * H / 4)); g.setAttribute("y2", String(i * H / 4));
      svg.appendChild(g);
    }
    var line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", coords.join(" "));
    line.setAttribute("data-points", String(points.length));
    svg.appendChild(line);
    return maxV;
  }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    tr.appendChild(td);
  }

  function render(s) {
    var role = $("#role"), state = $("#state");
    role.textContent = s.role;
    role.className = "badge " + s.role;
    setMetric("holder", s.role === "active" || !s.holder ? "" : "lock held by " + s.holder);
    state.textContent = s.state;
    state.className = "badge state " + s.state;

    setMetric("events_per_second", fmt1(s.events_per_second));
    setMetric("events_forwarded", fmtInt(s.events_forwarded));
    setMetric("pending", fmtInt(s.pending));
    setMetric("lag_seconds", fmt1(s.lag_seconds));
    setMetric("dead_letters_stored", fmtInt(s.dead_letters_stored));
    setMetric("batch_failures", fmtInt(s.batch_failures));
    setMetric("retries_total", fmtInt(s.retries_total));
    setMetric("retries_recent", fmtInt(s.retries_recent));
    all(".window").forEach(function (el) { el.textContent = String(Math.round(s.window_seconds / 60)); });

    var err = $("#last-error");
    if (s.last_error) {
      err.hidden = false;
      err.textContent = "Last failure" + (s.failing_since ? " (failing since " + ago(s.failing_since) + ")" : "") + ": " + s.last_error;
    } else {
      err.hidden = true;
      err.textContent = "";
    }

    var nowMs = Date.parse(s.now), windowMs = s.window_seconds * 1000;
    var eps = s.history.map(function (p) { return { t: p.t, v: p.eps }; });
    var lag = s.history.map(function (p) { return { t: p.t, v: p.lag }; });
    setMetric("eps_max", "max " + fmt1(chart($("#chart-eps"), eps, nowMs, windowMs)));
    setMetric("lag_max", "max " + fmt1(chart($("#chart-lag"), lag, nowMs, windowMs)));

    var fb = $("#failures tbody");
    while (fb.firstChild) { fb.removeChild(fb.firstChild); }
    s.failures.forEach(function (f) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-class", f.class);
      cell(tr, f.class);
      cell(tr, fmtInt(f.recent), "recent");
      cell(tr, fmtInt(f.total), "total");
      fb.appendChild(tr);
    });

    var db = $("#dead-letters tbody");
    while (db.firstChild) { db.removeChild(db.firstChild); }
    s.dead_letters.forEach(function (d) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-uuid", d.uuid);
      cell(tr, String(d.id));
      cell(tr, d.topic);
      cell(tr, d.class);
      cell(tr, d.reason, "reason");
      cell(tr, String(d.attempts));
      cell(tr, ago(d.failed_at));
      db.appendChild(tr);
    });
    var note = "";
    if (s.dead_letters_error) {
      note = "Could not list the dead letters: " + s.dead_letters_error;
    } else if (s.dead_letters_stored > s.dead_letters.length) {
      note = "The oldest " + s.dead_letters.length + " of " + s.dead_letters_stored + "; relay dlq list shows them all.";
    } else if (s.dead_letters_stored === 0) {
      note = "None.";
    }
    $("#dead-letters-note").textContent = note;

    $("#updated").textContent = "updated " + new Date(nowMs).toLocaleTimeString() +
      " · last forwarded " + ago(s.last_forwarded_at);
    document.body.setAttribute("data-loaded", "true");
  }

  function poll() {
    fetch(API, { cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(render)
      .catch(function (e) { $("#updated").textContent = "relay unreachable (" + e.message + "), retrying"; })
      .then(function () { setTimeout(poll, POLL_MS); });
  }
  poll();
})();
