"""Credentials for a private repository, handed to git only through the environment.

:class:`GitCredentials` never shows its password (``repr``), and :meth:`GitCredentials.git_env`
passes it to git through two environment variables read by an inline credential helper:
never in argv, the URL, or the helper's own text. ``sources`` re-exports the class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["GitCredentials"]

_USERNAME_VAR = "R2DS_GIT_USERNAME"
_PASSWORD_VAR = "R2DS_GIT_PASSWORD"  # noqa: S105 - a variable name, not a secret
# the helper only names the variables; git runs it with `sh -c`, and ignores
# `store`/`erase` so nothing is written anywhere
_CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || return 0; '
    f'printf \'%s\\n\' "username=${{{_USERNAME_VAR}}}" "password=${{{_PASSWORD_VAR}}}"; '
    "}; f"
)


@dataclass(frozen=True)
class GitCredentials:
    """A username and password (or token) for a private repository.

    Held in memory for one build; ``repr``/``str`` never show the password.

    Attributes:
        username: user name (for token-only hosts, whatever the host expects,
            e.g. ``x-access-token`` or ``oauth2``).
        password: password or access token.

    Raises:
        ValueError: (on creation) a value is not a string or contains a newline or NUL, which
            git's credential protocol cannot carry.
    """

    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        for label, value in (("username", self.username), ("password", self.password)):
            if not isinstance(value, str):
                raise ValueError(f"credential {label} must be a string")
            if "\n" in value or "\r" in value or "\0" in value:
                raise ValueError(f"credential {label} must not contain newlines or NUL")

    def __repr__(self) -> str:
        return f"GitCredentials(username={self.username!r}, password='***')"

    def git_env(self, *, url: str | None = None) -> dict[str, str]:
        """Environment variables that hand these credentials to git.

        ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n`` first clear any
        configured credential helpers (so none stores the secret) and then set an inline
        helper that prints ``username=$R2DS_GIT_USERNAME`` and ``password=$R2DS_GIT_PASSWORD``;
        the values themselves travel only in those two variables. Prompts are disabled.

        Args:
            url: if given, the helper is configured for this URL's ``scheme://host[:port]``
                only, so a redirect to another host never receives the credentials.

        Returns:
            Variables to merge into a subprocess environment (they own ``GIT_CONFIG_*``).
        """
        key = "credential.helper"
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme and parts.netloc:
                hostport = parts.netloc.rpartition("@")[2]
                key = f"credential.{parts.scheme}://{hostport}.helper"
        return {
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "credential.helper",
            "GIT_CONFIG_VALUE_0": "",
            "GIT_CONFIG_KEY_1": key,
            "GIT_CONFIG_VALUE_1": _CREDENTIAL_HELPER,
            _USERNAME_VAR: self.username,
            _PASSWORD_VAR: self.password,
            "GIT_TERMINAL_PROMPT": "0",
        }
