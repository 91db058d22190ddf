"""repo2docker configuration for offline tests and the demo.

Pass it with ``repo2docker --config <this file>``. repo2docker's default content providers
include Zenodo, Figshare, Dataverse, Hydroshare, Software Heritage and CKAN, which call out to
the internet while *detecting* a source, and Mercurial, which needs ``hg``. On a machine without
internet (the test rig) only local directories and git repositories can work, so this file
restricts repo2docker to those two. Real deployments with internet do not need it.
"""

from typing import TYPE_CHECKING

from repo2docker import contentproviders

if TYPE_CHECKING:
    from collections.abc import Callable

    from traitlets.config import Config

    # traitlets' config loader puts get_config into the namespace it runs this file in
    get_config: Callable[[], Config]

c = get_config()  # noqa: F821 -- declared above for mypy only (no runtime binding)

c.Repo2Docker.content_providers = [contentproviders.Local, contentproviders.Git]
