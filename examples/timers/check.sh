#!/usr/bin/env bash
# Runs the timers example with a 50 ms period and 4 ticks, and checks that the ticks came in
# order and never early, that the one-shot fired no earlier than 4.5 periods after it was set,
# that cancelling a cancelled or fired timer gives ENOENT, that no tick arrived after the
# cancel, and that the actor stopped normally and the program exited 0.
# Usage: check.sh path/to/timers           (CTest runs it as the test example_timers)
# CHECK_WRAPPER runs the example under a tool, e.g.
#   CHECK_WRAPPER="valgrind --leak-check=full --error-exitcode=1" check.sh build/examples/timers
# Under a wrapper the process may be too slow for every tick, so 1 to 4 ticks are accepted.
set -euo pipefail

bin=${1:?usage: check.sh path/to/timers}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, fail()

status=0
"${wrapper[@]}" "$bin" 50 4 >"$tmp/out" 2>"$tmp/err" || status=$?
[ "$status" -eq 0 ] || fail "exit status $status, expected 0"
ids=$(sed -n 's/^ticker is timer \([0-9]*\), deadline is timer \([0-9]*\)$/\1 \2/p' "$tmp/out")
read -r ticker deadline <<<"$ids" || true
[ -n "${deadline:-}" ] || fail "no 'ticker is timer X, deadline is timer Y' line"
[ "$ticker" != "$deadline" ] || fail "both timers have the id $ticker"

# Ticks: numbered 1, 2, ... in order, each at least k periods after the start, same payload.
k=0
while read -r n ms; do
  k=$((k + 1))
  [ "$n" -eq "$k" ] || fail "tick $n came where tick $k was expected"
  [ "$ms" -ge $((k * 50)) ] || fail "tick $k came early, at $ms ms"
done < <(sed -n 's/^tick \([0-9]*\) at \([0-9]*\) ms: "tick-tock"$/\1 \2/p' "$tmp/out")
[ "$(grep -c '^tick ' "$tmp/out")" -eq "$k" ] || fail "a tick line has the wrong form or payload"
if [ ${#wrapper[@]} -eq 0 ]; then want='4'; else want='[1-4]'; fi
grep -Eqx "ticks: $want of 4, none after cancel" "$tmp/out" ||
  fail "no 'ticks: $want of 4, none after cancel' line"
grep -Eqx "ticks: $k of 4, none after cancel" "$tmp/out" || fail "the tick count is not $k"

fired=$(sed -n 's/^deadline: fired \([0-9]*\) ms after it was set$/\1/p' "$tmp/out")
[ -n "$fired" ] || fail "no 'deadline: fired N ms after it was set' line"
[ "$fired" -ge 225 ] || fail "the one-shot fired early, after $fired ms (225 ms asked)"
grep -qx 'cancel the ticker again: ENOENT; cancel the fired deadline: ENOENT' "$tmp/out" ||
  fail "cancelling timers that are gone did not give ENOENT twice"
grep -qx 'timer actor stopped: normal' "$tmp/out" || fail "no 'timer actor stopped: normal'"
! grep -q '^timers: ' "$tmp/err" || fail "the example reported an error"
echo "timers: $k ticks, one-shot after $fired ms, cancel and ENOENT as documented, clean exit"

for args in "0" "50 0" "50 4 extra"; do
  status=0
  # shellcheck disable=SC2086 # split the arguments on purpose
  "$bin" $args >"$tmp/out" 2>"$tmp/err" || status=$?
  [ "$status" -eq 2 ] || fail "'timers $args': exit status $status, expected 2 (usage)"
done
echo "bad arguments: usage, exit 2"
