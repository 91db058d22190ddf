# DEMO ONLY: a hub on one machine with a fixed-password DummyAuthenticator.
# Never use DummyAuthenticator on a hub that anyone else can reach.
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
STATE = Path(os.environ.get("R2DS_DEMO_STATE", "/var/lib/repo2docker-service-dev/demo"))

load_subconfig(str(HERE.parent / "jupyterhub_config.py"))

c.JupyterHub.bind_url = os.environ.get("R2DS_DEMO_URL", "http://127.0.0.1:8000")
c.JupyterHub.db_url = f"sqlite:///{STATE}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "proxy.pid")

c.JupyterHub.authenticator_class = "dummy"  # DEMO ONLY
c.DummyAuthenticator.password = os.environ["R2DS_DEMO_PASSWORD"]
c.Authenticator.allowed_users = {"demo", "admin"}
c.Authenticator.admin_users = {"admin"}
c.JupyterHub.load_groups.update(
    {
        "repo2docker-builders": {"users": ["demo"]},
        "repo2docker-admins": {"users": ["admin"]},
    }
)

# User servers: DockerSpawner starting the images repo2docker-service lists for each user, as
# containers on the host network at 127.0.0.1 (where this demo hub listens). The spawner's
# token is kept in the demo's state directory so restarts reuse it.
from repo2docker_service.hub.config import configure_jupyterhub, persistent_token  # noqa: E402

_service_port = os.environ.get("REPO2DOCKER_SERVICE_PORT", "8585")
configure_jupyterhub(
    c,
    service_url=f"http://127.0.0.1:{_service_port}/services/repo2docker/",
    token=persistent_token(STATE / "spawner-token"),
    spawner_class="repo2docker_service.hub.dockerspawner.Repo2DockerHostSpawner",
)
c.DockerSpawner.prefix = "r2d-demo"
c.DockerSpawner.pull_policy = "never"  # images are built into the local engine
c.DockerSpawner.remove = True
c.Spawner.start_timeout = 180
