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
export function mergeEnvironments(images, builds, servers = []) {
  const rows = new Map();
  for (const image of images) {
    const key = repositoryOf(image.latest || image.image);
    rows.set(key, { key, image, build: null, ended: [] });
  }
  for (const build of builds) {
    const key = repositoryOf(build.latest_image || build.image);
    const row = rows.get(key) ?? { key, image: null, build: null, ended: [] };
    row.build = build;
    if (!ACTIVE_STATES.has(build.state)) row.ended.push(build.id);
    rows.set(key, row);
  }
  const out = [];
  for (const row of rows.values()) {
    if (!row.image && row.build?.state === "built") continue;
    out.push(describe(row, servers));
  }
  return out.sort(
    (a, b) =>
      a.displayName.localeCompare(b.displayName, undefined, { sensitivity: "base" }) ||
      Number(a.shared) - Number(b.shared) ||
      a.owner.localeCompare(b.owner),
  );
}

function describe({ key, image, build, ended }, servers) {
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
  // "cancelled" once, not as the state and again as its reason
  if (error && error.trim().toLowerCase() === (build?.state || "")) error = null;
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
    // latest is rolled back: builds do not replace what the hub offers
    pinned: Boolean(image?.pinned),
    state,
    position,
    error,
    note,
    active,
    // logs only of builds the service still keeps and lets this user see
    buildId: build ? build.id : null,
    // the records a Dismiss removes: every ended build of an environment without an image
    dismissable: image || active ? [] : ended,
    // the user's server of this environment: launch links start a server named after it
    server: serverOf(servers, src.name, image),
  };
}

/**
 * The user's server of this environment: one started from its image (the hub's user
 * options say which), else one named like it (launch links name the server so) whose
 * image is not known to be another's.
 */
function serverOf(servers, name, image) {
  const repo = image ? repositoryOf(image.image) : null;
  const server =
    (repo && servers.find((s) => s.image && repositoryOf(s.image) === repo)) ||
    servers.find((s) => s.name === name && (!s.image || !repo || repositoryOf(s.image) === repo));
  if (!server) return null;
  return { url: server.url, ready: Boolean(server.ready), pending: server.pending || null };
}

// errors longer than this fold behind their first words (the whole text one click away)
const ERROR_FOLD = 160;

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
    return el("tr", { class: "r2d-placeholder", role: "row" }, el("td", { colspan: 8, role: "cell" }, text));
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
      role: "row",
    });
    // (one wrapper per cell: on narrow screens the cell is a flex row "label | content")
    const cell = (label, attrs, ...content) =>
      el("td", { role: "cell", dataset: { label }, ...attrs }, el("div", { class: "r2d-cell" }, ...content));
    // name; the technical name only when it differs from the display name
    tr.append(
      el(
        "th",
        { scope: "row", role: "rowheader", class: "fw-normal r2d-name" },
        el("div", { class: "fw-semibold r2d-display-name" }, vm.displayName),
        vm.displayName !== vm.name
          ? el("div", { class: "small text-body-secondary font-monospace r2d-tech-name" }, vm.name)
          : null,
      ),
    );
    tr.append(
      cell(
        "Owner",
        { class: "r2d-owner" },
        vm.shared ? el("span", { class: "badge rounded-pill r2d-shared border" }, "shared") : vm.owner,
      ),
    );
    tr.append(cell("Repository", { class: "r2d-repo" }, this.repoCell(vm)));
    tr.append(
      cell(
        "Commit",
        { class: vm.commit ? "" : "r2d-empty" },
        vm.commit ? el("code", { title: vm.commit, class: "r2d-commit" }, shortCommit(vm.commit)) : "",
      ),
    );
    tr.append(cell("Status", { class: "r2d-state" }, this.statusCell(vm)));
    tr.append(
      cell(
        "Built",
        { class: vm.builtAt ? "text-nowrap" : "text-nowrap r2d-empty" },
        vm.builtAt
          ? el("time", { datetime: vm.builtAt, title: localTime(vm.builtAt) }, relativeTime(vm.builtAt))
          : none("not built yet"),
      ),
    );
    const size = formatBytes(vm.size);
    tr.append(cell("Size", { class: size ? "text-nowrap text-xl-end" : "text-nowrap text-xl-end r2d-empty" }, size || none("unknown")));
    tr.append(cell("Actions", { class: "r2d-actions" }, this.actions(vm)));
    return tr;
  }

  /** "org/repo @ ref" over a muted host line; the full URL in the title. */
  repoCell(vm) {
    const href = safeHttpUrl(vm.repo);
    const { host, path } = repoParts(vm.repo);
    const attrs = { title: vm.repo, class: "link-offset-1 link-underline-opacity-25" };
    const repo = href
      ? el("a", { ...attrs, href, rel: "noopener noreferrer", target: "_blank" }, path)
      : el("span", { title: vm.repo }, path);
    return [
      el(
        "div",
        {},
        repo,
        vm.ref ? el("span", { class: "text-nowrap" }, " @ ", el("code", { class: "r2d-ref" }, vm.ref)) : null,
      ),
      host ? el("div", { class: "small text-body-secondary" }, host) : null,
    ];
  }

  /** The state badge, a note, and the reason of a failure: wrapped, long ones folded. */
  statusCell(vm) {
    const parts = [statusBadge(vm)];
    if (vm.note) parts.push(" ", el("span", { class: "badge r2d-note border" }, vm.note));
    if (vm.pinned) {
      parts.push(" ", el("span", { class: "badge r2d-note border r2d-pinned", title: "rolled back: new builds do not replace it" }, "pinned"));
    }
    if (vm.server) {
      const text = vm.server.ready ? "server running" : `server ${vm.server.pending === "stop" ? "stopping" : "starting"}`;
      parts.push(" ", el("span", { class: "badge r2d-note border r2d-server-state" }, text));
    }
    if (vm.error) {
      const text = vm.error;
      if (text.length <= ERROR_FOLD) {
        parts.push(el("div", { class: "small text-body-secondary r2d-error" }, text));
      } else {
        parts.push(
          el(
            "details",
            { class: "small text-body-secondary r2d-error" },
            el(
              "summary",
              {},
              el("span", { class: "r2d-preview" }, `${text.slice(0, ERROR_FOLD - 40).trimEnd()}…`),
              el("span", { class: "r2d-less" }, "less"),
            ),
            el("div", { class: "r2d-full" }, text),
          ),
        );
      }
    }
    return parts;
  }

  actions(vm) {
    const name = vm.displayName;
    const box = el("div", {
      class: "r2d-action-group",
      role: "group",
      "aria-label": `Actions for ${name}`,
    });
    // each accessible name starts with the visible label (voice control: "click Logs")
    const named = (text, rest) => [text, el("span", { class: "visually-hidden" }, ` ${rest}`)];
    const button = (action, text, style, rest) =>
      el(
        "button",
        { type: "button", class: `btn btn-sm ${style}`, dataset: { action } },
        ...named(text, rest),
      );
    if (vm.image) {
      box.append(
        el(
          "a",
          {
            class: "btn btn-sm btn-jupyter",
            href: spawnUrl(this.ctx.hubPrefix, this.ctx.me, vm.name, vm.image),
            dataset: { action: "launch" },
          },
          ...named("Launch", name),
        ),
      );
    }
    if (vm.server?.ready) {
      box.append(
        el(
          "a",
          { class: "btn btn-sm btn-success", href: vm.server.url, dataset: { action: "open" } },
          ...named("Open", `your running server of ${name}`),
        ),
      );
    }
    if (vm.buildId) box.append(button("logs", "Logs", "btn-outline-secondary", `of ${name}`));
    if (vm.image && vm.ownerSlug) box.append(button("history", "History", "btn-outline-secondary", `of ${name}`));
    if (this.canManage(vm)) {
      if (vm.active) {
        box.append(button("cancel", "Cancel", "btn-outline-danger", `the build of ${name}`));
      } else {
        if (vm.repo) box.append(button("rebuild", "Rebuild", "btn-outline-primary", name));
        if (vm.image) box.append(button("delete", "Delete", "btn-outline-danger", name));
        if (vm.dismissable.length) {
          box.append(button("dismiss", "Dismiss", "btn-outline-secondary", `the ${vm.state} build of ${name}`));
        }
      }
    }
    return box;
  }
}
