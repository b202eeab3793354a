#!/usr/bin/env bash
# Soak benchmark for `capdiag watch` (not a CI test): sustained HTTP load between two network
# namespaces this script creates (10.80.0.0/24, nothing outside them), capdiag watching the
# client's veth; peak RSS sampled every 5 s, kernel drops and rates from capdiag's summary.
#
#   sudo scripts/soak.sh [SECONDS] [CONNECTIONS] [DELAY_MS]
#       (defaults: 600 s, 64 connections, no delay; DELAY_MS paces each connection)
#
# The load is wrk against nginx, half of it on fresh connections (Connection: close) so the
# flow table churns, with 401/404 answers mixed in. Needs: nginx wrk iproute2 (installed when
# missing).
set -euo pipefail
DUR=${1:-600}
CONNS=${2:-64}
DELAY=${3:-0}
cd "$(dirname "$0")/.."
cargo build --release -q
BIN=$PWD/target/release/capdiag
. scripts/lab.sh
lab_install nginx wrk ip
C=capsoak-c; S=capsoak-s
WORK=$(mktemp -d)
cleanup() {
  [[ -f $WORK/nginx.pid ]] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  ip netns del $C 2>/dev/null || true
  ip netns del $S 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
lab_pair $C $S 10.80.0
mkdir -p "$WORK/www/v2/blobs"
head -c 16384 /dev/urandom > "$WORK/www/v2/blobs/layer"
cat > "$WORK/nginx.conf" <<NGX
worker_processes 1;
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK; uwsgi_temp_path $WORK; scgi_temp_path $WORK;
  server {
    listen 10.80.0.2:80;
    root $WORK/www;
    location = /v2/ { add_header Www-Authenticate 'Bearer realm="http://10.80.0.2/token",service="soak"' always; return 401; }
    location = /token { default_type application/json; return 200 '{"token":"x"}'; }
  }
}
NGX
ip netns exec $S nginx -c "$WORK/nginx.conf"
cat > "$WORK/mix.lua" <<'LUA'
local paths = {"/v2/blobs/layer", "/v2/", "/token", "/v2/missing"}
local n = 0
request = function()
  n = n + 1
  local hdr = {}
  if n % 2 == 0 then hdr["Connection"] = "close" end
  return wrk.format("GET", paths[(n % #paths) + 1], hdr)
end
LUA
if ((DELAY > 0)); then printf 'delay = function() return %d end\n' "$DELAY" >> "$WORK/mix.lua"; fi
ip netns exec $C "$BIN" watch -i eth0 --format ndjson --duration "$DUR" > "$WORK/watch.out" 2>"$WORK/watch.err" &
WATCH=$!
sleep 1
PID=$(pgrep -P $WATCH -f "capdiag watch" || echo $WATCH)
PID=$(pgrep -f "$BIN watch -i eth0" | head -1)
echo "time_s,rss_kib" > "$WORK/rss.csv"
( t=0; while kill -0 "$PID" 2>/dev/null; do
    echo "$t,$(awk '/VmRSS/ {print $2}' /proc/$PID/status 2>/dev/null)" >> "$WORK/rss.csv"; sleep 5; t=$((t + 5)); done ) &
ip netns exec $C wrk -t1 -c"$CONNS" -d"$((DUR - 3))s" -s "$WORK/mix.lua" http://10.80.0.2/ > "$WORK/wrk.out" 2>&1 || true
wait $WATCH || true
sleep 1
echo "== wrk"; cat "$WORK/wrk.out"
echo "== capdiag findings"; grep -c '"type":"finding"' "$WORK/watch.out" || true
grep '"type":"finding"' "$WORK/watch.out" | cut -c1-400 || true
echo "== capdiag summary"; tail -1 "$WORK/watch.out"
echo "== RSS (KiB) every 5 s: first, min, max, last"
awk -F, 'NR>1 && $2!="" {v[n++]=$2; if(min==""||$2<min)min=$2; if($2>max)max=$2} END {print v[0], min, max, v[n-1]}' "$WORK/rss.csv"
cp "$WORK/rss.csv" /tmp/capdiag-soak-rss.csv
echo "(samples in /tmp/capdiag-soak-rss.csv)"
