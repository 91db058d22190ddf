// Notices above the list. A notice about a build the user started here follows that build:
// it is updated in place as the build moves on (queued, building, then built with a Launch
// link, failed with its reason, or cancelled), so it never contradicts the list below.

import { ACTIVE_STATES } from "./status.js";
import { el } from "./util.js";

const MAX_NOTICES = 4;

export class Notices {
  /** box: the container; openLog(buildId, name) opens the log dialog. */
  constructor(box, { openLog }) {
    this.box = box;
    this.openLog = openLog;
    this.tracked = new Map(); // build id -> {name, verb, state, position, alert}
  }

  /**
   * Show a notice; `actions`: [{label, onClick} | {label, href}]; `replace`: an earlier
   * notice to put this one in place of. Returns the notice element.
   */
  show(message, kind = "info", actions = [], replace = null, data = {}) {
    const alert = el(
      "div",
      {
        class: `alert alert-${kind} d-flex align-items-center gap-2 py-2 mb-2 r2d-notice`,
        role: kind === "danger" ? "alert" : "status",
        dataset: data,
      },
      el("div", { class: "r2d-notice-text" }, message),
    );
    for (const action of actions) {
      if (action.href) {
        alert.append(el("a", { class: `btn btn-sm ${action.style || "btn-jupyter"}`, href: action.href, dataset: { action: action.name || "" } }, action.label));
      } else {
        const button = el("button", { type: "button", class: `btn btn-sm ${action.style || "btn-outline-secondary"}`, dataset: { action: action.name || "" } }, action.label);
        button.addEventListener("click", () => action.onClick());
        alert.append(button);
      }
    }
    const close = el("button", { type: "button", class: "btn-close", "aria-label": "Close this notice" });
    close.addEventListener("click", () => {
      alert.remove();
      for (const [id, t] of this.tracked) if (t.alert === alert) this.tracked.delete(id);
    });
    alert.append(close);
    if (replace?.isConnected) replace.replaceWith(alert);
    else this.box.prepend(alert);
    while (this.box.children.length > MAX_NOTICES) this.box.lastElementChild.remove();
    return alert;
  }

  /** Follow `build` (from api/builds or a POST answer); verb: "Building" or "Rebuilding". */
  track(build, verb = "Building") {
    const old = this.tracked.get(build.id);
    this.tracked.set(build.id, {
      name: build.display_name || build.name,
      verb: old?.verb || verb,
      state: null,
      position: null,
      alert: old?.alert || null,
    });
    this.update([build], () => null);
  }

  /**
   * Bring tracked notices up to date with `builds` (api/builds); `launchHref(build)` gives
   * the Launch link of a built build's environment (or null while the list lacks it).
   */
  update(builds, launchHref) {
    for (const build of builds) {
      const t = this.tracked.get(build.id);
      if (!t) continue;
      const position = build.position ?? null;
      if (t.state === build.state && t.position === position && build.state !== "built") continue;
      const [message, kind, actions] = this.describe(t, build, launchHref);
      if (build.state === "built" && !actions.length && t.state === "built") continue;
      t.alert = this.show(message, kind, actions, t.alert, { build: build.id, state: build.state });
      t.state = build.state;
      t.position = position;
      const settled = build.state !== "built" || actions.length;
      if (!ACTIVE_STATES.has(build.state) && settled) this.tracked.delete(build.id);
    }
  }

  describe(t, build, launchHref) {
    const log = { label: "Show log", name: "logs", style: "btn-outline-primary", onClick: () => this.openLog(build.id, t.name) };
    switch (build.state) {
      case "queued":
        return [
          build.position > 1 ? `Queued “${t.name}”: position ${build.position}.` : `${t.verb} “${t.name}”: waiting to start.`,
          "info",
          [log],
        ];
      case "building":
      case "pushing":
        return [`${t.verb} “${t.name}”.`, "info", [log]];
      case "built": {
        const href = launchHref(build);
        const launch = href ? [{ label: "Launch", name: "launch", href }] : [];
        return [`“${t.name}” is built and ready to launch.`, "success", launch];
      }
      case "failed":
        return [`The build of “${t.name}” failed${build.error ? `: ${build.error}` : "."}`, "danger", [log]];
      default:
        return [`The build of “${t.name}” was ${build.state}.`, "secondary", []];
    }
  }
}
