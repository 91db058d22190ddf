"""Image naming: owner escaping (exact outputs + properties), predicates, names, references."""

import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from repo2docker_service.errors import InvalidInput
from repo2docker_service.images.naming import (
    MAX_OWNER_LENGTH,
    NAME_RE,
    RESERVED_OWNERS,
    SCHEME_VERSION,
    SHARED_OWNER,
    ImageNamer,
    commit_tag,
    derive_name,
    escape_owner,
    unescape_owner,
    validate_name,
)
from repo2docker_service.images.reference import (
    is_registry_domain,
    is_valid_path_component,
    is_valid_reference,
    is_valid_repository,
    is_valid_tag,
)

# any Unicode text except lone surrogates (not encodable, never a real username)
unicode_chars = st.characters(exclude_categories=("Cs",))
usernames = st.text(unicode_chars, min_size=1, max_size=64)
# 14 characters always fit: at most 8 escaped characters each (-10ffff-), 3 + 8 * 14 = 115
short_usernames = st.text(unicode_chars, min_size=1, max_size=14)
# what JupyterHub usernames usually look like (emails, LDAP names, GitHub logins)
hub_usernames = st.text(string.ascii_letters + string.digits + "._-@+", min_size=1, max_size=32)
image_names = st.from_regex(NAME_RE, fullmatch=True).filter(lambda n: len(n) <= 63)


def test_constants():
    assert SCHEME_VERSION == "1"
    assert SHARED_OWNER == "shared"
    assert SHARED_OWNER in RESERVED_OWNERS
    assert MAX_OWNER_LENGTH == 128


# ---------------------------------------------------------------------------
# escape_owner: exact outputs


@pytest.mark.parametrize(
    "username, expected",
    [
        # plain ASCII stays as is
        ("alice", "alice"),
        ("a", "a"),
        ("0", "0"),
        ("x", "x"),
        ("bob42", "bob42"),
        ("shared1", "shared1"),
        # look-alikes all differ
        ("a.b", "a-2e-b"),
        ("a-b", "a-2d-b"),
        ("a_b", "a-5f-b"),
        ("a b", "a-20-b"),
        ("A.b", "x--412e62"),
        ("a.B", "x--612e42"),
        ("a..b", "a-2e--2e-b"),
        ("a-2e-b", "a-2d-2e-2d-b"),
        ("x--41", "x-2d--2d-41"),
        ("x-41", "x-2d-41"),
        # uppercase
        ("Alice", "x--416c696365"),
        ("aLice", "a-4c-ice"),
        ("ALICE", "x--414c494345"),
        # reserved owner
        ("shared", "x--736861726564"),
        ("Shared", "x--536861726564"),
        # separators only, at the ends
        (".", "x--2e"),
        ("-", "x--2d"),
        ("_a", "x--5f61"),
        ("a_", "x--615f"),
        # emails, non-ASCII
        ("user@example.org", "user-40-example-2e-org"),
        ("jürgen", "j-fc-rgen"),
        ("été", "x--c3a974c3a9"),
        ("用户", "x--e794a8e688b7"),
        ("😀", "x--f09f9880"),
        ("a😀b", "a-1f600-b"),
        ("a\x00b", "a-0-b"),
        # maximum length
        pytest.param("a" * 128, "a" * 128, id="a*128"),
        pytest.param("A" * 62, "x--" + "41" * 62, id="A*62"),
        pytest.param("a." * 25 + "a", "a-2e-" * 25 + "a", id="a.*25"),
    ],
)
def test_escape_owner(username, expected):
    slug = escape_owner(username)
    assert slug == expected
    assert is_valid_path_component(slug)
    assert unescape_owner(slug) == username


@pytest.mark.parametrize(
    "username, message",
    [
        ("", "empty"),
        pytest.param("a" * 129, "too long", id="a*129"),
        pytest.param("A" * 63, "too long", id="A*63"),
        pytest.param("a." * 32 + "a", "too long", id="a.*32"),
        pytest.param("😀" * 17, "too long", id="emoji*17"),
        ("a\ud800b", "surrogate"),
    ],
)
def test_escape_owner_rejects(username, message):
    with pytest.raises(ValueError, match=message):
        escape_owner(username)


def test_escape_owner_type():
    with pytest.raises(TypeError):
        escape_owner(None)


@pytest.mark.parametrize(
    "slug",
    [
        "",
        SHARED_OWNER,  # reserved: no username escapes to it
        "-a",
        "a-",
        "a-2e",  # unterminated escape
        "a--b",  # empty escape
        "a-61-b",  # escaped [a-z0-9] is not canonical
        "a-02e-b",  # zero padding is not canonical
        "a-2E-b",  # uppercase hex
        "a-110000-b",  # beyond Unicode
        "a-1000000000000000000000-b",
        "a-d800-b",  # surrogate code point
        "x--616c696365",  # fallback form of "alice", whose canonical form is simple
        "x--",
        "x--4",  # odd number of hex digits
        "x--ff",  # not UTF-8
        "x--eda080",  # UTF-8 encoded surrogate
        "x--ZZ",
        "A",
        "a.b",
        "a/b",
        "a" * 129,
    ],
)
def test_unescape_owner_rejects(slug):
    with pytest.raises(ValueError):
        unescape_owner(slug)


# ---------------------------------------------------------------------------
# escape_owner: properties


@given(usernames)
def test_escape_owner_is_valid_and_reversible(username):
    try:
        slug = escape_owner(username)
    except ValueError as e:
        # the only reason for an accepted (non-empty, surrogate-free) username
        assert "too long" in str(e)
        return
    assert is_valid_path_component(slug)
    assert 1 <= len(slug) <= MAX_OWNER_LENGTH
    assert slug not in RESERVED_OWNERS
    # a left inverse exists, so escape_owner is injective
    assert unescape_owner(slug) == username


@given(short_usernames)
def test_short_usernames_always_fit(username):
    assert unescape_owner(escape_owner(username)) == username


@given(hub_usernames)
def test_typical_usernames_always_fit(username):
    slug = escape_owner(username)
    assert is_valid_path_component(slug)
    assert unescape_owner(slug) == username


@given(usernames, usernames)
def test_distinct_usernames_give_distinct_owners(a, b):
    assume(a != b)
    try:
        slug_a, slug_b = escape_owner(a), escape_owner(b)
    except ValueError:
        assume(False)
    assert slug_a != slug_b


@given(st.from_regex(r"[a-z0-9]+(?:-+[a-z0-9]+)*", fullmatch=True))
def test_unescape_accepts_only_canonical_slugs(slug):
    try:
        username = unescape_owner(slug)
    except ValueError:
        return
    assert escape_owner(username) == slug


# ---------------------------------------------------------------------------
# predicates


@pytest.mark.parametrize(
    "s, valid",
    [
        ("a", True),
        ("a.b", True),
        ("a_b", True),
        ("a__b", True),
        ("a---b", True),
        ("a-2e-b", True),
        ("x--2e", True),
        ("", False),
        ("A", False),
        ("a..b", False),
        ("a___b", False),
        ("a._b", False),
        (".a", False),
        ("a.", False),
        ("-a", False),
        ("a-", False),
        ("a/b", False),
        ("a b", False),
        ("é", False),
        ("a\n", False),
    ],
)
def test_is_valid_path_component(s, valid):
    assert is_valid_path_component(s) is valid


@pytest.mark.parametrize(
    "s, valid",
    [
        ("latest", True),
        ("0123456789ab", True),
        ("_x", True),
        ("A.b-c_D", True),
        pytest.param("a" * 128, True, id="a*128"),
        ("", False),
        (".x", False),
        ("-x", False),
        pytest.param("a" * 129, False, id="a*129"),
        ("a:b", False),
        ("a/b", False),
        ("é", False),
        ("a\n", False),
    ],
)
def test_is_valid_tag(s, valid):
    assert is_valid_tag(s) is valid


@pytest.mark.parametrize(
    "ref, valid",
    [
        ("ubuntu", True),
        ("alice/env", True),
        ("alice/env:latest", True),
        ("localhost/alice/env", True),
        ("localhost:5000/alice/env:0123456789ab", True),
        ("127.0.0.1:5000/r2d-alice/env:latest", True),
        ("registry.example.org/envs/r2d-alice/env", True),
        ("Registry.Example.org:443/a/b", True),
        ("[::1]:5000/a/b:c", True),
        pytest.param("a" * 255, True, id="name255"),
        pytest.param("a" * 256, False, id="name256"),
        pytest.param("a" * 255 + ":" + "t" * 128, True, id="name255-tag128"),
        ("", False),
        ("Alice/env", True),  # "Alice" is read as a registry host
        ("alice/Env", False),
        ("alice/env:", False),
        ("alice//env", False),
        ("/alice", False),
        ("alice/", False),
        ("alice/env:tag:x", False),
        ("alice/env@sha256:" + "0" * 64, False),
        ("https://registry/a", False),
        ("alice/env:.x", False),
        ("alice/env\n", False),
        ("-x/alice", False),
    ],
)
def test_is_valid_reference(ref, valid):
    assert is_valid_reference(ref) is valid


def test_is_valid_repository_has_no_tag():
    assert is_valid_repository("localhost:5000/alice/env")
    assert not is_valid_repository("alice/env:latest")


@pytest.mark.parametrize(
    "s, registry",
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("registry.example.org", True),
        ("[::1]:5000", True),
        ("myregistry", False),  # Docker would read myregistry/x as docker.io/myregistry/x
        ("https://registry.example.org", False),
        ("registry.example.org/", False),
        ("", False),
    ],
)
def test_is_registry_domain(s, registry):
    assert is_registry_domain(s) is registry


# ---------------------------------------------------------------------------
# user-chosen names


@pytest.mark.parametrize(
    "name", ["a", "0", "env", "my-env", "a.b_c-d", "python3.11", pytest.param("a" * 63, id="a*63")]
)
def test_validate_name_accepts(name):
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "Env",
        "-a",
        "a-",
        ".a",
        "a--b",
        "a..b",
        "a__b",
        "a/b",
        "a b",
        "é",
        "a\n",
        pytest.param("a" * 64, id="a*64"),
        None,
    ],
)
def test_validate_name_rejects(name):
    with pytest.raises(InvalidInput) as e:
        validate_name(name)
    assert e.value.status_code == 400
    assert "name must be 1-63 characters" in e.value.message


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://github.com/org/repo", "repo"),
        ("https://github.com/org/repo.git", "repo"),
        ("https://github.com/org/Repo.git/", "repo"),
        ("https://github.com/org/repo///", "repo"),
        ("https://gitlab.com/g/sub/My_Project", "my_project"),
        ("https://github.com/org/Data.Science.GIT", "data.science"),
        ("https://example.org/a%20b", "a-b"),
        ("https://example.org/été", "ete"),
        ("https://example.org/用户", "env"),
        ("https://example.org/a用户b", "a-b"),
        ("https://github.com/", "env"),
        ("https://github.com", "env"),
        ("https://example.org/.git", "env"),
        ("https://example.org/--a--", "a"),
        ("https://example.org/a..b__c-.-d", "a-b-c-d"),
        ("https://example.org/repo?x=1#frag", "repo"),
        ("git@github.com:org/repo.git", "repo"),
        ("git@github.com:repo.git", "repo"),
        ("file:///srv/repos/demo", "demo"),
        ("", "env"),
        pytest.param("https://example.org/" + "a" * 70, "a" * 63, id="truncated"),
        pytest.param("https://example.org/" + "a" * 62 + "-b", "a" * 62, id="truncated-sep"),
    ],
)
def test_derive_name(url, expected):
    assert derive_name(url) == expected


@given(st.text())
def test_derive_name_is_always_valid(url):
    assert validate_name(derive_name(url))


@pytest.mark.parametrize(
    "commit, tag",
    [
        ("0123456789abcdef0123456789abcdef01234567", "0123456789ab"),
        ("0123456789ABCDEF0123456789ABCDEF01234567", "0123456789ab"),
        ("0123456789ab", "0123456789ab"),
    ],
)
def test_commit_tag(commit, tag):
    assert commit_tag(commit) == tag


@pytest.mark.parametrize("commit", ["", "abc", "0123456789a", "main", "g" * 40, None])
def test_commit_tag_rejects(commit):
    with pytest.raises(ValueError):
        commit_tag(commit)


# ---------------------------------------------------------------------------
# ImageNamer


@pytest.mark.parametrize(
    "registry, prefix, expected",
    [
        ("", "", "alice/env:0123456789ab"),
        ("", "r2d-", "r2d-alice/env:0123456789ab"),
        ("", "envs/", "envs/alice/env:0123456789ab"),
        ("localhost:5000", "", "localhost:5000/alice/env:0123456789ab"),
        ("127.0.0.1:5000", "r2d-", "127.0.0.1:5000/r2d-alice/env:0123456789ab"),
        (
            "registry.example.org",
            "jupyter/r2d.",
            "registry.example.org/jupyter/r2d.alice/env:0123456789ab",
        ),
    ],
)
def test_namer_reference(registry, prefix, expected):
    namer = ImageNamer(registry=registry, prefix=prefix)
    ref = namer.reference(owner_slug="alice", name="env", tag="0123456789ab")
    assert ref == expected
    assert namer.repository(owner_slug="alice", name="env") == expected.rsplit(":", 1)[0]
    assert namer.parse(ref) == ("alice", "env")
    assert namer.parse(namer.repository(owner_slug="alice", name="env")) == ("alice", "env")


def test_namer_shared_owner():
    namer = ImageNamer(prefix="r2d-")
    assert namer.reference(owner_slug=SHARED_OWNER, name="base", tag="latest") == (
        "r2d-shared/base:latest"
    )


def test_namer_custom_template():
    namer = ImageNamer(template="{registry}team/{prefix}{owner}/{name}:{tag}", prefix="r2d-")
    ref = namer.reference(owner_slug="a-2e-b", name="env", tag="latest")
    assert ref == "team/r2d-a-2e-b/env:latest"
    assert namer.parse(ref) == ("a-2e-b", "env")


@pytest.mark.parametrize(
    "repository",
    [
        "ubuntu:22.04",
        "alice/env",  # no prefix
        "r2d-alice/env/extra",
        "r2d-alice",
        "localhost:5000/r2d-alice/env",  # other registry
        "r2d-Alice/env",
        "r2d-alice/a--b",  # not a valid image name
        "",
        None,
    ],
)
def test_namer_parse_other_images(repository):
    assert ImageNamer(prefix="r2d-").parse(repository) is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prefix": "R2D-"}, "Docker would read 'R2D-x' as its registry"),
        ({"prefix": "envs.example/"}, "Docker would read 'envs.example' as its registry"),
        ({"prefix": "-x"}, "not a valid image"),
        ({"prefix": "a//"}, "not a valid image"),
        (
            {"registry": "localhost:5000", "template": "{prefix}{owner}/{name}:{tag}"},
            "instead of 'localhost:5000'",
        ),
        ({"registry": "https://registry.example.org"}, "host"),
        ({"registry": "registry.example.org/"}, "host"),
        ({"registry": "myregistry"}, "host"),
        ({"template": "{prefix}{name}:{tag}"}, "{owner}"),
        ({"template": "{owner}/{owner}/{name}:{tag}"}, "{owner}"),
        ({"template": "{owner}/{name}"}, "{tag}"),
        ({"template": "{owner}/{name}:{tag}-x"}, "end with"),
        ({"template": "{user}/{owner}/{name}:{tag}"}, "unknown fields"),
        ({"template": "{owner!r}/{name}:{tag}"}, "format specs"),
        ({"template": "{owner/{name}:{tag}"}, "template"),
    ],
)
def test_namer_rejects_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ImageNamer(**kwargs)


def test_namer_rejects_bad_parts():
    namer = ImageNamer()
    with pytest.raises(ValueError):
        namer.reference(owner_slug="Alice", name="env", tag="latest")
    with pytest.raises(ValueError):
        namer.reference(owner_slug="a/b", name="env", tag="latest")
    with pytest.raises(ValueError):
        namer.reference(owner_slug="alice", name="Env", tag="latest")
    with pytest.raises(ValueError):
        namer.reference(owner_slug="alice", name="env", tag=".bad")


def test_namer_rejects_too_long_reference():
    namer = ImageNamer(registry="r" * 60 + ".example.org", prefix="p" * 10 + "/")
    owner = escape_owner("a" * 128)
    with pytest.raises(ValueError, match="not a valid"):
        namer.reference(owner_slug=owner, name="n" * 63, tag="latest")
    # the same owner fits without the long registry
    assert ImageNamer().reference(owner_slug=owner, name="n" * 63, tag="latest")


@given(
    registry=st.sampled_from(
        ["", "localhost", "localhost:5000", "registry.example.org", "[::1]:5000", "r.io:8443"]
    ),
    prefix=st.sampled_from(["", "r2d-", "envs/", "jupyter/r2d.", "a_", "team/x__"]),
    username=short_usernames,
    name=image_names,
    commit=st.text("0123456789abcdef", min_size=40, max_size=40),
)
def test_namer_references_are_valid(registry, prefix, username, name, commit):
    namer = ImageNamer(registry=registry, prefix=prefix)
    owner = escape_owner(username)
    ref = namer.reference(owner_slug=owner, name=name, tag=commit_tag(commit))
    assert is_valid_reference(ref)
    assert namer.parse(ref) == (owner, name)
    assert unescape_owner(namer.parse(ref)[0]) == username
