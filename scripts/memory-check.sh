#!/usr/bin/env bash
# Shows that capdiag's memory does not grow with the size of the capture: analyses each capture
# whole and cut to a quarter of its frames, and prints wall time and peak RSS of `capdiag
# analyze` (every rule; on two threads, the default, and with `-j 1`) and of `capdiag http
# --format json` (every exchange written) for both.
# Given a capture four times the size of another, its quarter is the smaller one's size.
#
#   scripts/memory-check.sh CAPTURE...      (e.g. captures of scripts/record-bench-captures.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
bin=target/release/capdiag
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf '%-28s %12s %10s | %-24s | %-24s | %-24s\n' capture bytes frames "analyze s, peak RSS KiB" "analyze -j 1 s, KiB" "http --format json s, KiB"
for f in "$@"; do
  frames=$(capinfos -c -M "$f" 2>/dev/null | awk '/Number of packets/ {print $NF}')
  quarter="$tmp/$(basename "$f").quarter.pcap"
  tcpdump -r "$f" -c $((frames / 4)) -w "$quarter" 2>/dev/null
  for c in "$quarter" "$f"; do
    a=$( { /usr/bin/time -f '%e %M' "$bin" analyze --fail-on never "$c" >/dev/null; } 2>&1 | tail -1)
    a1=$( { /usr/bin/time -f '%e %M' "$bin" analyze -j 1 --fail-on never "$c" >/dev/null; } 2>&1 | tail -1)
    h=$( { /usr/bin/time -f '%e %M' "$bin" http --format json "$c" >/dev/null; } 2>&1 | tail -1)
    n=$(capinfos -c -M "$c" 2>/dev/null | awk '/Number of packets/ {print $NF}')
    printf '%-28s %12s %10s | %-24s | %-24s | %-24s\n' "$(basename "$c")" "$(stat -c %s "$c")" "$n" "$a" "$a1" "$h"
  done
done
