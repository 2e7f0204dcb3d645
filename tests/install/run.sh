#!/bin/sh
# Installs axon into a temporary prefix and builds and runs a consumer through pkg-config and find_package().
# Usage: run.sh <build-dir> <source-dir>
set -eu

build=$1
source=$2
here=$source/tests/install
tmp=$(mktemp -d "${TMPDIR:-/tmp}/axon-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 || {
  cat "$tmp/install.log"
  echo "install_package: cmake --install failed" >&2
  exit 1
}

pc=$(find "$prefix" -name axon.pc -print | head -n 1)
if [ -z "$pc" ]; then
  echo "install_package: no axon.pc under $prefix" >&2
  exit 1
fi
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
if [ ! -e "$libdir/libaxon.so" ]; then
  echo "install_package: no libaxon.so next to $pcdir" >&2
  exit 1
fi
for header in axon.h axon/common.h axon/loop.h axon/version.h; do
  if [ ! -f "$prefix/include/$header" ]; then
    echo "install_package: header $header was not installed" >&2
    exit 1
  fi
done

cc=${CC:-cc}

# 1. pkg-config.  Concurrency Kit is private to the library: a consumer's
# compile flags are axon's include directory and nothing else (ck.pc's
# Cflags carry -D__x86_64__ and the like).
cflags=$(PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" pkg-config --cflags axon)
for word in $cflags; do
  case $word in
  -I*) ;;
  *)
    echo "install_package: pkg-config --cflags axon gives '$cflags': '$word' is not axon's" >&2
    exit 1
    ;;
  esac
done
static=$(PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" pkg-config --static --libs axon)
case " $static " in
*" -lck "*) ;;
*)
  echo "install_package: pkg-config --static --libs axon gives '$static', without -lck" >&2
  exit 1
  ;;
esac
flags=$(PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" pkg-config --cflags --libs axon)
# shellcheck disable=SC2086 # the flags must split into words
"$cc" -std=c11 -Wall -Wextra -Werror -o "$tmp/consumer-pc" "$here/consumer.c" $flags

# 1b. The same with the library's directory as rpath (the README's way to
# run against a prefix the dynamic linker does not search): runs with no
# LD_LIBRARY_PATH.
libdir_pc=$(PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" pkg-config --variable=libdir axon)
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Wextra -Werror -o "$tmp/consumer-rpath" "$here/consumer.c" $flags \
  -Wl,-rpath,"$libdir_pc"
output=$(env -u LD_LIBRARY_PATH "$tmp/consumer-rpath")
case $output in
"axon "*) echo "$tmp/consumer-rpath: $output" ;;
*)
  echo "install_package: the rpath consumer printed '$output'" >&2
  exit 1
  ;;
esac

# 2. find_package() from a CMake project.
cmake -S "$here" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_COMPILER="$cc" >"$tmp/configure.log" 2>&1 || {
  cat "$tmp/configure.log"
  echo "install_package: configuring the find_package() consumer failed" >&2
  exit 1
}
cmake --build "$tmp/cmake-build" >"$tmp/build.log" 2>&1 || {
  cat "$tmp/build.log"
  echo "install_package: building the find_package() consumer failed" >&2
  exit 1
}

# Both must run against the installed library, not the build tree's.
for program in "$tmp/consumer-pc" "$tmp/cmake-build/consumer"; do
  output=$(LD_LIBRARY_PATH="$libdir" "$program")
  echo "$program: $output"
  case $output in
    "axon "*) ;;
    *) echo "install_package: unexpected output from $program" >&2; exit 1 ;;
  esac
  loaded=$(LD_LIBRARY_PATH="$libdir" ldd "$program" | grep 'libaxon\.so' || true)
  case $loaded in
    *"$libdir"/*) ;;
    *) echo "install_package: $program does not load libaxon from $libdir: $loaded" >&2; exit 1 ;;
  esac
done
echo "install_package: OK"
