#!/usr/bin/env bash
# Builds and runs the demo: the loop-echo example serving a few lines from a scripted client,
# then a SIGINT that shuts it down cleanly.  Usage: scripts/demo.sh [port]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

port=${1:-7000}
cmake -S . -B build/demo -DAXON_BUILD_TESTS=OFF -DAXON_BUILD_BENCH=OFF >/dev/null
cmake --build build/demo -j "$(nproc)" --target loop-echo >/dev/null

out=$(mktemp)
trap 'rm -f "$out"' EXIT
build/demo/examples/loop-echo "$port" >"$out" 2>&1 &
server=$!
for _ in $(seq 50); do grep -q listening "$out" && break; sleep 0.1; done
cat "$out"

exec 3<>"/dev/tcp/127.0.0.1/$port"
for line in "hello, axon" "every byte comes back" "bye for now"; do
  printf '%s\n' "$line" >&3
  IFS= read -r -t 5 reply <&3
  printf 'sent %-24s got %s\n' "\"$line\"" "\"$reply\""
done
exec 3>&-

kill -INT "$server"
status=0
wait "$server" || status=$?
echo "server exited with status $status:"
tail -n +2 "$out"
exit "$status"
