#!/usr/bin/env bash
# Drives the process example: a command whose lines (an empty one, the last without '\n') come
# back numbered and whose exit code is reported, its stderr inherited; a child killed by a
# signal; a program that does not exist, which must be the spawn's error (exit status 1,
# ax_strerror(-ENOENT)), not a child exiting 127; and the default command (ls -l /).  Each run
# must end with "bye".
# Usage: check.sh path/to/process
# CHECK_WRAPPER runs the example under a tool, e.g.
#   CHECK_WRAPPER="valgrind --error-exitcode=1" check.sh build/examples/process
set -euo pipefail

bin=${1:?usage: check.sh path/to/process}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, fail(), skip_unless_on_path()

# run EXPECTED_STATUS ARGS...: runs the example, output in $tmp/out and $tmp/err.
run() {
  local want=$1 status=0
  shift
  timeout 60 "${wrapper[@]}" "$bin" "$@" >"$tmp/out" 2>"$tmp/err" || status=$?
  [ "$status" -eq "$want" ] || fail "'$*': exit status $status, expected $want"
  grep -qx bye "$tmp/out" || fail "'$*': no 'bye' at exit"
}

run 0 sh -c 'printf "alpha\n\nbeta\ngamma"; echo "to stderr" >&2; exit 3'
grep -q '^started sh, pid [0-9][0-9]*$' "$tmp/out" || fail "no 'started' line"
expected=$'line 1: alpha\nline 2: \nline 3: beta\nline 4: gamma\n4 lines; exit code 3'
got=$(grep -E '^(line [0-9]+:|[0-9]+ lines;)' "$tmp/out")
[ "$got" = "$expected" ] || fail "lines and exit: got '$got'"
grep -qx 'to stderr' "$tmp/err" || fail "the child's stderr was not inherited"
echo "lines streamed, exit code 3 reported, stderr inherited"

run 0 sh -c 'echo before; kill -TERM $$'
grep -q '^1 lines; killed by signal 15 ' "$tmp/out" || fail "no 'killed by signal 15'"
echo "killed by SIGTERM reported"

run 1 axon-no-such-program
grep -q '^process: ax_process_spawn: no such file or directory' "$tmp/err" ||
  fail "a missing program was not the spawn's error"
grep -q '^line' "$tmp/out" && fail "a missing program produced lines"
echo "missing program: the spawn's error"

run 0
grep -q '^line 1: total ' "$tmp/out" || fail "ls -l / printed no 'total' line"
grep -q '; exit code 0$' "$tmp/out" || fail "ls -l / did not exit 0"
echo "default command: ls -l /"
