"""The README's jupyterhub_config.py snippet is the file the hub tests load."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_readme_snippet_is_deploy_config():
    readme = (REPO / "README.md").read_text()
    config = (REPO / "deploy" / "jupyterhub_config.py").read_text()
    assert f"```python\n{config}```" in readme


def test_readme_names_the_two_commands():
    readme = (REPO / "README.md").read_text()
    assert "bash scripts/demo.sh" in readme
    assert "bash scripts/test.sh" in readme
    assert "scripts/test.sh" in (REPO / ".ci" / "run").read_text()
