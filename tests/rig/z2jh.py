"""zero-to-jupyterhub-k8s' chart, read from its mirror at test time (:mod:`tests.rig.upstream`).

- :func:`values_schema`: the chart's ``jupyterhub/values.schema.yaml``;
- :func:`schema_errors`: a ``config.yaml`` checked against it. The schema describes the
  chart's *merged* values (its defaults + config.yaml), so its ``required`` lists are not
  applied to a config.yaml alone; everything else is (types, enums,
  ``additionalProperties: false``, the probe and security-context shapes).
- :func:`lay_out_hub_pod`: what the chart mounts into the hub pod, without Helm (in no
  registry here) and without a cluster: the chart's own ``files/hub/jupyterhub_config.py``
  and ``z2jh.py``, its Secret (``values.yaml``: the chart's default values merged with a
  config.yaml plus ``Chart``/``Release``, as ``templates/hub/secret.yaml`` writes it; the
  services' tokens, the cookie secret, the CryptKeeper keys) and its ConfigMap's resource
  names, under a temporary directory. The one change to the chart's files: their mount
  point ``/usr/local/etc/jupyterhub`` is replaced by that directory. What Helm itself would
  compute is written here by hand: the resource names (``hub``, ``proxy-api``: the chart's
  names without ``fullnameOverride``) and the Secret's generated values.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.rig.upstream import Z2JH, mirror

SCHEMA_PATH = "jupyterhub/values.schema.yaml"

# a config.yaml is a partial of the merged values: "required" is the chart's business
PartialValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {"required": lambda *args: iter(())}
)


def values_schema() -> dict[str, Any]:
    """The chart's values schema at the mirror's ``HEAD`` (skips without the mirror)."""
    schema: dict[str, Any] = yaml.safe_load(mirror(Z2JH).show(SCHEMA_PATH))
    return schema


def schema_errors(schema: dict[str, Any], values: dict[str, Any]) -> list[str]:
    """``"dotted.path: message"`` for each way ``values`` breaks ``schema`` (none: valid)."""
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in PartialValidator(schema).iter_errors(values)
    ]


MOUNT = "/usr/local/etc/jupyterhub"  # where the chart mounts its Secret and ConfigMap
HUB_FILES = ("jupyterhub_config.py", "z2jh.py")  # the chart's jupyterhub/files/hub/
#: Kubernetes' service environment variables that z2jh's get_name_env reads
SERVICE_ENV = {"HUB_SERVICE_PORT": "8081", "PROXY_API_SERVICE_PORT": "8001"}


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's merge of a config.yaml over the chart's defaults: maps merge, the rest
    replaces, and ``null`` removes a default (what ``helm install -f`` does)."""
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def lay_out_hub_pod(workdir: Path, values: dict[str, Any], secrets: Mapping[str, str]) -> Path:
    """Write the hub pod's files for ``values`` (a config.yaml) under ``workdir``.

    ``secrets`` are the Secret's other keys (``hub.services.<name>.apiToken``...).
    Returns the chart's ``jupyterhub_config.py`` to load. Skips without the chart's mirror.
    """
    chart = mirror(Z2JH)
    merged = merge_values(yaml.safe_load(chart.show("jupyterhub/values.yaml")), values)
    meta = yaml.safe_load(chart.show("jupyterhub/Chart.yaml"))
    merged["Chart"] = {"Name": meta["name"], "Version": meta["version"]}
    merged["Chart"]["AppVersion"] = meta["appVersion"]
    merged["Release"] = {"Name": "r2d", "Namespace": "jupyterhub", "Service": "Helm"}
    mount = workdir / "etc"
    secret, config = mount / "secret", mount / "config"
    secret.mkdir(parents=True)
    config.mkdir()
    (secret / "values.yaml").write_text(yaml.safe_dump(merged))
    for key, value in secrets.items():
        (secret / key).write_text(value)
    names = ("hub", "proxy-api", "proxy-public", "singleuser", "user-scheduler", "priority")
    for name in (*names, "image-pull-secret"):
        (config / name).write_text(name)
    hub = workdir / "hub"
    hub.mkdir()
    for name in HUB_FILES:
        text = chart.show(f"jupyterhub/files/hub/{name}")
        assert MOUNT in text or name == "jupyterhub_config.py", name
        (hub / name).write_text(text.replace(MOUNT, str(mount)))
    return hub / "jupyterhub_config.py"
