"""Docker client configuration (``config.json``): registry logins read and written.

The registry catalog reads its login from a docker ``config.json`` when none is configured
(:func:`load_docker_config`, :func:`docker_config_credentials`); a build that pushes gets
its own config directory with the login merged in (:func:`write_docker_config`), so no
password is ever part of an argv. Only ``auths`` entries are used: a base64 ``auth``
(``user:password``), ``username``/``password`` or an ``identitytoken``. Credential helpers
(``credsStore``, ``credHelpers``) are run by :mod:`.registrylogin`.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DOCKER_HUB_SERVER",
    "RegistryCredentials",
    "docker_config_credentials",
    "docker_server_address",
    "load_docker_config",
    "write_docker_config",
]


@dataclass(frozen=True)
class RegistryCredentials:
    """A registry username and password, or an identity token; ``repr`` shows no secret.

    Attributes:
        username: the login name ("" with an identity token).
        password: the password or access token.
        identity_token: an OAuth2 refresh token (docker's ``identitytoken``, a credential
            helper's ``<token>`` username): exchanged at the token realm by a POST
            (distribution's OAuth2 token flow) instead of basic auth.
    """

    username: str
    password: str = field(repr=False)
    identity_token: str = field(default="", repr=False)

    def __repr__(self) -> str:
        kind = "identity_token" if self.identity_token else "password"
        return f"RegistryCredentials(username={self.username!r}, {kind}='***')"

    def auths_entry(self) -> dict[str, str]:
        """This login as a docker ``config.json`` ``auths`` entry."""
        if self.identity_token:
            return {"identitytoken": self.identity_token}
        return {"auth": self.basic_token()}

    def basic_header(self) -> str:
        """The ``Authorization: Basic ...`` value."""
        return "Basic " + self.basic_token()

    def basic_token(self) -> str:
        """base64 of ``username:password`` (a config.json ``auth`` entry, basic auth)."""
        raw = f"{self.username}:{self.password}".encode()
        return base64.b64encode(raw).decode()


def load_docker_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a docker ``config.json``.

    Returns:
        The parsed object; ``{}`` when the file does not exist.

    Raises:
        ValueError: the file exists but is not a JSON object.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{p} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p} does not hold a JSON object")
    return data


#: The server address docker files Docker Hub's login under (docker/cli's ``IndexServer``).
DOCKER_HUB_SERVER = "https://index.docker.io/v1/"
_DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


def docker_server_address(registry: str) -> str:
    """The key docker files the login of ``registry`` under (``auths``, credential helpers'
    server address): :data:`DOCKER_HUB_SERVER` for Docker Hub, else ``host[:port]``."""
    return DOCKER_HUB_SERVER if registry in _DOCKER_HUB_NAMES else registry


def _auth_keys(registry: str) -> list[str]:
    """Keys a docker config may use for ``registry`` (as ``docker login`` writes them)."""
    hub = [DOCKER_HUB_SERVER, "index.docker.io"] if registry in _DOCKER_HUB_NAMES else []
    return [
        *hub,
        registry,
        f"https://{registry}",
        f"http://{registry}",
        f"https://{registry}/v2/",
        f"http://{registry}/v2/",
        f"https://{registry}/v1/",
    ]


def _entry_credentials(key: str, entry: Mapping[str, Any]) -> RegistryCredentials | None:
    """The login of one ``auths`` entry, or None when it holds none."""
    if entry.get("auth"):
        try:
            raw = base64.b64decode(str(entry["auth"]), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            raise ValueError(
                f"docker config entry {key!r}: 'auth' is not base64 of user:password"
            ) from None
        user, sep, password = raw.partition(":")
        if not sep:
            raise ValueError(f"docker config entry {key!r}: 'auth' has no ':'")
        return RegistryCredentials(user, password)
    if entry.get("username") and entry.get("password"):
        return RegistryCredentials(str(entry["username"]), str(entry["password"]))
    if entry.get("identitytoken"):
        return RegistryCredentials("", "", identity_token=str(entry["identitytoken"]))
    return None


def docker_config_credentials(
    config: Mapping[str, Any], registry: str
) -> RegistryCredentials | None:
    """Credentials for ``registry`` from a parsed docker ``config.json``.

    Looks in ``auths`` under ``host[:port]`` and its ``http(s)://`` forms, taking a base64
    ``auth`` (``user:password``), ``username``/``password`` or an ``identitytoken`` (an
    OAuth2 refresh token). Credential helpers are :mod:`.registrylogin`'s.

    Args:
        config: the parsed file (see :func:`load_docker_config`).
        registry: ``host[:port]``.

    Returns:
        The credentials, or None when the file has none for that registry.

    Raises:
        ValueError: the entry exists but its ``auth`` is not base64 of ``user:password``.
    """
    auths = config.get("auths")
    if not isinstance(auths, Mapping):
        return None
    for key in _auth_keys(registry):
        entry = auths.get(key)
        if not isinstance(entry, Mapping):
            continue
        found = _entry_credentials(key, entry)
        if found is not None:
            return found
    return None


def _with_login(
    config: dict[str, Any], *, registry: str, credentials: RegistryCredentials
) -> dict[str, Any]:
    """``config`` with ``credentials`` as the only login for ``registry``.

    Other entries for the registry go, and so does a credential store or helper that
    would be asked instead of the ``auths`` entry.
    """
    auths = dict(config.get("auths") or {})
    for key in _auth_keys(registry):
        auths.pop(key, None)
    auths[docker_server_address(registry)] = credentials.auths_entry()
    config["auths"] = auths
    config.pop("credsStore", None)
    helpers = dict(config.get("credHelpers") or {})
    helpers.pop(registry, None)
    if helpers:
        config["credHelpers"] = helpers
    else:
        config.pop("credHelpers", None)
    return config


def _link_client_dirs(base: Path, target: Path) -> None:
    """Link ``base``'s ``buildx``, ``cli-plugins`` and ``contexts`` into ``target``."""
    for sub in ("buildx", "cli-plugins", "contexts"):
        source = base / sub
        link = target / sub
        if source.is_dir() and not link.exists():
            link.symlink_to(source, target_is_directory=True)


def write_docker_config(
    directory: str | os.PathLike[str],
    *,
    registry: str,
    credentials: RegistryCredentials,
    base_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write a docker client config directory that logs in to ``registry``.

    Used for one build's ``DOCKER_CONFIG``: the ``docker``/``buildx`` client that pushes
    reads the login from it, so no ``docker login`` (and no password in any argv) is
    needed. The base config (``base_dir/config.json``, default ``$DOCKER_CONFIG`` or
    ``~/.docker``) is copied with the login merged in; its ``buildx`` and ``cli-plugins``
    directories are linked so buildx still finds its builders (``BUILDX_BUILDER``).
    ``config.json`` is created with mode 0600 in a directory of mode 0700.

    Args:
        directory: where to write (created if missing).
        registry: ``host[:port]``.
        credentials: the login.
        base_dir: the docker config directory to start from.

    Returns:
        ``directory`` as a Path (set ``DOCKER_CONFIG`` to it).
    """
    target = Path(directory)
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    base = Path(base_dir or os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    try:
        config = load_docker_config(base / "config.json")
    except ValueError:
        config = {}
    config = _with_login(config, registry=registry, credentials=credentials)
    path = target / "config.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f)
    _link_client_dirs(base, target)
    return target
