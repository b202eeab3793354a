#!/usr/bin/env bash
# Instructions `capdiag analyze` executes on the first 40 MB of each capture, counted by
# valgrind (cachegrind without cache simulation). Unlike wall time, the count does not move with
# the machine's load, so it is how a change to the hot path is judged before the wall-time
# benchmark (scripts/bench.sh) is run on a quiet machine.
#
#   scripts/count-instructions.sh CAPTURE...            the release build of this tree
#   BIN=/path/to/capdiag scripts/count-instructions.sh CAPTURE...
#
# Needs valgrind (Debian: valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
(($#)) || { echo "usage: scripts/count-instructions.sh CAPTURE..." >&2; exit 2; }
command -v valgrind >/dev/null || { echo "count-instructions.sh: needs valgrind" >&2; exit 2; }
if [[ -z ${BIN:-} ]]; then
  cargo build --release -q
  BIN=target/release/capdiag
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
one=()
"$BIN" analyze --help | grep -q -- --threads && one=(-j 1)
for f in "$@"; do
  head -c 40000000 "$f" >"$tmp/slice"
  ir=$(valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
    "$BIN" analyze "${one[@]}" --fail-on never "$tmp/slice" 2>&1 >/dev/null | awk '/I *refs/ {gsub(",", "", $NF); print $NF}')
  frames=$("$BIN" analyze --format json --fail-on never "$tmp/slice" 2>/dev/null |
    python3 -c 'import json,sys; f=json.load(sys.stdin)["files"][0]; print(f["frames"], f["exchanges"])')
  read -r nf nx <<<"$frames"
  printf '%-20s %14s instructions  %8s frames  %8s exchanges  %6d per frame  %6d per exchange\n' \
    "$(basename "$f")" "$ir" "$nf" "$nx" $((ir / nf)) $((ir / (nx > 0 ? nx : 1)))
done
