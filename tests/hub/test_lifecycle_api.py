"""Tag history, roll back and prune through a real hub: who may do what.

alice (build) owns an environment with two commits; a.b (another builder) and bob (view)
may not roll it back; admin1 may; only admins prune (dry run here: the hub's engine is
shared by other tests) and read the disk figures.
"""

from __future__ import annotations

import pytest

from tests.rig.api import build, request
from tests.rig.repos import dockerfile, unique

pytestmark = [pytest.mark.hub, pytest.mark.docker]


def api(hub, method, path, user, body=None):
    return request(method, hub.service_url + path, token=hub.token_for(user), body=body)


@pytest.fixture(scope="module")
def env(hub, git_http, base_image):
    """alice's environment built at two commits; returns (image path, [old, new] commits)."""
    name = unique("lc")
    repo = unique("lifecycle/api")
    url = git_http.create_repo(repo, dockerfile(base_image, "RUN echo one"))
    first = build(hub, "alice", repo=url, name=name)
    git_http.commit(repo, {"more.txt": "two\n"})
    second = build(hub, "alice", repo=url, name=name)
    assert first["commit"] != second["commit"]
    return f"api/images/{second['owner_slug']}/{name}", [first["commit"], second["commit"]]


def test_history_newest_first(hub, env):
    path, commits = env
    status, found = api(hub, "GET", path, "alice")
    assert status == 200, found
    assert [e["commit"] for e in found["history"]] == commits[::-1]
    assert [e["latest"] for e in found["history"]] == [True, False]
    assert all(e["build_id"] and e["ref"] == "main" for e in found["history"])
    assert found["pinned"] is False
    # someone else's: the same 404 as a missing one
    assert api(hub, "GET", path, "a.b")[0] == 404


def test_roll_back_ownership(hub, env):
    path, commits = env
    old = commits[0][:12]
    assert api(hub, "POST", path + "/latest", "a.b", {"tag": old})[0] == 404
    assert api(hub, "POST", path + "/latest", "bob", {"tag": old})[0] == 403
    assert api(hub, "POST", path + "/latest", "dave", {"tag": old})[0] == 403
    assert api(hub, "GET", path, "alice")[1]["commit"] == commits[1]  # unchanged

    status, rolled = api(hub, "POST", path + "/latest", "alice", {"tag": old})
    assert status == 200, rolled
    assert rolled["commit"] == commits[0] and rolled["pinned"] is True
    # the spawner's list offers the old commit by default
    status, startable = api(hub, "GET", "api/users/alice/images", "alice")
    entry = next(i for i in startable["images"] if i["name"] == path.rpartition("/")[2])
    assert entry["image"].endswith(":" + old) and entry["commit"] == commits[0]

    status, refused = api(hub, "POST", path + "/latest", "alice", {"tag": "0" * 12})
    assert status == 400 and "history" in refused["message"]
    assert api(hub, "POST", path + "/latest", "alice", {"tags": old})[0] == 400

    # an admin may unpin anyone's
    status, unpinned = api(hub, "POST", path + "/latest", "admin1", {"tag": None})
    assert status == 200, unpinned
    assert unpinned["commit"] == commits[1] and unpinned["pinned"] is False


def test_prune_and_disk_are_for_admins(hub, env):
    path, commits = env
    for user in ("alice", "bob", "a.b"):
        assert api(hub, "POST", "api/images/prune", user, {"dry_run": True})[0] == 403
        assert api(hub, "GET", "api/info?disk=1", user)[0] == 403
    status, plan = api(hub, "POST", "api/images/prune", "admin1", {"dry_run": True})
    assert status == 200, plan
    assert plan["dry_run"] is True and plan["keep_tags"] == 3
    # two tags: both stay under keep_tags=3
    ours = [r for r in plan["kept"] if path.rpartition("/")[2] in r["reference"]]
    assert len(ours) == 2
    assert api(hub, "GET", path, "alice")[1]["tags"][1:] == [c[:12] for c in commits[::-1]]
    status, info = api(hub, "GET", "api/info?disk=1", "admin1")
    assert status == 200, info
    assert info["disk"]["source"] == "engine" and info["disk"]["bytes"] > 0
    assert "disk" not in api(hub, "GET", "api/info", "alice")[1]
