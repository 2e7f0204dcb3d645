# Shared by the examples' check scripts (sourced, not run): the optional CHECK_WRAPPER tool,
# a temporary folder for the example's output, fail() which shows that output and exits 1, and
# skip_unless_on_path() for the parts that need a program this machine may lack.
read -r -a wrapper <<<"${CHECK_WRAPPER:-}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The example's output files exist from the start: a script that polls them for a line (the
# port it listens on) may look before the example's shell has opened them, and a sed on a
# missing file under `set -e` ends the check (seen once under load).
: >"$tmp/out"
: >"$tmp/err"
fail() {
  echo "FAIL: $*" >&2
  echo "--- stdout" >&2; cat "$tmp/out" >&2
  echo "--- stderr" >&2; cat "$tmp/err" >&2
  exit 1
}
# skip_unless_on_path PROGRAM...: returns when every PROGRAM is on PATH; otherwise prints a
# SKIP line naming the first one missing and exits 77, which CTest reports as "Skipped" (never
# "Passed") for a test registered with SKIP_RETURN_CODE 77.  Installs nothing (tests never do;
# scripts/deps.sh installs socat and mosquitto).
skip_unless_on_path() {
  local program
  for program in "$@"; do
    command -v "$program" >/dev/null 2>&1 ||
      { echo "SKIP: $program is not on PATH"; exit 77; }
  done
}
