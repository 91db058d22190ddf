// The environments table: images and builds merged into one row per environment
// (owner + name), rendered with DOM APIs and updated in place (rows whose data did not
// change are left alone, so focus and scroll stay put while builds progress).

import { ACTIVE_STATES, statusBadge } from "./status.js";
import {
  el,
  formatBytes,
  localTime,
  relativeTime,
  repositoryOf,
  repoParts,
  safeHttpUrl,
  shortCommit,
  spawnUrl,
} from "./util.js";

/**
 * One row per image repository: the image (if any) and the newest build (if any).
 * `builds` come oldest first, as api/builds lists them. A built build whose image is gone
 * (deleted since) is not shown.
 */
export function mergeEnvironments(images, builds) {
  const rows = new Map();
  for (const image of images) {
    const key = repositoryOf(image.latest || image.image);
    rows.set(key, { key, image, build: null });
  }
  for (const build of builds) {
    const key = repositoryOf(build.latest_image || build.image);
    const row = rows.get(key) ?? { key, image: null, build: null };
    row.build = build;
    rows.set(key, row);
  }
  const out = [];
  for (const row of rows.values()) {
    if (!row.image && row.build?.state === "built") continue;
    out.push(describe(row));
  }
  return out.sort(
    (a, b) =>
      a.displayName.localeCompare(b.displayName, undefined, { sensitivity: "base" }) ||
      Number(a.shared) - Number(b.shared) ||
      a.owner.localeCompare(b.owner),
  );
}

function describe({ key, image, build }) {
  const active = Boolean(build && ACTIVE_STATES.has(build.state));
  const src = active || !image ? build : image;
  let state = "built";
  let position = null;
  let error = null;
  let note = null;
  if (active) {
    state = build.state;
    position = build.position ?? null;
  } else if (!image) {
    state = build.state;
    error = build.error || null;
  } else if (
    build &&
    build.state !== "built" &&
    build.id !== image.build_id &&
    Date.parse(build.created) > Date.parse(image.built_at || 0)
  ) {
    note = `last rebuild ${build.state}`;
    error = build.error || null;
  }
  return {
    key,
    name: src.name,
    displayName: src.display_name || src.name,
    owner: src.owner || "",
    shared: Boolean(src.shared),
    ownerSlug: image ? image.owner_slug : null,
    repo: src.repo || "",
    ref: src.ref || "",
    commit: src.commit || "",
    hints: { ...(src.hints || {}) },
    image: image ? image.image : null,
    size: image ? image.size : null,
    builtAt: image ? image.built_at : null,
    state,
    position,
    error,
    note,
    active,
    // logs only of builds the service still keeps and lets this user see
    buildId: build ? build.id : null,
  };
}

/** A dash for an empty cell, with words for screen readers. */
function none(words) {
  return el(
    "span",
    { class: "text-body-secondary" },
    el("span", { "aria-hidden": "true" }, "–"),
    el("span", { class: "visually-hidden" }, words),
  );
}

export class EnvironmentTable {
  /**
   * tbody: the table body; ctx: {me, hubPrefix, scopes (Set), onAction(action, row, button)}.
   */
  constructor(tbody, ctx) {
    this.tbody = tbody;
    this.ctx = ctx;
    this.rows = new Map(); // key -> {vm, tr, signature}
    tbody.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button || !tbody.contains(button)) return;
      const entry = this.rows.get(button.closest("tr").dataset.key);
      if (entry) ctx.onAction(button.dataset.action, entry.vm, button);
    });
  }

  canManage(vm) {
    const { scopes, me } = this.ctx;
    if (scopes.has("admin")) return true;
    return scopes.has("build") && !vm.shared && vm.owner === me;
  }

  render(list) {
    const seen = new Set();
    let previous = null;
    for (const vm of list) {
      seen.add(vm.key);
      const signature = JSON.stringify(vm);
      let entry = this.rows.get(vm.key);
      if (!entry || entry.signature !== signature) {
        const tr = this.renderRow(vm);
        if (entry) {
          const focused = entry.tr.contains(document.activeElement)
            ? document.activeElement.dataset.action
            : null;
          entry.tr.replaceWith(tr);
          if (focused) tr.querySelector(`[data-action="${focused}"]`)?.focus();
        }
        entry = { vm, tr, signature };
        this.rows.set(vm.key, entry);
      }
      // keep the order of `list`
      const expected = previous ? previous.nextSibling : this.tbody.firstChild;
      if (expected !== entry.tr) this.tbody.insertBefore(entry.tr, expected);
      previous = entry.tr;
    }
    for (const [key, entry] of this.rows) {
      if (!seen.has(key)) {
        entry.tr.remove();
        this.rows.delete(key);
      }
    }
    this.tbody.querySelector(".r2d-placeholder")?.remove();
    if (!list.length) this.tbody.append(this.placeholder());
  }

  placeholder() {
    const text = this.ctx.scopes.has("build")
      ? "No environments yet. Use “Add environment” to build one from a git repository."
      : "No environments yet. Ask someone with build permission to add one.";
    return el("tr", { class: "r2d-placeholder" }, el("td", { colspan: 8 }, text));
  }

  /** Update the "built … ago" texts (called every minute). */
  refreshTimes() {
    for (const time of this.tbody.querySelectorAll("time[datetime]")) {
      time.textContent = relativeTime(time.dateTime);
    }
  }

  renderRow(vm) {
    const tr = el("tr", {
      dataset: {
        key: vm.key,
        name: vm.name,
        owner: vm.shared ? "" : vm.owner,
        state: vm.state,
        build: vm.buildId || "",
      },
      class: "r2d-env",
    });
    // name
    tr.append(
      el(
        "th",
        { scope: "row", class: "fw-normal" },
        el("div", { class: "fw-semibold r2d-display-name" }, vm.displayName),
        el("div", { class: "small text-body-secondary font-monospace" }, vm.name),
      ),
    );
    // owner
    tr.append(
      el(
        "td",
        { class: "r2d-owner" },
        vm.shared
          ? el("span", { class: "badge rounded-pill text-bg-light border" }, "shared")
          : vm.owner,
      ),
    );
    // repository @ ref: "org/repo @ ref" over a muted host line; the full URL in the title
    const href = safeHttpUrl(vm.repo);
    const { host, path } = repoParts(vm.repo);
    const repo = href
      ? el(
          "a",
          {
            href,
            title: vm.repo,
            rel: "noopener noreferrer",
            target: "_blank",
            class: "link-offset-1 link-underline-opacity-25",
          },
          path,
        )
      : el("span", { title: vm.repo }, path);
    tr.append(
      el(
        "td",
        { class: "r2d-repo" },
        el(
          "div",
          {},
          repo,
          vm.ref ? el("span", { class: "text-nowrap" }, " @ ", el("code", { class: "r2d-ref" }, vm.ref)) : null,
        ),
        host ? el("div", { class: "small text-body-secondary" }, host) : null,
      ),
    );
    // commit
    tr.append(
      el(
        "td",
        {},
        vm.commit ? el("code", { title: vm.commit, class: "r2d-commit" }, shortCommit(vm.commit)) : "",
      ),
    );
    // status
    const status = el("td", { class: "r2d-state" }, statusBadge(vm));
    if (vm.note) status.append(" ", el("span", { class: "badge text-bg-light border" }, vm.note));
    if (vm.error) {
      status.append(
        el("div", { class: "small text-body-secondary r2d-error", title: vm.error }, vm.error),
      );
    }
    tr.append(status);
    // built
    tr.append(
      el(
        "td",
        { class: "text-nowrap" },
        vm.builtAt
          ? el("time", { datetime: vm.builtAt, title: localTime(vm.builtAt) }, relativeTime(vm.builtAt))
          : none("not built yet"),
      ),
    );
    // size
    tr.append(el("td", { class: "text-nowrap text-end" }, formatBytes(vm.size) || none("unknown")));
    // actions
    tr.append(el("td", { class: "text-end" }, this.actions(vm)));
    return tr;
  }

  actions(vm) {
    const box = el("div", {
      class: "d-inline-flex flex-nowrap justify-content-end gap-1",
      role: "group",
      "aria-label": `Actions for ${vm.displayName}`,
    });
    const name = vm.displayName;
    const button = (action, text, style, label) =>
      el(
        "button",
        { type: "button", class: `btn btn-sm ${style}`, dataset: { action }, "aria-label": label },
        text,
      );
    if (vm.image) {
      box.append(
        el(
          "a",
          {
            class: "btn btn-sm btn-jupyter",
            href: spawnUrl(this.ctx.hubPrefix, this.ctx.me, vm.name, vm.image),
            dataset: { action: "launch" },
            "aria-label": `Launch ${name}`,
          },
          "Launch",
        ),
      );
    }
    if (vm.buildId) box.append(button("logs", "Logs", "btn-outline-secondary", `Build log of ${name}`));
    if (this.canManage(vm)) {
      if (vm.active) {
        box.append(button("cancel", "Cancel", "btn-outline-warning", `Cancel the build of ${name}`));
      } else {
        if (vm.repo) box.append(button("rebuild", "Rebuild", "btn-outline-primary", `Rebuild ${name}`));
        if (vm.image) box.append(button("delete", "Delete", "btn-outline-danger", `Delete ${name}`));
      }
    }
    return box;
  }
}
