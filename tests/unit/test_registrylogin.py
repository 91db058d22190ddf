"""Registry logins from docker credential helpers, run as docker runs them: small helper
scripts on PATH (the protocol of docker/docker-credential-helpers: ``get``, the server
address on stdin, JSON out; ``<token>`` means an identity token)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import stat

import pytest

from repo2docker_service.builds.executors import BuildFailed, LocalExecutor
from repo2docker_service.builds.model import Build
from repo2docker_service.images.dockerconfig import (
    DOCKER_HUB_SERVER,
    RegistryCredentials,
    docker_server_address,
    write_docker_config,
)
from repo2docker_service.images.registrylogin import (
    CredentialHelperError,
    RegistryLogin,
    config_helper,
    run_credential_helper,
)

SECRET = "helper-secret-1f2e3d"


def helper(bin_dir, name: str, body: str) -> None:
    path = bin_dir / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def bin_dir(tmp_path, monkeypatch):
    d = tmp_path / "bin"
    d.mkdir()
    monkeypatch.setenv("PATH", f"{d}:{os.environ['PATH']}")
    return d


def test_config_helper_precedence():
    config = {"credsStore": "store", "credHelpers": {"reg.example": "ecr-login"}}
    assert config_helper(config, "reg.example") == "ecr-login"
    assert config_helper(config, "other.example") == "store"
    assert config_helper({"auths": {}}, "reg.example") is None


async def test_helper_protocol(bin_dir, tmp_path):
    seen = tmp_path / "stdin"
    helper(
        bin_dir,
        "plain",
        f'[ "$1" = get ] || exit 3\ncat > {seen}\n'
        f'printf \'{{"ServerURL":"x","Username":"ada","Secret":"{SECRET}"}}\'\n',
    )
    creds = await run_credential_helper("plain", "127.0.0.1:5000", time_limit=5)
    assert creds == RegistryCredentials("ada", SECRET)
    assert seen.read_bytes() == b"127.0.0.1:5000"  # no newline, as docker writes it
    assert SECRET not in repr(creds)


async def test_identity_token(bin_dir):
    helper(bin_dir, "tok", f'printf \'{{"Username":"<token>","Secret":"{SECRET}"}}\'\n')
    creds = await run_credential_helper("tok", "reg.example", time_limit=5)
    assert creds.identity_token == SECRET and creds.username == "" and creds.password == ""
    assert creds.auths_entry() == {"identitytoken": SECRET}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("echo 'credentials not found in native keychain'; exit 1\n", None),
        ("echo 'keychain locked'; exit 1\n", "exit status 1: keychain locked"),
        (f"printf '{SECRET} not json'\n", "did not answer with JSON"),
        ("sleep 30\n", "did not answer within 0.5 s"),
    ],
)
async def test_helper_failures(bin_dir, body, expected):
    helper(bin_dir, "bad", body)
    if expected is None:
        assert await run_credential_helper("bad", "reg.example", time_limit=0.5) is None
        return
    with pytest.raises(CredentialHelperError) as err:
        await run_credential_helper("bad", "reg.example", time_limit=0.5)
    assert expected in str(err.value) and SECRET not in str(err.value)


async def test_missing_helper(bin_dir):
    missing = r"docker-credential-nope is not on PATH: install it .*registry_config_file"
    with pytest.raises(CredentialHelperError, match=missing):
        await run_credential_helper("nope", "reg.example", time_limit=1)


async def test_login_is_read_again_when_refused_or_due(bin_dir, tmp_path):
    counter = tmp_path / "count"
    counter.write_text("0")
    helper(
        bin_dir,
        "rot",
        f"n=$(($(cat {counter}) + 1)); echo $n > {counter}\n"
        'printf \'{"Username":"u","Secret":"s%s"}\' $n\n',
    )
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credHelpers": {"reg.example": "rot"}}))
    login = RegistryLogin.from_settings(
        "reg.example",
        username="",
        password="",
        config_file=str(config),
        refresh_interval=0.5,
        helper_timeout=5,
        log=logging.getLogger("test"),
    )
    assert login.current is None and login.source.startswith("docker-credential-rot")
    first, again = await asyncio.gather(login.get(), login.get())  # one run for both
    assert first == again == RegistryCredentials("u", "s1")
    assert await login.get() == RegistryCredentials("u", "s1")  # not due yet
    assert await login.get(refresh=True) == RegistryCredentials("u", "s2")  # refused
    await asyncio.sleep(0.6)
    assert await login.get() == RegistryCredentials("u", "s3")  # due
    assert counter.read_text().strip() == "3"


async def test_fixed_and_auths_logins(tmp_path):
    fixed = RegistryLogin.from_settings(
        "reg.example",
        username="u",
        password="p",
        config_file="",
        refresh_interval=1,
        helper_timeout=1,
    )
    assert not fixed.rereadable and await fixed.get(refresh=True) == RegistryCredentials("u", "p")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"reg.example": {"identitytoken": SECRET}}}))
    login = RegistryLogin.from_settings(
        "reg.example",
        username="",
        password="",
        config_file=str(config),
        refresh_interval=0,
        helper_timeout=0,
    )
    assert login.current == RegistryCredentials("", "", identity_token=SECRET)
    assert login.helper_timeout == 10  # 0: the default
    config.write_text("{broken")
    with pytest.raises(ValueError):
        await login.get(refresh=True)
    assert login.current is not None  # the last login stays


def make_build() -> Build:
    return Build(
        owner="alice",
        owner_slug="alice",
        name="env",
        repo="https://git.example.org/alice/env",
        ref="main",
        commit="c" * 40,
        image="reg.example/r2d-alice/env:cccccccccccc",
        latest_image="reg.example/r2d-alice/env:latest",
    )


def helper_config(tmp_path, name: str) -> RegistryLogin:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credsStore": "other", "credHelpers": {"reg.example": name}}))
    return RegistryLogin.from_settings(
        "reg.example",
        username="",
        password="",
        config_file=str(config),
        refresh_interval=0,
        helper_timeout=5,
    )


async def test_the_builder_gets_the_helpers_login_in_its_docker_config(bin_dir, tmp_path):
    """The local executor's repo2docker sees DOCKER_CONFIG with the resolved login (mode
    0600, no helper left to run), removed after the build; never in argv or environment."""
    helper(bin_dir, "good", f'printf \'{{"Username":"ada","Secret":"{SECRET}"}}\'\n')
    out = tmp_path / "seen"
    script = (
        f'stat -c %a "$DOCKER_CONFIG/config.json" > {out}; echo "$DOCKER_CONFIG" >> {out}; '
        f'cat "$DOCKER_CONFIG/config.json" >> {out}; echo "$@" > {out}.argv; env > {out}.env'
    )
    executor = LocalExecutor(
        repo2docker_command=["sh", "-c", script, "r2d"],
        registry="reg.example",
        registry_login=helper_config(tmp_path, "good"),
    )
    await executor.build(
        make_build(), on_line=lambda *a: None, push=True, cache_from=[], labels={}, credentials=None
    )
    mode, directory, config = out.read_text().split("\n", 2)
    assert mode == "600" and not os.path.exists(directory)
    written = json.loads(config)
    assert written["auths"]["reg.example"] == RegistryCredentials("ada", SECRET).auths_entry()
    assert "credsStore" not in written and "credHelpers" not in written
    assert SECRET not in (tmp_path / "seen.argv").read_text()
    assert SECRET not in (tmp_path / "seen.env").read_text()


async def test_a_failing_helper_fails_the_build_clearly(bin_dir, tmp_path):
    helper(bin_dir, "broken", "echo 'vault sealed'; exit 1\n")
    executor = LocalExecutor(
        repo2docker_command=["true"],
        registry="reg.example",
        registry_login=helper_config(tmp_path, "broken"),
    )
    with pytest.raises(BuildFailed) as err:
        await executor.build(
            make_build(),
            on_line=lambda *a: None,
            push=True,
            cache_from=[],
            labels={},
            credentials=None,
        )
    assert "login for the registry reg.example" in err.value.reason
    assert "docker-credential-broken get failed with exit status 1: vault sealed" in str(
        err.value.reason
    )


async def test_docker_hub_is_filed_under_its_server_address(bin_dir, tmp_path):
    """docker files Docker Hub's login under https://index.docker.io/v1/ (auths, helpers'
    stdin, credHelpers key): the service reads and writes it there too."""
    seen = tmp_path / "stdin"
    helper(bin_dir, "hub", f'cat > {seen}; printf \'{{"Username":"ada","Secret":"s"}}\'\n')
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credHelpers": {DOCKER_HUB_SERVER: "hub"}}))
    login = RegistryLogin.from_settings(
        "docker.io",
        username="",
        password="",
        config_file=str(config),
        refresh_interval=0,
        helper_timeout=5,
    )
    assert await login.get() == RegistryCredentials("ada", "s")
    assert seen.read_text() == DOCKER_HUB_SERVER
    auth = base64.b64encode(b"bob:pw").decode()
    config.write_text(json.dumps({"auths": {DOCKER_HUB_SERVER: {"auth": auth}}}))
    assert await login.get(refresh=True) == RegistryCredentials("bob", "pw")
    written = write_docker_config(
        tmp_path / "out", registry="docker.io", credentials=RegistryCredentials("bob", "pw")
    )
    assert list(json.loads((written / "config.json").read_text())["auths"]) == [DOCKER_HUB_SERVER]
    assert docker_server_address("ghcr.io") == "ghcr.io"
