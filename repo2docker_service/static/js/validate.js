// Client-side checks that mirror the server's (repo2docker_service/sources/,
// images/naming.py, builds/model.py). They only save a round trip: the server checks
// again and its message is shown when it refuses.
// Each check returns null when the value is fine, else a sentence saying what is wrong.

const NAME_RE = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
const MAX_NAME = 63;
const MAX_URL = 2048;
const MAX_REF = 255;
const MAX_DISPLAY_NAME = 200;
const CPU_RE = /^[0-9]{1,3}(?:\.[0-9]{1,3})?$/;
// memory sizes as repo2docker_service/sizes.py reads them (units are powers of 1024)
const MEMORY_RE = /^([0-9]{1,16}(?:\.[0-9]{1,9})?|\.[0-9]{1,9})\s*(?:([KMGT])(?:I|B|IB)?|(B))?$/i;
const MEMORY_UNITS = { "": 1, B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
const MIN_MEMORY = 64 * 1024 ** 2;
const MAX_MEMORY = 1024 ** 5;
// whitespace (incl. Unicode spaces) and control/format characters (Cc, Cf)
const UNPRINTABLE_RE = /[\s\p{Cc}\p{Cf}]/u;
const CONTROL_RE = /[\p{Cc}\p{Cf}]/u;
const SHA_RE = /^[0-9a-fA-F]{7,40}$/;

export function checkRepoUrl(url, allowedSchemes = ["https"]) {
  const allowed = allowedSchemes.map((s) => s.toLowerCase());
  const allowedText = [...allowed].sort().join(", ") || "none";
  if (!url) return "Enter the URL of a git repository.";
  if (url.length > MAX_URL) return `The URL is too long (at most ${MAX_URL} characters).`;
  if (UNPRINTABLE_RE.test(url)) return "The URL must not contain spaces or control characters.";
  if (url.includes("\\")) return "The URL must not contain backslashes.";
  if (url.startsWith("-")) return "The URL must not start with '-'.";
  if (/^[A-Za-z][A-Za-z0-9+.-]*::/.test(url)) {
    return "git's 'transport::address' form is not allowed: use a URL like https://host/owner/repo.";
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url);
  if (!scheme) return `Enter a URL like https://host/owner/repo (allowed: ${allowedText}).`;
  if (!allowed.includes(scheme[1].toLowerCase())) {
    return `The scheme '${scheme[1].toLowerCase()}' is not allowed here; allowed: ${allowedText}.`;
  }
  if (scheme[1].toLowerCase() === "file") return null;
  const authority = url.slice(scheme[0].length).split(/[/?#]/)[0];
  const at = authority.lastIndexOf("@");
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    const sshUser = /ssh/i.test(scheme[1]) && userinfo && !/[:]/.test(userinfo);
    if (!sshUser || userinfo.startsWith("-")) {
      return "Put a user name or token in the credentials section, not in the URL.";
    }
  }
  return checkHostPort(authority.slice(at + 1));
}

function checkHostPort(hostport) {
  let host = hostport;
  let port = "";
  if (hostport.startsWith("[")) {
    const end = hostport.indexOf("]");
    if (end < 0) return "The URL's host is malformed.";
    host = hostport.slice(1, end);
    port = hostport.slice(end + 1);
    if (port && !port.startsWith(":")) return "The URL's host is malformed.";
    port = port.slice(1);
    if (!/^[0-9a-f:.]+$/i.test(host)) return "The URL's host is not a valid host name.";
  } else {
    const colon = hostport.lastIndexOf(":");
    if (colon >= 0) {
      host = hostport.slice(0, colon);
      port = hostport.slice(colon + 1);
    }
    if (!host) return "The URL has no host.";
    if (host.startsWith("-") || !/^[\p{L}\p{N}_.-]+$/u.test(host)) {
      return "The URL's host is not a valid host name.";
    }
  }
  if (port && (!/^[0-9]+$/.test(port) || Number(port) > 65535)) {
    return "The URL's port must be a number up to 65535.";
  }
  return null;
}

export function checkRef(ref) {
  if (!ref || ref === "HEAD" || SHA_RE.test(ref)) return null;
  if (ref.length > MAX_REF) return `The ref is too long (at most ${MAX_REF} characters).`;
  const problem = refProblem(ref);
  return problem ? `Not a valid branch, tag or commit: it ${problem}.` : null;
}

function refProblem(ref) {
  if (ref.startsWith("-")) return "must not start with '-'";
  if (ref === "@") return "must not be '@'";
  if (ref.includes("..")) return "must not contain '..'";
  if (ref.includes("@{")) return "must not contain '@{'";
  if (/[ ~^:?*[\\]/.test(ref) || UNPRINTABLE_RE.test(ref)) {
    return "must not contain spaces, control characters or any of ~ ^ : ? * [ \\";
  }
  if (ref.startsWith("/") || ref.endsWith("/") || ref.includes("//")) {
    return "must not start or end with '/' or contain '//'";
  }
  if (ref.endsWith(".")) return "must not end with '.'";
  for (const part of ref.split("/")) {
    if (part.startsWith(".")) return "must not have a part starting with '.'";
    if (part.endsWith(".lock")) return "must not have a part ending with '.lock'";
  }
  return null;
}

/** An empty name is fine: the server derives one from the repository. */
export function checkName(name) {
  if (!name) return null;
  if (name.length > MAX_NAME || !NAME_RE.test(name)) {
    return (
      `Use 1-${MAX_NAME} lowercase letters and digits, with single '.', '_' or '-' ` +
      "between them (e.g. my-env)."
    );
  }
  return null;
}

export function checkDisplayName(displayName) {
  const value = (displayName || "").trim();
  if (value.length > MAX_DISPLAY_NAME) {
    return `The display name is too long (at most ${MAX_DISPLAY_NAME} characters).`;
  }
  if (CONTROL_RE.test(value)) return "The display name must not contain control characters.";
  return null;
}

export function checkCpu(cpu) {
  const value = (cpu || "").trim();
  if (!value) return null;
  if (!CPU_RE.test(value) || !(Number(value) > 0 && Number(value) <= 256)) {
    return "Enter a number of CPUs greater than 0 and at most 256 (e.g. 0.5 or 2).";
  }
  return null;
}

export function checkMemory(memory) {
  const value = (memory || "").trim();
  if (!value) return null;
  const forms = "Enter a size with a unit, e.g. 512M, 2G, 2GB or 2 GiB (at least 64M).";
  const m = MEMORY_RE.exec(value);
  if (!m) return forms;
  const unit = (m[2] || m[3] || "").toUpperCase();
  const size = Math.floor(Number(m[1]) * MEMORY_UNITS[unit]);
  if (size === 0) return null;
  if (size < MIN_MEMORY) {
    return unit ? forms : `A number without a unit is bytes: add one, e.g. ${value}G. ${forms}`;
  }
  if (size > MAX_MEMORY) return "At most 1024T.";
  return null;
}

/** What the server will call an environment built from `url` when no name is given. */
export function deriveName(url) {
  let path = url || "";
  if (path.includes("://")) {
    // the path part, split as Python's urlsplit does
    const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:/.exec(path);
    if (scheme) path = path.slice(scheme[0].length);
    if (path.startsWith("//")) {
      const end = path.slice(2).search(/[/?#]/);
      path = end < 0 ? "" : path.slice(2 + end);
    }
    path = path.split(/[?#]/)[0];
  }
  try {
    path = decodeURIComponent(path);
  } catch {
    // keep it as is
  }
  let last = path.replace(/\/+$/, "").split(/[/:\\]/).pop() || "";
  if (last.toLowerCase().endsWith(".git")) last = last.slice(0, -4);
  let name = last
    .normalize("NFKD")
    .replace(/\p{M}/gu, "")
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/[._-]{2,}/g, "-")
    .replace(/^[._-]+|[._-]+$/g, "");
  name = name.slice(0, MAX_NAME).replace(/[._-]+$/, "");
  return name || "env";
}

const DEFAULT_PORTS = { http: 80, https: 443, ssh: 22, "git+ssh": 22, "ssh+git": 22, git: 9418 };

function cleanRepoPath(path) {
  let clean = "/" + path.replace(/\/{2,}/g, "/").replace(/^\/+|\/+$/g, "");
  if (clean.endsWith(".git")) clean = clean.slice(0, -4).replace(/\/+$/, "");
  return clean || "/";
}

/**
 * The identity of the repository `url` names, as the server's repoid.RepoIdentity.key:
 * host[:port]/path without scheme, user name, default port, query, fragment, repeated or
 * trailing slashes and one ".git"; the path lowercased on `caseInsensitiveHosts` (api/info
 * `case_insensitive_repo_hosts`).
 */
export function repoKey(url, caseInsensitiveHosts = ["github.com", "gitlab.com"]) {
  const text = (url || "").trim();
  const fold = new Set(caseInsensitiveHosts.map((h) => h.trim().toLowerCase()));
  const join = (host, port, path) => {
    const clean = cleanRepoPath(path);
    return host + port + (fold.has(host) ? clean.toLowerCase() : clean);
  };
  if (!text.includes("://")) {
    const scp = /^(?:[^@/:]+@)?([^@/:[\]]+):(?!\/\/)(.*)$/s.exec(text);
    return scp ? join(scp[1].toLowerCase(), "", scp[2]) : text;
  }
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)/s.exec(text);
  if (!m) return text;
  const scheme = m[1].toLowerCase();
  if (scheme === "file") return "file:" + cleanRepoPath(m[3]);
  const hostport = m[2].slice(m[2].lastIndexOf("@") + 1).toLowerCase();
  const hp = /^(\[[^\]]*\]|[^:[\]]*)(?::([0-9]*))?$/.exec(hostport);
  if (!hp) return text;
  const port = hp[2] ? Number(hp[2]) : null;
  if (port !== null && port > 65535) return text;
  const shown = port !== null && port !== DEFAULT_PORTS[scheme] ? `:${port}` : "";
  return join(hp[1], shown, m[3]);
}

/** The names the server tries for a build of `url` without a name (builds/names.py). */
export function derivedNames(url) {
  const base = deriveName(url);
  const text = url || "";
  let path = text;
  let hostname = "";
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)([^?#]*)/s.exec(text);
  if (text.includes("://")) {
    path = m ? m[2] : "";
    const hostport = m ? m[1].slice(m[1].lastIndexOf("@") + 1) : "";
    const v6 = /^\[([^\]]*)\]/.exec(hostport);
    hostname = (v6 ? v6[1] : hostport.split(":")[0]).toLowerCase();
  }
  try {
    path = decodeURIComponent(path);
  } catch {
    // keep it as is
  }
  const segments = path.split("/").filter(Boolean);
  const parentText = segments.length >= 2 ? segments[segments.length - 2] : hostname;
  let parent = parentText ? deriveName(parentText) : "";
  if (!parent || parent === base) parent = "repo";
  const fit = (name) => name.slice(0, MAX_NAME).replace(/[._-]+$/, "");
  const pair = fit(`${parent}-${base}`);
  const names = [base, pair];
  for (let n = 2; n < 10; n++) names.push(fit(`${pair.slice(0, MAX_NAME - 2)}-${n}`));
  return [...new Set(names)];
}

/**
 * The name the server will give a build of `url` without a name: the first derived name
 * that no environment of another repository holds. `environments`: [{name, repo}] of the
 * namespace the build goes to. Null when every derived name is taken.
 */
export function expectedName(url, environments, caseInsensitiveHosts) {
  const key = repoKey(url, caseInsensitiveHosts);
  for (const name of derivedNames(url)) {
    const holder = environments.find((e) => e.name === name);
    if (!holder || repoKey(holder.repo, caseInsensitiveHosts) === key) return name;
  }
  return null;
}
