#!/usr/bin/env bash
# Lays out the C corpus into DIR: Lua 5.1 to 5.5 and zstd's lib (188 translation units), taken
# from the crates.io source packages lua-src 551.1.0 and zstd-sys 2.1.2 (fetched with cargo,
# so it needs only crates.io, or a cargo registry cache that already holds them).
# usage: bench/c-corpus.sh DIR        (does nothing when DIR/.ready exists)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
[ -f "$dir/.ready" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src"
echo 'fn main() {}' >"$tmp/src/main.rs"
cat >"$tmp/Cargo.toml" <<'T'
[package]
name = "corpus"
version = "0.0.0"
edition = "2021"
[dependencies]
lua-src = "=551.1.0"
zstd-sys = "=2.1.2"
[workspace]
T
(cd "$tmp" && cargo fetch -q)
# cargo fetch unpacks the packages under $CARGO_HOME/registry/src/<index>/.
find_pkg() {
  local found
  found=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -mindepth 2 -maxdepth 2 -type d -name "$1" | head -1)
  [ -n "$found" ] || { echo "c-corpus.sh: $1 not found in the cargo registry" >&2; exit 1; }
  echo "$found"
}
lua=$(find_pkg 'lua-src-551.1.0')
zstd=$(find_pkg 'zstd-sys-2.1.2+zstd.*')
rm -rf "$dir"
mkdir -p "$dir"
cp -r "$lua"/lua-5.* "$dir/"
cp -r "$zstd/zstd/lib" "$dir/zstd"
rm -rf "$dir/zstd/legacy" "$dir/zstd/deprecated"
touch "$dir/.ready"
