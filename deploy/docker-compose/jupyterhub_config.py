# JupyterHub config of the docker-compose deployment (mounted into the hub container).
import os

from repo2docker_service.hub.config import configure_jupyterhub, register_service

HUB_PORT = int(os.environ.get("HUB_PORT", "8000"))
HUB_API_PORT = int(os.environ.get("HUB_API_PORT", "8081"))
PROXY_API_PORT = int(os.environ.get("PROXY_API_PORT", "8001"))
SERVICE_PORT = int(os.environ.get("SERVICE_PORT", "8585"))
DATA = "/srv/jupyterhub/data"  # the hub-data volume

c.JupyterHub.bind_url = f"http://127.0.0.1:{HUB_PORT}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{HUB_API_PORT}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PROXY_API_PORT}"
c.ConfigurableHTTPProxy.pid_file = f"{DATA}/proxy.pid"
c.JupyterHub.db_url = f"sqlite:///{DATA}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{DATA}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = f"{DATA}/jupyterhub.pid"

# ---------------------------------------------------------------- DEMO AUTHENTICATION
# !! DEMO ONLY !! DummyAuthenticator: every user below logs in with one shared password.
# Replace this block with a real authenticator (NativeAuthenticator, OAuthenticator, ...)
# before anyone else can reach the hub.
_users = [u for u in os.environ.get("DEMO_USERS", "demo").split(",") if u]
_admins = [u for u in os.environ.get("DEMO_ADMINS", "admin").split(",") if u]
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = os.environ["DEMO_PASSWORD"]
c.Authenticator.allowed_users = set(_users + _admins)
c.Authenticator.admin_users = set(_admins)
# ----------------------------------------------------------------------------------------

# the service runs in its own container (docker-compose.yml: repo2docker): an external
# service with a URL and a token, plus its scopes, groups and roles
register_service(
    c,
    url=f"http://127.0.0.1:{SERVICE_PORT}",
    api_token=os.environ["REPO2DOCKER_SERVICE_TOKEN"],
)
# demo users may build, demo admins manage every environment (edit groups in the admin page)
c.JupyterHub.load_groups.update(
    {
        "repo2docker-builders": {"users": _users},
        "repo2docker-admins": {"users": _admins},
    }
)

# the spawner: DockerSpawner starting the images the service lists for each user, on the
# host network at 127.0.0.1 (the hub and the service listen there too)
configure_jupyterhub(
    c,
    service_url=f"http://127.0.0.1:{SERVICE_PORT}/services/repo2docker/",
    token=os.environ["REPO2DOCKER_SPAWNER_TOKEN"],
    spawner_class="repo2docker_service.hub.dockerspawner.Repo2DockerHostSpawner",
)
_prefix = os.environ.get("CONTAINER_PREFIX", "r2d")
c.DockerSpawner.prefix = _prefix
c.DockerSpawner.pull_policy = "ifnotpresent"  # images are in the registry (and built here)
c.DockerSpawner.remove = True
# each user's work survives their server: a named volume per user
c.DockerSpawner.volumes = {f"{_prefix}-user-{{username}}": "/home/jovyan/work"}
c.Spawner.start_timeout = 300
c.Spawner.http_timeout = 120
