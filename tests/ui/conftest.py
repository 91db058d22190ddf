"""Browser fixtures (browser, page, artifacts) live in tests/conftest.py: one per session."""
