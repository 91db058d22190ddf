"""Repository sources: URL and ref validation, credentials for git, ref -> commit resolution.

The rooms of this package:

- :mod:`.urls`: :func:`validate_repo_url` (which repository URLs are accepted);
- :mod:`.refs`: :func:`validate_ref` and the rules that turn a name or an abbreviated commit
  into a commit, whichever way the remote's refs were listed;
- :mod:`.credentials`: :class:`GitCredentials`, handed to git only through the environment
  and to HTTP only in an ``Authorization`` header;
- :mod:`.lsremote`: :func:`resolve_ref` with ``git ls-remote`` (every scheme git speaks);
- :mod:`.smarthttp`: git's protocol v2 ``ls-refs`` over kept-alive HTTP connections;
- :mod:`.resolver`: :class:`RefResolver`, the one rule choosing between the two, and the
  commits signed push webhooks announce;
- :mod:`.branches` (which branches an unknown-ref error suggests), :mod:`.commits` (does the
  remote have a commit) and :mod:`.gitproc` (how git runs).
"""

from __future__ import annotations

from .credentials import GitCredentials
from .lsremote import BASE_ENV_KEYS, GIT_PROTOCOLS, git_env, resolve_ref
from .refs import (
    MAX_REF_LENGTH,
    is_abbreviated_commit,
    ref_not_found,
    resolve_prefix,
    validate_ref,
)
from .urls import SUPPORTED_SCHEMES, validate_repo_url

__all__ = [
    "BASE_ENV_KEYS",
    "GIT_PROTOCOLS",
    "MAX_REF_LENGTH",
    "SUPPORTED_SCHEMES",
    "GitCredentials",
    "git_env",
    "is_abbreviated_commit",
    "ref_not_found",
    "resolve_prefix",
    "resolve_ref",
    "validate_ref",
    "validate_repo_url",
]
