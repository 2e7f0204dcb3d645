#!/usr/bin/env bash
# Runs the hello-actor example with a greeting of its own and checks that the actor printed it,
# stopped normally, and that the program exited 0 after one delivered message.
# Usage: check.sh path/to/hello-actor      (CTest runs it as the test example_hello_actor)
# CHECK_WRAPPER runs the example under a tool, e.g.
#   CHECK_WRAPPER="valgrind --leak-check=full --error-exitcode=1" check.sh build/examples/hello-actor
set -euo pipefail

bin=${1:?usage: check.sh path/to/hello-actor}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, fail()

status=0
"${wrapper[@]}" "$bin" "hi from check.sh" >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 0 ] || fail "exit status $status, expected 0"
grep -Eqx 'greeter on core [0-9]+ got: hi from check\.sh' "$tmp/out" ||
  fail "the actor did not print the greeting"
grep -qx 'greeter stopped: normal' "$tmp/out" || fail "no 'greeter stopped: normal'"
grep -qx '1 message(s) delivered, 0 dead letter(s), 1 greeting(s)' "$tmp/out" ||
  fail "the statistics line is not '1 message(s) delivered, 0 dead letter(s), 1 greeting(s)'"
[ "$(wc -l <"$tmp/out")" -eq 3 ] || fail "expected 3 lines of output"
! grep -q '^hello-actor: ' "$tmp/err" || fail "the example reported an error"
echo "hello-actor: greeting printed by the actor, normal stop, clean exit"
