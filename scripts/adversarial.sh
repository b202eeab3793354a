#!/usr/bin/env bash
# Peak memory of capdiag on adversarial captures (scripts/adversarial.py writes them): each
# must stay under 256 MiB, with the limits that were hit counted in the report.
#   scripts/adversarial.sh [DIR]
#   BIN=/path/to/other/capdiag scripts/adversarial.sh [DIR]     # another build, to compare
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/capdiag-adversarial}
python3 scripts/adversarial.py "$dir" >/dev/null
bin=${BIN:-target/release/capdiag}
[[ -n ${BIN:-} ]] || cargo build --release -q
printf '%-28s %10s %8s %10s  %s\n' capture frames seconds "peak RSS" "limits hit / counters"
for f in "$dir"/*.pcap "$dir"/*.pcapng; do
  res=$( { /usr/bin/time -f '%e %M' "$bin" analyze --fail-on never --format json "$f" > "$dir/out.json"; } 2>&1 | tail -1)
  read -r secs rss <<<"$res"
  info=$(python3 -c '
import json,sys
f=json.load(open(sys.argv[1]))["files"][0]; t=f["tcp"]
keys=["flow_limit_hits","idle_flows_finished","dormant_forgotten","reassembly_limit_hits","reassembly_total_limit_hits","http_pending_limit_hits","http_interim_dropped","gap_bytes"]
print(f["frames"], " ".join("%s=%s" % (k, t[k]) for k in keys if t.get(k)), "connection_attempts=%d" % f["connection_attempts"], "exchanges=%d" % f["exchanges"])' "$dir/out.json")
  read -r frames rest <<<"$info"
  printf '%-28s %10s %8s %7d MiB  %s\n' "$(basename "$f")" "$frames" "$secs" $((rss / 1024)) "$rest"
done
