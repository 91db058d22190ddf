"""pkt-line framing, capability advertisements and ls-refs answers (protocol v2 path).

Byte strings below are what git http-backend sends (checked against git 2.39); the
integration test ``tests/integration/test_ref_resolution.py`` runs the real server.
"""

from __future__ import annotations

import pytest

from repo2docker_service.sources.resolver import PushedCommits, ls_refs_prefixes
from repo2docker_service.sources.smarthttp import (
    NotServed,
    _ls_refs_body,
    _parse_ls_refs,
    _proxy_for,
    _v2_capabilities,
    parse_pkt_lines,
    pkt_line,
)
from repo2docker_service.webhooks import Push, announced_refs

A, B, C = "a" * 40, "b" * 40, "c" * 40


def _pkts(*lines: bytes | None) -> bytes:
    return b"".join(b"0000" if line is None else pkt_line(line) for line in lines)


def test_pkt_line_round_trip() -> None:
    data = pkt_line(b"hello\n") + b"0001" + pkt_line(b"x") + b"0000"
    assert pkt_line(b"hello\n") == b"000ahello\n"
    assert parse_pkt_lines(data) == [b"hello\n", None, b"x", None]


@pytest.mark.parametrize("bad", [b"zzzz", b"0003", b"0010abc", b"00"])
def test_malformed_pkt_lines(bad: bytes) -> None:
    with pytest.raises(NotServed):
        parse_pkt_lines(bad)


def test_v2_advertisement_with_and_without_service_line() -> None:
    caps = [b"version 2\n", b"agent=git/2.39.5\n", b"ls-refs=unborn\n", b"object-format=sha1\n"]
    for body in (_pkts(b"# service=git-upload-pack\n", None, *caps, None), _pkts(*caps, None)):
        assert "ls-refs=unborn" in _v2_capabilities(body)


@pytest.mark.parametrize(
    "body",
    [
        _pkts(b"# service=git-upload-pack\n", None, f"{A} HEAD\0multi_ack\n".encode(), None),
        _pkts(b"version 2\n", b"fetch=shallow\n", None),  # v2 without ls-refs
        b"",
    ],
)
def test_not_v2_is_said_so(body: bytes) -> None:
    with pytest.raises(NotServed) as info:
        _v2_capabilities(body)
    assert info.value.no_v2


def test_ls_refs_request_body() -> None:
    body = _ls_refs_body(frozenset({"agent=git/2", "object-format=sha1"}), ["HEAD", "refs/x"])
    lines = parse_pkt_lines(body)
    assert lines[0] == b"command=ls-refs\n"
    assert b"object-format=sha1\n" in lines
    assert lines[-4:] == [b"peel\n", b"ref-prefix HEAD\n", b"ref-prefix refs/x\n", None]
    with_symrefs = parse_pkt_lines(_ls_refs_body(frozenset(), ["HEAD"], symrefs=True))
    assert with_symrefs[-4:] == [b"peel\n", b"symrefs\n", b"ref-prefix HEAD\n", None]


def test_ls_refs_answer_peels_tags_as_ls_remote_prints_them() -> None:
    body = _pkts(
        f"{A} HEAD symref-target:refs/heads/main\n".encode(),
        f"{B} refs/tags/t peeled:{C}\n".encode(),
        None,
    )
    refs, symrefs = _parse_ls_refs(body)
    assert refs == {"HEAD": A, "refs/tags/t": B, "refs/tags/t^{}": C}
    assert symrefs == {"HEAD": "refs/heads/main"}
    for bad in (_pkts(b"ERR no such thing\n", None), _pkts(b"nonsense\n", None)):
        with pytest.raises(NotServed):
            _parse_ls_refs(bad)


@pytest.mark.parametrize(
    ("ref", "prefixes"),
    [
        ("HEAD", ["HEAD"]),
        ("main", ["refs/heads/main", "refs/tags/main"]),
        ("refs/pull/1", ["refs/heads/refs/pull/1", "refs/tags/refs/pull/1", "refs/pull/1"]),
        ("abcdef12", ["refs/heads/", "refs/tags/"]),
    ],
)
def test_prefixes(ref: str, prefixes: list[str]) -> None:
    assert ls_refs_prefixes(ref) == prefixes


@pytest.mark.parametrize(
    ("host", "no_proxy", "proxied"),
    [
        ("git.example.org", "", True),
        ("git.example.org", "example.org", False),
        ("git.example.org", ".example.org", False),
        ("example.org", "example.org", False),
        ("badexample.org", "example.org", True),
        ("git.example.org", "*", False),
    ],
)
def test_proxy_rule(host: str, no_proxy: str, proxied: bool) -> None:
    env = {"https_proxy": "http://proxy:3128", "no_proxy": no_proxy}
    assert (_proxy_for("https", host, env) is not None) is proxied
    assert _proxy_for("http", host, env) is None


def test_pushed_commits_window() -> None:
    pushed = PushedCommits()
    with pushed.announced("u", ["main", "HEAD"], A.upper()):
        assert pushed.commit("u", "main") == A
        assert pushed.commit("u", "HEAD") == A
        assert pushed.commit("u", "refs/heads/main") is None
        assert pushed.commit("other", "main") is None
        with pushed.announced("u", ["main"], B):
            assert pushed.commit("u", "main") == B
        assert pushed.commit("u", "main") == A
    assert pushed.commit("u", "main") is None
    with pytest.raises(ValueError):
        with pushed.announced("u", ["main"], "abc"):
            pass


@pytest.mark.parametrize(
    ("push", "built_from", "refs"),
    [
        (Push(branch="main", before=A, after=B, default_branch="main"), A, ["main", "HEAD"]),
        (Push(branch="dev", before=A, after=B, default_branch="main"), A, ["dev"]),
        (Push(branch="main", before=A, after=B), C, []),  # an older or later delivery
        (Push(branch="main", before=A, after=None), A, []),
        (Push(branch="main", before=A, after="0" * 40, deleted=True), A, []),
        (Push(tag="v1", before=A, after=B), A, []),
    ],
)
def test_announced_refs(push: Push, built_from: str, refs: list[str]) -> None:
    class Image:
        commit = built_from

    assert announced_refs(push, Image()) == refs  # type: ignore[arg-type]
