// Small helpers shared by the page's modules: DOM building, formatting, URLs.
// Text always goes through textContent (never innerHTML), so nothing from the API
// (names, repository URLs, log lines) can become markup.

/**
 * Create an element: el("a", {class: "btn", href: url}, "text", childNode, ...).
 * Attributes with null/undefined/false values are skipped; `true` sets an empty attribute.
 * String children become text nodes.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/**
 * The hub's spawn URL for a named server started from `image` (the launch link), with
 * `next` = the server's URL so that `?image=` does not follow the user onto it (the hub
 * carries a spawn URL's query on otherwise). The same rule as handlers/launch.py spawn_url.
 */
export function spawnUrl(hubPrefix, username, serverName, image) {
  const prefix = hubPrefix.endsWith("/") ? hubPrefix : `${hubPrefix}/`;
  const base = prefix.endsWith("/hub/") ? prefix.slice(0, -"hub/".length) : "/";
  // JupyterHub's url_escape_path: quote(..., safe="@~"); encodeURIComponent keeps ~ and
  // escapes @, so put @ back
  const escapePath = (text) => encodeURIComponent(text).replace(/%40/g, "@");
  const server = `${base}user/${escapePath(username)}/${escapePath(serverName)}/`;
  const query = new URLSearchParams({ image, next: server });
  return (
    `${prefix}spawn/${encodeURIComponent(username)}/${encodeURIComponent(serverName)}?` +
    query.toString()
  );
}

/** An image reference without its tag or digest: "reg:5000/a/b:tag" -> "reg:5000/a/b". */
export function repositoryOf(reference) {
  if (!reference) return "";
  let ref = reference.split("@")[0];
  const slash = ref.lastIndexOf("/");
  const colon = ref.lastIndexOf(":");
  if (colon > slash) ref = ref.slice(0, colon);
  return ref;
}

/** The URL as an href if it is http(s), else null (a repo URL is never a javascript: link). */
export function safeHttpUrl(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}

/** "https://github.com/org/repo.git" -> {host: "github.com", path: "org/repo"} (display). */
export function repoParts(url) {
  const text = String(url || "");
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?([^/?#]*)([^?#]*)/i.exec(text);
  if (!m) return { host: "", path: text };
  const path = m[2].replace(/^\/+|\/+$/g, "").replace(/\.git$/, "");
  return { host: m[1], path: path || m[1] };
}

export function shortCommit(commit) {
  return commit ? commit.slice(0, 7) : "";
}

/** 1234567 -> "1.2 MB" (decimal units, as `docker images` shows them). */
export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined || Number.isNaN(Number(bytes))) return "";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const digits = value >= 100 || unit === 0 ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

/** Seconds -> "42s", "3m 05s", "1h 02m". */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const STEPS = [
  [60, "second"],
  [60, "minute"],
  [24, "hour"],
  [7, "day"],
  [4.35, "week"],
  [12, "month"],
  [Number.POSITIVE_INFINITY, "year"],
];

/** ISO time -> "3 minutes ago" (relative to `now`, a Date.now() value). */
export function relativeTime(iso, now = Date.now()) {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "";
  let value = (then - now) / 1000;
  if (Math.abs(value) < 10) return "just now";
  for (const [size, unit] of STEPS) {
    if (Math.abs(value) < size) return relative.format(Math.round(value), unit);
    value /= size;
  }
  return "";
}

/** ISO time -> the user's local date and time (for title attributes). */
export function localTime(iso) {
  const then = Date.parse(iso);
  return Number.isNaN(then) ? "" : new Date(then).toLocaleString();
}
