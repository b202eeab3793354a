#!/usr/bin/env bash
# Benchmark: capdiag analyze (all rules; with the file read on a second thread, `-j 2`, the
# default, and on one thread, `-j 1`) against `tcpdump -r F -w /dev/null` (libpcap's raw read)
# and tshark's HTTP extraction, on the same captures, warm cache. Prints MB/s, packets/s (in
# millions), peak RSS and the ratios the performance targets are stated in, and whether `-j 1`
# and `-j 2` wrote the same findings (their JSON compared). capdiag -j 2, capdiag -j 1 and tcpdump run RUNS times each
# (default 5), alternating; the fastest of each counts. TSHARK=0 leaves tshark out (it takes
# minutes per capture; its columns then read 0).
#
#   scripts/bench.sh CAPTURE...            measure these captures
#   sudo scripts/bench.sh --record DIR     record the 1 GB benchmark captures into DIR first
#                                          (real nginx + wrk traffic in a private namespace), then
#                                          measure http-mix, http-small and https-keys
#
# TLS decryption: a capture named https-keys.pcap (scripts/record-bench-captures.sh: TLS 1.3,
# AES-128-GCM) is measured with its key log beside it, `capdiag analyze --tls-keylog
# DIR/https-keys.keys ...`, and tshark decrypts with the same file (`-o tls.keylog_file:`); the
# case is skipped, with a message, when the capture or its key log is missing. Any other
# capture with a NAME.keys beside it is measured the same way.
#
# Needs tcpdump, tshark, capinfos (Debian: tcpdump, tshark). Results go in docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == --record ]]; then
  dir=${2:?usage: bench.sh --record DIR}
  scripts/record-bench-captures.sh "$dir"
  set -- "$dir/http-mix.pcap" "$dir/http-small.pcap" "$dir/https-keys.pcap"
fi
(($#)) || { echo "usage: scripts/bench.sh CAPTURE... | --record DIR" >&2; exit 2; }
cargo build --release -q
bin=target/release/capdiag
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
faster() { # true when run time $1 beats the best so far, $2 (none yet when empty)
  [[ -z $2 ]] || (( $(echo "$1 < $2" | bc) ))
}
measure() { # prints "seconds peak_rss_kib" of a command, its output discarded
  /usr/bin/time -f '%e %M' -o "$tmp" "$@" >/dev/null 2>&1 || true
  tail -1 "$tmp"
}
printf '%-16s %6s %9s | %-34s | %-8s | %-8s | %-20s | %-24s | %s\n' capture MB packets "capdiag -j2 s (MB/s, Mpkt/s, RSS)" "-j1 s" "tcpdump" "tshark http s (RSS)" "-j2/tcpdump -j1/tcpdump" "tshark/-j2  same"
for f in "$@"; do
  # The key log of a capture: NAME.keys beside NAME.pcap. https-keys is the TLS decryption case
  # and is measured only with its key log.
  keys=${f%.*}.keys; tls=()
  if [[ $(basename "$f") == https-keys.* ]] && ! [[ -f $f && -f $keys ]]; then
    echo "bench.sh: skipping the TLS decryption case: $( [[ -f $f ]] || printf '%s' "$f missing; ")$( [[ -f $keys ]] || printf '%s' "its key log $keys missing; ")record both with: sudo CAPTURES=https-keys scripts/record-bench-captures.sh $(dirname "$f")" >&2
    continue
  fi
  if [[ -f $keys ]]; then
    tls=(--tls-keylog "$keys")
    # A build without the option would fail at once, and its time would read as a result.
    help=$("$bin" analyze --help 2>&1 || true)
    if [[ $help != *--tls-keylog* ]]; then
      echo "bench.sh: skipping $(basename "$f"): this build's capdiag analyze has no --tls-keylog option" >&2
      continue
    fi
  fi
  bytes=$(stat -c %s "$f")
  # capinfos counts the packets of a capture cut short too, but then exits non-zero.
  pkts=$(capinfos -c -M "$f" 2>/dev/null | awk '/Number of packets/ {print $NF}' || true)
  [[ -n $pkts ]] || { echo "bench.sh: capinfos cannot read $f" >&2; exit 1; }
  cat "$f" >/dev/null
  # The three alternate, RUNS times each, and the fastest run of each counts: on a shared
  # machine one run can be slowed by a third or more, and alternating keeps them measured under
  # the same conditions.
  best=""; one=""; td=""; rss=""
  for _ in $(seq "${RUNS:-5}"); do
    read -r s r < <(measure "$bin" analyze -j 2 --fail-on never "${tls[@]}" "$f")
    if faster "$s" "$best"; then best=$s; rss=$r; fi
    read -r s _ < <(measure "$bin" analyze -j 1 --fail-on never "${tls[@]}" "$f")
    if faster "$s" "$one"; then one=$s; fi
    read -r s _ < <(measure tcpdump -r "$f" -w /dev/null)
    if faster "$s" "$td"; then td=$s; fi
  done
  same=no
  if [[ $("$bin" analyze -j 2 --format json --fail-on never "${tls[@]}" "$f" 2>&1 | md5sum) == \
        $("$bin" analyze -j 1 --format json --fail-on never "${tls[@]}" "$f" 2>&1 | md5sum) ]]; then
    same=yes
  fi
  if ((${#tls[@]})); then
    # tshark decrypts with the same key log (https-keys is on port 443, which it reads as TLS).
    ports="-o tls.keylog_file:$keys"
  else
    ports=$("$bin" http --format json "$f" 2>/dev/null | python3 -c '
import json,sys
d=json.load(sys.stdin)
print(" ".join(sorted({"-d tcp.port==%s,http" % e["server"].rsplit(":",1)[1] for e in d["exchanges"]})))' 2>/dev/null || true)
  fi
  ts=0; trss=0
  # shellcheck disable=SC2086
  [[ ${TSHARK:-1} == 0 ]] || read -r ts trss < <(measure tshark -n -2 -r "$f" $ports -Y http -T fields -e frame.number -e http.request.method -e http.response.code)
  mb=$(echo "scale=1; $bytes / 1000000" | bc)
  printf '%-16s %6s %9s | %6s (%5.0f, %5.2f, %3d MiB)     | %8s | %8s | %7s (%5d MiB)      | %5.2fx      %5.2fx      | %5.1fx      %s\n' \
    "$(basename "$f")" "$mb" "$pkts" "$best" "$(echo "$bytes / 1000000 / $best" | bc -l)" \
    "$(echo "$pkts / 1000000 / $best" | bc -l)" $((rss / 1024)) \
    "$one" "$td" "$ts" $((trss / 1024)) "$(echo "$best / $td" | bc -l)" "$(echo "$one / $td" | bc -l)" \
    "$(echo "$ts / $best" | bc -l)" "$same"
done
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
