"""BinderHub's build API with a browser session in Chromium: the XSRF token decides.

A script of the service's own page calls ``build/...`` the way binderhub-client does without
an API token (the ``_xsrf`` cookie's value as ``X-Xsrftoken``): it builds. The same call
without the token, and a link clicked on another site (``localhost`` is another site than
the hub's ``127.0.0.1``), build nothing.
"""

from __future__ import annotations

import json
import secrets

import pytest

from tests.rig.api import call
from tests.rig.browser import login
from tests.rig.engine import BASE_IMAGE
from tests.rig.repos import dockerfile
from tests.rig.wait import wait_until

pytestmark = [pytest.mark.hub, pytest.mark.browser, pytest.mark.docker]

ORG = f"bsession-{secrets.token_hex(3)}"
FETCH = """async ([url, withToken]) => {
    const m = document.cookie.match("\\\\b_xsrf=([^;]*)\\\\b");
    const headers = {Accept: "text/event-stream"};
    if (withToken && m) headers["X-Xsrftoken"] = m[1];
    const r = await fetch(url, {headers});
    return [r.status, await r.text(), Boolean(m)];
}"""


def events(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def builds_of(hub, user: str, repo_part: str) -> list[dict]:
    status, body = call(hub, "GET", "api/builds", user)
    assert status == 200, body
    return [b for b in body["builds"] if repo_part in b["repo"]]


@pytest.fixture
def service_page(page, hub):
    login(page, hub, "alice")
    page.goto(hub.service_url)
    page.wait_for_url(hub.service_url + "*")
    return page


def test_page_script_with_the_xsrf_token_builds(service_page, hub, git_http, base_image):
    git_http.create_repo(f"{ORG}/page", dockerfile(BASE_IMAGE, "RUN echo building page"))
    url = hub.service_url + f"build/gh/{ORG}/page/main?build_only=true"
    status, text, had_cookie = service_page.evaluate(FETCH, [url, True])
    assert had_cookie, "binderhub-client reads the _xsrf cookie: it must be readable"
    assert status == 200
    got = events(text)
    assert got[-1]["phase"] == "ready", got
    (build,) = builds_of(hub, "alice", f"/{ORG}/page")
    assert build["state"] == "built" and got[-1]["imageName"] == build["image"]


def test_page_script_without_the_xsrf_token_builds_nothing(service_page, hub, git_http):
    git_http.create_repo(f"{ORG}/notoken", dockerfile(BASE_IMAGE, "RUN echo building notoken"))
    url = hub.service_url + f"build/gh/{ORG}/notoken/main?build_only=true"
    status, text, _ = service_page.evaluate(FETCH, [url, False])
    assert status == 200
    assert [e["phase"] for e in events(text)] == ["failed"], text
    assert builds_of(hub, "alice", f"/{ORG}/notoken") == []


def test_link_from_another_site_builds_nothing(service_page, hub, git_http):
    """A top-level navigation carries the session cookie but no XSRF token."""
    git_http.create_repo(f"{ORG}/driveby", dockerfile(BASE_IMAGE, "RUN echo building driveby"))
    target = hub.service_url + f"build/gh/{ORG}/driveby/main?build_only=true"
    evil = hub.url.replace("127.0.0.1", "localhost") + "/evil-page"
    service_page.route(
        evil,
        lambda route: route.fulfill(
            content_type="text/html", body=f'<a id="go" href="{target}">free cookies</a>'
        ),
    )
    service_page.goto(evil)
    path = target.split("?")[0].split("127.0.0.1", 1)[1].split("/", 1)[1]
    # a top-level navigation (Chromium may save the event stream as a download)
    service_page.click("#go", no_wait_after=True)
    # the service knew alice (the cookie came along) and refused to build for the link
    wait_until(
        lambda: f"GET /{path} -> 403: This request carries neither" in hub.log_text(),
        timeout=30,
        what="the service's answer to the cross-site navigation",
    )
    assert builds_of(hub, "alice", f"/{ORG}/driveby") == []
