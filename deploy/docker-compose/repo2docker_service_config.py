# repo2docker-service config of the docker-compose deployment (mounted into its container).
import os
from pathlib import Path

import repo2docker_service

c = get_config()

c.Repo2DockerService.ip = "127.0.0.1"
c.Repo2DockerService.port = int(os.environ.get("SERVICE_PORT", "8585"))
# builds are pushed to the registry container (docker treats 127.0.0.1 registries as insecure
# by default, so plain HTTP on loopback works)
c.Repo2DockerService.registry_url = f"127.0.0.1:{os.environ.get('REGISTRY_PORT', '5000')}"
c.Repo2DockerService.image_prefix = os.environ.get("IMAGE_PREFIX", "r2d-")
c.Repo2DockerService.allowed_repo_schemes = [
    s for s in os.environ.get("ALLOWED_REPO_SCHEMES", "https").split(",") if s
]
c.Repo2DockerService.build_concurrency = 2
# limits for user servers (images may ask for less)
c.Repo2DockerService.default_cpu_limit = 2
c.Repo2DockerService.default_memory_limit = "4G"
if os.environ.get("OFFLINE_BUILDS") == "1":
    # machines without internet: only git sources (the Dockerfile buildpack works offline);
    # c.Executor.* options apply to whichever executor runs the builds
    c.Executor.repo2docker_config = str(
        Path(repo2docker_service.__file__).parent / "repo2docker_offline_config.py"
    )
