#!/usr/bin/env bash
# Runs fiber-serial-bridge without arguments (simulated ports on pty pairs, a simulator fiber
# at their far ends) and checks its output: the simulator's five lines come back from port B
# numbered and upper-cased, in order; the sensor got the simulator's datagram and timed out at
# least once while the lines went through; the bridge saw port A hang up after 5 lines; and the
# program printed "bye", reported no error and exited 0.  The sensor's lines interleave with
# the simulator's as timing has it, so they are checked apart.
# Usage: check.sh path/to/fiber-serial-bridge   (CTest runs it as example_fiber_serial_bridge)
set -euo pipefail

bin=${1:?usage: check.sh path/to/fiber-serial-bridge}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, fail()

status=0
timeout 30 "${wrapper[@]}" "$bin" >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 0 ] || fail "exit status $status, expected 0"

grep -Eq '^simulating port A on /dev/pts/[0-9]+$' "$tmp/out" || fail "no 'simulating port A' line"
grep -Eq '^simulating port B on /dev/pts/[0-9]+$' "$tmp/out" || fail "no 'simulating port B' line"

expected="sim> hello
sim< #1 HELLO
sim> temperature 21.5
sim< #2 TEMPERATURE 21.5
sim> 
sim< #3 
sim> set led on
sim< #4 SET LED ON
sim> bye
sim< #5 BYE
sim: done, hanging up"
got=$(grep -E '^sim[<>:]' "$tmp/out")
[ "$got" = "$expected" ] || {
  diff <(echo "$expected") <(echo "$got") >&2 || true
  fail "the simulator's conversation through the bridge is wrong"
}

grep -qx 'sensor: temp=21.5' "$tmp/out" || fail "the sensor did not get the datagram"
timeouts=$(grep -cx 'sensor: timeout' "$tmp/out" || true)
[ "$timeouts" -ge 1 ] || fail "the sensor never timed out"
! grep -v -e '^sensor: temp=21.5$' -e '^sensor: timeout$' "$tmp/out" | grep -q '^sensor' ||
  fail "unexpected sensor output"

# The simulator returns after its last line, closing its ends: port A hangs up, and the
# bridge, the last fiber, returns; then main says bye.
[ "$(tail -n 2 "$tmp/out")" = "bridge: port A hung up after 5 lines
bye" ] || fail "no hang-up and 'bye' at the end"
! grep -q '^fiber-serial-bridge: ' "$tmp/err" || fail "the example reported an error"
echo "simulated ports: 5 lines bridged, datagram and $timeouts timeout(s) seen, hang-up, exit 0"
