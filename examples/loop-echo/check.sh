#!/usr/bin/env bash
# Drives the loop-echo example end to end: starts it on a free port, runs one part of the
# check, then sends SIGINT and checks that the server exits 0 after printing "bye".  The parts,
# each its own CTest entry (and each run once per backend, see examples/CMakeLists.txt):
#  lines (the default; example_loop_echo): lines sent over two interleaved connections come
#    back byte for byte;
#  bulk (example_loop_echo_bulk): with python3, a bulk transfer large enough to make the
#    server's sends block, and a client that resets its connection.  Without python3 on PATH it
#    exits 77 before starting anything, which CTest reports as skipped.
# Usage: check.sh path/to/loop-echo [lines|bulk]
# Set CHECK_WRAPPER to run the server under a tool that keeps it in the same process (the
# SIGINT goes to that pid), e.g.
#   CHECK_WRAPPER="valgrind --leak-check=full --error-exitcode=1" check.sh build/examples/loop-echo
set -euo pipefail

bin=${1:?usage: check.sh path/to/loop-echo [lines|bulk]}
part=${2:-lines}
. "$(dirname "$0")/../check-lib.sh" # wrapper, $tmp, skip_unless_on_path()
case $part in
  lines) ;;
  bulk) skip_unless_on_path python3 ;;
  *) echo "usage: check.sh path/to/loop-echo [lines|bulk]" >&2; exit 2 ;;
esac
server=
cleanup() {
  [ -n "$server" ] && kill -KILL "$server" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  echo "--- server stdout" >&2; cat "$tmp/out" >&2
  echo "--- server stderr" >&2; cat "$tmp/err" >&2
  exit 1
}

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
echo "server listening on port $port"

if [ "$part" = lines ]; then
  # Two connections at once, lines interleaved between them.
  exec 3<>"/dev/tcp/127.0.0.1/$port" 4<>"/dev/tcp/127.0.0.1/$port"
  for line in "hello, axon" "  spaces and	a tab  " "ünïcödé ✓" "$(printf 'x%.0s' $(seq 3000))"; do
    for fd in 3 4; do
      printf '%s\n' "$line" >&"$fd"
      IFS= read -r -t 10 reply <&"$fd" || fail "no reply on fd $fd to '${line:0:40}'"
      [ "$reply" = "$line" ] || fail "fd $fd: sent '${line:0:40}', got '${reply:0:40}'"
    done
  done
  exec 3>&- 4>&-
  echo "lines echoed on two connections"
fi

if [ "$part" = bulk ]; then
  python3 - "$port" <<'PY' || fail "python3 bulk/reset checks"
import os, socket, struct, sys, threading, time
port = int(sys.argv[1])
# Bulk: send 16 MiB while not reading for a while, so the server's sends hit EAGAIN and it
# must park the rest and wait for AX_WRITE; everything must still come back in order.
data = os.urandom(1 << 20) * 16
s = socket.create_connection(("127.0.0.1", port))
sender = threading.Thread(target=s.sendall, args=(data,))
sender.start()
time.sleep(0.5)
got = bytearray()
s.settimeout(60)
while len(got) < len(data):
    chunk = s.recv(1 << 16)
    if not chunk:
        break
    got += chunk
sender.join()
s.close()
if bytes(got) != data:
    sys.exit(f"bulk: sent {len(data)} bytes, got {len(got)} back (or different ones)")
print("bulk transfer of 16 MiB echoed intact")
# Reset: a client that sends and vanishes with an RST must not disturb the server.
r = socket.create_connection(("127.0.0.1", port))
r.sendall(b"x" * 100000)
r.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
r.close()
time.sleep(0.2)
c = socket.create_connection(("127.0.0.1", port))
c.settimeout(10)
c.sendall(b"still here\n")
if c.recv(100) != b"still here\n":
    sys.exit("the server did not answer after a client reset")
c.close()
print("a reset client is handled")
PY
fi

kill -INT "$server"
for _ in $(seq 300); do
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$server" 2>/dev/null && fail "the server did not exit within 30 s of SIGINT"
status=0
wait "$server" || status=$?
server=
[ "$status" -eq 0 ] || fail "the server exited with status $status"
grep -qx bye "$tmp/out" || fail "the server did not print 'bye'"
echo "SIGINT: clean exit, 'bye' printed"
