"""The environments page in Chromium: opening it, finding rows and buttons, calling the API
the way the page does, the add dialog, and screenshots (copied to docs/screenshots/ with
R2DS_UPDATE_SCREENSHOTS=1, for the README).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import urllib.parse
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.rig.browser import login
from tests.rig.parts import REPO_ROOT

SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
BUILD_TIMEOUT = 120_000  # ms, for one small build
UID = secrets.token_hex(3)


def uname(label: str) -> str:
    """A unique environment (and repository) name for this run."""
    return f"ui{UID}-{label}"


# --------------------------------------------------------------------------------- helpers
def open_page(page: Page, hub, user: str) -> Page:
    login(page, hub, user)
    page.goto(hub.service_url)
    page.wait_for_url(hub.service_url + "*")
    # (an admin lists every image in the engine: give it time when the engine is busy)
    expect(page.locator("#environments")).to_have_attribute("data-loaded", "true", timeout=30_000)
    return page


def row(page: Page, name: str, *, owner: str | None = None):
    selector = f'#environments-body tr[data-name="{name}"]'
    if owner is not None:
        selector += f'[data-owner="{owner}"]'
    return page.locator(selector)


def action(page: Page, name: str, verb: str, **kw):
    return row(page, name, **kw).locator(f'[data-action="{verb}"]')


def api(page: Page, method: str, path: str, body: dict | None = None):
    """Call the service API from the page the way the page does (cookie + XSRF header)."""
    return page.evaluate(
        """async ([method, path, body]) => {
            const root = document.getElementById("environments");
            const init = {method, headers: {"X-XSRFToken": root.dataset.xsrf}};
            if (body !== null) {
                init.headers["Content-Type"] = "application/json";
                init.body = JSON.stringify(body);
            }
            const r = await fetch(root.dataset.baseUrl + path, init);
            const text = await r.text();
            return [r.status, text ? JSON.parse(text) : null];
        }""",
        [method, path, body],
    )


def fill_add_dialog(page: Page, *, repo: str, ref: str = "", name: str = "", display: str = ""):
    page.click("#add-environment")
    dialog = page.locator("#add-dialog")
    expect(dialog).to_be_visible()
    # focus moves into the dialog, onto its first field
    expect(page.locator("#add-repo")).to_be_focused()
    page.fill("#add-repo", repo)
    if ref:
        page.fill("#add-ref", ref)
    if name:
        page.fill("#add-name", name)
    if display:
        page.fill("#add-display-name", display)
    return dialog


def submit_add_dialog(page: Page, expect_status=(200, 202)):
    with page.expect_response(
        lambda r: r.url.endswith("/api/builds") and r.request.method == "POST"
    ) as info:
        page.click("#add-submit")
    response = info.value
    assert response.status in expect_status, response.text()
    return response


def add_environment(page: Page, **kwargs) -> dict:
    """Fill and submit the add dialog; returns the API's answer (the dialog closes)."""
    dialog = fill_add_dialog(page, **kwargs)
    response = submit_add_dialog(page)
    expect(dialog).to_be_hidden()
    return response.json()


def wait_state(page: Page, name: str, state: str, timeout: float = BUILD_TIMEOUT, **kw):
    expect(row(page, name, **kw)).to_have_attribute("data-state", state, timeout=timeout)


def save_screenshot(page: Page, artifacts: Path, filename: str, *, full_page=False) -> None:
    path = artifacts / filename
    page.screenshot(path=str(path), full_page=full_page)
    if os.environ.get("R2DS_UPDATE_SCREENSHOTS") == "1":  # refresh the README's pictures
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / filename)


def count_lines(text: str, prefix: str, n: int) -> dict[int, int]:
    return {i: len(re.findall(rf"\b{prefix}-{i}$", text, re.M)) for i in range(1, n + 1)}


def spawn_href(hub_user: str, name: str, image: str) -> str:
    """The launch link the page shows: the spawn URL, with ``next`` = the server's URL."""
    q = urllib.parse.quote
    return (
        f"/hub/spawn/{hub_user}/{name}?image={q(image, safe='')}"
        f"&next={q(f'/user/{hub_user}/{name}/', safe='')}"
    )
