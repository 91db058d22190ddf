"""BinderHub's build protocol as pure functions: specs in, BinderHub's events out.

The expected shapes are BinderHub's (binderhub/builder.py, binderhub/repoproviders.py) and
what @jupyterhub/binderhub-client reads (phase, message, imageName, binder_* on ready).
"""

import json

import pytest

from repo2docker_service.binder import (
    FOUND_MESSAGE,
    BinderSpec,
    binder_events,
    failed_event,
    parse_spec,
    ready_event,
    resume_after,
    split_build_path,
    sse,
    wants_build_only,
)
from repo2docker_service.builds.model import Build, BuildState, EventType
from repo2docker_service.errors import InvalidInput

GH, GL = "https://github.example", "https://gitlab.example"
SHA = "0123456789abcdef0123456789abcdef01234567"


def parse(provider: str, spec: str) -> BinderSpec:
    return parse_spec(provider, spec, github_host=GH, gitlab_host=GL)


@pytest.mark.parametrize(
    ("provider", "spec", "repo", "ref", "persistent", "ref_url"),
    [
        ("gh", "org/repo/main", f"{GH}/org/repo", "main", "org/repo", f"{GH}/org/repo"),
        ("gh", "org/repo/HEAD", f"{GH}/org/repo", "HEAD", "org/repo", f"{GH}/org/repo"),
        # the ref may contain slashes (BinderHub splits at the first two only), or be quoted
        ("gh", "org/repo/feature/x", f"{GH}/org/repo", "feature/x", "org/repo", f"{GH}/org/repo"),
        ("gh", "org/repo/feature%2Fx", f"{GH}/org/repo", "feature/x", "org/repo", f"{GH}/org/repo"),
        ("gh", "Org.1/re_po-2.git/v1.0", f"{GH}/Org.1/re_po-2", "v1.0", "Org.1/re_po-2", None),
        # GitLab: the project path is quoted, subgroups included
        ("gl", "grp%2Fproj/main", f"{GL}/grp/proj.git", "main", "grp%2Fproj", f"{GL}/grp/proj"),
        (
            "gl",
            "grp%2Fsub%2Fproj/v%2F2",
            f"{GL}/grp/sub/proj.git",
            "v/2",
            "grp%2Fsub%2Fproj",
            f"{GL}/grp/sub/proj",
        ),
        # any git URL, quoted, then the quoted ref
        (
            "git",
            "http%3A%2F%2F127.0.0.1%3A9%2Fa%2Fb.git/main",
            "http://127.0.0.1:9/a/b.git",
            "main",
            "http%3A%2F%2F127.0.0.1%3A9%2Fa%2Fb.git",
            "",
        ),
        (
            "git",
            "https%3A%2F%2Fexample.org%2Fr/release%2F1",
            "https://example.org/r",
            "release/1",
            "https%3A%2F%2Fexample.org%2Fr",
            "",
        ),
    ],
)
def test_parse_spec(provider, spec, repo, ref, persistent, ref_url):
    wanted = parse(provider, spec)
    assert (wanted.repo, wanted.ref) == (repo, ref)
    assert wanted.request == f"v2/{provider}/{spec}"
    assert wanted.persistent_request(SHA) == f"v2/{provider}/{persistent}/{SHA}"
    if ref_url is None:
        return
    # BinderHub: <host>/<path>/tree/<commit>; for a bare git URL, the URL itself
    expected = f"{ref_url}/tree/{SHA}" if ref_url else repo
    assert wanted.ref_url(SHA) == expected


@pytest.mark.parametrize(
    ("provider", "spec", "says"),
    [
        ("gh", "org/repo", "<org>/<repo>/<ref>"),
        ("gh", "org", "<org>/<repo>/<ref>"),
        ("gh", "org/repo/", "<org>/<repo>/<ref>"),
        ("gh", "o rg/repo/main", "letters, digits"),
        ("gh", "org/re%2Fpo/main", "letters, digits"),
        ("gh", "../x/main", "letters, digits"),
        ("gh", "org/.../main", "letters, digits"),
        ("gh", "x" * 101 + "/repo/main", "letters, digits"),
        ("gl", "project/main", "group/project"),
        ("gl", "grp%2Fproj", "group/project"),
        ("gl", "grp%2F%2Fproj/main", "group/project"),
        ("gl", "grp%2F..%20x/main", "group/project"),
        ("gl", "grp%2F..%2Fproj/main", "group/project"),
        ("git", "https%3A%2F%2Fexample.org%2Fr", "URL-quoted ref"),
        ("git", "/main", "URL-quoted ref"),
        ("zenodo", "10.5281/zenodo.1", "No provider found for prefix 'zenodo'"),
        ("", "a/b/c", "No provider found"),
    ],
)
def test_parse_spec_refuses_other_shapes(provider, spec, says):
    with pytest.raises(InvalidInput) as caught:
        parse(provider, spec)
    assert says in caught.value.message


@pytest.mark.parametrize(
    ("path", "provider", "spec"),
    [
        ("/services/repo2docker/build/gh/o/r/main", "gh", "o/r/main"),
        ("/services/binder/build/gh/o/r/main/", "gh", "o/r/main"),
        # still encoded: %2F stays, so the spec's own separators are told apart
        ("/services/binder/build/gl/a%2Fb/main", "gl", "a%2Fb/main"),
        ("/services/repo2docker/build/git/u%3A%2F%2Fh%2Fr/m", "git", "u%3A%2F%2Fh%2Fr/m"),
        # a ref named like the API path is the ref
        ("/services/repo2docker/build/gh/o/r/build/gh", "gh", "o/r/build/gh"),
    ],
)
def test_split_build_path(path, provider, spec):
    assert split_build_path(path, ("/services/repo2docker/", "/services/binder/")) == (
        provider,
        spec,
    )


def test_split_build_path_elsewhere_is_refused():
    with pytest.raises(InvalidInput):
        split_build_path("/services/other/build/gh/o/r/main", ("/services/repo2docker/", ""))


@pytest.mark.parametrize(
    ("value", "wanted"),
    [("true", True), ("True", True), (" TRUE ", True), ("", False), ("1", False), ("no", False)],
)
def test_build_only(value, wanted):
    assert wants_build_only(value) is wanted


def make_build() -> Build:
    return Build(
        owner="alice",
        owner_slug="alice",
        name="repo",
        repo=f"{GH}/org/repo",
        ref="main",
        commit=SHA,
        image=f"r2d-alice-repo:{SHA[:12]}",
        latest_image="r2d-alice-repo:latest",
    )


def translate(build: Build, after: int = 0) -> list[dict]:
    wanted = parse("gh", "org/repo/main")
    return [
        out
        for event in build.events(after=after)
        for out in binder_events(event, wanted, launch_host="http://hub/services/r2d/")
    ]


def test_a_build_becomes_binderhubs_phases():
    build = make_build()
    build.add_event(EventType.PHASE, {"phase": "queued", "position": None, "message": "Queued x"})
    build.set_position(2)
    build.set_state(BuildState.BUILDING, message="Building x")
    build.add_event(EventType.LOG, {"message": "Picked Git content provider.", "stage": "fetching"})
    build.add_event(EventType.LOG, {"message": "Step 1/2 : FROM base", "stage": "building"})
    build.add_event(EventType.LOG, {"message": "a line without a stage\n"})
    build.set_state(BuildState.PUSHING, message="Pushing latest")
    build.add_event(EventType.LOG, {"message": "pushed", "stage": "pushing"})
    build.set_state(BuildState.BUILT, message="Built")
    events = translate(build)
    assert [e["phase"] for e in events] == [
        "waiting",
        "waiting",
        "building",
        "fetching",
        "building",
        "building",
        "pushing",
        "pushing",
        "built",
        "ready",
    ]
    assert "position 2" in events[1]["message"]
    # every message is one line ending in exactly one newline
    assert all(e["message"].endswith("\n") and not e["message"].endswith("\n\n") for e in events)
    assert events[-2]["imageName"] == build.image
    assert events[-1] == {
        "phase": "ready",
        "message": "Done! Image built\n",
        "imageName": build.image,
        "binder_ref_url": f"{GH}/org/repo/tree/{SHA}",
        "binder_request": "v2/gh/org/repo/main",
        "binder_persistent_request": f"v2/gh/org/repo/{SHA}",
        "binder_launch_host": "http://hub/services/r2d/",
    }


@pytest.mark.parametrize(
    ("state", "error", "says"),
    [
        (BuildState.FAILED, "repo2docker exited with status 1: ERROR: boom", "ERROR: boom"),
        (BuildState.CANCELLED, "cancelled by alice", "Build cancelled: cancelled by alice"),
        (BuildState.LOST, None, "Build lost"),
        (BuildState.FAILED, "build took longer than 600 s", "longer than 600 s"),
    ],
)
def test_a_build_that_does_not_finish_is_one_failed_event(state, error, says):
    build = make_build()
    build.set_state(BuildState.BUILDING, message="Building x")
    build.set_state(state, error=error)
    events = translate(build)
    assert [e["phase"] for e in events] == ["building", "failed"]
    assert says in events[-1]["message"] and events[-1]["message"].endswith("\n")
    assert "imageName" not in events[-1]


def test_resuming_translates_only_what_is_newer():
    build = make_build()
    build.set_state(BuildState.BUILDING, message="Building x")
    build.add_event(EventType.LOG, {"message": "one"})
    mark = build.last_event_id
    build.add_event(EventType.LOG, {"message": "two"})
    build.set_state(BuildState.BUILT)
    assert [e["message"] for e in translate(build, after=mark)][:1] == ["two\n"]


@pytest.mark.parametrize(
    ("header", "build_id", "after"),
    [
        ("b1:17", "b1", 17),
        ("b2:17", "b1", 0),  # another build's id: start from the beginning
        ("b1:x", "b1", 0),
        ("17", "b1", 0),
        ("", "b1", 0),
        (None, "b1", 0),
        ("b1:-3", "b1", 0),
    ],
)
def test_resume_after(header, build_id, after):
    assert resume_after(header, build_id) == after


def test_ready_for_an_existing_image_and_failed_shapes():
    wanted = parse("git", "https%3A%2F%2Fexample.org%2Fr/main")
    ready = ready_event(wanted, image="i:1", commit=SHA, launch_host="h/", message=FOUND_MESSAGE)
    assert ready["phase"] == "ready" and ready["imageName"] == "i:1"
    assert ready["message"] == "Done! Found built image\n"
    assert ready["binder_ref_url"] == "https://example.org/r"
    assert failed_event("no\n", status_code=403) == {
        "phase": "failed",
        "message": "no\n",
        "status_code": 403,
    }
    assert "status_code" not in failed_event("no")


def test_sse_messages_are_unnamed_and_one_line():
    text = sse({"phase": "building", "message": "a\nb\n"}, event_id="b1:3")
    assert text.startswith("id: b1:3\ndata: ") and text.endswith("\n\n")
    (data_line,) = [line for line in text.splitlines() if line.startswith("data: ")]
    assert json.loads(data_line[len("data: ") :])["message"] == "a\nb\n"
    assert "event:" not in text
    assert sse({"phase": "ready"}).startswith("data: ")
