// Build and environment states as text badges (the text carries the meaning; the
// colour only repeats it).

import { el } from "./util.js";

export const ACTIVE_STATES = new Set(["queued", "building", "pushing"]);

const STYLES = {
  queued: "text-bg-secondary",
  building: "text-bg-info",
  pushing: "text-bg-info",
  built: "text-bg-success",
  failed: "text-bg-danger",
  cancelled: "text-bg-warning",
  lost: "text-bg-dark",
};

/** "queued #2", "building", "built", ... */
export function statusText(state, position) {
  if (state === "queued" && position) return `queued #${position}`;
  return state || "unknown";
}

/** A badge for {state, position}; `text` overrides the label. */
export function statusBadge({ state, position }, text) {
  const label = text ?? statusText(state, position);
  const badge = el("span", {
    class: `badge r2d-status ${STYLES[state] || "text-bg-light"}`,
    dataset: { state: state || "" },
  });
  if (ACTIVE_STATES.has(state)) {
    badge.append(el("span", { class: "r2d-spinner", "aria-hidden": "true" }));
  }
  badge.append(label);
  return badge;
}
