"""Config loading: traits, env defaults, config file, CLI aliases, --help-all."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets import TraitError

from repo2docker_service.app import Repo2DockerService
from repo2docker_service.config import DEFAULT_ACCESS_HELP


@pytest.fixture
def make_app(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for var in (
        "JUPYTERHUB_SERVICE_PREFIX",
        "JUPYTERHUB_SERVICE_URL",
        "JUPYTERHUB_SERVICE_NAME",
        "REPO2DOCKER_SERVICE_CONFIG",
    ):
        monkeypatch.delenv(var, raising=False)

    def make(argv=(), **env):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        Repo2DockerService.clear_instance()
        app = Repo2DockerService()
        app.initialize(list(argv))
        return app

    yield make
    Repo2DockerService.clear_instance()


def test_defaults_without_hub_env(make_app):
    app = make_app()
    assert app.ip == "127.0.0.1"
    assert app.port == 8585
    assert app.base_url == "/services/repo2docker/"
    assert app.service_name == "repo2docker"
    assert app.allowed_repo_schemes == ["https"]
    assert app.scope_prefix == "custom:repo2docker:"


def test_hub_environment_sets_prefix_and_address(make_app):
    app = make_app(
        JUPYTERHUB_SERVICE_PREFIX="/services/envs/",
        JUPYTERHUB_SERVICE_URL="http://127.0.0.1:9911",
        JUPYTERHUB_SERVICE_NAME="envs",
    )
    assert app.base_url == "/services/envs/"
    assert app.port == 9911
    assert app.ip == "127.0.0.1"
    assert app.service_name == "envs"


def test_config_file_is_loaded(make_app, tmp_path):
    cfg = tmp_path / "repo2docker_service_config.py"
    cfg.write_text(
        "c.Repo2DockerService.build_concurrency = 5\n"
        "c.Repo2DockerService.allowed_repo_schemes = ['https', 'http']\n"
        "c.Repo2DockerService.base_url = 'x/y'\n"
    )
    app = make_app()
    assert app.build_concurrency == 5
    assert app.allowed_repo_schemes == ["https", "http"]
    assert app.base_url == "/x/y/"  # normalised to /.../


def test_config_file_from_env_and_cli_overrides(make_app, tmp_path):
    cfg = tmp_path / "elsewhere.py"
    cfg.write_text("c.Repo2DockerService.max_queue = 3\nc.Repo2DockerService.port = 1234\n")
    app = make_app(["--port", "4321"], REPO2DOCKER_SERVICE_CONFIG=str(cfg))
    assert app.max_queue == 3
    assert app.port == 4321  # the command line wins over the file


def test_explicit_missing_config_file_is_an_error(make_app, tmp_path):
    with pytest.raises(SystemExit):
        make_app(["--config", str(tmp_path / "missing.py")])


def test_invalid_template_is_rejected(make_app):
    app = make_app()
    with pytest.raises(Exception, match="owner"):
        app.image_name_template = "{registry}{name}:{tag}"


def test_cookie_secret_derived_from_token_is_stable(make_app):
    app = make_app(JUPYTERHUB_API_TOKEN="abc")
    assert app.cookie_secret() == app.cookie_secret()
    assert len(app.cookie_secret()) == 32


def test_every_trait_has_help():
    missing = [
        name
        for name, trait in Repo2DockerService.class_own_traits(config=True).items()
        if not (trait.help or "").strip()
    ]
    assert missing == []


def test_help_all_lists_options():
    out = subprocess.run(
        [sys.executable, "-m", "repo2docker_service", "--help-all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in (
        "--Repo2DockerService.build_timeout",
        "--Repo2DockerService.registry_url",
        "--Repo2DockerService.allowed_repo_schemes",
        "--port",
    ):
        assert option in out
    assert "Seconds a build may run in total" in out


@pytest.mark.parametrize(
    "value, expected",
    [(None, True), ("1", True), ("0", False), ("false", False), ("OFF", False), ("yes", True)],
)
def test_hub_admins_are_admins_from_env(make_app, monkeypatch, value, expected):
    monkeypatch.delenv("REPO2DOCKER_SERVICE_HUB_ADMINS_ARE_ADMINS", raising=False)
    env = {} if value is None else {"REPO2DOCKER_SERVICE_HUB_ADMINS_ARE_ADMINS": value}
    app = make_app(**env)
    assert app.hub_admins_are_admins is expected


@pytest.mark.parametrize(
    "raw, expected_view",
    [
        ('{"view": "the group staff in Keycloak"}', "the group staff in Keycloak"),
        ("not json", "the role 'repo2docker-viewer'"),  # falls back to the default
        ('["a list"]', "the role 'repo2docker-viewer'"),
        ('{"other": "x"}', "the role 'repo2docker-viewer'"),  # unknown keys dropped
    ],
)
def test_access_help_from_env(make_app, raw, expected_view):
    app = make_app(REPO2DOCKER_SERVICE_ACCESS_HELP=raw)
    help_ = {**DEFAULT_ACCESS_HELP, **app.access_help}  # as make_services merges them
    assert help_["view"].startswith(expected_view)
    assert set(help_) == {"view", "build", "admin"}


def test_port_out_of_range_is_refused():
    for bad in (0, -1, 65536):
        with pytest.raises(TraitError, match="1 to 65535"):
            Repo2DockerService(port=bad)
    assert Repo2DockerService(port=8586).port == 8586


def json_logging_config() -> str:
    """The python block of docs/troubleshooting.md's "JSON logs" section."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md").read_text()
    section = doc[doc.index("## JSON logs") :]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_json_logs_through_logging_config(make_app, tmp_path, capfd):
    """docs/troubleshooting.md's JSON logging config: each line is one JSON object, and
    credentials are still redacted."""
    config = tmp_path / "json_logging.py"
    config.write_text(json_logging_config())
    app = make_app(["--config", str(config)])
    capfd.readouterr()
    app.log.warning("cannot clone %s", "https://user:s3cret@git.example.org/r.git")
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["levelname"] == "WARNING"
    assert record["name"] == "Repo2DockerService"
    assert record["message"].startswith("cannot clone https://")
    assert "s3cret" not in lines[0]
