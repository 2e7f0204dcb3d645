#!/usr/bin/env bash
# Builds axon and runs every test: a Release build with -Werror, then under
# ASan+UBSan (with allocation-failure injection), then the multi-core tests
# under ThreadSanitizer, then a short run of each fuzzer (clang, libFuzzer);
# the examples also run under valgrind.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

jobs=$(nproc)
run_suite() { # name, build dir, ctest args..., -- cmake args...
  local name=$1 dir=$2; shift 2
  local ctest_args=() cmake_args=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do ctest_args+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  cmake_args=("$@")
  echo "=== $name"
  cmake -S . -B "$dir" -DAXON_WERROR=ON "${cmake_args[@]}" >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; return 1; }
  cmake --build "$dir" -j "$jobs"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" "${ctest_args[@]}"
}

mkdir -p build
# The plain build is a Release build, as users build (gcc warns at -O3 with
# LTO about things it does not see at -O2: it must be clean too).
run_suite "plain Release build (-Werror)" build/plain -- -DCMAKE_BUILD_TYPE=Release
# The examples once more, under valgrind's memcheck: an invalid access or a
# definite leak fails the example's check (exit 99).  Valgrind's own notes
# (syscalls it does not know) go to a log, not to the example's stderr.
# example_process is left out: valgrind 3.19 (Debian 12) has no pidfd_open,
# so axon's spawn returns -ENOSYS there (docs/io/process.md).
echo "=== examples under valgrind"
vglog=$(mktemp -d)
CHECK_WRAPPER="valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 -q --log-file=$vglog/%p.log" \
  ctest --test-dir build/plain --output-on-failure -j "$jobs" -L examples -E '^example_process$'
rm -rf "$vglog"
run_suite "AddressSanitizer + UndefinedBehaviorSanitizer" build/asan -LE install -- \
  -DAXON_SANITIZE=address,undefined -DAXON_FAULT_INJECTION=ON -DAXON_BUILD_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=Debug

# Only the tests labelled "multicore" run under ThreadSanitizer.
tsan_tests=$(grep -rl 'LABELS.*multicore' tests 2>/dev/null || true)
if [ -n "$tsan_tests" ]; then
  run_suite "ThreadSanitizer (multi-core tests)" build/tsan -L multicore -- \
    -DAXON_SANITIZE=thread -DAXON_BUILD_BENCH=OFF -DAXON_BUILD_EXAMPLES=OFF -DCMAKE_BUILD_TYPE=Debug
else
  echo "=== ThreadSanitizer: no multi-core tests yet"
fi
# The libFuzzer harnesses (tests/fuzz, docs/fuzzing.md), built with clang:
# each runs on its corpus for a few seconds.  --no-tests=error: a build
# directory configured earlier with another compiler has no fuzzers.
CC=clang run_suite "libFuzzer smoke (clang)" build/fuzz -L fuzz --no-tests=error -- \
  -DAXON_FUZZ=ON -DAXON_BUILD_TESTS=OFF -DAXON_BUILD_BENCH=OFF -DAXON_BUILD_EXAMPLES=OFF
echo "=== all test suites passed"
