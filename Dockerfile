# The repo2docker-service image: the service, with repo2docker (pinned), the docker CLI and
# its buildx plugin, plus what a hub needs to run it (JupyterHub, configurable-http-proxy,
# DockerSpawner and this package's hub-side helpers). deploy/docker-compose runs it twice,
# once as the hub and once as the service; deploy/z2jh runs it as the service's Deployment.
# Build context: the repository's root.
#
#   docker build -t repo2docker-service .
#   docker build --build-arg BASE_IMAGE=local/debian:bookworm -t repo2docker-service .
#
# Runs as the unprivileged user `r2d` (uid 10001). No compilers: every Python package is
# installed from a wheel. To use the host's engine, mount its socket and add the socket's
# group (`group_add` in compose: `stat -c %g /var/run/docker.sock`); or point DOCKER_HOST at
# a remote engine (TLS) or BUILDX_BUILDER at a BuildKit builder.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# the builder CLI, pinned: repo2docker's version decides how images are built
ARG REPO2DOCKER_VERSION=2026.4.0

ENV DEBIAN_FRONTEND=noninteractive
# docker.io brings the docker CLI (the engine is elsewhere: a socket or DOCKER_HOST);
# node-configurable-http-proxy is the hub's proxy
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 python3-venv git docker.io node-configurable-http-proxy ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# repo2docker needs `docker buildx`; bookworm has no buildx package: take Debian trixie's
# (a static Go binary) from the same mirror, without touching the image's apt sources
RUN set -eu; \
    mirror="$(awk '$1 == "deb" { print ($2 ~ /^\[/ ? $3 : $2); exit }' /etc/apt/sources.list 2>/dev/null || true)"; \
    [ -n "$mirror" ] || mirror="$(awk '$1 == "URIs:" { print $2; exit }' /etc/apt/sources.list.d/debian.sources)"; \
    tmp="$(mktemp -d)"; mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"; \
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" > "$tmp/trixie.list"; \
    opts="-o Dir::Etc::SourceList=$tmp/trixie.list -o Dir::Etc::SourceParts=- -o Dir::State::Lists=$tmp/lists -o Dir::Cache=$tmp/cache -o APT::Sandbox::User=root"; \
    apt-get $opts -q update; \
    (cd "$tmp" && apt-get $opts -q download docker-buildx); \
    dpkg -i "$tmp"/docker-buildx_*.deb; \
    rm -rf "$tmp"; \
    docker buildx version

RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# dependencies first (cached while only the code changes), wheels only (no compiler needed)
COPY pyproject.toml /src/pyproject.toml
RUN python3 -c "import tomllib; p = tomllib.load(open('/src/pyproject.toml', 'rb'))['project']; print(chr(10).join(p['dependencies'] + p['optional-dependencies']['dockerspawner']))" > /tmp/requirements.txt \
 && pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements.txt \
      "jupyter-repo2docker==${REPO2DOCKER_VERSION}" \
 && rm /tmp/requirements.txt
COPY README.md LICENSE /src/
COPY repo2docker_service /src/repo2docker_service
RUN pip install --no-cache-dir --no-deps /src \
 && rm -rf /src \
 && repo2docker-service --version \
 && test "$(repo2docker --version)" = "${REPO2DOCKER_VERSION}" \
 && ! command -v gcc && ! command -v cc

# the unprivileged user; the hub's data directory is theirs (a named volume mounted there
# starts with this ownership)
RUN useradd --system --create-home --uid 10001 --user-group --shell /usr/sbin/nologin r2d \
 && mkdir -p /srv/jupyterhub/data \
 && chown -R r2d:r2d /srv/jupyterhub
USER 10001:10001
WORKDIR /srv/jupyterhub
CMD ["repo2docker-service"]
