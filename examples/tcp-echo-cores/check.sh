#!/usr/bin/env bash
# Runs tcp-echo-cores on a free port, talks to it over 8 connections at once (bash /dev/tcp),
# checks greetings, echoes, "cores", an over-long line and "quit", then stops it with SIGINT
# and checks that it reported 8 sessions over its cores and exited 0.
# Usage: check.sh path/to/tcp-echo-cores   (CTest runs it as example_tcp_echo_cores)
set -euo pipefail

bin=${1:?usage: check.sh path/to/tcp-echo-cores}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, fail()

"${wrapper[@]}" "$bin" 0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do
  grep -q '^listening on' "$tmp/out" && break
  sleep 0.1
done
port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\) with.*/\1/p' "$tmp/out")
[ -n "$port" ] || fail "no 'listening on' line"

client() { # $1: client number; writes what the server said to $tmp/c$1
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  {
    printf 'hello from %s\n' "$1"
    printf 'cores\n'
    head -c 2000 /dev/zero | tr '\0' x
    printf '\nsecond %s\n' "$1"
    printf 'quit\n'
  } >&3
  timeout 10 cat <&3 >"$tmp/c$1"
  exec 3<&-
}
for i in 1 2 3 4 5 6 7 8; do client "$i" & done
wait_clients=0
for job in $(jobs -p); do [ "$job" = "$pid" ] || wait "$job" || wait_clients=1; done
[ "$wait_clients" -eq 0 ] || fail "a client failed"

for i in 1 2 3 4 5 6 7 8; do
  got=$(cat "$tmp/c$i")
  expected_re="^hello
hello from $i
core [0-9]+
line too long
second $i
bye$"
  [[ "$got" =~ $expected_re ]] || { echo "client $i got:"; echo "$got"; fail "client $i: wrong conversation"; }
done
echo "8 clients: greeting, echo, core, over-long line, quit"

kill -INT "$pid"
status=0
wait "$pid" || status=$?
[ "$status" -eq 0 ] || fail "exit status $status after SIGINT, expected 0"
total=$(awk '/^core [0-9]* served/ { n += $4 } END { print n + 0 }' "$tmp/out")
[ "$total" = 8 ] || fail "served $total sessions in all, expected 8"
grep -qx bye "$tmp/out" || fail "no 'bye' at exit"
echo "SIGINT: $total sessions over $(grep -c '^core .* served' "$tmp/out") cores, exit 0"
