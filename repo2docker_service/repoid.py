"""Which repository URLs name the same repository: one identity, used everywhere.

Webhooks (``webhooks.matches``), launch links (``images.catalog.find_existing``), the
same-name check of a build request (``builds.names``) and the UI (``static/js/validate.js``,
``repoKey``, with the hosts from ``api/info``) compare repositories by
:meth:`RepoIdentity.key`, never by the URL text.

The key of a URL keeps its host (lowercased, without a user name and without the default
port of its scheme) and its path, and drops:

- the scheme: ``https://``, ``http://``, ``git://`` and ``ssh://`` (and the scp form
  ``git@host:owner/repo``) of one host name one repository;
- a user name, the query and the fragment;
- repeated slashes, trailing slashes and one ``.git`` suffix (``owner/repo.git/``);
- the case of the path, on hosts whose owner and repository names are case-insensitive.

Case, per host (the ``case_insensitive_repo_hosts`` setting lists them):

- ``github.com``: owner and repository names are case-insensitive (``Org/Repo`` and
  ``org/repo`` are one repository). In the default list.
- ``gitlab.com`` and self-hosted GitLab: group, subgroup and project paths are
  case-insensitive. gitlab.com is in the default list; add your own GitLab's host.
- Gitea, Forgejo (``codeberg.org``) and Bitbucket Cloud: case-insensitive too; add their hosts.
- Any other host (a plain git HTTP server, ``git-http-backend``, a file system path) is
  case-sensitive: two spellings are two repositories, so it is never folded by default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["DEFAULT_CASE_INSENSITIVE_HOSTS", "RepoIdentity"]

#: Forges whose owner/name are case-insensitive, folded by default (see the module doc).
DEFAULT_CASE_INSENSITIVE_HOSTS = ("github.com", "gitlab.com")

_DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22, "git+ssh": 22, "ssh+git": 22, "git": 9418}
# scp-like `user@host:path` (git's own short form for ssh); never a `scheme://` URL
_SCP_RE = re.compile(r"(?:[^@/:]+@)?(?P<host>[^@/:\[\]]+):(?!//)(?P<path>.*)")


def _clean_path(path: str) -> str:
    path = "/" + re.sub(r"/{2,}", "/", path).strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")].rstrip("/")
    return path or "/"


@dataclass(frozen=True, slots=True)
class RepoIdentity:
    """The identity rule: which hosts fold case (see the module doc for every other part).

    Attributes:
        case_insensitive_hosts: host names (lowercase, no port) whose paths are compared
            without case.
    """

    case_insensitive_hosts: frozenset[str] = frozenset(DEFAULT_CASE_INSENSITIVE_HOSTS)

    @classmethod
    def from_hosts(cls, hosts: Iterable[str]) -> RepoIdentity:
        """The rule for these host names (compared lowercase, whitespace stripped)."""
        return cls(frozenset(h.strip().lower() for h in hosts if h.strip()))

    def key(self, url: str) -> str:
        """The identity of the repository ``url`` names: ``host[:port]/path`` or ``file:/path``.

        Args:
            url: a repository URL (``scheme://...`` or scp-like ``user@host:path``); it
                need not be validated (unparsable text is its own key).

        Returns:
            Equal strings for URLs that name the same repository; never credentials.
        """
        text = url.strip()
        if "://" not in text:
            scp = _SCP_RE.fullmatch(text)
            if scp is None:
                return text
            return self._join(scp.group("host").lower(), "", scp.group("path"))
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            return text
        scheme = parts.scheme.lower()
        if scheme == "file":
            return "file:" + _clean_path(parts.path)
        host = (parts.hostname or "").lower()
        if ":" in host:
            host = f"[{host}]"
        shown_port = f":{port}" if port is not None and port != _DEFAULT_PORTS.get(scheme) else ""
        return self._join(host, shown_port, parts.path)

    def _join(self, host: str, port: str, path: str) -> str:
        path = _clean_path(path)
        if host in self.case_insensitive_hosts:
            path = path.lower()
        return f"{host}{port}{path}"

    def same(self, a: str, b: str) -> bool:
        """Whether the URLs ``a`` and ``b`` name the same repository (see :meth:`key`)."""
        return self.key(a) == self.key(b)
