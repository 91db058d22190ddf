"""Where built images are named, labelled, found, tagged and deleted (imports nothing of builds/).

- :mod:`.reference`: Docker's reference grammar (one predicate per rule) and its splits.
- :mod:`.naming`: owner escaping, user-chosen names, the image name template.
- :mod:`.labels`: the label names and the :class:`~.labels.ImageLabels` record.
- :mod:`.catalog`: :class:`~.catalog.Catalog` (the interface), :class:`~.catalog.ImageInfo`
  and the listing rule every catalog applies.
- :mod:`.docker`: :class:`~.docker.DockerCatalog`, the event-fed catalog of one engine, over
  :mod:`.dockerengine` (client and choke point) and :mod:`.dockerindex` (the index).
- :mod:`.registry`: :class:`~.registry.catalog.RegistryCatalog` and the OCI Distribution
  client (registry mode).
- :mod:`.dockerconfig`: registry logins in a docker ``config.json``.
"""
