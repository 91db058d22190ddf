"""The Application's options for the registry login read from a docker config (credential
helpers, re-reading) and for the registry's requests (timeout). A mixin beside
:mod:`.config` (which is at its size limit); they stay ``c.Repo2DockerService.<name>``."""

from __future__ import annotations

from traitlets import Float, HasTraits

__all__ = ["RegistryLoginConfig"]


class RegistryLoginConfig(HasTraits):
    """How often and how long the registry login is read from the docker config; how long
    the registry may take to answer."""

    registry_timeout = Float(
        10,
        help="""Seconds each request to the registry (and its token realm) may take, to
        connect and answer, before the registry counts as unreachable. It is also the
        longest a listing waits for the registry: then it answers the last good listing,
        flagged stale with its age (or 503 when there is none yet). 0 or less: 10 seconds.
        """,
    ).tag(config=True)

    registry_login_refresh = Float(
        300,
        min=0,
        help="""Seconds after which the registry login read from the docker config (its
        `auths` entry, or the credential helper of `credHelpers` / `credsStore`) is read
        again before its next use.

        The login is also read again whenever the registry or its token server refuses it
        (short-lived secrets of ECR, Artifact Registry and ACR helpers). 0: only at start
        and when refused. Ignored when `registry_username` is set.
        """,
    ).tag(config=True)

    registry_credential_helper_timeout = Float(
        10,
        help="""Seconds a docker credential helper (`docker-credential-<name> get`) may run
        before it is killed and the login counts as unreadable. 0 or less: 10 seconds.
        """,
    ).tag(config=True)
