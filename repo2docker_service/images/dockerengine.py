"""One Docker engine's API client (aiodocker), and the one choke point every call goes through.

:meth:`DockerEngine.upstream` turns "cannot connect" and timeouts into
:class:`~repo2docker_service.errors.Unavailable` (503: the engine is down, try again once it
is back) and engine failures (5xx) into :class:`~repo2docker_service.errors.UpstreamError`
(502), each with a message saying what to check;
client errors (4xx) pass through as ``DockerError`` for the caller to map ("not found"
becomes None, False or :class:`~repo2docker_service.errors.NotFound`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError

from ..errors import Unavailable, UpstreamError
from .dockerindex import epoch
from .labels import LABEL_OWNER

__all__ = ["DockerEngine"]


class DockerEngine:
    """The API client of one engine, created on first use; :meth:`close` releases it.

    Args:
        url: Docker engine URL (``unix:///var/run/docker.sock``, ``tcp://127.0.0.1:2375``);
            None: ``DOCKER_HOST`` (read when the client is created, taking precedence over
            a docker context as with the docker CLI) or the default socket.
        request_timeout: seconds for each API call unless :meth:`upstream` says otherwise.
    """

    def __init__(self, *, url: str | None = None, request_timeout: float = 60.0) -> None:
        self.url = url
        self.request_timeout = request_timeout
        self._docker: aiodocker.Docker | None = None

    @property
    def where(self) -> str:
        """Where the engine is, for messages."""
        return (
            self.url
            or os.environ.get("DOCKER_HOST")
            or "the default socket (unix:///var/run/docker.sock; set DOCKER_HOST to change it)"
        )

    def client(self) -> aiodocker.Docker:
        """The aiodocker client (created on first use).

        Raises:
            Unavailable: no engine found (no socket, bad URL).
        """
        if self._docker is None:
            # DOCKER_HOST first, as the docker CLI (and so repo2docker) does; aiodocker alone
            # would prefer a docker context from ~/.docker/config.json over DOCKER_HOST
            url = self.url or os.environ.get("DOCKER_HOST") or None
            try:
                self._docker = aiodocker.Docker(url=url)
            except (AssertionError, ValueError, OSError) as e:
                raise Unavailable(
                    f"No Docker engine found ({e or 'no socket'}): start dockerd or set "
                    "DOCKER_HOST to the engine the service should use"
                ) from None
        return self._docker

    async def close(self) -> None:
        """Close the client (a later call connects again)."""
        docker, self._docker = self._docker, None
        if docker is not None:
            await docker.close()

    @asynccontextmanager
    async def upstream(self, what: str, *, limit: float | None = -1) -> AsyncIterator[None]:
        """The choke point: engine trouble becomes UpstreamError; 4xx DockerErrors pass.

        Args:
            what: what the call does, for messages (``"listing images"``).
            limit: seconds for the call (-1: ``request_timeout``; None: no limit).

        Raises:
            Unavailable: timeout or no connection (the engine is down or hung).
            UpstreamError: an engine failure (5xx).
            DockerError: a 4xx answer.
        """
        if limit == -1:
            limit = self.request_timeout
        try:
            async with asyncio.timeout(limit):
                yield
        except TimeoutError:
            raise Unavailable(
                f"Docker engine at {self.where} did not answer in {limit:.0f} s while "
                f"{what}: check that dockerd is healthy"
            ) from None
        except DockerError as e:
            if 400 <= e.status < 500:
                raise
            if e.status == 900:  # aiodocker's "cannot connect"
                raise Unavailable(
                    f"Cannot reach the Docker engine at {self.where} while {what}: check "
                    "that dockerd is running and DOCKER_HOST points at it"
                ) from None
            raise UpstreamError(
                f"Docker engine at {self.where} failed while {what}: {e.message}"
            ) from None
        except (OSError, aiohttp.ClientError) as e:
            raise Unavailable(
                f"Cannot reach the Docker engine at {self.where} while {what} ({e}): check "
                "that dockerd is running and DOCKER_HOST points at it"
            ) from None

    async def check(self, *, limit: float = -1) -> None:
        """Connect and check that the engine answers (its version).

        Args:
            limit: seconds to wait (-1: ``request_timeout``).

        Raises:
            Unavailable: the engine is unreachable or did not answer in time.
            UpstreamError: it answered with a failure.
        """
        async with self.upstream("connecting", limit=limit):
            await self.client().version()

    async def clock(self) -> int:
        """The engine's clock in whole seconds (events are filtered by its clock).

        Raises:
            UpstreamError: the engine is unreachable.
        """
        async with self.upstream("reading the engine clock"):
            info = await self.client().system.info()
        try:
            return epoch(info["SystemTime"])
        except (KeyError, TypeError):
            return int(time.time())

    async def inspect(self, reference: str) -> dict[str, Any] | None:
        """The engine's inspect answer for an image id or reference.

        Returns:
            The answer, or None when there is no such image.

        Raises:
            UpstreamError: the engine is unreachable or refused.
        """
        try:
            async with self.upstream(f"inspecting {reference}"):
                return await self.client().images.inspect(reference)
        except DockerError as e:
            if e.status == 404:
                return None
            raise UpstreamError(f"Docker refused to inspect {reference}: {e.message}") from None

    async def list_labelled(self, *, repository: str | None = None) -> list[dict[str, Any]]:
        """The image-list items of images with the service's owner label.

        Args:
            repository: only images with a reference in this repository (None: all).

        Raises:
            UpstreamError: the engine is unreachable or refused.
        """
        filters: dict[str, list[str]] = {"label": [LABEL_OWNER]}
        if repository is not None:
            filters["reference"] = [repository]
        try:
            async with self.upstream("listing images"):
                return await self.client().images.list(filters=filters)
        except DockerError as e:
            raise UpstreamError(f"Docker refused to list images: {e.message}") from None
