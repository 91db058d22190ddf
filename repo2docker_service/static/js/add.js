// The "Add environment" dialog: checks input like the server does, posts api/builds and
// shows the server's message when it refuses. Credentials are read from the form only
// when sending and cleared right after every submit; nothing is kept anywhere else.

import { openDialog, setupDialog } from "./dialogs.js";
import { showSuggestions } from "./suggest.js";
import {
  checkCpu,
  checkDisplayName,
  checkMemory,
  checkName,
  checkRef,
  checkRepoUrl,
  deriveName,
  expectedName,
} from "./validate.js";

const PRIVATE_HINT = "check the URL, or add credentials under “Private repository”.";

/**
 * The field a refusal is about, in words, with the server's own reason kept after them:
 * the error JSON's `field` (`repo`, `ref`; on 400s and the sources' 422s) and
 * `suggestions` (existing branches for an unknown ref), else the sources' 422 messages
 * ("could not read <repo>: ...", "ref 'x' not found in <repo>", "commit <sha> not found
 * in <repo>", "timed out after N s contacting <repo>"); null for anything else. Shared
 * with the hub's spawn form (spawnform.js), which has no credentials fields: `privateHint`
 * says what to do about a private repository there.
 */
export function fieldOf(error, { privateHint = PRIVATE_HINT } = {}) {
  const text = String(error?.message || "");
  const suggestions = Array.isArray(error?.suggestions) ? error.suggestions : [];
  let name = error?.field === "repo" || error?.field === "ref" ? error.field : null;
  // a refused URL or ref (400): the server's sentence, on its field
  if (error?.status === 400 && name) return { name, message: text, suggestions };
  if (error?.status !== 422) return null;
  if (!name && /^(could not read |timed out after .* contacting )/.test(text)) name = "repo";
  if (!name && /^(ref '.*'|commit [0-9a-f]{40}) not found in /.test(text)) name = "ref";
  if (name === "repo") {
    const words = /^timed out after /.test(text)
      ? "The repository's server did not answer in time."
      : `No repository at this URL, or it is private: ${privateHint}`;
    return { name, message: `${words} (${text})`, suggestions: [] };
  }
  if (name === "ref") {
    return {
      name,
      message: `No such branch, tag or commit in this repository: ${text}`,
      suggestions,
    };
  }
  return null;
}

export class AddDialog {
  /**
   * info: api/info; onResult({status, data, request}) after the server accepted;
   * environments({shared}): [{name, repo}] of the namespace a build goes to (so the name
   * placeholder shows the name the server will derive: never one another repository holds).
   */
  constructor(api, dialog, { info, onResult, environments = () => [] }) {
    this.api = api;
    this.dialog = setupDialog(dialog);
    this.form = dialog.querySelector("form");
    this.info = info;
    this.onResult = onResult;
    this.environments = environments;
    this.error = dialog.querySelector("#add-error");
    this.submit = dialog.querySelector("#add-submit");
    this.field = (name) => this.form.elements.namedItem(name);
    this.setupLimits();
    const shared = dialog.querySelector("#add-shared-group");
    shared.hidden = !(info.user.scopes || []).includes("admin");
    this.field("repo").addEventListener("input", () => this.showDerivedName());
    this.field("shared").addEventListener("change", () => this.showDerivedName());
    for (const input of this.form.querySelectorAll("input, select")) {
      input.addEventListener("input", () => this.clearInvalid(input));
    }
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    dialog.addEventListener("close", () => this.clearCredentials());
  }

  showDerivedName() {
    const repo = this.field("repo").value.trim();
    const envs = this.environments({ shared: this.field("shared").checked });
    const hosts = this.info.case_insensitive_repo_hosts || [];
    this.field("name").placeholder = repo
      ? expectedName(repo, envs, hosts) || deriveName(repo)
      : "derived from the repository";
  }

  setupLimits() {
    const profiles = Array.isArray(this.info.machine_profiles) ? this.info.machine_profiles : [];
    const profileGroup = this.dialog.querySelector("#add-profile-group");
    const limitsGroup = this.dialog.querySelector("#add-limits-group");
    profileGroup.hidden = profiles.length === 0;
    limitsGroup.hidden = profiles.length > 0;
    const select = this.field("profile");
    select.replaceChildren();
    for (const profile of profiles) {
      const name = String(profile.name ?? profile.slug ?? "");
      if (!name) continue;
      const option = document.createElement("option");
      option.value = name;
      option.textContent = String(profile.display_name || name);
      select.append(option);
    }
    select.disabled = profiles.length === 0;
  }

  open() {
    this.clearErrors();
    openDialog(this.dialog, { focus: this.field("repo") });
  }

  clearInvalid(input) {
    input.classList.remove("is-invalid");
    input.removeAttribute("aria-invalid");
  }

  clearErrors() {
    this.error.hidden = true;
    this.error.textContent = "";
    for (const input of this.form.querySelectorAll(".is-invalid")) this.clearInvalid(input);
  }

  clearCredentials() {
    this.field("cred_username").value = "";
    this.field("cred_password").value = "";
  }

  invalid(name, message, suggestions = []) {
    const input = this.field(name);
    input.classList.add("is-invalid");
    input.setAttribute("aria-invalid", "true");
    const feedback = this.dialog.querySelector(`#${input.id}-feedback`);
    if (feedback) showSuggestions(feedback, input, message, suggestions);
  }

  /** Returns the request body, or null after marking the invalid fields. */
  read() {
    const value = (name) => this.field(name).value.trim();
    const body = { repo: value("repo") };
    const problems = [];
    const check = (name, problem) => {
      if (problem) {
        problems.push(name);
        this.invalid(name, problem);
      }
    };
    check("repo", checkRepoUrl(body.repo, this.info.allowed_repo_schemes || ["https"]));
    check("ref", checkRef(value("ref")));
    check("name", checkName(value("name")));
    check("display_name", checkDisplayName(value("display_name")));
    if (value("ref")) body.ref = value("ref");
    if (value("name")) body.name = value("name");
    if (value("display_name")) body.display_name = value("display_name");
    if (!this.field("profile").disabled) {
      if (value("profile")) body.profile = value("profile");
    } else {
      check("cpu", checkCpu(value("cpu")));
      check("memory", checkMemory(value("memory")));
      if (value("cpu")) body.cpu = value("cpu");
      if (value("memory")) body.memory = value("memory");
    }
    if (!this.dialog.querySelector("#add-shared-group").hidden && this.field("shared").checked) {
      body.shared = true;
    }
    if (problems.length) {
      this.field(problems[0]).focus();
      return null;
    }
    return body;
  }

  async send() {
    this.clearErrors();
    const body = this.read();
    const password = this.field("cred_password").value;
    const username = this.field("cred_username").value.trim();
    // the secret leaves the form now, whatever happens next
    this.clearCredentials();
    if (!body) return;
    const request = { ...body };
    if (password) body.credentials = { username, password };
    this.submit.disabled = true;
    this.dialog.setAttribute("aria-busy", "true");
    const idle = this.submit.textContent;
    this.submit.textContent = "Checking the repository…";
    try {
      const result = await this.api.post("api/builds", body);
      this.form.reset();
      this.field("name").placeholder = "derived from the repository";
      this.dialog.close("ok");
      this.onResult({ ...result, request });
    } catch (error) {
      const field = error.status === 409 && body.name ? null : fieldOf(error);
      if (error.status === 409 && body.name) {
        // the name belongs to an environment of another repository: say so at the name
        this.invalid("name", error.message);
        this.field("name").focus();
      } else if (field) {
        this.invalid(field.name, field.message, field.suggestions);
        this.field(field.name).focus();
      } else {
        this.error.textContent = error.message;
        this.error.hidden = false;
        this.error.focus();
      }
    } finally {
      delete body.credentials;
      this.submit.disabled = false;
      this.submit.textContent = idle;
      this.dialog.removeAttribute("aria-busy");
    }
  }
}
