"""Where the registry login comes from, and reading it again when it may have changed.

:class:`RegistryLogin` holds the login of one registry: fixed (``registry_username`` /
``registry_password``), or read from a docker ``config.json`` as the docker client reads it
(docker/cli ``cli/config/credentials``): the per-registry helper of ``credHelpers``, else the
``credsStore`` helper, else the ``auths`` entry. Hosted registries hand out short-lived
secrets through helpers (ECR, Artifact Registry, ACR), so the login is read again when the
registry or its token server refuses it (:meth:`RegistryLogin.get` with ``refresh=True``) and
at most every ``refresh_interval`` seconds.

:func:`run_credential_helper` runs ``docker-credential-<name> get`` exactly as docker's client
does (docker/docker-credential-helpers ``client.Get``): the server address on stdin (no
newline), JSON ``{"ServerURL", "Username", "Secret"}`` on stdout; the username ``<token>``
means the secret is an identity token (an OAuth2 refresh token); an exit status other than 0
whose output says ``credentials not found in native keychain`` means "no login". It is our
own code because the protocol is this small and no maintained Python library runs helpers
asynchronously with a timeout. The secret is never logged nor part of an error message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .dockerconfig import (
    RegistryCredentials,
    docker_config_credentials,
    docker_server_address,
    load_docker_config,
)

__all__ = [
    "CredentialHelperError",
    "RegistryLogin",
    "config_helper",
    "run_credential_helper",
]

HELPER_PREFIX = "docker-credential-"
#: the username a helper answers when the secret is an identity token (docker/cli)
TOKEN_USERNAME = "<token>"  # noqa: S105 - a marker, not a password
#: what helpers print when they hold nothing for the server (docker-credential-helpers)
NOT_FOUND_MESSAGE = "credentials not found in native keychain"
_MAX_OUTPUT = 64 * 1024


class CredentialHelperError(Exception):
    """A credential helper could not be run or failed; the message holds no secret."""


def config_helper(config: Mapping[str, Any], registry: str) -> str | None:
    """The credential helper docker would ask for ``registry`` (docker/cli
    ``GetCredentialsStore``): ``credHelpers[registry]``, else ``credsStore``, else None.

    Args:
        config: a parsed docker ``config.json``.
        registry: ``host[:port]`` (Docker Hub's helper may be keyed by its server address).

    Returns:
        The helper's suffix (``ecr-login`` for ``docker-credential-ecr-login``), or None.
    """
    helpers = config.get("credHelpers")
    if isinstance(helpers, Mapping):
        for key in dict.fromkeys((registry, docker_server_address(registry))):
            if helpers.get(key):
                return str(helpers[key])
    store = config.get("credsStore")
    return str(store) if store else None


def _parse_helper_output(name: str, out: bytes) -> RegistryCredentials:
    try:
        data = json.loads(out)
        username, secret = str(data.get("Username") or ""), str(data["Secret"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CredentialHelperError(
            f"{HELPER_PREFIX}{name} get did not answer with JSON "
            '{"ServerURL", "Username", "Secret"}'
        ) from None
    if username == TOKEN_USERNAME:
        return RegistryCredentials("", "", identity_token=secret)
    return RegistryCredentials(username, secret)


async def run_credential_helper(
    name: str, server: str, *, time_limit: float, env: Mapping[str, str] | None = None
) -> RegistryCredentials | None:
    """``docker-credential-<name> get`` for ``server``, as docker runs it.

    Args:
        name: the helper's suffix (``credsStore`` / ``credHelpers`` value).
        server: the server address written to its stdin (``host[:port]``).
        time_limit: seconds before the helper (its process group) is killed.
        env: its environment (default: the service's).

    Returns:
        The login; None when the helper holds none for ``server``.

    Raises:
        CredentialHelperError: not on PATH, timed out, failed, or answered something else
            than the protocol's JSON (the message never holds the secret).
    """
    program = shutil.which(HELPER_PREFIX + name, path=(env or os.environ).get("PATH"))
    if program is None:
        raise CredentialHelperError(
            f"{HELPER_PREFIX}{name} is not on PATH: install it where the service runs (on its "
            "PATH), or change credsStore/credHelpers in the docker config (registry_config_file)"
        )
    proc = await asyncio.create_subprocess_exec(
        program,
        "get",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(server.encode()), time_limit)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise CredentialHelperError(
            f"{HELPER_PREFIX}{name} get did not answer within {time_limit:g} s"
        ) from None
    except asyncio.CancelledError:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
        raise
    if proc.returncode != 0:
        said = " ".join((out[:300] or err[:300]).decode("utf-8", "replace").split())
        if NOT_FOUND_MESSAGE in said:
            return None
        raise CredentialHelperError(
            f"{HELPER_PREFIX}{name} get failed with exit status {proc.returncode}: {said}"
        )
    return _parse_helper_output(name, out[:_MAX_OUTPUT])


class RegistryLogin:
    """The login of one registry, read again when refused and every ``refresh_interval`` s.

    Args:
        registry: ``host[:port]`` (the server address docker uses for it).
        fixed: a configured login (never read again); None: from ``config_path``.
        config_path: the docker ``config.json`` to read (None: anonymous unless ``fixed``).
        refresh_interval: seconds after which the login is read again before its next use;
            0: only when refused.
        helper_timeout: seconds a credential helper may take.
        current: the login already read (at start), if any.
        log: the logger to use.
    """

    def __init__(
        self,
        registry: str,
        *,
        fixed: RegistryCredentials | None = None,
        config_path: str | os.PathLike[str] | None = None,
        refresh_interval: float = 0.0,
        helper_timeout: float = 10.0,
        current: RegistryCredentials | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.registry = registry
        self.fixed = fixed
        self.config_path = Path(config_path) if config_path else None
        self.refresh_interval = max(0.0, float(refresh_interval))
        self.helper_timeout = helper_timeout
        self.log = log or logging.getLogger("repo2docker_service.registry")
        self._current = fixed or current
        self._read_at: float | None = time.monotonic() if (fixed or current) else None
        self._reading: asyncio.Task[RegistryCredentials | None] | None = None
        self.source = "registry_username" if fixed else "none"

    def __repr__(self) -> str:
        return f"RegistryLogin({self.registry!r}, source={self.source!r}, {self._current!r})"

    @classmethod
    def of(cls, credentials: RegistryCredentials | None, registry: str = "") -> RegistryLogin:
        """A login that is always ``credentials`` (None: anonymous)."""
        login = cls(registry, fixed=credentials)
        login.source = "fixed" if credentials else "none"
        return login

    @classmethod
    def from_settings(
        cls,
        registry: str,
        *,
        username: str,
        password: str,
        config_file: str,
        refresh_interval: float,
        helper_timeout: float,
        log: logging.Logger | None = None,
    ) -> RegistryLogin:
        """The login the service's settings name: ``username``/``password`` when a username
        is set, else the docker config ``config_file`` (default ``$DOCKER_CONFIG/config.json``
        or ``~/.docker/config.json``). Its ``auths`` entry is read now; a credential helper
        runs at the first :meth:`get`. Where the login comes from is logged.

        Raises:
            ValueError, OSError: the docker config exists but cannot be read as JSON.
        """
        if username:
            login = cls(registry, fixed=RegistryCredentials(username, password), log=log)
            return login
        path = Path(
            config_file
            or Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
        )
        config = load_docker_config(path)
        helper = config_helper(config, registry)
        login = cls(
            registry,
            config_path=path,
            refresh_interval=refresh_interval,
            helper_timeout=helper_timeout if helper_timeout > 0 else 10.0,
            current=None if helper else docker_config_credentials(config, registry),
            log=log,
        )
        login.source = f"{HELPER_PREFIX}{helper} ({path})" if helper else str(path)
        if login.current is not None or helper:
            login.log.info("Registry login for %s from %s", registry, login.source)
        elif config_file:
            login.log.warning("%s has no login for %s", path, registry)
        return login

    @property
    def current(self) -> RegistryCredentials | None:
        """The login as last read (None: anonymous or not read yet)."""
        return self._current

    @property
    def rereadable(self) -> bool:
        """Whether reading again may give another login (not a fixed one)."""
        return self.fixed is None and self.config_path is not None

    async def get(self, *, refresh: bool = False) -> RegistryCredentials | None:
        """The login to use now: read again when ``refresh``, never read, or older than
        ``refresh_interval`` seconds. Concurrent callers share one read.

        Raises:
            CredentialHelperError: the helper failed (the last login is kept).
            ValueError: the docker config is not readable JSON.
        """
        if not self.rereadable:
            return self._current
        stale = self._read_at is None or (
            self.refresh_interval > 0 and time.monotonic() - self._read_at > self.refresh_interval
        )
        if not (refresh or stale):
            return self._current
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self._read())
        return await asyncio.shield(self._reading)

    async def _read(self) -> RegistryCredentials | None:
        assert self.config_path is not None
        config = await asyncio.to_thread(load_docker_config, self.config_path)
        helper = config_helper(config, self.registry)
        if helper is not None:
            found = await run_credential_helper(
                helper, docker_server_address(self.registry), time_limit=self.helper_timeout
            )
            self.source = f"{HELPER_PREFIX}{helper} ({self.config_path})"
        else:
            found = docker_config_credentials(config, self.registry)
            self.source = str(self.config_path)
        if found != self._current:
            self.log.info("Registry login for %s read from %s", self.registry, self.source)
        self._current, self._read_at = found, time.monotonic()
        return found
