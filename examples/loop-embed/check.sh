#!/usr/bin/env bash
# Runs loop-embed with 40 lines (1.5 s) and checks that a host poll() loop that waits on
# ax_loop_fd() serves every line as it comes: all 40 arrive, the axon timer fires, the host's
# own once-a-second timer ticked, and the worst line waited under 500 ms.  Were the lines not
# behind the fd, those written after the axon timer (250 ms) would wait for the host's tick at
# 1 s, 500 ms and more; typical figures are tens of microseconds.
# Usage: check.sh path/to/loop-embed      (CTest runs it as the test example_loop_embed)
set -euo pipefail

bin=${1:?usage: check.sh path/to/loop-embed}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, fail()

status=0
"${wrapper[@]}" "$bin" 40 >"$tmp/out" 2>"$tmp/err" || status=$?
cat "$tmp/out"
[ "$status" -eq 0 ] || fail "exit status $status, expected 0: $(cat "$tmp/err")"
grep -q '^lines: 40 of 40$' "$tmp/out" || fail "not every line arrived"
grep -q '^axon timer: fired$' "$tmp/out" || fail "the axon timer did not fire"
ticks=$(sed -n 's/^host ticks: \([0-9]*\)$/\1/p' "$tmp/out")
[ "${ticks:-0}" -ge 1 ] || fail "the host's own timer never ticked"
max=$(sed -n 's/^latency: mean [0-9]* us, max \([0-9]*\) us$/\1/p' "$tmp/out")
[ -n "$max" ] || fail "no latency line"
[ "$max" -lt 500000 ] || fail "a line waited $max us: the host did not wake for it"
echo "loop-embed: OK (worst line waited $max us)"
