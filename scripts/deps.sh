#!/usr/bin/env bash
# Installs the Debian packages axon needs to build, test and benchmark, when any is missing.
# Usage: scripts/deps.sh [--bench]
#   --bench  also the benchmarks' optional baselines: golang-go (bench_fiber's goroutines)
#            and libboost-context-dev (bench_fiber's jump_fcontext); without them those rows
#            print n/a
set -euo pipefail

# clang and its runtime libraries (libFuzzer, a Recommends of clang that an
# install without recommends would miss) build the fuzzers of tests/fuzz.
packages=(build-essential cmake pkg-config libck-dev check liburing-dev libuv1-dev
          mosquitto libmosquitto-dev mosquitto-clients socat python3 clang libclang-rt-14-dev
          valgrind)
case "${1:-}" in
  "") ;;
  --bench) packages+=(golang-go libboost-context-dev fio) ;;
  *) echo "usage: $0 [--bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -q
  "${as_root[@]}" apt-get install -y -q "${missing[@]}"
fi
