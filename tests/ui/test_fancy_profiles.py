"""jupyterhub-fancy-profiles (from PyPI) in a real hub with KubeSpawner: "Build image" in Chromium.

The hub runs fancy-profiles' form (``setup_ui``) with KubeSpawner and the z2jh overlay's kind
of ``profile_list``; the service is also routed at ``/services/binder/`` (fancy-profiles'
fixed path) and its ``gh`` host is the session's git server. Chromium opens the spawn page,
picks "Build your own image", types a repository and ref, clicks "Build Image and Start",
and fancy-profiles' own code creates a token, builds through binderhub-client and posts the
form. There is no cluster here, so the test stops at that form submission (the POST is
intercepted, nothing asks Kubernetes for a pod): the built image name must be what it posts.
"""

from __future__ import annotations

import re
import secrets

import pytest

from tests.rig.api import call
from tests.rig.browser import login
from tests.rig.fake_service import KUBECONFIG
from tests.rig.hub import BINDER_ALIAS_CONFIG, BINDER_ALIAS_ENV, start_hub
from tests.rig.parts import OFFLINE_CONFIG
from tests.rig.repos import dockerfile

pytestmark = [pytest.mark.hub, pytest.mark.browser, pytest.mark.docker]

ORG = f"fancy-{secrets.token_hex(3)}"
HUB_CONFIG = """
from jupyterhub_fancy_profiles import setup_ui
from repo2docker_service.hub.kubespawner import make_image_check
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
setup_ui(c)
c.KubeSpawner.profile_list = [{
    "display_name": "Build or choose an environment",
    "slug": "custom",
    "default": True,
    "profile_options": {"image": {
        "display_name": "Image",
        "dynamic_image_building": {"enabled": True},
        "unlisted_choice": {
            "enabled": True,
            "display_name": "Image built here",
            "validation_regex": "^.+:.+$",
            "kubespawner_override": {"image": "{value}"},
        },
        "choices": {"base": {"display_name": "Base",
                             "kubespawner_override": {"image": "local/base:1"}}},
    }},
}]
c.KubeSpawner.pre_spawn_hook = make_image_check()
"""


@pytest.fixture(scope="module")
def fancy_hub(tmp_path_factory, git_http, base_image):
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    kubeconfig.write_text(KUBECONFIG)
    h = start_hub(
        tmp_path_factory.mktemp("fancy-hub"),
        service_config=(
            'c.Repo2DockerService.allowed_repo_schemes = ["http", "https"]\n'
            f"c.Executor.repo2docker_config = {str(OFFLINE_CONFIG)!r}\n"
            f"c.Repo2DockerService.image_prefix = 'r2dfancy-{secrets.token_hex(3)}-'\n"
            f"c.Repo2DockerService.launch_git_host = {git_http.base_url!r}\n"
        ),
        extra_config=BINDER_ALIAS_CONFIG + HUB_CONFIG,
        env={**BINDER_ALIAS_ENV, "KUBECONFIG": str(kubeconfig)},
    )
    yield h
    h.stop()


def test_build_image_button_builds_and_posts_the_image(
    page, fancy_hub, git_http, base_image, artifacts
):
    git_http.create_repo(f"{ORG}/env", dockerfile(base_image, "RUN echo fancy"))
    login(page, fancy_hub, "alice")
    posted: list[str] = []

    def capture(route):
        if route.request.method == "POST":
            posted.append(route.request.post_data or "")
            route.abort()  # no cluster: stop at the form submission
        else:
            route.continue_()

    page.route("**/hub/spawn**", capture)
    page.goto(f"{fancy_hub.url}/hub/spawn")
    # fancy-profiles' image select (react-select): its "Build your own image" entry
    page.get_by_role("combobox").first.click()
    page.get_by_role("option").filter(has_text="Build your own image").click()
    page.get_by_role("combobox", name="Repository").fill(f"{ORG}/env")
    page.get_by_role("combobox", name="Git Ref").fill("main")
    button = page.get_by_role("button", name="Build Image and Start")
    button.wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts / "fancy-profiles-build-form.png"), full_page=True)
    button.click()
    # Playwright's sync API runs route handlers only while it waits: wait in the page
    for _ in range(600):
        if posted:
            break
        page.wait_for_timeout(500)
    assert posted, "fancy-profiles did not submit the form"
    # the form posts multipart/form-data: name -> value
    form = dict(re.findall(r'name="([^"]+)"\r\n\r\n(.*?)\r\n', posted[0]))
    status, body = call(fancy_hub, "GET", "api/builds", "alice")
    assert status == 200, body
    (build,) = [b for b in body["builds"] if f"/{ORG}/env" in b["repo"]]
    assert build["state"] == "built" and build["owner"] == "alice"
    assert form["profile"] == "custom", form
    assert form["profile-option-custom--image--unlisted-choice"] == build["image"], form
