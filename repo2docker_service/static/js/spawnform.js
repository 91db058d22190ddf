// The hub's spawn page: the options form's "Build from a repository" choice
// (hub/buildform.py renders it, hidden; this script shows it and does the work).
//
// 1. Build asks the hub for a short-lived API token of the logged-in user with only the
//    scopes the form names (POST <hub>/api/users/<name>/tokens with the hub's cookie and
//    the page's XSRF token, window.jhdata.xsrf_token, as JupyterHub 5/6 want for a cookie
//    POST). The service's own cookie is not there on the hub's pages: the token is.
// 2. POST api/builds with it; a refusal goes on the URL or ref field (the error JSON's
//    `field`, with `suggestions` for an unknown ref), anything else in the status line.
// 3. The build's events (GET api/builds/{id}/events, read with fetch because EventSource
//    cannot send the token) fill the log; a dropped stream resumes after the last event.
// 4. Built: the image becomes a radio button of the form, selected; Start posts the form
//    and the spawner checks the image against the service's list. The token is deleted.
// Start while "Build from a repository" is chosen and nothing is built yet says so on the
// URL field instead of posting an empty choice.

import { fieldOf } from "./add.js";
import { appendAnsi, initialState } from "./ansi.js";
import { errorFrom } from "./api.js";
import { showSuggestions } from "./suggest.js";
import { checkRef } from "./validate.js";

const MAX_RECONNECTS = 30;
const PHASE_TEXT = {
  queued: "Queued",
  building: "Building…",
  pushing: "Pushing the image to the registry…",
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function readJson(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** The form's hub token: made on first use, deleted when a build ends or the page goes. */
class HubToken {
  constructor(hub, scopes, seconds) {
    this.hub = hub;
    this.scopes = scopes;
    this.seconds = seconds;
    this.value = null;
    this.id = null;
  }

  url(suffix = "") {
    return `${this.hub.base_url}api/users/${encodeURIComponent(this.hub.user)}/tokens${suffix}`;
  }

  async get() {
    if (this.value) return this.value;
    const body = { scopes: this.scopes, note: "repo2docker-service: Build from the spawn page" };
    if (this.seconds > 0) body.expires_in = this.seconds;
    const response = await fetch(this.url(), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-XSRFToken": this.hub.xsrf_token },
      body: JSON.stringify(body),
    });
    const data = await readJson(response);
    if (!response.ok || !data?.token) throw errorFrom(response, data);
    this.value = data.token;
    this.id = data.id;
    return this.value;
  }

  drop({ keepalive = false } = {}) {
    if (!this.id) return;
    const id = this.id;
    this.value = null;
    this.id = null;
    fetch(this.url(`/${encodeURIComponent(id)}`), {
      method: "DELETE",
      keepalive,
      credentials: "same-origin",
      headers: { "X-XSRFToken": this.hub.xsrf_token },
    }).catch(() => {});
  }
}

/**
 * Follow one build's events from `lastId` until the stream ends. Calls onEvent(type, data,
 * id) for each; returns the `done` event's data, or null when the stream ended without it.
 */
async function readEvents(url, token, onEvent) {
  const response = await fetch(url, {
    headers: { Authorization: `token ${token}`, Accept: "text/event-stream" },
    cache: "no-store",
  });
  if (!response.ok) throw errorFrom(response, await readJson(response));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return null;
    buffer += value.replace(/\r\n?/g, "\n");
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf("\n\n");
      const event = { id: 0, type: "message", data: "" };
      for (const line of block.split("\n")) {
        const colon = line.indexOf(":");
        if (colon <= 0) continue; // comments (keepalives) and blank lines
        const key = line.slice(0, colon);
        const text = line.slice(colon + 1).replace(/^ /, "");
        if (key === "id") event.id = Number.parseInt(text, 10) || 0;
        else if (key === "event") event.type = text;
        else if (key === "data") event.data += text;
      }
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        continue;
      }
      onEvent(event.type, data, event.id);
      if (event.type === "done") {
        reader.cancel().catch(() => {});
        return data;
      }
    }
  }
}

class BuildChoice {
  constructor(root, hub) {
    this.root = root;
    this.hub = hub;
    const data = root.dataset;
    this.service = data.service;
    this.token = new HubToken(
      hub,
      (data.scopes || "").split(" ").filter(Boolean),
      Number(data.tokenSeconds) || 0,
    );
    this.row = document.getElementById("r2d-build-choice-row");
    this.choice = document.getElementById("r2d-build-choice");
    this.form = this.choice.form;
    this.repo = document.getElementById("r2d-build-repo");
    this.ref = document.getElementById("r2d-build-ref");
    this.button = document.getElementById("r2d-build-button");
    this.status = document.getElementById("r2d-build-status");
    this.log = document.getElementById("r2d-build-log");
    this.busy = false;
    this.built = 0;
  }

  setup() {
    this.row.hidden = false;
    this.showPanel();
    this.form.addEventListener("change", (event) => {
      if (event.target.name === "image") this.showPanel();
    });
    this.button.addEventListener("click", () => this.build());
    for (const input of [this.repo, this.ref]) {
      input.addEventListener("input", () => this.clearInvalid(input));
      input.addEventListener("keydown", (event) => {
        if (event.key !== "Enter") return;
        event.preventDefault(); // Enter builds here; it never starts an empty choice
        this.build();
      });
    }
    // before the hub's own submit handler (it shows a spinner): nothing to start yet
    this.form.addEventListener(
      "submit",
      (event) => {
        if (!this.choice.checked) return;
        event.preventDefault();
        event.stopImmediatePropagation();
        this.invalid(
          this.repo,
          this.busy
            ? "The build is still running: Start when it is built (it is then selected)."
            : "Build an environment first: enter a repository and press Build.",
        );
      },
      { capture: true },
    );
    window.addEventListener("pagehide", () => this.token.drop({ keepalive: true }));
  }

  showPanel() {
    // the panel stays once something was built or is building, so its log stays readable
    this.root.hidden = !this.choice.checked && !this.root.dataset.state;
  }

  say(text, kind = "") {
    this.status.textContent = text;
    this.status.className = `mt-2 mb-2${kind ? ` text-${kind}` : ""}`;
  }

  clearInvalid(input) {
    input.classList.remove("is-invalid");
    input.removeAttribute("aria-invalid");
  }

  invalid(input, message, suggestions = []) {
    input.classList.add("is-invalid");
    input.setAttribute("aria-invalid", "true");
    showSuggestions(document.getElementById(`${input.id}-feedback`), input, message, suggestions);
    input.focus();
  }

  setBusy(busy) {
    this.busy = busy;
    this.button.disabled = busy;
    this.root.setAttribute("aria-busy", busy ? "true" : "false");
  }

  /** The request body, or null after marking the field that is wrong. */
  read() {
    this.clearInvalid(this.repo);
    this.clearInvalid(this.ref);
    const repo = this.repo.value.trim();
    const ref = this.ref.value.trim();
    if (!repo) {
      this.invalid(this.repo, "Enter the URL of a git repository.");
      return null;
    }
    const problem = checkRef(ref);
    if (problem) {
      this.invalid(this.ref, problem);
      return null;
    }
    return ref ? { repo, ref } : { repo };
  }

  async build() {
    if (this.busy) return;
    const body = this.read();
    if (!body) return;
    this.setBusy(true);
    this.root.dataset.state = "checking";
    this.log.replaceChildren();
    this.log.hidden = true;
    this.ansi = initialState();
    this.say("Checking the repository…");
    try {
      const result = await this.submit(body);
      if (result.cached) {
        this.appendLine(`Already built from this commit: ${result.image.image}`);
        this.finish({ ...result.image, state: "built" });
      } else {
        await this.follow(result.build);
      }
    } catch (error) {
      this.refused(error);
    } finally {
      this.setBusy(false);
    }
  }

  async submit(body) {
    const token = await this.token.get();
    const response = await fetch(`${this.service}api/builds`, {
      method: "POST",
      headers: {
        Authorization: `token ${token}`,
        "Content-Type": "application/json",
        Accept: "application/json",
      },
      body: JSON.stringify(body),
      cache: "no-store",
    });
    const data = await readJson(response);
    if (!response.ok) throw errorFrom(response, data);
    return data;
  }

  refused(error) {
    this.token.drop();
    this.root.dataset.state = "refused";
    const field = fieldOf(error, {
      privateHint:
        "check the URL; a private repository is built on the environments page, where " +
        "credentials can be given.",
    });
    if (field) {
      this.say("");
      this.invalid(field.name === "ref" ? this.ref : this.repo, field.message, field.suggestions);
      return;
    }
    this.say(`Cannot build: ${error?.message || error}`, "danger");
  }

  async follow(build) {
    this.root.dataset.state = "building";
    this.root.dataset.buildId = build.id;
    this.say(PHASE_TEXT[build.state] || "Building…");
    let lastId = 0;
    const path = `${this.service}api/builds/${encodeURIComponent(build.id)}/events`;
    for (let attempt = 0; attempt <= MAX_RECONNECTS; attempt++) {
      const url = lastId ? `${path}?last_event_id=${lastId}` : path;
      let done = null;
      try {
        done = await readEvents(url, await this.token.get(), (type, data, id) => {
          if (id) lastId = Math.max(lastId, id);
          this.onEvent(type, data);
        });
      } catch (error) {
        if (error?.status === 403 || error?.status === 404) throw error;
      }
      if (done) {
        this.finish(done);
        return;
      }
      this.say("The connection to the build was lost: reconnecting…");
      await sleep(Math.min(5000, 500 * 2 ** Math.min(attempt, 4)));
    }
    this.say("The build's progress cannot be followed: reload the page to see it.", "danger");
  }

  onEvent(type, data) {
    if (type === "log") this.appendLine(String(data.message ?? ""));
    else if (type === "phase" && PHASE_TEXT[data.phase]) {
      const position = data.phase === "queued" && data.position ? ` (position ${data.position})` : "";
      this.say(`${PHASE_TEXT[data.phase]}${position}`);
    }
  }

  appendLine(text) {
    this.log.hidden = false;
    const atEnd = this.log.scrollTop + this.log.clientHeight >= this.log.scrollHeight - 4;
    appendAnsi(this.log, text.endsWith("\n") ? text : `${text}\n`, this.ansi);
    if (atEnd) this.log.scrollTop = this.log.scrollHeight;
  }

  /** The build ended (`done` data: the build, or the cached image with state "built"). */
  finish(result) {
    this.token.drop();
    this.root.dataset.state = result.state;
    if (result.state !== "built") {
      const why = result.error ? `: ${result.error}` : ".";
      this.say(`The build ${result.state === "failed" ? "failed" : `was ${result.state}`}${why}`, "danger");
      this.appendLine(`Build ${result.state}${why}`);
      return;
    }
    const radio = this.addImage(result);
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true }));
    this.say(`Built ${result.display_name || result.name}. It is selected: press Start.`, "success");
    radio.focus();
  }

  /** The radio button of the built image (an existing one, or a new one before the choice). */
  addImage(result) {
    for (const input of this.form.querySelectorAll('input[type="radio"][name="image"]')) {
      if (input.value === result.image) return input;
    }
    this.built += 1;
    const id = `r2d-image-built-${this.built}`;
    const row = document.createElement("div");
    row.className = "form-check mb-2 repo2docker-image";
    row.dataset.image = result.image;
    const input = document.createElement("input");
    Object.assign(input, { className: "form-check-input", type: "radio", name: "image", id });
    input.value = result.image;
    input.required = true;
    const label = document.createElement("label");
    label.className = "form-check-label";
    label.htmlFor = id;
    const name = document.createElement("strong");
    name.className = "r2d-display-name";
    name.textContent = result.display_name || result.name;
    const badge = document.createElement("span");
    badge.className = "badge text-bg-success ms-1";
    badge.textContent = "new";
    const details = document.createElement("small");
    details.className = "text-body-secondary";
    details.textContent = `${result.repo}@${result.ref} · built just now`;
    label.append(name, " ", badge, document.createElement("br"), details);
    row.append(input, label);
    this.row.before(row);
    return input;
  }
}

function start() {
  const root = document.getElementById("r2d-build");
  const hub = window.jhdata || {};
  // builds are the logged-in user's own: none when an admin spawns for someone else
  if (!root || !hub.user || !hub.base_url || hub.user !== root.dataset.user) return;
  new BuildChoice(root, hub).setup();
}

start();
