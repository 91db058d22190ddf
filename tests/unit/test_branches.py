"""The branches an unknown-ref error suggests (sources/branches.py): tables of variants."""

from __future__ import annotations

import pytest

from repo2docker_service.errors import SourceError
from repo2docker_service.sources.branches import MAX_SUGGESTIONS, parse_heads, suggest_branches

A = "a" * 40
B = "b" * 40
SHA256 = "c" * 64


def symref_output(default: str | None, branches: list[str], sha: str = A) -> str:
    """What ``git ls-remote --symref <repo> HEAD refs/heads/*`` prints."""
    lines = []
    if default is not None:
        lines += [f"ref: refs/heads/{default}\tHEAD", f"{sha}\tHEAD"]
    lines += [f"{sha}\trefs/heads/{b}" for b in branches]
    return "\n".join(lines) + ("\n" if lines else "")


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (symref_output("main", ["dev", "main"]), ("main", ["dev", "main"])),
        (symref_output("trunk", ["trunk"], SHA256), ("trunk", ["trunk"])),  # SHA-256 repos
        # nested branch names, names that look like refs or commits
        (
            symref_output("release/2.x", ["release/2.x", "feature/a/b", "abcdef1"]),
            ("release/2.x", ["release/2.x", "feature/a/b", "abcdef1"]),
        ),
        (symref_output(None, ["main"]), (None, ["main"])),  # no symref (dumb HTTP)
        ("", (None, [])),  # an empty repository
        (f"ref: refs/heads/main\tHEAD\n{A}\tHEAD\n", ("main", [])),  # HEAD only
        # tags, other refs, HEAD pointing outside refs/heads, junk lines: ignored
        (
            f"ref: refs/tags/v1\tHEAD\n{A}\trefs/tags/v1\n{B}\trefs/pull/1/head\n"
            f"garbage\n{A}\trefs/heads/\nnot-a-sha\trefs/heads/x\n{B}\trefs/heads/ok\n",
            (None, ["ok"]),
        ),
        (f"{A}\trefs/heads/x\n{B}\trefs/heads/x\n", (None, ["x"])),  # listed twice
    ],
)
def test_parse_heads(output, expected):
    assert parse_heads(output) == expected


MANY = [f"topic-{i:03d}" for i in range(200)]


@pytest.mark.parametrize(
    ("typed", "default", "branches", "expected"),
    [
        # default first, then the closest to what was typed, then alphabetical
        ("mian", "main", ["dev", "main", "maint"], ["main", "maint", "dev"]),
        ("develop", "main", ["main", "dev", "develop-2"], ["main", "develop-2", "dev"]),
        ("nope", "main", ["main", "feature", "dup"], ["main", "dup", "feature"]),
        # the default branch is first even when another name is closer
        ("feature", "main", ["main", "features"], ["main", "features"]),
        # a default that is not among the branches is not offered
        ("x", "gone", ["b", "a"], ["a", "b"]),
        ("x", None, ["b", "a"], ["a", "b"]),
        # no branches at all
        ("main", None, [], []),
        ("main", "main", [], []),
        # many branches: at most MAX_SUGGESTIONS, default first, close ones next
        ("topic-107x", "main", [*MANY, "main"], ["main", "topic-107"]),
        ("zzz", "topic-050", MANY, ["topic-050", "topic-000", "topic-001", "topic-002"]),
        # the typed name itself is never suggested (e.g. a tag-only name, a case slip)
        ("Main", "main", ["main", "Main"], ["main"]),
        # slashes and dots in names
        ("release/2.1", "main", ["main", "release/2.0", "release/3.0"], None),
    ],
)
def test_suggest_branches(typed, default, branches, expected):
    got = suggest_branches(typed, default, branches)
    assert len(got) <= MAX_SUGGESTIONS
    assert len(set(got)) == len(got) and typed not in got
    assert set(got) <= set(branches)
    if default in branches and default != typed:
        assert got[0] == default
    if expected is not None:
        assert got[: len(expected)] == expected
    if branches:
        assert got, "a repository with branches always suggests some"


def test_suggest_branches_many_fills_up_to_the_limit():
    got = suggest_branches("zzz", "topic-050", MANY)
    assert len(got) == MAX_SUGGESTIONS == 5
    assert suggest_branches("zzz", "topic-050", MANY, limit=2) == ["topic-050", "topic-000"]
    assert suggest_branches("zzz", "topic-050", MANY, limit=0) == []


def test_release_branches_close_to_the_typed_one_come_before_main_others():
    got = suggest_branches("release/2.1", "main", ["main", "dev", "release/2.0", "release/3.0"])
    assert got[0] == "main" and set(got[1:3]) == {"release/2.0", "release/3.0"}


@pytest.mark.parametrize(
    ("error", "details"),
    [
        (
            SourceError("ref 'x' not found", field="ref", suggestions=["main"]),
            {"field": "ref", "suggestions": ["main"]},
        ),
        (SourceError("ref 'x' not found", field="ref"), {"field": "ref"}),
        (SourceError("could not read r", field="repo"), {"field": "repo"}),
        (SourceError("something"), {}),
        # suggestions are redacted like messages
        (
            SourceError("m", field="ref", suggestions=["https://u:secret@h/x"]),
            {"field": "ref", "suggestions": ["https://***@h/x"]},
        ),
    ],
)
def test_error_details_carry_field_and_suggestions(error, details):
    assert error.details() == details
