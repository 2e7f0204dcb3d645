#!/usr/bin/env bash
# Runs the thread-bridge example with 10 jobs and checks that every result came back to the
# thread's port in order and right (the first five through ax_port_recv with a deadline, the rest
# through poll() on ax_port_fd), that a short deadline then timed out, that the calculator
# stopped with the shutdown reason after 10 jobs, and that the program exited 0.
# Usage: check.sh path/to/thread-bridge    (CTest runs it as the test example_thread_bridge)
# CHECK_WRAPPER runs the example under a tool, e.g.
#   CHECK_WRAPPER="valgrind --leak-check=full --error-exitcode=1" check.sh build/examples/thread-bridge
set -euo pipefail

bin=${1:?usage: check.sh path/to/thread-bridge}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, fail()

status=0
"${wrapper[@]}" "$bin" 10 >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 0 ] || fail "exit status $status, expected 0"
# The number of Collatz steps from n down to 1, for n = 1 .. 10.
expected="collatz(1) = 0 steps
collatz(2) = 1 steps
collatz(3) = 7 steps
collatz(4) = 2 steps
collatz(5) = 5 steps
collatz(6) = 8 steps
collatz(7) = 16 steps
collatz(8) = 3 steps
collatz(9) = 19 steps
collatz(10) = 6 steps"
[ "$(grep '^collatz(' "$tmp/out")" = "$expected" ] || fail "the results are wrong or out of order"
grep -Eqx '5 results through poll\(\) in [1-9][0-9]* wake-up\(s\)' "$tmp/out" ||
  fail "no '5 results through poll() in N wake-up(s)' line"
grep -qx 'then: ETIMEDOUT' "$tmp/out" || fail "the last receive did not time out"
grep -qx 'calculator stopped (shutdown) after 10 jobs' "$tmp/out" ||
  fail "no 'calculator stopped (shutdown) after 10 jobs' line"
! grep -q '^thread-bridge: ' "$tmp/err" || fail "the example reported an error"
echo "thread-bridge: 10 results in order (5 by deadline, 5 by poll), timeout, shutdown, exit 0"

status=0
"$bin" 0 >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 2 ] || fail "'thread-bridge 0': exit status $status, expected 2 (usage)"
echo "bad argument: usage, exit 2"
