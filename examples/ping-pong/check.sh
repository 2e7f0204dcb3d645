#!/usr/bin/env bash
# Runs the ping-pong example: a short run must complete every round trip in order, report the
# ponger's normal stop (through the pinger's monitor) and exit 0; a long run stopped with SIGINT
# must shut both actors down and exit 0 saying how far it got; a bad argument exits 2.
# Usage: check.sh path/to/ping-pong        (CTest runs it as the test example_ping_pong)
# CHECK_WRAPPER runs the example under a tool that keeps it in the same process (the SIGINT
# goes to that pid), e.g. CHECK_WRAPPER="valgrind --leak-check=full --error-exitcode=1".
set -euo pipefail

bin=${1:?usage: check.sh path/to/ping-pong}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, fail()
pid=
cleanup() { # also kills a long run left behind by a failed check
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# 1. A short run to the end.
status=0
"${wrapper[@]}" "$bin" 2000 >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 0 ] || fail "2000 round trips: exit status $status, expected 0"
grep -Eqx 'pinger on core 0, ponger on core [01] of [0-9]+' "$tmp/out" || fail "no placement line"
grep -qx 'ponger stopped: normal' "$tmp/out" || fail "the pinger saw no normal DOWN"
grep -Eqx '2000 round trips between core 0 and core [01] in [0-9.]+ s: [0-9]+ messages/s' \
  "$tmp/out" || fail "no '2000 round trips ... messages/s' line"
grep -Eqx 'core 0: [0-9]+ sent, [0-9]+ delivered, [0-9]+ wake-ups, [0-9]+ sleeps' "$tmp/out" ||
  fail "no statistics for core 0"
! grep -q '^ping-pong: ' "$tmp/err" || fail "the example reported an error"
echo "2000 round trips: $(grep -o '[0-9]* messages/s' "$tmp/out")"

# 2. A run far too long to finish, stopped by SIGINT once it is under way.
"${wrapper[@]}" "$bin" 1000000000000 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 300); do
  grep -q '^pinger on core' "$tmp/out" && break
  kill -0 "$pid" 2>/dev/null || fail "the long run exited early"
  sleep 0.1
done
sleep 0.5
kill -INT "$pid"
for _ in $(seq 300); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$pid" 2>/dev/null && fail "no exit within 30 s of SIGINT"
status=0
wait "$pid" || status=$?
pid=
[ "$status" -eq 0 ] || fail "SIGINT: exit status $status, expected 0"
grep -Eqx 'interrupted after [0-9]+ of 1000000000000 round trips \(pinger: runtime shutdown\)' \
  "$tmp/out" || fail "SIGINT: no 'interrupted after N of ... (pinger: runtime shutdown)' line"
echo "SIGINT: $(grep -o 'interrupted after [0-9]* ' "$tmp/out")round trips, clean exit"

# 3. A bad argument.
status=0
"$bin" 0 >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 2 ] || fail "'ping-pong 0': exit status $status, expected 2 (usage)"
echo "bad argument: usage, exit 2"
