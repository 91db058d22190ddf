// The build log: a resumable server-sent events stream and the dialog showing it.
//
// LogStream follows api/builds/{id}/events. Every event carries an id that grows by build;
// the stream remembers the last id it handed on and ignores anything at or below it, so a
// reconnect (ours, with ?last_event_id=N, after any error) never repeats or skips a line.
// It reconnects itself rather than trusting EventSource's automatic retry, because it
// first asks whether the build still exists (404: evicted; 403: session expired).
//
// Two signals without an id (an EventSource hands such an event the previous id, so they are
// told apart by name or content, never by id): the `phase` note with `detached: true` (the
// service is restarting; the build goes on; the stream ends and we resume when it is back),
// and `keepalive` events every `keepalive` seconds while the build is quiet. When nothing at
// all arrived for SILENT_INTERVALS keepalive intervals (a stream a proxy keeps open after
// the service died), the stream is dropped and resumed like any other lost connection.

import { ApiError } from "./api.js";
import { appendAnsi, initialState } from "./ansi.js";
import { openDialog, setupDialog } from "./dialogs.js";
import { summarizeFailure } from "./failure.js";
import { formatDuration } from "./util.js";
import { statusBadge } from "./status.js";

const EVENT_TYPES = ["phase", "log", "done"];
const MAX_BACKOFF_MS = 10000;
const SILENT_INTERVALS = 3;

export class LogStream {
  /**
   * api: from createApi; buildId: the build; handlers: onEvent(type, data, id),
   * onStatus(state, detail) with state "connecting" | "live" | "reconnecting" |
   * "restarting" | "done" | "gone"; keepalive: the server's keepalive interval in seconds
   * (0: none, so silence never counts as a lost connection).
   */
  constructor(api, buildId, { onEvent, onStatus, keepalive = 0 }) {
    this.api = api;
    this.buildId = buildId;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.lastId = 0;
    this.source = null;
    this.retryTimer = null;
    this.failures = 0;
    this.finished = false;
    this.stopped = false;
    this.connections = 0;
    this.restarting = false; // told so by the service; cleared once a stream is open again
    this.silentMs = keepalive > 0 ? SILENT_INTERVALS * keepalive * 1000 : 0;
    this.lastHeard = 0;
    this.watchdog = null; // one timer per stream: fires when nothing came for silentMs
    this.onOnline = () => this.reconnectSoon(0);
    window.addEventListener("online", this.onOnline);
  }

  start() {
    this.open();
  }

  open() {
    if (this.stopped || this.finished) return;
    // EventSource cannot send headers: the XSRF token goes in the query, as JupyterHub's
    // own spawn-progress stream does it; the resume point too
    const query = new URLSearchParams({ _xsrf: this.api.xsrf });
    if (this.lastId) query.set("last_event_id", String(this.lastId));
    const path = `api/builds/${encodeURIComponent(this.buildId)}/events?${query}`;
    const source = new EventSource(this.api.url(path), { withCredentials: true });
    this.source = source;
    this.connections += 1;
    this.onStatus(this.connections === 1 ? "connecting" : this.lostStatus());
    this.heard();
    source.onopen = () => {
      this.failures = 0;
      this.restarting = false;
      this.heard();
      this.onStatus("live");
    };
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (event) => this.handle(type, event));
    }
    source.addEventListener("keepalive", () => this.heard());
    source.onerror = () => {
      if (source !== this.source) return;
      // drop EventSource's own retry; ours resumes from lastId after checking the build
      source.close();
      this.source = null;
      if (!this.finished && !this.stopped) this.reconnectSoon();
    };
  }

  lostStatus() {
    return this.restarting ? "restarting" : "reconnecting";
  }

  /** Something arrived (or a connection is being made): silence counts from now. */
  heard() {
    this.lastHeard = Date.now();
    if (this.silentMs && !this.watchdog) {
      this.watchdog = setTimeout(() => this.onSilence(), this.silentMs);
    }
  }

  onSilence() {
    this.watchdog = null;
    if (!this.source || this.finished || this.stopped) return;
    const silent = Date.now() - this.lastHeard;
    if (silent < this.silentMs) {
      this.watchdog = setTimeout(() => this.onSilence(), this.silentMs - silent);
      return;
    }
    this.drop(); // nothing for SILENT_INTERVALS keepalives: the stream is dead
  }

  handle(type, event) {
    this.heard();
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    if (type === "phase" && data.detached) {
      // the id-less note (lastEventId is the previous event's): no event of the build
      this.restarting = true;
      this.onStatus("restarting", data.message);
      return;
    }
    const id = Number.parseInt(event.lastEventId, 10);
    if (Number.isFinite(id)) {
      if (id <= this.lastId) return; // already shown
      this.lastId = id;
    }
    this.onEvent(type, data, id);
    if (type === "done") {
      this.finished = true;
      this.close();
      this.onStatus("done");
    }
  }

  reconnectSoon(delay) {
    if (this.finished || this.stopped) return;
    clearTimeout(this.retryTimer);
    const wait = delay ?? Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.failures);
    this.onStatus(this.lostStatus());
    this.retryTimer = setTimeout(() => this.check(), wait);
  }

  async check() {
    if (this.finished || this.stopped || this.source) return;
    try {
      await this.api.get(`api/builds/${encodeURIComponent(this.buildId)}`);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 403)) {
        this.onStatus("gone", error);
        this.stop();
        return;
      }
      this.failures += 1;
      this.reconnectSoon();
      return;
    }
    this.open();
  }

  /** For tests and the "network dropped" case: lose the connection, then resume. */
  drop() {
    if (!this.source) return;
    this.source.close();
    this.source = null;
    this.reconnectSoon(0);
  }

  close() {
    clearTimeout(this.retryTimer);
    clearTimeout(this.watchdog);
    this.watchdog = null;
    if (this.source) this.source.close();
    this.source = null;
  }

  stop() {
    this.stopped = true;
    this.close();
    window.removeEventListener("online", this.onOnline);
  }
}

const CONNECTION_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Connection lost: reconnecting…",
  restarting: "The service is restarting; reconnecting…",
  done: "Finished",
  gone: "",
};

/** The logs dialog: phase, elapsed time, connection state, the log and a download link. */
export class LogDialog {
  /** keepalive: the service's keepalive interval in seconds (see LogStream). */
  constructor(api, dialog, { onDone, keepalive = 0 } = {}) {
    this.api = api;
    this.keepalive = keepalive;
    this.dialog = setupDialog(dialog);
    this.onDone = onDone;
    this.output = dialog.querySelector("#logs-output");
    this.title = dialog.querySelector("#logs-name");
    this.phase = dialog.querySelector("#logs-phase");
    this.phaseMessage = dialog.querySelector("#logs-message");
    this.elapsed = dialog.querySelector("#logs-elapsed");
    this.connection = dialog.querySelector("#logs-connection");
    this.download = dialog.querySelector("#logs-download");
    this.jump = dialog.querySelector("#logs-jump");
    this.summary = dialog.querySelector("#logs-summary");
    this.lines = [];
    this.stream = null;
    this.timer = null;
    this.build = null;
    this.follow = true;
    this.output.addEventListener("scroll", () => {
      this.follow = this.atBottom();
      if (this.follow) this.jump.hidden = true;
    });
    this.jump.addEventListener("click", () => {
      this.follow = true;
      this.scrollToEnd();
      this.jump.hidden = true;
    });
    dialog.addEventListener("close", () => this.stop());
  }

  atBottom() {
    const o = this.output;
    return o.scrollHeight - o.scrollTop - o.clientHeight < 8;
  }

  scrollToEnd() {
    this.output.scrollTop = this.output.scrollHeight;
  }

  /** Open for a build (id) of an environment (displayName); stream from the start. */
  open(buildId, displayName) {
    this.stop();
    this.output.replaceChildren();
    this.lines = [];
    this.summary.hidden = true;
    this.ansi = initialState();
    this.follow = true;
    this.jump.hidden = true;
    this.build = null;
    this.title.textContent = displayName;
    this.dialog.dataset.buildId = buildId;
    this.phaseMessage.textContent = "";
    this.setPhase({ state: "queued" }, "…");
    this.elapsed.textContent = "";
    this.download.href = this.api.url(`api/builds/${encodeURIComponent(buildId)}/logs`);
    this.download.setAttribute("download", `build-${buildId}.log`);
    openDialog(this.dialog);
    this.api
      .get(`api/builds/${encodeURIComponent(buildId)}`)
      .then((build) => {
        if (this.dialog.dataset.buildId !== buildId || this.build?.finished) return;
        const live = this.build;
        this.build = { ...build };
        if (live) Object.assign(this.build, { state: live.state, position: live.position });
        this.setPhase(this.build);
        this.tick();
      })
      .catch(() => {}); // the stream reports a missing build
    this.stream = new LogStream(this.api, buildId, {
      onEvent: (type, data) => this.onEvent(type, data),
      onStatus: (state, detail) => this.onStatus(state, detail),
      keepalive: this.keepalive,
    });
    this.stream.start();
    this.timer = setInterval(() => this.tick(), 1000);
  }

  onEvent(type, data) {
    if (type === "log") {
      this.appendLine(String(data.message ?? ""));
    } else if (type === "phase") {
      this.build = { ...(this.build || {}), state: data.phase, position: data.position ?? null };
      if (data.phase !== "queued" && !this.build.started) {
        this.build.started = new Date().toISOString();
      }
      this.setPhase(this.build);
      this.phaseMessage.textContent = data.error || data.message || "";
    } else if (type === "done") {
      this.build = data;
      this.setPhase(data);
      this.phaseMessage.textContent = data.error || "";
      if (data.state === "failed") this.showSummary();
      this.tick();
      if (this.onDone) this.onDone(data);
    }
  }

  /** Above the log: the failing step and its last lines (failure.js), when recognised. */
  showSummary() {
    const found = summarizeFailure(this.lines);
    if (!found) return;
    this.summary.querySelector("#logs-summary-step").textContent = found.step || "";
    this.summary.querySelector("#logs-summary-step-line").hidden = !found.step;
    this.summary.querySelector("#logs-summary-lines").textContent = found.lines.join("\n");
    this.summary.hidden = false;
  }

  appendLine(text) {
    this.lines.push(text);
    const follow = this.follow;
    const line = document.createElement("span");
    line.className = "r2d-log-line";
    appendAnsi(line, text, this.ansi);
    line.append("\n");
    this.output.append(line);
    if (follow) this.scrollToEnd();
    else this.jump.hidden = false;
  }

  setPhase(build, text) {
    this.phase.replaceChildren(statusBadge(build, text));
  }

  onStatus(state, detail) {
    this.dialog.dataset.connection = state;
    if (state === "gone") {
      const message =
        detail && detail.status === 404
          ? "This build's log is no longer kept (the service keeps recent builds in memory)."
          : (detail && detail.message) || "The log cannot be shown.";
      this.connection.textContent = message;
      this.stopTimer();
      return;
    }
    this.connection.textContent = CONNECTION_TEXT[state] ?? "";
    if (state === "done") this.stopTimer();
  }

  tick() {
    const b = this.build;
    if (!b) return;
    const start = Date.parse(b.started || b.created || "");
    if (Number.isNaN(start)) return;
    const end = b.finished ? Date.parse(b.finished) : Date.now();
    const label = b.started ? "" : "waiting ";
    this.elapsed.textContent = `${label}${formatDuration((end - start) / 1000)}`;
  }

  stopTimer() {
    clearInterval(this.timer);
    this.timer = null;
  }

  stop() {
    this.stopTimer();
    if (this.stream) this.stream.stop();
    this.stream = null;
  }
}
