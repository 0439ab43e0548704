#!/usr/bin/env bash
# bench/rustapp (a binary with about 40 crates.io dependencies) built with cargo build (debug,
# CARGO_INCREMENTAL=0), side by side in one run: plain cargo, sccache (server mode and
# client-side mode), zccache, kache, and hoard as v2 and as v1, each as RUSTC_WRAPPER.
# Cold = empty cache; warm = the target directory removed, then a build with a full cache.
# Prints a markdown table of medians and the issue-7 ratios with PASS/MISS. Anchors that are
# not installed are skipped.
#
# usage: bench/rust.sh [REPEATS]     (default 3)
# env:   CARGO_TARGET_DIR   where hoard is built (default: the repository's target/); the
#                           project itself is always built in a private temp directory
#        HOARD_BIN          benchmark this hoard binary instead of building one
#        SCCACHE_BIN, ZCCACHE_BIN, KACHE_BIN   where the anchors are
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

reps=${1:-3}
[[ $reps =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [REPEATS]" >&2; exit 2; }
bench_init rust
build_hoard

proj=$W/rustapp
cp -r "$BENCH/rustapp" "$proj"
rm -rf "$proj/target"
cd "$proj"
say "fetching the project's dependencies"
cargo fetch --locked --quiet
crates=$(cargo tree --prefix none 2>/dev/null | sort -u | wc -l)
export CARGO_TARGET_DIR=$W/target CARGO_INCREMENTAL=0 CARGO_TERM_QUIET=true

# One build with RUSTC_WRAPPER=$1 (empty: none), from no target directory.
rbuild() {
  rm -rf "$CARGO_TARGET_DIR"
  RUSTC_WRAPPER=$1 timed cargo build --offline --locked
}

say "an unmeasured plain build, to warm the page cache (rustc, the registry sources)"
rbuild "" >/dev/null

# The tools, in the table's order. Each step prints one time (see `tool` in lib.sh).
plain_cold() { rbuild ""; }
tool plain "plain cargo $(version_of cargo)" plain

if installed "$SCCACHE"; then
  sccache_cold() { # MODE
    sccache_env "$1"
    "$SCCACHE" --stop-server >/dev/null 2>&1 || true
    rm -rf "$SCCACHE_DIR"
    "$SCCACHE" --start-server >/dev/null 2>&1 || true
    rbuild "$SCCACHE"
  }
  sccache_warm() { # MODE
    sccache_env "$1"
    rbuild "$SCCACHE"
  }
  sccache0_cold() { sccache_cold 0; }
  sccache0_warm() { sccache_warm 0; }
  sccache0_after() { sccache_stop 0; }
  sccache1_cold() { sccache_cold 1; }
  sccache1_warm() { sccache_warm 1; }
  sccache1_after() { sccache_stop 1; }
  tool sccache0 "sccache $(version_of "$SCCACHE"), server mode" sccache0
  tool sccache1 "sccache $(version_of "$SCCACHE"), client-side mode" sccache1
else
  tool sccache0 "sccache, server mode" -
  tool sccache1 "sccache, client-side mode" -
fi

if installed "$ZCCACHE"; then
  zccache_cold() {
    zccache_empty
    rbuild "$ZCCACHE"
  }
  zccache_warm() { rbuild "$ZCCACHE"; }
  zccache_after() { zccache_empty; }
  tool zccache "zccache $(version_of "$ZCCACHE")" zccache
else
  tool zccache "zccache" -
fi

if installed "$KACHE"; then
  # kache's daemon lives in KACHE_CACHE_DIR: stopped before the directory is removed.
  kache_cold() {
    kache_stop
    rm -rf "$W/kache"
    KACHE_CACHE_DIR=$W/kache rbuild "$KACHE"
  }
  kache_warm() { KACHE_CACHE_DIR=$W/kache rbuild "$KACHE"; }
  kache_after() { kache_stop; }
  tool kache "kache $(version_of "$KACHE")" kache
else
  tool kache "kache" -
fi

# hoard: cold from a stopped server and no HOARD_DIR; warm with the server the cold build
# started. The counters of each warm build are kept to show it was all hits.
hoard_cold() { # v2|v1
  hoard_reset "$1"
  hoard_use "$1"
  rbuild "$HOARD"
}
hoard_warm() { # v2|v1
  hoard_use "$1"
  "$HOARD" --zero-stats >/dev/null 2>&1 || true
  rbuild "$HOARD"
  hoard_counts >>"$W/counts-$1"
}
hoard_v2_cold() { hoard_cold v2; }
hoard_v2_warm() { hoard_warm v2; }
hoard_v2_after() { hoard_stop v2; }
hoard_v1_cold() { hoard_cold v1; }
hoard_v1_warm() { hoard_warm v1; }
hoard_v1_after() { hoard_stop v1; }
tool hoard_v2 "hoard v2 (default)" hoard_v2
tool hoard_v1 "hoard v1 (HOARD_PROTOCOL=1: the server runs the pipeline)" hoard_v1

measure "$reps"
for variant in v2 v1; do
  note "hoard $variant, counters over the $reps warm builds: $(hoard_counts_total "$W/counts-$variant")"
done

# The Rust leaders' best warm time, and which of them it was.
best=""
best_name=""
for key in kache zccache; do
  if is_number "${WARM[$key]}" && { [ -z "$best" ] || awk -v a="${WARM[$key]}" -v b="$best" 'BEGIN { exit !(a < b) }'; }; then
    best=${WARM[$key]}
    best_name=$key
  fi
done
if [ -z "$best" ]; then
  best="not installed or failed"
  best_name="kache and zccache"
fi

echo "## rustapp: $crates crates, cargo build (debug, CARGO_INCREMENTAL=0), target dir removed between builds; seconds, median of $reps"
echo
echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(rustc --version), hoard $(version_of "$HOARD") at $HOARD; command: bench/rust.sh $reps"
echo
print_table "cold (empty cache)" "warm (all hits)"
echo "Ratios (hoard = hoard v2 unless named):"
echo
ratio "cargo warm, hoard / min(kache, zccache) = $best_name" "${WARM[hoard_v2]}" "hoard warm" "$best" "$best_name" 0.9
ratio "cargo cold, hoard / plain cargo" "${COLD[hoard_v2]}" "hoard cold" "${COLD[plain]}" "plain cargo" 1.05
