#!/usr/bin/env bash
# Runs the supervisor example and checks its story: every child started once in spec order; the
# sensor failed on its 3rd tick three times and was restarted each time (#2, #3, #4); db failed
# once and rest_for_one stopped cache (brutally) and restarted both; and after main's
# ax_sup_stop the tree stopped last started first: cache, db, the workers supervisor, the logger
# fiber (which saw AX_MSG_SHUTDOWN), the sensor, then the top supervisor, all normally.
# Usage: check.sh path/to/supervisor      (CTest runs it as the test example_supervisor)
# CHECK_WRAPPER runs the example under a tool, e.g.
#   CHECK_WRAPPER="valgrind --leak-check=full --error-exitcode=1" check.sh build/examples/supervisor
set -euo pipefail

bin=${1:?usage: check.sh path/to/supervisor}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, fail()

status=0
timeout 60 "${wrapper[@]}" "$bin" >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 0 ] || fail "exit status $status, expected 0"
! grep -q '^supervisor: ' "$tmp/err" || fail "the example reported an error"
grep -qx 'bye: exit status 0' "$tmp/out" || fail "no 'bye: exit status 0'"

# Before main's ax_sup_stop: the boot, the failures and the restarts.
sed '/^main: ax_sup_stop(top)$/,$d' "$tmp/out" >"$tmp/before"
sed -n '/^main: ax_sup_stop(top)$/,$p' "$tmp/out" >"$tmp/after"
[ -s "$tmp/after" ] || fail "no 'main: ax_sup_stop(top)' line"
expected=$'start: sensor #1\nstart: logger #1 (a fiber)\nstart: workers #1 (a supervisor, rest_for_one)'
[ "$(head -n 3 "$tmp/before")" = "$expected" ] || fail "the top's children did not start in order"
for line in 'start: db #1' 'start: cache #1' \
  'db #1: tick 2: failed' 'stop: db #1: EIO' 'stop: cache #1: stopped' \
  'restart: db #2' 'restart: cache #2' \
  'sensor #1: tick 3: failed' 'stop: sensor #1: EIO' 'restart: sensor #2' \
  'sensor #2: tick 3: failed' 'stop: sensor #2: EIO' 'restart: sensor #3' \
  'sensor #3: tick 3: failed' 'stop: sensor #3: EIO' 'restart: sensor #4' \
  'sensor #4: tick 3: read ok, telling main'; do
  [ "$(grep -cxF "$line" "$tmp/before")" -eq 1 ] || fail "not once before the stop: '$line'"
done
[ "$(grep -cE '^(re)?start: ' "$tmp/before")" -eq 10 ] || fail "expected 5 starts and 5 restarts"
# rest_for_one: cache is stopped after db failed and before db restarts, db before cache.
order=$(grep -E '^(stop: (db|cache) #1|restart: (db|cache) #2)' "$tmp/before")
[ "$order" = $'stop: db #1: EIO\nstop: cache #1: stopped\nrestart: db #2\nrestart: cache #2' ] ||
  fail "rest_for_one did not stop cache then restart db and cache: $order"
echo "boot in order; sensor failed and restarted 3 times; db failed, cache restarted with it"

# After: the shutdown, last started first.
expected=$'stop: cache #2: stopped\nstop: db #2: normal\nstop: workers #1: normal
logger #1: shutdown, flushing\nstop: logger #1: normal\nstop: sensor #4: normal\nstop: top: normal'
got=$(grep -E '^(stop: |logger )' "$tmp/after")
[ "$got" = "$expected" ] || fail "shutdown order: got '$got'"
echo "shutdown: cache, db, workers, logger, sensor, top; clean exit"
