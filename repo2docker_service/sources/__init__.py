"""Repository sources: URL and ref validation, credentials for git, ref -> commit resolution.

Guarantees:

- :func:`validate_repo_url` accepts only ``scheme://host/path`` URLs whose scheme is allowed
  (``https`` by default), without credentials, whitespace, control characters, a leading
  ``-`` or git's ``transport::address`` form (``ext::`` runs commands).
- :func:`validate_ref` accepts ``HEAD``, hex commit SHAs and names obeying
  ``git check-ref-format`` (one-level names allowed); a ref can never look like an option.
- Credentials (:class:`GitCredentials`, from ``sources.credentials``) reach git only through
  environment variables read by an inline credential helper: never in argv, the URL, or the
  helper's own text.
- :func:`resolve_ref` runs ``git ls-remote`` as an argv list with the positionals after
  ``--``, a per-process environment (``os.environ`` is never modified), no prompts, only the
  plain git transports, and kills its whole process group on timeout or cancellation.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from ..errors import InvalidInput, SourceError
from ..redact import percent_decoded
from .branches import parse_heads, suggest_branches
from .credentials import GitCredentials as GitCredentials  # re-exported
from .gitproc import run_git, stderr_reason

#: Schemes :func:`validate_repo_url` can be told to allow.
SUPPORTED_SCHEMES = frozenset({"https", "http", "git", "ssh", "git+ssh", "ssh+git", "file"})

#: Transports git may use in :func:`resolve_ref` (``GIT_ALLOW_PROTOCOL``); no ``ext``, no
#: remote helpers.
GIT_PROTOCOLS = ("file", "git", "http", "https", "ssh")

#: Longest ref :func:`validate_ref` accepts.
MAX_REF_LENGTH = 255

#: Variables copied from ``os.environ`` (when present) into git's environment by default.
BASE_ENV_KEYS = (
    *("PATH", "HOME"),
    *("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"),
    *("GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "SSL_CERT_FILE", "SSL_CERT_DIR"),
)

_SSH_SCHEMES = frozenset({"ssh", "git+ssh", "ssh+git"})
_TRANSPORT_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*::")
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_HOSTNAME_RE = re.compile(r"[\w.-]+")
_IPV6_RE = re.compile(r"[0-9a-f:.]+")
_FULL_SHA_RE = re.compile(r"[0-9a-fA-F]{40}")
_SHORT_SHA_RE = re.compile(r"[0-9a-fA-F]{7,40}")
_REF_FORBIDDEN_CHARS = frozenset(" ~^:?*[\\")


def _is_control(c: str) -> bool:
    return unicodedata.category(c) in ("Cc", "Cf")


def _is_unprintable(c: str) -> bool:
    return c.isspace() or _is_control(c)


def _shorten(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# repository URLs


def _allowed_scheme_set(allowed_schemes: Iterable[str]) -> set[str]:
    """The configured schemes, lowercased; ValueError for one outside SUPPORTED_SCHEMES."""
    allowed = {s.lower() for s in allowed_schemes}
    unsupported = allowed - SUPPORTED_SCHEMES
    if unsupported:
        raise ValueError(
            f"unsupported repository schemes {sorted(unsupported)};"
            f" supported: {', '.join(sorted(SUPPORTED_SCHEMES))}"
        )
    return allowed


def _refuse_unsafe_text(url: object, max_length: int) -> str:
    """Refuse, before parsing, what git or a shell could misread (options, ``ext::``, ...)."""
    if not isinstance(url, str) or not url:
        raise InvalidInput("repo must be a non-empty URL string")
    if len(url) > max_length:
        raise InvalidInput(f"repo URL is too long: {len(url)} characters, at most {max_length}")
    if any(_is_unprintable(c) for c in url):
        raise InvalidInput("repo URL must not contain whitespace or control characters")
    if any(_is_control(c) for c in unquote(url)):
        raise InvalidInput("repo URL must not contain percent-encoded control characters")
    if "\\" in url:
        raise InvalidInput("repo URL must not contain backslashes")
    if url.startswith("-"):
        raise InvalidInput("repo URL must not start with '-'")
    if _TRANSPORT_RE.match(url):
        raise InvalidInput(
            "git's 'transport::address' syntax (such as ext::) is not allowed;"
            " use a URL like https://host/owner/repo"
        )
    return url


def _allowed_scheme(url: str, allowed: set[str]) -> str:
    """The lowercased scheme of a ``scheme://`` URL, if it is allowed."""
    allowed_text = ", ".join(sorted(allowed)) or "none"
    scheme_match = _SCHEME_RE.match(url)
    if scheme_match is None:
        raise InvalidInput(
            f"repo must be a URL like https://host/owner/repo (allowed schemes: {allowed_text});"
            " scp-style 'host:path' and local paths are not accepted"
        )
    scheme = scheme_match.group(1).lower()
    if scheme not in allowed:
        raise InvalidInput(
            f"repo URL scheme '{scheme}' is not allowed; allowed schemes: {allowed_text}."
            " An administrator can allow more with the allowed_repo_schemes setting."
        )
    return scheme


def _split_url(url: str) -> SplitResult:
    """``urlsplit`` with the port checked too; InvalidInput if the URL cannot be parsed."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parses and checks the port
    except ValueError as e:  # never echo e: a "port" may be a password (https://u:pw/x)
        what = "its port must be a number up to 65535" if "ort" in str(e) else str(e)
        raise InvalidInput(f"repo URL is malformed: {what}") from None
    return parts


def _normalized_file_url(parts: SplitResult) -> str:
    """``file:///absolute/path``: no host but ``localhost``, no query, no fragment."""
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise InvalidInput("file URLs must name an absolute path: file:///path/to/repo")
    if parts.query or parts.fragment:
        raise InvalidInput("file URLs must not have a query or fragment")
    return urlunsplit(("file", "", parts.path, "", ""))


def _refuse_credentials(scheme: str, userinfo: str, at: str, netloc: str) -> None:
    """Refuse a user name or password in the URL, even percent-encoded; ssh may name a user."""
    if at or "@" in percent_decoded(netloc):
        username_only = userinfo and ":" not in userinfo and not userinfo.startswith("-")
        if not (scheme in _SSH_SCHEMES and username_only):
            raise InvalidInput(
                "repo URL must not contain a user name or password;"
                " send credentials in the 'credentials' field instead"
            )


def _refuse_bad_host(scheme: str, parts: SplitResult, hostport: str, hosts: set[str]) -> None:
    """Accept only a valid host name or bracketed IPv6 address, of ``hosts`` if any."""
    host = parts.hostname
    if not host:
        raise InvalidInput(f"repo URL has no host: expected {scheme}://host/path")
    bracketed = hostport.startswith("[")
    if host.startswith("-") or not (
        _IPV6_RE.fullmatch(host) if bracketed else _HOSTNAME_RE.fullmatch(host)
    ):
        raise InvalidInput(f"repo URL host {_shorten(hostport)!r} is not a valid host name")
    if hosts and host.lower() not in hosts:
        raise InvalidInput(
            f"repo host {host!r} is not allowed; allowed hosts: {', '.join(sorted(hosts))}."
            " An administrator can allow more with the allowed_repo_hosts setting."
        )


def validate_repo_url(
    url: str,
    *,
    allowed_schemes: Iterable[str] = ("https",),
    allowed_hosts: Iterable[str] = (),
    max_length: int = 2048,
) -> str:
    """Check a repository URL from a request and normalize it.

    Args:
        url: the URL as the client sent it.
        allowed_schemes: schemes to accept (the ``allowed_repo_schemes`` setting); each must
            be one of :data:`SUPPORTED_SCHEMES`. ``file`` URLs need an absolute path.
        allowed_hosts: hosts to accept (the ``allowed_repo_hosts`` setting), compared
            case-insensitively; empty accepts any valid host.
        max_length: longest accepted URL, in characters.

    Returns:
        The URL with scheme and host lowercased (path, query and fragment unchanged).

    Raises:
        InvalidInput: the URL is not acceptable; the message says why.
        ValueError: ``allowed_schemes`` names a scheme outside :data:`SUPPORTED_SCHEMES`.
    """
    allowed = _allowed_scheme_set(allowed_schemes)
    url = _refuse_unsafe_text(url, max_length)
    scheme = _allowed_scheme(url, allowed)
    parts = _split_url(url)
    if scheme == "file":
        return _normalized_file_url(parts)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    _refuse_credentials(scheme, userinfo, at, parts.netloc)
    _refuse_bad_host(scheme, parts, hostport, {h.lower() for h in allowed_hosts})
    netloc = f"{userinfo}@{hostport.lower()}" if at else hostport.lower()
    return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))


# refs


def _refname_problem(ref: str) -> str | None:
    """Return why ``ref`` breaks ``git check-ref-format --allow-onelevel``, or None."""
    if ref.startswith("-"):
        return "must not start with '-'"
    if ref == "@":
        return "must not be '@'"
    if ".." in ref:
        return "must not contain '..'"
    if "@{" in ref:
        return "must not contain '@{'"
    if any(c in _REF_FORBIDDEN_CHARS or _is_unprintable(c) for c in ref):
        return "must not contain spaces, control characters or any of ~ ^ : ? * [ \\"
    if ref.startswith("/") or ref.endswith("/") or "//" in ref:
        return "must not start or end with '/' or contain '//'"
    if ref.endswith("."):
        return "must not end with '.'"
    for component in ref.split("/"):
        if component.startswith("."):
            return "no '/'-separated part may start with '.'"
        if component.endswith(".lock"):
            return "no '/'-separated part may end with '.lock'"
    return None


def validate_ref(ref: str) -> str:
    """Check a git ref from a request.

    Accepted: ``HEAD``; a hex commit SHA of 7 to 40 characters; a branch or tag name, or a
    full ref such as ``refs/heads/main`` or ``refs/tags/v1``, following the rules of
    ``git check-ref-format`` (one-level names like ``main`` allowed) and never starting with
    ``-``. Unicode whitespace and control/format characters are refused as well.

    Args:
        ref: the ref as the client sent it.

    Returns:
        ``ref`` unchanged.

    Raises:
        InvalidInput: ``ref`` is empty, longer than 255 characters or not a valid ref name.
    """
    if not isinstance(ref, str) or not ref:
        raise InvalidInput("ref must be a non-empty string: a branch, tag or commit SHA")
    if len(ref) > MAX_REF_LENGTH:
        raise InvalidInput(f"ref is too long: {len(ref)} characters, at most {MAX_REF_LENGTH}")
    if ref == "HEAD" or _SHORT_SHA_RE.fullmatch(ref):
        return ref
    problem = _refname_problem(ref)
    if problem is not None:
        raise InvalidInput(f"invalid ref {_shorten(ref)!r}: a branch or tag name {problem}")
    return ref


# ref resolution


def _git_env(
    *, base: Mapping[str, str] | None, credentials: GitCredentials | None, repo: str
) -> dict[str, str]:
    if base is None:
        env = {key: os.environ[key] for key in BASE_ENV_KEYS if key in os.environ}
    else:
        env = dict(base)
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "false",
            "SSH_ASKPASS": "false",
            "GCM_INTERACTIVE": "never",
            "GIT_ALLOW_PROTOCOL": ":".join(GIT_PROTOCOLS),
        }
    )
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    if credentials is not None:
        env.update(credentials.git_env(url=repo))
    return env


async def _ls_remote(
    repo: str,
    patterns: list[str],
    *,
    credentials: GitCredentials | None,
    timeout: float,  # noqa: ASYNC109 - expiry must kill git and become a SourceError
    git: str,
    env: Mapping[str, str] | None,
    options: tuple[str, ...] = (),
) -> str:
    argv = [git, "ls-remote", *options, "--", repo, *patterns]
    result = await run_git(
        argv,
        env=_git_env(base=env, credentials=credentials, repo=repo),
        timeout=timeout,
        repo=repo,
        capture_stdout=True,
    )
    if result.returncode != 0:
        secrets = [credentials.password] if credentials is not None else []
        reason = stderr_reason(result.stderr, secrets=secrets)
        raise SourceError(
            f"could not read {repo}: {reason or f'git exited with {result.returncode}'}",
            field="repo",
        )
    return result.stdout.decode("utf-8", errors="replace")


def _parse_ls_remote(output: str) -> dict[str, str]:
    refs: dict[str, str] = {}
    for line in output.splitlines():
        sha, sep, name = line.partition("\t")
        if sep and _FULL_SHA_RE.fullmatch(sha):
            refs.setdefault(name, sha.lower())
    return refs


def _patterns(ref: str) -> list[str]:
    """What ``ls-remote`` lists to resolve ``ref``: it matches patterns against the tail of
    ref names; peeled tags need their own; an abbreviated commit may be any branch or tag
    tip, so all of them."""
    if is_abbreviated_commit(ref):
        return ["refs/heads/*", "refs/tags/*"]
    return [ref] if ref == "HEAD" else [ref, f"{ref}^{{}}"]


def _candidate_refs(ref: str) -> list[str]:
    """The full ref names ``ref`` may stand for, in the order they win (see resolve_ref)."""
    if ref == "HEAD":
        return ["HEAD"]
    candidates = [f"refs/heads/{ref}", f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}"]
    if ref.startswith("refs/"):
        candidates += [f"{ref}^{{}}", ref]
    return candidates


def _ref_not_found(repo: str, ref: str, suggestions: list[str] | None = None) -> SourceError:
    """The error for a ref missing from ``repo``, on the ``ref`` field, naming a few existing
    branches (``suggestions``, default branch first: :func:`.branches.suggest_branches`)."""
    message = f"ref {ref!r} not found in {repo}"
    if suggestions:
        message += "; existing branches: " + ", ".join(suggestions)
    return SourceError(message, field="ref", suggestions=suggestions or ())


async def _missing_ref(repo: str, ref: str, **git_options: Any) -> SourceError:
    """:func:`_ref_not_found` with the branches ``ls-remote --symref`` lists (none when
    that second call fails: the error stays about the ref)."""
    try:
        output = await _ls_remote(
            repo, ["HEAD", "refs/heads/*"], options=("--symref",), **git_options
        )
    except SourceError:
        return _ref_not_found(repo, ref)
    default, heads = parse_heads(output)
    return _ref_not_found(repo, ref, suggest_branches(ref, default, heads))


def is_abbreviated_commit(ref: str) -> bool:
    """Whether ``ref`` may be an abbreviated commit SHA: 7 to 39 hex characters."""
    return _SHORT_SHA_RE.fullmatch(ref) is not None and not _FULL_SHA_RE.fullmatch(ref)


def resolve_prefix(repo: str, prefix: str, commits: Iterable[str]) -> str:
    """The one commit among ``commits`` that starts with ``prefix`` (the rule for
    abbreviated commits, the same for every caller: see :func:`resolve_ref`).

    Raises:
        SourceError: none or several of them start with ``prefix``; the message says what
            can be resolved and asks for the full SHA.
    """
    found = sorted({c.lower() for c in commits if c.lower().startswith(prefix.lower())})
    if len(found) == 1:
        return found[0]
    if found:
        shown = ", ".join(c[:12] for c in found[:5])
        problem = f"commit {prefix!r} is ambiguous in {repo} ({shown}...)"
    else:
        problem = (
            f"commit {prefix!r} not found in {repo}: an abbreviated commit resolves only to "
            "the tip of a branch or tag, or to the commit of an environment built from it"
        )
    raise SourceError(f"{problem}; give the full 40-character commit SHA", field="ref")


async def resolve_ref(
    repo: str,
    ref: str,
    *,
    credentials: GitCredentials | None = None,
    timeout: float = 30,  # noqa: ASYNC109 - expiry must kill git and become a SourceError
    git: str = "git",
    env: Mapping[str, str] | None = None,
    known_commits: Iterable[str] = (),
) -> str:
    """Resolve a ref of a remote repository to a full commit SHA with ``git ls-remote``.

    A full 40-character SHA is returned (lowercased) without contacting the repository.
    ``HEAD`` is the remote's default branch. A name matches, in this order,
    ``refs/heads/<name>``, the commit of an annotated tag ``refs/tags/<name>^{}``,
    ``refs/tags/<name>``, then ``<name>`` itself as a full ref (``refs/pull/1/head``).
    An abbreviated commit (7-39 hex characters) that names no branch or tag resolves to the
    one commit starting with it among the remote's branch and tag tips and
    ``known_commits`` (the commits of environments built from the repository): git cannot
    ask a server for an abbreviated commit, so others are refused (:func:`resolve_prefix`).

    Args:
        repo: repository URL, already checked by :func:`validate_repo_url`.
        ref: ``HEAD``, a branch or tag name, a full ref, or a (possibly abbreviated) commit.
        credentials: credentials for a private repository, handed over via the environment.
        timeout: seconds to wait for git before killing it.
        git: the git executable.
        env: base environment for git; default: ``PATH``, ``HOME`` and the proxy and CA
            variables of :data:`BASE_ENV_KEYS` from ``os.environ`` at call time. No-prompt
            and ``GIT_ALLOW_PROTOCOL`` settings and the credentials are added to it.
        known_commits: full commits an abbreviated ``ref`` may also stand for.

    Returns:
        The full 40-character lowercase commit SHA.

    Raises:
        InvalidInput: ``ref`` is not a valid ref.
        SourceError: git failed (message ends with git's last error lines, with the password
            scrubbed), timed out, or the ref does not exist; an abbreviated commit matches
            no known commit or several. Each about the ref has ``field="ref"``; an unknown
            ref's ``suggestions`` are a few existing branches, default first.
        ServiceError: the git executable is missing.
    """
    ref = validate_ref(ref)
    if _FULL_SHA_RE.fullmatch(ref):
        return ref.lower()
    if not isinstance(repo, str) or not repo:
        raise InvalidInput("repo must be a non-empty URL string")
    git_options: dict[str, Any] = dict(credentials=credentials, timeout=timeout, git=git, env=env)
    output = await _ls_remote(repo, _patterns(ref), **git_options)
    refs = _parse_ls_remote(output)
    for candidate in _candidate_refs(ref):
        if candidate in refs:
            return refs[candidate]
    if is_abbreviated_commit(ref):
        return resolve_prefix(repo, ref, [*refs.values(), *known_commits])
    raise await _missing_ref(repo, ref, **git_options)
