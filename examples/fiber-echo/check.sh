#!/usr/bin/env bash
# Drives the fiber-echo example end to end: starts it on a free port, runs one part of the
# check, then sends SIGINT and checks that it exits 0, says how many connections it served and
# "bye", and reported no error of its own.  The parts, each its own CTest entry:
#  lines (the default; example_fiber_echo): 8 connections at once over bash /dev/tcp, each
#    sending a few lines, an empty line and a line longer than the session's 4096-byte buffer
#    (echoed in two pieces); everything comes back byte for byte;
#  python (example_fiber_echo_python): with python3, a client that shuts down its side after a
#    last line without '\n' (it still gets that line back, then end of file), 8 MiB sent while
#    not reading (the sessions' ax_stream_write_all must wait at the high watermark) and a
#    client that resets its connection.  Without python3 on PATH it exits 77 before starting
#    anything, which CTest reports as skipped.
# Usage: check.sh path/to/fiber-echo [lines|python]
# CHECK_WRAPPER runs the server under a tool that keeps it in the same process, e.g.
#   CHECK_WRAPPER="valgrind --error-exitcode=1" check.sh build/examples/fiber-echo
set -euo pipefail

bin=${1:?usage: check.sh path/to/fiber-echo [lines|python]}
part=${2:-lines}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, fail(), skip_unless_on_path()
case $part in
  lines) clients=8 ;;
  python) skip_unless_on_path python3; clients=3 ;;
  *) echo "usage: check.sh path/to/fiber-echo [lines|python]" >&2; exit 2 ;;
esac
server=
trap '[ -n "$server" ] && kill -KILL "$server" 2>/dev/null; rm -rf "$tmp"' EXIT

# Port 0: the server binds a free port and prints the one it got.
"${wrapper[@]}" "$bin" 0 >"$tmp/out" 2>"$tmp/err" &
server=$!
port=
for _ in $(seq 300); do
  port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$tmp/out")
  [ -n "$port" ] && break
  kill -0 "$server" 2>/dev/null || fail "the server exited before listening"
  sleep 0.1
done
[ -n "$port" ] || fail "no 'listening on 127.0.0.1:PORT' line within 30 s"

if [ "$part" = lines ]; then
  long=$(head -c 5000 /dev/zero | tr '\0' x)
  client() { # $1: client number; what it sends goes to $tmp/s$1, what comes back to $tmp/c$1
    printf 'hello from %s\n\n%s\nsecond line from %s\n' "$1" "$long" "$1" >"$tmp/s$1"
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    cat "$tmp/s$1" >&3
    # Every byte sent ends a line, so every byte comes back: read as many as were sent.
    timeout 10 head -c "$(wc -c <"$tmp/s$1")" <&3 >"$tmp/c$1" || true
    exec 3<&-
  }
  pids=()
  for i in $(seq "$clients"); do client "$i" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || fail "a client failed"; done
  for i in $(seq "$clients"); do
    cmp -s "$tmp/s$i" "$tmp/c$i" || fail "client $i sent $(wc -c <"$tmp/s$i") bytes," \
      "got back $(wc -c <"$tmp/c$i") that differ"
  done
  echo "$clients clients: lines, an empty line and a 5000-byte line echoed"
else
  python3 - "$port" <<'PY' || fail "python3 checks"
import os, random, socket, struct, sys, threading, time
port = int(sys.argv[1])

def read_all(s):
    got = bytearray()
    while True:
        chunk = s.recv(1 << 16)
        if not chunk:
            return bytes(got)
        got += chunk

# Half-close: the last line has no '\n'; the server still echoes it, then ends the stream.
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"first\nlast without newline")
s.shutdown(socket.SHUT_WR)
got = read_all(s)
assert got == b"first\nlast without newline", got
s.close()

# Bulk: 8 MiB of lines while not reading for a while, so the server's write queue reaches its
# high watermark and ax_stream_write_all waits; everything must still come back in order.
rnd = random.Random(1)
data = b"".join(os.urandom(rnd.randrange(1, 6000)).replace(b"\n", b".") + b"\n"
                for _ in range(2800))
s = socket.create_connection(("127.0.0.1", port), timeout=20)
sender = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
sender.start()
time.sleep(0.5)
got = read_all(s)
sender.join()
assert got == data, (len(got), len(data))
s.close()

# Reset: the server must shrug off a client that vanishes mid-line.
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"half a li")
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
print("half-close: last line echoed; bulk: %d bytes echoed in order; reset client" % len(data))
PY
  # The reset client's session must have run before the Ctrl-C below: it says so on stderr
  # ("client: ..."). Without this wait a loaded machine (CI's ASan stage) delivered the
  # SIGINT first, and the example rightly said it served 2 connections.
  for _ in $(seq 100); do grep -q '^fiber-echo: client: ' "$tmp/err" && break; sleep 0.1; done
  grep -q '^fiber-echo: client: ' "$tmp/err" || fail "the reset client's session said nothing"
fi

kill -INT "$server"
status=0
wait "$server" || status=$?
server=
[ "$status" -eq 0 ] || fail "exit status $status after SIGINT, expected 0"
grep -qx "served $clients connections" "$tmp/out" || fail "did not serve $clients connections"
grep -qx bye "$tmp/out" || fail "no 'bye' at exit"
# A client's own trouble (its reset, say) is reported as "client: ..."; nothing else may be.
bad=$(grep '^fiber-echo: ' "$tmp/err" | grep -v '^fiber-echo: client: ' || true)
[ -z "$bad" ] || fail "the example reported an error: $bad"
echo "SIGINT: $clients connections served, exit 0"
