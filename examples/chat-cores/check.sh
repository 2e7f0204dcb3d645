#!/usr/bin/env bash
# Runs chat-cores on a free port with three clients (bash /dev/tcp): nicknames, /who, a line
# that reaches the whole room; then a fourth client that never reads while the others get a
# flood of lines: it must be dropped (the room shrinks) while the readers get every line
# and leave with /quit;
# then SIGINT, exit status 0 and "bye".
# Usage: check.sh path/to/chat-cores   (CTest runs it as example_chat_cores)
set -euo pipefail

bin=${1:?usage: check.sh path/to/chat-cores}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, fail()

"${wrapper[@]}" "$bin" 0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do
  grep -q '^chat on' "$tmp/out" && break
  sleep 0.1
done
port=$(sed -n 's/^chat on 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$tmp/out")
[ -n "$port" ] || fail "no 'chat on' line"

expect() { # expect FD TEXT: the next line on FD is TEXT
  local line
  IFS= read -r -t 10 line <&"$1" || fail "fd $1: no line (expected '$2')"
  [ "$line" = "$2" ] || fail "fd $1: got '$line', expected '$2'"
}
exec 3<>"/dev/tcp/127.0.0.1/$port" 4<>"/dev/tcp/127.0.0.1/$port" 5<>"/dev/tcp/127.0.0.1/$port"
for fd in 3 4 5; do expect $fd "welcome; /nick NAME to be named"; done # each has joined
printf '/nick alice\n' >&3; expect 3 "you are alice"
printf '/who\n' >&4; expect 4 "3 in the room"
printf 'hello all\n' >&3
for fd in 3 4 5; do expect $fd "alice: hello all"; done
echo "3 clients: nick, /who, a line to the whole room"

# The slow client: connects, is welcomed, then never reads again.
exec 6<>"/dev/tcp/127.0.0.1/$port"
expect 6 "welcome; /nick NAME to be named"
lines=20000
for fd in 3 4 5; do timeout 60 cat <&$fd >"$tmp/c$fd" & done
payload=$(head -c 400 /dev/zero | tr '\0' y)
for i in $(seq $lines); do printf '%s %d\n' "$payload" "$i"; done >&3
for fd in 3 4 5; do # every reader gets every line
  got=0
  for _ in $(seq 300); do
    got=$(grep -c "^alice: y* [0-9]*\$" "$tmp/c$fd" || true)
    [ "$got" = "$lines" ] && break
    sleep 0.1
  done
  [ "$got" = "$lines" ] || fail "client $fd got $got of $lines lines"
done
# The room has dropped the slow client: alice, 4, 5 and a new client 7 are in it.  Client 7
# joins after the flood, so the room sends it nothing but its own /who answers (bash reads
# a socket one byte at a time: a client 7 in the flood would be dropped as too slow too).
exec 7<>"/dev/tcp/127.0.0.1/$port"
expect 7 "welcome; /nick NAME to be named"
dropped=0
for _ in $(seq 100); do
  printf '/who\n' >&7
  IFS= read -r -t 10 line <&7 || fail "fd 7: no answer to /who"
  [ "$line" = "4 in the room" ] && { dropped=1; break; }
  sleep 0.1
done
[ "$dropped" = 1 ] || fail "the slow client was not dropped (last: '$line')"
for fd in 3 4 5; do printf '/quit\n' >&$fd; done # each reader leaves
wait $(jobs -p | grep -vx "$pid") || fail "a reader did not see its connection end"
for fd in 3 4 5; do grep -qx bye "$tmp/c$fd" || fail "client $fd: no 'bye'"; done
echo "slow client dropped; the three readers got all $lines lines and left"

kill -INT "$pid"
status=0
wait "$pid" || status=$?
[ "$status" -eq 0 ] || fail "exit status $status after SIGINT, expected 0"
grep -qx bye "$tmp/out" || fail "no 'bye' at exit"
echo "SIGINT: exit 0"
