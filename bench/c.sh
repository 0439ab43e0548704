#!/usr/bin/env bash
# The C corpus (Lua 5.1 to 5.5 and zstd's lib, 188 translation units; see c-corpus.sh) built
# with make -j2, gcc -O2 -g, side by side in one run: plain gcc, the floor of a hit (floor.c),
# ccache, sccache (server mode and client-side mode), zccache, and hoard as v2 and as v1.
# Cold = empty cache; warm = every compile a hit. Prints a markdown table of medians and the
# issue-7 ratios with PASS/MISS. Anchors that are not installed are skipped.
#
# usage: bench/c.sh [REPEATS]        (default 3)
# env:   CARGO_TARGET_DIR   where hoard is built (default: the repository's target/)
#        HOARD_BIN          benchmark this hoard binary instead of building one
#        BENCH_C_CORPUS     keep the corpus in this directory across runs (default: a temp dir)
#        CCACHE_BIN, SCCACHE_BIN, ZCCACHE_BIN   where the anchors are
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

reps=${1:-3}
[[ $reps =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [REPEATS]" >&2; exit 2; }
corpus_dir=${BENCH_C_CORPUS:-}
bench_init c
build_hoard
cd "$W"

corpus=${corpus_dir:-$W/corpus}
say "laying out the C corpus in $corpus"
"$BENCH/c-corpus.sh" "$corpus"
mkdir -p "$W/out"
"$BENCH/c-makefile.sh" "$corpus" "$W/out" >"$W/Makefile"
units=$(grep -c "^$(printf '\t')" "$W/Makefile")

# One build through launcher $1 (empty: plain gcc), from a clean output directory.
cbuild() {
  make -s -f "$W/Makefile" clean >/dev/null
  timed make -s -j2 -f "$W/Makefile" "L=$1"
}

# Warm the page cache (the sources, gcc's own files) so the first timed build is not
# penalised for it.
find "$corpus" -type f -exec cat {} + >/dev/null
gcc -O2 -c -o "$W/warmup.o" "$(find "$corpus" -name '*.c' | head -1)" -I"$corpus" 2>/dev/null || true

# The tools, in the table's order. Each step prints one time (see `tool` in lib.sh).
plain_cold() { cbuild ""; }
tool plain "plain gcc $(gcc -dumpfullversion 2>/dev/null || true)" plain

head -c 60000 /dev/urandom >"$W/floor.stored"
gcc -O2 -static -o "$W/floor" "$BENCH/floor.c" 2>/dev/null || gcc -O2 -o "$W/floor" "$BENCH/floor.c"
floor_warm() { FLOOR_OBJ=$W/floor cbuild "$W/floor"; }
tool floor "floor: copy a stored object, nothing else" floor

if installed "$CCACHE"; then
  ccache_cold() {
    export CCACHE_DIR=$W/ccache
    rm -rf "$CCACHE_DIR"
    cbuild "$CCACHE"
  }
  ccache_warm() { CCACHE_DIR=$W/ccache cbuild "$CCACHE"; }
  tool ccache "ccache $(version_of "$CCACHE") (direct mode)" ccache
else
  tool ccache "ccache" -
fi

if installed "$SCCACHE"; then
  sccache_cold() { # MODE
    sccache_env "$1"
    "$SCCACHE" --stop-server >/dev/null 2>&1 || true
    rm -rf "$SCCACHE_DIR"
    "$SCCACHE" --start-server >/dev/null 2>&1 || true
    cbuild "$SCCACHE"
  }
  sccache_warm() { # MODE
    sccache_env "$1"
    cbuild "$SCCACHE"
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
    cbuild "$ZCCACHE"
  }
  zccache_warm() { cbuild "$ZCCACHE"; }
  zccache_after() { zccache_empty; }
  tool zccache "zccache $(version_of "$ZCCACHE") (daemon)" zccache
else
  tool zccache "zccache" -
fi

# hoard: cold from a stopped server and no HOARD_DIR; warm with the server the cold build
# started. The counters of each warm build are kept to show it was all hits.
hoard_cold() { # v2|v1
  hoard_reset "$1"
  hoard_use "$1"
  cbuild "$HOARD"
}
hoard_warm() { # v2|v1
  hoard_use "$1"
  "$HOARD" --zero-stats >/dev/null 2>&1 || true
  cbuild "$HOARD"
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
  note "hoard $variant, counters over the $reps warm builds ($((reps * units)) compiles): $(hoard_counts_total "$W/counts-$variant")"
done

echo "## C corpus: $units compiles, make -j2, gcc -O2 -g; seconds, median of $reps"
echo
echo "$(date -u +%Y-%m-%d), $(nproc) cores, hoard $(version_of "$HOARD") at $HOARD; command: bench/c.sh $reps"
echo
print_table "cold (empty cache)" "warm (all hits)"
echo "Ratios (hoard = hoard v2 unless named):"
echo
ratio "C warm, hoard / ccache" "${WARM[hoard_v2]}" "hoard warm" "${WARM[ccache]}" "ccache warm" 0.7
ratio "C warm, hoard v2 / hoard v1" "${WARM[hoard_v2]}" "hoard v2 warm" "${WARM[hoard_v1]}" "hoard v1 warm" 1.0
ratio "C cold, hoard / plain gcc" "${COLD[hoard_v2]}" "hoard cold" "${COLD[plain]}" "plain gcc" 1.03
