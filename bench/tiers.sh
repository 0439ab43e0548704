#!/usr/bin/env bash
# The remote tiers, measured the way a CI fleet uses them: machine A (its own HOARD_DIR) builds
# the project once and fills the tier; then, each round, machine B starts from an empty
# HOARD_DIR, builds once from the tier ("first") and a second time from its own disk, where
# the first build backfilled every entry ("second"). ratio = first / second, median of
# REPEATS rounds; a tier whose ratio is over 2 is flagged OVER (issue 19). Also printed: B's
# hits in its first build (all of them, or the row says so), how many of those were lookups
# in the tier and how many entries B's server prefetched from it (HOARD_PREFETCH), and the
# mean `lookup_ms` of the tier lookups from HOARD_JOURNAL, the wrapper's time in the cache
# per compile.
#
# Tiers: memcached, redis, s3 (moto_server), webdav (wsgidav), shared_dir, azure (Azurite),
# gcs (fake-gcs-server) and gha (the GitHub Actions cache stand-in of
# tests/fixtures/gha-cache-standin.py, its bytes on Azurite); one whose server is not
# installed is skipped. Each server is started here on a free loopback port
# and stopped at the end.
#
# The projects: the C corpus (as bench/c.sh builds it) and the cargo project bench/rustapp (as
# bench/rust.sh builds it, hoard as RUSTC_WRAPPER), one table each.
#
# usage: bench/tiers.sh [REPEATS [TIER...]]      (default 3, every tier)
# env:   CARGO_TARGET_DIR, HOARD_BIN, BENCH_C_CORPUS   as for bench/c.sh
#        BENCH_TIERS_PROJECTS   which projects: "c rust" (default), "c" or "rust"
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

reps=${1:-3}
[[ $reps =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [REPEATS [TIER...]]" >&2; exit 2; }
shift || true
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(memcached redis s3 webdav shared_dir azure gcs gha)

corpus_dir=${BENCH_C_CORPUS:-}
bench_init tiers
build_hoard
cd "$W"
PIDS=()
stop_servers() {
  local m p
  for m in "$W"/machine-*.sock; do
    [ -e "$m" ] || continue
    HOARD_SERVER_UDS=$m HOARD_DIR=${m%.sock} "$HOARD" --stop-server >/dev/null 2>&1 || true
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  bench_cleanup
}
trap stop_servers EXIT

projects=${BENCH_TIERS_PROJECTS:-c rust}
lay_out_projects "$projects" "${corpus_dir:-$W/corpus}"

STANDIN=$ROOT/tests/fixtures/gha-cache-standin.py
# Azurite's well-known development account key (public, from Microsoft's documentation).
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

# start_azurite PORT DIR: Azurite's blob service, waited for.
start_azurite() {
  command -v azurite-blob >/dev/null || return 1
  mkdir -p "$2"
  azurite-blob --silent --disableTelemetry --skipApiVersionCheck --loose --blobHost 127.0.0.1 \
    --blobPort "$1" --location "$2" >/dev/null 2>&1 &
  PIDS+=($!)
  wait_port "$1"
}

# start_tier NAME: starts the tier's server and writes the HOARD_* lines that point a
# machine at it to $W/env-NAME. Fails (the tier is skipped) when its server is missing.
start_tier() {
  local port
  port=$(free_port)
  case $1 in
  memcached)
    command -v memcached >/dev/null || return 1
    memcached -u root -l 127.0.0.1 -p "$port" -m 512 -I 16m >/dev/null 2>&1 &
    PIDS+=($!)
    printf 'HOARD_MEMCACHED_ENDPOINT=tcp://127.0.0.1:%s\nHOARD_MEMCACHED_MAX_ENTRY=15M\n' "$port" >"$W/env-$1"
    ;;
  redis)
    command -v redis-server >/dev/null || return 1
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
    PIDS+=($!)
    echo "HOARD_REDIS_ENDPOINT=redis://127.0.0.1:$port" >"$W/env-$1"
    ;;
  s3)
    command -v moto_server >/dev/null || return 1
    moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
    PIDS+=($!)
    wait_port "$port" || return 1
    curl -fsS -X PUT "http://127.0.0.1:$port/hoard-bench" >/dev/null || return 1
    printf 'HOARD_S3_BUCKET=hoard-bench\nHOARD_S3_ENDPOINT=http://bench:bench@127.0.0.1:%s\n' "$port" >"$W/env-$1"
    ;;
  webdav)
    command -v wsgidav >/dev/null || return 1
    mkdir -p "$W/dav"
    wsgidav --host 127.0.0.1 --port "$port" --root "$W/dav" --auth anonymous -q >/dev/null 2>&1 &
    PIDS+=($!)
    echo "HOARD_WEBDAV_ENDPOINT=http://127.0.0.1:$port" >"$W/env-$1"
    ;;
  shared_dir)
    mkdir -p "$W/shared"
    echo "HOARD_SHARED_DIR=$W/shared" >"$W/env-$1"
    return 0
    ;;
  azure)
    start_azurite "$port" "$W/azure" || return 1
    python3 "$STANDIN" --azurite-port "$port" --create-container hoard || return 1
    printf 'HOARD_AZURE_CONTAINER=hoard\nHOARD_AZURE_CONNECTION_STRING=%s\n' \
      "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$AZURITE_KEY;BlobEndpoint=http://127.0.0.1:$port/devstoreaccount1;" >"$W/env-$1"
    return 0
    ;;
  gcs)
    command -v fake-gcs-server >/dev/null || return 1
    mkdir -p "$W/gcs/hoard"
    fake-gcs-server -scheme http -host 127.0.0.1 -port "$port" -backend memory \
      -data "$W/gcs" -public-host "127.0.0.1:$port" >/dev/null 2>&1 &
    PIDS+=($!)
    printf 'HOARD_GCS_BUCKET=hoard\nHOARD_GCS_ENDPOINT=http://127.0.0.1:%s\n' "$port" >"$W/env-$1"
    ;;
  gha)
    local blob_port
    blob_port=$(free_port)
    start_azurite "$blob_port" "$W/gha-blobs" || return 1
    python3 "$STANDIN" --port "$port" --azurite-port "$blob_port" >/dev/null 2>&1 &
    PIDS+=($!)
    printf 'HOARD_GHA=on\nACTIONS_RESULTS_URL=http://127.0.0.1:%s/\nACTIONS_RUNTIME_TOKEN=bench\n' "$port" >"$W/env-$1"
    ;;
  *) return 1 ;;
  esac
  wait_port "$port"
}

# machine NAME TIER: the environment of one machine using TIER, its server not started.
machine() {
  export HOARD_DIR=$W/machine-$1 HOARD_SERVER_UDS=$W/machine-$1.sock HOARD_IDLE_TIMEOUT=0
  export HOARD_JOURNAL=$W/journal-$1
  local line
  while IFS= read -r line; do export "${line?}"; done <"$W/env-$2"
}

machine_stop() { "$HOARD" --stop-server >/dev/null 2>&1 || true; }

# One build of $PROJECT through hoard, from no outputs; prints its time.
pbuild() { project_build "$PROJECT"; }

# The tier's writes counter, from the stats of the current machine's server.
tier_writes() {
  "$HOARD" --show-stats --json 2>/dev/null | python3 -c '
import json, sys
for t in json.load(sys.stdin).get("tiers", []):
    if t.get("name") == sys.argv[1]:
        print(t.get("writes", 0)); break
else:
    print(0)' "$1" 2>/dev/null || echo 0
}

# "HITS TIER_HITS MEAN_LOOKUP_MS": the hits in journal FILE, those served by a lookup in
# TIER, and the mean lookup_ms of the latter.
journal_hits() { # FILE TIER
  python3 - "$1" "$2" <<'PY'
import json, sys
hits, n, ms = 0, 0, 0.0
for line in open(sys.argv[1]):
    j = json.loads(line)
    if j.get("result") == "hit":
        hits += 1
    if j.get("tier") == sys.argv[2]:
        n += 1
        ms += j.get("lookup_ms", 0.0)
print(hits, n, f"{ms / n:.2f}" if n else "-")
PY
}

# The tier's prefetched counter, from the stats of the current machine's server.
tier_prefetched() {
  "$HOARD" --show-stats --json 2>/dev/null | python3 -c '
import json, sys
for t in json.load(sys.stdin).get("tiers", []):
    if t.get("name") == sys.argv[1]:
        print(t.get("prefetched", 0)); break
else:
    print(0)' "$1" 2>/dev/null || echo 0
}

# "MISSES MEAN_LOOKUP_MS": the misses in journal FILE and their mean lookup_ms.
journal_misses() { # FILE
  python3 - "$1" <<'PY'
import json, sys
n, ms = 0, 0.0
for line in open(sys.argv[1]):
    j = json.loads(line)
    if j.get("result") == "miss":
        n += 1
        ms += j.get("lookup_ms", 0.0)
print(n, f"{ms / n:.2f}" if n else "-")
PY
}

# The C corpus's first MISS_OBJECTS objects built with a define no entry has, so every
# compile misses (locally, then on the current machine's tier) and is stored; prints
# journal_misses of that build. What a miss costs is its lookup_ms beside the same build's
# with no tier at all (the `none` row).
MISS_OBJECTS=24
miss_build() { # TAG
  local objs
  objs=$(grep -E '^/[^:]+\.o: ' "$W/Makefile" | cut -d: -f1 | head -n "$MISS_OBJECTS")
  # shellcheck disable=SC2086
  rm -f $objs
  # shellcheck disable=SC2086
  HOARD_JOURNAL=$W/journal-miss-$1 make -s -j2 -f "$W/Makefile" "L=$HOARD" \
    CFLAGS="-O2 -g -DHOARD_BENCH_MISS_${1//[^a-z0-9]/_}" $objs >/dev/null
  journal_misses "$W/journal-miss-$1"
}

TIERS=()
for tier in "${wanted[@]}"; do
  if ! start_tier "$tier"; then
    say "$tier: its server is not installed or did not start; skipped"
    continue
  fi
  TIERS+=("$tier")
done

# run_project c|rust: fills every tier from machine A, measures machine B, prints the table.
run_project() {
  PROJECT=$1
  local tier round out first second hits tierhits prefetched lookup missn missms f s h l m r
  local verdict last now i th pf
  local -A FIRST=() SECOND=() HITS=() TIERHITS=() PREFETCHED=() LOOKUP=() MISSMS=()
  for tier in "${TIERS[@]}"; do
    # Machine A fills the tier; its writes are asynchronous, so wait (at most 60 s) until
    # the tier's write counter has stopped moving for a second.
    (
      machine "A-$PROJECT-$tier" "$tier"
      say "$PROJECT, $tier: machine A fills the tier"
      pbuild >/dev/null
      last=-1
      for ((i = 0; i < 60; i++)); do
        now=$(tier_writes "$tier")
        [ "$now" -gt 0 ] && [ "$now" = "$last" ] && break
        last=$now
        sleep 1
      done
      say "$PROJECT, $tier: $now entries written"
      machine_stop
    )
  done

  for ((round = 1; round <= reps; round++)); do
    for tier in "${TIERS[@]}"; do
      say "$PROJECT, round $round/$reps: $tier"
      out=$(
        machine "B-$PROJECT-$tier" "$tier"
        machine_stop
        rm -rf "$HOARD_DIR" "$HOARD_JOURNAL"
        # B's server is started first, so neither build pays for its start.
        "$HOARD" --start-server >/dev/null 2>&1 || true
        first=$(pbuild)
        hits=$(journal_hits "$HOARD_JOURNAL" "$tier")
        prefetched=$(tier_prefetched "$tier")
        second=$(pbuild)
        misses="- -"
        [ "$PROJECT" = c ] && misses=$(miss_build "$tier-$round")
        machine_stop
        echo "$first $second $hits $prefetched $misses"
      )
      read -r first second hits tierhits lookup prefetched missn missms <<<"$out"
      FIRST[$tier]+="$first"$'\n'
      SECOND[$tier]+="$second"$'\n'
      HITS[$tier]+="$hits"$'\n'
      TIERHITS[$tier]+="$tierhits"$'\n'
      PREFETCHED[$tier]+="$prefetched"$'\n'
      LOOKUP[$tier]+="$lookup"$'\n'
      MISSMS[$tier]+="$missms"$'\n'
    done
    if [ "$PROJECT" = c ]; then
      # The same miss build on a machine with no remote tier: what a miss costs locally.
      out=$(
        : >"$W/env-none"
        machine "B-$PROJECT-none" none
        machine_stop
        rm -rf "$HOARD_DIR" "$HOARD_JOURNAL"
        "$HOARD" --start-server >/dev/null 2>&1 || true
        misses=$(miss_build "none-$round")
        machine_stop
        echo "$misses"
      )
      read -r missn missms <<<"$out"
      MISSMS[none]+="$missms"$'\n'
    fi
  done

  if [ "$PROJECT" = c ]; then
    echo "## Remote tiers, C corpus: $(grep -c "^$(printf '\t')" "$W/Makefile") compiles, make -j2; seconds, median of $reps"
  else
    echo "## Remote tiers, cargo project (bench/rustapp, cargo build, hoard as RUSTC_WRAPPER); seconds, median of $reps"
  fi
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) cores, hoard $(version_of "$HOARD") at $HOARD; command: bench/tiers.sh $reps ${wanted[*]}"
  echo
  echo "| tier | B's first build (from the tier) | B's second build (own disk) | ratio | B's first-build hits (tier lookups / entries prefetched) | lookup_ms per tier lookup | lookup_ms per miss |"
  echo "|---|---|---|---|---|---|---|"
  for tier in "${TIERS[@]}"; do
    f=$(median <<<"${FIRST[$tier]}")
    s=$(median <<<"${SECOND[$tier]}")
    h=$(grep -v '^$' <<<"${HITS[$tier]}" | sort -n | head -1)
    th=$(grep -v '^$' <<<"${TIERHITS[$tier]}" | sort -n | tail -1)
    pf=$(grep -v '^$' <<<"${PREFETCHED[$tier]}" | sort -n | head -1)
    l=$(median <<<"$(grep -v -- '^-$' <<<"${LOOKUP[$tier]}" || true)")
    m=-
    [ "$PROJECT" = c ] && m=$(median <<<"$(grep -v -- '^-$' <<<"${MISSMS[$tier]}" || true)")
    if is_number "$f" && is_number "$s"; then
      r=$(awk -v f="$f" -v s="$s" 'BEGIN { printf "%.2f", (s > 0 ? f / s : 0) }')
      verdict=$(awk -v r="$r" 'BEGIN { print (r <= 2.0 ? "ok" : "OVER 2x") }')
    else
      r=n/a verdict="OVER 2x"
    fi
    [ "$verdict" = ok ] || over=1
    # Every C compile is cacheable; in the cargo project, build scripts' runs and the final link are not.
    if [ "$PROJECT" = c ] && [ "$h" != "$(grep -c "^$(printf '\t')" "$W/Makefile")" ]; then h="$h (NOT ALL)"; fi
    echo "| $tier | $f | $s | $r $verdict | $h ($th / $pf) | $l | ${m:--} |"
  done
  if [ "$PROJECT" = c ]; then
    m=$(median <<<"$(grep -v -- '^-$' <<<"${MISSMS[none]}" || true)")
    echo "| none (local disk only) | - | - | - | - | - | ${m:--} |"
    echo
    echo "lookup_ms per miss: the mean over a build of the corpus's first $MISS_OBJECTS files with a new define (every compile a miss, then stored); a tier's remote miss costs its row minus the \`none\` row."
  fi
  echo
}

over=0
for project in $projects; do
  run_project "$project"
done
if [ "$over" = 0 ]; then
  echo "Every tier within 2x of the local disk: PASS"
else
  echo "Some tier over 2x of the local disk (or failed): MISS"
fi
