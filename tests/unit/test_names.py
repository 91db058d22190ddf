"""One name, one repository (builds/names.py): derived names and the name check, as tables."""

from __future__ import annotations

import pytest

from repo2docker_service.builds.names import choose_name, derived_names
from repo2docker_service.builds.request import BuildRequest, check_request
from repo2docker_service.errors import Conflict
from repo2docker_service.images.naming import ImageNamer, validate_name
from repo2docker_service.repoid import RepoIdentity

NAMER = ImageNamer(template="{registry}{prefix}{owner}/{name}:{tag}", prefix="r2d-")
RULE = RepoIdentity()


@pytest.mark.parametrize(
    ("repo", "first_three"),
    [
        ("https://host/a/analysis", ["analysis", "a-analysis", "a-analysis-2"]),
        ("https://host/b/analysis.git/", ["analysis", "b-analysis", "b-analysis-2"]),
        ("https://host/Org.Name/My_Repo", ["my_repo", "org.name-my_repo", "org.name-my_repo-2"]),
        ("https://gitlab.com/g/sub/proj", ["proj", "sub-proj", "sub-proj-2"]),
        ("https://host/analysis", ["analysis", "host-analysis", "host-analysis-2"]),
        ("https://host/x/x", ["x", "repo-x", "repo-x-2"]),  # parent == name
        ("file:///srv/git/analysis", ["analysis", "git-analysis", "git-analysis-2"]),
        ("https://host/" + "o" * 70 + "/" + "n" * 70, ["n" * 63, None, None]),
    ],
)
def test_derived_names(repo, first_three):
    names = derived_names(repo)
    assert len(names) == len(set(names)) == 10
    for name in names:
        assert validate_name(name) == name
    for expected, got in zip(first_three, names[:3], strict=True):
        assert expected is None or got == expected


def checked(repo, name=None, shared=False):
    req = BuildRequest(owner="alice", repo=repo, name=name, shared=shared)
    return check_request(req, namer=NAMER, allowed_schemes=["https"], allowed_hosts=[])


def holder_of(table):
    async def holder(name):
        return table.get(name)

    return holder


A = "https://github.com/a/analysis"
B = "https://github.com/b/analysis"
# (held names, request repo, given name, expected name or the start of the 409)
CASES = [
    ({}, B, None, "analysis"),  # free
    ({"analysis": B}, B, None, "analysis"),  # already this repository's
    ({"analysis": "https://github.com/B/Analysis.git/"}, B, None, "analysis"),  # other spelling
    ({"analysis": A}, B, None, "b-analysis"),  # held by another: the next name
    ({"analysis": A, "b-analysis": B}, B, None, "b-analysis"),
    ({"analysis": A, "b-analysis": A}, B, None, "b-analysis-2"),
    ({n: A for n in derived_names(B)}, B, None, "Every name derived from"),
    ({}, B, "mine", "mine"),
    ({"mine": B}, B, "mine", "mine"),
    ({"analysis": A}, B, "analysis", "The name 'analysis' is taken"),
    ({"mine": "https://git.example.org/A/x"}, "https://git.example.org/a/x", "mine", "The name"),
]


@pytest.mark.parametrize(("held", "repo", "given", "expected"), CASES)
async def test_choose_name(held, repo, given, expected):
    request = checked(repo, given)
    kwargs = dict(
        name_given=given is not None,
        display_name_given=False,
        holder=holder_of(held),
        identity=RULE,
        namer=NAMER,
    )
    if " " in expected:
        with pytest.raises(Conflict) as e:
            await choose_name(request, **kwargs)
        assert e.value.status_code == 409
        assert e.value.message.startswith(expected), e.value.message
        return
    chosen = await choose_name(request, **kwargs)
    assert chosen.name == expected
    assert chosen.latest_image == f"r2d-alice/{expected}:latest"
    assert chosen.display_name == (given or expected)


async def test_the_409_says_who_holds_the_name_and_what_to_do():
    request = checked(B, "analysis")
    with pytest.raises(Conflict) as e:
        await choose_name(
            request,
            name_given=True,
            display_name_given=False,
            holder=holder_of({"analysis": A}),
            identity=RULE,
            namer=NAMER,
        )
    assert e.value.message == (
        f"The name 'analysis' is taken: your environment 'analysis' is built from {A}. Give "
        f"this environment of {B} another name (for example 'b-analysis'), or delete "
        "'analysis' first."
    )
    shared = checked(B, "analysis", shared=True)
    with pytest.raises(Conflict, match="the shared environment 'analysis'"):
        await choose_name(
            shared,
            name_given=True,
            display_name_given=False,
            holder=holder_of({"analysis": A}),
            identity=RULE,
            namer=NAMER,
        )
