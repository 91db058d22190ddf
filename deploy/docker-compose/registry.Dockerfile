# A container registry (CNCF Distribution, Debian's docker-registry package) for the
# docker-compose deployment, FROM Debian bookworm (BASE_IMAGE; a local image works offline).
# It runs as the package's unprivileged user docker-registry.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends docker-registry \
 && rm -rf /var/lib/apt/lists/*
COPY registry.yml /etc/docker/registry/config.yml
VOLUME /var/lib/docker-registry
USER docker-registry
CMD ["docker-registry", "serve", "/etc/docker/registry/config.yml"]
