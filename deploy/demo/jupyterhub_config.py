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
