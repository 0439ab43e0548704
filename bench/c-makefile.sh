#!/usr/bin/env bash
# Writes a Makefile that compiles every .c file under SRC_DIR to an object in OUT_DIR, one
# compile per file, as a build system does. make execs each compile directly (no shell between).
# usage: bench/c-makefile.sh SRC_DIR OUT_DIR > Makefile
#        make -j2 -f Makefile L="launcher"    # L is empty for plain gcc
#        make -f Makefile clean
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 SRC_DIR OUT_DIR" >&2; exit 2; }
src=$(cd "$1" && pwd)
out=$2
rules=$(find "$src" -name '*.c' | LC_ALL=C sort | while read -r f; do
  obj="$out/$(echo "${f#"$src"/}" | tr / _).o"
  # shellcheck disable=SC2016 # $(L) and $(CFLAGS) are make variables
  printf '%s: %s\n\t$(L) gcc $(CFLAGS) -I%s -c %s -o %s\n' "$obj" "$f" "$(dirname "$f")" "$f" "$obj"
done)
echo "CFLAGS ?= -O2 -g"
echo "OBJS := $(echo "$rules" | grep -E '^[^[:space:]].*: ' | cut -d: -f1 | tr '\n' ' ')"
echo "all: \$(OBJS)"
echo "clean:; rm -f \$(OBJS) \$(OBJS:.o=.d)"
echo "$rules"
