// The demo page: everything goes through task-ferry-drf's REST API.
//   GET  <api>            the list (refreshed every few seconds)
//   POST <api>            start a job
//   GET  <api><id>/events/  live progress (server-sent events); polling GET <api><id>/ instead
//                         when EventSource is missing or a stream fails (or with ?live=poll)
//   POST <api><id>/cancel/, <api><id>/retry/
//   GET  <api><id>/logs/?after=<seq>   the job's log, followed while the job runs
"use strict";

(() => {
  const API = document.querySelector('meta[name="api-root"]').content;
  const CSRF = document.querySelector('meta[name="csrf-token"]').content;
  const ENDED = new Set(["finished", "failed", "cancelled"]);
  const CANCELLABLE = new Set(["pending", "started", "retrying"]);
  const RETRYABLE = new Set(["failed", "cancelled"]);
  const POLL_MS = 1000;
  const LIST_REFRESH_MS = 5000;
  // Browsers allow about six connections per host over HTTP/1.1; keep some for the API calls.
  const MAX_STREAMS = 4;

  const sseAvailable = typeof window.EventSource === "function";
  const forcePolling = new URLSearchParams(window.location.search).get("live") === "poll";
  let mode = sseAvailable && !forcePolling ? "sse" : "poll";
  let modeReason = !sseAvailable ? "this browser has no EventSource" : forcePolling ? "?live=poll" : "";

  const jobs = new Map(); // id -> {data, el, follower, logs}
  const $ = (selector, root = document) => root.querySelector(selector);

  function showMode() {
    const el = $("#transport");
    el.dataset.mode = mode;
    el.textContent =
      mode === "sse"
        ? "server-sent events"
        : `polling every ${POLL_MS / 1000} s (${modeReason})`;
  }

  function say(message) {
    $("#status").textContent = message;
  }

  async function api(method, url, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") init.headers["X-CSRFToken"] = CSRF;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      return { ok: false, status: 0, data: { detail: `The server did not answer (${error.message}).` } };
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    return { ok: response.ok, status: response.status, data };
  }

  function problem(result) {
    const data = result.data;
    if (data && typeof data.detail === "string") return data.detail;
    if (data) return JSON.stringify(data);
    return `HTTP ${result.status}`;
  }

  // ── One row per job ──────────────────────────────────────────────────────────

  function entryFor(data) {
    let entry = jobs.get(data.id);
    if (entry) return entry;
    const el = $("#job-template").content.firstElementChild.cloneNode(true);
    el.dataset.jobId = String(data.id);
    el.id = `job-${data.id}`;
    const logsPanel = $(".logs", el);
    logsPanel.id = `logs-${data.id}`;
    $(".logs-toggle", el).setAttribute("aria-controls", logsPanel.id);
    $(".logs-heading", el).textContent = `Log of job ${data.id}`;
    entry = { data, el, follower: null, logs: { open: false, after: 0, timer: null, busy: false } };
    jobs.set(data.id, entry);
    $(".cancel", el).addEventListener("click", () => cancel(entry));
    $(".retry", el).addEventListener("click", () => retry(entry));
    $(".logs-toggle", el).addEventListener("click", () => toggleLogs(entry));
    // Newest first.
    const list = $("#jobs");
    const after = [...list.children].find((li) => Number(li.dataset.jobId) < data.id);
    list.insertBefore(el, after || null);
    $("#no-jobs").hidden = true;
    render(entry, data);
    return entry;
  }

  function render(entry, data) {
    const previous = entry.data;
    const wasEnded = ENDED.has(previous.state);
    const { el } = entry;
    const id = data.id;
    let pct = Math.max(0, Math.min(100, Number(data.progress_percentage) || 0));
    if (data.state === "cancelled" && data.attempts === previous.attempts && pct < (entry.shown || 0)) {
      // A running job cancelled through the API reads 0 % until its worker notices the cancel
      // and records how far it got; keep showing where it was meanwhile.
      data = { ...data, progress_percentage: entry.shown, progress_state: data.progress_state || previous.progress_state };
      pct = entry.shown;
    }
    entry.data = data;
    entry.shown = pct;
    const ended = ENDED.has(data.state);
    const stateText = data.cancel_requested && !ended ? "cancelling" : data.state;
    el.dataset.state = data.state;
    $(".job-title", el).textContent =
      `Job ${id} · ${data.type}` + (data.attempts > 1 ? ` · attempt ${data.attempts}` : "");
    $(".state", el).textContent = stateText;
    $(".state", el).className = `state state-${data.state}`;
    $(".pct", el).textContent = `${pct}%`;
    const bar = $(".bar", el);
    bar.setAttribute("aria-valuenow", String(pct));
    bar.setAttribute("aria-valuetext", `${pct}%, ${stateText}${data.progress_state ? `: ${data.progress_state}` : ""}`);
    bar.setAttribute("aria-label", `Progress of job ${id}`);
    $(".fill", bar).style.width = `${pct}%`;
    $(".label", el).textContent = data.progress_state || (data.state === "pending" ? "Waiting for a worker…" : "");
    const error = $(".error", el);
    error.textContent = data.human_readable_error || data.error || "";
    error.hidden = !error.textContent;
    const cancelButton = $(".cancel", el);
    cancelButton.disabled = !CANCELLABLE.has(data.state) || Boolean(data.cancel_requested);
    cancelButton.setAttribute("aria-label", `Cancel job ${id}`);
    const retryButton = $(".retry", el);
    retryButton.disabled = !RETRYABLE.has(data.state);
    retryButton.setAttribute("aria-label", `Retry job ${id}`);
    const toggle = $(".logs-toggle", el);
    toggle.setAttribute("aria-label", `${entry.logs.open ? "Hide" : "Show"} logs of job ${id}`);
    if (ended && !wasEnded && entry.logs.open) fetchLogs(entry); // read the last lines
  }

  // ── Following a job: an event stream, or polling ─────────────────────────────

  function stopFollowing(entry) {
    const follower = entry.follower;
    entry.follower = null;
    if (follower && follower.source) follower.source.close();
    if (follower && follower.timer) clearTimeout(follower.timer);
  }

  function streams() {
    let count = 0;
    for (const entry of jobs.values()) if (entry.follower && entry.follower.source) count += 1;
    return count;
  }

  function follow(entry) {
    stopFollowing(entry);
    if (ENDED.has(entry.data.state)) return;
    if (mode === "sse" && streams() < MAX_STREAMS) stream(entry);
    else poll(entry);
  }

  function stream(entry) {
    const source = new EventSource(`${API}${entry.data.id}/events/`);
    const follower = { source, received: false };
    entry.follower = follower;
    const onEvent = (event) => {
      if (entry.follower !== follower) return;
      follower.received = true;
      render(entry, JSON.parse(event.data));
    };
    source.addEventListener("progress", onEvent);
    source.addEventListener("end", (event) => {
      onEvent(event);
      source.close();
      if (entry.follower === follower) entry.follower = null;
    });
    source.addEventListener("error", () => {
      if (entry.follower !== follower) return;
      // After a first event the browser reconnects by itself (the stream says `retry:`);
      // a stream that never delivered, or that the browser gave up on, means this
      // server (or a proxy in front of it) cannot stream: poll from now on.
      if (source.readyState === EventSource.CLOSED || !follower.received) {
        source.close();
        mode = "poll";
        modeReason = "an event stream failed";
        showMode();
        poll(entry);
      }
    });
  }

  function poll(entry) {
    stopFollowing(entry);
    const follower = { timer: null };
    entry.follower = follower;
    const tick = async () => {
      if (entry.follower !== follower) return;
      const result = await api("GET", `${API}${entry.data.id}/`);
      if (entry.follower !== follower) return;
      if (result.ok) render(entry, result.data);
      if (result.status === 404 || ENDED.has(entry.data.state)) {
        entry.follower = null;
        return;
      }
      follower.timer = setTimeout(tick, POLL_MS);
    };
    tick();
  }

  // ── Actions ──────────────────────────────────────────────────────────────────

  async function start(event) {
    event.preventDefault();
    const form = event.target;
    const values = {
      regions: Number.parseInt(form.regions.value, 10),
      seconds: Number.parseFloat(form.seconds.value),
      fail_first_attempt: form.fail_first_attempt.checked,
    };
    const button = $("#start");
    button.disabled = true;
    say("Starting a job…");
    try {
      const result = await api("POST", API, { type: "report", values });
      if (!result.ok) {
        say(`Could not start a job: ${problem(result)}`);
        return;
      }
      const entry = entryFor(result.data);
      render(entry, result.data);
      follow(entry);
      say(`Started job ${result.data.id}.`);
    } finally {
      button.disabled = false;
    }
  }

  async function cancel(entry) {
    const result = await api("POST", `${API}${entry.data.id}/cancel/`);
    if (!result.ok) {
      say(`Could not cancel job ${entry.data.id}: ${problem(result)}`);
      return;
    }
    render(entry, result.data);
    if (ENDED.has(result.data.state)) stopFollowing(entry);
    say(`Job ${entry.data.id} ${result.data.state === "cancelled" ? "cancelled" : "is being cancelled"}.`);
  }

  async function retry(entry) {
    const result = await api("POST", `${API}${entry.data.id}/retry/`);
    if (!result.ok) {
      say(`Could not retry job ${entry.data.id}: ${problem(result)}`);
      return;
    }
    render(entry, result.data);
    follow(entry);
    if (entry.logs.open) fetchLogs(entry);
    say(`Job ${entry.data.id} will run again.`);
  }

  // ── Logs ─────────────────────────────────────────────────────────────────────

  function toggleLogs(entry) {
    const logs = entry.logs;
    logs.open = !logs.open;
    const toggle = $(".logs-toggle", entry.el);
    toggle.setAttribute("aria-expanded", String(logs.open));
    toggle.textContent = logs.open ? "Hide logs" : "Show logs";
    toggle.setAttribute("aria-label", `${logs.open ? "Hide" : "Show"} logs of job ${entry.data.id}`);
    $(".logs", entry.el).hidden = !logs.open;
    if (logs.open) fetchLogs(entry);
    else clearTimeout(logs.timer);
  }

  function addLine(entry, line) {
    const item = document.createElement("li");
    item.className = `log-line level-${line.level}`;
    item.dataset.seq = String(line.seq);
    const time = new Date(line.created_at);
    const level = document.createElement("span");
    level.className = "level";
    level.textContent = line.level;
    item.append(`${Number.isNaN(time.getTime()) ? "" : time.toLocaleTimeString()} `, level, ` ${line.message}`);
    $(".log-lines", entry.el).append(item);
  }

  async function fetchLogs(entry) {
    const logs = entry.logs;
    if (!logs.open) return;
    if (logs.busy) {
      logs.again = true;
      return;
    }
    clearTimeout(logs.timer);
    logs.busy = true;
    // Lines written before the job ended are all there once it has ended.
    const endedBefore = ENDED.has(entry.data.state);
    const status = $(".logs-status", entry.el);
    let failed = false;
    try {
      let url = `${API}${entry.data.id}/logs/?after=${logs.after}`;
      while (url) {
        const result = await api("GET", url);
        if (!result.ok) {
          failed = true;
          status.textContent =
            result.status === 404
              ? "This server has no log endpoint for the job (GET …/logs/ answered 404)."
              : `Could not read the log: ${problem(result)}`;
          break;
        }
        for (const line of result.data.results) {
          if (line.seq > logs.after) addLine(entry, line);
          logs.after = Math.max(logs.after, line.seq);
        }
        if (typeof result.data.next_after === "number") logs.after = Math.max(logs.after, result.data.next_after);
        url = result.data.has_more ? result.data.next || `${API}${entry.data.id}/logs/?after=${logs.after}` : null;
      }
    } finally {
      logs.busy = false;
    }
    const count = $(".log-lines", entry.el).children.length;
    if (!failed) {
      status.textContent = `${count} line${count === 1 ? "" : "s"}${endedBefore ? "." : "; following the job…"}`;
    }
    const again = logs.again;
    logs.again = false;
    if (logs.open && (again || (!endedBefore && !failed))) {
      logs.timer = setTimeout(() => fetchLogs(entry), again ? 0 : POLL_MS);
    }
  }

  // ── The list ─────────────────────────────────────────────────────────────────

  async function refresh() {
    const result = await api("GET", `${API}?limit=20`);
    if (result.ok) {
      for (const data of result.data) {
        const known = jobs.has(data.id);
        const entry = entryFor(data);
        // A followed job is kept current by its stream or poll; the list may be older.
        if (!entry.follower) {
          if (known) render(entry, data);
          follow(entry);
        }
      }
    } else if (result.status === 401 || result.status === 403) {
      say(`The API refused the list (${problem(result)}); reload the page to sign in again.`);
    }
    setTimeout(refresh, LIST_REFRESH_MS);
  }

  $("#start-form").addEventListener("submit", start);
  showMode();
  refresh();
})();
