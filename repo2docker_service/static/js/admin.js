// Admins: the space the service's images take (api/info?disk=1) and the prune button
// (POST api/images/prune: a dry run first, shown in a confirmation, then the prune).

import { confirmAction } from "./dialogs.js";
import { formatBytes } from "./util.js";

export class AdminPanel {
  /** api: createApi(); root: #admin-panel; notice(message, kind). */
  constructor(api, root, { notice, onPruned }) {
    this.api = api;
    this.root = root;
    this.notice = notice;
    this.onPruned = onPruned;
    this.figures = root.querySelector("#disk-figures");
    this.button = root.querySelector("#prune");
    this.button.addEventListener("click", () => this.prune());
  }

  async load(fresh = false) {
    try {
      const info = await this.api.get(`api/info?disk=${fresh ? "fresh" : "1"}`);
      const d = info.disk;
      const where = d.source === "registry" ? "in the registry" : "in the Docker engine";
      this.figures.textContent =
        `${d.images} image(s) take ${formatBytes(d.bytes) || "0 B"} ${where}; ` +
        `${formatBytes(d.reclaimable_bytes) || "0 B"} can be freed by a prune.`;
      this.figures.title = d.note || "";
    } catch (error) {
      this.figures.textContent = `Disk usage is not available: ${error.message}`;
    }
    this.button.disabled = false;
  }

  async prune() {
    this.button.disabled = true;
    try {
      const { data: plan } = await this.api.post("api/images/prune", { dry_run: true });
      if (!plan.removed.length) {
        this.notice(`Nothing to prune: every environment keeps its newest ${plan.keep_tags} build(s).`, "info");
        return;
      }
      const names = plan.removed.map((r) => r.reference.split("/").pop());
      const shown = names.slice(0, 8).join(", ") + (names.length > 8 ? `, and ${names.length - 8} more` : "");
      const ok = await confirmAction({
        title: `Remove ${names.length} old build(s)?`,
        message:
          `Each environment keeps its newest ${plan.keep_tags} build(s), the one the hub offers and ` +
          `any a server uses. These go (${formatBytes(plan.bytes_freed) || "0 B"} freed): ${shown}.`,
        confirmLabel: "Prune",
        cancelLabel: "Keep them",
      });
      if (!ok) return;
      const { data: done } = await this.api.post("api/images/prune", {});
      this.notice(
        `Removed ${done.removed.length} old build(s), ${formatBytes(done.bytes_freed) || "0 B"} freed` +
          (done.skipped.length ? `; ${done.skipped.length} kept because a server started meanwhile.` : "."),
        "secondary",
      );
      this.onPruned();
      await this.load(true);
    } catch (error) {
      this.notice(error.message, "danger");
    } finally {
      this.button.disabled = false;
    }
  }
}
