#!/usr/bin/env bash
# abtest.sh: did a change make axon slower?  Builds two revisions and runs their benchmarks
# side by side, alternating, in one run; prints medians and NEW-against-OLD cost ratios.
#
# Usage: bench/abtest.sh [-r ROUNDS] [-q] [-k] OLD_REV [NEW_REV]
#   OLD_REV   a git revision, checked out with `git worktree add` into a temporary directory
#   NEW_REV   another revision; default: the working tree as it is now, uncommitted changes
#             and untracked (not ignored) files included, copied into the temporary directory
#   -r ROUNDS rounds (default 5; 2 with -q)
#   -q        quick smoke run: the programs' small sizes (bench_actors --quick, bench_tcp -t 0.2)
#   -k        keep the temporary directory: the builds, their logs, every program's output
#             (the worktrees are removed all the same)
#
# Both are built Release (benchmarks on, tests and examples off, no -Werror) in build
# directories of their own.  Each round runs every case once with OLD and once with NEW, one
# right after the other; which goes first alternates from round to round.  Every case uses
# options that the programs have had since they were written, and the same command line for
# both builds, and the figures are read from the tables the programs print.
# Nothing is pinned beyond what the programs pin themselves.
#
# Cases (each invocation measures 3 times and reports its median; -q: --quick or -t 0.2, -r 1):
#   bench_actors -b 1 -r 3          row 1: same-core ping-pong, ns/msg
#   bench_actors -b 2 -r 3          rows 2a, 2b: cross-core ping-pong, spinning and not, ns/rt
#   bench_actors -b 3 -r 3          row 3: fan-in, ns/msg at the receiver
#   bench_actors -b 4 -r 3          rows 4, 4w: skynet 10^6 cold and warm (best variant), ms
#   bench_tcp -n 1 -i epoll,axon -c C -m 64 -t 1 -r 3   C = 1 and 100: the one-core echo server
#                                   on CPU 0, the client on CPU 1; round trips/s and server CPU
#                                   ns per round trip.  The epoll server runs no axon code: its
#                                   rows are a control that shows the noise of this very run.
#
# The table's "cost" is NEW/OLD for times and OLD/NEW for rates, so that > 1 always means that
# NEW is slower.  "paired" is the median of the per-round costs (OLD and NEW of one round ran
# back to back), "slower" the number of rounds in which NEW was slower.  A whole default run
# takes about 5 minutes on 2 quiet CPUs (9 when other work loads them); -q under a minute.
# OLD and NEW need bench_actors and bench_tcp (05e5af8 or later).  Exits 1 if a build or a
# benchmark fails.
set -euo pipefail

die() {
  echo "abtest: $*" >&2
  exit 1
}
usage() {
  echo "usage: bench/abtest.sh [-r ROUNDS] [-q] [-k] OLD_REV [NEW_REV]" >&2
  exit 2
}

rounds="" quick=0 keep=0
while getopts ":r:qkh" opt; do
  case $opt in
  r) rounds=$OPTARG ;;
  q) quick=1 ;;
  k) keep=1 ;;
  *) usage ;;
  esac
done
shift $((OPTIND - 1))
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
if [ -z "$rounds" ]; then
  rounds=$((quick ? 2 : 5))
fi
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "-r: not a positive integer: '$rounds'"
for tool in git cmake python3 tar; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel) || die "not inside a git repository"
old_rev=$1
new_rev=${2:-}
old_sha=$(git -C "$repo" rev-parse --verify --quiet "$old_rev^{commit}") ||
  die "OLD_REV: not a revision: '$old_rev'"
if [ -n "$new_rev" ]; then
  new_sha=$(git -C "$repo" rev-parse --verify --quiet "$new_rev^{commit}") ||
    die "NEW_REV: not a revision: '$new_rev'"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/axon-abtest.XXXXXX")
worktrees=()
cleanup() {
  local wt
  for wt in ${worktrees[@]+"${worktrees[@]}"}; do
    git -C "$repo" worktree remove --force "$wt" >/dev/null 2>&1 ||
      echo "abtest: could not remove the worktree $wt (git worktree remove --force it)" >&2
  done
  if [ "$keep" = 1 ]; then
    echo "abtest: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$tmp/out"

describe_rev() { # sha: short hash and subject
  git -C "$repo" log -1 --format='%h %s' "$1" | cut -c1-90
}

# Sources: a revision as a detached worktree, the working tree as a copy of every file git
# does not ignore (so that edits made while the benchmarks run do not mix into the build).
checkout_rev() { # side sha
  local dir=$tmp/$1-src
  git -C "$repo" worktree add --detach --quiet "$dir" "$2" >"$tmp/$1-worktree.log" 2>&1 ||
    { cat "$tmp/$1-worktree.log" >&2; die "git worktree add $2 failed"; }
  worktrees+=("$dir")
}
copy_working_tree() { # side
  local dir=$tmp/$1-src
  mkdir -p "$dir"
  (
    cd "$repo"
    git ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' f; do
        if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
      done |
      tar --null --no-recursion -T - -cf -
  ) | tar -C "$dir" -xf - || die "copying the working tree failed"
}

old_desc="$(describe_rev "$old_sha")"
checkout_rev old "$old_sha"
if [ -n "$new_rev" ]; then
  new_desc="$(describe_rev "$new_sha")"
  checkout_rev new "$new_sha"
else
  changed=$(git -C "$repo" status --porcelain --untracked-files=normal | wc -l)
  new_desc="working tree of $repo: HEAD $(describe_rev HEAD), $changed path(s) changed or untracked"
  copy_working_tree new
fi

cmake_args=(-DCMAKE_BUILD_TYPE=Release -DAXON_BUILD_TESTS=OFF -DAXON_BUILD_EXAMPLES=OFF
  -DAXON_BUILD_BENCH=ON)
jobs=$(nproc)
build() { # side
  local src=$tmp/$1-src bld=$tmp/$1-build log=$tmp/$1-build.log
  echo "abtest: building $1 ..." >&2
  if ! { cmake -S "$src" -B "$bld" "${cmake_args[@]}" &&
    cmake --build "$bld" -j "$jobs" --target bench_actors bench_tcp; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "the $1 build failed (log above)"
  fi
}
build old
build new

# The cases: name, kind (how its output is read), program, arguments.
case_names=() case_kinds=() case_progs=() case_args=()
add_case() {
  case_names+=("$1") case_kinds+=("$2") case_progs+=("$3") case_args+=("$4")
}
# Each invocation runs its measurement 3 times (-r 3) and reports the median, so that one
# disturbed run does not make the round's figure.
if [ "$quick" = 1 ]; then
  actors_opts="--quick -r 1" tcp_opts="-t 0.2 -r 1"
else
  actors_opts="-r 3" tcp_opts="-t 1 -r 3"
fi
for row in 1 2 3 4; do
  add_case "actors-$row" actors bench_actors "-b $row $actors_opts"
done
for conns in 1 100; do
  add_case "tcp-$conns" tcp bench_tcp "-n 1 -i epoll,axon -c $conns -m 64 $tcp_opts"
done

cat >"$tmp/abtest.py" <<'PY'
# Reads the benchmarks' tables (the formats of their first versions) and reports.
import re, statistics, sys

ACTORS = re.compile(r"^(1|2a|2b|3|4|4w)\s+(.*?)\s+([0-9.]+)\s+(ns/msg|ns/rt|ms)(?=\s|$)")
ACTORS_NA = re.compile(r"^(1|2a|2b|3|4|4w)\s+(.*?)\s+n/a\s+(.*)$")
TCP = re.compile(r"^\s*(\d+)\s+(\d+)\s+(epoll|axon|libuv)\s+([0-9.]+)\s+([0-9.]+)\s")


def extract(kind, path):
    """Prints key, label, unit, better, value (tab-separated) for every figure in one output."""
    rows, unavailable = [], False
    with open(path, errors="replace") as f:
        lines = f.read().splitlines()
    for line in lines:
        if kind == "actors":
            m = ACTORS.match(line)
            if m:
                label = re.sub(r", best: .*$", ", best variant", m.group(2))
                rows.append(("A" + m.group(1), m.group(1) + " " + label, m.group(4), "lower",
                             m.group(3)))
            elif ACTORS_NA.match(line):
                m = ACTORS_NA.match(line)
                unavailable = True
                print("abtest: row %s n/a: %s" % (m.group(1), m.group(3).strip()), file=sys.stderr)
        else:
            m = TCP.match(line)
            if m:
                conns, msg, impl = m.group(1), m.group(2), m.group(3)
                cell = "tcp -n 1 -c %s -m %s %s" % (conns, msg, impl)
                key = "T%s.%s.%s" % (conns, msg, impl)
                ctl = " (control)" if impl == "epoll" else ""
                rows.append((key + ".rt", cell + ": round trips" + ctl, "rt/s", "higher",
                             m.group(4)))
                rows.append((key + ".cpu", cell + ": server CPU" + ctl, "ns/rt", "lower",
                             m.group(5)))
            elif "skipped" in line:
                print("abtest: " + line.strip(), file=sys.stderr)
    if not rows and not unavailable:
        sys.exit("abtest: no figure found in %s" % path)
    for r in rows:
        print("\t".join(r))


def fmt(v):
    if v is None:
        return "n/a"
    if abs(v) >= 1000:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


def report(tsv, rounds):
    order, label, unit, better, vals, labels_seen = [], {}, {}, {}, {}, {}
    with open(tsv) as f:
        for line in f:
            rnd, side, key, lab, un, bet, val = line.rstrip("\n").split("\t")
            if key not in vals:
                order.append(key)
                vals[key] = {"old": {}, "new": {}}
                label[key], unit[key], better[key] = lab, un, bet
                labels_seen[key] = {"old": set(), "new": set()}
            vals[key][side][int(rnd)] = float(val)
            labels_seen[key][side].add(lab)
    head = "%-50s %-6s %-6s %10s %10s %6s %6s %6s %9s" % (
        "case", "unit", "better", "OLD med", "NEW med", "cost", "paired", "slower",
        "spread O/N")
    print(head)
    print("-" * len(head))
    warnings = []
    for key in order:
        o, n = vals[key]["old"], vals[key]["new"]
        mo = statistics.median(o.values()) if o else None
        mn = statistics.median(n.values()) if n else None
        hi = better[key] == "higher"

        def cost(a, b):  # a = OLD, b = NEW; > 1: NEW slower
            if a is None or b is None or a <= 0 or b <= 0:
                return None
            return a / b if hi else b / a

        c = cost(mo, mn)
        per_round = [cost(o[r], n[r]) for r in sorted(o) if r in n]
        per_round = [x for x in per_round if x is not None]
        paired = statistics.median(per_round) if per_round else None
        slower = "%d/%d" % (sum(1 for x in per_round if x > 1), len(per_round))

        def spread(d, med):
            if len(d) < 2 or not med:
                return "-"
            return "%.0f%%" % ((max(d.values()) - min(d.values())) / med * 100)

        print("%-50s %-6s %-6s %10s %10s %6s %6s %6s %9s" % (
            label[key][:50], unit[key], better[key], fmt(mo), fmt(mn),
            "n/a" if c is None else "%.3f" % c, "n/a" if paired is None else "%.3f" % paired,
            slower, spread(o, mo) + "/" + spread(n, mn)))
        if labels_seen[key]["old"] != labels_seen[key]["new"]:
            warnings.append("%s: OLD and NEW measure different things: OLD %s, NEW %s" % (
                key, sorted(labels_seen[key]["old"]), sorted(labels_seen[key]["new"])))
        if len(o) != rounds or len(n) != rounds:
            warnings.append("%s: %d OLD and %d NEW figures for %d rounds" % (
                key, len(o), len(n), rounds))
    print()
    print("cost = NEW/OLD of the medians for times (lower is better), OLD/NEW for rates")
    print("(rt/s, higher is better): > 1 means NEW is slower either way.  paired = median over")
    print("the rounds of that round's cost; slower = rounds in which NEW was slower; spread =")
    print("(max-min)/median over the rounds, OLD/NEW.  The epoll rows run no axon code: how far")
    print("their cost is from 1.000 is the noise of this run.")
    if warnings:
        print()
        for w in warnings:
            print("warning: " + w)
    print()
    print("every figure, by round:")
    for key in order:
        for side in ("old", "new"):
            d = vals[key][side]
            print("  %-18s %s %s" % (key, side.upper(), " ".join(fmt(d[r]) for r in sorted(d))))


if sys.argv[1] == "extract":
    extract(sys.argv[2], sys.argv[3])
else:
    report(sys.argv[2], int(sys.argv[3]))
PY

# The rounds.
figures=$tmp/figures.tsv
: >"$figures"
run_case() { # round case-index side
  local r=$1 i=$2 side=$3 out rows line
  local args
  read -r -a args <<<"${case_args[$i]}"
  out=$tmp/out/r$r.${case_names[$i]}.$side.txt
  if ! "$tmp/$side-build/bench/${case_progs[$i]}" "${args[@]}" >"$out" 2>&1; then
    tail -n 20 "$out" >&2
    die "round $r: $side: ${case_progs[$i]} ${case_args[$i]} failed (output above)"
  fi
  rows=$(python3 "$tmp/abtest.py" extract "${case_kinds[$i]}" "$out") ||
    { cat "$out" >&2; die "round $r: $side: cannot read the output above"; }
  while IFS= read -r line; do
    if [ -n "$line" ]; then printf '%s\t%s\t%s\n' "$r" "$side" "$line" >>"$figures"; fi
  done <<<"$rows"
}

start=$SECONDS
load_start=$(cut -d' ' -f1 /proc/loadavg)
load_peak=$load_start
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2 == 1)); then order=(old new); else order=(new old); fi
  for i in "${!case_names[@]}"; do
    for side in "${order[@]}"; do
      run_case "$r" "$i" "$side"
    done
  done
  load=$(cut -d' ' -f1 /proc/loadavg)
  load_peak=$(awk -v a="$load" -v b="$load_peak" 'BEGIN { print (a > b ? a : b) }')
  echo "abtest: round $r/$rounds done (${order[0]} first), $((SECONDS - start)) s," \
    "load average $load" >&2
done

echo "OLD: $old_desc"
echo "NEW: $new_desc"
echo "$rounds round(s)$([ "$quick" = 1 ] && echo ' (-q: small sizes)'), OLD first in odd rounds," \
  "NEW first in even, $((SECONDS - start)) s; $jobs CPUs; 1-minute load average $load_start" \
  "at the start, highest $load_peak"
if awk -v l="$load_peak" -v n="$jobs" 'BEGIN { exit !(l > n) }'; then
  echo "warning: the load average exceeded the CPU count: other work competed with the"
  echo "benchmarks; prefer the paired column, check the epoll rows, or run again later"
fi
echo
python3 "$tmp/abtest.py" report "$figures" "$rounds"
echo
echo "commands (SIDE = old or new; the sources in a temporary directory):"
echo "  cmake -S SIDE-src -B SIDE-build ${cmake_args[*]}"
echo "  cmake --build SIDE-build -j $jobs --target bench_actors bench_tcp"
for i in "${!case_names[@]}"; do
  echo "  SIDE-build/bench/${case_progs[$i]} ${case_args[$i]}"
done
