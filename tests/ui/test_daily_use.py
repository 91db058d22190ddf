"""The environments page in daily use (issue 17), in Chromium against the real hub and service.

Every kind of row (failed with a long reason, cancelled, building, built, shared) at 1280, 390
and 360 px wide: no sideways page scroll and every action button inside the viewport; the
navbar collapses; failed and cancelled records can be dismissed; notices follow the build;
the theme follows the hub's; axe-core finds no serious or critical violation on the page and
its dialogs. Screenshots for the README (R2DS_UPDATE_SCREENSHOTS=1 refreshes docs/screenshots/).
"""

from __future__ import annotations

import re
import subprocess
import urllib.parse

import pytest
from playwright.sync_api import Page, expect

from repo2docker_service.handlers.launch import spawn_url
from tests.rig.api import build as api_build
from tests.rig.api import call, follow_build
from tests.rig.browser import AXE, login, run_axe
from tests.rig.engine import BASE_IMAGE
from tests.rig.envpage import (
    BUILD_TIMEOUT,
    action,
    add_environment,
    api,
    open_page,
    row,
    save_screenshot,
    uname,
    wait_state,
)
from tests.rig.repos import dockerfile
from tests.rig.wait import wait_until

pytestmark = [pytest.mark.hub, pytest.mark.browser, pytest.mark.docker]

# (width, height): a laptop, a phone, the narrowest phone in use
VIEWPORTS = [(1280, 900), (390, 844), (360, 740)]
# an error line long enough to be folded in the row, with no space to break it at
LONG_ERROR = "E" * 40 + "-no-such-package-" + "x" * 220


def fail_build(hub, git_http, user: str, name: str, *lines: str) -> dict:
    """A build of ``user`` that fails after printing ``lines``; its final record."""
    prints = " && ".join(f"echo '{line}'" for line in lines) or "true"
    url = git_http.create_repo(name, dockerfile(BASE_IMAGE, f"RUN {prints} && exit 3", fresh=True))
    status, result = call(hub, "POST", "api/builds", user, {"repo": url, "name": name})
    assert status == 202, result
    done = follow_build(hub, result["build"]["id"], user)
    assert done["state"] == "failed", done
    return done


def start_build(hub, git_http, user: str, name: str, seconds: int = 600) -> dict:
    url = git_http.create_repo(name, dockerfile(BASE_IMAGE, f"RUN sleep {seconds}", fresh=True))
    status, result = call(hub, "POST", "api/builds", user, {"repo": url, "name": name})
    assert status == 202, result
    return result["build"]


def state_of(hub, build_id: str, user: str) -> str:
    return call(hub, "GET", f"api/builds/{build_id}", user)[1]["state"]


@pytest.fixture(scope="module")
def entries(hub, git_http, base_image):
    """alice's failed (long reason), cancelled and building builds; a shared environment."""
    failed = fail_build(hub, git_http, "alice", uname("failed"), LONG_ERROR)
    cancelled = start_build(hub, git_http, "alice", uname("cancelled"))
    assert call(hub, "DELETE", f"api/builds/{cancelled['id']}", "alice")[0] == 200
    wait_until(lambda: state_of(hub, cancelled["id"], "alice") == "cancelled", timeout=60)
    shared_url = git_http.create_repo(uname("team"), dockerfile(BASE_IMAGE, fresh=True))
    shared = api_build(
        hub, "admin1", repo=shared_url, name=uname("team"), shared=True,
        display_name="Team environment (shared, with a rather long display name)",
    )  # fmt: skip
    building = start_build(hub, git_http, "alice", uname("building"))
    yield {"failed": failed, "cancelled": cancelled, "building": building, "shared": shared}
    call(hub, "DELETE", f"api/builds/{building['id']}", "alice")


FITS_JS = """() => {
    const vw = window.innerWidth, vh = window.innerHeight;
    const out = {scrollWidth: document.scrollingElement.scrollWidth, innerWidth: vw,
                 outside: [], count: 0};
    const buttons = document.querySelectorAll(
        "#environments-body [data-action], #notices [data-action], #add-environment");
    for (const b of buttons) {
        b.scrollIntoView({block: "center", inline: "nearest", behavior: "instant"});
        const r = b.getBoundingClientRect();
        out.count += 1;
        if (r.width === 0 || r.left < 0 || r.right > vw || r.top < 0 || r.bottom > vh) {
            const key = b.closest("tr")?.dataset.name || b.id || "notice";
            out.outside.push([key, b.dataset.action || b.id, r.left, r.right, r.top, r.bottom]);
        }
    }
    window.scrollTo({top: 0, behavior: "instant"});
    return out;
}"""


def assert_fits(page: Page, min_buttons: int) -> None:
    fits = page.evaluate(FITS_JS)
    assert fits["scrollWidth"] <= fits["innerWidth"], fits
    assert fits["outside"] == [], fits
    assert fits["count"] >= min_buttons, fits


def expect_buttons(page: Page, name: str, verbs: set[str], **kw) -> None:
    for verb in ("launch", "logs", "rebuild", "delete", "cancel", "dismiss"):
        expect(action(page, name, verb, **kw)).to_have_count(1 if verb in verbs else 0)


@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
def test_every_row_kind_fits_and_every_action_is_inside_the_viewport(
    browser, hub, entries, artifacts, width, height
):
    kinds = {
        # name, owner filter -> the buttons alice has
        (uname("failed"), "alice"): {"logs", "rebuild", "dismiss"},
        (uname("cancelled"), "alice"): {"logs", "rebuild", "dismiss"},
        (uname("building"), "alice"): {"logs", "cancel"},
        (uname("team"), ""): {"launch"},
    }
    admin_kinds = {(uname("team"), ""): {"launch", "logs", "rebuild", "delete"}}
    for user, expected in (("alice", kinds), ("admin1", admin_kinds)):
        context = browser.new_context(viewport={"width": width, "height": height})
        try:
            page = open_page(context.new_page(), hub, user)
            for (name, owner), verbs in expected.items():
                expect(row(page, name, owner=owner)).to_have_count(1)
                expect_buttons(page, name, verbs, owner=owner)
            wait_state(page, uname("building"), "building", owner="alice")
            if user == "alice" and width in (1280, 390):
                label = "wide" if width == 1280 else "narrow"
                save_screenshot(page, artifacts, f"environments-{label}.png", full_page=True)
            failed = row(page, uname("failed"), owner="alice")
            # the reason is not cut: folded behind its first words, the whole text one click away
            expect(failed.locator(".r2d-error summary")).to_be_visible()
            failed.locator(".r2d-error summary").click()
            expect(failed.locator(".r2d-full")).to_contain_text(LONG_ERROR)
            expect(failed.locator(".r2d-preview")).to_be_hidden()
            # the name once when the display name is the name; "cancelled" once, not twice
            expect(failed.locator(".r2d-tech-name")).to_have_count(0)
            cancelled = row(page, uname("cancelled"), owner="alice")
            assert cancelled.locator(".r2d-state").inner_text().count("cancelled") == 1
            assert_fits(page, min_buttons=len(expected))
            if width < 576:  # the navbar collapses behind its toggler
                expect(page.locator("#thenavbar")).to_be_hidden()
                page.click("#navbar-toggle")
                expect(page.locator("#navbar-toggle")).to_have_attribute("aria-expanded", "true")
                expect(page.locator("#thenavbar a[aria-current=page]")).to_be_visible()
                page.click("#navbar-toggle")
                expect(page.locator("#thenavbar")).to_be_hidden()
            else:
                expect(page.locator("#navbar-toggle")).to_be_hidden()
        finally:
            context.close()


def test_dismiss_removes_a_failed_first_build(page, hub, git_http, base_image):
    name = uname("dismiss")
    failed = fail_build(hub, git_http, "alice", name, "boom")
    open_page(page, hub, "alice")
    expect_buttons(page, name, {"logs", "rebuild", "dismiss"})
    with page.expect_response(
        lambda r: r.url.endswith(f"/api/builds/{failed['id']}/dismiss")
    ) as info:
        action(page, name, "dismiss").click()
    assert info.value.status == 204, info.value.text()
    expect(row(page, name)).to_have_count(0)
    expect(page.locator("#notices")).to_contain_text(f"Dismissed the failed build of “{name}”")
    assert call(hub, "GET", f"api/builds/{failed['id']}", "alice")[0] == 404
    page.reload()
    expect(page.locator("#environments")).to_have_attribute("data-loaded", "true")
    expect(row(page, name)).to_have_count(0)


def test_notices_follow_the_build(page, hub, git_http, base_image):
    """A failed build's notice turns into the failure (no stale "Building X" beside it)."""
    name = uname("noticefail")
    url = git_http.create_repo(
        name, dockerfile(BASE_IMAGE, "RUN echo 'the-reason' && exit 3", fresh=True)
    )
    open_page(page, hub, "alice")
    answer = add_environment(page, repo=url, ref="main", name=name, display="Doomed")
    notice = page.locator(f'#notices [data-build="{answer["build"]["id"]}"]')
    expect(notice).to_have_count(1)
    # one obvious click opens the log while it builds
    expect(notice.locator('[data-action="logs"]')).to_have_text("Show log")
    expect(notice).to_have_attribute("data-state", "failed", timeout=BUILD_TIMEOUT)
    expect(notice).to_contain_text("The build of “Doomed” failed")
    expect(page.locator("#notices")).not_to_contain_text("Building “Doomed”")
    expect(notice).to_have_attribute("role", "alert")
    notice.locator('[data-action="logs"]').click()
    expect(page.locator("#logs-dialog")).to_be_visible()
    expect(page.locator("#logs-output")).to_contain_text("the-reason")
    # above the full log: the failing step and its last lines
    expect(page.locator("#logs-summary")).to_be_visible()
    expect(page.locator("#logs-summary-step")).to_contain_text("RUN echo 'the-reason' && exit 3")
    expect(page.locator("#logs-summary-lines")).to_have_text("the-reason")


BUILDKIT_TAIL = [
    "#6 [3/3] RUN pip install nosuchpkg",
    "#6 0.61 Collecting nosuchpkg",
    "#6 0.62 ERROR: No matching distribution found for nosuchpkg",
    "#6 ERROR: executor failed running [/bin/sh -c pip install nosuchpkg]: exit code: 1",
]
FAILURE_LOGS = [
    # (log lines, expected step, expected last lines)
    (
        [
            "#5 [2/3] RUN echo one",
            "#5 0.8 one",
            "#5 DONE 0.9s",
            *BUILDKIT_TAIL,
            "------",
            " > [3/3] RUN pip install nosuchpkg:",
            "0.61 Collecting nosuchpkg",
            "0.62 ERROR: No matching distribution found for nosuchpkg",
            "------",
            "ERROR: failed to solve: ...",
            "Traceback (most recent call last):",
            "  File x",
        ],
        "[3/3] RUN pip install nosuchpkg",
        ["Collecting nosuchpkg", "ERROR: No matching distribution found for nosuchpkg"],
    ),
    (  # no summary block: BuildKit's progress lines of the failed step
        ["#5 [2/3] RUN echo one", "#5 0.8 one", *BUILDKIT_TAIL, "Traceback ..."],
        "[3/3] RUN pip install nosuchpkg",
        [
            "Collecting nosuchpkg",
            "ERROR: No matching distribution found for nosuchpkg",
            "ERROR: executor failed running [/bin/sh -c pip install nosuchpkg]: exit code: 1",
        ],
    ),
    (  # the classic builder
        [
            "Step 1/2 : FROM x",
            " ---> abc",
            "Step 2/2 : RUN apt-get install nope",
            " ---> Running in 123",
            "E: Unable to locate package nope",
            "The command '/bin/sh -c apt-get install nope' returned a non-zero code: 100",
        ],
        "RUN apt-get install nope",
        [
            "E: Unable to locate package nope",
            "The command '/bin/sh -c apt-get install nope' returned a non-zero code: 100",
        ],
    ),
    (  # no build step at all: the last error line and what came before it
        ["Picked Git content provider.", "\x1b[31merror: pathspec 'x' did not match\x1b[0m"],
        None,
        ["Picked Git content provider.", "error: pathspec 'x' did not match"],
    ),
    (["all good", "nothing to see"], None, None),
]


def test_failure_summary_of_each_kind_of_log(page, hub):
    open_page(page, hub, "bob")
    found = page.evaluate(
        """async (logs) => {
            const root = document.getElementById("environments").dataset.baseUrl;
            const f = await import(root + "static/js/failure.js");
            return logs.map((lines) => f.summarizeFailure(lines));
        }""",
        [lines for lines, _, _ in FAILURE_LOGS],
    )
    for (lines, step, last), got in zip(FAILURE_LOGS, found, strict=True):
        if last is None:
            assert got is None, (lines, got)
        else:
            assert got == {"step": step, "lines": last}, (lines, got)


def test_theme_follows_the_hub_and_the_system(browser, hub, entries, artifacts):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    try:
        page = open_page(context.new_page(), hub, "alice")
        html = page.locator("html")
        expect(html).to_have_attribute("data-bs-theme", "dark")
        wait_state(page, uname("building"), "building", owner="alice")
        save_screenshot(page, artifacts, "environments-dark.png", full_page=True)
        # the toggle stores the choice where the hub's darkmode.js keeps it (same origin)
        page.click("#dark-theme-toggle")
        expect(html).to_have_attribute("data-bs-theme", "light")
        assert page.evaluate("localStorage.getItem('jupyterhub-bs-theme')") == "light"
        page.goto(hub.url + "/hub/home")
        expect(page.locator("html")).to_have_attribute("data-bs-theme", "light")
        page.evaluate("localStorage.setItem('jupyterhub-bs-theme', 'dark')")
        page.goto(hub.service_url)
        expect(page.locator("html")).to_have_attribute("data-bs-theme", "dark")
    finally:
        context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violation_on_the_page_and_dialogs(browser, hub, entries, scheme):
    assert AXE.is_file(), f"{AXE} is missing: run bash scripts/setup.sh"
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
    try:
        page = open_page(context.new_page(), hub, "alice")
        wait_state(page, uname("building"), "building", owner="alice")
        found = {"page": run_axe(page)}
        page.click("#add-environment")
        page.click(".r2d-credentials summary")
        found["add dialog"] = run_axe(page)
        page.keyboard.press("Escape")
        action(page, uname("failed"), "logs", owner="alice").click()
        expect(page.locator("#logs-phase")).to_have_text("failed")
        found["logs dialog"] = run_axe(page)
        page.keyboard.press("Escape")
        action(page, uname("building"), "cancel", owner="alice").click()
        expect(page.locator("#confirm-dialog")).to_be_visible()
        found["confirm dialog"] = run_axe(page)
        page.click("#confirm-keep")
        bad = {k: v for k, v in found.items() if v}
        assert not bad, f"{scheme}: {bad}"
    finally:
        context.close()


def test_accessible_names_start_with_the_visible_label(page, hub, entries):
    open_page(page, hub, "alice")
    for name, verb, label in [
        (uname("failed"), "logs", "Logs"),
        (uname("failed"), "dismiss", "Dismiss"),
        (uname("building"), "cancel", "Cancel"),
    ]:
        button = action(page, name, verb, owner="alice")
        visible = button.evaluate(
            "b => [...b.childNodes].filter(n => n.nodeType === 3).map(n => n.data).join('')"
        )
        assert visible == label
        expect(button).to_have_accessible_name(re.compile(f"^{label} "))


@pytest.mark.parametrize(("user", "linked"), [("alice", True), ("bob", True), ("carol", False)])
def test_the_hub_links_the_environments_page(page, hub, user, linked):
    """add_navbar_link (the session hub's config): the real hub renders the link and the hint
    on its home page, next to its own navbar items, for users who may reach the service."""
    login(page, hub, user)
    page.goto(hub.url + "/hub/home")
    expect(page.locator("#thenavbar a.nav-link", has_text="Token")).to_be_visible()
    link = page.locator("#repo2docker-navbar-link")
    hint = page.locator("#repo2docker-hint a")
    if not linked:
        expect(link).to_have_count(0)
        expect(hint).to_have_count(0)
        return
    expect(link).to_have_text("Environments")
    expect(link).to_have_attribute("href", "/services/repo2docker/")
    expect(hint).to_have_attribute("href", "/services/repo2docker/")
    link.click()
    page.wait_for_url(hub.service_url + "*")
    expect(page.locator("h1")).to_have_text("Environments")


@pytest.mark.parametrize("path", ["no-such-page", "static-ish/x.html", "api-not/really"])
def test_unknown_addresses_get_the_error_page_in_the_hubs_look(page, hub, path):
    login(page, hub, "alice")
    response = page.goto(hub.service_url + path)
    assert response.status == 404
    expect(page.locator("#error h1")).to_have_text("404 : Not Found")
    expect(page.locator("#error-message")).to_contain_text("no page at this address")
    expect(page.locator("#error a", has_text="Environments")).to_have_attribute(
        "href", "/services/repo2docker/"
    )
    hub_css = page.evaluate(
        "[...document.styleSheets].some(s => s.href && s.href.includes('/hub/static/css/'))"
    )
    assert hub_css


def test_the_browser_session_may_read_its_own_servers(page, hub):
    """The OAuth token of a browser session carries read:servers!user (and nothing more of
    the hub's), so the page can show running servers; a running one: tests/e2e."""
    open_page(page, hub, "bob")
    assert api(page, "GET", "api/servers") == [200, {"available": True, "servers": []}]


def test_an_unknown_ref_is_shown_on_the_ref_field(page, hub, git_http):
    name = uname("refs")
    url = git_http.create_repo(name, dockerfile(BASE_IMAGE, fresh=True), branch="trunk")
    bare = str(git_http.repo(name).bare)
    for branch in ("develop", "no-such-brunch", "zzz"):
        subprocess.run(["git", "--git-dir", bare, "branch", branch, "trunk"], check=True)
    open_page(page, hub, "alice")
    page.click("#add-environment")
    page.fill("#add-repo", url)
    page.fill("#add-ref", "no-such-branch")
    with page.expect_response(lambda r: r.url.endswith("/api/builds")) as info:
        page.click("#add-submit")
    assert info.value.status == 422
    feedback = page.locator("#add-ref-feedback")
    expect(feedback).to_contain_text("No such branch, tag or commit in this repository")
    expect(feedback).to_contain_text("no-such-branch")
    expect(page.locator("#add-ref")).to_be_focused()
    expect(page.locator("#add-error")).to_be_hidden()
    # a few existing branches, the default one first, then the closest (issue 17 item 6)
    assert info.value.json()["suggestions"] == ["trunk", "no-such-brunch", "develop", "zzz"]
    choices = feedback.locator("button.r2d-suggestion")
    expect(choices).to_have_text(["trunk", "no-such-brunch", "develop", "zzz"])
    expect(feedback.get_by_role("group", name="Existing branches:")).to_be_visible()
    choices.nth(1).click()
    expect(page.locator("#add-ref")).to_have_value("no-such-brunch")
    expect(page.locator("#add-ref")).to_be_focused()
    expect(page.locator("#add-ref")).not_to_have_class(re.compile(r"\bis-invalid\b"))


# (status, the server's message) -> the field it goes on (None: the dialog's alert)
REFUSALS = [
    (422, "could not read http://h/r.git: fatal: repository 'http://h/r.git/' not found", "repo"),
    (422, "could not read http://h/r.git: Authentication failed", "repo"),
    (422, "timed out after 20 s contacting http://h/r.git", "repo"),
    (422, "ref 'nope' not found in http://h/r.git", "ref"),
    (422, f"commit {'a' * 40} not found in http://h/r.git", "ref"),
    (422, "something else entirely", None),
    (400, "could not read http://h/r.git: x", None),  # only the sources' 422s
    (429, "the build queue is full; try again in 30 s", None),
]


# the error JSON's field/suggestions decide over the message (status, message, field,
# suggestions) -> (field it goes on, suggestions shown)
STRUCTURED = [
    (422, "anything", "ref", ["main", "dev"], "ref", ["main", "dev"]),
    (422, "anything", "repo", [], "repo", []),
    (422, "ref 'x' not found in http://h/r.git", None, [], "ref", []),
    (422, "anything", "name", ["a"], None, None),  # not a field of this form's choice
    (400, "invalid ref 'a..b': ...", "ref", [], "ref", []),  # a refused ref
    (400, "repo URL has no host", "repo", [], "repo", []),
    (400, "anything", None, [], None, None),
    (429, "anything", "ref", ["main"], None, None),
]


def test_structured_refusals_go_on_their_field_with_suggestions(page, hub):
    open_page(page, hub, "bob")
    found = page.evaluate(
        """async (cases) => {
            const root = document.getElementById("environments").dataset.baseUrl;
            const add = await import(root + "static/js/add.js");
            return cases.map(([status, message, field, suggestions]) =>
                add.fieldOf({status, message, field, suggestions}));
        }""",
        [list(case[:4]) for case in STRUCTURED],
    )
    for case, got in zip(STRUCTURED, found, strict=True):
        assert (got or {}).get("name") == case[4], (case, got)
        assert (got or {}).get("suggestions") == case[5], (case, got)


def test_refusals_go_on_the_field_they_are_about(page, hub):
    open_page(page, hub, "bob")
    found = page.evaluate(
        """async (cases) => {
            const root = document.getElementById("environments").dataset.baseUrl;
            const add = await import(root + "static/js/add.js");
            return cases.map(([status, message]) => add.fieldOf({status, message}));
        }""",
        [[status, message] for status, message, _ in REFUSALS],
    )
    for (status, message, field), got in zip(REFUSALS, found, strict=True):
        assert (got or {}).get("name") == field, (status, message, got)
        if got:
            assert message in got["message"]


# (hub prefix, user, server, image): the page's launch links against the service's rule
SPAWN_URLS = [
    ("/hub/", "alice", "hello", "127.0.0.1:5000/r2d/alice-hello:abc"),
    ("/jupyter/hub/", "first.last@example.org", "my-env", "r2d/x:1"),
    ("/hub/", "ünïcode user", "b-analysis", "r2d/a b:c"),
    ("/a/b/hub", "tilde~user", "env_1.x", "img"),
]


def test_launch_links_end_on_the_server_url_as_the_service_makes_them(page, hub):
    """static/js/util.js spawnUrl and handlers/launch.py spawn_url: one rule (next = the
    server's URL, so ?image= does not follow the user onto JupyterLab)."""
    open_page(page, hub, "bob")
    got = page.evaluate(
        """async (cases) => {
            const root = document.getElementById("environments").dataset.baseUrl;
            const util = await import(root + "static/js/util.js");
            return cases.map((c) => util.spawnUrl(...c));
        }""",
        [list(case) for case in SPAWN_URLS],
    )

    # the same path, and the same query once decoded (the browser writes ~ as %7E in it)
    def parts(url):
        split = urllib.parse.urlsplit(url)
        return split.path, urllib.parse.parse_qs(split.query, strict_parsing=True)

    assert [parts(u) for u in got] == [parts(spawn_url(*case)) for case in SPAWN_URLS]
