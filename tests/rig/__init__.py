"""The test rig: the real parts the tests, benchmarks and fuzzing run against.

One module per part; the fixtures in the ``conftest.py`` files wrap them:

- :mod:`tests.rig.parts`: where the rig lives, :class:`~tests.rig.parts.RealPartMissing`,
  ``require`` (a missing part fails a test, never skips it) and ``run`` (subprocesses).
- :mod:`tests.rig.net`: free loopback ports, environments and openers that keep traffic on
  127.0.0.1.
- :mod:`tests.rig.wait`: the one polling loop (sync and async).
- :mod:`tests.rig.engine`: the Docker engine, the base image, ``docker`` CLI calls, image and
  container clean-up, the builder image of the container executor.
- :mod:`tests.rig.remote_engine`: a second dockerd on a loopback TCP port.
- :mod:`tests.rig.registry`: the setup.sh registry check and registries of the tests' own
  (no auth, htpasswd, token auth with :mod:`tests.rig.registry_token`).
- :mod:`tests.rig.git`: git repositories over smart HTTP (the server itself lives in
  ``scripts/git_http.py``, shared with the demo, which imports nothing from ``tests/``).
- :mod:`tests.rig.repos`: what the test repositories hold (a Dockerfile on the base image)
  and unique names for them.
- :mod:`tests.rig.procs`: processes left running (``/proc``), whether a pid is alive.
- :mod:`tests.rig.hub`: a real JupyterHub + proxy managing the service.
- :mod:`tests.rig.api`: HTTP and SSE clients of the service and the hub.
- :mod:`tests.rig.binder`: the real ``@jupyterhub/binderhub-client`` (npm, installed by
  setup.sh into ``.cache/npm-clients/``) run in Node by ``binder_client.mjs``.
- :mod:`tests.rig.spawn`: the end-to-end hub whose spawner starts the service's images.
- :mod:`tests.rig.browser`: Chromium through Playwright, logging in at the hub.
- :mod:`tests.rig.fake_service`: the fake images endpoint and kube config of the spawner
  unit tests.
- :mod:`tests.rig.upstream`: upstream projects' source read at test time from their git
  mirrors (``$R2DS_UPSTREAM_MIRRORS``, default ``/work/.mirror``); a missing mirror skips
  the test with a reason naming it (nothing of upstream is committed here).
- :mod:`tests.rig.tljh`: The Littlest JupyterHub from its mirror, its hub environment laid
  out by its own installer functions with this package as the plugin, its hub started
  through its own ``jupyterhub_config.py``.
- :mod:`tests.rig.z2jh`: zero-to-jupyterhub's chart from its mirror: its values schema,
  and the hub pod's files (the chart's ``jupyterhub_config.py`` with a Secret and ConfigMap
  laid out as the chart mounts them).

Nothing here sends traffic anywhere but 127.0.0.0/8 and the local Docker engine, except
:mod:`tests.rig.tljh`, where TLJH's installer runs pip against the package index (as it
does on a real install; TLJH's own requirements are installed once per machine and kept
under ``~/.cache/repo2docker-service/``).
"""
