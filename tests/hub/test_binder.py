"""BinderHub's build API, driven by the real @jupyterhub/binderhub-client (npm, in Node).

The client talks to the hub's proxy at ``/services/binder/build/`` (the alias
jupyterhub-fancy-profiles calls; the session hub registers it with ``add_binder_alias``) and
at the service's own prefix, with a user's API token sent as ``Bearer`` (what fancy-profiles
does). Builds are real: repo2docker in the session's Docker engine from the session's git
server, which is the hub's ``gh`` host (``launch_git_host``) and ``gl`` host.
"""

from __future__ import annotations

import secrets
import urllib.parse
import urllib.request

import pytest

from tests.rig.api import build, call, iter_sse, request
from tests.rig.binder import binder_fetch, check_binderhub_client, start_fetch
from tests.rig.net import no_proxy_opener
from tests.rig.parts import require
from tests.rig.repos import dockerfile

pytestmark = [pytest.mark.hub, pytest.mark.docker]

ORG = f"binder-{secrets.token_hex(3)}"


@pytest.fixture(scope="module")
def client():
    """The installed client (fails, never skips, when setup.sh did not install it)."""
    return require(check_binderhub_client)


@pytest.fixture(scope="module")
def alias(hub):
    """The build endpoint fancy-profiles calls: ``<hub>/services/binder/build/``."""
    return f"{hub.url}/services/binder/build/"


@pytest.fixture(scope="module")
def repos(git_http, base_image):
    """``{kind: spec}``: gh specs of a good, a broken and a slow repository."""
    made = {}
    for kind, step in [
        ("ok", "RUN echo binder-ok"),
        ("broken", "RUN echo about to fail && exit 3"),
        ("slow", "RUN echo slow-slow && sleep 4"),  # a client can leave while it runs
        ("pair", "RUN echo binder-pair"),
        ("viewer", "RUN echo binder-viewer"),
    ]:
        git_http.create_repo(f"{ORG}/{kind}", dockerfile(base_image, step))
        made[kind] = f"gh/{ORG}/{kind}/main"
    return made


@pytest.fixture(scope="module")
def first_build(hub, client, alias, repos):
    """alice's first call on the good repository: a real build, to ready."""
    return binder_fetch(alias, repos["ok"], token=hub.token_for("alice"))


def alice_builds(hub, image: str) -> list[dict]:
    status, body = call(hub, "GET", "api/builds", "alice")
    assert status == 200, body
    return [b for b in body["builds"] if b["image"] == image]


def test_client_builds_to_ready_with_the_image_name(hub, first_build):
    phases = [e["phase"] for e in first_build]
    assert phases[0] == "waiting" and phases[-2:] == ["built", "ready"], phases
    assert "building" in phases
    assert all(e["message"].endswith("\n") for e in first_build)
    ready = first_build[-1]
    image = ready["imageName"]
    # the owner is in the name, as for POST api/builds; the image is alice's and listed
    assert "alice" in image.split(":")[0]
    assert ready["binder_request"] == f"v2/gh/{ORG}/ok/main"
    (build,) = alice_builds(hub, image)
    assert build["state"] == "built" and build["owner"] == "alice"
    assert ready["binder_persistent_request"] == f"v2/gh/{ORG}/ok/{build['commit']}"
    assert ready["binder_ref_url"].endswith(f"/{ORG}/ok/tree/{build['commit']}")
    assert ready["binder_launch_host"].endswith("/services/repo2docker/")
    assert any("binder-ok" in e["message"] for e in first_build), "the build log is streamed"


@pytest.mark.parametrize("provider", ["gh", "gl", "git"])
def test_second_call_is_a_cache_hit(hub, client, alias, git_http, first_build, provider):
    """The same repository and ref through any provider: the same image, no build."""
    spec = {
        "gh": f"gh/{ORG}/ok/main",
        "gl": f"gl/{urllib.parse.quote(ORG + '/ok', safe='')}/main",
        "git": f"git/{urllib.parse.quote(git_http.url(ORG + '/ok'), safe='')}/main",
    }[provider]
    events = binder_fetch(alias, spec, token=hub.token_for("alice"))
    assert [e["phase"] for e in events] == ["ready"], events
    assert events[0]["imageName"] == first_build[-1]["imageName"]
    assert events[0]["message"] == "Done! Found built image\n"
    assert events[0]["binder_request"] == f"v2/{spec}"
    assert len(alice_builds(hub, events[0]["imageName"])) == 1


def test_failing_repo_gives_failed_with_the_reason(hub, client, alias, repos):
    events = binder_fetch(alias, repos["broken"], token=hub.token_for("alice"))
    assert events[-1]["phase"] == "failed", events
    assert "Build failed" in events[-1]["message"]
    assert "exit code: 3" in events[-1]["message"]
    assert any("about to fail" in e["message"] for e in events), "the log came before"
    assert not any(e["phase"] == "ready" for e in events)


def test_two_clients_at_once_make_one_build(hub, client, alias, repos):
    token = hub.token_for("alice")
    first, second = (start_fetch(alias, repos["pair"], token=token) for _ in range(2))
    a, b = first.events(), second.events()
    assert a[-1]["phase"] == b[-1]["phase"] == "ready", (a, b)
    assert a[-1]["imageName"] == b[-1]["imageName"]
    assert len(alice_builds(hub, a[-1]["imageName"])) == 1


def test_leaving_never_cancels_and_asking_again_joins(hub, client, alias, repos):
    token = hub.token_for("alice")
    left = binder_fetch(alias, repos["slow"], token=token, stop_after="building")
    assert left[-1]["phase"] == "building", left
    again = binder_fetch(alias, repos["slow"], token=token)
    assert again[-1]["phase"] == "ready", again
    (build,) = alice_builds(hub, again[-1]["imageName"])
    assert build["state"] == "built"


@pytest.mark.parametrize("user", ["bob", "dave", "carol"])
def test_user_without_build_gets_failed_not_a_hang(hub, client, alias, repos, user):
    """bob may view, dave reaches the service without a scope, carol may not reach it."""
    events = binder_fetch(alias, repos["viewer"], token=hub.token_for(user))
    assert [e["phase"] for e in events] == ["failed"], events
    says = {
        "bob": "custom:repo2docker:build",
        "dave": "custom:repo2docker:view",
        "carol": "Not authenticated",
    }[user]
    assert says in events[0]["message"]
    assert events[0]["status_code"] == 403


def test_viewer_gets_ready_for_a_shared_image(hub, client, alias, repos, git_http):
    """Once an admin built it as a shared environment, a viewer's call answers it."""
    repo = git_http.url(f"{ORG}/viewer").removesuffix(".git")  # what gh/<org>/viewer names
    shared = build(hub, "admin1", repo=repo, name="viewer", shared=True)
    events = binder_fetch(alias, repos["viewer"], token=hub.token_for("bob"))
    assert [e["phase"] for e in events] == ["ready"], events
    assert events[0]["imageName"] == shared["image"]


def test_without_build_only_the_answer_says_to_add_it(hub, client, alias, repos):
    events = binder_fetch(alias, repos["ok"], token=hub.token_for("alice"), build_only=False)
    assert [e["phase"] for e in events] == ["failed"]
    assert "build_only=true" in events[0]["message"]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("gh/just-org/HEAD", "<org>/<repo>/<ref>"),
        ("zenodo/10.5281/zenodo.1", "No provider found"),
        ("gh/org/repo%2Fx/main", "letters, digits"),
        ("git/file%3A%2F%2F%2Fetc/main", "scheme"),
        ("git/https%3A%2F%2Falice%3Asecret%40example.org%2Fr/main", "credentials"),
    ],
)
def test_bad_specs_are_failed_events_saying_why(hub, client, alias, spec, says):
    events = binder_fetch(alias, spec, token=hub.token_for("alice"))
    assert [e["phase"] for e in events] == ["failed"], events
    assert says in events[0]["message"]
    assert "secret" not in events[0]["message"]


def test_token_header_and_own_prefix_work_too(hub, first_build, repos):
    """``Authorization: token`` (not the client's Bearer), at the service's own prefix."""
    url = hub.service_url + f"build/{repos['ok']}?build_only=true"
    req = urllib.request.Request(url, headers={"Authorization": f"token {hub.token_for('alice')}"})
    with no_proxy_opener().open(req, timeout=60) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events = list(iter_sse(resp))
    assert [e["data"] for e in events][-1].startswith('{"phase":"ready"')


def test_rate_limit_is_a_failed_event_not_a_retry_loop(hub, client, alias, repos):
    """binderhub-client retries a 429 forever; the service answers it as a failed event."""
    token = hub.token_for("flooder2")  # a user of its own: the limit is per user
    for _ in range(200):
        status, _ = request("POST", hub.service_url + "api/builds", token=token, body={"repo": "x"})
        if status == 429:
            break
    events = binder_fetch(alias, repos["ok"], token=token)
    assert [e["phase"] for e in events] == ["failed"], events
    assert events[0]["status_code"] == 429
