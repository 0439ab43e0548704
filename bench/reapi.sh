#!/usr/bin/env bash
# The REAPI tier (issue 22) beside redis: a warm build on an empty local disk from each, the
# way a CI fleet uses a shared tier. Each round, for each tier (the order alternating from
# round to round):
#
#   cold:  the tier is emptied; machine A (its own HOARD_DIR) builds the project and fills the
#          tier; the script waits until A's writes to the tier are done, then stops A (which
#          leaves its prefetch index in the tier);
#   warm:  machine B, a fresh HOARD_DIR (an empty local disk), builds the project from the
#          tier, prefetch on (the default);
#   no-pf: another fresh machine B builds it with HOARD_PREFETCH=off, so that every hit asks
#          the tier on the compile's path: the per-hit cost of the tier, undiluted.
#
# Medians of REPEATS rounds, and the ratio reapi / redis of each (no target yet). Printed
# beside them: B's hits and misses and B's tier counters (hits, misses, prefetched, errors,
# with the status the server gave for each error, from B's server.log), each round's, so that
# a reader sees the warm builds were all hits; from HOARD_JOURNAL the compiles that looked
# their entry up in the tier, with their mean lookup_ms; and the CPU seconds the tier's server
# spent during B's builds (it shares the 2 cores with the build here).
#
# Where the time goes, measured after the rounds on the C corpus's first MICRO files:
#   - one machine with an empty disk and HOARD_PREFETCH=off compiles them one at a time
#     (make -j1), every compile a remote hit: the journal gives lookup_ms per hit (the first
#     compile, which opens the connection, apart from the median of the others), the server's
#     own counters the requests per hit (redis: INFO commandstats; BuildGrid: its request log,
#     on a second, verbose pass whose lookup times are not those reported);
#   - on that second pass hoard's server also logs h2's frames: each gRPC call's time as
#     hoard's client sees it, so a hit splits into time in calls and hoard's own time;
#   - the server alone: a Python client times PROBE single requests, one at a time on a warm
#     connection, on what A stored: a redis PING and GET; a REAPI GetActionResult of an
#     absent digest (the floor) and of a stored one (hoard's Actions are found in the CAS),
#     and a BatchReadBlobs of one entry's blobs, as hoard reads them. Requests per hit times
#     these medians is the server's share of a hit.
#
# The REAPI server is BuildGrid (Python; `bgd` from BGD_BIN, PATH or target/test-venv, else
# pip-installed into target/bench-venv), with the configuration the tests use: action cache,
# CAS and ByteStream on disk, instance "". bazel-remote (Go), the production choice with
# Buildbarn, is measured as a third column when BAZEL_REMOTE_BIN (or bazel-remote on PATH)
# names its binary (started with --dir, --max_size, --grpc_address, --http_address; not yet
# run: no bazel-remote binary could be had where this was written); else its row says it was
# not measured.
#
# The projects: the C corpus (as bench/c.sh builds it) and the cargo project bench/rustapp (as
# bench/rust.sh builds it, hoard as RUSTC_WRAPPER), one table each.
#
# usage: bench/reapi.sh [REPEATS]      (default 3)
# env:   CARGO_TARGET_DIR, HOARD_BIN, BENCH_C_CORPUS   as for bench/c.sh
#        BENCH_REAPI_PROJECTS   which projects: "c rust" (default), "c" or "rust"
#        BENCH_REAPI_MICRO      files of the per-hit run (default 24; 0 skips it)
#        BENCH_REAPI_PROBE      requests per kind in the server-alone probe (default 200)
#        BGD_BIN, BAZEL_REMOTE_BIN   the servers' binaries
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

reps=${1:-3}
[[ $reps =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [REPEATS]" >&2; exit 2; }
MICRO=${BENCH_REAPI_MICRO:-24}
PROBE=${BENCH_REAPI_PROBE:-200}
[[ $MICRO =~ ^[0-9]+$ && $PROBE =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_REAPI_MICRO and BENCH_REAPI_PROBE are counts" >&2; exit 2; }
projects=${BENCH_REAPI_PROJECTS:-c rust}

corpus_dir=${BENCH_C_CORPUS:-}
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
bench_init reapi
build_hoard
cd "$W"
PIDS=()
BAZEL_REMOTE_PID=
stop_all() {
  local m p
  for m in "$W"/machine-*.sock; do
    [ -e "$m" ] || continue
    HOARD_SERVER_UDS=$m HOARD_DIR=${m%.sock} "$HOARD" --stop-server >/dev/null 2>&1 || true
  done
  stop_buildgrid
  stop_bazel_remote
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  bench_cleanup
}
trap stop_all EXIT

# --- the tiers ----------------------------------------------------------------------------
# TIERS: the rows measured, in order; STATNAME: the tier's name in hoard's stats; ROWLABEL:
# the row's label; env-KEY in $W: the HOARD_* lines that point a machine at it.
TIERS=()
declare -A STATNAME ROWLABEL
NOT_MEASURED=()

REDIS_PORT=$(free_port)
if command -v redis-server >/dev/null; then
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  if wait_port "$REDIS_PORT"; then
    echo "HOARD_REDIS_ENDPOINT=redis://127.0.0.1:$REDIS_PORT" >"$W/env-redis"
    TIERS+=(redis)
    STATNAME[redis]=redis
    ROWLABEL[redis]="redis $(version_of redis-server)"
  fi
fi
[ -e "$W/env-redis" ] || NOT_MEASURED+=("redis: redis-server is not installed or did not start")

BGD=
if find_bgd; then
  TIERS+=(buildgrid)
  STATNAME[buildgrid]=reapi
  ROWLABEL[buildgrid]="reapi: BuildGrid $(bgd_version) (Python)"
else
  NOT_MEASURED+=("reapi on BuildGrid: bgd was not found and could not be installed")
fi

BAZEL_REMOTE=${BAZEL_REMOTE_BIN:-$(command -v bazel-remote || true)}
if installed "$BAZEL_REMOTE"; then
  TIERS+=(bazel_remote)
  STATNAME[bazel_remote]=reapi
  ROWLABEL[bazel_remote]="reapi: bazel-remote $(version_of "$BAZEL_REMOTE") (Go)"
else
  NOT_MEASURED+=("reapi on bazel-remote (Go; with Buildbarn, what a team would run in production): not measured, no binary (set BAZEL_REMOTE_BIN)")
fi
[ ${#TIERS[@]} -gt 0 ] || { say "no tier's server is available"; exit 1; }

stop_bazel_remote() {
  [ -n "$BAZEL_REMOTE_PID" ] || return 0
  kill "$BAZEL_REMOTE_PID" 2>/dev/null || true
  wait "$BAZEL_REMOTE_PID" 2>/dev/null || true
  BAZEL_REMOTE_PID=
}

# empty_tier KEY [BGD_FLAGS...]: the tier emptied. BuildGrid (whose action cache is in its
# memory) and bazel-remote are restarted on a fresh directory and a new port, so env-KEY is
# written anew. Fails when the server does not come back.
SERVER_GEN=0
empty_tier() {
  local key=$1 dir port
  shift
  SERVER_GEN=$((SERVER_GEN + 1))
  dir=$W/$key-$SERVER_GEN
  case $key in
  redis) redis-cli -p "$REDIS_PORT" flushall >/dev/null ;;
  buildgrid)
    stop_buildgrid
    rm -rf "$W"/buildgrid-*
    start_buildgrid "$dir" "$@" || return 1
    echo "HOARD_REAPI_ENDPOINT=grpc://127.0.0.1:$BGD_PORT" >"$W/env-$key"
    ;;
  bazel_remote)
    stop_bazel_remote
    rm -rf "$W"/bazel_remote-*
    mkdir -p "$dir"
    port=$(free_port)
    "$BAZEL_REMOTE" --dir "$dir" --max_size 5 --grpc_address "127.0.0.1:$port" \
      --http_address "127.0.0.1:$(free_port)" >"$dir.log" 2>&1 &
    BAZEL_REMOTE_PID=$!
    wait_port "$port" || return 1
    echo "HOARD_REAPI_ENDPOINT=grpc://127.0.0.1:$port" >"$W/env-$key"
    ;;
  esac
}

# The CPU seconds (user and system) the tier KEY's server has used so far: every process of
# BuildGrid's group, redis's or bazel-remote's own.
server_cpu() { # KEY
  local pids
  case $1 in
  redis) pids=$REDIS_PID ;;
  buildgrid) pids=$(pgrep -g "$BGD_PGID" | paste -sd' ' -) ;;
  bazel_remote) pids=$BAZEL_REMOTE_PID ;;
  esac
  # shellcheck disable=SC2086 # a list of pids
  python3 -c '
import os, sys
ticks = 0
for pid in sys.argv[1:]:
    try:
        fields = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    ticks += int(fields[11]) + int(fields[12])
print("%.2f" % (ticks / os.sysconf("SC_CLK_TCK")))' $pids
}

# The CPU seconds KEY's server used since server_cpu printed START.
cpu_since() { # KEY START
  awk -v a="$2" -v b="$(server_cpu "$1")" 'BEGIN { printf "%.2f", b - a }'
}

# The directory of the current BuildGrid's disk CAS.
bgd_cas() { echo "$W/buildgrid-$SERVER_GEN/cas"; }

# machine NAME KEY: a fresh machine's environment (an empty HOARD_DIR, its journal, the
# tier), its server not started.
machine() {
  export HOARD_DIR=$W/machine-$1 HOARD_SERVER_UDS=$W/machine-$1.sock HOARD_IDLE_TIMEOUT=0
  export HOARD_JOURNAL=$W/journal-$1
  unset HOARD_PREFETCH HOARD_LOG HOARD_REDIS_ENDPOINT HOARD_REAPI_ENDPOINT
  "$HOARD" --stop-server >/dev/null 2>&1 || true
  rm -rf "$HOARD_DIR" "$HOARD_JOURNAL"
  local line
  while IFS= read -r line; do export "${line?}"; done <"$W/env-$2"
}

machine_stop() { "$HOARD" --stop-server >/dev/null 2>&1 || true; }

# What the current machine's failed tier operations were told, from its server.log (which
# names them at debug: B's machines log the remote tiers' module at that level, nothing
# else): "Code×n+..." by the status or error word after the call's name, or "-".
error_causes() {
  local causes
  causes=$(grep -h 'remote tier operation failed' "$HOARD_DIR"/server.log* 2>/dev/null |
    sed -nE 's/.* error=[^:]*: ([A-Za-z]+).*/\1/p' | sort | uniq -c |
    awk '{ printf "%s%s×%s", (NR > 1 ? "+" : ""), $2, $1 }')
  echo "${causes:--}"
}

projects_to_lay=$projects
[ "$MICRO" -gt 0 ] && [[ " $projects " != *" c "* ]] && projects_to_lay+=" c"
lay_out_projects "$projects_to_lay" "${corpus_dir:-$W/corpus}"

# --- the rounds ---------------------------------------------------------------------------

# machine_done: the current machine's server stopped and its disk removed (its journal kept).
machine_done() {
  machine_stop
  rm -rf "$HOARD_DIR"
}

# One round of KEY on PROJECT, on a tier empty_tier has just emptied (in this shell: a
# server it restarts must be known to stop_all): "COLD WARM NOPF HITS MISSES THITS TMISSES
# PREFETCHED ERRORS LOOKUPS LOOKUP_MS NOPF_LOOKUPS NOPF_LOOKUP_MS CPU NOPF_CPU CAUSES", CPU
# the seconds the tier's server spent during B's build, CAUSES what B's failed tier
# operations were told (error_causes).
round_of() { # KEY PROJECT ROUND
  local key=$1 project=$2 round=$3 name=${STATNAME[$1]}
  (
    local cold warm nopf counts j jn written j_lookups j_mean jn_lookups jn_mean cpu cpu_nopf c0 causes
    machine "A-$project-$key-$round" "$key"
    "$HOARD" --start-server >/dev/null 2>&1 || true
    cold=$(project_build "$project")
    written=$(wait_tier_writes "$name")
    say "$project, $key: machine A wrote $written entries to the tier"
    machine_done

    # B's server is started first, so that the build does not pay for its start.
    machine "B-$project-$key-$round" "$key"
    # shellcheck disable=SC2030 # this machine's setting, in this subshell only
    export HOARD_LOG=warn,hoard_storage::tier::remote=debug
    "$HOARD" --start-server >/dev/null 2>&1 || true
    c0=$(server_cpu "$key")
    warm=$(project_build "$project")
    cpu=$(cpu_since "$key" "$c0")
    counts=$(stat_fields "$name" cache_hits cache_misses tier.hits tier.misses tier.prefetched tier.errors)
    machine_stop
    causes=$(error_causes)
    machine_done
    j=$(journal_tier "$HOARD_JOURNAL" "$name")

    machine "Bnopf-$project-$key-$round" "$key"
    # shellcheck disable=SC2030 # this machine's setting, in this subshell only
    export HOARD_PREFETCH=off
    "$HOARD" --start-server >/dev/null 2>&1 || true
    c0=$(server_cpu "$key")
    nopf=$(project_build "$project")
    cpu_nopf=$(cpu_since "$key" "$c0")
    machine_done
    jn=$(journal_tier "$HOARD_JOURNAL" "$name")
    # journal_tier: HITS LOOKUPS MEAN FIRST REST; the rounds keep LOOKUPS and MEAN.
    read -r _ j_lookups j_mean _ <<<"$j"
    read -r _ jn_lookups jn_mean _ <<<"$jn"
    echo "$cold $warm $nopf $counts $j_lookups $j_mean $jn_lookups $jn_mean $cpu $cpu_nopf $causes"
  )
}

# A row's per-round values, "a, b, c".
list() { grep -v '^$' | paste -sd, - | sed 's/,/, /g'; }

# r = NUM / DEN to 2 places, or n/a.
div() { if is_number "$1" && is_number "$2"; then awk -v n="$1" -v d="$2" 'BEGIN { if (d > 0) printf "%.2f", n / d; else print "n/a" }'; else echo n/a; fi; }

run_project() {
  local project=$1 round key order out
  local cold warm nopf hits misses thits tmisses pf errs lk lkms nlkms cpu ncpu causes
  local -A COLD=() WARM=() NOPF=() HITS=() TIER=() LOOKUP=() NOPFLOOKUP=() CPU=() NCPU=()
  for ((round = 1; round <= reps; round++)); do
    order=("${TIERS[@]}")
    if ((round % 2 == 0)); then
      local -a rev=()
      for key in "${TIERS[@]}"; do rev=("$key" "${rev[@]}"); done
      order=("${rev[@]}")
    fi
    for key in "${order[@]}"; do
      say "$project, round $round/$reps: $key"
      if empty_tier "$key"; then
        out=$(round_of "$key" "$project" "$round")
      else
        out="failed failed failed ? ? ? ? ? ? ? - ? - - - -"
      fi
      read -r cold warm nopf hits misses thits tmisses pf errs lk lkms _ nlkms cpu ncpu causes <<<"$out"
      [ "$causes" = - ] || errs+=" ($causes)"
      COLD[$key]+="$cold"$'\n'
      WARM[$key]+="$warm"$'\n'
      NOPF[$key]+="$nopf"$'\n'
      HITS[$key]+="$hits / $misses"$'\n'
      TIER[$key]+="$thits / $tmisses / $pf / $errs"$'\n'
      LOOKUP[$key]+="$lk × $lkms"$'\n'
      NOPFLOOKUP[$key]+="$nlkms"$'\n'
      CPU[$key]+="$cpu"$'\n'
      NCPU[$key]+="$ncpu"$'\n'
    done
  done

  local compiles=""
  if [ "$project" = c ]; then
    compiles=$(grep -c "^$(printf '\t')" "$W/Makefile")
    echo "## The REAPI tier beside redis, C corpus: $compiles compiles, make -j2; seconds, median of $reps"
  else
    echo "## The REAPI tier beside redis, cargo project (bench/rustapp, cargo build, hoard as RUSTC_WRAPPER); seconds, median of $reps"
  fi
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) cores (load average at the start $LOAD_AT_START, now $(cut -d' ' -f1-3 /proc/loadavg)), hoard $(version_of "$HOARD") at $HOARD; command: bench/reapi.sh $reps"
  echo
  echo "| tier | A's cold build (fills the tier) | B's warm build, empty disk | B's warm build, HOARD_PREFETCH=off | B's hits / misses, each round | B's tier: hits / misses / prefetched / errors, each round | B's tier lookups × mean lookup_ms, each round | lookup_ms per hit, HOARD_PREFETCH=off | the tier server's CPU s in B's warm build / with HOARD_PREFETCH=off |"
  echo "|---|---|---|---|---|---|---|---|---|"
  local -A MW=() MN=()
  for key in "${TIERS[@]}"; do
    MW[$key]=$(median <<<"${WARM[$key]}")
    MN[$key]=$(median <<<"${NOPF[$key]}")
    echo "| ${ROWLABEL[$key]} | $(median <<<"${COLD[$key]}") | ${MW[$key]} | ${MN[$key]} | $(list <<<"${HITS[$key]}") | $(list <<<"${TIER[$key]}") | $(list <<<"${LOOKUP[$key]}") | $(median <<<"$(grep -v -- '^-$' <<<"${NOPFLOOKUP[$key]}" || true)") | $(median <<<"${CPU[$key]}") / $(median <<<"${NCPU[$key]}") |"
  done
  local reason
  for reason in "${NOT_MEASURED[@]}"; do
    echo "| ${reason%%:*} | not measured | | | | | | | |"
  done
  echo
  [ "$project" = c ] && echo "Every C compile is cacheable: $compiles hits and no miss is a build entirely from the tier. "
  [ "$project" = rust ] && echo "In the cargo project, build scripts' runs and the final link are not cacheable and are not counted as misses. "
  echo "A compile that found its entry already on B's disk (prefetched) is a local hit and not a tier lookup. A tier error's cause, when B's server.log names it, follows its count (e.g. ResourceExhausted: BuildGrid refuses RPCs past its thread-pool-size, 10 here, at once; what hoard does with such an error, a fetch of its own or the entry compiled, shows in B's hits)."
  echo
  if [ -n "${MW[redis]:-}" ]; then
    for key in buildgrid bazel_remote; do
      [ -n "${MW[$key]:-}" ] || continue
      echo "- $project, B's warm build, ${ROWLABEL[$key]} / redis: $(div "${MW[$key]}" "${MW[redis]}") (no target yet)"
      echo "- $project, B's warm build with HOARD_PREFETCH=off, ${ROWLABEL[$key]} / redis: $(div "${MN[$key]}" "${MN[redis]}")"
    done
  fi
  local reason
  for reason in "${NOT_MEASURED[@]}"; do echo "- ${reason}"; done
  echo
}

for project in $projects; do
  run_project "$project"
done

# --- where the time goes --------------------------------------------------------------------

cat >"$W/probe.py" <<'PY'
"""Times single requests, one at a time on a warm connection, against a redis or a REAPI
server holding what hoard stored. Prints lines "NAME COUNT MEDIAN_MS P90_MS MEDIAN_BYTES",
tab-separated."""
import hashlib, os, random, socket, statistics, sys, time

def report(name, times, sizes):
    times = sorted(times)
    print(name, len(times), f"{statistics.median(times) * 1000:.3f}",
          f"{times[min(len(times) - 1, int(len(times) * 0.9))] * 1000:.3f}",
          int(statistics.median(sizes)) if sizes else "-", sep="\t")

def timed(n, items, call):
    times = []
    for i in range(n):
        start = time.perf_counter()
        call(items[i % len(items)] if items else None)
        times.append(time.perf_counter() - start)
    return times

def redis(port, n):
    keys = [k for k in sys.stdin.read().split() if k]
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    def call(*words):
        s.sendall(b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words))
        head = f.readline()
        if head[:1] != b"$":
            return head
        size = int(head[1:])
        if size >= 0:
            f.read(size + 2)
        return size
    get = lambda key: call(b"GET", key.encode())
    keys = [k for k in keys if get(k) > 0]
    if not keys:
        return
    random.shuffle(keys)
    sizes = [get(k) for k in keys]
    for _ in range(20):
        get(keys[0])
    report("PING", timed(n, None, lambda _: call(b"PING")), [])
    report("GET(stored)", timed(n, keys, get), sizes)

def reapi(port, n, cas):
    import grpc
    from buildgrid._protos.build.bazel.remote.execution.v2 import (
        remote_execution_pb2 as re, remote_execution_pb2_grpc as rg)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    ac = rg.ActionCacheStub(channel)
    cs = rg.ContentAddressableStorageStub(channel)
    # hoard's Actions, found in the CAS where hoard uploads them beside each result: a
    # Command ["hoard", "entry", KEY] and the Action naming it; the ActionCache key is the
    # Action's digest.
    blobs = {}
    for root, _, files in os.walk(cas):
        for name in files:
            if len(name) == 62 and len(os.path.basename(root)) == 2:
                with open(os.path.join(root, name), "rb") as fh:
                    blobs[os.path.basename(root) + name] = fh.read()
    commands = set()
    for h, data in blobs.items():
        try:
            c = re.Command.FromString(data)
        except Exception:
            continue
        if list(c.arguments[:2]) == ["hoard", "entry"]:
            commands.add(h)
    actions = []
    for h, data in blobs.items():
        try:
            a = re.Action.FromString(data)
        except Exception:
            continue
        if a.command_digest.hash in commands and hashlib.sha256(data).hexdigest() == h:
            actions.append(re.Digest(hash=h, size_bytes=len(data)))
    random.shuffle(actions)
    def result(digest):
        return ac.GetActionResult(re.GetActionResultRequest(instance_name="", action_digest=digest))
    def absent(_):
        try:
            result(re.Digest(hash=os.urandom(32).hex(), size_bytes=140))
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
    for _ in range(20):
        absent(None)
    report("GetActionResult(absent)", timed(n, None, absent), [])
    if not actions:
        return
    results = [result(a) for a in actions]
    report("GetActionResult(stored)", timed(n, actions, result), [a.size_bytes for a in actions])
    # What hoard reads for one entry: every output file (and stdout, stderr) in one batch.
    entries = []
    for r in results:
        digests = [o.digest for o in r.output_files]
        digests += [d for d in (r.stdout_digest, r.stderr_digest) if d.size_bytes > 0]
        if digests:
            entries.append(digests)
    def read(digests):
        r = cs.BatchReadBlobs(re.BatchReadBlobsRequest(instance_name="", digests=digests))
        assert all(x.status.code == 0 for x in r.responses), r
    if entries:
        report("BatchReadBlobs(an entry's blobs)", timed(n, entries, read),
               [sum(d.size_bytes for d in e) for e in entries])

if sys.argv[1] == "redis":
    redis(int(sys.argv[2]), int(sys.argv[3]))
else:
    reapi(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
PY

# The object targets of the micro-run: the corpus's first MICRO files.
micro_objs() { grep -E '^/[^:]+\.o: ' "$W/Makefile" | cut -d: -f1 | head -n "$MICRO"; }

# micro_pass KEY PASS: on a tier empty_tier has just emptied (BuildGrid with -vv for PASS
# "count", to log every request), A fills it with the micro-run's objects, then M (empty
# disk, prefetch off) builds them one at a time. Prints "FIRST_MS REST_MS HITS REQUESTS"
# where REQUESTS are the tier server's requests during M's build, "Method=count,..." (redis,
# and BuildGrid's counting pass; else "-").
micro_pass() {
  local key=$1 pass=$2 name=${STATNAME[$1]}
  (
    local objs j before requests=- hits mean first rest grpc=-
    mapfile -t objs < <(micro_objs)
    machine "A-micro-$key-$pass" "$key"
    "$HOARD" --start-server >/dev/null 2>&1 || true
    rm -f "${objs[@]}"
    make -s -j2 -f "$W/Makefile" "L=$HOARD" "${objs[@]}" >/dev/null
    wait_tier_writes "$name" >/dev/null
    machine_done

    machine "M-micro-$key-$pass" "$key"
    # shellcheck disable=SC2031 # this machine's setting, in this subshell only
    export HOARD_PREFETCH=off
    # On BuildGrid's counting pass, h2's frames are logged too: each gRPC call's time as
    # hoard's client sees it.
    # shellcheck disable=SC2031 # this machine's setting, in this subshell only
    [ "$key" = buildgrid ] && [ "$pass" = count ] && export HOARD_LOG=warn,h2=debug
    "$HOARD" --start-server >/dev/null 2>&1 || true
    rm -f "${objs[@]}"
    [ "$key" = redis ] && redis-cli -p "$REDIS_PORT" config resetstat >/dev/null
    before=0
    [ "$key" = buildgrid ] && before=$(wc -l <"$W/buildgrid-$SERVER_GEN/log")
    make -s -j1 -f "$W/Makefile" "L=$HOARD" "${objs[@]}" >/dev/null
    machine_stop
    [ "${HOARD_LOG:-}" = warn,h2=debug ] && grpc=$(grpc_calls "$HOARD_DIR"/server.log*)
    machine_done
    case $key in
    redis)
      requests=$(redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' |
        sed -nE 's/^cmdstat_([a-z|]+):calls=([0-9]+).*/\1=\2/p' | grep -vE '^(config|info)' | paste -sd, -)
      ;;
    buildgrid)
      if [ "$pass" = count ]; then
        requests=$(tail -n "+$((before + 1))" "$W/buildgrid-$SERVER_GEN/log" | grep 'Received request' |
          grep -oE 'method="[A-Za-z]+"' | cut -d'"' -f2 | sort | uniq -c | awk '{ printf "%s%s=%s", (NR > 1 ? "," : ""), $2, $1 }')
      fi
      ;;
    esac
    j=$(journal_tier "$HOARD_JOURNAL" "$name")
    read -r hits _ mean first rest <<<"$j"
    echo "$first $rest $hits ${requests:--} $mean $grpc"
  )
}

# "CALLS TOTAL_MS MEDIAN_MS" of the gRPC calls in a server.log with h2's frames: each call
# from its request's headers sent to its trailers (END_STREAM) received, as hoard sees it.
grpc_calls() { # LOG...
  cat "$@" | python3 -c '
import re, statistics, sys
from datetime import datetime
sent, took = {}, []
pat = re.compile(r"^(\S+)Z .*(send|received) frame=Headers \{ stream_id: StreamId\((\d+)\), flags: \((0x[0-9a-f]+)")
for line in sys.stdin:
    m = pat.match(line)
    if not m:
        continue
    at = datetime.fromisoformat(m[1]).timestamp()
    if m[2] == "send":
        sent.setdefault(m[3], at)
    elif int(m[4], 16) & 1 and m[3] in sent:
        took.append((at - sent.pop(m[3])) * 1000)
print(len(took), f"{sum(took):.2f}", f"{statistics.median(took):.3f}" if took else "-")'
}

# The probe's lines for KEY, on the tier as micro_pass left it.
probe() {
  case $1 in
  redis)
    redis-cli -p "$REDIS_PORT" --scan | python3 "$W/probe.py" redis "$REDIS_PORT" "$PROBE"
    ;;
  buildgrid)
    "$(dirname "$BGD")/python" "$W/probe.py" reapi "$BGD_PORT" "$PROBE" "$(bgd_cas)"
    ;;
  esac
}

# "Method=n,..." divided by HITS: "Method n/HITS, ..." to 2 places.
per_hit() { # REQUESTS HITS
  if [ "$1" = - ] || ! is_number "$2" || [ "$2" -eq 0 ]; then
    echo "-"
    return
  fi
  tr ',' '\n' <<<"$1" | awk -F= -v h="$2" '{ printf "%s%s %.2f", (NR > 1 ? ", " : ""), $1, $2 / h }'
}

if [ "$MICRO" -gt 0 ]; then
  echo "## Where the time goes: the C corpus's first $MICRO files, one compile at a time (make -j1), each a remote hit (empty disk, HOARD_PREFETCH=off)"
  echo
  echo "| tier | hits | requests to the server per hit | lookup_ms, the first compile (opens the connection) | lookup_ms per hit, the others (median) | the server alone: ms per request, median (p90), one at a time on a warm connection |"
  echo "|---|---|---|---|---|---|"
  declare -A REST=() PERHIT=() PROBED=() GRPC=()
  for key in "${TIERS[@]}"; do
    say "where the time goes: $key"
    first=- rest=- hits=0 requests=- probed=""
    if empty_tier "$key"; then
      read -r first rest hits requests <<<"$(micro_pass "$key" time)"
      probed=$(probe "$key" || true)
    fi
    REST[$key]=$rest
    hits_for=$hits
    if [ "$key" = buildgrid ]; then
      # BuildGrid counts requests only in its log, at -vv: a second pass, its times unused.
      requests=- hits_for=0
      if empty_tier "$key" -vv; then
        read -r _ _ hits_for requests cmean calls callms callmed <<<"$(micro_pass "$key" count)"
        GRPC[$key]="$hits_for $cmean $calls $callms $callmed"
      fi
    fi
    PERHIT[$key]=$(per_hit "$requests" "$hits_for")
    PROBED[$key]=$probed
    server=$(awk -F'\t' '{ printf "%s%s %s (%s)%s", (NR > 1 ? "; " : ""), $1, $3, $4, ($5 != "-" ? ", " $5 " B median" : "") }' <<<"$probed")
    echo "| ${ROWLABEL[$key]} | $hits | ${PERHIT[$key]} | $first | $rest | ${server:--} |"
  done
  echo
  echo "- Requests per hit, counted by the server (redis: INFO commandstats; BuildGrid: its request log, on a second pass with -vv whose times are not used). A direct-mode hit looks up two entries, the manifest and then the result, one after the other. A REAPI entry is an ActionResult (GetActionResult) whose outputs are CAS blobs, read in one BatchReadBlobs (ByteStream Read for a blob over the batch limit): two round trips an entry. A redis entry is one GET, but hoard's redis client (OpenDAL's connection pool) sends a PING to check a pooled connection before each reuse: also two round trips an entry. GetCapabilities is asked once per server process."
  echo "- The server alone: Python clients, one request at a time on what A stored (a raw socket for redis; grpcio, the client BuildGrid ships, for REAPI; hoard's Actions found in the CAS, where hoard uploads them beside each result), so the client's own share is in each figure. A GetActionResult of an absent digest is the floor of a REAPI request; a stored one is also read from BuildGrid's CAS and its blobs checked there."
  for key in "${TIERS[@]}"; do
    if [ "${PERHIT[$key]:--}" = - ] || [ -z "${PROBED[$key]:-}" ]; then continue; fi
    # Each request per hit times the server-alone median of its kind (a stored entry's
    # figure where there is one, else an absent one's).
    echo "- ${ROWLABEL[$key]}: the server's share of a hit, requests per hit × the server alone's median: $(awk -F'\t' -v key="$key" -v perhit="${PERHIT[$key]}" -v rest="${REST[$key]}" '
      { split($1, n, "("); if ($1 !~ /absent/ || !(n[1] in ms)) ms[n[1]] = $3 }
      END {
        k = split(perhit, parts, ", ")
        for (i = 1; i <= k; i++) {
          split(parts[i], mc, " "); m = mc[1]; c = mc[2]
          lat = ms[toupper(key) == "REDIS" ? toupper(m) : m]
          if (m == "GetCapabilities" || lat == "") continue
          sum += c * lat
          text = text (text == "" ? "" : " + ") sprintf("%s %s × %.3f", c, m, lat)
        }
        printf "%s = %.2f ms", text, sum
        if (rest ~ /^[0-9.]+$/) printf " of the %.2f ms a hit costs in hoard (the rest is hoard'"'"'s own: the wrapper and its server, the local miss, the client library, checking the bytes read (for REAPI, the SHA-256 of every blob), verifying the entry, writing the outputs)", rest
      }' <<<"${PROBED[$key]}")."
  done
  if [ -n "${GRPC[buildgrid]:-}" ]; then
    read -r chits cmean calls callms callmed <<<"${GRPC[buildgrid]}"
    if is_number "$cmean" && is_number "$callms" && [ "$chits" -gt 0 ]; then
      echo "- ${ROWLABEL[buildgrid]}, as hoard's client sees it (the counting pass, with BuildGrid logging every request and hoard logging h2's frames; each call from its request's headers sent to its trailers received): $calls gRPC calls for $chits hits, median $callmed ms a call; $(awk -v t="$callms" -v h="$chits" -v m="$cmean" 'BEGIN { printf "%.2f ms a hit in calls, of the %.2f ms mean lookup_ms a hit of that pass: %.2f ms a hit is hoard'"'"'s own", t / h, m, m - t / h }')."
    fi
  fi
  if is_number "${REST[redis]:-}" && is_number "${REST[buildgrid]:-}"; then
    echo "- Per hit, reapi on BuildGrid costs $(awk -v a="${REST[buildgrid]}" -v b="${REST[redis]}" 'BEGIN { printf "%.2f", a - b }') ms more than redis in hoard (lookup_ms per hit, the others' medians)."
  fi
  echo
fi
