"""The registry client and RegistryCatalog against a small in-process fake of the
Distribution API (aiohttp.web on 127.0.0.1): auth flows, pagination, manifest kinds,
errors, and the listing cache (TTL, stale-while-revalidate, invalidation on own writes).
The real registries (anonymous, htpasswd, token) are exercised in tests/integration.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from repo2docker_service.builds.model import Build
from repo2docker_service.errors import Conflict, NotFound, Unavailable, UpstreamError
from repo2docker_service.images.dockerconfig import (
    RegistryCredentials,
    docker_config_credentials,
    write_docker_config,
)
from repo2docker_service.images.naming import ImageNamer
from repo2docker_service.images.registry.auth import parse_www_authenticate
from repo2docker_service.images.registry.catalog import RegistryCatalog
from repo2docker_service.images.registry.client import (
    RegistryClient,
    default_api_url,
    next_link,
)
from repo2docker_service.images.registry.errors import RegistryError
from repo2docker_service.images.registry.manifest import (
    MANIFEST_ACCEPT,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_INDEX,
    pick_platform,
)
from tests.rig.net import free_port

# ----------------------------------------------------------------------------- pure helpers


def test_parse_www_authenticate():
    scheme, params = parse_www_authenticate(
        'Bearer realm="https://auth.example/token",service="reg.example",'
        'scope="repository:a/b:pull,push",error="insufficient_scope"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.example/token",
        "service": "reg.example",
        "scope": "repository:a/b:pull,push",
        "error": "insufficient_scope",
    }
    assert parse_www_authenticate('Basic realm="r2ds test"') == ("basic", {"realm": "r2ds test"})
    assert parse_www_authenticate("Bearer realm=unquoted") == ("bearer", {"realm": "unquoted"})


def test_next_link():
    base = "http://127.0.0.1:5000/v2/_catalog?n=2"
    assert next_link('</v2/_catalog?last=b&n=2>; rel="next"', base) == (
        "http://127.0.0.1:5000/v2/_catalog?last=b&n=2"
    )
    assert next_link(None, base) is None
    assert next_link('</x>; rel="prev"', base) is None


@pytest.mark.parametrize(
    ("registry", "url"),
    [
        ("127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("localhost:5000", "http://localhost:5000"),
        ("[::1]:5000", "http://[::1]:5000"),
        ("registry.example.org", "https://registry.example.org"),
        ("10.0.0.5:5000", "https://10.0.0.5:5000"),
    ],
)
def test_default_api_url(registry, url):
    assert default_api_url(registry) == url


@pytest.mark.parametrize(
    "api_url, expected",
    [
        (None, "https://reg.example:5000"),
        ("", "https://reg.example:5000"),
        ("http://reg.example:5000/", "http://reg.example:5000"),
        ("https://mirror.example/prefix", "https://mirror.example/prefix"),
        ("reg.example:5000", None),  # no scheme: main took it for a path, "unreachable"
        ("127.0.0.1:5000", None),
        ("ftp://reg.example", None),
        ("https://", None),
    ],
)
def test_registry_api_url_must_be_an_http_url(api_url, expected):
    if expected is None:
        with pytest.raises(ValueError, match="must be an http:// or https:// URL"):
            RegistryClient("reg.example:5000", api_url=api_url)
    else:
        assert RegistryClient("reg.example:5000", api_url=api_url).api_url == expected


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_docker_config_credentials():
    config = {
        "auths": {
            "reg.example:5000": {"auth": b64("alice:pa:ss")},
            "https://other.example": {"username": "bob", "password": "pw"},
        }
    }
    creds = docker_config_credentials(config, "reg.example:5000")
    assert (creds.username, creds.password) == ("alice", "pa:ss")
    assert "pa:ss" not in repr(creds)
    other = docker_config_credentials(config, "other.example")
    assert (other.username, other.password) == ("bob", "pw")
    assert docker_config_credentials(config, "missing.example") is None
    assert docker_config_credentials({}, "reg.example:5000") is None
    with pytest.raises(ValueError, match="base64"):
        docker_config_credentials({"auths": {"r.example": {"auth": "%%%"}}}, "r.example")


def test_write_docker_config(tmp_path):
    base = tmp_path / "base"
    (base / "buildx").mkdir(parents=True)
    (base / "config.json").write_text(
        json.dumps(
            {
                "auths": {"https://reg.example": {"auth": b64("old:old")}, "x.example": {}},
                "credsStore": "desktop",
                "proxies": {"default": {"noProxy": "127.0.0.1"}},
            }
        )
    )
    target = write_docker_config(
        tmp_path / "build" / "docker",
        registry="reg.example",
        credentials=RegistryCredentials("u", "s3cret"),
        base_dir=base,
    )
    config = json.loads((target / "config.json").read_text())
    assert docker_config_credentials(config, "reg.example") == RegistryCredentials("u", "s3cret")
    assert "https://reg.example" not in config["auths"] and "x.example" in config["auths"]
    assert "credsStore" not in config and config["proxies"]
    assert stat.S_IMODE((target / "config.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert (target / "buildx").is_symlink() and (target / "buildx").resolve() == base / "buildx"


def test_pick_platform():
    arm = {"digest": "sha256:a", "platform": {"os": "linux", "architecture": "arm64"}}
    amd = {"digest": "sha256:b", "platform": {"os": "linux", "architecture": "amd64"}}
    att = {
        "digest": "sha256:c",
        "platform": {"os": "unknown", "architecture": "unknown"},
        "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
    }
    assert pick_platform([att, arm, amd]) is amd
    assert pick_platform([att, arm]) is arm
    assert pick_platform([att]) is None


# ----------------------------------------------------------------------------- fake registry


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class FakeRegistry:
    """Distribution API subset with optional basic or bearer auth, in one aiohttp app."""

    auth: str | None = None  # None, "basic", "bearer"
    user: str = "u"
    password: str = "p"
    allow_delete: bool = True
    page_size_cap: int = 1000
    fail_status: int | None = None
    catalog_status: int | None = None  # e.g. 404 or 401, as GHCR and Docker Hub answer
    # repository -> 401/403 for reads of its manifests and tags, even with a good token (a
    # repository the login lost access to; Docker Hub answers so for new repositories too)
    refused: dict[str, int] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, dict[str, tuple[str, bytes]]] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    token_requests: list[dict] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- content
    def push(self, name: str, tag: str, labels: dict[str, str], *, index: bool = False) -> str:
        config = json.dumps(
            {
                "os": "linux",
                "architecture": "amd64",
                "config": {"Labels": labels},
                "created": "2026-11-23T00:00:00Z",
            }
        ).encode()
        self.blobs[sha(config)] = config
        layer = os.urandom(64)
        self.blobs[sha(layer)] = layer
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_DOCKER_MANIFEST,
                "config": {"digest": sha(config), "size": len(config)},
                "layers": [{"digest": sha(layer), "size": 1000}],
            }
        ).encode()
        store = self.manifests.setdefault(name, {})
        store[sha(manifest)] = (MEDIA_DOCKER_MANIFEST, manifest)
        top_digest = sha(manifest)
        if index:
            idx = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": MEDIA_OCI_INDEX,
                    "manifests": [
                        {
                            "digest": "sha256:" + "0" * 64,
                            "platform": {"os": "unknown", "architecture": "unknown"},
                        },
                        {
                            "digest": sha(manifest),
                            "size": len(manifest),
                            "platform": {"os": "linux", "architecture": "amd64"},
                        },
                    ],
                }
            ).encode()
            store[sha(idx)] = (MEDIA_OCI_INDEX, idx)
            top_digest = sha(idx)
        self.tags.setdefault(name, {})[tag] = top_digest
        return top_digest

    # -- server
    async def start(self) -> FakeRegistry:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if self.auth is None:
            return True
        if self.auth == "basic":
            return header == "Basic " + b64(f"{self.user}:{self.password}")
        return header == "Bearer good-token"

    def _challenge(self, scope: str) -> dict[str, str]:
        if self.auth == "basic":
            return {"WWW-Authenticate": 'Basic realm="fake"'}
        realm = f"http://{self.host}/token"
        return {"WWW-Authenticate": f'Bearer realm="{realm}",service="fake",scope="{scope}"'}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        self.requests.append((request.method, path, request.headers.get("Authorization")))
        if path == "/token":
            self.token_requests.append(dict(request.query))
            if request.headers.get("Authorization") != "Basic " + b64(
                f"{self.user}:{self.password}"
            ):
                return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]}, status=401)
            return web.json_response({"token": "good-token", "expires_in": 300})
        if path.startswith("/storage/"):
            if request.headers.get("Authorization"):
                return web.Response(status=400, text="credentials sent to storage")
            return web.Response(body=self.blobs[path.removeprefix("/storage/")])
        if self.fail_status:
            return web.Response(status=self.fail_status, text="down for maintenance")
        scope = "registry:catalog:*" if path == "/v2/_catalog" else ""
        parts = path.removeprefix("/v2/").split("/")
        if len(parts) >= 3:
            action = "delete" if request.method == "DELETE" else "pull"
            scope = f"repository:{'/'.join(parts[:-2])}:{action}"
        if not self._authorized(request):
            return web.json_response(
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                status=401,
                headers=self._challenge(scope),
            )
        if path == "/v2/":
            return web.json_response(
                {}, headers={"Docker-Distribution-API-Version": "registry/2.0"}
            )
        refused = self.refused.get("/".join(parts[:-2])) if len(parts) >= 3 else None
        if refused and parts[-2] in ("manifests", "tags") and request.method in ("GET", "HEAD"):
            challenge = self._challenge(scope) if refused == 401 else {}
            code = "UNAUTHORIZED" if refused == 401 else "DENIED"
            return web.json_response(
                {"errors": [{"code": code}]}, status=refused, headers=challenge
            )
        if path == "/v2/_catalog" and self.catalog_status:
            code = "UNAUTHORIZED" if self.catalog_status == 401 else "NOT_FOUND"
            return web.json_response({"errors": [{"code": code}]}, status=self.catalog_status)
        if "/blobs/uploads/" in path:
            return await self._upload(request, path)
        if path == "/v2/_catalog":
            names = sorted(n for n in self.tags if self.tags[n])
            n = min(int(request.query.get("n", 1000)), self.page_size_cap)
            last = request.query.get("last", "")
            page = [x for x in names if x > last][:n]
            headers = {}
            if page and page[-1] != names[-1]:
                headers["Link"] = f'</v2/_catalog?last={page[-1]}&n={n}>; rel="next"'
            return web.json_response({"repositories": page}, headers=headers)
        name, kind, ref = "/".join(parts[:-2]), parts[-2], parts[-1]
        if kind == "tags" and ref == "list":
            if name not in self.tags:
                return web.json_response({"errors": [{"code": "NAME_UNKNOWN"}]}, status=404)
            return web.json_response({"name": name, "tags": sorted(self.tags[name]) or None})
        if kind == "blobs":
            if ref not in self.blobs:
                return web.json_response({"errors": [{"code": "BLOB_UNKNOWN"}]}, status=404)
            if request.method == "HEAD":
                return web.Response(status=200, headers={"Docker-Content-Digest": ref})
            raise web.HTTPTemporaryRedirect(f"/storage/{ref}")
        if kind == "manifests":
            store = self.manifests.get(name, {})
            if request.method == "PUT":
                body = await request.read()
                store[sha(body)] = (request.headers["Content-Type"], body)
                self.manifests[name] = store
                self.tags.setdefault(name, {})[ref] = sha(body)
                return web.Response(status=201, headers={"Docker-Content-Digest": sha(body)})
            if request.method == "DELETE":
                if not self.allow_delete:
                    return web.json_response(
                        {
                            "errors": [
                                {"code": "UNSUPPORTED", "message": "The operation is unsupported."}
                            ]
                        },
                        status=405,
                    )
                if ref not in store:
                    return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status=404)
                del store[ref]
                self.tags[name] = {t: d for t, d in self.tags.get(name, {}).items() if d != ref}
                return web.Response(status=202)
            assert MANIFEST_ACCEPT in request.headers.get("Accept", "")
            digest = ref if ref.startswith("sha256:") else self.tags.get(name, {}).get(ref)
            if digest not in store:
                return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status=404)
            media_type, body = store[digest]
            headers = {"Docker-Content-Digest": digest, "Content-Type": media_type}
            if request.method == "HEAD":
                headers["Content-Length"] = str(len(body))
                return web.Response(status=200, headers=headers)
            return web.Response(body=body, headers=headers)
        return web.Response(status=404)

    async def _upload(self, request: web.Request, path: str) -> web.StreamResponse:
        """Monolithic blob upload: POST opens it, PUT ?digest= stores the body."""
        if request.method == "POST":
            return web.Response(status=202, headers={"Location": f"{path}{len(self.blobs)}"})
        body = await request.read()
        if sha(body) != request.query.get("digest"):
            return web.json_response({"errors": [{"code": "DIGEST_INVALID"}]}, status=400)
        self.blobs[sha(body)] = body
        return web.Response(status=201, headers={"Docker-Content-Digest": sha(body)})

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and p.startswith(prefix))


@pytest.fixture
async def fake():
    registries = []

    async def make(**kwargs) -> FakeRegistry:
        reg = await FakeRegistry(**kwargs).start()
        registries.append(reg)
        return reg

    yield make
    for reg in registries:
        await reg.stop()


# ----------------------------------------------------------------------------- client


async def test_bearer_flow_caches_tokens_per_scope(fake):
    reg = await fake(auth="bearer")
    reg.push("a/b", "1", {"x": "y"})
    client = RegistryClient(reg.host, credentials=RegistryCredentials("u", "p"))
    try:
        await client.check()
        for _ in range(3):
            assert (await client.head_manifest("a/b", "1")) is not None
        assert await client.tags("a/b") == ["1"]
        assert await client.catalog() == ["a/b"]
        scopes = [q.get("scope") for q in reg.token_requests]
        # one token per scope, reused afterwards
        assert scopes.count("repository:a/b:pull") == 1, scopes
        assert scopes.count("registry:catalog:*") == 1
        assert all(
            q.get("service") == "fake" and q.get("account") == "u" for q in reg.token_requests
        )
    finally:
        await client.close()


async def test_bearer_refused_and_anonymous(fake):
    reg = await fake(auth="bearer")
    for creds, who in ((RegistryCredentials("u", "wrong"), "configured"), (None, "anonymous")):
        client = RegistryClient(reg.host, credentials=creds)
        with pytest.raises(RegistryError) as err:
            await client.check()
        assert err.value.kind == "auth" and who in err.value.message
        assert "wrong" not in err.value.message
        await client.close()


async def test_basic_auth(fake):
    reg = await fake(auth="basic")
    reg.push("a/b", "1", {})
    client = RegistryClient(reg.host, credentials=RegistryCredentials("u", "p"))
    try:
        assert await client.tags("a/b") == ["1"]
        before = len(reg.requests)
        assert await client.tags("a/b") == ["1"]
        # once the registry asked for basic auth, it is sent right away
        assert len(reg.requests) == before + 1
    finally:
        await client.close()
    anonymous = RegistryClient(reg.host)
    with pytest.raises(RegistryError, match="requires a login") as err:
        await anonymous.tags("a/b")
    assert err.value.kind == "auth"
    await anonymous.close()


async def test_catalog_pagination(fake):
    reg = await fake(page_size_cap=2)
    for n in range(5):
        reg.push(f"repo{n}/env", "latest", {})
    client = RegistryClient(reg.host)
    try:
        assert await client.catalog(page_size=2) == [f"repo{n}/env" for n in range(5)]
        assert reg.count("GET", "/v2/_catalog") == 3
    finally:
        await client.close()


async def test_index_details_and_redirected_blob(fake):
    reg = await fake(auth="basic")
    digest = reg.push("a/b", "1", {"k": "v"}, index=True)
    client = RegistryClient(reg.host, credentials=RegistryCredentials("u", "p"))
    try:
        head = await client.head_manifest("a/b", "1")
        assert head.digest == digest and head.media_type == MEDIA_OCI_INDEX
        details = await client.image_details("a/b", "1")
        assert details.digest == digest and details.labels == {"k": "v"}
        assert details.platform == "linux/amd64" and details.size > 1000
        assert await client.head_manifest("a/b", "nope") is None
        assert await client.head_manifest("no/repo", "1") is None
        assert await client.tags("no/repo") == []
    finally:
        await client.close()


async def test_errors_are_classified(fake):
    reg = await fake(allow_delete=False)
    digest = reg.push("a/b", "1", {})
    client = RegistryClient(reg.host)
    try:
        with pytest.raises(RegistryError) as err:
            await client.delete_manifest("a/b", digest)
        assert err.value.kind == "unsupported" and err.value.status == 405
        reg.fail_status = 503
        with pytest.raises(RegistryError) as err:
            await client.tags("a/b")
        assert err.value.kind == "unreachable" and "503" in err.value.message
    finally:
        await client.close()
    closed = RegistryClient(f"127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(RegistryError) as err:
        await closed.check()
    assert err.value.kind == "unreachable"
    await closed.close()
    # something that is not a registry
    not_registry = await fake()
    not_registry.fail_status = 404
    client = RegistryClient(not_registry.host)
    with pytest.raises(RegistryError) as err:
        await client.check()
    assert err.value.kind == "bad_url"
    await client.close()


# ----------------------------------------------------------------------------- catalog

PREFIX = "r2d-"


def labels_for(owner: str, name: str, *, built_at: str, build_id: str = "b1") -> dict[str, str]:
    build = Build(
        owner=owner,
        owner_slug=owner,
        name=name,
        repo=f"https://git.example/{owner}/{name}",
        ref="main",
        commit="a" * 40,
        image="x",
        latest_image="y",
        id=build_id,
    )
    out = build.image_labels().to_labels()
    out["repo2docker-service.built-at"] = built_at
    return out


@pytest.fixture
async def catalog_for(fake):
    made = []

    async def make(reg: FakeRegistry, *, credentials=None, **kwargs) -> RegistryCatalog:
        namer = ImageNamer(registry=reg.host, prefix=PREFIX)
        client = RegistryClient(reg.host, credentials=credentials)
        catalog = RegistryCatalog(namer=namer, client=client, **kwargs)
        made.append(catalog)
        return catalog

    yield make
    for catalog in made:
        await catalog.close()


async def test_listing_groups_tags_and_checks_labels(fake, catalog_for):
    reg = await fake()
    old = reg.push(f"{PREFIX}alice/env", "000000000001", labels_for("alice", "env", built_at="1"))
    new = reg.push(f"{PREFIX}alice/env", "000000000002", labels_for("alice", "env", built_at="2"))
    reg.tags[f"{PREFIX}alice/env"]["latest"] = old
    # a tag whose labels name another owner is ignored; other repositories too
    reg.push(f"{PREFIX}bob/env", "000000000003", labels_for("alice", "env", built_at="3"))
    reg.push("unrelated/thing", "latest", {})
    catalog = await catalog_for(reg)
    infos = await catalog.list_images()
    assert [(i.owner, i.name) for i in infos] == [("alice", "env")]
    info = infos[0]
    assert info.image == f"{reg.host}/{PREFIX}alice/env:000000000001"  # what latest is
    assert info.latest == f"{reg.host}/{PREFIX}alice/env:latest"
    assert info.tags == ["latest", "000000000002", "000000000001"]
    focus = await catalog.image_info(f"{reg.host}/{PREFIX}alice/env:000000000002")
    assert focus.image.endswith(":000000000002") and focus.tags == info.tags
    assert await catalog.image_info(f"{reg.host}/{PREFIX}alice/env:ffffffffffff") is None
    assert await catalog.image_info(f"{reg.host}/{PREFIX}bob/env:000000000003") is None
    assert await catalog.image_id(f"{reg.host}/{PREFIX}alice/env:latest") == old
    assert new != old


async def test_listing_cache_ttl_and_invalidation(fake, catalog_for):
    reg = await fake()
    reg.push(f"{PREFIX}alice/a", "000000000001", labels_for("alice", "a", built_at="1"))
    catalog = await catalog_for(reg, cache_ttl=0.5, max_stale=1.2)
    assert [i.name for i in await catalog.list_images()] == ["a"]
    catalogs = reg.count("GET", "/v2/_catalog")
    # within the TTL: no registry request at all
    for _ in range(20):
        await catalog.list_images()
    assert reg.count("GET", "/v2/_catalog") == catalogs

    # someone else pushes without the index: the TTL's refresh reads only the index ...
    reg.push(f"{PREFIX}alice/b", "000000000002", labels_for("alice", "b", built_at="2"))
    assert [i.name for i in await catalog.list_images()] == ["a"]
    await asyncio.sleep(0.6)
    assert [i.name for i in await catalog.list_images()] == ["a"]  # stale, refresh started
    await asyncio.wait_for(asyncio.shield(catalog.listing.refreshing), 5)
    assert [i.name for i in await catalog.list_images()] == ["a"]
    assert reg.count("GET", "/v2/_catalog") == catalogs
    # ... the _catalog check after max_stale finds it (and adds it to the index)
    await asyncio.sleep(0.7)
    await catalog.list_images()
    await asyncio.wait_for(asyncio.shield(catalog.listing.refreshing), 5)
    await asyncio.wait_for(asyncio.shield(catalog.listing.checking), 5)  # in the background
    assert [i.name for i in await catalog.list_images()] == ["a", "b"]
    assert reg.count("GET", "/v2/_catalog") == catalogs + 1
    # labels are fetched once per digest (the new image's config; then from the index)
    assert reg.count("GET", f"/v2/{PREFIX}alice/b/blobs/") == 1
    assert reg.count("GET", f"/v2/{PREFIX}alice/a/blobs/") == 1

    # our own writes show at once (no TTL wait)
    await catalog.delete(owner_slug="alice", name="a")
    assert [i.name for i in await catalog.list_images()] == ["b"]
    await catalog.tag(
        f"{reg.host}/{PREFIX}alice/b:000000000002", f"{reg.host}/{PREFIX}alice/b:latest"
    )
    [b] = await catalog.list_images()
    assert b.latest == f"{reg.host}/{PREFIX}alice/b:latest" and b.image.endswith(":000000000002")
    with pytest.raises(NotFound):
        await catalog.delete(owner_slug="alice", name="a")
    with pytest.raises(NotFound):
        await catalog.tag(f"{reg.host}/{PREFIX}alice/b:missing", f"{reg.host}/{PREFIX}alice/b:x")


async def test_registry_down_answers_the_last_good_listing(fake, catalog_for):
    reg = await fake()
    reg.push(f"{PREFIX}alice/a", "000000000001", labels_for("alice", "a", built_at="1"))
    catalog = await catalog_for(reg, cache_ttl=0.2)
    assert catalog.state().live is False and catalog.state().last_good_age_s is None
    await catalog.list_images()
    assert catalog.state().live and not catalog.state().stale
    reg.fail_status = 503
    await asyncio.sleep(0.3)
    await catalog.list_images()  # answered at once, the refresh fails in the background
    await asyncio.gather(catalog.listing.refreshing, return_exceptions=True)
    # from now on: the last good listing, flagged stale with its age, never an error
    for _ in range(3):
        assert [i.name for i in await catalog.list_images()] == ["a"]
    state = catalog.state()
    assert state.stale and not state.live and state.since is not None
    assert state.last_good_age_s >= 0.3 and "503" in state.note
    assert state.freshness() == {"stale": True, "age_s": round(state.last_good_age_s, 1)}
    with pytest.raises(Unavailable, match="Cannot reach the registry") as err:
        await catalog.exists(f"{reg.host}/{PREFIX}alice/a:latest")
    assert err.value.status_code == 503
    # back: a listing starts the refresh that clears the flag
    reg.fail_status = None
    await catalog.list_images()
    await asyncio.gather(catalog.listing.refreshing, return_exceptions=True)
    assert catalog.state().live and not catalog.state().stale and catalog.state().since is None


async def test_registry_down_before_any_listing_is_503(fake, catalog_for):
    reg = await fake(fail_status=503)
    catalog = await catalog_for(reg)
    with pytest.raises(Unavailable, match=r"Cannot reach the registry.*Check that") as err:
        await catalog.list_images()
    assert err.value.status_code == 503 and not catalog.state().live
    reg.fail_status = None
    assert await catalog.list_images() == []


async def test_delete_not_allowed_is_a_conflict(fake, catalog_for):
    reg = await fake(allow_delete=False)
    reg.push(f"{PREFIX}alice/a", "000000000001", labels_for("alice", "a", built_at="1"))
    catalog = await catalog_for(reg)
    with pytest.raises(Conflict, match="does not support"):
        await catalog.delete(owner_slug="alice", name="a")
    assert [i.name for i in await catalog.list_images()] == ["a"]


async def test_auth_failure_is_upstream_error(fake):
    reg = await fake(auth="basic")
    namer = ImageNamer(registry=reg.host, prefix=PREFIX)
    catalog = RegistryCatalog(
        namer=namer, client=RegistryClient(reg.host, credentials=RegistryCredentials("u", "x"))
    )
    try:
        with pytest.raises(UpstreamError) as err:
            await catalog.list_images()
        assert err.value.status_code == 502 and "refused" in err.value.message
    finally:
        await catalog.close()


# ----------------------------------------------------------------------------- the index


async def built(reg: FakeRegistry, catalog: RegistryCatalog, owner: str, name: str, tag: str):
    """What a build does in registry mode: repo2docker pushes the commit tag, the runner
    moves ``latest`` through the catalog (which records the repository in the index)."""
    repository = f"{reg.host}/{PREFIX}{owner}/{name}"
    reg.push(f"{PREFIX}{owner}/{name}", tag, labels_for(owner, name, built_at=tag))
    await catalog.tag(f"{repository}:{tag}", f"{repository}:latest")


async def test_no_catalog_lists_from_the_index_across_restarts(fake, catalog_for, caplog):
    """GHCR and Docker Hub answer 404/401 to _catalog: the index is the listing."""
    for status in (404, 401):
        reg = await fake(catalog_status=status)
        first = await catalog_for(reg)
        assert await first.list_images() == []
        await built(reg, first, "alice", "env", "000000000001")
        await built(reg, first, "bob", "tool", "000000000002")
        assert [i.name for i in await first.list_images()] == ["env", "tool"]
        state = first.state()
        assert state.source == "index" and state.live and not state.stale
        assert f"answers {status} to /v2/_catalog" in state.note

        # a restarted (or second) service: the same list, nothing local
        second = await catalog_for(reg)
        listed = await second.list_images()
        assert [(i.owner, i.name, i.latest) for i in listed] == [
            ("alice", "env", f"{reg.host}/{PREFIX}alice/env:latest"),
            ("bob", "tool", f"{reg.host}/{PREFIX}bob/tool:latest"),
        ]
        assert listed[0].tags == ["latest", "000000000001"]
        # two requests per listing refresh: the index manifest and its blob; no labels
        assert reg.count("GET", f"/v2/{PREFIX}alice/env/blobs/") == 1  # (first's build)

        # a read that finds what the index says writes nothing
        index_puts = reg.count("PUT", f"/v2/{PREFIX}x-index/service__index/manifests/")
        assert (await second.get(owner_slug="bob", name="tool")).name == "tool"
        assert reg.count("PUT", f"/v2/{PREFIX}x-index/service__index/manifests/") == index_puts

        # delete: gone, also after a restart
        await second.delete(owner_slug="alice", name="env")
        assert [i.name for i in await second.list_images()] == ["tool"]
        third = await catalog_for(reg)
        assert [i.name for i in await third.list_images()] == ["tool"]
        for catalog in (first, second, third):
            catalog.listing._scan_at = -1e9  # a _catalog check is due again
            await catalog.list_images()
            if catalog.listing.checking is not None:
                await asyncio.gather(catalog.listing.checking, return_exceptions=True)
    said = [r for r in caplog.records if "to /v2/_catalog" in r.getMessage()]
    assert len(said) == 6  # once per service (three per registry), not at later refreshes


async def test_index_is_rebuilt_from_catalog_and_checked(fake, catalog_for):
    reg = await fake()
    # images pushed before the index existed (an older version of the service)
    reg.push(f"{PREFIX}alice/old", "000000000001", labels_for("alice", "old", built_at="1"))
    catalog = await catalog_for(reg, cache_ttl=0.1, max_stale=0.3)
    assert [i.name for i in await catalog.list_images()] == ["old"]
    assert reg.tags[f"{PREFIX}x-index/service__index"]["v1"]  # written from _catalog
    # _catalog goes away: the index still lists it
    reg.catalog_status = 404
    assert [i.name for i in await (await catalog_for(reg)).list_images()] == ["old"]
    # an image deleted behind the service's back: the periodic check removes it
    reg.catalog_status = None
    del reg.tags[f"{PREFIX}alice/old"]
    await asyncio.sleep(0.35)
    await catalog.list_images()
    await asyncio.wait_for(asyncio.shield(catalog.listing.refreshing), 5)
    await asyncio.wait_for(asyncio.shield(catalog.listing.checking), 5)
    assert await catalog.list_images() == []
    reg.catalog_status = 404
    assert await (await catalog_for(reg)).list_images() == []


async def test_two_services_writing_at_once_lose_nothing(fake, catalog_for):
    reg = await fake(catalog_status=404)
    services = [await catalog_for(reg) for _ in range(4)]
    for service in services:
        await service.list_images()  # each has read the (empty) index
    await asyncio.gather(
        *(built(reg, s, f"user{n}", "env", f"00000000000{n}") for n, s in enumerate(services))
    )
    # a service that lost the race put its entries back by itself; a fresh one sees all
    for service in services:
        await service.listing.index.read()
    fresh = await catalog_for(reg)
    assert [i.owner for i in await fresh.list_images()] == [f"user{n}" for n in range(4)]
    # deletions by one service are not undone by another's later write
    await services[0].delete(owner_slug="user1", name="env")
    await built(reg, services[2], "user2", "env", "000000000009")
    assert [i.owner for i in await (await catalog_for(reg)).list_images()] == [
        "user0",
        "user2",
        "user3",
    ]


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refusal_where_the_index_lists_the_repository_is_not_missing(
    fake, catalog_for, status
):
    """Missing or refused (images/registry/client.py): a repository the service's index lists
    exists, so a refusal there (with a token the realm granted) is the login's, not "not
    there yet", also for a service that never read from it; once the index stops listing
    it, a refusal reads as missing again."""
    reg = await fake(auth="bearer", catalog_status=404)
    login = RegistryCredentials("u", "p")
    first = await catalog_for(reg, credentials=login)
    await built(reg, first, "alice", "env", "000000000001")
    second = await catalog_for(reg, credentials=login)  # a restarted or second service
    assert [i.name for i in await second.list_images()] == ["env"]
    reference = f"{reg.host}/{PREFIX}alice/env:000000000001"
    reg.refused = {f"{PREFIX}alice/env": status, f"{PREFIX}bob/new": status}
    with pytest.raises(UpstreamError, match=r"refused|denied") as err:
        await second.image_info(reference)  # the build's cache check
    assert err.value.status_code == 502
    with pytest.raises(RegistryError) as refusal:
        await second.client.tags(f"{PREFIX}alice/env")
    assert refusal.value.kind == ("auth" if status == 401 else "denied")
    # a repository the index does not list: not there yet, as before
    assert await second.image_info(f"{reg.host}/{PREFIX}bob/new:000000000001") is None
    # deleted by the first service: the index stops listing it, so it is missing again
    reg.refused = {}
    await first.delete(owner_slug="alice", name="env")
    await second.listing.index.read()
    reg.refused = {f"{PREFIX}alice/env": status}
    assert await second.image_info(reference) is None
