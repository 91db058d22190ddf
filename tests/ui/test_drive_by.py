"""Drive-by launches in Chromium: a link on ANOTHER SITE (``localhost``, while the hub is at
127.0.0.1) to a launch link builds and starts nothing until the visitor clicks on our page."""

from __future__ import annotations

import html
import secrets
import urllib.parse

import pytest
from playwright.sync_api import Page, expect

from tests.rig.browser import foreign_site, login
from tests.rig.repos import dockerfile

pytestmark = [pytest.mark.hub, pytest.mark.browser, pytest.mark.docker]

UID = secrets.token_hex(3)


def builds_of(page: Page, hub, repo: str) -> list[dict]:
    """alice's builds of ``repo``, asked with the browser's cookies (a GET needs no XSRF)."""
    response = page.context.request.get(hub.service_url + "api/builds")
    assert response.status == 200, response.text()
    return [b for b in response.json()["builds"] if b["repo"] == repo]


def test_a_link_on_another_site_builds_nothing_until_the_click(page, hub, git_http, base_image):
    name = f"driveby-{UID}"
    url = git_http.create_repo(
        f"ui-{UID}/{name}", dockerfile(base_image, f"RUN echo building {name}")
    )
    commit = git_http.head(f"ui-{UID}/{name}")
    link = hub.service_url + "launch?" + urllib.parse.urlencode({"repo": url, "ref": "main"})
    spawned: list[str] = []

    def spawn_page(route):
        # the hub's spawn page would start a server: record that the launch got there
        spawned.append(route.request.url)
        route.fulfill(status=200, content_type="text/plain", body="spawn page")

    login(page, hub, "alice")
    page.route("**/hub/spawn/**", spawn_page)
    anchor = f'<a id="go" href="{html.escape(link)}">Try this!</a>'
    # a site that hides where its visitors come from: no Referer (and over plain HTTP
    # Chromium sends no Sec-Fetch-Site either); the repository is not alice's: ask
    hidden = f'<meta name="referrer" content="no-referrer">{anchor}'
    with foreign_site(hidden) as site:
        page.goto(site)
        with page.expect_request(lambda r: r.url.startswith(link)) as seen:
            page.click("#go")
        assert "referer" not in seen.value.all_headers()
        page.locator("#launch-confirm").wait_for()
    assert builds_of(page, hub, url) == [] and spawned == []
    with foreign_site(anchor) as site:
        page.goto(site)
        with page.expect_request(lambda r: r.url.startswith(link)) as seen:
            page.click("#go")
        assert seen.value.all_headers()["referer"] == site
        page.locator("#launch-confirm").wait_for()
    # the confirm page, and nothing built or started
    assert page.url.startswith(hub.service_url + "launch?"), page.url
    expect(page.locator("#confirm-cross-site")).to_be_visible()
    expect(page.locator("#confirm-repo")).to_have_text(url)
    expect(page.locator("#confirm-ref")).to_have_text("main")
    expect(page.locator("#confirm-commit")).to_have_text(commit)
    expect(page.locator("#confirm-built-by")).to_contain_text("Not built yet")
    assert builds_of(page, hub, url) == [] and spawned == []

    # plain requests with the visitor's cookies: a cross-site GET asks too, and a POST
    # without the page's XSRF token is refused
    response = page.context.request.get(link, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status == 200 and 'id="launch-confirm"' in response.text()
    response = page.context.request.post(
        hub.service_url + "launch", form={"repo": url, "ref": "main", "commit": commit}
    )
    assert response.status == 403, response.text()[-500:]
    assert builds_of(page, hub, url) == [] and spawned == []

    # the click: the build runs, the launch page follows it, then the hub's spawn page
    page.click("#launch-confirm")
    page.locator("#launch-status").wait_for()
    (started,) = builds_of(page, hub, url)
    assert started["commit"] == commit
    page.wait_for_url("**/hub/spawn/**", timeout=120_000)
    assert len(spawned) == 1 and f"/hub/spawn/alice/{name}?image=" in spawned[0]
