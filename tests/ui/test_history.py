"""The environment's history in Chromium: roll back from the History dialog, the pinned
badge, following new builds again, at 1280 and 360 px; the admins' storage panel and the
prune confirmation (kept: the hub's engine is shared with other tests); cookie POSTs
without the XSRF token are refused.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.rig.api import build as api_build
from tests.rig.engine import BASE_IMAGE
from tests.rig.envpage import action, api, open_page, row, save_screenshot, uname
from tests.rig.repos import dockerfile

pytestmark = [pytest.mark.hub, pytest.mark.browser, pytest.mark.docker]


@pytest.fixture(scope="module")
def two_builds(hub, git_http):
    """alice's environment built at two commits: (name, [old, new] commit)."""
    name = uname("hist")
    url = git_http.create_repo(name, dockerfile(BASE_IMAGE, "RUN echo history", fresh=True))
    first = api_build(hub, "alice", repo=url, name=name)
    git_http.commit(name, {"notebook.txt": "2\n"})
    second = api_build(hub, "alice", repo=url, name=name)
    return name, [first["commit"], second["commit"]]


def no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], width


@pytest.mark.parametrize("width", [1280, 360])
def test_roll_back_and_follow_again(page: Page, hub, two_builds, artifacts, width):
    name, commits = two_builds
    page.set_viewport_size({"width": width, "height": 800})
    open_page(page, hub, "alice")
    action(page, name, "history").click()
    dialog = page.locator("#history-dialog")
    expect(dialog).to_be_visible()
    items = dialog.locator(".r2d-history-item")
    expect(items).to_have_count(2)
    expect(items.nth(0).locator(".r2d-latest")).to_have_text("offered")
    expect(items.nth(0).locator("code.r2d-commit")).to_have_attribute("title", commits[1])
    no_sideways_scroll(page)

    items.nth(1).get_by_role("button", name="Use this build").click()
    expect(dialog.locator("#history-pin")).to_contain_text("pinned")
    expect(items.nth(1).locator(".r2d-latest")).to_be_visible()
    box = dialog.locator("#history-pin button").bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= width
    save_screenshot(page, artifacts, f"history-{width}.png")
    dialog.get_by_role("button", name="Close").click()
    expect(row(page, name).locator(".r2d-pinned")).to_be_visible()
    expect(row(page, name).locator("code.r2d-commit")).to_have_attribute("title", commits[0])

    action(page, name, "history").click()
    dialog.get_by_role("button", name="Follow new builds").click()
    expect(dialog.locator("#history-pin")).to_contain_text("newest build")
    expect(items.nth(0).locator(".r2d-latest")).to_be_visible()
    dialog.get_by_role("button", name="Close").click()
    expect(row(page, name).locator(".r2d-pinned")).to_have_count(0)


def test_storage_panel_and_prune_confirmation(page: Page, hub, git_http):
    # an environment with one build more than keep_tags (3): the oldest would go
    name = uname("prune")
    url = git_http.create_repo(name, dockerfile(BASE_IMAGE, "RUN echo prune", fresh=True))
    commits = []
    for n in range(4):
        if n:
            git_http.commit(name, {"n.txt": f"{n}\n"})
        commits.append(api_build(hub, "alice", repo=url, name=name)["commit"])
    open_page(page, hub, "admin1")
    # a cookie POST without the XSRF token is refused
    status = page.evaluate(
        """async (path) => (await fetch(path, {method: "POST",
            headers: {"Content-Type": "application/json"}, body: '{"tag": null}'})).status""",
        hub.service_url + f"api/images/alice/{name}/latest",
    )
    assert status == 403
    expect(page.locator("#disk-figures")).to_contain_text("can be freed", timeout=60_000)
    page.locator("#prune").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm).to_be_visible(timeout=60_000)
    expect(confirm).to_contain_text("Each environment keeps its newest 3")
    expect(confirm).to_contain_text(commits[0][:12])
    confirm.get_by_role("button", name="Keep them").click()
    expect(confirm).to_be_hidden()
    status, env = api(page, "GET", f"api/images/alice/{name}")
    assert status == 200 and len(env["history"]) == 4  # declined: nothing went


def test_no_storage_panel_for_builders(page: Page, hub, two_builds):
    open_page(page, hub, "alice")
    expect(page.locator("#admin-panel")).to_have_count(0)
    name, _ = two_builds
    expect(action(page, name, "history")).to_be_visible()
