# A container registry (CNCF Distribution, Debian's docker-registry package) for the
# docker-compose deployment, FROM the local Debian base image (no Docker Hub needed).
ARG BASE_IMAGE=local/debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends docker-registry \
 && rm -rf /var/lib/apt/lists/*
COPY registry.yml /etc/docker/registry/config.yml
VOLUME /var/lib/docker-registry
CMD ["docker-registry", "serve", "/etc/docker/registry/config.yml"]
