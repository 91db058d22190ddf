"""A registry as the image catalog (registry mode), through the OCI Distribution API.

- :mod:`.errors`: :class:`~.errors.RegistryError`, what every registry request raises.
- :mod:`.client`: :class:`~.client.RegistryClient`, the Distribution API client whose one
  choke point turns network, TLS, HTTP and protocol trouble into that error; with
  :mod:`.auth` (basic and the Bearer token flow) and :mod:`.manifest` (the four manifest
  kinds, image config parsing).
- :mod:`.catalog`: :class:`~.catalog.RegistryCatalog`, the
  :class:`~repo2docker_service.images.catalog.Catalog` of registry mode, over the cached
  listing of :mod:`.listing`.

Registry logins come from configuration or a docker ``config.json``
(:mod:`repo2docker_service.images.dockerconfig`).
"""
