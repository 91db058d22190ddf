#!/usr/bin/env bash
# Set up the real parts that repo2docker-service's tests and demo use, on a Debian bookworm
# machine, as root. Idempotent: every step checks first and skips what is already in place, so a
# second run takes seconds.
#
#   bash scripts/setup.sh
#
# Steps: apt packages; docker buildx + compose plugins (Debian trixie .debs); configurable-http-
# proxy (npm); the npm clients and axe-core the tests drive (.cache/npm-clients); the Python
# venv at $REPO/.venv; dockerd; a registry on 127.0.0.1:5000; the local base image local/debian:bookworm
# (debootstrap, cached as a tarball).
#
# Environment:
#   R2DS_STATE_DIR      daemon logs, registry config and storage (default
#                       /var/lib/repo2docker-service-dev)
#   XDG_CACHE_HOME      the base image tarball goes to $XDG_CACHE_HOME/repo2docker-service
#                       (default ~/.cache/repo2docker-service)
#   R2DS_DEBIAN_MIRROR  Debian mirror URI; by default it is read from the apt sources of this
#                       machine (never hard-coded here)
#   PYTHON              interpreter used to create the venv (default python3, needs >= 3.11)
#
# Docker client choice: the engine is Debian's docker.io 20.10 (API 1.41). Some machines also
# have a newer standalone client at /usr/local/bin/docker (e.g. 28.x, API 1.50) that comes
# before Debian's /usr/bin/docker on PATH. We keep whichever `docker` PATH gives, because that
# is what repo2docker, the service and the tests run: newer clients negotiate the API version
# down to the daemon's (checked below: the daemon step fails if the client cannot talk to it),
# and both the 20.10 and the 28.x client look for CLI plugins in /usr/libexec/docker/cli-plugins,
# which is where the trixie docker-buildx / docker-compose packages install them. Python clients
# (docker-py in repo2docker, aiodocker in the service) negotiate the API version too.
set -Eeuo pipefail
shopt -s nullglob

REPO="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${R2DS_STATE_DIR:-/var/lib/repo2docker-service-dev}"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/repo2docker-service"
BASE_IMAGE="local/debian:bookworm"
BASE_TARBALL="$CACHE_DIR/debian-bookworm-minbase.tar"
HOST_CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt"
REGISTRY_ADDR="127.0.0.1:5000"
REGISTRY_URL="http://$REGISTRY_ADDR"
VENV="$REPO/.venv"
NPM_CLIENTS="$REPO/.cache/npm-clients"
PYTHON="${PYTHON:-python3}"
DEBIAN_KEYRING="/usr/share/keyrings/debian-archive-keyring.gpg"
APT_PACKAGES=(docker.io docker-registry debootstrap git chromium apache2-utils curl wrk
  ca-certificates python3 python3-venv)

export DEBIAN_FRONTEND=noninteractive

STEP_NAMES=()
STEP_RESULTS=()
CURRENT_STEP="(start)"
STEP_STATUS=""
STEP_NOTE=""
SCRIPT_START=$EPOCHREALTIME
TMP_DIRS=()
TMP=""

log() { printf '    %s\n' "$*" >&2; }
die() {
  printf '\nsetup.sh: ERROR in step "%s": %s\n' "$CURRENT_STEP" "$*" >&2
  exit 1
}
cleanup() {
  local d
  for d in "${TMP_DIRS[@]}"; do
    # debootstrap mounts /proc and /sys inside the target; never rm -rf through a mount.
    if [[ -d $d ]]; then
      umount -R "$d/rootfs/proc" 2>/dev/null || true
      umount -R "$d/rootfs/sys" 2>/dev/null || true
      if ! grep -q " $d/" /proc/mounts; then rm -rf -- "$d"; fi
    fi
  done
}
trap cleanup EXIT
trap 'printf "setup.sh: command failed (exit %s) at line %s in step \"%s\"\n" "$?" "$LINENO" "$CURRENT_STEP" >&2' ERR

new_tmp_dir() { # sets TMP (not via $(...): the EXIT trap must see TMP_DIRS)
  TMP="$(mktemp -d "${TMPDIR:-/tmp}/r2ds-setup.XXXXXX")"
  TMP_DIRS+=("$TMP")
}

elapsed_since() { # START -> seconds with one decimal
  awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

skipped() { STEP_STATUS=skipped; STEP_NOTE="$*"; }
did() { STEP_STATUS=done; STEP_NOTE="$*"; }

run_step() { # NAME FUNCTION
  local name="$1" fn="$2" start
  CURRENT_STEP="$name"
  STEP_STATUS="" STEP_NOTE=""
  printf '==> %s\n' "$name" >&2
  start=$EPOCHREALTIME
  "$fn"
  local secs
  secs="$(elapsed_since "$start")"
  printf '    [%s in %ss] %s\n' "$STEP_STATUS" "$secs" "$STEP_NOTE" >&2
  STEP_NAMES+=("$name")
  STEP_RESULTS+=("$(printf '%-7s %6ss  %s' "$STEP_STATUS" "$secs" "$STEP_NOTE")")
}

wait_for() { # TIMEOUT_SECONDS LOGFILE WHAT COMMAND...
  local timeout="$1" logfile="$2" what="$3"
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      printf '    last lines of %s:\n' "$logfile" >&2
      tail -n 30 "$logfile" 2>/dev/null | sed 's/^/      /' >&2 || true
      die "$what did not answer within ${timeout}s (log: $logfile)"
    fi
    sleep 0.5
  done
}

# The Debian mirror URI of this machine's apt sources (deb822 *.sources first, then one-line
# sources.list entries), for the stanza that carries the release's own suite (not -security).
debian_mirror() {
  if [[ -n ${R2DS_DEBIAN_MIRROR:-} ]]; then
    printf '%s\n' "$R2DS_DEBIAN_MIRROR"
    return
  fi
  local codename uri=""
  codename="$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-bookworm}")"
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    uri="$(awk -v suite="$codename" '
      BEGIN { RS = ""; FS = "\n" }
      {
        uris = ""; suites = ""; types = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          line = $i
          if (line ~ /^[ \t]*#/) continue
          key = tolower(line); sub(/:.*/, "", key)
          val = line; sub(/^[^:]*:[ \t]*/, "", val)
          if (key == "uris") uris = val
          else if (key == "suites") suites = val
          else if (key == "types") types = val
          else if (key == "enabled") enabled = tolower(val)
        }
        if (enabled != "no" && (" " types " ") ~ / deb / && (" " suites " ") ~ (" " suite " ")) {
          split(uris, u, /[ \t]+/); print u[1]; exit
        }
      }' "$f")"
    if [[ -n $uri ]]; then
      printf '%s\n' "$uri"
      return
    fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    uri="$(awk -v suite="$codename" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }' "$f")"
    if [[ -n $uri ]]; then
      printf '%s\n' "$uri"
      return
    fi
  done
  die "no Debian mirror for suite '$codename' found in /etc/apt/sources.list{,.d/}; set R2DS_DEBIAN_MIRROR"
}

# --------------------------------------------------------------------------------------------
step_apt_packages() {
  local wanted=("${APT_PACKAGES[@]}") missing=() p status
  # Node + npm for configurable-http-proxy: only from Debian when no node/npm is present (a
  # machine may have NodeSource's nodejs, which bundles npm and conflicts with Debian's npm).
  if ! command -v npm >/dev/null 2>&1; then wanted+=(nodejs npm); fi
  for p in "${wanted[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)"
    [[ $status == ii* ]] || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    skipped "all ${#wanted[@]} packages installed"
    return
  fi
  log "installing: ${missing[*]}"
  apt-get update
  apt-get install -y "${missing[@]}"
  did "installed ${missing[*]}"
}

step_docker_plugins() {
  if docker buildx version >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    skipped "$(docker buildx version | head -n1); $(docker compose version | head -n1)"
    return
  fi
  # bookworm has no buildx and only the old Python compose: take Debian trixie's packages
  # (static Go binaries depending on libc6 only). A temporary sources list and separate apt
  # state/cache directories leave the system's apt state untouched.
  local mirror tmp
  mirror="$(debian_mirror)"
  new_tmp_dir
  tmp="$TMP"
  mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/debs"
  printf 'deb [signed-by=%s] %s trixie main\n' "$DEBIAN_KEYRING" "$mirror" >"$tmp/trixie.list"
  local opts=(
    -o "Dir::Etc::SourceList=$tmp/trixie.list"
    -o "Dir::Etc::SourceParts=-"
    -o "Dir::State::Lists=$tmp/lists"
    -o "Dir::Cache=$tmp/cache"
    -o "APT::Sandbox::User=root"
  )
  log "fetching docker-buildx and docker-compose from trixie ($mirror)"
  apt-get "${opts[@]}" -q update
  (cd "$tmp/debs" && apt-get "${opts[@]}" -q download docker-buildx docker-compose)
  dpkg -i "$tmp"/debs/*.deb
  docker buildx version >/dev/null || die "docker buildx still does not work after dpkg -i"
  docker compose version >/dev/null || die "docker compose still does not work after dpkg -i"
  did "installed $(cd "$tmp/debs" && echo *.deb)"
}

step_chp() {
  if configurable-http-proxy --version >/dev/null 2>&1; then
    skipped "configurable-http-proxy $(configurable-http-proxy --version 2>/dev/null)"
    return
  fi
  npm install --global --no-fund --no-audit configurable-http-proxy
  configurable-http-proxy --version >/dev/null 2>&1 ||
    die "configurable-http-proxy not on PATH after npm install -g (npm prefix: $(npm config get prefix))"
  did "npm installed configurable-http-proxy $(configurable-http-proxy --version 2>/dev/null)"
}

# The npm clients the tests drive (e.g. @jupyterhub/binderhub-client), pinned by the committed
# tests/rig/npm-clients/package-lock.json, installed with `npm ci` into .cache/npm-clients/.
step_npm_clients() {
  local src="$REPO/tests/rig/npm-clients" dest="$NPM_CLIENTS" hash stamp
  hash="$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)"
  stamp="$dest/.setup-stamp-$hash"
  if [[ -f $stamp && -d $dest/node_modules ]]; then
    skipped "$dest (lock unchanged)"
    return
  fi
  mkdir -p "$dest"
  rm -f "$dest"/.setup-stamp-*
  cp "$src/package.json" "$src/package-lock.json" "$dest/"
  (cd "$dest" && npm ci --no-fund --no-audit --loglevel=error) ||
    die "npm ci in $dest failed (is the npm registry reachable?)"
  touch "$stamp"
  did "npm ci into $dest"
}

step_venv() {
  local hash stamp created=""
  hash="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)"
  stamp="$VENV/.setup-stamp-$hash"
  if [[ ! -x $VENV/bin/python ]]; then
    "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' ||
      die "$PYTHON is older than 3.11; set PYTHON=/path/to/python3.11+"
    "$PYTHON" -m venv "$VENV"
    created="created $VENV; "
  fi
  if [[ -f $stamp ]]; then
    skipped "${created}pyproject.toml unchanged (stamp $(basename "$stamp" | cut -c1-24)...)"
    return
  fi
  "$VENV/bin/python" -m pip install --quiet -e "$REPO[test,db]"
  rm -f "$VENV"/.setup-stamp-*
  : >"$stamp"
  did "${created}pip install -e '.[test,db]' ($("$VENV/bin/python" --version))"
}

step_dockerd() {
  if docker info >/dev/null 2>&1; then
    skipped "docker engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
    return
  fi
  mkdir -p "$STATE_DIR"
  local logfile="$STATE_DIR/dockerd.log"
  log "starting dockerd (log: $logfile)"
  # setsid + nohup: the daemon gets its own session and outlives this script.
  setsid nohup dockerd >>"$logfile" 2>&1 </dev/null &
  wait_for 60 "$logfile" "dockerd" docker info
  did "started dockerd pid $(cat /var/run/docker.pid 2>/dev/null || echo '?'), log $logfile"
}

step_registry() {
  if curl -fsS --max-time 5 "$REGISTRY_URL/v2/" >/dev/null 2>&1; then
    skipped "registry answers at $REGISTRY_URL"
    return
  fi
  local dir="$STATE_DIR/registry"
  local config="$dir/config.yml" logfile="$STATE_DIR/registry.log"
  mkdir -p "$dir/data"
  cat >"$config" <<EOF
# Written by scripts/setup.sh: local test registry (CNCF Distribution, Debian's docker-registry).
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
  headers:
    X-Content-Type-Options: [nosniff]
EOF
  log "starting docker-registry serve $config (log: $logfile)"
  setsid nohup docker-registry serve "$config" >>"$logfile" 2>&1 </dev/null &
  wait_for 30 "$logfile" "the registry at $REGISTRY_URL/v2/" curl -fsS --max-time 2 "$REGISTRY_URL/v2/"
  did "started registry at $REGISTRY_URL, storage $dir/data, log $logfile"
}

tarball_has_ca_bundle() {
  [[ -s $BASE_TARBALL ]] &&
    tar -tf "$BASE_TARBALL" ./etc/ssl/certs/ca-certificates.crt \
      ./usr/local/share/ca-certificates/host-ca.crt >/dev/null 2>&1
}

step_base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    skipped "$BASE_IMAGE exists"
    return
  fi
  local how="imported cached $BASE_TARBALL"
  if ! tarball_has_ca_bundle; then
    local mirror tmp rootfs
    mirror="$(debian_mirror)"
    new_tmp_dir
    tmp="$TMP"
    rootfs="$tmp/rootfs"
    log "debootstrap --variant=minbase bookworm from $mirror (1-2 minutes)"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
      tail -n 30 "$tmp/debootstrap.log" >&2
      die "debootstrap failed"
    }
    # TLS from containers goes through an intercepting proxy: bake in the host's CA bundle, and
    # keep a .crt copy where update-ca-certificates picks it up again when a derived image
    # installs Debian's ca-certificates.
    install -D -m 0644 "$HOST_CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    install -D -m 0644 "$HOST_CA_BUNDLE" "$rootfs/usr/local/share/ca-certificates/host-ca.crt"
    rm -f "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin
    mkdir -p "$CACHE_DIR"
    tar --numeric-owner -C "$rootfs" -cf "$BASE_TARBALL.tmp" .
    mv -f "$BASE_TARBALL.tmp" "$BASE_TARBALL"
    tarball_has_ca_bundle || die "$BASE_TARBALL lacks the CA bundle"
    how="debootstrapped, cached $BASE_TARBALL ($(du -h "$BASE_TARBALL" | cut -f1)) and imported"
  fi
  local ca=/etc/ssl/certs/ca-certificates.crt
  docker import \
    --change "ENV SSL_CERT_FILE=$ca" \
    --change "ENV REQUESTS_CA_BUNDLE=$ca" \
    --change "ENV PIP_CERT=$ca" \
    --change 'CMD ["/bin/bash"]' \
    --message "repo2docker-service dev base image (scripts/setup.sh)" \
    "$BASE_TARBALL" "$BASE_IMAGE" >/dev/null
  did "$how"
}

# --------------------------------------------------------------------------------------------
[[ $(id -u) == 0 ]] || { echo "setup.sh: run as root" >&2; exit 1; }

run_step "apt packages" step_apt_packages
run_step "docker buildx + compose plugins" step_docker_plugins
run_step "configurable-http-proxy" step_chp
run_step "npm test clients" step_npm_clients
run_step "python venv" step_venv
run_step "docker engine" step_dockerd
run_step "registry" step_registry
run_step "base image $BASE_IMAGE" step_base_image
CURRENT_STEP="summary"

total="$(elapsed_since "$SCRIPT_START")"
{
  echo
  echo "== setup.sh summary (${total}s)"
  for i in "${!STEP_NAMES[@]}"; do
    printf '  %-34s %s\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}"
  done
  echo
  printf '  %-18s %s\n' "docker client" "$(command -v docker) $(docker version --format '{{.Client.Version}} (API {{.Client.APIVersion}})')"
  printf '  %-18s %s\n' "docker server" "$(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
  printf '  %-18s %s\n' "buildx" "$(docker buildx version | head -n1)"
  printf '  %-18s %s\n' "compose" "$(docker compose version | head -n1)"
  printf '  %-18s %s\n' "registry" "$REGISTRY_URL (state $STATE_DIR/registry)"
  printf '  %-18s %s\n' "base image" "$BASE_IMAGE $(docker image inspect --format '{{.Id}} {{.Size}}' "$BASE_IMAGE" | awk '{ printf "%s %.0f MB", substr($1, 1, 19), $2 / 1e6 }')"
  printf '  %-18s %s\n' "venv python" "$VENV/bin/python ($("$VENV/bin/python" --version 2>&1))"
  printf '  %-18s %s\n' "chromium" "$(command -v chromium) ($(chromium --version 2>/dev/null | head -n1))"
  printf '  %-18s %s\n' "chp" "$(command -v configurable-http-proxy) $(configurable-http-proxy --version 2>/dev/null)"
  echo
  echo "  Run the tests: cd $REPO && .venv/bin/pytest"
} >&2
