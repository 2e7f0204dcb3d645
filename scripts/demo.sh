#!/usr/bin/env bash
# Builds and runs the demo: examples/device-gateway with --demo.  Three simulated serial
# devices on pty pairs are read by fibers; a TCP service on every core forwards their readings
# to subscribed clients; the program connects three clients of its own (one reads, one never
# reads, one sends commands), unplugs a device, and stops itself with a SIGINT, as a Ctrl-C
# would.  docs/demo.md walks through the program.  Usage: scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

cmake -S . -B build/demo -DAXON_BUILD_TESTS=OFF -DAXON_BUILD_BENCH=OFF >/dev/null
cmake --build build/demo -j "$(nproc)" --target device-gateway >/dev/null

status=0
timeout 60 build/demo/examples/device-gateway --demo || status=$?
echo "device-gateway exited with status $status"
[ "$status" -ne 0 ] ||
  echo "to try it by hand: build/demo/examples/device-gateway 7000; nc 127.0.0.1 7000; type sub"
exit "$status"
