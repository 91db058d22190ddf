"""Executors run one repo2docker build each; the manager decides what and when.

- :mod:`.base`: the :class:`Executor` interface and the settings every executor shares;
- :mod:`.argv`: the repo2docker command line (pure);
- :mod:`.output`: build output as log lines;
- :mod:`.local`: :class:`LocalExecutor`, repo2docker as a subprocess of the service;
- :mod:`.container`: :class:`DockerExecutor`, repo2docker in a builder container in the
  Docker engine (its pure parts in :mod:`.builder`); its builds outlive a restart of the
  service, which finds and follows them again (:meth:`Executor.adopt`).

Configure the executor by its class path, e.g.
``c.Repo2DockerService.executor_class = "repo2docker_service.builds.executors.DockerExecutor"``.
"""

from .base import AdoptedBuild, BuildFailed, Executor, LostBuild
from .container import DockerExecutor
from .local import LocalExecutor

__all__ = [
    "AdoptedBuild",
    "BuildFailed",
    "DockerExecutor",
    "Executor",
    "LocalExecutor",
    "LostBuild",
]
