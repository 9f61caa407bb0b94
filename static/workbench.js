// Workbench: live lists fed by the htmx SSE extension, batched; the "try it" forms; small helpers.
(function () {
  "use strict";

  // 4xx answers carry a message to show in place (htmx 2 swaps only 2xx by default)
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "4..", swap: true, error: false },
    { code: "...", swap: false, error: true },
  ];

  // workbench URLs come from the page (the server's routes), never spelled out here:
  // wbUrl("trace", {trace_id: id}) fills in the template the page lists in <body data-urls>
  var urls = JSON.parse(document.body.dataset.urls || "{}");
  function wbUrl(name, params) {
    return urls[name].replace(/\{(\w+)\}/g, function (_, key) { return encodeURIComponent(params[key]); });
  }

  // elements marked role=button answer Enter and Space like a click
  document.addEventListener("keydown", function (evt) {
    var el = evt.target;
    if ((evt.key === "Enter" || evt.key === " ") && el.matches && el.matches("[role=button]")) {
      evt.preventDefault();
      el.dispatchEvent(new MouseEvent("click", { bubbles: true }));
    }
  });

  // --- live lists: upsert rows by id, newest first, batched once per frame, capped -----------------
  var pending = new Map();   // tbody element -> [html, ...]
  var scheduled = false;
  var lastIds = {};          // stream URL -> last event id seen (to resume a re-created EventSource)

  function flush() {
    scheduled = false;
    pending.forEach(function (chunks, list) {
      if (list.dataset.paused === "1") return;
      pending.delete(list);
      apply(list, chunks);
    });
  }

  function apply(list, chunks) {
    var tpl = document.createElement("template");
    tpl.innerHTML = "<table><tbody>" + chunks.join("") + "</tbody></table>";
    var rows = tpl.content.querySelectorAll("tbody > tr");
    var cap = parseInt(list.dataset.liveList, 10);  // the page says how many rows a live list keeps
    var fresh = [];  // rows not in the list yet, newest first
    var seen = new Set();  // a row updated twice in one batch: its newest version wins
    for (var i = rows.length - 1; i >= 0; i--) {
      var row = rows[i];
      if (row.id) {
        if (seen.has(row.id)) continue;
        seen.add(row.id);
      }
      var old = row.id ? document.getElementById(row.id) : null;
      if (old && old.parentNode === list) old.replaceWith(row);
      else fresh.push(row);
    }
    // in a burst, rows beyond the cap would be cut at once: never insert them; nor flash row by row
    fresh = fresh.slice(0, cap);
    var added = document.createDocumentFragment();  // one insertion for the whole batch
    fresh.forEach(function (row) {
      if (fresh.length < 50) row.classList.add("flash");
      added.appendChild(row);
    });
    list.insertBefore(added, list.firstChild);
    if (list.id === "home-traces") pinHomeTrace(list);
    while (list.children.length > cap) list.removeChild(list.lastElementChild);
    var empty = document.getElementById(list.id + "-empty");
    if (empty && list.children.length) empty.remove();
    var counter = document.getElementById(list.id + "-count");
    if (counter) counter.textContent = list.children.length;
  }

  document.addEventListener("htmx:sseBeforeMessage", function (evt) {
    var list = evt.target;
    var msg = evt.detail;
    var source = list.closest("[sse-connect]");
    if (source && msg.lastEventId) lastIds[source.getAttribute("sse-connect")] = msg.lastEventId;
    if (!list.hasAttribute("data-live-list")) return;
    evt.preventDefault();  // we swap ourselves: upsert + batch
    var queue = pending.get(list) || [];
    queue.push(msg.data);
    if (queue.length > 2000) queue.splice(0, queue.length - 2000);
    pending.set(list, queue);
    var waiting = document.getElementById(list.id + "-pending");
    if (waiting && list.dataset.paused === "1") waiting.textContent = queue.length + " new while paused";
    if (!scheduled) { scheduled = true; requestAnimationFrame(flush); }
  });

  // a re-created EventSource (after the browser gave up reconnecting) resumes from the last id seen
  htmx.createEventSource = function (url) {
    var last = lastIds[url];
    if (last) url = url.replace(/([?&])lastEventId=[^&]*/, "$1lastEventId=" + encodeURIComponent(last));
    return new EventSource(url);
  };

  function setLive(state, title) {
    var el = document.getElementById("live-indicator");
    if (!el) return;
    el.className = "dot-wrap " + state;
    el.querySelector(".label").textContent = state === "ok" ? "live" : (state === "warn" ? "reconnecting…" : "offline");
    el.title = title || "";
  }
  document.addEventListener("htmx:sseOpen", function () { setLive("ok", "receiving live updates"); });
  document.addEventListener("htmx:sseError", function () { setLive("warn", "the live feed is reconnecting"); });
  document.addEventListener("DOMContentLoaded", function () {
    if (!document.querySelector("[sse-connect]")) document.getElementById("live-indicator").hidden = true;
  });

  document.addEventListener("htmx:afterSwap", function (evt) {
    if (evt.target.id === "node-panel") evt.target.classList.add("open");
  });

  // status badges from the polled status partial
  document.addEventListener("htmx:afterSwap", function (evt) {
    if (evt.target.id !== "status") return;
    var b = document.getElementById("badges");
    if (!b) return;
    document.getElementById("badge-traces").textContent = b.dataset.traces || "";
    document.getElementById("badge-dead").textContent = b.dataset.dead || "";
  });

  // relative times keep ticking
  setInterval(function () {
    var now = Date.now();
    document.querySelectorAll("td.ago[data-ts]").forEach(function (td) {
      var s = Math.max(0, Math.floor((now - parseInt(td.dataset.ts, 10)) / 1000));
      td.textContent = s < 5 ? "now" : s < 60 ? s + "s ago" : s < 3600 ? Math.floor(s / 60) + "m ago"
        : s < 86400 ? Math.floor(s / 3600) + "h ago" : Math.floor(s / 86400) + "d ago";
    });
  }, 5000);

  // --- "try it" forms (home page and Endpoints) --------------------------------------------------------
  function esc(text) {
    var d = document.createElement("div");
    d.textContent = text;
    return d.innerHTML;
  }

  document.addEventListener("submit", async function (evt) {
    var form = evt.target;
    if (!form.classList.contains("tryit")) return;
    evt.preventDefault();
    var out = form.querySelector(".tryit-result");
    var path = form.dataset.path;
    var query = new URLSearchParams();
    var body = null;
    try {
      if (form.dataset.raw) {
        form.querySelectorAll("[name^='path:']").forEach(function (i) {
          path = path.replace("{" + i.name.slice(5) + "}", encodeURIComponent(i.value));
        });
        form.querySelectorAll("[name^='query:']").forEach(function (i) { if (i.value) query.set(i.name.slice(6), i.value); });
        var raw = form.querySelector("[name=body]");
        if (raw && raw.value.trim()) body = JSON.parse(raw.value);
      } else {
        body = {};
        form.querySelectorAll("[name]").forEach(function (i) {
          if (i.value === "" && !i.required) return;
          body[i.name] = i.dataset.type === "number" ? Number(i.value) : i.value;
        });
      }
    } catch (err) {
      out.innerHTML = '<div class="result bad">Body is not valid JSON: ' + esc(err.message) + "</div>";
      return;
    }
    var url = path + (query.toString() ? "?" + query : "");
    var started = performance.now();
    try {
      var resp = await fetch(url, {
        method: form.dataset.method,
        headers: body === null ? {} : { "content-type": "application/json" },
        body: body === null ? undefined : JSON.stringify(body),
      });
      var ms = (performance.now() - started).toFixed(0);
      var text = await resp.text();
      var data = null;
      try { data = JSON.parse(text); } catch (e) { /* not JSON */ }
      var trace = resp.headers.get("x-trace-id");
      var ok = resp.status < 400;
      var summary = "→ " + resp.status + " · " + ms + " ms";
      if (data && data.id && !form.dataset.raw) summary += " · id " + esc(String(data.id));
      if (trace) summary += ' · <a href="' + wbUrl("trace", { trace_id: trace }) + '">trace ' + esc(trace.slice(-10)) + "</a>";
      out.innerHTML = '<div class="result ' + (ok ? "ok" : "bad") + '">' + summary + "</div>" +
        (form.dataset.raw || !ok ? "<pre>" + esc(data ? JSON.stringify(data, null, 2) : text) + "</pre>" : "");
      if (ok && !form.dataset.raw) form.reset();
      if (trace && form.id === "featured-form") showHomeTrace(trace);
    } catch (err) {
      out.innerHTML = '<div class="result bad">Request failed: ' + esc(err.message) + "</div>";
    }
  });

  // --- debugging actions on a trace: replay, run again, re-emit, copy as curl (replay_panel.html) -------
  // a `form.wb-action` posts its fields as JSON to its data-url: text as it is, data-parse="json" parsed
  // (left out when empty: the recorded value is used), data-parse="headers" "name: value" lines; the
  // answer's new trace opens, a refusal is shown in place (escaped)
  function wbHeaders(text) {
    var out = {};
    text.split("\n").forEach(function (line, i) {
      if (!line.trim()) return;
      var at = line.indexOf(":");
      if (at < 1) throw new Error("headers: line " + (i + 1) + " is not \u201cname: value\u201d");
      out[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
    });
    return out;
  }

  document.addEventListener("submit", async function (evt) {
    var form = evt.target;
    if (!form.classList.contains("wb-action")) return;
    evt.preventDefault();
    var out = form.querySelector(".wb-action-result");
    var body = {};
    try {
      form.querySelectorAll("[name]").forEach(function (el) {
        if (el.dataset.parse === "json") {
          if (!el.value.trim()) return;
          try { body[el.name] = JSON.parse(el.value); }
          catch (err) { throw new Error(el.name + ": not valid JSON (" + err.message + ")"); }
        } else if (el.dataset.parse === "headers") body[el.name] = wbHeaders(el.value);
        else body[el.name] = el.value;
      });
    } catch (err) {
      out.innerHTML = '<div class="result bad">' + esc(err.message) + "</div>";
      return;
    }
    var button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      var resp = await fetch(form.dataset.url, {
        method: "POST",
        headers: { "X-Workbench": "1", "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      var text = await resp.text();
      var data = null;
      try { data = JSON.parse(text); } catch (e) { /* not JSON */ }
      if (resp.ok && data && data.traceId) {
        window.location.assign(wbUrl("trace", { trace_id: data.traceId }));
        return;
      }
      out.innerHTML = '<div class="result bad">' + resp.status + ": " + esc((data && data.detail) || text) + "</div>";
    } catch (err) {
      out.innerHTML = '<div class="result bad">Request failed: ' + esc(err.message) + "</div>";
    } finally {
      if (button) button.disabled = false;
    }
  });

  document.addEventListener("click", function (evt) {
    var toggle = evt.target.closest && evt.target.closest("[data-wb-toggle]");
    if (toggle) {
      var target = document.getElementById(toggle.dataset.wbToggle);
      target.hidden = !target.hidden;
      var first = target.querySelector("textarea, input");
      if (!target.hidden && first) first.focus();
      return;
    }
    var copy = evt.target.closest && evt.target.closest("[data-wb-copy]");
    if (!copy) return;
    var source = document.getElementById(copy.dataset.wbCopy);
    var said = copy.closest(".replay-panel").querySelector(".wb-copied");
    source.hidden = false;  // shown as well as copied
    function copied(ok) { said.textContent = ok ? "Copied to the clipboard" : "Select the command below to copy it"; }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.textContent).then(function () { copied(true); }, function () { copied(false); });
    } else {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      copied(ok);
    }
  });

  // --- home: "your request", the trace the home form started (kept for this tab), and its row first --
  function showHomeTrace(traceId) {
    var panel = document.getElementById("home-last");
    if (!panel) return;
    sessionStorage.setItem("wb-home-trace", traceId);
    htmx.ajax("GET", panel.dataset.url.replace("TRACE_ID", encodeURIComponent(traceId)), { target: panel, swap: "innerHTML" });
    var list = document.getElementById("home-traces");
    if (list) pinHomeTrace(list);
  }

  function pinHomeTrace(list) {
    var id = sessionStorage.getItem("wb-home-trace");
    var row = id && document.getElementById("trace-" + id);
    if (!row || row.parentNode !== list) return;
    row.classList.add("mine");
    if (list.firstElementChild !== row) list.insertBefore(row, list.firstChild);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var last = sessionStorage.getItem("wb-home-trace");
    if (last && document.getElementById("home-last")) showHomeTrace(last);
  });

  // --- traces list: tick two rows, compare them (the boxes are added here, to live rows as they come) --
  var picked = [];  // trace ids in the order they were ticked, at most two

  function addPickBoxes(list) {
    list.querySelectorAll("tr.trace-row").forEach(function (row) {
      if (row.querySelector("input.pick")) return;
      var box = document.createElement("input");
      box.type = "checkbox";
      box.className = "pick";
      box.value = row.id.replace(/^trace-/, "");
      box.checked = picked.indexOf(box.value) >= 0;
      box.setAttribute("aria-label", "pick to compare");
      row.querySelector("td").prepend(box);
    });
  }

  function updateCompareForm(form) {
    form.querySelector("[name=a]").value = picked[0] || "";
    form.querySelector("[name=b]").value = picked[1] || "";
    form.querySelector("button").disabled = picked.length !== 2;
    form.querySelector(".count").textContent = picked.length ? picked.length + " of 2 ticked" : "tick two traces to compare";
  }

  document.addEventListener("change", function (evt) {
    var box = evt.target;
    var form = document.getElementById("compare-form");
    if (!form || !box.matches || !box.matches("input.pick")) return;
    var at = picked.indexOf(box.value);
    if (box.checked && at < 0) picked.push(box.value);
    if (!box.checked && at >= 0) picked.splice(at, 1);
    while (picked.length > 2) {  // a third tick unticks the oldest
      var dropped = document.querySelector('input.pick[value="' + CSS.escape(picked.shift()) + '"]');
      if (dropped) dropped.checked = false;
    }
    updateCompareForm(form);
  });

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("compare-form");
    var list = document.getElementById("trace-list");
    if (!form || !list) return;
    addPickBoxes(list);
    new MutationObserver(function () { addPickBoxes(list); }).observe(list, { childList: true });
    updateCompareForm(form);
  });

  // --- small helpers used from templates -----------------------------------------------------------------
  window.wbToggleTheme = function () {
    var root = document.documentElement;
    var dark = root.dataset.theme ? root.dataset.theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
    root.dataset.theme = dark ? "light" : "dark";
    localStorage.setItem("wb-theme", root.dataset.theme);
  };

  window.wbTogglePause = function (listId, button) {
    var list = document.getElementById(listId);
    var paused = list.dataset.paused === "1";
    list.dataset.paused = paused ? "0" : "1";
    button.textContent = paused ? "Pause" : "Resume";
    if (paused) {
      var waiting = document.getElementById(listId + "-pending");
      if (waiting) waiting.textContent = "";
      var queue = pending.get(list);
      if (queue) { pending.delete(list); apply(list, queue); }
    }
  };

  // while a trace runs its bars keep growing, even when no record arrives
  window.wbTraceRunning = function () {
    return !!document.querySelector(".trace-head .pill.running");
  };

  window.wbSelectedSpan = function () {
    var row = document.querySelector(".wf-row.selected");
    return row ? row.dataset.span : "";
  };

  window.wbSelectSpan = function (row) {
    document.querySelectorAll(".wf-row.selected").forEach(function (r) { r.classList.remove("selected"); });
    row.classList.add("selected");
  };

  // Emit: the chosen topic's subscribers, and its example payload unless the user has written one
  window.wbTopicChanged = function (select) {
    var option = select.selectedOptions[0];
    var form = select.closest("form");
    document.getElementById("subs").textContent = option.dataset.subs || "no subscribers";
    var data = form.querySelector("[name=data]");
    var previous = form.dataset.example === undefined ? data.defaultValue : form.dataset.example;
    if (data.value === previous) data.value = option.dataset.example || "{}";
    form.dataset.example = option.dataset.example || "{}";
  };

  window.wbEditState = function (button) {
    var form = button.closest("form");
    form.querySelector("pre.json").hidden = true;
    form.querySelector("textarea").hidden = false;
    form.querySelector("button[type=submit]").hidden = false;
    button.hidden = true;
  };
})();
