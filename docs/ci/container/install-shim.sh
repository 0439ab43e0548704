#!/bin/sh
# Makes DIR a directory of compiler shims (hoard-cc under the usual compiler names), to put
# first on PATH inside a container: `install-shim.sh /opt/hoard/shim` then
# PATH=/opt/hoard/shim:$PATH. Each name passes through to the real compiler when hoard is
# not there (see hoard-cc).
set -eu
dir=${1:?usage: install-shim.sh DIR}
here=$(cd "$(dirname "$0")" && pwd -P)
mkdir -p "$dir"
cp "$here/hoard-cc" "$dir/hoard-cc"
chmod 0755 "$dir/hoard-cc"
for name in cc gcc c++ g++ clang clang++; do
  ln -sf hoard-cc "$dir/$name"
done
