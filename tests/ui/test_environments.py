"""The environments page in Chromium against the real hub, service, Docker and git over HTTP.

Every test uses its own repositories and environment names (a random suffix), so it can run
next to other tests that build in the same Docker engine. Screenshots go to the artifacts
folder; with R2DS_UPDATE_SCREENSHOTS=1 they are also copied to docs/screenshots/ (the
README shows them).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from repo2docker_service.builds.request import validate_display_name, validate_hints
from repo2docker_service.errors import InvalidInput
from repo2docker_service.images.naming import derive_name, validate_name
from repo2docker_service.sources import validate_ref, validate_repo_url
from tests.rig.engine import BASE_IMAGE
from tests.rig.envpage import (
    BUILD_TIMEOUT,
    UID,
    action,
    add_environment,
    api,
    count_lines,
    fill_add_dialog,
    open_page,
    row,
    save_screenshot,
    spawn_href,
    submit_add_dialog,
    uname,
    wait_state,
)
from tests.rig.repos import dockerfile

pytestmark = [pytest.mark.hub, pytest.mark.browser, pytest.mark.docker]

REPO_ROOT = Path(__file__).resolve().parents[2]
JS_DIR = REPO_ROOT / "repo2docker_service" / "static" / "js"


# --------------------------------------------------------------------------------- tests
def test_admin_adds_a_shared_environment_that_a_viewer_can_only_launch(
    browser, page, hub, git_http, base_image
):
    name = uname("shared")
    url = git_http.create_repo(name, dockerfile(BASE_IMAGE, fresh=True))
    open_page(page, hub, "admin1")
    fill_add_dialog(page, repo=url, ref="main", name=name, display="Course materials (shared)")
    expect(page.locator("#add-shared")).to_be_visible()
    page.check("#add-shared")
    response = submit_add_dialog(page)
    assert response.status == 202
    assert response.request.post_data_json["shared"] is True
    wait_state(page, name, "built", owner="")
    shared_row = row(page, name, owner="")
    expect(shared_row.locator(".r2d-owner")).to_have_text("shared")
    # admins manage shared environments
    expect(shared_row.locator('[data-action="rebuild"]')).to_be_visible()
    expect(shared_row.locator('[data-action="delete"]')).to_be_visible()

    # bob may only view: he sees it, can launch it, and has nothing else to press
    context = browser.new_context()
    try:
        bob = open_page(context.new_page(), hub, "bob")
        expect(bob.locator("#add-environment")).to_have_count(0)
        expect(bob.locator("#add-dialog")).to_have_count(0)
        bob_row = row(bob, name, owner="")
        expect(bob_row).to_have_attribute("data-state", "built")
        expect(bob_row.locator(".r2d-display-name")).to_have_text("Course materials (shared)")
        for verb in ("rebuild", "cancel", "delete"):
            expect(bob_row.locator(f'[data-action="{verb}"]')).to_have_count(0)
        status, image = api(bob, "GET", f"api/images/shared/{name}")
        assert status == 200, image
        expect(bob_row.locator('[data-action="launch"]')).to_have_attribute(
            "href", spawn_href("bob", name, image["image"])
        )
        # and the server refuses anyway when he posts or deletes by hand
        status, body = api(bob, "POST", "api/builds", {"repo": url, "name": uname("bob")})
        assert status == 403, body
        assert "custom:repo2docker:build" in body["message"]
        status, body = api(bob, "DELETE", f"api/images/shared/{name}")
        assert status == 403, body
        assert "custom:repo2docker:build" in body["message"]
    finally:
        context.close()


def test_alice_adds_follows_rebuilds_and_deletes(page, hub, git_http, base_image, artifacts):
    name = uname("hello")
    url = git_http.create_repo(
        name,
        # ANSI colour and text that would be markup if the log were ever put in innerHTML
        dockerfile(
            BASE_IMAGE,
            "RUN printf '\\033[32mgreen-%s\\033[0m <img src=x id=xss-probe>\\n' ok",
            fresh=True,
        ),
    )
    open_page(page, hub, "alice")
    fill_add_dialog(page, repo=url, ref="main", name=name, display="Hello, repo2docker")
    page.fill("#add-cpu", "1")
    page.fill("#add-memory", "1G")
    expect(page.locator("#add-profile-group")).to_be_hidden()
    expect(page.locator("#add-shared-group")).to_be_hidden()  # not an admin
    save_screenshot(page, artifacts, "add-dialog.png")
    response = submit_add_dialog(page)
    assert response.status == 202
    build = response.json()["build"]
    assert build["hints"] == {"cpu": "1", "memory": "1G"}
    expect(page.locator("#add-dialog")).to_be_hidden()
    # the notice follows this build: building (with its log one click away), then built
    notice = page.locator(f'#notices [data-build="{build["id"]}"]')
    expect(notice).to_contain_text(
        re.compile("Building “Hello, repo2docker”|“Hello, repo2docker” is built")
    )

    # the log dialog follows the build live to the end
    action(page, name, "logs").click()
    dialog = page.locator("#logs-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#logs-phase")).to_have_text("built", timeout=BUILD_TIMEOUT)
    expect(page.locator("#logs-connection")).to_have_text("Finished")
    expect(page.locator("#logs-elapsed")).to_have_text(re.compile(r"^\d+s$"))
    output = page.locator("#logs-output")
    expect(output).to_contain_text("<img src=x id=xss-probe>")
    expect(output.locator("span.ansi-fg-32")).to_have_text("green-ok")
    assert "\x1b" not in output.inner_text()
    expect(page.locator("#xss-probe")).to_have_count(0)
    expect(output.locator("img")).to_have_count(0)
    save_screenshot(page, artifacts, "logs-dialog.png")
    with page.expect_download() as download_info:
        page.click("#logs-download")
    download = download_info.value
    assert download.suggested_filename == f"build-{build['id']}.log"
    assert "green-ok" in Path(download.path()).read_text()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(action(page, name, "logs")).to_be_focused()

    # the row: commit, size, launch link
    wait_state(page, name, "built")
    the_row = row(page, name)
    expect(the_row.locator(".r2d-commit")).to_have_text(build["commit"][:7])
    expect(the_row).to_contain_text(re.compile(r"\d+(\.\d)? MB"))
    slug = "alice"
    status, image = api(page, "GET", f"api/images/{slug}/{name}")
    assert status == 200, image
    expect(action(page, name, "launch")).to_have_attribute(
        "href", spawn_href("alice", name, image["image"])
    )
    # the notice now says it is built and offers Launch right there
    expect(notice).to_have_attribute("data-state", "built")
    expect(notice.locator('[data-action="launch"]')).to_have_attribute(
        "href", spawn_href("alice", name, image["image"])
    )
    # alice sees shared environments but cannot change them
    shared = row(page, uname("shared"), owner="")
    if shared.count():
        expect(shared.locator('[data-action="delete"]')).to_have_count(0)
        expect(shared.locator('[data-action="rebuild"]')).to_have_count(0)

    # rebuild: a forced build of the same repo, ref and hints
    with page.expect_response(
        lambda r: r.url.endswith("/api/builds") and r.request.method == "POST"
    ) as info:
        action(page, name, "rebuild").click()
    assert info.value.status == 202, info.value.text()
    sent = info.value.request.post_data_json
    assert sent["force"] is True
    assert (sent["repo"], sent["ref"], sent["name"]) == (url, "main", name)
    assert (sent["cpu"], sent["memory"]) == ("1", "1G")
    rebuild_id = info.value.json()["build"]["id"]
    assert rebuild_id != build["id"]
    expect(page.locator(f'#notices [data-build="{rebuild_id}"]')).to_contain_text(
        re.compile("Rebuilding “Hello, repo2docker”|“Hello, repo2docker” is built")
    )
    expect(row(page, name)).to_have_attribute("data-build", rebuild_id)
    wait_state(page, name, "built")
    status, rebuilt = api(page, "GET", f"api/builds/{rebuild_id}")
    assert rebuilt["state"] == "built", rebuilt

    # delete asks first: "keep" and Esc change nothing
    action(page, name, "delete").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm).to_be_visible()
    expect(page.locator("#confirm-message")).to_contain_text("Hello, repo2docker")
    expect(page.locator("#confirm-keep")).to_be_focused()
    page.screenshot(path=str(artifacts / "confirm-delete.png"))
    page.click("#confirm-keep")
    expect(confirm).to_be_hidden()
    action(page, name, "delete").click()
    page.keyboard.press("Escape")
    expect(confirm).to_be_hidden()
    expect(row(page, name)).to_have_count(1)
    assert api(page, "GET", f"api/images/{slug}/{name}")[0] == 200
    action(page, name, "delete").click()
    page.click("#confirm-ok")
    expect(row(page, name)).to_have_count(0)
    expect(page.locator("#notices")).to_contain_text("Deleted “Hello, repo2docker”")
    assert api(page, "GET", f"api/images/{slug}/{name}")[0] == 404


def test_add_dialog_checks_input_and_uses_credentials_once(page, hub, git_http, base_image):
    name = uname("private")
    secret = f"s3cret-{UID}"
    url = git_http.create_repo(name, dockerfile(BASE_IMAGE, fresh=True), auth=("reader", secret))
    posts = []
    page.on(
        "request",
        lambda r: posts.append(r) if r.method == "POST" and "/api/builds" in r.url else None,
    )
    open_page(page, hub, "alice")

    # client-side checks mirror the server's: nothing is sent
    fill_add_dialog(page, repo="ftp://example.org/repo.git", name="Not A Name")
    page.click("#add-submit")
    expect(page.locator("#add-repo")).to_have_class(re.compile("is-invalid"))
    expect(page.locator("#add-repo-feedback")).to_contain_text("'ftp' is not allowed")
    expect(page.locator("#add-name")).to_have_class(re.compile("is-invalid"))
    expect(page.locator("#add-name-feedback")).to_be_visible()
    expect(page.locator("#add-repo")).to_be_focused()
    page.fill("#add-repo", url.replace("http://", "http://someone@"))
    page.fill("#add-name", name)
    page.click("#add-submit")
    expect(page.locator("#add-repo-feedback")).to_contain_text("credentials section")
    assert posts == []

    # a mistyped URL: the server's refusal goes on the URL field, in words
    page.fill("#add-repo", url.replace(name, name + "-typo"))
    response = submit_add_dialog(page, expect_status=(422,))
    feedback = page.locator("#add-repo-feedback")
    expect(feedback).to_be_visible()
    expect(feedback).to_contain_text("No repository at this URL, or it is private")
    expect(page.locator("#add-repo")).to_be_focused()
    expect(page.locator("#add-error")).to_be_hidden()

    # wrong password: the server's message is shown, the credentials are gone from the form
    page.fill("#add-repo", url)
    page.fill("#add-display-name", "Private course notes")
    page.click(".r2d-credentials summary")
    page.fill("#add-cred-username", "reader")
    page.fill("#add-cred-password", "wrong-password")
    response = submit_add_dialog(page, expect_status=(422,))
    message = response.json()["message"]
    expect(feedback).to_be_visible()
    expect(feedback).to_contain_text("add credentials")
    expect(feedback).to_contain_text(message)
    expect(page.locator("#add-cred-password")).to_have_value("")
    expect(page.locator("#add-cred-username")).to_have_value("")
    expect(page.locator("#add-dialog")).to_be_visible()

    # right password: built; the secret went once, in the body, and stayed nowhere
    page.fill("#add-cred-username", "reader")
    page.fill("#add-cred-password", secret)
    response = submit_add_dialog(page, expect_status=(202,))
    assert response.request.post_data_json["credentials"] == {
        "username": "reader",
        "password": secret,
    }
    assert secret not in response.text()
    assert all(secret not in r.url for r in posts)
    expect(page.locator("#add-dialog")).to_be_hidden()
    expect(page.locator("#add-cred-password")).to_have_value("")
    wait_state(page, name, "built")
    assert secret not in page.content()
    stored = page.evaluate("JSON.stringify([{...localStorage}, {...sessionStorage}])")
    assert secret not in stored

    # Esc closes the dialog
    page.click("#add-environment")
    expect(page.locator("#add-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#add-dialog")).to_be_hidden()


def test_machine_profiles_replace_cpu_and_memory_and_refusals_are_shown(page, hub):
    """With machine_profiles configured (api/info), the dialog offers them instead."""
    profiles = [
        {"name": "small", "display_name": "Small (1 CPU, 2 GB)", "cpu": 1, "memory": "2G"},
        {"name": "large", "display_name": "Large (4 CPUs, 16 GB)", "cpu": 4, "memory": "16G"},
    ]

    def with_profiles(route):
        response = route.fetch()
        info = response.json()
        info["machine_profiles"] = profiles
        route.fulfill(response=response, json=info)

    def refuse(route):
        if route.request.method != "POST":
            route.continue_()
            return
        route.fulfill(
            status=429,
            json={"status": 429, "message": "the build queue is full; try again in 30 s"},
        )

    page.route("**/api/info", with_profiles)
    page.route("**/api/builds", refuse)
    open_page(page, hub, "alice")
    fill_add_dialog(page, repo="http://127.0.0.1:9/example/repo.git", name=uname("profile"))
    expect(page.locator("#add-limits-group")).to_be_hidden()
    select = page.locator("#add-profile")
    expect(select).to_be_visible()
    expect(select.locator("option")).to_have_text([p["display_name"] for p in profiles])
    select.select_option("large")
    response = submit_add_dialog(page, expect_status=(429,))
    body = response.request.post_data_json
    assert body["profile"] == "large"
    assert "cpu" not in body and "memory" not in body
    expect(page.locator("#add-error")).to_have_text("the build queue is full; try again in 30 s")


def test_client_checks_mirror_the_server(page, hub):
    open_page(page, hub, "bob")
    # every module is in the import map (versioned URLs, so upgrades never run stale code)
    mapped = page.evaluate(
        "Object.keys(JSON.parse(document.querySelector('script[type=importmap]').textContent)"
        ".imports)"
    )
    assert sorted(Path(u).name for u in mapped) == sorted(p.name for p in JS_DIR.glob("*.js"))

    schemes = ["http", "https"]
    urls = [
        "https://github.com/org/repo",
        "http://127.0.0.1:8080/org/repo.git",
        "https://[::1]:8443/r",
        "ftp://example.org/r",
        "file:///srv/repo",
        "ext::sh -c touch% /tmp/pwned",
        "-https://x/y",
        "https://user:pw@github.com/org/repo",
        "https://token@github.com/org/repo",
        "https://exa mple.org/r",
        "https://-bad.example/r",
        "https://host:99999/r",
        "https://host:port/r",
        "https:///nohost",
        "github.com/org/repo",
        "git@github.com:org/repo.git",
        "https://example.org/a\\b",
        "https://example.org/r\u200b",
        "",
    ]
    refs = [
        "main",
        "HEAD",
        "v1.0",
        "abc1234",
        "feature/x",
        "-rf",
        "a..b",
        "x y",
        "a:b",
        "x.lock",
        "/a",
        "a/",
        "a//b",
        "a.",
        ".hidden",
        "@",
        "a@{1}",
        "refs/heads/main",
        "é",
    ]
    names = ["hello", "my-env", "a.b_c", "Hello", "a--b", "-a", "a-", "x" * 63, "x" * 64, "é"]
    displays = ["Hello", "  ", "x" * 200, "x" * 201, "tab\there", "ok ünïcode"]
    cpus = ["1", "0.5", "256", "257", "0", "1.2345", "abc", "-1", "1e3"]
    memories = [
        *("512M", "2G", "1.5G", "0", "2g", "2GB", "-1G", "12345678M", "1024", "16GB", "16Gi"),
        *("16 GiB", "512MB", "512m", "2", "67108864", "64M", "63M", "1e9", "1,5G", "16 G B"),
        *(".5G", "1024T", "1025T", "2048B", "lots"),
    ]

    def ok(check, value):
        try:
            check(value)
        except InvalidInput:
            return False
        return True

    client = page.evaluate(
        """async (cases) => {
            const root = document.getElementById("environments").dataset.baseUrl;
            const v = await import(root + "static/js/validate.js");
            return {
                urls: cases.urls.map((u) => v.checkRepoUrl(u, cases.schemes) === null),
                refs: cases.refs.map((r) => v.checkRef(r) === null),
                names: cases.names.map((n) => v.checkName(n) === null),
                displays: cases.displays.map((d) => v.checkDisplayName(d) === null),
                cpus: cases.cpus.map((c) => v.checkCpu(c) === null),
                memories: cases.memories.map((m) => v.checkMemory(m) === null),
                derived: cases.urls.map((u) => v.deriveName(u)),
            };
        }""",
        {
            "schemes": schemes,
            "urls": urls,
            "refs": refs,
            "names": names,
            "displays": displays,
            "cpus": cpus,
            "memories": memories,
        },
    )
    server = {
        "urls": [ok(lambda u: validate_repo_url(u, allowed_schemes=schemes), u) for u in urls],
        "refs": [ok(validate_ref, r) for r in refs],
        "names": [ok(validate_name, n) for n in names],
        "displays": [ok(lambda d: validate_display_name(d, default="x"), d) for d in displays],
        "cpus": [ok(lambda c: validate_hints({"cpu": c}), c) for c in cpus],
        "memories": [ok(lambda m: validate_hints({"memory": m}), m) for m in memories],
        "derived": [derive_name(u) for u in urls],
    }
    for key, values in server.items():
        cases = {"urls": urls, "derived": urls}.get(key) or locals()[key]
        mismatches = [
            (case, s, c) for case, s, c in zip(cases, values, client[key], strict=True) if s != c
        ]
        assert not mismatches, f"{key}: (input, server, client) {mismatches}"


def test_log_stream_resumes_after_a_drop_without_missing_or_repeated_lines(
    page, hub, git_http, base_image
):
    name = uname("lines")
    url = git_http.create_repo(
        name,
        dockerfile(
            BASE_IMAGE, "RUN for i in $(seq 1 30); do echo line-$i; sleep 0.3; done", fresh=True
        ),
    )
    open_page(page, hub, "alice")
    add_environment(page, repo=url, ref="main", name=name, display="Numbered lines")
    action(page, name, "logs").click()
    output = page.locator("#logs-output")
    expect(output).to_contain_text("line-5", timeout=BUILD_TIMEOUT)
    # the network goes away and the stream with it; reconnect attempts fail meanwhile
    page.context.set_offline(True)
    page.evaluate("window.repo2dockerService.logs.stream.drop()")
    expect(page.locator("#logs-dialog")).to_have_attribute("data-connection", "reconnecting")
    expect(page.locator("#logs-connection")).to_contain_text("reconnecting")
    page.wait_for_timeout(2000)  # lines keep coming on the server
    seen_offline = count_lines(output.inner_text(), "line", 30)
    assert seen_offline[30] == 0, "the build should still be printing"
    page.context.set_offline(False)
    expect(page.locator("#logs-phase")).to_have_text("built", timeout=BUILD_TIMEOUT)
    counts = count_lines(output.inner_text(), "line", 30)
    assert all(c == 1 for c in counts.values()), counts
    connections = page.evaluate("window.repo2dockerService.logs.stream.connections")
    assert connections >= 2
    # the downloadable log has the same lines
    status, _ = api(page, "GET", f"api/images/alice/{name}")
    assert status == 200


def test_cancel_a_slow_build(page, hub, git_http, base_image, artifacts):
    name = uname("slow")
    url = git_http.create_repo(name, dockerfile(BASE_IMAGE, "RUN sleep 600", fresh=True))
    open_page(page, hub, "alice")
    answer = add_environment(page, repo=url, ref="main", name=name, display="Slow build")
    build_id = answer["build"]["id"]
    wait_state(page, name, "building")
    expect(row(page, name).locator(".r2d-status")).to_have_text("building")
    # no rebuild, delete or launch while building; cancel instead
    expect(action(page, name, "rebuild")).to_have_count(0)
    expect(action(page, name, "launch")).to_have_count(0)
    page.screenshot(path=str(artifacts / "environments-building.png"), full_page=True)

    action(page, name, "cancel").click()
    expect(page.locator("#confirm-message")).to_contain_text("Slow build")
    page.click("#confirm-keep")
    expect(page.locator("#confirm-dialog")).to_be_hidden()
    assert api(page, "GET", f"api/builds/{build_id}")[1]["state"] == "building"
    action(page, name, "cancel").click()
    with page.expect_response(
        lambda r: r.url.endswith(f"/api/builds/{build_id}") and r.request.method == "DELETE"
    ) as info:
        page.click("#confirm-ok")
    assert info.value.status == 200, info.value.text()
    wait_state(page, name, "cancelled", timeout=60_000)
    expect(row(page, name).locator(".r2d-status")).to_have_text("cancelled")
    expect(action(page, name, "cancel")).to_have_count(0)
    expect(action(page, name, "rebuild")).to_be_visible()
