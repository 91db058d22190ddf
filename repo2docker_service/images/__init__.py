"""Image naming and image catalogs (local Docker engine, OCI registry)."""
