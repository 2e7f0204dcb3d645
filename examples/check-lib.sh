# Shared by the examples' check scripts (sourced, not run): the optional CHECK_WRAPPER tool,
# a temporary folder for the example's output, and fail() which shows that output and exits 1.
read -r -a wrapper <<<"${CHECK_WRAPPER:-}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "FAIL: $*" >&2
  echo "--- stdout" >&2; cat "$tmp/out" >&2
  echo "--- stderr" >&2; cat "$tmp/err" >&2
  exit 1
}
