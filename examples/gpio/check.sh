#!/usr/bin/env bash
# Runs the gpio example's simulation (no GPIO needed: TCP urgent data raises AX_PRI) with 5
# edges and checks that each came as one AX_PRI message with the value the button sent (1, 0,
# 1, 0, 1), in order, and that the program exited 0.  Then a value file that does not exist
# (exit 1, the open error reported) and bad arguments (exit 2).  A real GPIO line is checked by
# hand: echo both > /sys/class/gpio/gpioN/edge; build/examples/gpio /sys/class/gpio/gpioN/value
# Usage: check.sh path/to/gpio             (CTest runs it as the test example_gpio)
# CHECK_WRAPPER runs the example under a tool, e.g.
#   CHECK_WRAPPER="valgrind --leak-check=full --error-exitcode=1" check.sh build/examples/gpio
set -euo pipefail

bin=${1:?usage: check.sh path/to/gpio}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, fail()

status=0
"${wrapper[@]}" "$bin" 5 >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 0 ] || fail "exit status $status, expected 0"
expected="watching a simulated line (TCP urgent data) for AX_PRI
edge 1: value 1
edge 2: value 0
edge 3: value 1
edge 4: value 0
edge 5: value 1
5 edges of 5 seen"
[ "$(cat "$tmp/out")" = "$expected" ] || fail "the output differs from: $expected"
! grep -q '^gpio: ' "$tmp/err" || fail "the example reported an error"
echo "gpio (simulated): 5 AX_PRI edges with the right values, in order, exit 0"

status=0
"$bin" "$tmp/no-such-value" >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 1 ] || fail "missing value file: exit status $status, expected 1"
grep -q "^gpio: $tmp/no-such-value: " "$tmp/err" || fail "the open error was not reported"
for args in "0" "5 extra"; do
  status=0
  # shellcheck disable=SC2086 # split the arguments on purpose
  "$bin" $args >"$tmp/out" 2>"$tmp/err" || status=$?
  [ "$status" -eq 2 ] || fail "'gpio $args': exit status $status, expected 2 (usage)"
done
echo "missing value file: error, exit 1; bad arguments: usage, exit 2"
