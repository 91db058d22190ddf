"""repo2docker-service: a JupyterHub service that builds environments with repo2docker."""

from ._version import __version__, check_python

check_python()  # before any module that needs a newer Python is imported

__all__ = ["__version__"]
