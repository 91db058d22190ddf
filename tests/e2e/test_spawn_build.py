"""The spawn form's "Build from a repository" choice in Chromium (issue 13), at 360 px.

Real hub + proxy + service + dockerd; alice (build) builds a Dockerfile repository (FROM the
bundled example, so the result runs jupyterhub-singleuser) from the hub's spawn page,
watches the log arrive, starts it and reaches the server. A failing repository and the
refusals (bad URL, unknown ref) show on the fields and in the log, never in an alert.
"""

from __future__ import annotations

import subprocess

import pytest
from playwright.sync_api import Page, expect

from tests.rig.api import request
from tests.rig.browser import login, run_axe
from tests.rig.repos import dockerfile
from tests.rig.spawn import RUN, stop_server

pytestmark = [pytest.mark.hub, pytest.mark.docker, pytest.mark.browser]

BUILD_MS = 240_000
WIDTH = 360
NOTE = "repo2docker-service: Build from the spawn page"


def no_alerts(page: Page) -> list[str]:
    """Collects every JavaScript dialog (alert/confirm) the page opens; the test wants none."""
    seen: list[str] = []

    def on_dialog(dialog) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


def open_spawn_form(page: Page, hub, user: str, server: str) -> None:
    page.set_viewport_size({"width": WIDTH, "height": 800})
    login(page, hub, user)
    page.goto(f"{hub.url}/hub/spawn/{user}/{server}")
    expect(page.locator("#r2d-build-choice-row")).to_be_visible()  # the script ran
    page.locator("#r2d-build-choice").check()
    expect(page.locator("#r2d-build")).to_be_visible()


def assert_fits(page: Page) -> None:
    """Nothing pans sideways at 360 px; the Build button and the fields are inside."""
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= WIDTH, width
    for selector in ("#r2d-build-repo", "#r2d-build-ref", "#r2d-build-button"):
        box = page.locator(selector).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, (selector, box)


def form_tokens(hub, user: str) -> list[dict]:
    status, answer = request(
        "GET", f"{hub.url}/hub/api/users/{user}/tokens", token=hub.token_for(user)
    )
    assert status == 200, answer
    return [t for t in answer["api_tokens"] if t.get("note") == NOTE]


def test_build_from_the_spawn_form_watch_start_and_reach_the_server(
    e2e_hub, git_http, hello_image, page, artifacts
):
    name = f"e2e-{RUN}/formbuild"
    url = git_http.create_repo(
        name,
        dockerfile(
            hello_image["image"],
            "RUN echo form-build-step-1",
            "RUN sleep 8",
            "RUN echo form-build-step-2",
            fresh=True,
        ),
    )
    bare = str(git_http.repo(name).bare)
    subprocess.run(["git", "--git-dir", bare, "branch", "develop", "main"], check=True)
    server = "formbuild"
    alerts = no_alerts(page)
    open_spawn_form(page, e2e_hub, "alice", server)
    assert_fits(page)
    try:
        # an unknown ref: on the ref field, with the repository's branches (issue 17 item 6)
        page.fill("#r2d-build-repo", url)
        page.fill("#r2d-build-ref", "no-such-branch")
        page.click("#r2d-build-button")
        feedback = page.locator("#r2d-build-ref-feedback")
        expect(feedback).to_contain_text("No such branch, tag or commit", timeout=30_000)
        expect(page.locator("#r2d-build-ref")).to_have_attribute("aria-invalid", "true")
        expect(feedback.locator("button.r2d-suggestion")).to_have_text(["main", "develop"])
        feedback.locator("button.r2d-suggestion", has_text="main").click()
        expect(page.locator("#r2d-build-ref")).to_have_value("main")
        assert (
            run_axe(page, within="#repo2docker-images") == []
        )  # labels, contrast, roles: the error state too

        page.click("#r2d-build-button")
        log = page.locator("#r2d-build-log")
        # the log arrives while the build runs (the next step sleeps)
        expect(log).to_contain_text("form-build-step-1", timeout=BUILD_MS)
        assert page.locator("#r2d-build").get_attribute("data-state") == "building"
        expect(page.locator("#r2d-build")).to_have_attribute(
            "data-state", "built", timeout=BUILD_MS
        )
        expect(log).to_contain_text("form-build-step-2")
        expect(page.locator("#r2d-build-status")).to_contain_text("press Start")
        chosen = page.locator('#spawn_form input[name="image"]:checked')
        image = chosen.get_attribute("value")
        expect(chosen).to_be_focused()
        # the built image is alice's, as the service lists it
        status, images = request(
            "GET", e2e_hub.service_url + "api/images", token=e2e_hub.token_for("alice")
        )
        assert status == 200 and image in [i["image"] for i in images["images"]], image
        assert form_tokens(e2e_hub, "alice") == []  # the form's token is gone
        assert_fits(page)
        assert run_axe(page, within="#repo2docker-images") == []
        page.screenshot(path=str(artifacts / "e2e-spawn-build-360.png"), full_page=True)

        page.locator("#spawn_form button[type=submit]").click()
        page.wait_for_url(f"**/user/alice/{server}/**", timeout=180_000)
        response = page.goto(f"{e2e_hub.url}/user/alice/{server}/api/status")
        assert response.status == 200
        status, model = request(
            "GET", f"{e2e_hub.url}/hub/api/users/alice", token=e2e_hub.token_for("alice")
        )
        assert status == 200 and model["servers"][server]["user_options"] == {"image": image}
        assert alerts == []
    finally:
        stop_server(e2e_hub, "alice", server)


def test_a_failing_repository_and_bad_input_show_in_the_form(
    e2e_hub, git_http, base_image, page, artifacts
):
    url = git_http.create_repo(
        f"e2e-{RUN}/formfail",
        dockerfile(base_image, "RUN echo about-to-fail && exit 3", fresh=True),
    )
    alerts = no_alerts(page)
    open_spawn_form(page, e2e_hub, "alice", "formfail")
    # Start with nothing built: said on the URL field, nothing is posted
    page.locator("#spawn_form button[type=submit]").click()
    expect(page.locator("#r2d-build-repo-feedback")).to_contain_text("Build an environment first")
    assert page.url.endswith("/hub/spawn/alice/formfail")
    # a URL the service refuses: its reason on the URL field
    page.fill("#r2d-build-repo", "ftp://127.0.0.1/x.git")
    page.click("#r2d-build-button")
    expect(page.locator("#r2d-build-repo-feedback")).to_contain_text("ftp", timeout=30_000)
    expect(page.locator("#r2d-build-repo")).to_be_focused()
    # no repository at this URL
    page.fill("#r2d-build-repo", f"{git_http.base_url}/e2e-{RUN}/nothing-here.git")
    page.click("#r2d-build-button")
    feedback = page.locator("#r2d-build-repo-feedback")
    expect(feedback).to_contain_text("No repository at this URL", timeout=30_000)
    # no credentials fields here: it says where private repositories are built
    expect(feedback).to_contain_text("built on the environments page")
    # the failing build: the reason in the status line and the log
    page.fill("#r2d-build-repo", url)
    page.click("#r2d-build-button")
    root = page.locator("#r2d-build")
    expect(root).to_have_attribute("data-state", "failed", timeout=BUILD_MS)
    expect(page.locator("#r2d-build-status")).to_contain_text("The build failed")
    expect(page.locator("#r2d-build-log")).to_contain_text("about-to-fail")
    assert page.locator('#spawn_form input[name="image"]:checked').get_attribute("id") == (
        "r2d-build-choice"
    )
    assert form_tokens(e2e_hub, "alice") == []
    assert_fits(page)
    assert run_axe(page, within="#repo2docker-images") == []
    page.screenshot(path=str(artifacts / "e2e-spawn-build-failed-360.png"), full_page=True)
    assert alerts == []


def test_a_view_only_user_gets_no_build_choice(e2e_hub, page):
    login(page, e2e_hub, "bob")
    page.goto(f"{e2e_hub.url}/hub/spawn/bob/nobuild")
    expect(page.locator("#spawn_form")).to_be_visible()
    assert page.locator("#r2d-build-choice").count() == 0
