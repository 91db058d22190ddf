// Drive the real @jupyterhub/binderhub-client (from the npm registry) the way
// jupyterhub-fancy-profiles' ImageBuilder does: iterate BinderRepository.fetch() until
// "ready" or "failed", then close(). Each event is printed as one JSON line on stdout.
//
//   node binder_client.mjs '<json options>'
//
// options: clientsDir (the npm install, .cache/npm-clients), endpoint (the build endpoint
// URL, ending in build/), spec ("gh/<org>/<repo>/<ref>", ...), apiToken (sent as Bearer),
// buildOnly (default true), cookie + xsrf (a browser session instead of a token: the page's
// document.cookie carries _xsrf, fetch sends the Cookie header), stopAfter (close after the
// first event of that phase), timeoutMs (give up: exit status 3).
//
// Node has no window or document: fetch-event-source reads window.fetch and (un)registers a
// visibilitychange listener on document, the client reads document.cookie. They are
// provided as a browser page has them: Node's own fetch, a visible document with cookies.
import { pathToFileURL } from "node:url";
import path from "node:path";

const opts = JSON.parse(process.argv[2]);
globalThis.window = globalThis;
globalThis.document = {
  cookie: opts.cookie ? `_xsrf=${opts.xsrf || ""}` : "",
  hidden: false,
  addEventListener() {},
  removeEventListener() {},
};
if (opts.cookie) {
  const nodeFetch = globalThis.fetch;
  globalThis.fetch = (url, init = {}) =>
    nodeFetch(url, { ...init, headers: { ...(init.headers || {}), Cookie: opts.cookie } });
}

const clientPath = path.join(
  opts.clientsDir,
  "node_modules/@jupyterhub/binderhub-client/lib/client.js",
);
const { BinderRepository } = await import(pathToFileURL(clientPath).href);

const timer = setTimeout(() => {
  console.log(JSON.stringify({ timeout: true }));
  process.exit(3);
}, opts.timeoutMs || 300000);

const repo = new BinderRepository(opts.spec, new URL(opts.endpoint), {
  apiToken: opts.apiToken,
  buildOnly: opts.buildOnly !== false,
});
for await (const data of repo.fetch()) {
  console.log(JSON.stringify(data));
  if (data.phase === "failed" || data.phase === "ready" || data.phase === opts.stopAfter) {
    repo.close();
    break;
  }
}
clearTimeout(timer);
console.log(JSON.stringify({ end: true }));
