"""Hub-side helpers: code that runs inside JupyterHub, never inside the service.

- :mod:`.client`: :class:`~.client.ServiceClient` asks the service which images a user may
  start (``GET api/users/{name}/images``);
- :mod:`.dockerspawner`: ``Repo2DockerSpawner`` / ``Repo2DockerHostSpawner`` (DockerSpawner)
  with an options form (:mod:`.forms`) and a spawn-time check;
- :mod:`.kubespawner`: :func:`~.kubespawner.make_profile_list` for KubeSpawner;
- :mod:`.config`: the scopes, groups and roles (one definition), ``register_service`` and
  ``configure_jupyterhub`` for ``jupyterhub_config.py``;
- :mod:`.tljh`: the plugin for The Littlest JupyterHub.

These modules import only each other, the standard library and the hub's own packages
(jupyterhub, tornado, traitlets, dockerspawner, pluggy), never the service's modules.
"""
