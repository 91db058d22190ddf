"""Config loading: traits, env defaults, config file, CLI aliases, --help-all."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets import Float, Integer, TraitError

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


def test_every_option_of_every_class_has_help_saying_what_0_means():
    """--help-all's classes, mixins included: help for all, and numbers say what 0 does."""
    bad = []
    for cls in Repo2DockerService().classes:
        for name, trait in cls.class_traits(config=True).items():
            text = (trait.help or "").strip()
            if not text or (isinstance(trait, (Integer, Float)) and not re.search(r"\b0\b", text)):
                bad.append(f"{cls.__name__}.{name}")
    assert bad == []


# an option out of its range, and the bound the message names
OUT_OF_RANGE = [
    ("--build-concurrency=0", "'build_concurrency'.*less than 1"),
    ("--max-queue=-1", "'max_queue'.*less than 0"),
    ("--build-timeout=-5", "'build_timeout'.*less than 0"),
    ("--Repo2DockerService.build_idle_timeout=-1", "'build_idle_timeout'.*less than 0"),
    ("--Repo2DockerService.history_limit=-3", "'history_limit'.*less than 0"),
    ("--Repo2DockerService.log_limit_bytes=-1", "'log_limit_bytes'.*less than 0"),
    ("--Repo2DockerService.build_rate_limit=-2", "'build_rate_limit'.*less than 0"),
    ("--Repo2DockerService.build_rate_period=-1", "'build_rate_period'.*less than 0"),
    ("--Repo2DockerService.default_cpu_limit=-1", "'default_cpu_limit'.*less than 0"),
    ("--Repo2DockerService.max_body_bytes=0", "'max_body_bytes'.*less than 1"),
    ("--Repo2DockerService.registry_cache_ttl=-1", "'registry_cache_ttl'.*less than 0"),
    ("--Repo2DockerService.registry_login_refresh=-1", "'registry_login_refresh'.*less than 0"),
    ("--port=70000", "'port'.*greater than 65535"),
]


@pytest.mark.parametrize("arg, message", OUT_OF_RANGE)
def test_out_of_range_option_stops_with_its_name(make_app, capfd, arg, message):
    """main before: these started (or died in a traceback saying 'max_queue and timeouts')."""
    with pytest.raises(SystemExit) as stop:
        make_app([arg])
    assert stop.value.code == 1
    err = capfd.readouterr().err
    assert re.search(message, err), err


@pytest.mark.parametrize(
    "arg, message",
    [
        ("--Readiness.cache_seconds=-1", "'cache_seconds'.*less than 0"),
        ("--Readiness.check_timeout=0", "'check_timeout'.*less than 0.001"),
        ("--RefResolver.keepalive_timeout=-1", "'keepalive_timeout'.*less than 0"),
        ("--ImageLifecycle.keep_tags=-1", "keep_tags and prune_interval must be 0 or more"),
    ],
)
def test_out_of_range_option_of_a_part_stops_the_service(tmp_path, arg, message):
    """Options of the parts made at start: one critical line and exit 1, no traceback."""
    env = {"PATH": "/usr/bin:/bin", "JUPYTERHUB_API_TOKEN": "s3cret-token-value"}
    proc = subprocess.run(
        [sys.executable, "-m", "repo2docker_service", "--port=1", arg],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 1, proc.stderr
    assert re.search(message, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr
    assert "s3cret-token-value" not in proc.stderr + proc.stdout


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
        with pytest.raises(TraitError, match=r"'port'.* (less than 1|greater than 65535)"):
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


@pytest.mark.parametrize(("value", "expected"), [("3.5", 3.5), ("0", 10.0), ("-1", 10.0)])
async def test_registry_timeout_reaches_the_registry_client(make_app, value, expected):
    """registry_timeout bounds each registry request and how long a listing waits; 0 or
    less is the 10 s default (its help says so)."""
    app = make_app(
        [f"--Repo2DockerService.registry_timeout={value}", "--registry-url=127.0.0.1:5999"]
    )
    app.namer = app.make_namer()
    catalog = app.make_catalog(None)
    try:
        assert catalog.client.timeout == expected
        assert catalog.listing.client is catalog.client
    finally:
        await catalog.close()
