"""``python -m repo2docker_service``."""

from .app import main

if __name__ == "__main__":
    main()
