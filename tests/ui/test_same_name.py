"""Same name, other repository, in Chromium: the add dialog never lets one environment replace
another, and its client-side rules (repository identity, derived names) mirror the server's."""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import Page, expect

from repo2docker_service.builds.names import derived_names
from repo2docker_service.repoid import RepoIdentity
from tests.rig.api import build, follow_build
from tests.rig.browser import login
from tests.rig.engine import BASE_IMAGE
from tests.rig.repos import dockerfile

pytestmark = [pytest.mark.hub, pytest.mark.browser, pytest.mark.docker]

UID = secrets.token_hex(3)


def open_page(page: Page, hub, user: str) -> None:
    login(page, hub, user)
    page.goto(hub.service_url)
    expect(page.locator("#environments")).to_have_attribute("data-loaded", "true")


def builds_of(page: Page, hub, repo: str) -> list[dict]:
    response = page.context.request.get(hub.service_url + "api/builds")
    assert response.status == 200, response.text()
    return [b for b in response.json()["builds"] if b["repo"] == repo]


def test_the_add_dialog_never_replaces_an_environment_of_another_repository(
    page, hub, git_http, base_image
):
    name = f"analysis-{UID}"
    first = git_http.create_repo(f"sn{UID}a/{name}", dockerfile(BASE_IMAGE, "RUN echo building a"))
    other = git_http.create_repo(f"sn{UID}b/{name}", dockerfile(BASE_IMAGE, "RUN echo building b"))
    build(hub, "alice", repo=first, name=name)
    open_page(page, hub, "alice")
    expect(page.locator(f'#environments-body tr[data-name="{name}"]')).to_have_count(1)

    page.click("#add-environment")
    page.fill("#add-repo", other)
    # the name the server will derive: not the one the other repository holds
    derived = f"sn{UID}b-{name}"
    expect(page.locator("#add-name")).to_have_attribute("placeholder", derived)
    # the name taken, given anyway: the server's 409 shows at the name field
    page.fill("#add-name", name)
    page.click("#add-submit")
    expect(page.locator("#add-name")).to_have_class(re.compile("is-invalid"))
    feedback = page.locator("#add-name-feedback")
    expect(feedback).to_contain_text(f"The name '{name}' is taken")
    expect(feedback).to_contain_text(f"built from {first}")
    expect(feedback).to_contain_text(f"for example '{derived}'")
    assert builds_of(page, hub, other) == []

    # no name: the derived one, and both environments stay
    page.fill("#add-name", "")
    page.click("#add-submit")
    expect(page.locator("#add-dialog")).to_be_hidden()
    (started,) = builds_of(page, hub, other)
    assert started["name"] == derived
    assert follow_build(hub, started["id"], "alice")["state"] == "built"
    page.reload()
    expect(page.locator("#environments")).to_have_attribute("data-loaded", "true")
    for env, repo in ((name, first), (derived, other)):
        row = page.locator(f'#environments-body tr[data-name="{env}"]')
        expect(row).to_have_count(1)
        expect(row.locator(f'[title="{repo}"]')).to_have_count(1)


SPELLINGS = [
    "https://github.com/Org/Repo.git/",
    "https://github.com//org//repo",
    "git@github.com:Org/Repo.git",
    "ssh://git@github.com:22/org/repo",
    "https://GITLAB.com/Group/Sub/Proj",
    "http://127.0.0.1:8080/A/x.git",
    "http://localhost:80/A/x",
    "https://[::1]:8443/Org/r",
    "https://host:99999/r",
    "https://user:pw@git.example.org/o/r?x#y",
    "file:///srv/git/X.git/",
    "https://host/analysis",
    "https://host/" + "o" * 70 + "/" + "n" * 70,
    "https://host/Org.Name/My_Repo",
    "https://host/x/x",
    "",
]


def test_client_identity_and_derived_names_mirror_the_server(page, hub):
    open_page(page, hub, "bob")
    hosts = ["github.com", "gitlab.com", "localhost"]
    client = page.evaluate(
        """async ([urls, hosts]) => {
            const root = document.getElementById("environments").dataset.baseUrl;
            const v = await import(root + "static/js/validate.js");
            return {
                keys: urls.map((u) => v.repoKey(u, hosts)),
                names: urls.map((u) => v.derivedNames(u)),
            };
        }""",
        [SPELLINGS, hosts],
    )
    rule = RepoIdentity.from_hosts(hosts)
    assert client["keys"] == [rule.key(u) for u in SPELLINGS]
    assert client["names"] == [derived_names(u) for u in SPELLINGS]
