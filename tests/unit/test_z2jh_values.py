"""deploy/z2jh: the values against the chart's own schema, and the service's Deployment.

The schema is zero-to-jupyterhub-k8s' ``jupyterhub/values.schema.yaml``, read at test time
from the chart's git mirror (tests/rig/z2jh.py; the test skips, naming the mirror, when it is
absent). It describes the chart's *merged* values (defaults + config.yaml), so its
``required`` lists are not applied to a config.yaml alone; everything else is (types, enums,
``additionalProperties: false``, the probe and security-context shapes). Helm itself is in
none of the registries here: the chart's templates are not rendered; its hub
``jupyterhub_config.py`` runs hub.extraConfig in tests/unit/test_spawner_z2jh.py.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tests.rig.z2jh import schema_errors, values_schema

REPO = Path(__file__).resolve().parents[2]
VALUES = REPO / "deploy" / "z2jh" / "values.yaml"
MANIFEST = REPO / "deploy" / "z2jh" / "repo2docker-service.yaml"


@pytest.fixture(scope="module")
def schema() -> dict:
    return values_schema()


def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def manifests() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text())}


def test_values_validate_against_the_charts_schema(schema):
    assert schema_errors(schema, values()) == []


@pytest.mark.parametrize(
    "path, bad",
    [
        (("hub", "extraContainer"), []),  # a misspelt key
        (("hub", "allowNamedServers"), "yes"),  # a wrong type
        (("hub", "loadRoles"), ["repo2docker-viewer"]),  # a list where a mapping goes
        (("proxy", "chp", "containerSecurityContext"), "nobody"),
    ],
)
def test_the_schema_check_catches_mistakes(schema, path, bad):
    """The validation above can fail: each kind of mistake is reported."""
    broken = copy.deepcopy(values())
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    assert schema_errors(schema, broken)


def test_no_container_in_the_hub_pod_besides_the_hub_and_nothing_runs_as_root():
    hub = values()["hub"]
    for key in ("extraContainers", "initContainers"):
        assert not hub.get(key), key
    for ctx in (
        hub["containerSecurityContext"],
        values()["proxy"]["chp"]["containerSecurityContext"],
    ):
        assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] != 0
        assert ctx["allowPrivilegeEscalation"] is False
    for probes in (hub, values()["proxy"]["chp"]):
        assert probes["livenessProbe"]["enabled"] and probes["readinessProbe"]["enabled"]
    assert values()["singleuser"]["uid"] != 0


def test_the_service_deployment_is_non_root_with_probes_and_a_tls_engine():
    deployment = manifests()["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
    assert pod.get("hostNetwork") is not True and not pod.get("initContainers")
    for container in pod["containers"]:
        ctx = container["securityContext"]
        assert ctx["runAsNonRoot"] is True and not ctx.get("privileged")
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"]["drop"] == ["ALL"]
        assert container["livenessProbe"]["httpGet"] and container["readinessProbe"]["httpGet"]
    (service,) = pod["containers"]
    env = {e["name"]: e for e in service["env"]}
    prefix = env["JUPYTERHUB_SERVICE_PREFIX"]["value"]
    assert service["livenessProbe"]["httpGet"]["path"] == prefix + "health"
    assert service["readinessProbe"]["httpGet"]["path"] == prefix + "ready"
    assert service["readinessProbe"]["timeoutSeconds"] > 2  # a part's check_timeout
    # the engine is outside the pod, over TLS: no docker socket, no dind
    assert env["DOCKER_HOST"]["value"].startswith("tcp://")
    assert env["DOCKER_HOST"]["value"].endswith(":2376")
    assert env["DOCKER_TLS_VERIFY"]["value"] == "1"
    mounts = {m["mountPath"] for m in service["volumeMounts"]}
    assert env["DOCKER_CERT_PATH"]["value"] in mounts
    assert not any("docker.sock" in m for m in mounts)


def test_the_deployment_matches_the_values():
    """The hub finds the service where the Deployment's Service is, with the chart's token."""
    docs = manifests()
    hub = values()["hub"]
    svc = docs["Service"]
    url = f"http://{svc['metadata']['name']}:{svc['spec']['ports'][0]['port']}"
    assert hub["services"]["repo2docker"]["url"] == url
    assert hub["extraEnv"]["REPO2DOCKER_SERVICE_URL"] == f"{url}/services/repo2docker/"
    (container,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert "--port=8585" in container["command"]
    env = {e["name"]: e for e in container["env"]}
    assert env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "hub",
        "key": "hub.services.repo2docker.apiToken",
    }
    assert env["JUPYTERHUB_SERVICE_NAME"]["value"] == "repo2docker"
    # the hub's NetworkPolicy admits pods with this label to the hub API
    labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert labels["hub.jupyter.org/network-access-hub"] == "true"
