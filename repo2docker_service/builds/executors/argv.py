"""The repo2docker command line of a build: a pure function of the settings and the build.

:class:`Repo2DockerArgv` holds what every build of an executor shares (the command, the
image user, extra options, the config file as repo2docker sees it) and makes the argv of
one build with :meth:`Repo2DockerArgv.for_build`. No I/O: each executor composes one
(the :class:`~.local.LocalExecutor` with the config file's own path, the
:class:`~.container.DockerExecutor` with the path it copies the file to in the builder).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..model import Build

__all__ = ["Repo2DockerArgv"]


@dataclass(frozen=True, slots=True)
class Repo2DockerArgv:
    """The repo2docker settings shared by every build of one executor.

    Attributes:
        command: argv prefix that runs repo2docker (e.g. ``("repo2docker",)``); not empty.
        user_id: ``--user-id`` of the user in the image (> 0: repo2docker refuses root).
        user_name: ``--user-name`` of the user in the image.
        extra_args: more repo2docker options, put before ``--`` (never ``--`` itself).
        config_path: the ``--config`` file as the repo2docker process sees it; None: none.
        inline_cache: add ``--build-arg BUILDKIT_INLINE_CACHE=1``: BuildKit writes its cache
            metadata into the image's config, so ``--cache-from`` of that image reuses its
            layers on an engine that has only the registry (without it, only an engine that
            built the layers itself reuses them; measured in ``benchmarks/bench_cache_from.py``).

    Raises:
        ValueError: an empty command, ``user_id <= 0`` or ``--`` in ``extra_args``.
    """

    command: tuple[str, ...]
    user_id: int = 1000
    user_name: str = "jovyan"
    extra_args: tuple[str, ...] = ()
    config_path: str | None = None
    inline_cache: bool = True

    def __post_init__(self) -> None:
        if not self.command:
            raise ValueError("repo2docker_command must not be empty")
        if self.user_id <= 0:
            raise ValueError("user_id must be > 0: repo2docker refuses root as the image user")
        if "--" in self.extra_args:
            raise ValueError("extra_args must not contain '--'")

    def for_build(
        self,
        build: Build,
        *,
        push: bool,
        cache_from: Sequence[str],
        labels: Mapping[str, str],
    ) -> list[str]:
        """The argv of the repo2docker run for ``build`` (no secrets in it).

        The repo URL comes last, after ``--``: repo2docker's parser treats everything
        after the positional repo as the command to run in the container, and ``--``
        keeps a URL from ever being read as an option.

        Args:
            build: reads ``image`` (``--image-name``), ``commit`` (``--ref``) and ``repo``.
            push: add ``--push``.
            cache_from: images for ``--cache-from`` (one option each; may be empty).
            labels: ``--label key=value`` each, in the mapping's order.

        Returns:
            A new list: ``command``, the options, ``--``, the repo URL.
        """
        argv = [
            *self.command,
            "--no-run",
            "--json-logs",
            "--user-id",
            str(self.user_id),
            "--user-name",
            self.user_name,
            "--image-name",
            build.image,
            "--ref",
            build.commit,
        ]
        for key, value in labels.items():
            argv += ["--label", f"{key}={value}"]
        if self.inline_cache:
            argv += ["--build-arg", "BUILDKIT_INLINE_CACHE=1"]
        for image in cache_from:
            argv += ["--cache-from", image]
        if push:
            argv.append("--push")
        if self.config_path:
            argv += ["--config", self.config_path]
        argv += [*self.extra_args, "--", build.repo]
        return argv
