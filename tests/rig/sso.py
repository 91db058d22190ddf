"""An SSO-like authenticator for a real hub: groups and roles come from an identity provider.

OAuthenticator (jupyterhub/oauthenticator 17.x) needs an OAuth provider to log in, which this
machine has none of; everything after the provider's answer is reproduced here the way
OAuthenticator does it (``oauthenticator/oauth2.py``): the provider's user info lands in
``auth_state["oauth_user"]``, with ``manage_groups`` the user's JupyterHub groups are read
from it through ``auth_state_groups_key`` (a dotted key, ``reduce(dict.get, ...)``), and
``admin_groups`` makes hub admins. OAuthenticator has no ``manage_roles`` support; hubs
that use JupyterHub's ``manage_roles`` subclass it and add ``auth_model["roles"]`` in
``update_auth_model`` (docs/sso.md shows it); :class:`IdPAuthenticator` does the same with
:attr:`roles_from_groups`.

The identity provider is a dict, :attr:`IdPAuthenticator.idp_users` (username -> the
provider's group names); a password stands in for the provider's login page.
"""

from __future__ import annotations

import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request
from functools import reduce
from typing import Any

from jupyterhub.auth import Authenticator
from traitlets import Dict, List, Set, Unicode

from tests.rig.net import no_proxy_opener


class IdPAuthenticator(Authenticator):
    """Log in users of a dict "identity provider"; groups and roles from its groups."""

    idp_users = Dict(
        key_trait=Unicode(),
        value_trait=List(Unicode()),
        help="The identity provider: username -> the provider's group names.",
    ).tag(config=True)

    password = Unicode(help="The one password of every provider user.").tag(config=True)

    auth_state_groups_key = Unicode(
        "oauth_user.groups", help="As OAuthenticator's: where auth_state holds the groups."
    ).tag(config=True)

    admin_groups = Set(
        Unicode(), help="As OAuthenticator's: members of these groups are hub admins."
    ).tag(config=True)

    roles_from_groups = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        help="With manage_roles: provider group -> JupyterHub role name to grant.",
    ).tag(config=True)

    def get_user_groups(self, auth_state: dict[str, Any]) -> set[str]:
        """The provider's groups in ``auth_state`` (as OAuthenticator.get_user_groups)."""
        groups = reduce(dict.get, self.auth_state_groups_key.split("."), auth_state)  # type: ignore[arg-type]
        return set(groups or ())

    async def authenticate(self, handler: Any, data: dict[str, str]) -> dict[str, Any] | None:
        """The auth model OAuthenticator would build from the provider's answer."""
        name = data.get("username", "")
        if name not in self.idp_users or data.get("password") != self.password:
            return None
        auth_state = {"oauth_user": {"preferred_username": name, "groups": self.idp_users[name]}}
        admin = True if name in self.admin_users else None
        model: dict[str, Any] = {"name": name, "admin": admin, "auth_state": auth_state}
        groups = self.get_user_groups(auth_state)
        if self.manage_groups:
            model["groups"] = sorted(groups)
            if self.admin_groups and not model["admin"]:
                model["admin"] = bool(groups & self.admin_groups)
        if self.manage_roles:
            # JupyterHub's sync_roles replaces the user's roles with exactly these: keep
            # the default "user" role, and "admin" for hub admins, in the list
            names = {"user"} | ({"admin"} if model["admin"] else set())
            names |= {self.roles_from_groups[g] for g in groups & set(self.roles_from_groups)}
            model["roles"] = [{"name": n} for n in sorted(names)]
        return model


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def hub_login(hub_url: str, username: str, password: str) -> int:
    """Log in at the hub's login form as a browser would (XSRF cookie + form post).

    The authenticator runs, so groups and roles it manages are applied. Redirects are not
    followed (the hub would start a server next). Returns the status: 302 on success.
    """
    jar = http.cookiejar.CookieJar()
    opener = no_proxy_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect())
    with opener.open(f"{hub_url}/hub/login", timeout=30) as resp:
        resp.read()
    xsrf = next((c.value for c in jar if c.name == "_xsrf"), "")
    form = urllib.parse.urlencode({"username": username, "password": password, "_xsrf": xsrf})
    req = urllib.request.Request(f"{hub_url}/hub/login", data=form.encode(), method="POST")
    try:
        with opener.open(req, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return e.code
