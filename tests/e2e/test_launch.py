"""Launch links: from a repository URL to a running server (build, progress, spawn)."""

from __future__ import annotations

import html
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.rig.api import build, request
from tests.rig.browser import foreign_site, login
from tests.rig.git import files_from_dir
from tests.rig.net import no_proxy_opener
from tests.rig.parts import EXAMPLES_DIR
from tests.rig.spawn import RUN, stop_server, wait_ready

pytestmark = [pytest.mark.hub, pytest.mark.docker]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def get_no_redirect(url, token):
    """(status, Location, body) without following redirects, with a hub token."""
    opener = no_proxy_opener(_NoRedirect())
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with opener.open(req, timeout=120) as resp:
            return resp.status, resp.headers.get("Location"), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Location"), e.read().decode(errors="replace")


def spawn_location(hub_url, user, server, image):
    """The spawn URL, with ``next`` so that ``?image=`` stays off the server's URL."""
    return f"/hub/spawn/{user}/{server}?" + urllib.parse.urlencode(
        {"image": image, "next": f"/user/{user}/{server}/"}
    )


@pytest.mark.browser
def test_launch_link_goes_from_nothing_to_a_running_server(e2e_hub, e2e_git, page, artifacts):
    git, _ = e2e_git
    files = files_from_dir(EXAMPLES_DIR / "hello")
    files["LAUNCHED.md"] = f"launched by the e2e test {RUN}\n"
    url = git.create_repo(f"e2e-{RUN}/launchme", files)
    server = "launchme"
    link = (
        e2e_hub.service_url
        + "launch?"
        + urllib.parse.urlencode({"repo": url, "ref": "main", "name": server})
    )
    alice = e2e_hub.token_for("alice")
    login(page, e2e_hub, "alice")
    start = time.monotonic()
    try:
        page.goto(link)
        # a typed link to a repository nothing was built from: the confirm page shows what
        # would run, and nothing is built before the click
        page.locator("#launch-confirm").wait_for()
        assert page.locator("#confirm-commit").inner_text() == git.head(f"e2e-{RUN}/launchme")
        status, builds = request("GET", e2e_hub.service_url + "api/builds", token=alice)
        assert status == 200 and [b for b in builds["builds"] if b["repo"] == url] == []
        page.click("#launch-confirm")
        # nothing was built from this repository: the launch page follows the build; only
        # its event stream's `done` event sends the browser on to the hub's spawn URL
        assert "/services/repo2docker/launch" in page.url, page.url
        page.locator("#launch-status").wait_for()
        page.screenshot(path=str(artifacts / "e2e-launch-progress.png"), full_page=True)
        page.wait_for_url(f"**/user/alice/{server}/**", timeout=300_000)
        print(f"\n[e2e] launch link to a running server: {time.monotonic() - start:.1f} s")
        # the server's URL (JupyterLab) carries no ?image= from the spawn URL (issue 17)
        page.wait_for_url(f"**/user/alice/{server}/lab**", timeout=120_000)
        assert "image=" not in urllib.parse.urlsplit(page.url).query, page.url
        response = page.goto(f"{e2e_hub.url}/user/alice/{server}/api/status")
        assert response.status == 200
    finally:
        stop_server(e2e_hub, "alice", server)


@pytest.mark.browser
def test_a_short_link_on_another_site_starts_nothing_until_the_click(e2e_hub, hello_image, page):
    # alice's own image, linked from another site (localhost; the hub is at 127.0.0.1), in
    # the form people paste: a trailing slash
    link = e2e_hub.service_url + f"v2/gh/e2e-{RUN}/hello/main/"
    alice = e2e_hub.token_for("alice")
    login(page, e2e_hub, "alice")
    try:
        with foreign_site(f'<a id="go" href="{html.escape(link)}">Open in the hub</a>') as site:
            page.goto(site)
            page.click("#go")
            page.locator("#launch-confirm").wait_for()
        assert page.url == link
        assert page.locator("#confirm-cross-site").is_visible()
        assert page.locator("#confirm-commit").inner_text() == hello_image["commit"]
        assert page.locator("#confirm-built-by").inner_text().startswith("Built by you")
        status, model = request("GET", f"{e2e_hub.url}/hub/api/users/alice", token=alice)
        assert status == 200 and "hello" not in model.get("servers", {}), model
        # the click starts the server from alice's image
        page.click("#launch-confirm")
        page.wait_for_url("**/user/alice/hello/**", timeout=300_000)
        server = wait_ready(e2e_hub, "alice", "hello")
        assert server["ready"], server
    finally:
        stop_server(e2e_hub, "alice", "hello")


def test_short_link_of_a_built_image_redirects_to_the_spawn_url(e2e_hub, hello_image):
    # launch_git_host is the git server of the tests: v2/gh/<org>/<repo>/<ref> maps onto it
    status, location, body = get_no_redirect(
        e2e_hub.service_url + f"v2/gh/e2e-{RUN}/hello/main", e2e_hub.token_for("alice")
    )
    assert status == 302, body[-2000:]
    assert location == spawn_location(e2e_hub.url, "alice", "hello", hello_image["image"])


def test_view_only_user_launches_existing_images_only(e2e_hub, e2e_git, hello_image):
    _, url = e2e_git
    link = e2e_hub.service_url + "launch?" + urllib.parse.urlencode({"repo": url, "ref": "main"})
    # bob may not build, and alice's image is private
    status, _, body = get_no_redirect(link, e2e_hub.token_for("bob"))
    assert status == 403
    assert "custom:repo2docker:build" in body and "No environment built from" in body
    # once an admin built it as a shared environment, bob's link starts that
    shared = build(e2e_hub, "admin1", repo=url, name="course", shared=True)
    status, location, body = get_no_redirect(link, e2e_hub.token_for("bob"))
    assert status == 302, body[-2000:]
    assert location == spawn_location(e2e_hub.url, "bob", "course", shared["image"])


def test_launch_without_view_scope_is_refused(e2e_hub, e2e_git):
    _, url = e2e_git
    link = e2e_hub.service_url + "launch?" + urllib.parse.urlencode({"repo": url})
    status, _, body = get_no_redirect(link, e2e_hub.token_for("dave"))
    assert status == 403 and "custom:repo2docker:view" in body


def test_launch_with_a_bad_repo_is_a_clear_400(e2e_hub):
    link = e2e_hub.service_url + "launch?repo=" + urllib.parse.quote("ext::sh -c id")
    status, _, body = get_no_redirect(link, e2e_hub.token_for("alice"))
    assert status == 400, body[-2000:]


def test_short_link_with_a_bad_org_is_a_clear_400(e2e_hub):
    status, _, body = get_no_redirect(
        e2e_hub.service_url + "v2/gh/bad%20org/repo/main", e2e_hub.token_for("alice")
    )
    assert status == 400 and "v2/gh/&lt;org&gt;/&lt;repo&gt;/&lt;ref&gt;" in body, body[-1000:]


# short links as people paste them: trailing and repeated slashes, a ref left out
@pytest.mark.parametrize(
    "path",
    [
        "v2/gh/e2e-{run}/hello/main",
        "v2/gh/e2e-{run}/hello/main/",
        "v2/gh/e2e-{run}/hello/main//",
        "v2/gh/e2e-{run}//hello/main",
        "v2/gh//e2e-{run}/hello//main/",
        "v2/gh/e2e-{run}/hello",
        "v2/gh/e2e-{run}/hello/",
        "v2/gh/e2e-{run}/hello.git/main/",
    ],
)
def test_short_link_variants_reach_the_same_image(e2e_hub, hello_image, path):
    status, location, body = get_no_redirect(
        e2e_hub.service_url + path.format(run=RUN), e2e_hub.token_for("alice")
    )
    assert status == 302, body[-2000:]
    assert location == spawn_location(e2e_hub.url, "alice", "hello", hello_image["image"])


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_a_subgroup_path_through_v2_gh_says_to_use_launch_repo(e2e_hub, e2e_git, user):
    git, _ = e2e_git
    path = f"e2e-{RUN}/group-{user}/sub/proj"  # a GitLab-style subgroup path
    url = git.create_repo(path, files_from_dir(EXAMPLES_DIR / "hello"))
    status, _, body = get_no_redirect(
        e2e_hub.service_url + f"v2/gh/{path}/main", e2e_hub.token_for(user)
    )
    assert status in (403, 422), body[-2000:]
    link = "/services/repo2docker/launch?" + urllib.parse.urlencode(
        {"repo": url.removesuffix(".git"), "ref": "main"}
    )
    assert "launch?repo=, which takes any repository URL" in html.unescape(body)
    assert link in html.unescape(body), body[-2000:]
    if user == "alice":
        # the link it gives works: the confirm page of that repository (nothing is built)
        status, _, body = get_no_redirect(e2e_hub.url + link, e2e_hub.token_for("alice"))
        assert status == 200 and 'id="launch-confirm"' in body, body[-2000:]
        assert git.head(path) in body
