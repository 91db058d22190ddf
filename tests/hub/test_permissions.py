"""The ownership matrix, against the real hub with real users, groups and roles.

Actors: none (dave: may reach the service, holds no scope; carol: may not reach it),
view (bob), build (alice), admin (admin1).
Targets: the actor's own environment, another user's private one, a shared one.
Actions: list, detail, logs, events, build into, cancel, dismiss, delete. Every cell is asserted.
"""

import json
import urllib.error
import urllib.request
from urllib.parse import quote

import pytest

pytestmark = [pytest.mark.hub, pytest.mark.docker]

DOCKERFILE = "FROM local/debian:bookworm\nRUN echo {what}\n"
LOG_MARKER = "log-marker-7f3a"


def call(hub, method, path, user, body=None):
    hdrs = {"Authorization": f"token {hub.token_for(user)}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    req = urllib.request.Request(hub.service_url + path, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            raw = resp.read()
            return resp.status, raw
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def build_and_wait(hub, user, body):
    status, raw = call(hub, "POST", "api/builds", user, body)
    assert status in (200, 202), raw
    result = json.loads(raw)
    build = result["build"]
    if build is None:
        raise AssertionError(f"expected a fresh build, got {result}")
    status, raw = call(hub, "GET", f"api/builds/{build['id']}/events", user)
    assert status == 200
    last = [line for line in raw.decode().splitlines() if line.startswith("data: ")][-1]
    done = json.loads(last[6:])
    assert done["state"] == "built", done
    return done


@pytest.fixture(scope="module")
def world(hub, git_http, base_image):
    """One private environment each for alice and bob (built for bob by the admin),
    and one shared environment; each with the build that made it."""
    url = git_http.create_repo("perm/env", {"Dockerfile": DOCKERFILE.format(what=LOG_MARKER)})
    envs = {
        "alice": build_and_wait(hub, "alice", {"repo": url, "name": "perm-alice"}),
        "bob": build_and_wait(hub, "admin1", {"repo": url, "name": "perm-bob", "owner": "bob"}),
        "shared": build_and_wait(
            hub, "admin1", {"repo": url, "name": "perm-shared", "shared": True}
        ),
    }
    images = json.loads(call(hub, "GET", "api/images", "admin1")[1])["images"]
    for build in envs.values():
        image = next(i for i in images if i["build_id"] == build["id"])
        build["slug"] = image["owner_slug"]
    return {"url": url, "envs": envs}


# actor -> target -> expected outcome for reading (list/detail) the IMAGE,
# reading the BUILD (list/detail/logs/events), building into, cancelling, deleting
ALLOW, DENY, HIDE = "allow", "deny", "hide"  # hide: 404, as if it did not exist
TARGET_OF = {  # the environment that is "own" / "other" for each actor
    "bob": {"own": "bob", "other": "alice", "shared": "shared"},
    "alice": {"own": "alice", "other": "bob", "shared": "shared"},
    "admin1": {"own": None, "other": "alice", "shared": "shared"},
    "dave": {"own": None, "other": "alice", "shared": "shared"},
    "carol": {"own": None, "other": "alice", "shared": "shared"},
}
EXPECT = {
    # actor, target: (image read, build read, build into, cancel, delete)
    ("bob", "own"): (ALLOW, ALLOW, DENY, DENY, DENY),
    ("bob", "other"): (HIDE, HIDE, DENY, DENY, DENY),
    ("bob", "shared"): (ALLOW, HIDE, DENY, DENY, DENY),
    ("alice", "own"): (ALLOW, ALLOW, ALLOW, ALLOW, ALLOW),
    ("alice", "other"): (HIDE, HIDE, DENY, HIDE, HIDE),
    ("alice", "shared"): (ALLOW, HIDE, DENY, HIDE, DENY),
    ("admin1", "other"): (ALLOW, ALLOW, ALLOW, ALLOW, ALLOW),
    ("admin1", "shared"): (ALLOW, ALLOW, ALLOW, ALLOW, ALLOW),
    ("dave", "other"): (DENY, DENY, DENY, DENY, DENY),
    ("dave", "shared"): (DENY, DENY, DENY, DENY, DENY),
    ("carol", "other"): (DENY, DENY, DENY, DENY, DENY),
    ("carol", "shared"): (DENY, DENY, DENY, DENY, DENY),
}
CELLS = sorted(EXPECT)


def status_for(outcome, allowed_status):
    return {ALLOW: allowed_status, DENY: 403, HIDE: 404}[outcome]


@pytest.mark.parametrize("actor, target", CELLS)
def test_matrix_list(hub, world, actor, target):
    env = world["envs"][TARGET_OF[actor][target]]
    image_read, build_read, *_ = EXPECT[actor, target]
    status, raw = call(hub, "GET", "api/images", actor)
    if image_read == DENY:
        assert status == 403
    else:
        assert status == 200
        ids = {i["build_id"] for i in json.loads(raw)["images"]}
        assert (env["id"] in ids) == (image_read == ALLOW)
    status, raw = call(hub, "GET", "api/builds", actor)
    if build_read == DENY:
        assert status == 403
    else:
        assert status == 200
        ids = {b["id"] for b in json.loads(raw)["builds"]}
        assert (env["id"] in ids) == (build_read == ALLOW)


@pytest.mark.parametrize("actor, target", CELLS)
def test_matrix_detail_logs_events(hub, world, actor, target):
    env = world["envs"][TARGET_OF[actor][target]]
    image_read, build_read, *_ = EXPECT[actor, target]
    status, raw = call(hub, "GET", f"api/images/{env['slug']}/{env['name']}", actor)
    assert status == status_for(image_read, 200), raw
    for path in ("", "/logs", "/events"):
        status, raw = call(hub, "GET", f"api/builds/{env['id']}{path}", actor)
        assert status == status_for(build_read, 200), (path, raw)
        if build_read != ALLOW:
            assert LOG_MARKER.encode() not in raw  # nothing of the log leaks in the error


@pytest.mark.parametrize("actor, target", CELLS)
def test_matrix_build_into(hub, world, actor, target):
    env = world["envs"][TARGET_OF[actor][target]]
    _, _, build_into, *_ = EXPECT[actor, target]
    body = {"repo": world["url"], "name": env["name"]}
    if target == "shared":
        body["shared"] = True
    elif env["owner"] != actor:
        body["owner"] = env["owner"]
    status, raw = call(hub, "POST", "api/builds", actor, body)
    if build_into == ALLOW:
        assert status == 200, raw  # the image exists: a cache hit into that namespace
        image = json.loads(raw)["image"]
        assert (image["owner_slug"], image["name"]) == (env["slug"], env["name"])
    else:
        assert status == 403, raw


@pytest.mark.parametrize("actor, target", CELLS)
def test_matrix_cancel(hub, world, actor, target):
    env = world["envs"][TARGET_OF[actor][target]]
    *_, cancel, _ = EXPECT[actor, target]
    status, raw = call(hub, "DELETE", f"api/builds/{env['id']}", actor)
    # the build is finished: someone allowed to cancel it hears 409 (nothing to cancel)
    assert status == status_for(cancel, 409), raw


@pytest.mark.parametrize("actor, target", [c for c in CELLS if EXPECT[c][4] != ALLOW])
def test_matrix_delete_refused(hub, world, actor, target):
    env = world["envs"][TARGET_OF[actor][target]]
    status, raw = call(hub, "DELETE", f"api/images/{env['slug']}/{env['name']}", actor)
    assert status == status_for(EXPECT[actor, target][4], 204), raw
    # and it is still there
    status, _ = call(hub, "GET", f"api/images/{env['slug']}/{env['name']}", "admin1")
    assert status == 200


@pytest.mark.parametrize(
    "actor, target", [("alice", "own"), ("admin1", "other"), ("admin1", "shared")]
)
def test_matrix_delete_allowed(hub, world, git_http, actor, target):
    """Allowed deletes run on fresh copies so the other cells keep their targets."""
    env = world["envs"][TARGET_OF[actor][target]]
    name = f"{env['name']}-del"
    body = {"repo": world["url"], "name": name, "force": True}
    builder = "alice" if env["owner"] == "alice" else "admin1"
    if target == "shared":
        body["shared"] = True
    elif env["owner"] != builder:
        body["owner"] = env["owner"]
    build_and_wait(hub, builder, body)
    status, raw = call(hub, "DELETE", f"api/images/{env['slug']}/{name}", actor)
    assert status == 204, raw
    assert call(hub, "GET", f"api/images/{env['slug']}/{name}", "admin1")[0] == 404


def test_look_alike_users_never_share_an_image(hub, world):
    owners = {}
    for user in ("a.b", "a-b", "josé"):
        status, raw = call(hub, "POST", "api/builds", user, {"repo": world["url"], "name": "same"})
        assert status in (200, 202), raw
        result = json.loads(raw)
        ref = (result["build"] or result["image"])["image"]
        owners[user] = ref
    assert len(set(owners.values())) == 3, owners
    # none of them can see the others' builds or images
    for user in owners:
        images = json.loads(call(hub, "GET", "api/images", user)[1])["images"]
        assert {i["owner"] for i in images} <= {user, ""}


def test_path_tricks_do_not_reach_other_images(hub, world):
    alice = world["envs"]["alice"]
    for path in (
        f"api/images/{alice['slug']}/../{alice['slug']}/{alice['name']}",
        f"api/images/{quote(alice['slug'])}%2F{alice['name']}",
        f"api/images/{alice['slug'].upper()}/{alice['name']}",
    ):
        status, _ = call(hub, "DELETE", path, "bob")
        assert status in (403, 404)
    assert call(hub, "GET", f"api/images/{alice['slug']}/{alice['name']}", "alice")[0] == 200


@pytest.mark.parametrize("actor, target", [c for c in CELLS if EXPECT[c][3] != ALLOW])
def test_matrix_dismiss_refused(hub, world, actor, target):
    """Dismissing a build record follows the cancel column: owner (with build) or admin."""
    env = world["envs"][TARGET_OF[actor][target]]
    status, raw = call(hub, "POST", f"api/builds/{env['id']}/dismiss", actor)
    assert status == status_for(EXPECT[actor, target][3], 204), raw
    assert call(hub, "GET", f"api/builds/{env['id']}", "admin1")[0] == 200


def failed_build(hub, git_http, user, name):
    """A build of ``user`` that fails at once (no image); its final record."""
    url = git_http.create_repo(
        f"perm/{name}", {"Dockerfile": "FROM local/debian:bookworm\nRUN exit 3\n"}
    )
    status, raw = call(hub, "POST", "api/builds", user, {"repo": url, "name": name})
    assert status == 202, raw
    build = json.loads(raw)["build"]
    status, raw = call(hub, "GET", f"api/builds/{build['id']}/events", user)
    done = json.loads([x for x in raw.decode().splitlines() if x.startswith("data: ")][-1][6:])
    assert done["state"] == "failed", done
    return done


@pytest.mark.parametrize(
    "owner, others, dismisser",
    [
        # bob (view only) and another builder cannot; the owner can
        ("alice", ["bob", "a.b", "dave"], "alice"),
        # an admin can dismiss anyone's
        ("a-b", ["alice", "bob"], "admin1"),
    ],
)
def test_dismiss_a_failed_build(hub, world, git_http, owner, others, dismisser):
    build = failed_build(hub, git_http, owner, f"perm-failed-{owner.replace('.', '')}")
    path = f"api/builds/{build['id']}"
    for other in others:
        status, raw = call(hub, "POST", f"{path}/dismiss", other)
        assert status in (403, 404), (other, status, raw)
        assert call(hub, "GET", path, owner)[0] == 200
    status, raw = call(hub, "POST", f"{path}/dismiss", dismisser)
    assert status == 204, raw
    for reader in (owner, "admin1"):
        assert call(hub, "GET", path, reader)[0] == 404
    ids = {b["id"] for b in json.loads(call(hub, "GET", "api/builds", owner)[1])["builds"]}
    assert build["id"] not in ids
    # once gone, a second dismiss is a 404
    assert call(hub, "POST", f"{path}/dismiss", dismisser)[0] == 404
