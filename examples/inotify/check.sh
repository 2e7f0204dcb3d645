#!/usr/bin/env bash
# Runs the inotify example's demo (no argument) and checks the whole chain of events in order:
# hello.txt created and written, renamed to hello.md (MOVED_FROM/MOVED_TO paired by cookie),
# sub/ made, both deleted, "demo done: 7 events", exit 0 and its directory removed.  Then
# watches a directory of this script's, makes and moves a file there, and stops the example
# with SIGINT (exit 0); then a directory that does not exist (exit 1) and a usage error (2).
# Usage: check.sh path/to/inotify          (CTest runs it as the test example_inotify)
# CHECK_WRAPPER runs the example under a tool, e.g.
#   CHECK_WRAPPER="valgrind --leak-check=full --error-exitcode=1" check.sh build/examples/inotify
set -euo pipefail

bin=${1:?usage: check.sh path/to/inotify}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, fail()

status=0
"${wrapper[@]}" "$bin" >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 0 ] || fail "demo: exit status $status, expected 0"
dir=$(sed -n 's/^watching \(.*\)$/\1/p' "$tmp/out")
[ -n "$dir" ] || fail "no 'watching DIR' line"
[ ! -e "$dir" ] || fail "the demo left $dir behind"
cookie=$(sed -n 's/^event: MOVED_FROM hello.txt (cookie \([0-9]*\))$/\1/p' "$tmp/out")
[ -n "$cookie" ] && [ "$cookie" -ne 0 ] || fail "no MOVED_FROM line with a cookie"
expected="watching $dir
event: CREATE hello.txt
event: CLOSE_WRITE hello.txt
event: MOVED_FROM hello.txt (cookie $cookie)
event: MOVED_TO hello.md
moved: hello.txt -> hello.md
event: CREATE,ISDIR sub
event: DELETE hello.md
event: DELETE,ISDIR sub
demo done: 7 events"
[ "$(cat "$tmp/out")" = "$expected" ] || fail "the demo's events differ from: $expected"
! grep -q '^inotify: ' "$tmp/err" || fail "the example reported an error"
echo "inotify demo: 7 events in order, move paired by cookie $cookie, directory removed, exit 0"

mkdir "$tmp/w"
"${wrapper[@]}" "$bin" "$tmp/w" >"$tmp/out" 2>"$tmp/err" &
pid=$!
wait_for() {
  for _ in $(seq 200); do
    grep -Eq "$1" "$tmp/out" && return 0
    sleep 0.1
  done
  fail "no line matching: $1"
}
wait_for "^watching $tmp/w\$"
echo data >"$tmp/w/a"
mv "$tmp/w/a" "$tmp/w/b"
rm "$tmp/w/b"
wait_for '^event: DELETE b$'
kill -INT "$pid"
status=0
wait "$pid" || status=$?
[ "$status" -eq 0 ] || fail "watching: exit status $status after SIGINT, expected 0"
grep -qx 'moved: a -> b' "$tmp/out" || fail "the move was not paired"
grep -qx 'event: CLOSE_WRITE a' "$tmp/out" || fail "no CLOSE_WRITE for a"
echo "inotify watch: create, move and delete seen, SIGINT stopped it, exit 0"

status=0
"$bin" "$tmp/none" >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 1 ] || fail "missing directory: exit status $status, expected 1"
grep -q '^inotify: ax_fs_watch: ' "$tmp/err" || fail "no ax_fs_watch error reported"
status=0
"$bin" a b >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 2 ] || fail "'inotify a b': exit status $status, expected 2 (usage)"
echo "missing directory: error, exit 1; bad arguments: usage, exit 2"
