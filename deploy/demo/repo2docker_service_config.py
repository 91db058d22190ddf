# repo2docker-service config for the one-machine demo (scripts/demo.sh).
from pathlib import Path

import repo2docker_service

c = get_config()

# the bundled example is served over plain HTTP on 127.0.0.1 by the demo script
c.Repo2DockerService.allowed_repo_schemes = ["https", "http"]
# offline machines: only the Git and Local content providers (for every executor)
c.Executor.repo2docker_config = str(
    Path(repo2docker_service.__file__).parent / "repo2docker_offline_config.py"
)
c.Repo2DockerService.build_concurrency = 2
