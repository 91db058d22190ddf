// An environment's tag history (GET api/images/{owner}/{name}): every commit tag, newest
// first, with the one `latest` names (what the hub offers), the servers running it, and
// for owners and admins "Use this build" (roll back and pin: POST .../latest) and
// "Follow new builds" (unpin: {"tag": null}).

import { openDialog } from "./dialogs.js";
import { el, formatBytes, localTime, relativeTime, shortCommit } from "./util.js";

export class HistoryDialog {
  /** api: createApi(); dialog: #history-dialog; onChanged(message): after latest moved. */
  constructor(api, dialog, { onChanged }) {
    this.api = api;
    this.dialog = dialog;
    this.onChanged = onChanged;
    this.list = dialog.querySelector("#history-list");
    this.pin = dialog.querySelector("#history-pin");
    this.error = dialog.querySelector("#history-error");
    this.row = null;
    this.manage = false;
    this.list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-tag]");
      if (button) this.setLatest(button.dataset.tag || null, button);
    });
    this.pin.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-unpin]");
      if (button) this.setLatest(null, button);
    });
  }

  path() {
    const { ownerSlug, name } = this.row;
    return `api/images/${encodeURIComponent(ownerSlug)}/${encodeURIComponent(name)}`;
  }

  /** row: the table's row (ownerSlug, name, displayName); manage: may roll back. */
  async open(row, manage) {
    this.row = row;
    this.manage = manage;
    this.dialog.querySelector("#history-name").textContent = row.displayName;
    this.list.replaceChildren(el("li", { class: "text-body-secondary" }, "Loading…"));
    this.pin.textContent = "";
    this.error.hidden = true;
    openDialog(this.dialog);
    try {
      this.render(await this.api.get(this.path()));
    } catch (error) {
      this.showError(error.message);
    }
  }

  showError(message) {
    this.error.textContent = message;
    this.error.hidden = false;
  }

  async setLatest(tag, button) {
    button.disabled = true;
    this.error.hidden = true;
    try {
      const { data } = await this.api.post(`${this.path()}/latest`, { tag });
      this.render(data);
      const what = tag ? `now offers build ${tag}` : "follows new builds again";
      this.onChanged(`“${this.row.displayName}” ${what}.`);
      this.pin.querySelector("button")?.focus();
    } catch (error) {
      this.showError(error.message);
      if (button.isConnected) button.disabled = false;
    }
  }

  render(env) {
    const latest = env.history.find((e) => e.latest);
    if (env.pinned) {
      this.pin.replaceChildren(
        el("span", { class: "badge border r2d-note me-1" }, "pinned"),
        `The hub offers build ${latest ? latest.tag : "?"}; new builds are added below but do not replace it. `,
        this.manage
          ? el("button", { type: "button", class: "btn btn-sm btn-outline-primary", dataset: { unpin: "1" } }, "Follow new builds")
          : null,
      );
    } else {
      this.pin.textContent = "The hub offers the newest build; each new build replaces it.";
    }
    this.list.replaceChildren(...env.history.map((entry) => this.item(entry)));
    const seen = env.servers_seen;
    this.dialog.querySelector("#history-servers").textContent = seen
      ? `“running” marks builds that ${seen} use.`
      : "Which servers run a build cannot be told here.";
  }

  item(entry) {
    const badges = [];
    if (entry.latest) badges.push(el("span", { class: "badge text-bg-primary r2d-latest" }, "offered"));
    if (entry.servers?.length) {
      badges.push(el("span", { class: "badge border r2d-note" }, `running: ${entry.servers.join(", ")}`));
    }
    const facts = [
      entry.ref ? el("span", {}, "ref ", el("code", {}, entry.ref)) : null,
      entry.built_at
        ? el("time", { datetime: entry.built_at, title: localTime(entry.built_at) }, relativeTime(entry.built_at))
        : null,
      formatBytes(entry.size) || null,
      entry.build_id ? el("span", { class: "font-monospace" }, `build ${entry.build_id}`) : null,
    ].filter(Boolean);
    const action =
      this.manage && !entry.latest
        ? el(
            "button",
            { type: "button", class: "btn btn-sm btn-outline-primary", dataset: { tag: entry.tag } },
            "Use this build",
            el("span", { class: "visually-hidden" }, ` (${entry.tag})`),
          )
        : null;
    return el(
      "li",
      { class: "r2d-history-item", dataset: { tag: entry.tag } },
      el(
        "div",
        { class: "d-flex flex-wrap align-items-center gap-2" },
        el("code", { title: entry.commit, class: "r2d-commit" }, shortCommit(entry.commit)),
        ...badges,
        action ? el("span", { class: "ms-auto" }, action) : null,
      ),
      el("div", { class: "small text-body-secondary d-flex flex-wrap gap-2" }, ...facts),
    );
  }
}
