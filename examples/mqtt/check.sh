#!/usr/bin/env bash
# Runs the mqtt example against a real mosquitto broker on a free loopback port:
#  1. round trip: the example publishes 10 messages to its topic and gets all of them back in
#     order through its own subscription, while mosquitto_sub, an outside client subscribed
#     first, must receive the same 10;
#  2. reconnect and inbound: once its 3 messages are back, the example waits on a second topic;
#     the broker is restarted on the same port (the example loses its socket, reconnects,
#     watches the new one and subscribes again), then mosquitto_pub sends one message there,
#     which the example must print before it exits 0;
#  3. no broker: the example exits 1 at once with "connect: Connection refused"; bad
#     arguments: usage and exit 2.
# Without mosquitto, mosquitto_sub or mosquitto_pub the test is skipped (exit 77, CTest's
# SKIP_RETURN_CODE); it never installs them (scripts/deps.sh does).
# Usage: check.sh path/to/mqtt    (CTest runs it as the test example_mqtt)
# CHECK_WRAPPER runs the example under a tool, e.g.
#   CHECK_WRAPPER="valgrind --leak-check=full --error-exitcode=1" check.sh build/examples/mqtt
set -euo pipefail

bin=${1:?usage: check.sh path/to/mqtt}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, fail()

# The broker lives in /usr/sbin, which is not on every PATH.
find_tools() {
  broker=$(PATH=$PATH:/usr/sbin:/usr/local/sbin command -v mosquitto || true)
  sub=$(command -v mosquitto_sub || true)
  pub=$(command -v mosquitto_pub || true)
  [ -n "$broker" ] && [ -n "$sub" ] && [ -n "$pub" ]
}
find_tools || {
  echo "SKIP: mosquitto (PATH, /usr/sbin), mosquitto_sub or mosquitto_pub (PATH) not found"
  exit 77
}

broker_pid="" example_pid="" sub_pid=""
cleanup() {
  for pid in $example_pid $sub_pid $broker_pid; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

die() {
  echo "--- broker log (last lines)" >&2
  tail -n 40 "$tmp"/broker*.log >&2 || true
  fail "$@"
}

# wait_for SECONDS GREP-ARGUMENTS...: until grep -q finds them, for at most SECONDS.
wait_for() {
  local seconds=$1 i
  shift
  for ((i = 0; i < seconds * 10; i++)); do
    grep -q "$@" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# start_broker LOG [PORT]: starts mosquitto on 127.0.0.1, on PORT or on a free port it finds by
# trying; sets port and broker_pid.  Logs everything to LOG.
start_broker() {
  local log=$1 attempt i
  for ((attempt = 0; attempt < 20; attempt++)); do
    port=${2:-$((20000 + RANDOM % 40000))}
    {
      echo "listener $port 127.0.0.1"
      echo "allow_anonymous true"
      echo "persistence false"
      echo "log_dest file $log" # flushed line by line, unlike stdout
      echo "log_type all"
      [ "$(id -u)" -ne 0 ] || echo "user root" # do not switch to the mosquitto user
    } >"$tmp/broker.conf"
    : >"$log"
    "$broker" -c "$tmp/broker.conf" >>"$tmp/broker.out" 2>&1 &
    broker_pid=$!
    for ((i = 0; i < 50; i++)); do
      grep -q ' running$' "$log" && return 0
      kill -0 "$broker_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=""
    sleep 0.2 # a port in use: try another one (or the same one again, if it was given)
  done
  die "mosquitto did not start (port ${2:-any})"
}

stop_broker() {
  kill "$broker_pid"
  wait "$broker_pid" 2>/dev/null || true
  broker_pid=""
}

topic="axon/check/$$" topic2="axon/check/$$/inbox"
start_broker "$tmp/broker1.log"

# 1. Round trip, seen from outside by mosquitto_sub (subscribed before the example publishes).
n=10
expected=$(for ((i = 1; i <= n; i++)); do echo "$topic message $i of $n"; done)
"$sub" -h 127.0.0.1 -p "$port" -i "axon-check-sub-$$" -t "$topic" -q 1 -v -C "$n" -W 30 \
  >"$tmp/sub.out" 2>"$tmp/sub.err" &
sub_pid=$!
wait_for 10 -F "Sending SUBACK to axon-check-sub-$$" "$tmp/broker1.log" ||
  die "mosquitto_sub did not subscribe"

status=0
"${wrapper[@]}" "$bin" "127.0.0.1:$port" "$topic" "$n" >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 0 ] || die "round trip: exit status $status, expected 0"
grep -qx 'connected (connection #1)' "$tmp/out" || die "round trip: no 'connected' line"
grep -qx 'subscribed (connection #1)' "$tmp/out" || die "round trip: no 'subscribed' line"
[ "$(grep "^$topic: " "$tmp/out" | sed "s|^$topic: |$topic |")" = "$expected" ] ||
  die "round trip: the example did not get its $n messages back in order"
grep -qx "all $n messages came back" "$tmp/out" || die "round trip: no 'all $n messages came back'"
! grep -q '^mqtt: ' "$tmp/err" || die "round trip: the example reported an error"
status=0
wait "$sub_pid" || status=$?
sub_pid=""
[ "$status" -eq 0 ] || die "mosquitto_sub: exit status $status ($(cat "$tmp/sub.err"))"
[ "$(cat "$tmp/sub.out")" = "$expected" ] ||
  die "mosquitto_sub did not receive the example's $n messages: $(cat "$tmp/sub.out")"
echo "mqtt: $n messages round-tripped through mosquitto, and mosquitto_sub got them too"

# 2. Reconnect to a restarted broker (a new socket), then a message from mosquitto_pub.
"${wrapper[@]}" "$bin" "127.0.0.1:$port" "$topic" 3 "$topic2" >"$tmp/out" 2>"$tmp/err" &
example_pid=$!
wait_for 20 -Fx "all 3 messages came back; waiting for one message on $topic2" "$tmp/out" ||
  die "reconnect: the example did not get its 3 messages back"
stop_broker
start_broker "$tmp/broker2.log" "$port"
wait_for 20 -Fx "subscribed (connection #2)" "$tmp/out" ||
  die "reconnect: the example did not reconnect and subscribe again"
"$pub" -h 127.0.0.1 -p "$port" -t "$topic2" -q 1 -m "hello from mosquitto_pub" ||
  die "mosquitto_pub failed"
status=0
wait "$example_pid" || status=$?
example_pid=""
[ "$status" -eq 0 ] || die "reconnect: exit status $status, expected 0"
grep -qx "$topic2: hello from mosquitto_pub" "$tmp/out" ||
  die "reconnect: the message from mosquitto_pub was not printed"
grep -qx 'mqtt: connection lost, reconnecting: .*' "$tmp/err" ||
  die "reconnect: the lost connection was not reported"
expected_errors='^mqtt: connection lost, reconnecting: \|^mqtt: reconnect: '
! grep -v "$expected_errors" "$tmp/err" | grep -q '^mqtt: ' ||
  die "reconnect: the example reported an unexpected error"
echo "mqtt: reconnected after a broker restart, and got a message from mosquitto_pub"

# 3. No broker on the port, and bad arguments.
stop_broker
status=0
"${wrapper[@]}" "$bin" "127.0.0.1:$port" >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 1 ] || fail "no broker: exit status $status, expected 1"
grep -qx 'mqtt: connect: Connection refused' "$tmp/err" || fail "no broker: no 'Connection refused'"
status=0
"$bin" 127.0.0.1 >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 2 ] || fail "'mqtt 127.0.0.1': exit status $status, expected 2 (usage)"
echo "mqtt: no broker: exit 1; bad argument: usage, exit 2"
