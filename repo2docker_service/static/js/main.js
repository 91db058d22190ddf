// The environments page: loads api/info, api/builds and api/images, renders the table,
// and keeps it current without reloading. While a build is queued or running only
// api/builds (in memory, cheap) is polled every 2 s; api/images (asks Docker) is read
// again when a build ends, after an action, and every 30 s otherwise. Nothing is polled
// while the tab is hidden.

import { AddDialog } from "./add.js";
import { AdminPanel } from "./admin.js";
import { createApi } from "./api.js";
import { confirmAction } from "./dialogs.js";
import { EnvironmentTable, mergeEnvironments } from "./environments.js";
import { HistoryDialog } from "./history.js";
import { LogDialog } from "./logs.js";
import { Notices } from "./notices.js";
import { ACTIVE_STATES } from "./status.js";
import { formatDuration, repositoryOf, spawnUrl } from "./util.js";

const ACTIVE_POLL_MS = 2000;
const IDLE_POLL_MS = 30000;

class EnvironmentsPage {
  constructor(root) {
    this.root = root;
    const data = root.dataset;
    this.api = createApi({ baseUrl: data.baseUrl, xsrf: data.xsrf });
    this.me = data.user;
    this.hubPrefix = data.hubPrefix;
    this.scopes = new Set((data.scopes || "").split(" ").filter(Boolean));
    this.live = document.getElementById("live-status");
    this.loadError = document.getElementById("load-error");
    this.staleNotice = document.getElementById("stale-notice");
    this.images = [];
    this.builds = [];
    this.servers = []; // the user's servers (api/servers)
    this.lastImages = 0;
    this.timer = null;
    this.running = null;
    this.queued = false;
    this.wantImages = false;
    this.table = new EnvironmentTable(document.getElementById("environments-body"), {
      me: this.me,
      hubPrefix: this.hubPrefix,
      scopes: this.scopes,
      onAction: (action, row, button) => this.act(action, row, button),
    });
    this.logs = new LogDialog(this.api, document.getElementById("logs-dialog"), {
      onDone: () => this.refresh(),
      keepalive: Number(data.eventKeepalive) || 0,
    });
    this.notices = new Notices(document.getElementById("notices"), {
      openLog: (id, name) => this.logs.open(id, name),
    });
    this.history = new HistoryDialog(this.api, document.getElementById("history-dialog"), {
      onChanged: (message) => {
        this.notice(message, "secondary");
        this.refresh();
      },
    });
    const adminRoot = document.getElementById("admin-panel");
    if (adminRoot) {
      this.admin = new AdminPanel(this.api, adminRoot, {
        notice: (message, kind) => this.notice(message, kind),
        onPruned: () => this.refresh(),
      });
    }
    this.list = [];
  }

  async start() {
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.refresh();
    });
    setInterval(() => this.table.refreshTimes(), 60000);
    const addButton = document.getElementById("add-environment");
    if (addButton && this.scopes.has("build")) {
      try {
        const info = await this.api.get("api/info");
        this.add = new AddDialog(this.api, document.getElementById("add-dialog"), {
          info,
          onResult: (result) => this.added(result),
          environments: ({ shared }) => this.namespace(shared),
        });
        addButton.addEventListener("click", () => this.add.open());
        addButton.disabled = false;
      } catch (error) {
        this.notice(`The add dialog is not available: ${error.message}`, "danger");
      }
    }
    this.admin?.load();
    await this.refresh();
  }

  /** [{name, repo}] of the environments and active builds in my namespace (or the shared). */
  namespace(shared) {
    const mine = (x) => (shared ? x.shared : !x.shared && x.owner === this.me);
    const active = this.builds.filter((b) => ACTIVE_STATES.has(b.state));
    return [...this.images, ...active].filter(mine).map((x) => ({ name: x.name, repo: x.repo }));
  }

  // ------------------------------------------------------------------ loading
  refresh({ images = true } = {}) {
    if (images) this.wantImages = true;
    if (this.running) {
      this.queued = true;
      return this.running;
    }
    this.running = this.runRefresh().finally(() => {
      this.running = null;
      this.schedule();
    });
    return this.running;
  }

  async runRefresh() {
    do {
      this.queued = false;
      const images = this.wantImages;
      this.wantImages = false;
      await this.load(images);
    } while (this.queued);
  }

  async load(withImages) {
    clearTimeout(this.timer);
    try {
      const [builds, images] = await Promise.all([
        this.api.get("api/builds"),
        withImages ? this.api.get("api/images") : null,
      ]);
      const before = new Map(this.builds.map((b) => [b.id, b.state]));
      this.builds = builds.builds;
      const ended = this.builds.filter(
        (b) => !ACTIVE_STATES.has(b.state) && (!before.has(b.id) || ACTIVE_STATES.has(before.get(b.id))),
      );
      if (images) {
        this.setImages(images);
        await this.loadServers();
      } else if (ended.length) {
        // a build ended: its image (or its removal) shows in the catalog now
        this.setImages(await this.api.get("api/images"));
      }
      if (before.size) {
        for (const b of ended) this.say(`${b.display_name || b.name}: ${b.state}`);
      }
      this.list = mergeEnvironments(this.images, this.builds, this.servers);
      this.table.render(this.list);
      this.notices.update(this.builds, (b) => this.launchHref(b));
      this.loadError.hidden = true;
      this.root.dataset.loaded = "true";
    } catch (error) {
      this.loadError.textContent = `Could not load the environments: ${error.message}`;
      this.loadError.hidden = false;
    }
  }

  /** Keep an api/images answer; say so when it is the last good copy (registry down). */
  setImages(answer) {
    this.images = answer.images;
    this.lastImages = Date.now();
    this.staleNotice.hidden = !answer.stale;
    if (answer.stale) {
      const age = answer.age_s == null ? "" : ` (read ${formatDuration(answer.age_s)} ago)`;
      this.staleNotice.textContent =
        `The image registry cannot be read now: this list is the last one read${age} ` +
        "and may be out of date. It updates by itself once the registry answers again.";
    }
  }

  /** The user's own servers (the hub, asked with the user's token); none if it cannot tell. */
  async loadServers() {
    try {
      const answer = await this.api.get("api/servers");
      this.servers = answer.servers;
    } catch {
      this.servers = []; // the list works without it
    }
  }

  /** The Launch link of a built build's environment, once the list has its image. */
  launchHref(build) {
    const key = repositoryOf(build.latest_image || build.image);
    const row = this.list.find((r) => r.key === key && r.image);
    return row ? spawnUrl(this.hubPrefix, this.me, row.name, row.image) : null;
  }

  schedule() {
    clearTimeout(this.timer);
    const active = this.builds.some((b) => ACTIVE_STATES.has(b.state));
    this.timer = setTimeout(() => this.tick(), active ? ACTIVE_POLL_MS : IDLE_POLL_MS);
  }

  tick() {
    if (document.hidden) {
      this.schedule();
      return;
    }
    const active = this.builds.some((b) => ACTIVE_STATES.has(b.state));
    this.refresh({ images: !active || Date.now() - this.lastImages >= IDLE_POLL_MS });
  }

  // ------------------------------------------------------------------ actions
  async act(action, row, button) {
    if (action === "logs") {
      this.logs.open(row.buildId, row.displayName);
      return;
    }
    if (action === "history") {
      this.history.open(row, this.table.canManage(row));
      return;
    }
    if (action === "rebuild") {
      await this.run(button, async () => {
        const body = {
          repo: row.repo,
          ref: row.ref || "HEAD",
          name: row.name,
          display_name: row.displayName,
          force: true,
        };
        if (row.shared) body.shared = true;
        else if (row.owner && row.owner !== this.me) body.owner = row.owner;
        for (const key of ["profile", "cpu", "memory"]) {
          if (row.hints[key]) body[key] = row.hints[key];
        }
        const result = await this.api.post("api/builds", body);
        this.added({ ...result, request: body, verb: "Rebuilding" });
      });
      return;
    }
    if (action === "cancel") {
      const ok = await confirmAction({
        title: "Cancel this build?",
        message: `The build of “${row.displayName}” stops now and its partial image is removed.`,
        confirmLabel: "Cancel build",
        cancelLabel: "Keep building",
      });
      if (!ok) return;
      await this.run(button, async () => {
        const { data } = await this.api.del(`api/builds/${encodeURIComponent(row.buildId)}`);
        // the notice follows the build (it may take a moment to stop)
        if (data) this.notices.track(data);
        await this.refresh();
      });
      return;
    }
    if (action === "dismiss") {
      await this.run(button, async () => {
        for (const id of row.dismissable) {
          await this.api.post(`api/builds/${encodeURIComponent(id)}/dismiss`);
        }
        this.notice(`Dismissed the ${row.state} build of “${row.displayName}”.`, "secondary");
        await this.refresh();
      });
      return;
    }
    if (action === "delete") {
      const owner = row.shared ? "The shared environment" : "The environment";
      const ok = await confirmAction({
        title: "Delete this environment?",
        message:
          `${owner} “${row.displayName}” (${row.name}) and all its image tags will be ` +
          "removed. Servers already running keep working; nobody can start it again.",
        confirmLabel: "Delete",
        cancelLabel: "Keep it",
      });
      if (!ok) return;
      await this.run(button, async () => {
        await this.api.del(
          `api/images/${encodeURIComponent(row.ownerSlug)}/${encodeURIComponent(row.name)}`,
        );
        this.notice(`Deleted “${row.displayName}”.`, "secondary");
        await this.refresh();
      });
    }
  }

  async run(button, work) {
    if (button) button.disabled = true;
    try {
      await work();
    } catch (error) {
      this.notice(error.message, "danger");
    } finally {
      if (button?.isConnected) button.disabled = false;
    }
  }

  added({ status, data, verb = "Building" }) {
    if (data.cached) {
      const image = data.image;
      this.notice(
        `“${image.display_name || image.name}” is already built from this commit ` +
          `(${image.commit.slice(0, 7)}). Use Rebuild to build it again anyway.`,
        "info",
      );
    } else if (data.joined) {
      this.notice(`An identical build of “${data.build.display_name}” was already running.`, "info");
    } else if (status === 202) {
      this.notices.track(data.build, verb);
    }
    this.refresh();
  }

  // ------------------------------------------------------------------ messages
  notice(message, kind = "info") {
    this.notices.show(message, kind);
  }

  /** Announce to screen readers without moving focus. */
  say(text) {
    this.live.textContent = text;
  }
}

const root = document.getElementById("environments");
if (root) {
  const page = new EnvironmentsPage(root);
  // test hook: tests drop the log stream through page.logs.stream.drop()
  window.repo2dockerService = page;
  page.start();
}
