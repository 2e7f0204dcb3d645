#!/usr/bin/env bash
# Checks device-gateway in its two modes.
#  1. --demo: the program drives its own clients and stops itself with SIGINT.  Checks that the
#     three simulated devices were opened and read, readings reached client A, the command to
#     temp0 was answered and the average came back from the statistics thread, client B (which
#     never reads) had lines dropped while at most high_water plus one line waited for it, the
#     unplugged hum0 was reported to the subscribers and its name went away, the hub's monitor
#     dropped A when it hung up, per-core statistics were printed, and the exit status was 0.
#  2. PORT 0: serves a free port; a bash client subscribes, sees readings, sends a command and
#     gets the answer; then SIGINT from outside, as a Ctrl-C, must end it with status 0.
# Exits 77 (skipped) where no pty can be made.
# Usage: check.sh path/to/device-gateway   (CTest runs it as example_device_gateway)
set -euo pipefail

bin=${1:?usage: check.sh path/to/device-gateway}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, fail()

skip_without_ptys() {
  if grep -q 'cannot make a pty' "$tmp/err"; then
    echo "SKIP: no pty could be made here: $(cat "$tmp/err")"
    exit 77
  fi
}
[ -c /dev/ptmx ] || { echo "SKIP: no /dev/ptmx"; exit 77; }

# --- 1. --demo -------------------------------------------------------------------------------
status=0
timeout 30 "${wrapper[@]}" "$bin" --demo >"$tmp/out" 2>"$tmp/err" || status=$?
skip_without_ptys
[ "$status" -eq 0 ] || fail "--demo: exit status $status, expected 0"
[ ! -s "$tmp/err" ] || fail "--demo: something was written to stderr"
has() { grep -Eq "$1" "$tmp/out" || fail "--demo: no line matching /$1/"; }

for dev in temp0 hum0 volt0; do
  has "^device $dev: serial port /dev/pts/[0-9]+ open"
  has "^device $dev says [a-z]+=[0-9.]+ "
done
has '^demo: A got "(temp0|hum0|volt0) [a-z]+=[0-9.]+"$'
readings=$(sed -n 's/^demo: A got \([0-9]*\) readings, and hangs up$/\1/p' "$tmp/out")
[ -n "$readings" ] && [ "$readings" -ge 50 ] ||
  fail "--demo: A got '${readings}' readings, expected >= 50"
has '^demo: C got "temp0: ok led on"$'
has '^demo: C got "avg temp0: [0-9.]+ over [0-9]+ readings \(min [0-9.]+, max [0-9.]+\)"$'
has '^stats thread: avg temp0: '

# B is the second client to connect; the hub forwarded to it, and its session dropped lines.
b=$(sed -n 's/^demo: B got "hello, client \([0-9]*\):.*/\1/p' "$tmp/out")
[ -n "$b" ] || fail "--demo: no greeting for B"
has "^client $b does not read: [0-9]+ bytes wait for it"
line=$(grep -E "^client $b (left|stopped at shutdown): " "$tmp/out") ||
  fail "--demo: no summary for B"
read -r dropped peak < <(sed -E 's/.* ([0-9]+) dropped, at most ([0-9]+) bytes queued$/\1 \2/' \
  <<<"$line")
[ "$dropped" -gt 0 ] || fail "--demo: nothing dropped for B"
[ "$peak" -le $((1024 + 64)) ] || fail "--demo: $peak bytes queued for B, over high_water + a line"

has '^simulator: unplugging hum0$'
has '^device hum0 unplugged: its read says (EIO|EOF)$'
has '^demo: A got "device hum0 unplugged"$'
has '^demo: C got "err no device hum0"$'
has '^hub: client [0-9]+ has gone \(its monitor said so\)'
has '^hub: [0-9]+ readings in the last second'
cores=$(grep -cE '^core [0-9]+: [0-9]+ messages handled, [0-9]+ sent, ' "$tmp/out" || true)
[ "$cores" -ge 1 ] || fail "--demo: no per-core statistics"
[ "$(tail -n 1 "$tmp/out")" = bye ] || fail "--demo: no 'bye' at the end"
echo "--demo: 3 devices, $readings readings to A, command and average answered," \
     "$dropped lines dropped for B (at most $peak bytes queued), unplug seen," \
     "$cores core(s), exit 0"

# --- 2. serving a port, stopped by SIGINT from outside ----------------------------------------
"${wrapper[@]}" "$bin" 0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do
  grep -q '^gateway listening on' "$tmp/out" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
skip_without_ptys
port=$(sed -n 's/^gateway listening on 127\.0\.0\.1:\([0-9]*\) with.*/\1/p' "$tmp/out")
[ -n "$port" ] || fail "serve: no 'gateway listening on' line"

exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'sub\n' >&3
got_reading=0 got_answer=0
for _ in $(seq 400); do # at most 400 lines: readings come every 10 ms from each device
  IFS= read -r -t 5 reply <&3 || break
  [[ "$reply" =~ ^(temp0|hum0|volt0)\ [a-z]+=[0-9.]+$ ]] && got_reading=1
  # Asked once volt0 itself has spoken: its fiber has taken its name by then (asked before,
  # under valgrind, the answer was "err no device volt0").
  if [[ "$reply" =~ ^volt0\  ]] && [ "$got_answer" -eq 0 ] && [ "${asked:-0}" -eq 0 ]; then
    printf 'cmd volt0 led off\n' >&3
    asked=1
  fi
  [ "$reply" = "volt0: ok led off" ] && { got_answer=1; break; }
done
exec 3>&-
[ "$got_reading" -eq 1 ] || fail "serve: no reading reached the client"
[ "$got_answer" -eq 1 ] || fail "serve: the command to volt0 was not answered"

kill -INT "$pid"
status=0
wait "$pid" || status=$?
[ "$status" -eq 0 ] || fail "serve: exit status $status after SIGINT, expected 0"
grep -q '^core 0: ' "$tmp/out" || fail "serve: no per-core statistics"
[ "$(tail -n 1 "$tmp/out")" = bye ] || fail "serve: no 'bye' at the end"
[ ! -s "$tmp/err" ] || fail "serve: something was written to stderr"
echo "serve: subscribed, reading and command answer over TCP, SIGINT, exit 0"
