#!/usr/bin/env bash
# Kernel drops of `capdiag watch` against `tcpdump` on the same load (a benchmark, not a CI
# test). Two network namespaces this script creates (10.81.0.0/24, nothing outside them) joined
# by a veth; nginx in one, wrk in the other; capdiag and then tcpdump capture on the client's
# veth for SECONDS each, under the same load, with and without a competing busy process.
#
#   sudo scripts/live-drops.sh [SECONDS] [RUNS] [CAPDIAG ARGS...]
#       (defaults: 10 s, 3 runs; extra arguments go to `capdiag watch`, e.g. --buffer-mib 8;
#       LOADS="small" and BUSY_MODES="yes" choose what runs)
#
# Loads: `small`, wrk -t1 -c8 fetching a 600-byte file over keep-alive connections (about
# 100k packets/s here); `bulk`, wrk -t1 -c2 fetching a 64 MiB blob that nginx sends at 62.5 MB/s
# per connection (about 1 Gbit/s). The busy process is one shell loop spinning on a core.
# Printed per run: packets and kernel drops of each, capdiag's CPU time per packet (user +
# system, from /usr/bin/time). Needs: nginx wrk tcpdump iproute2 time (installed when missing).
set -euo pipefail
DUR=${1:-10}
RUNS=${2:-3}
shift $(( $# > 2 ? 2 : $# ))
EXTRA=("$@")
cd "$(dirname "$0")/.."
cargo build --release -q
BIN=$PWD/target/release/capdiag
. scripts/lab.sh
lab_install nginx wrk ip tcpdump /usr/bin/time
C=capdrop-c; S=capdrop-s
WORK=$(mktemp -d)
BUSY=
cleanup() {
  [[ -n $BUSY ]] && kill "$BUSY" 2>/dev/null || true
  [[ -f $WORK/nginx.pid ]] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  ip netns del $C 2>/dev/null || true
  ip netns del $S 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
lab_pair $C $S 10.81.0
mkdir -p "$WORK/www/v2/blobs"
head -c 600 /dev/urandom > "$WORK/www/v2/blobs/small"
head -c $((64 * 1024 * 1024)) /dev/urandom > "$WORK/www/v2/blobs/bulk"
cat > "$WORK/nginx.conf" <<NGX
worker_processes 1;
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK; uwsgi_temp_path $WORK; scgi_temp_path $WORK;
  keepalive_requests 1000000;
  server {
    listen 10.81.0.2:80;
    root $WORK/www;
    location = /v2/blobs/bulk { limit_rate 62500k; }
  }
}
NGX
ip netns exec $S nginx -c "$WORK/nginx.conf"

# load NAME SECONDS: wrk in the client namespace, in the background.
load() {
  case $1 in
    small) ip netns exec $C wrk -t1 -c8 -d"${2}s" http://10.81.0.2/v2/blobs/small >/dev/null 2>&1 & ;;
    bulk) ip netns exec $C wrk -t1 -c2 -d"${2}s" --timeout 30s http://10.81.0.2/v2/blobs/bulk >/dev/null 2>&1 & ;;
  esac
  LOAD=$!
}

printf '%-5s %-4s %3s | %10s %8s %9s | %10s %8s\n' load busy run capd_pkts capd_drop "cpu_ns/pk" tcpd_pkts tcpd_drop
for name in ${LOADS:-small bulk}; do
  for busy in ${BUSY_MODES:-no yes}; do
    if [[ $busy == yes ]]; then sh -c 'while :; do :; done' & BUSY=$!; fi
    for run in $(seq 1 "$RUNS"); do
      # capdiag: the load starts first, the watch captures DUR seconds of it.
      load $name $((DUR + 2)); sleep 1
      /usr/bin/time -f '%U %S' -o "$WORK/time" \
        ip netns exec $C "$BIN" watch -i eth0 --format ndjson --duration "$DUR" "${EXTRA[@]}" \
        > "$WORK/watch.out" 2>"$WORK/watch.err" || true
      wait $LOAD || true
      read -r cpkts cdrop < <(tail -1 "$WORK/watch.out" | python3 -c \
        'import json,sys; s=json.load(sys.stdin); print(s["kernel"]["received"], s["kernel"]["dropped_by_kernel"])')
      read -r u s < "$WORK/time"
      cpu=$(python3 -c "print(round(($u + $s) * 1e9 / max($cpkts, 1)))")
      # tcpdump on the same load, right after.
      load $name $((DUR + 2)); sleep 1
      ip netns exec $C timeout -s INT "$DUR" tcpdump -i eth0 -w /dev/null > /dev/null 2> "$WORK/tcpdump.err" || true
      wait $LOAD || true
      tpkts=$(awk '/packets received by filter/ {print $1}' "$WORK/tcpdump.err")
      tdrop=$(awk '/packets dropped by kernel/ {print $1}' "$WORK/tcpdump.err")
      printf '%-5s %-4s %3s | %10s %8s %9s | %10s %8s\n' $name $busy "$run" "$cpkts" "$cdrop" "$cpu" "$tpkts" "$tdrop"
    done
    if [[ -n $BUSY ]]; then kill "$BUSY" 2>/dev/null || true; wait "$BUSY" 2>/dev/null || true; BUSY=; fi
  done
done
