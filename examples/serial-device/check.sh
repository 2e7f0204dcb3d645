#!/usr/bin/env bash
# Checks serial-device in one of two parts, each its own CTest entry:
#  simulated (the default; example_serial_device): without a device (the simulated pty pair),
#    the whole conversation, the hang-up and the exit status;
#  socat (example_serial_device_socat): the example on one end of a socat virtual serial pair,
#    this script on the other (CR LF line ends, an unknown command), stopped with SIGINT, exit 0.
#    Without socat on PATH it exits 77, which CTest reports as skipped; it never installs socat
#    (scripts/deps.sh does).
# Usage: check.sh path/to/serial-device [simulated|socat]
set -euo pipefail

bin=${1:?usage: check.sh path/to/serial-device [simulated|socat]}
part=${2:-simulated}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, fail(), skip_unless_on_path()

# 1. Simulated device.
simulated() {
  status=0
  timeout 30 "${wrapper[@]}" "$bin" >"$tmp/out" 2>"$tmp/err" || status=$?
  [ "$status" -eq 0 ] || fail "simulated run: exit status $status, expected 0"
  pts=$(sed -n 's/^no device given: simulating one on a pty pair (device side \(.*\))$/\1/p' "$tmp/out")
  [ -n "$pts" ] || fail "no 'simulating' line"
  expected="no device given: simulating one on a pty pair (device side $pts)
device: $pts open at 115200 8N1, raw, exclusive
host> PING
host< PONG
host> GET TEMP
host< TEMP 21.5
host> SET LED ON
host< LED ON
host> REBOOT NOW
host< ERR unknown command: REBOOT NOW
host> (a line of 200 x)
host< ERR line too long
host: done, hanging up
device: line hung up (Input/output error)
bye"
  [ "$(cat "$tmp/out")" = "$expected" ] || {
    diff <(echo "$expected") "$tmp/out" >&2 || true
    fail "simulated run: wrong conversation"
  }
  ! grep -q "^serial-device: " "$tmp/err" || fail "simulated run reported an error"
  echo "simulated device: 4 commands answered, over-long line refused, hang-up seen, exit 0"
}

# 2. A socat virtual serial pair: the example on one end, this script on the other.
socat_pair() {
  skip_unless_on_path socat
  socat pty,raw,echo=0,link="$tmp/dev" pty,raw,echo=0,link="$tmp/host" 2>"$tmp/socat.err" &
  socat_pid=$!
  trap 'kill "$socat_pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
  for _ in $(seq 100); do
    [ -e "$tmp/dev" ] && [ -e "$tmp/host" ] && break
    sleep 0.05
  done
  [ -e "$tmp/dev" ] && [ -e "$tmp/host" ] || fail "socat made no virtual ports"

  "${wrapper[@]}" "$bin" "$tmp/dev" 9600 >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  for _ in $(seq 100); do
    grep -q '^device: .* open' "$tmp/out" && break
    sleep 0.05
  done
  grep -qx "device: $tmp/dev open at 9600 8N1, raw, exclusive" "$tmp/out" || fail "no 'open' line"

  exec 3<>"$tmp/host"
  ask() { # $1: command (sent with CR LF), $2: expected answer
    local reply
    printf '%s\r\n' "$1" >&3
    IFS= read -r -t 5 reply <&3 || fail "no answer to '$1'"
    [ "$reply" = "$2" ] || fail "'$1' answered '$reply', expected '$2'"
  }
  ask PING PONG
  ask "SET LED ON" "LED ON"
  ask "SET LED OFF" "LED OFF"
  ask "GET TEMP" "TEMP 21.5"
  ask "FORMAT C:" "ERR unknown command: FORMAT C:"
  exec 3<&-

  kill -INT "$pid"
  status=0
  wait "$pid" || status=$?
  [ "$status" -eq 0 ] || fail "exit status $status after SIGINT, expected 0"
  [ "$(tail -n 1 "$tmp/out")" = bye ] || fail "no 'bye' at exit"
  ! grep -q "^serial-device: " "$tmp/err" || fail "the example reported an error"
  echo "socat virtual port: 5 commands answered with CR LF input, SIGINT, exit 0"
}

case $part in
  simulated) simulated ;;
  socat) socat_pair ;;
  *) echo "usage: check.sh path/to/serial-device [simulated|socat]" >&2; exit 2 ;;
esac
