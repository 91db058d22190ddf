"""A person logs in at the hub in Chromium and lands on the service's page via OAuth."""

import pytest

from tests.rig.browser import login

pytestmark = [pytest.mark.hub, pytest.mark.browser]


def test_login_then_oauth_to_service_page(page, hub, artifacts):
    login(page, hub, "alice")
    page.goto(hub.service_url)
    # OAuth: service -> hub authorize -> service oauth_callback -> service page
    page.wait_for_url(hub.service_url + "*")
    assert page.locator("h1").inner_text() == "Environments"
    assert page.locator("#user-name").inner_text() == "alice"
    assert "build" in page.locator("#scopes").inner_text()
    # the hub's stylesheet is loaded, so the page looks like the hub
    css = page.evaluate(
        "[...document.styleSheets].map(s => s.href).filter(h => h && h.includes('/hub/static/'))"
    )
    assert css, "hub stylesheet not loaded"
    page.screenshot(path=str(artifacts / "login-landing.png"), full_page=True)


def test_user_without_view_scope_sees_which_permission_is_missing(page, hub):
    # carol may log in at the hub but has no access to the service at all
    login(page, hub, "carol")
    response = page.goto(hub.service_url)
    assert response.status == 403
    assert "403" in page.content()


def test_logged_in_user_without_view_gets_a_page_naming_the_permission(page, hub, artifacts):
    login(page, hub, "dave")
    response = page.goto(hub.service_url)
    assert response.status == 403
    message = page.locator("#error-message").inner_text()
    assert "custom:repo2docker:view" in message
    assert "dave" in message


def test_browser_session_posts_need_the_xsrf_token(page, hub):
    """Cookie sessions keep JupyterHub's XSRF protection: no token, no POST."""
    login(page, hub, "alice")
    page.goto(hub.service_url)
    page.wait_for_url(hub.service_url + "*")
    base = hub.service_url
    without = page.evaluate(
        """async (base) => {
            const r = await fetch(base + "api/builds", {method: "POST",
                headers: {"Content-Type": "application/json"}, body: "{}"});
            return [r.status, await r.text()];
        }""",
        base,
    )
    assert without[0] == 403, without
    xsrf = page.locator("#environments").get_attribute("data-xsrf")
    assert xsrf
    with_token = page.evaluate(
        """async ([base, xsrf]) => {
            const r = await fetch(base + "api/builds", {method: "POST",
                headers: {"Content-Type": "application/json", "X-XSRFToken": xsrf},
                body: "{}"});
            return [r.status, await r.json()];
        }""",
        [base, xsrf],
    )
    # authenticated and past XSRF: now the body itself is judged (repo missing)
    assert with_token[0] == 400, with_token
    assert "repo" in with_token[1]["message"]
