#!/usr/bin/env bash
# What signed entries cost (issue 21): the same builds with and without signatures, through
# one remote tier (redis by default). Each round, in alternating order:
#
#   cold: machine A, empty disk and an emptied tier, builds the project and fills the tier
#         (unsigned, or with HOARD_SIGNING_KEY); timed as the build, and as the CPU time A's
#         server spent once every remote write is done (packing, compressing, signing and
#         writing entries: the work signing adds to, off the compiles' path);
#   warm: machine B, empty disk, builds the project from the tier A filled (unsigned, or
#         verifying every entry with HOARD_TRUSTED_KEYS); BENCH_SIGNING_WARM_BUILDS times.
#
# ratio = signed / unsigned, medians of REPEATS rounds; the target is at most 1.02 for each.
#
# usage: bench/signing.sh [REPEATS [TIER]]      (default 5 redis; TIER: redis, memcached or
#                                               shared_dir)
# env:   CARGO_TARGET_DIR, HOARD_BIN, BENCH_C_CORPUS   as for bench/c.sh
#        BENCH_SIGNING_PROJECTS   which projects: "c rust" (default), "c" or "rust"
#        BENCH_SIGNING_PREFETCH   HOARD_PREFETCH of machine B (default on; off makes every
#                                 hit a verified lookup on the compile's path)
#        BENCH_SIGNING_WARM_BUILDS  warm builds per mode and round, each on a fresh machine B
#                                 (default 3; the round's figure is their median)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

reps=${1:-5}
[[ $reps =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [REPEATS [TIER]]" >&2; exit 2; }
tier=${2:-redis}
prefetch=${BENCH_SIGNING_PREFETCH:-on}
WARM_BUILDS=${BENCH_SIGNING_WARM_BUILDS:-3}

corpus_dir=${BENCH_C_CORPUS:-}
bench_init signing
build_hoard
cd "$W"
PIDS=()
stop_all() {
  local m p
  for m in "$W"/machine-*.sock; do
    [ -e "$m" ] || continue
    HOARD_SERVER_UDS=$m HOARD_DIR=${m%.sock} "$HOARD" --stop-server >/dev/null 2>&1 || true
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  bench_cleanup
}
trap stop_all EXIT

port=$(free_port)
case $tier in
redis)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
  PIDS+=($!)
  wait_port "$port"
  TIER_ENV=("HOARD_REDIS_ENDPOINT=redis://127.0.0.1:$port")
  empty_tier() { redis-cli -p "$port" flushall >/dev/null; }
  ;;
memcached)
  memcached -u root -l 127.0.0.1 -p "$port" -m 1024 -I 16m >/dev/null 2>&1 &
  PIDS+=($!)
  wait_port "$port"
  TIER_ENV=("HOARD_MEMCACHED_ENDPOINT=tcp://127.0.0.1:$port" "HOARD_MEMCACHED_MAX_ENTRY=15M")
  empty_tier() { printf 'flush_all\r\nquit\r\n' | python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.stdin.buffer.read()); s.recv(64)' "$port"; }
  ;;
shared_dir)
  TIER_ENV=("HOARD_SHARED_DIR=$W/shared")
  empty_tier() { rm -rf "$W/shared"; mkdir -p "$W/shared"; }
  ;;
*)
  echo "unknown tier $tier (redis, memcached or shared_dir)" >&2
  exit 2
  ;;
esac

"$HOARD" keygen "$W/ci.key" --name bench-ci >/dev/null 2>&1
PUBLIC=$(cat "$W/ci.key.pub")

projects=${BENCH_SIGNING_PROJECTS:-c rust}
lay_out_projects "$projects" "${corpus_dir:-$W/corpus}"

# machine NAME MODE ROLE: a fresh machine's environment (its server not started): the tier,
# and for MODE=signed the signing key (ROLE=writer) or the trusted key (ROLE=reader).
machine() {
  export HOARD_DIR=$W/machine-$1 HOARD_SERVER_UDS=$W/machine-$1.sock HOARD_IDLE_TIMEOUT=0
  local line
  for line in "${TIER_ENV[@]}"; do export "${line?}"; done
  unset HOARD_SIGNING_KEY HOARD_TRUSTED_KEYS
  if [ "$2" = signed ] && [ "$3" = writer ]; then export HOARD_SIGNING_KEY=$W/ci.key; fi
  if [ "$2" = signed ] && [ "$3" = reader ]; then export HOARD_TRUSTED_KEYS=$PUBLIC; fi
  if [ "$3" = reader ]; then export HOARD_PREFETCH=$prefetch; fi
  "$HOARD" --stop-server >/dev/null 2>&1 || true
  rm -rf "$HOARD_DIR"
}

# One build of $PROJECT through hoard, from no outputs; prints its time.
pbuild() { project_build "$PROJECT"; }

# The untrusted and hit counters of the tier, and the build's hits, from B's server.
counters() {
  "$HOARD" --show-stats --json 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
t = next((t for t in s.get("tiers", []) if t.get("name") == sys.argv[1]), {})
print(s.get("cache_hits", 0), t.get("untrusted", 0))' "$tier"
}

# The tier's writes counter, from the current machine's server.
tier_writes() {
  "$HOARD" --show-stats --json 2>/dev/null | python3 -c '
import json, sys
t = next((t for t in json.load(sys.stdin).get("tiers", []) if t.get("name") == sys.argv[1]), {})
print(t.get("writes", 0))' "$tier"
}

# The CPU seconds (user and system) the current machine's server has used.
server_cpu() {
  python3 -c '
import os, sys
pid = open(sys.argv[1] + ".pid").read().strip()
fields = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
ticks = os.sysconf(os.sysconf_names["SC_CLK_TCK"])
print("%.2f" % ((int(fields[11]) + int(fields[12])) / ticks))' "$HOARD_SERVER_UDS"
}

# One round of MODE: "COLD SERVER_CPU WARM HITS UNTRUSTED".
round_of() { # MODE ROUND
  (
    empty_tier
    machine "A-$PROJECT-$1-$2" "$1" writer
    "$HOARD" --start-server >/dev/null 2>&1
    local cold flushed warm hits untrusted last now i
    cold=$(pbuild)
    # Every remote write done: the tier's writes counter still for a second (at most 60 s).
    last=-1
    for ((i = 0; i < 60; i++)); do
      now=$(tier_writes)
      [ "$now" -gt 0 ] && [ "$now" = "$last" ] && break
      last=$now
      sleep 1
    done
    flushed=$(server_cpu)
    "$HOARD" --stop-server >/dev/null 2>&1
    # The warm build is short and noisy: WARM_BUILDS of them, each a fresh machine B, their
    # median the round's figure; the fewest hits and the most untrusted of them reported.
    local samples="" fewest="" most=0 h u
    for ((i = 1; i <= WARM_BUILDS; i++)); do
      machine "B-$PROJECT-$1-$2-$i" "$1" reader
      "$HOARD" --start-server >/dev/null 2>&1
      samples+="$(pbuild)"$'\n'
      read -r h u <<<"$(counters)"
      "$HOARD" --stop-server >/dev/null 2>&1
      if [ -z "$fewest" ] || [ "$h" -lt "$fewest" ]; then fewest=$h; fi
      if [ "$u" -gt "$most" ]; then most=$u; fi
    done
    warm=$(median <<<"$samples")
    echo "$cold $flushed $warm $fewest $most"
  )
}

run_project() {
  PROJECT=$1
  local round mode order out cold flushed warm hits untrusted
  local -A COLD=() FLUSHED=() WARM=() HITS=() UNTRUSTED=()
  for ((round = 1; round <= reps; round++)); do
    order="unsigned signed"
    ((round % 2 == 0)) && order="signed unsigned"
    for mode in $order; do
      say "$PROJECT, round $round/$reps: $mode"
      out=$(round_of "$mode" "$round")
      read -r cold flushed warm hits untrusted <<<"$out"
      COLD[$mode]+="$cold"$'\n'
      FLUSHED[$mode]+="$flushed"$'\n'
      WARM[$mode]+="$warm"$'\n'
      HITS[$mode]+="$hits"$'\n'
      UNTRUSTED[$mode]+="$untrusted"$'\n'
    done
  done
  if [ "$PROJECT" = c ]; then
    echo "## Signed entries, C corpus: $(grep -c "^$(printf '\t')" "$W/Makefile") compiles, make -j2, tier $tier; seconds, median of $reps"
  else
    echo "## Signed entries, cargo project (bench/rustapp), tier $tier; seconds, median of $reps"
  fi
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) cores, hoard $(version_of "$HOARD") at $HOARD; machine B's HOARD_PREFETCH=$prefetch; command: bench/signing.sh $reps $tier"
  echo
  echo "| | unsigned | signed | ratio |"
  echo "|---|---|---|---|"
  local row u s
  for row in cold flushed warm; do
    case $row in
    cold) u=$(median <<<"${COLD[unsigned]}") s=$(median <<<"${COLD[signed]}") label="cold build, A writes the tier" ;;
    flushed) u=$(median <<<"${FLUSHED[unsigned]}") s=$(median <<<"${FLUSHED[signed]}") label="A's server, CPU seconds for the build's puts and remote writes" ;;
    warm) u=$(median <<<"${WARM[unsigned]}") s=$(median <<<"${WARM[signed]}") label="warm build on B from the tier (signed: verified)" ;;
    esac
    r=n/a
    if is_number "$u" && is_number "$s"; then r=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.3f", s / u }'); fi
    echo "| $label | $u | $s | $r |"
  done
  echo
  echo "B's hits (unsigned / signed, fewest of any round): $(grep -v '^$' <<<"${HITS[unsigned]}" | sort -n | head -1) / $(grep -v '^$' <<<"${HITS[signed]}" | sort -n | head -1); untrusted counted on B when signed (most of any round): $(grep -v '^$' <<<"${UNTRUSTED[signed]}" | sort -n | tail -1)"
  echo
  ratio "$PROJECT cold build, signed / unsigned" "$(median <<<"${COLD[signed]}")" signed "$(median <<<"${COLD[unsigned]}")" unsigned 1.02
  ratio "$PROJECT warm build from the tier, verified / unverified" "$(median <<<"${WARM[signed]}")" signed "$(median <<<"${WARM[unsigned]}")" unsigned 1.02
  echo
}

for project in $projects; do
  run_project "$project"
done
