"""repo2docker-service: a JupyterHub service that builds environments with repo2docker."""

from ._version import __version__

__all__ = ["__version__"]
