#!/usr/bin/env bash
# Prepares the host of a container build (cibuildwheel's manylinux images, or any `docker
# run` as root) so that the compilers inside go through the host's hoard, and straight to the
# real compiler when hoard is missing:
#   * HOARD_MOUNT (default $RUNNER_TEMP/hoard, else /tmp/hoard-mount) gets shim/ (hoard-cc under
#     the compilers' names; always) and bin/hoard (the static wrapper, only when it runs here);
#     the container mounts it read-only at /opt/hoard and puts /opt/hoard/shim first on PATH.
#   * a hoard server runs as root, the uid the container's compilers run as (client and server
#     each accept only their own uid), its socket in a root-only directory the container
#     mounts at the same path. The server cannot see the container's build directory; hoard
#     proves that per directory and then moves the entries over the socket.
# Outputs, for the later steps: CIBW_CONTAINER_ENGINE (the mounts), CIBW_ENVIRONMENT_LINUX
# (PATH, HOARD_BIN, HOARD_SERVER_UDS), written to GITHUB_ENV, or as export lines to
# SETUP_HOARD_ENV_FILE elsewhere. Exits 0 whatever happens: the build must still run.
set -u
here=$(cd "$(dirname "$0")" && pwd -P)
mount=${HOARD_MOUNT:-${RUNNER_TEMP:-/tmp}/hoard-mount}
sock_dir=${HOARD_CONTAINER_SOCKET_DIR:-/var/run/hoard-ci}

warn() {
  echo "::warning title=hoard::$*"
}

export_var() {
  export "$1=$2"
  if [ -n "${GITHUB_ENV:-}" ]; then
    printf '%s=%s\n' "$1" "$2" >>"$GITHUB_ENV"
  fi
  if [ -n "${SETUP_HOARD_ENV_FILE:-}" ]; then
    printf 'export %s=%q\n' "$1" "$2" >>"$SETUP_HOARD_ENV_FILE"
  fi
}

# Root for the server; sudo keeps the cache variables (Actions cache, tiers) it needs.
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  else
    sudo --preserve-env=PATH,HOME,ACTIONS_RESULTS_URL,ACTIONS_RUNTIME_TOKEN,HOARD_GHA,HOARD_GHA_VERSION,HOARD_READ_ONLY_TIERS,HOARD_DIR "$@"
  fi
}

"$here/install-shim.sh" "$mount/shim" || {
  warn "could not write the compiler shims to $mount/shim"
  exit 0
}
mounts="--volume $mount:/opt/hoard:ro"
environment="PATH=/opt/hoard/shim:\$PATH HOARD_BIN=/opt/hoard/bin/hoard"
hoard=$(command -v hoard) || hoard=
if [ -n "$hoard" ] && "$hoard" --version >/dev/null 2>&1; then
  mkdir -p "$mount/bin" && cp "$hoard" "$mount/bin/hoard"
  # The server's directory: root's own and closed to everyone else, as the server demands.
  if as_root install -d -m 0700 -o 0 -g 0 "$sock_dir" &&
    as_root env HOARD_SERVER_UDS="$sock_dir/server.sock" "$hoard" --start-server; then
    mounts="$mounts --volume $sock_dir:$sock_dir"
    environment="$environment HOARD_SERVER_UDS=$sock_dir/server.sock"
  else
    warn "the root hoard server did not start; compiles in the container start their own"
  fi
else
  warn "hoard is not installed or does not run; the container's compilers run uncached"
fi
export_var CIBW_CONTAINER_ENGINE "docker; create_args: $mounts"
export_var CIBW_ENVIRONMENT_LINUX "$environment"
exit 0
