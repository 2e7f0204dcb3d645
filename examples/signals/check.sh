#!/usr/bin/env bash
# Runs the signals example three times.  First it sends SIGHUP twice, SIGUSR1 once and SIGINT,
# each after the previous one was handled, and checks that the app actor (core 0) and the audit
# actor (core 1) both saw SIGHUP and SIGUSR1 with this shell's pid, that SIGINT reached the app
# as a message (it stopped itself: "normal") and that the program exited 0.  Then SIGTERM, which
# the app also handles itself.  Then SIGUSR2, which has no subscriber: the runtime's default
# stops it gracefully ("runtime shutdown"), exit 0.
# Usage: check.sh path/to/signals          (CTest runs it as the test example_signals)
# CHECK_WRAPPER runs the example under a tool, e.g.
#   CHECK_WRAPPER="valgrind --leak-check=full --error-exitcode=1" check.sh build/examples/signals
set -euo pipefail

bin=${1:?usage: check.sh path/to/signals}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, fail()

# wait_for PATTERN: waits up to 20 s for a line matching the extended regex PATTERN.
wait_for() {
  for _ in $(seq 200); do
    grep -Eq "$1" "$tmp/out" && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  grep -Eq "$1" "$tmp/out" || fail "no line matching: $1"
}

# wait_count PATTERN N: waits up to 20 s until N lines match PATTERN.
wait_count() {
  for _ in $(seq 200); do
    [ "$(grep -Ec "$1" "$tmp/out")" -ge "$2" ] && return 0
    sleep 0.1
  done
  fail "fewer than $2 lines match: $1"
}

start() {
  "${wrapper[@]}" "$bin" >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  wait_for '^ready: pid [0-9]+, '
}

finish() { # expected exit status
  local status=0
  wait "$pid" || status=$?
  [ "$status" -eq "$1" ] || fail "exit status $status, expected $1"
  ! grep -q '^signals: ' "$tmp/err" || fail "the example reported an error"
}

me=$$
start
kill -HUP "$pid"
wait_for "^app: SIGHUP from pid $me: reload #1\$"
wait_for "^audit \(core 1\): SIGHUP from pid $me, uid [0-9]+\$"
kill -HUP "$pid"
wait_for "^app: SIGHUP from pid $me: reload #2\$"
kill -USR1 "$pid"
wait_for "^app: SIGUSR1 from pid $me: status #1, 2 reload\(s\) so far\$"
wait_for "^audit \(core 1\): SIGUSR1 from pid $me, "
wait_count '^audit \(core 1\): SIGHUP' 2
kill -INT "$pid"
finish 0
grep -qx "app: SIGINT from pid $me: stopping after 2 reload(s)" "$tmp/out" || fail "no SIGINT line"
grep -qx 'app stopped: normal' "$tmp/out" || fail "the app did not stop by itself"
grep -qx 'bye: 2 reload(s), 1 status request(s)' "$tmp/out" || fail "no 'bye' line"
[ "$(grep -c '^audit (core 1): SIGHUP' "$tmp/out")" -eq 2 ] || fail "audit did not see both SIGHUPs"
echo "signals: SIGHUP x2 and SIGUSR1 reached both cores, SIGINT handled by the app, exit 0"

start
kill -TERM "$pid"
finish 0
grep -qx "app: SIGTERM from pid $me: stopping after 0 reload(s)" "$tmp/out" || fail "no SIGTERM line"
echo "signals: SIGTERM handled by the app, exit 0"

start
kill -USR2 "$pid"
finish 0
grep -qx 'app stopped: runtime shutdown' "$tmp/out" || fail "SIGUSR2 did not stop the runtime"
echo "signals: SIGUSR2 (no subscriber) stopped the runtime gracefully, exit 0"

status=0
"$bin" extra >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 2 ] || fail "'signals extra': exit status $status, expected 2 (usage)"
echo "bad argument: usage, exit 2"
