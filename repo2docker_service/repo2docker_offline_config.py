"""repo2docker configuration for offline tests and the demo.

Pass it with ``repo2docker --config <this file>``. repo2docker's default content providers
include Zenodo, Figshare, Dataverse, Hydroshare, Software Heritage and CKAN, which call out to
the internet while *detecting* a source, and Mercurial, which needs ``hg``. On a machine without
internet (the test rig) only local directories and git repositories can work, so this file
restricts repo2docker to those two. Real deployments with internet do not need it.
"""

from repo2docker import contentproviders

c = get_config()  # noqa: F821 -- injected by traitlets when repo2docker loads this file

c.Repo2Docker.content_providers = [contentproviders.Local, contentproviders.Git]
