"""Through the real proxy: who may reach the service, and what api/info says."""

import json
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.hub


def get(url, token=None, **headers):
    if token:
        headers["Authorization"] = f"token {token}"
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_health_needs_no_login(hub):
    status, _, body = get(hub.service_url + "health")
    assert status == 200
    assert json.loads(body)["status"] == "ok"


def test_info_with_token_of_builder(hub):
    status, headers, body = get(hub.service_url + "api/info", hub.token_for("alice"))
    assert status == 200, body
    info = json.loads(body)
    assert info["user"]["name"] == "alice"
    assert info["user"]["scopes"] == ["build", "view"]
    assert info["executor"] == "LocalExecutor"
    assert info["registry"] is None
    assert info["repo2docker_version"]
    assert headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "user, scopes", [("bob", ["view"]), ("admin1", ["admin", "build", "view"])]
)
def test_info_scopes_per_role(hub, user, scopes):
    status, _, body = get(hub.service_url + "api/info", hub.token_for(user))
    assert status == 200, body
    assert json.loads(body)["user"]["scopes"] == scopes


def test_user_with_access_but_no_scope_is_logged_in_without_permissions(hub):
    status, _, body = get(hub.service_url + "api/info", hub.token_for("dave"))
    assert status == 200, body
    assert json.loads(body)["user"]["scopes"] == []
    status, _, body = get(hub.service_url + "api/images", hub.token_for("dave"))
    assert status == 403
    message = json.loads(body)["message"]
    assert "custom:repo2docker:view" in message
    # it says what to ask for: the role, and the group that has it
    assert "'repo2docker-viewer'" in message and "'repo2docker-viewers'" in message


def test_page_without_permission_says_which_role_or_group_to_ask_for(hub):
    status, headers, body = get(hub.service_url, hub.token_for("dave"), Accept="text/html")
    assert status == 403
    assert headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert "You are logged in as dave" in page
    assert "custom:repo2docker:view" in page
    assert "the role &#39;repo2docker-viewer&#39;" in page
    assert "the group &#39;repo2docker-viewers&#39;" in page


def test_api_without_token_is_403_json(hub):
    status, headers, body = get(hub.service_url + "api/info")
    assert status == 403
    assert headers["Content-Type"].startswith("application/json")
    err = json.loads(body)
    assert err["status"] == 403 and err["message"]


def test_api_with_bad_token_is_403(hub):
    status, _, body = get(hub.service_url + "api/info", "not-a-real-token")
    assert status == 403
    assert json.loads(body)["status"] == 403


def test_user_without_access_services_is_403(hub):
    status, _, body = get(hub.service_url + "api/info", hub.token_for("carol"))
    assert status == 403, body
    assert json.loads(body)["status"] == 403


def test_page_without_login_redirects_to_hub_login(hub):
    req = urllib.request.Request(hub.service_url)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as exc:
        opener.open(req, timeout=30)
    assert exc.value.code == 302
    location = exc.value.headers["Location"]
    assert "/hub/api/oauth2/authorize" in location
    assert "client_id=service-repo2docker" in location


def test_openapi_document_is_served(hub):
    import yaml

    status, _, body = get(hub.service_url + "api/openapi.yaml")
    assert status == 200
    doc = yaml.safe_load(body)
    assert doc["openapi"].startswith("3.")
    assert "/api/info" in doc["paths"]
