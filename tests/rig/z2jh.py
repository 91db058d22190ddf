"""zero-to-jupyterhub-k8s' chart, read from its mirror at test time (:mod:`tests.rig.upstream`).

- :func:`values_schema`: the chart's ``jupyterhub/values.schema.yaml``;
- :func:`schema_errors`: a ``config.yaml`` checked against it. The schema describes the
  chart's *merged* values (its defaults + config.yaml), so its ``required`` lists are not
  applied to a config.yaml alone; everything else is (types, enums,
  ``additionalProperties: false``, the probe and security-context shapes).
"""

from __future__ import annotations

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
