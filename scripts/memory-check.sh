#!/usr/bin/env bash
# Shows that capdiag's memory does not grow with the size of the capture: analyses each capture
# whole and cut to a quarter of its frames, and prints wall time and peak RSS for both.
#
#   scripts/memory-check.sh CAPTURE...      (e.g. the 1 GB captures of shared/bench/make-captures.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
bin=target/release/capdiag
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf '%-28s %12s %10s %10s %14s\n' capture bytes frames seconds "peak RSS KiB"
for f in "$@"; do
  frames=$(capinfos -c -M "$f" 2>/dev/null | awk '/Number of packets/ {print $NF}')
  quarter="$tmp/$(basename "$f").quarter.pcap"
  tcpdump -r "$f" -c $((frames / 4)) -w "$quarter" 2>/dev/null
  for c in "$quarter" "$f"; do
    out=$( { /usr/bin/time -f '%e %M' "$bin" http --format json "$c" >/dev/null; } 2>&1 | tail -1)
    n=$(capinfos -c -M "$c" 2>/dev/null | awk '/Number of packets/ {print $NF}')
    printf '%-28s %12s %10s %10s %14s\n' "$(basename "$c")" "$(stat -c %s "$c")" "$n" $out
  done
done
