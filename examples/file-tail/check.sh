#!/usr/bin/env bash
# Drives the file-tail example on fresh files of its own.  First it follows a file from its end
# with COUNT 6: the line already there must not come out; lines appended from the shell in
# several writes (one of them in two pieces, the second after a pause) must each come out once,
# numbered, in order, and the sixth must end it with exit status 0.  Then, with --from-start,
# the file is truncated, moved away and deleted, each time written afresh: every line must come
# out once, in order, and SIGINT must end it with exit status 0.  Last, a missing file (exit 1,
# the error reported) and bad arguments (exit 2).
# Usage: check.sh path/to/file-tail       (CTest runs it as the test example_file_tail)
# CHECK_WRAPPER runs the example under a tool, e.g.
#   CHECK_WRAPPER="valgrind --leak-check=full --error-exitcode=1" check.sh build/examples/file-tail
set -euo pipefail

bin=${1:?usage: check.sh path/to/file-tail}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, fail()

# wait_for FILE REGEX [COUNT]: waits until FILE has COUNT (1) lines matching REGEX.
wait_for() {
  for _ in $(seq 300); do
    [ "$(grep -Ec "$2" "$1" || true)" -ge "${3:-1}" ] && return 0
    sleep 0.1
  done
  fail "no line matching '$2' in $1"
}

f=$tmp/app.log
printf 'old line\n' >"$f"
timeout 60 "${wrapper[@]}" "$bin" "$f" 6 >"$tmp/out" 2>"$tmp/err" &
pid=$!
wait_for "$tmp/out" "^following $f from byte 9\$"
# shellcheck disable=SC2129 # one write each, on purpose
echo one >>"$f"
printf 'two\nthree\n' >>"$f"
printf 'fo' >>"$f"
sleep 0.5 # long enough for the example to read "fo" alone and keep it
printf 'ur\n' >>"$f"
printf 'five\nsix\nseven\n' >>"$f"
status=0
wait "$pid" || status=$?
[ "$status" -eq 0 ] || fail "COUNT 6: exit status $status, expected 0"
expected="following $f from byte 9
1: one
2: two
3: three
4: four
5: five
6: six"
[ "$(cat "$tmp/out")" = "$expected" ] || fail "COUNT 6: the output differs from: $expected"
! grep -q '^file-tail: ' "$tmp/err" || fail "COUNT 6: the example reported something"
echo "from the end: 6 lines once each and in order (one written in two pieces), exit 0"

printf 'a1\na2\n' >"$f"
"${wrapper[@]}" "$bin" --from-start "$f" >"$tmp/out" 2>"$tmp/err" &
pid=$!
wait_for "$tmp/out" '^2: a2$'
: >"$f"
wait_for "$tmp/err" ': truncated, '
echo b1 >>"$f"
wait_for "$tmp/out" '^3: b1$'
mv "$f" "$f.1"
wait_for "$tmp/err" ': moved or deleted, '
sleep 0.3 # the example looks for the file again meanwhile
echo c1 >"$f"
wait_for "$tmp/out" '^4: c1$'
rm "$f"
wait_for "$tmp/err" ': moved or deleted, ' 2
echo d1 >"$f"
wait_for "$tmp/out" '^5: d1$'
kill -INT "$pid"
status=0
wait "$pid" || status=$?
[ "$status" -eq 0 ] || fail "--from-start: exit status $status after SIGINT, expected 0"
expected=$'1: a1\n2: a2\n3: b1\n4: c1\n5: d1'
[ "$(cat "$tmp/out")" = "$expected" ] || fail "--from-start: the output differs from: $expected"
! grep '^file-tail: ' "$tmp/err" | grep -v -e ': truncated, ' -e ': moved or deleted, ' ||
  fail "--from-start: the example reported an error"
echo "from the start: truncated, moved, deleted, 5 lines once each and in order, SIGINT, exit 0"

status=0
"$bin" "$tmp/none" >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 1 ] || fail "missing file: exit status $status, expected 1"
grep -q "^file-tail: $tmp/none: " "$tmp/err" || fail "missing file: no error reported"
for args in "" "$f 0" "$f 3x" "$f 1 2"; do
  status=0
  # shellcheck disable=SC2086 # split on purpose
  "$bin" $args >"$tmp/out" 2>"$tmp/err" || status=$?
  [ "$status" -eq 2 ] || fail "'file-tail $args': exit status $status, expected 2 (usage)"
done
echo "missing file: error, exit 1; bad arguments: usage, exit 2"
