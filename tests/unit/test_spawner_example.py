"""The bundled example must stay startable by this hub: same JupyterHub major.minor."""

import re
from pathlib import Path

import jupyterhub

DOCKERFILE = Path(__file__).resolve().parents[2] / "examples" / "hello" / "Dockerfile"


def test_example_pins_the_hubs_jupyterhub_major_minor():
    pin = re.search(r'"jupyterhub==(\d+)\.(\d+)\.\*"', DOCKERFILE.read_text())
    assert pin, "examples/hello/Dockerfile must pin jupyterhub==<major>.<minor>.*"
    major, minor = jupyterhub.__version__.split(".")[:2]
    assert (pin.group(1), pin.group(2)) == (major, minor), (
        f"the hub runs JupyterHub {jupyterhub.__version__}; update the pin in {DOCKERFILE}"
    )


def test_example_starts_jupyterhub_singleuser_as_jovyan():
    text = DOCKERFILE.read_text()
    assert "FROM local/debian:bookworm" in text
    assert "--uid 1000" in text and "USER jovyan" in text
    assert 'CMD ["jupyterhub-singleuser"]' in text
