"""Chromium (Debian's, from setup.sh) through Playwright, and logging in at the test hub.

Browser tests run last in a session: Playwright's sync API keeps an event loop running in the
main thread while a browser is open, which would break asyncio tests after it.
"""

from __future__ import annotations

import contextlib
import http.server
import shutil
import threading
from collections.abc import Iterator

from playwright.sync_api import Browser, Page, Playwright

from tests.rig.hub import PASSWORD, Hub
from tests.rig.parts import REPO_ROOT, RealPartMissing

ARTIFACTS = REPO_ROOT / "test-artifacts"  # screenshots of the UI tests
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """Debian's chromium executable.

    Raises:
        RealPartMissing: chromium is not installed.
    """
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise RealPartMissing("Debian's chromium is not installed", "no chromium on PATH")


def launch_chromium(playwright: Playwright) -> Browser:
    """A headless Chromium with networking extras (sync, updates, QUIC) off."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


def login(page: Page, hub: Hub, username: str) -> None:
    """Log ``username`` in at the hub's login form (test password) and wait for the hub page."""
    page.goto(hub.url + "/hub/login")
    page.fill("#username_input", username)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url("**/hub/**")


@contextlib.contextmanager
def foreign_site(html: str) -> Iterator[str]:
    """Serve ``html`` as the page of ANOTHER SITE than the hub; yield its URL.

    The hub listens on 127.0.0.1; this page is served on 127.0.0.1 too but named
    ``localhost``, a different site for the browser (ports alone do not make a request
    cross-site), so links on it navigate cross-site (``Sec-Fetch-Site: cross-site``).
    """
    body = html.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# axe-core, pinned in tests/rig/npm-clients/package-lock.json (npm ci by setup.sh)
AXE = REPO_ROOT / ".cache" / "npm-clients" / "node_modules" / "axe-core" / "axe.min.js"


def run_axe(page: Page, within: str | None = None) -> list[tuple[str, str, list[str]]]:
    """axe-core's serious and critical violations on the page as it is now:
    ``[(rule id, impact, first 5 targets)]``; ``within``: a CSS selector to check only that
    part (our markup on a page of the hub, whose own Start button fails color-contrast)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        """async (within) => (await axe.run(within ? document.querySelector(within) : document,
            {resultTypes: ['violations']})).violations""",
        within,
    )
    return [
        (v["id"], v["impact"], [n["target"][0] for n in v["nodes"]][:5])
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
