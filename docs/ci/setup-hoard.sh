#!/usr/bin/env bash
# The steps of the setup-hoard action (.github/actions/setup-hoard), as one script so that a
# test can run exactly what CI runs (tests/it/ci_recipes.rs). Usable from any CI:
#
#   setup-hoard.sh install     install hoard under SETUP_HOARD_ROOT unless a working one is there
#                              (restored by a cache), and put its bin/ on the job's PATH
#   setup-hoard.sh configure   export the cache variables (Actions cache tier, read-only mode)
#   setup-hoard.sh start       start the server, then set RUSTC_WRAPPER, CC, CXX and CMake's
#                              launchers, only once `hoard --version` and the server have run
#
# Every subcommand exits 0 whatever happens: the cache must never break the build. When
# something fails, it prints a `::warning::` line (an annotation on GitHub, a plain line
# elsewhere) and leaves the job's environment as it was, so the build runs uncached.
#
# Inputs, all from the environment:
#   SETUP_HOARD_VERSION     git tag or commit of hoard to install (also the install cache key)
#   SETUP_HOARD_REPO        git repository to install from (default: hoard's own)
#   SETUP_HOARD_PATH        install from this local checkout instead (`cargo install --path`)
#   SETUP_HOARD_ROOT        install root; hoard lands in its bin/ (default ~/.hoard/VERSION)
#   SETUP_HOARD_GHA         `on`: use the GitHub Actions cache tier (needs ACTIONS_RESULTS_URL
#                           and ACTIONS_RUNTIME_TOKEN in the environment)
#   SETUP_HOARD_GHA_VERSION namespace of the Actions cache tier (change it for a fresh cache)
#   SETUP_HOARD_READ_ONLY   `true`: never write to the Actions cache tier (untrusted triggers)
#   SETUP_HOARD_CC, SETUP_HOARD_CXX   compilers to wrap in CC and CXX (default gcc, g++;
#                           empty: leave CC or CXX alone)
# Outputs go where the CI reads them: GITHUB_ENV and GITHUB_PATH on GitHub; elsewhere set
# SETUP_HOARD_ENV_FILE and source it afterwards (`export` lines, PATH included).
set -u

warn() {
  echo "::warning title=hoard::$*"
}

# Exports NAME=VALUE to the later steps of the job, and to this script's later commands.
export_var() {
  export "$1=$2"
  if [ -n "${GITHUB_ENV:-}" ]; then
    printf '%s=%s\n' "$1" "$2" >>"$GITHUB_ENV"
  fi
  if [ -n "${SETUP_HOARD_ENV_FILE:-}" ]; then
    printf 'export %s=%q\n' "$1" "$2" >>"$SETUP_HOARD_ENV_FILE"
  fi
}

# Puts DIR in front of PATH for the later steps of the job, and of this script.
export_path() {
  PATH="$1:$PATH"
  if [ -n "${GITHUB_PATH:-}" ]; then
    printf '%s\n' "$1" >>"$GITHUB_PATH"
  fi
  if [ -n "${SETUP_HOARD_ENV_FILE:-}" ]; then
    # $PATH stays unexpanded: it is the sourcing shell's PATH that gets the directory.
    # shellcheck disable=SC2016
    printf 'export PATH=%q:"$PATH"\n' "$1" >>"$SETUP_HOARD_ENV_FILE"
  fi
}

# Whether the hoard at $1 runs at all: a binary for another libc or architecture, or a
# truncated cache restore, fails here rather than in the middle of the build.
runs() {
  "$1" --version >/dev/null 2>&1
}

install_root() {
  local version="${SETUP_HOARD_VERSION:-}"
  echo "${SETUP_HOARD_ROOT:-$HOME/.hoard/${version:-local}}"
}

cmd_install() {
  local root bin
  root="$(install_root)"
  bin="$root/bin/hoard"
  if runs "$bin"; then
    echo "hoard: using $("$bin" --version) from $root"
  else
    local source=()
    if [ -n "${SETUP_HOARD_PATH:-}" ]; then
      source=(--path "$SETUP_HOARD_PATH")
    elif [ -n "${SETUP_HOARD_VERSION:-}" ]; then
      # The package is hoard-cache (crates.io's `hoard` is another tool); it installs the
      # `hoard` and `hoard-server` binaries.
      source=(--git "${SETUP_HOARD_REPO:-https://github.com/hoard-cache/hoard}" --rev "$SETUP_HOARD_VERSION" hoard-cache)
    else
      warn "no version given (SETUP_HOARD_VERSION); hoard is not installed and the build runs uncached"
      return 0
    fi
    # cargo itself must not go through a wrapper that is not installed yet.
    if ! env -u RUSTC_WRAPPER cargo install --locked --root "$root" "${source[@]}"; then
      warn "could not install hoard; the build runs uncached"
      return 0
    fi
    if ! runs "$bin"; then
      warn "the installed hoard does not run; the build runs uncached"
      return 0
    fi
  fi
  export_path "$root/bin"
}

cmd_configure() {
  if [ "${SETUP_HOARD_GHA:-off}" = on ]; then
    if [ -n "${ACTIONS_RESULTS_URL:-}" ] && [ -n "${ACTIONS_RUNTIME_TOKEN:-}" ]; then
      export_var HOARD_GHA on
      if [ -n "${SETUP_HOARD_GHA_VERSION:-}" ]; then
        export_var HOARD_GHA_VERSION "$SETUP_HOARD_GHA_VERSION"
      fi
      if [ "${SETUP_HOARD_READ_ONLY:-false}" = true ]; then
        export_var HOARD_READ_ONLY_TIERS "${HOARD_READ_ONLY_TIERS:+$HOARD_READ_ONLY_TIERS,}gha"
      fi
    else
      # Only JavaScript actions see these two; the action exports them with github-script.
      warn "ACTIONS_RESULTS_URL or ACTIONS_RUNTIME_TOKEN is not set: no Actions cache tier (local cache only)"
    fi
  fi
  # Incremental compiles are never cached; CI gains nothing from them.
  export_var CARGO_INCREMENTAL 0
}

cmd_start() {
  local hoard
  if ! hoard="$(command -v hoard)" || ! runs "$hoard"; then
    warn "hoard is not installed or does not run; no compiler wrapper is set, the build runs uncached"
    return 0
  fi
  if ! "$hoard" --start-server; then
    warn "the hoard server did not start; no compiler wrapper is set, the build runs uncached"
    return 0
  fi
  export_var RUSTC_WRAPPER "$hoard"
  export_var CMAKE_C_COMPILER_LAUNCHER "$hoard"
  export_var CMAKE_CXX_COMPILER_LAUNCHER "$hoard"
  local cc="${SETUP_HOARD_CC-gcc}" cxx="${SETUP_HOARD_CXX-g++}"
  if [ -n "$cc" ]; then
    export_var CC "$hoard $cc"
  fi
  if [ -n "$cxx" ]; then
    export_var CXX "$hoard $cxx"
  fi
  echo "hoard: $("$hoard" --version) wraps the compilers of this job"
}

case "${1:-}" in
  install) cmd_install ;;
  configure) cmd_configure ;;
  start) cmd_start ;;
  *)
    echo "usage: setup-hoard.sh install|configure|start" >&2
    exit 2
    ;;
esac
exit 0
