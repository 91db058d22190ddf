"""Registry mode and DockerExecutor wiring without real parts: which catalog and executor the
app builds, where the registry login comes from, and what a builder container's
configuration holds (never a secret)."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from repo2docker_service.app import Repo2DockerService
from repo2docker_service.builds.executors import DockerExecutor, LocalExecutor
from repo2docker_service.builds.executors.argv import Repo2DockerArgv
from repo2docker_service.builds.executors.builder import (
    BUILDER_CONFIG_PATH,
    LABEL_BUILDER,
    LABEL_IMAGE,
    LABEL_INSTANCE,
    build_from_container,
)
from repo2docker_service.builds.model import Build, BuildState
from repo2docker_service.images.docker import DockerCatalog
from repo2docker_service.images.dockerconfig import RegistryCredentials
from repo2docker_service.images.registry.catalog import RegistryCatalog
from repo2docker_service.sources import GitCredentials

SECRET = "tok-" + "9f8e7d6c5b4a"


@pytest.fixture
def make_app(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for var in ("REPO2DOCKER_SERVICE_CONFIG", "REPO2DOCKER_SERVICE_REGISTRY_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))

    def make(argv=(), **env):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        Repo2DockerService.clear_instance()
        app = Repo2DockerService()
        app.initialize(list(argv))
        app.init_components()
        return app

    yield make
    Repo2DockerService.clear_instance()


def test_local_engine_without_registry(make_app):
    app = make_app()
    assert isinstance(app.catalog, DockerCatalog)
    assert isinstance(app.executor, LocalExecutor) and app.manager.push is False


def test_registry_mode_with_password_from_env(make_app):
    app = make_app(
        [
            "--registry-url=registry.example.org:5000",
            "--Repo2DockerService.registry_username=pusher",
        ],
        REPO2DOCKER_SERVICE_REGISTRY_PASSWORD=SECRET,
    )
    assert isinstance(app.catalog, RegistryCatalog) and app.manager.push is True
    assert app.catalog.client.api_url == "https://registry.example.org:5000"
    assert app.catalog.client.credentials == RegistryCredentials("pusher", SECRET)
    assert app.executor.registry_credentials == RegistryCredentials("pusher", SECRET)
    assert SECRET not in repr(app.catalog.client) + repr(app.executor.registry_credentials)


def test_registry_login_from_docker_config(make_app, tmp_path):
    path = tmp_path / "config.json"
    auth = base64.b64encode(f"bob:{SECRET}".encode()).decode()
    path.write_text(json.dumps({"auths": {"https://127.0.0.1:5000": {"auth": auth}}}))
    app = make_app(
        [
            "--registry-url=127.0.0.1:5000",
            f"--Repo2DockerService.registry_config_file={path}",
            "--Repo2DockerService.registry_api_url=http://registry.internal:5000/",
            "--Repo2DockerService.registry_cache_ttl=7",
        ]
    )
    assert app.catalog.client.credentials == RegistryCredentials("bob", SECRET)
    assert app.catalog.client.api_url == "http://registry.internal:5000"
    assert app.catalog.cache_ttl == 7


def test_unreadable_docker_config_stops_the_app(make_app, tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(SystemExit):
        make_app(
            ["--registry-url=127.0.0.1:5000", f"--Repo2DockerService.registry_config_file={path}"]
        )


def test_docker_executor_from_config(make_app):
    app = make_app(
        [
            "--Repo2DockerService.executor_class="
            "repo2docker_service.builds.executors.DockerExecutor",
            "--DockerExecutor.builder_image=local/r2d-builder:1",
            "--DockerExecutor.builder_cpu_limit=1.5",
            "--DockerExecutor.builder_memory_limit=2G",
            "--DockerExecutor.builder_network=bridge",
        ],
        DOCKER_HOST="tcp://127.0.0.1:2375",
    )
    ex = app.executor
    assert isinstance(ex, DockerExecutor) and ex.adoptable
    assert ex.builder_image == "local/r2d-builder:1" and ex.argv.command == ("repo2docker",)
    assert (ex.spec.cpu_limit, ex.spec.memory_limit, ex.spec.network) == (1.5, 2 << 30, "bridge")
    assert ex.docker_host == "tcp://127.0.0.1:2375"
    assert ex.instance == "repo2docker:/r2d-"


def test_executor_options_from_the_config_file(make_app, tmp_path):
    (tmp_path / "repo2docker_service_config.py").write_text(
        "c.Executor.repo2docker_extra_args = ['--Repo2Docker.platform=linux/amd64']\n"
        "c.Executor.build_user_id = 1001\n"
        "c.LocalExecutor.repo2docker_command = ['/opt/r2d']\n"
        "c.DockerExecutor.builder_image = 'not/used:1'\n"
    )
    app = make_app(["--repo2docker-config=/etc/r2d.py"])
    assert isinstance(app.executor, LocalExecutor) and app.executor.log is app.log
    assert app.executor.argv == Repo2DockerArgv(
        command=("/opt/r2d",),
        user_id=1001,
        extra_args=("--Repo2Docker.platform=linux/amd64",),
        config_path="/etc/r2d.py",
    )


@pytest.mark.parametrize(
    "option",
    [
        "--DockerExecutor.builder_memory_limit=lots",
        "--DockerExecutor.builder_image=",
        "--Executor.build_user_id=0",
    ],
)
def test_invalid_executor_options_stop_the_app(make_app, option, caplog):
    docker = (
        "--Repo2DockerService.executor_class=repo2docker_service.builds.executors.DockerExecutor"
    )
    with pytest.raises(SystemExit):
        make_app([docker, option], DOCKER_HOST="tcp://127.0.0.1:2375")


def make_build() -> Build:
    return Build(
        owner="alice",
        owner_slug="alice",
        name="env",
        repo="https://git.example.org/alice/private.git",
        ref="main",
        commit="c" * 40,
        image="registry.example.org/r2d-alice/env:cccccccccccc",
        latest_image="registry.example.org/r2d-alice/env:latest",
        hints={"cpu": "2"},
    )


def test_builder_container_config_holds_no_secret(tmp_path):
    config_file = tmp_path / "r2d_config.py"
    config_file.write_text("c = get_config()\n")
    ex = DockerExecutor(
        builder_image="local/r2d-builder:1",
        docker_host="unix:///run/custom/docker.sock",
        repo2docker_config=config_file,
        registry="registry.example.org",
        registry_credentials=RegistryCredentials("pusher", SECRET + "-registry"),
        instance="svc:1",
        builder_cpu_limit=2,
        builder_memory_limit="1G",
    )
    build = make_build()
    creds = GitCredentials("alice", SECRET)
    argv = ex.command_line(build, push=True, cache_from=[], labels=build.image_labels().to_labels())
    assert BUILDER_CONFIG_PATH in argv and str(config_file) not in argv
    assert argv[-2:] == ["--", build.repo] and "--push" in argv
    config = ex.container_config(
        build,
        argv=argv,
        labels=build.image_labels().to_labels(),
        credentials=creds,
        secrets_on_stdin=True,
    )
    text = json.dumps(config)
    assert SECRET not in text and "R2DS_SECRETS_ON_STDIN=1" in config["Env"]
    assert config["HostConfig"]["Binds"] == ["/run/custom/docker.sock:/var/run/docker.sock"]
    assert config["HostConfig"]["NanoCpus"] == 2_000_000_000
    assert config["HostConfig"]["Memory"] == 1 << 30
    assert config["HostConfig"]["NetworkMode"] == "host"
    assert config["OpenStdin"] and config["StdinOnce"]
    labels = config["Labels"]
    assert labels[LABEL_BUILDER] == "true" and labels[LABEL_INSTANCE] == "svc:1"
    assert labels[LABEL_IMAGE] == build.image
    # the secrets travel on stdin: git user, git password, base64 docker config
    payload = asyncio.run(ex._secrets(push=True, credentials=creds)).decode().split("\n")
    assert payload[:2] == ["alice", SECRET]
    docker_config = json.loads(base64.b64decode(payload[2]))
    auth = base64.b64decode(docker_config["auths"]["registry.example.org"]["auth"]).decode()
    assert auth == f"pusher:{SECRET}-registry"
    assert asyncio.run(ex._secrets(push=False, credentials=None)) is None


def test_tcp_engine_is_passed_on():
    ex = DockerExecutor(builder_image="b", docker_host="tcp://127.0.0.1:23750")
    build = make_build()
    config = ex.container_config(
        build, argv=["repo2docker"], labels={}, credentials=None, secrets_on_stdin=False
    )
    assert "DOCKER_HOST=tcp://127.0.0.1:23750" in config["Env"]
    assert config["HostConfig"]["Binds"] == [] and "OpenStdin" not in config


def test_build_is_rebuilt_from_container_labels():
    build = make_build()
    build.add_event("phase", {"phase": "queued", "position": None, "message": "queued"})
    build.set_state(BuildState.BUILDING)
    ex = DockerExecutor(builder_image="b", instance="svc:1")
    labels = ex.container_labels(build, build.image_labels().to_labels())
    info = {"Config": {"Labels": labels}, "State": {"StartedAt": "2026-11-23T10:00:00.123456789Z"}}
    again = build_from_container(info)
    assert again is not None and again.id == build.id
    for attr in ("owner", "owner_slug", "name", "repo", "ref", "commit", "image", "latest_image"):
        assert getattr(again, attr) == getattr(build, attr), attr
    assert again.hints == {"cpu": "2"} and again.credentials is None
    assert again.started.isoformat().startswith("2026-11-23T10:00:00.123456")
    # the container's first line keeps its event id: the adopted build's first event (its
    # building phase) takes the id before it
    assert labels["repo2docker-service.first-event-id"] == str(build.last_event_id + 1)
    again.set_state(BuildState.BUILDING)
    assert again.last_event_id == build.last_event_id == 2
    del labels[LABEL_IMAGE]
    assert build_from_container({"Config": {"Labels": labels}}) is None
