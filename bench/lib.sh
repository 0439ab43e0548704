# shellcheck shell=bash
# Helpers shared by bench/c.sh and bench/rust.sh: a private work directory, a clean
# environment, hoard's release build, the anchors' servers, timing, the interleaved
# measurement loop, the table and the ratio lines. Sourced, never run.

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)

# The anchors: a tool that is not installed is reported as such and skipped. (Used by the
# scripts that source this file.)
# shellcheck disable=SC2034
CCACHE=${CCACHE_BIN:-$(command -v ccache || true)}
SCCACHE=${SCCACHE_BIN:-/opt/sccache/bin/sccache}
ZCCACHE=${ZCCACHE_BIN:-/opt/zccache/bin/zccache}
KACHE=${KACHE_BIN:-/opt/kache/bin/kache}
# HOARD_BIN=/path/to/hoard benchmarks that binary instead of building this checkout.
HOARD=${HOARD_BIN:-}

say() { echo "bench: $*" >&2; }

installed() { [ -n "$1" ] && [ -x "$1" ]; }

# The first version number a tool's --version prints.
version_of() {
  "$1" --version 2>/dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' | head -1 || true
}

# bench_init NAME: a private work directory $W (removed at exit, with every server this run
# started stopped), and an environment without the caller's cache settings.
bench_init() {
  local v
  for v in $(compgen -e); do
    case $v in
    HOARD_* | SCCACHE_* | CCACHE_* | ZCCACHE_* | KACHE_* | RUSTC_WRAPPER | RUSTC_WORKSPACE_WRAPPER | CARGO_BUILD_RUSTC_WRAPPER | CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER)
      unset "$v"
      ;;
    esac
  done
  W=$(mktemp -d "${TMPDIR:-/tmp}/hoard-bench-$1.XXXXXX")
  # An empty config file, so the caller's ~/.config/hoard/config.toml (remote tiers, ...)
  # does not take part.
  : >"$W/hoard-config.toml"
  export HOARD_CONFIG=$W/hoard-config.toml
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

# Stops every server this run may have started, then removes $W.
bench_cleanup() {
  local variant mode
  if [ -n "$HOARD" ]; then
    for variant in v2 v1; do
      hoard_stop "$variant"
    done
  fi
  if installed "$SCCACHE"; then
    for mode in 0 1; do
      [ -d "$W/sccache$mode" ] && sccache_stop "$mode"
    done
  fi
  if installed "$ZCCACHE" && [ -e "$W/zccache-used" ]; then
    zccache_empty
  fi
  if installed "$KACHE" && [ -d "$W/kache" ]; then
    kache_stop
  fi
  rm -rf "$W"
}

# Builds hoard and hoard-server in release into $CARGO_TARGET_DIR (default: the repository's
# target/), unless HOARD_BIN names a binary already.
build_hoard() {
  if [ -n "$HOARD" ]; then
    say "using HOARD_BIN=$HOARD"
    return
  fi
  local target=${CARGO_TARGET_DIR:-$ROOT/target}
  case $target in /*) ;; *) target=$PWD/$target ;; esac
  say "building hoard (cargo build --release --bins) into $target"
  (cd "$ROOT" && CARGO_TARGET_DIR=$target cargo build --release --bins --quiet) >&2
  HOARD=$target/release/hoard
}

# --- the tools' servers and caches ------------------------------------------------------

# hoard_use v2|v1: points the environment at that variant's private cache directory and
# socket. v1 is a v1-only client: the server runs the whole pipeline.
hoard_use() {
  export HOARD_DIR=$W/hoard-$1 HOARD_SERVER_UDS=$W/hoard-$1.sock HOARD_IDLE_TIMEOUT=0
  if [ "$1" = v1 ]; then export HOARD_PROTOCOL=1; else unset HOARD_PROTOCOL; fi
}

hoard_stop() { # v2|v1
  [ -e "$W/hoard-$1.sock" ] || return 0
  HOARD_DIR=$W/hoard-$1 HOARD_SERVER_UDS=$W/hoard-$1.sock "$HOARD" --stop-server >/dev/null 2>&1 || true
}

# An empty cache: the server stopped and HOARD_DIR removed.
hoard_reset() { # v2|v1
  hoard_stop "$1"
  rm -rf "$W/hoard-$1"
}

# The server's counters since the last --zero-stats, as numbers in the order of
# HOARD_COUNTERS.
HOARD_COUNTERS="cache_hits cache_misses non_cacheable local_fallbacks cache_errors"
hoard_counts() {
  local json field out=""
  json=$("$HOARD" --show-stats --json 2>/dev/null) || json=""
  for field in $HOARD_COUNTERS; do
    out+="$(grep -oE "\"$field\": *[0-9]+" <<<"$json" | grep -oE '[0-9]+$' || echo '?') "
  done
  echo "${out% }"
}

# One line summing the counters hoard_counts appended to FILE, one line per build.
hoard_counts_total() { # FILE
  [ -s "$1" ] || {
    echo "no counters"
    return
  }
  awk -v names="$HOARD_COUNTERS" 'BEGIN { n = split(names, name, " ") }
    { for (i = 1; i <= n; i++) { if ($i == "?") bad = 1; else sum[i] += $i } }
    END { if (bad) printf "(some counters unavailable) ";
          for (i = 1; i <= n; i++) printf "%s=%d%s", name[i], sum[i], (i < n ? " " : "\n") }' "$1"
}

sccache_env() { # MODE: 0 = server mode, 1 = client-side mode
  export SCCACHE_DIR=$W/sccache$1 SCCACHE_CLIENT_SIDE=$1 SCCACHE_IDLE_TIMEOUT=0 SCCACHE_SERVER_PORT=$((4300 + $1))
}

sccache_stop() { # MODE
  (
    sccache_env "$1"
    "$SCCACHE" --stop-server >/dev/null 2>&1 || true
  )
}

# zccache keeps one cache under ~/.zccache whatever is configured, and `zccache clear` only
# works through a running daemon. Its `stop` can return before the daemon is gone: ask until
# `status` says it is not running.
zccache_stop() {
  local i
  for ((i = 0; i < 40; i++)); do
    "$ZCCACHE" status >/dev/null 2>&1 || return 0
    "$ZCCACHE" stop >/dev/null 2>&1 || true
    sleep 0.25
  done
  say "warning: the zccache daemon did not stop"
}

# An empty zccache and no daemon.
zccache_empty() {
  : >"$W/zccache-used"
  "$ZCCACHE" start >/dev/null 2>&1 || true
  "$ZCCACHE" clear >/dev/null 2>&1 || true
  zccache_stop
}

# kache starts a daemon (kache-engine) whose socket and state are in KACHE_CACHE_DIR: stop it
# before removing that directory, or it outlives the run.
kache_stop() {
  local i
  export KACHE_CACHE_DIR=$W/kache
  for ((i = 0; i < 40; i++)); do
    "$KACHE" daemon stop >/dev/null 2>&1 || true
    "$KACHE" daemon status 2>/dev/null | grep -q 'not running' && break
    sleep 0.25
  done
  unset KACHE_CACHE_DIR
}

# --- projects and servers of the tier benchmarks -----------------------------------------

# lay_out_projects "c rust" CORPUS: the C corpus in CORPUS with its Makefile at $W/Makefile
# (outputs in $W/out), and the cargo project at $W/rustapp with its dependencies fetched;
# only the projects named.
lay_out_projects() {
  if [[ " $1 " == *" c "* ]]; then
    say "laying out the C corpus in $2"
    "$BENCH/c-corpus.sh" "$2"
    mkdir -p "$W/out"
    "$BENCH/c-makefile.sh" "$2" "$W/out" >"$W/Makefile"
    find "$2" -type f -exec cat {} + >/dev/null
  fi
  if [[ " $1 " == *" rust "* ]]; then
    cp -r "$BENCH/rustapp" "$W/rustapp"
    rm -rf "$W/rustapp/target"
    say "fetching the cargo project's dependencies"
    (cd "$W/rustapp" && cargo fetch --locked --quiet)
  fi
}

# A free TCP port on the loopback interface.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until something listens on 127.0.0.1:PORT (at most 10 s).
wait_port() {
  local i
  for ((i = 0; i < 100; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# project_build c|rust: one build of that project (as lay_out_projects laid it out) through
# hoard, from no outputs; prints its time (see timed).
project_build() {
  if [ "$1" = c ]; then
    make -s -f "$W/Makefile" clean >/dev/null
    timed make -s -j2 -f "$W/Makefile" "L=$HOARD"
  else
    rm -rf "$W/rust-target"
    (cd "$W/rustapp" && CARGO_TARGET_DIR=$W/rust-target CARGO_INCREMENTAL=0 RUSTC_WRAPPER=$HOARD \
      timed cargo build --offline --locked --quiet)
  fi
}

# stat_fields TIER FIELD...: fields of the current machine's `hoard --show-stats --json`, on
# one line: a top-level field (cache_hits, ...) as it is, or `tier.F`, field F of TIER's item
# in `tiers`; 0 for a field that is absent, "?" for each when the stats cannot be read.
stat_fields() {
  local tier=$1 out
  shift
  if ! out=$("$HOARD" --show-stats --json 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
t = next((t for t in s.get("tiers", []) if t.get("name") == sys.argv[1]), {})
print(" ".join(str(t.get(f[5:], 0) if f.startswith("tier.") else s.get(f, 0)) for f in sys.argv[2:]))' "$tier" "$@" 2>/dev/null); then
    out=$(printf '? %.0s' "$@")
  fi
  echo "${out% }"
}

# wait_tier_writes TIER: waits (at most 60 s) until TIER's writes counter, on the current
# machine's server, is above 0 and has not moved for a second (its writes are
# asynchronous); prints the count.
wait_tier_writes() {
  local last=-1 now=0 i
  for ((i = 0; i < 60; i++)); do
    now=$(stat_fields "$1" tier.writes)
    [ "$now" != "?" ] && [ "$now" -gt 0 ] && [ "$now" = "$last" ] && break
    last=$now
    sleep 1
  done
  echo "$now"
}

# journal_tier FILE TIER: "HITS LOOKUPS MEAN_MS FIRST_MS REST_MS" of a HOARD_JOURNAL: its
# hits; the invocations that looked their entry up in TIER (their `tier` field), the mean of
# their lookup_ms, the first one's (in journal order) and the median of the others' ("-"
# where there are none).
journal_tier() {
  python3 - "$1" "$2" <<'PY'
import json, statistics, sys
hits, ms = 0, []
try:
    lines = open(sys.argv[1]).read().splitlines()
except OSError:
    lines = []
for line in lines:
    j = json.loads(line)
    hits += j.get("result") == "hit"
    if j.get("tier") == sys.argv[2]:
        ms.append(j.get("lookup_ms", 0.0))
f = lambda x: f"{x:.2f}"
print(hits, len(ms), f(sum(ms) / len(ms)) if ms else "-", f(ms[0]) if ms else "-",
      f(statistics.median(ms[1:])) if len(ms) > 1 else "-")
PY
}

# --- BuildGrid, a REAPI server for the benchmarks ------------------------------------------

# The version tested here (the newest that runs on Python 3.11).
BUILDGRID_VERSION=0.4.4

# find_bgd: sets BGD to BuildGrid's `bgd`: BGD_BIN, else the one on PATH, else the one in
# target/test-venv (the tests' venv), else target/bench-venv/bin/bgd, installed there with pip
# (buildgrid==$BUILDGRID_VERSION, said on stderr) when missing; that venv is kept between
# runs, as target/ is. Fails when none can be had.
find_bgd() {
  local target=${CARGO_TARGET_DIR:-$ROOT/target} c
  case $target in /*) ;; *) target=$PWD/$target ;; esac
  for c in "${BGD_BIN:-}" "$(command -v bgd || true)" "$ROOT/target/test-venv/bin/bgd" "$target/bench-venv/bin/bgd"; do
    if installed "$c"; then
      BGD=$c
      return 0
    fi
  done
  say "bgd not found: installing buildgrid==$BUILDGRID_VERSION into $target/bench-venv with pip"
  { python3 -m venv "$target/bench-venv" &&
    "$target/bench-venv/bin/pip" install -q "buildgrid==$BUILDGRID_VERSION"; } </dev/null >&2 || return 1
  BGD=$target/bench-venv/bin/bgd
  installed "$BGD"
}

# The version of the buildgrid package beside $BGD.
bgd_version() {
  "$(dirname "$BGD")/python" -c 'from importlib.metadata import version; print(version("buildgrid"))' 2>/dev/null || echo '?'
}

# start_buildgrid DIR [BGD_FLAGS...]: a BuildGrid server in DIR (its config, log, pid file
# and disk CAS) serving the action cache, the CAS and ByteStream for the instance "" on a
# free loopback port, authorization off, in a process group of its own; waits (at most 60 s)
# for its port. Sets BGD_PORT and BGD_PGID. (`-vv` logs every request, for counting them.)
start_buildgrid() {
  local dir=$1 i
  shift
  mkdir -p "$dir/cas"
  BGD_PORT=$(free_port)
  cat >"$dir/config.yml" <<EOF
server:
  - !channel
    address: "127.0.0.1:$BGD_PORT"
    insecure-mode: true
authorization:
  method: none
monitoring:
  enabled: false
storages:
  - !disk-storage &cas
    path: $dir/cas
caches:
  - !lru-action-cache &ac
    storage: *cas
    max-cached-refs: 100000
    allow-updates: true
    cache-failed-actions: true
instances:
  - name: ""
    services:
      - !action-cache
        cache: *ac
      - !cas
        storage: *cas
      - !bytestream
        storage: *cas
thread-pool-size: 10
EOF
  # A script's background child is no process-group leader, so setsid makes it one and execs
  # bgd: its pid is the group's id.
  setsid "$BGD" server start "$@" --pid-file "$dir/pid" "$dir/config.yml" >"$dir/log" 2>&1 &
  BGD_PGID=$!
  for ((i = 0; i < 6; i++)); do
    wait_port "$BGD_PORT" && return 0
    kill -0 "$BGD_PGID" 2>/dev/null || break
  done
  say "BuildGrid did not start; the end of $dir/log:"
  tail -5 "$dir/log" >&2
  stop_buildgrid
  return 1
}

# stop_buildgrid: the server start_buildgrid started gone, with its whole process group
# (SIGTERM, then SIGKILL after 10 s).
stop_buildgrid() {
  local i
  [ -n "${BGD_PGID:-}" ] || return 0
  kill -TERM -- "-$BGD_PGID" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 -- "-$BGD_PGID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$BGD_PGID" 2>/dev/null || true
  wait "$BGD_PGID" 2>/dev/null || true
  BGD_PGID=
}

# --- timing -----------------------------------------------------------------------------

# timed CMD...: runs CMD with its output discarded and prints the wall time in seconds, or
# "failed" (with the end of its stderr on ours).
timed() {
  local s e
  s=$(date +%s.%N)
  if "$@" >/dev/null 2>"$W/err"; then
    e=$(date +%s.%N)
    awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f\n", e - s }'
  else
    echo failed
    say "FAILED: $*"
    tail -5 "$W/err" >&2
  fi
}

# The median of the numbers on stdin, one per line; "failed" if any line says so.
median() {
  local values
  values=$(grep -v '^$' || true)
  if [ -z "$values" ] || grep -q failed <<<"$values"; then
    echo failed
    return
  fi
  sort -g <<<"$values" | awk '{ a[NR] = $1 }
    END { if (NR % 2) printf "%.3f\n", a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# --- the measurement loop ---------------------------------------------------------------

# tool KEY LABEL PREFIX: a row of the table, measured by the functions PREFIX_cold and
# PREFIX_warm (either may be absent: that cell is "-"), then PREFIX_after (optional, not
# timed, e.g. stopping a server). Each step runs in a subshell and prints one time. PREFIX "-"
# means not installed.
TOOLS=()
declare -A LABEL COLD WARM PREFIX
tool() {
  TOOLS+=("$1")
  LABEL[$1]=$2 PREFIX[$1]=$3
}

# measure REPEATS: REPEATS rounds, each measuring every tool once in the order they were
# added (its cold build, then its warm build), so slow drifts in the machine's load fall on
# all tools alike. Then the medians fill COLD and WARM.
measure() {
  local reps=$1 round key prefix phase
  local -A samples=()
  for ((round = 1; round <= reps; round++)); do
    for key in "${TOOLS[@]}"; do
      prefix=${PREFIX[$key]}
      [ "$prefix" = - ] && continue
      say "round $round/$reps: ${LABEL[$key]}"
      for phase in cold warm; do
        if declare -F "${prefix}_$phase" >/dev/null; then
          samples[$key.$phase]+="$("${prefix}_$phase" || true)"$'\n'
        fi
      done
      if declare -F "${prefix}_after" >/dev/null; then
        "${prefix}_after" || true
      fi
    done
  done
  for key in "${TOOLS[@]}"; do
    if [ "${PREFIX[$key]}" = - ]; then
      COLD[$key]="not installed" WARM[$key]="not installed"
      continue
    fi
    COLD[$key]=- WARM[$key]=-
    if [ -n "${samples[$key.cold]:-}" ]; then COLD[$key]=$(median <<<"${samples[$key.cold]}"); fi
    if [ -n "${samples[$key.warm]:-}" ]; then WARM[$key]=$(median <<<"${samples[$key.warm]}"); fi
  done
}

NOTES=()
note() { NOTES+=("$*"); }

print_table() { # COLD_HEADER WARM_HEADER
  local key
  echo "| tool | $1 | $2 |"
  echo "|---|---|---|"
  for key in "${TOOLS[@]}"; do
    echo "| ${LABEL[$key]} | ${COLD[$key]} | ${WARM[$key]} |"
  done
  echo
  for key in "${NOTES[@]}"; do
    echo "- $key"
  done
  [ ${#NOTES[@]} -eq 0 ] || echo
}

is_number() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }

# ratio WHAT NUMERATOR NUM_NAME DENOMINATOR DEN_NAME TARGET: one line "WHAT: r (target <= T)
# PASS|MISS", or why there is no ratio.
ratio() {
  local what=$1 num=$2 num_name=$3 den=$4 den_name=$5 target=$6
  if ! is_number "$num"; then
    echo "- $what: n/a ($num_name: $num) (target <= $target)"
  elif ! is_number "$den"; then
    echo "- $what: n/a ($den_name: $den) (target <= $target)"
  else
    awk -v n="$num" -v d="$den" -v t="$target" -v w="$what" 'BEGIN {
      if (d <= 0) { printf "- %s: n/a (zero denominator) (target <= %s)\n", w, t; exit }
      r = n / d
      printf "- %s: %.3f (target <= %s) %s\n", w, r, t, (r <= t + 1e-9 ? "PASS" : "MISS")
    }'
  fi
}
