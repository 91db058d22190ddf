"""Missing or refused, against the fake front (tests/rig/fake_registry.py) over a real registry.

One rule for builds, cache checks and listings: a 401/403/404 on a repository's manifests or
tags after the login was accepted (its token request succeeded, the basic login opens
``/v2/``, or no login was asked for) means "not there yet"; a refused token request, a refused
login, or a 401 on a repository known to exist is an authentication error. Tokens that expire
mid-way are fetched again, not reported as a refusal.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from repo2docker_service.builds.model import Build
from repo2docker_service.errors import UpstreamError
from repo2docker_service.images.dockerconfig import RegistryCredentials
from repo2docker_service.images.naming import DEFAULT_TEMPLATE, ImageNamer
from repo2docker_service.images.registry.catalog import RegistryCatalog
from repo2docker_service.images.registry.client import RegistryClient
from repo2docker_service.images.registry.errors import RegistryError
from tests.rig.fake_registry import FrontBehaviour, start_front
from tests.rig.oci import push_test_image
from tests.rig.parts import require


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    f = require(
        start_front,
        tmp_path_factory.mktemp("auth-front"),
        password="front-" + secrets.token_hex(6),
    )
    push_test_image(f.url, "there/env", "v1", labels={"k": "v"})
    yield f
    f.close()


@pytest.fixture(autouse=True)
def reset(front):
    password = front.password
    front.behaviour = FrontBehaviour()
    front.token_ttl = 300
    front.token_server.anonymous_pull = False
    front.token_server.revoked = set()
    yield
    front.password = front.token_server.password = password


def login(front, kind: str) -> RegistryCredentials | None:
    if kind == "anonymous":
        front.token_server.anonymous_pull = True
        return None
    return RegistryCredentials(front.username, front.password)


VARIANTS = [
    (auth, kind, status)
    for auth, kinds in (("token", ("login", "anonymous")), ("basic", ("login",)))
    for kind in kinds
    for status in (401, 403, 404)
]


@pytest.mark.parametrize(("auth", "kind", "status"), VARIANTS)
async def test_unknown_repository_is_not_there_yet(front, auth, kind, status):
    front.behaviour = FrontBehaviour(auth=auth, unknown_repo_status=status)
    client = RegistryClient(front.host, credentials=login(front, kind), timeout=10)
    namer = ImageNamer(template=DEFAULT_TEMPLATE, registry=front.host, prefix="new-")
    catalog = RegistryCatalog(namer=namer, client=client, cache_ttl=0)
    try:
        assert await client.head_manifest("not/yet", "latest") is None
        assert await client.get_manifest("not/yet", "latest") is None
        assert await client.tags("not/yet") == []
        reference = namer.reference(owner_slug="ada", name="fresh", tag="abc")
        assert await catalog.image_info(reference) is None  # the build's cache check
        assert await catalog.get(owner_slug="ada", name="fresh") is None  # the name check
        # the same client still reads what is there
        assert await client.tags("there/env") == ["v1"]
        assert (await client.image_details("there/env", "v1")).labels == {"k": "v"}
    finally:
        await catalog.close()
    assert (status == 404) or front.answered(status), front.answers[-5:]


@pytest.mark.parametrize("auth", ["token", "basic"])
async def test_refused_login_is_an_auth_error(front, auth):
    front.behaviour = FrontBehaviour(auth=auth, unknown_repo_status=401)
    client = RegistryClient(front.host, credentials=RegistryCredentials(front.username, "wrong"))
    try:
        for call in (client.head_manifest("not/yet", "latest"), client.tags("there/env")):
            with pytest.raises(RegistryError) as err:
                await call
            assert err.value.kind == "auth" and "wrong" not in err.value.message
    finally:
        await client.close()


async def test_refusal_on_a_known_repository_is_an_auth_error(front):
    front.behaviour = FrontBehaviour(auth="basic", unknown_repo_status=401)
    client = RegistryClient(front.host, credentials=login(front, "login"))
    try:
        assert await client.tags("there/env") == ["v1"]
        front.password = "revoked-" + secrets.token_hex(4)  # the login stops working
        with pytest.raises(RegistryError) as err:
            await client.head_manifest("there/env", "v1")
        assert (
            err.value.kind == "auth" and "refused the configured credentials" in err.value.message
        )
    finally:
        await client.close()


async def test_refusal_on_a_repository_the_index_lists_is_an_auth_error(front):
    """A service that knows a repository only from the service's index (restarted, or a
    second one; ``_catalog`` refused): the login losing access there is an auth error, not
    "not there yet" as for a repository nobody listed."""
    login_ = login(front, "login")

    def service() -> RegistryCatalog:
        client = RegistryClient(front.host, credentials=login_, timeout=10)
        namer = ImageNamer(template=DEFAULT_TEMPLATE, registry=front.host, prefix="idx-")
        return RegistryCatalog(namer=namer, client=client, cache_ttl=0)

    first, second = service(), service()
    reference = first.namer.reference(owner_slug="ada", name="env", tag="v1")
    name = reference.removeprefix(f"{front.host}/").partition(":")[0]
    build = Build(
        owner="ada",
        owner_slug="ada",
        name="env",
        repo="https://git.example/ada/env",
        ref="main",
        commit="a" * 40,
        image=reference,
        latest_image=reference.replace(":v1", ":latest"),
        id="b1",
    )
    push_test_image(front.url, name, "v1", labels=build.image_labels().to_labels())
    front.behaviour = FrontBehaviour(auth="token", catalog_404=True, unknown_repo_status=401)
    try:
        await first.tag(reference, reference.replace(":v1", ":latest"))  # into the index
        listed = await second.list_images()  # from the index; nothing read from the repository
        assert [i.name for i in listed] == ["env"]
        front.token_server.revoked = {name, "idx-bob/new"}
        with pytest.raises(UpstreamError, match="refused the configured credentials"):
            await second.image_info(reference)  # the build's cache check
        assert front.answered(401)
        other = first.namer.reference(owner_slug="bob", name="new", tag="v1")
        assert await second.image_info(other) is None  # not listed: not there yet
    finally:
        await first.close()
        await second.close()


async def test_expiring_tokens_are_fetched_again(front):
    front.behaviour = FrontBehaviour(auth="token", unknown_repo_status=401)
    front.token_ttl = 1
    client = RegistryClient(front.host, credentials=login(front, "login"))
    before = len(front.token_server.requests)
    try:
        for _ in range(3):  # each round outlives the last round's tokens
            assert await client.tags("there/env") == ["v1"]
            assert await client.head_manifest("there/env", "v1") is not None
            assert await client.head_manifest("not/yet", "v1") is None
            await asyncio.sleep(1.6)
        asked = front.token_server.requests[before:]
        assert len(asked) >= 3  # new tokens were asked for, and none was refused
        assert all(status == 200 for _, _, status in asked), asked
    finally:
        await client.close()


async def test_identity_token_through_the_oauth2_post(front):
    """A helper's ``<token>`` login is exchanged by the OAuth2 refresh_token POST."""
    front.behaviour = FrontBehaviour(auth="token", unknown_repo_status=401)
    front.token_server.identity_token = "idt-" + secrets.token_hex(6)
    good = RegistryCredentials("", "", identity_token=front.token_server.identity_token)
    client = RegistryClient(front.host, credentials=good)
    try:
        assert await client.tags("there/env") == ["v1"]
        assert await client.head_manifest("not/yet", "v1") is None
        assert front.token_server.requests[-1][1]["grant_type"] == ["refresh_token"]
    finally:
        await client.close()
    wrong = RegistryClient(
        front.host, credentials=RegistryCredentials("", "", identity_token="idt-wrong")
    )
    try:
        with pytest.raises(RegistryError) as err:
            await wrong.tags("there/env")
        assert err.value.kind == "auth" and "idt-wrong" not in err.value.message
    finally:
        await wrong.close()
        front.token_server.identity_token = ""
