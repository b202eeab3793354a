#!/usr/bin/env bash
# Records the samples of `transfer-reset`, from real software, between two network namespaces
# this script creates and removes (10.85.0.0/24 exists only inside them). nginx in the server
# namespace serves blobs (2 MiB, 256 KiB) at registry blob paths; curl downloads it in the client
# namespace (whose TCP receive buffer is kept small, 16 KiB, so that a stalled reader fills it
# at once); tcpdump records on the client's interface (Ethernet).
#  - samples/transfer/slow-reader-reset.pcap: curl (reading at 100 KB/s) is stopped (SIGSTOP)
#    0.3 s into the download, its window goes to zero; nginx's `send_timeout 2s` fires and, with
#    `reset_timedout_connection on`, nginx resets the connection mid-body;
#  - samples/transfer/silent-server.pcap: 0.3 s into a download limited to 100 KB/s, nftables in
#    the server namespace starts dropping the server's packets (a dead peer, or a middlebox);
#    curl (`--speed-limit 1000 --speed-time 3`) gives up and closes the connection mid-body;
#  - samples/transfer/complete.pcap (healthy): the same download at 1 MB/s, not disturbed.
# Run as root: scripts/record-transfer-samples.sh [OUTDIR]   (default samples/transfer)
set -euo pipefail
DIR=$(realpath -m "${1:-$(dirname "$0")/../samples/transfer}")
mkdir -p "$DIR"
. "$(dirname "$0")/lab.sh"
lab_install tcpdump curl ip nginx nft ethtool
C=captr-c; S=captr-s
WORK=$(mktemp -d)
cleanup() { lab_cleanup "$WORK" $C $S; }
trap cleanup EXIT
lab_pair $C $S 10.85.0
lab_offloads_off $C $S
ip netns exec $C sysctl -qw net.ipv4.tcp_rmem="4096 16384 16384"
mkdir -p "$WORK/nginx" "$WORK/blobs"
chmod 755 "$WORK"; chmod 777 "$WORK/nginx"
# A 2 MiB blob, more than nginx's socket buffer holds (so a stalled reader blocks nginx's
# writes, and its send_timeout runs); a 256 KiB one for the undisturbed download.
BLOB=sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b
SMALL=sha256:0f2dcd1e0c2d6e7d45ba1c9b0c0d26dc5e1f4b1be7b03ac2c24eb9bd1b8d4a71
head -c $((2 << 20)) /dev/zero | tr '\0' 'z' > "$WORK/blobs/$BLOB"
head -c $((256 << 10)) /dev/zero | tr '\0' 'z' > "$WORK/blobs/$SMALL"
chmod 644 "$WORK/blobs/"*
cat > "$WORK/nginx.conf" <<NGX
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log;
events {}
http {
  access_log off;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  send_timeout 2s;
  reset_timedout_connection on;
  server {
    listen 10.85.0.2:5000;
    location /v2/lab/small/blobs/ {
      default_type application/octet-stream;
      add_header Docker-Distribution-Api-Version registry/2.0 always;
      alias $WORK/blobs/;
    }
  }
}
NGX
ip netns exec $S nginx -c "$WORK/nginx.conf"
URL=http://10.85.0.2:5000/v2/lab/small/blobs/$BLOB
for _ in $(seq 100); do ip netns exec $C curl -s -o /dev/null -r 0-0 "$URL" && break; sleep 0.1; done

start() { lab_capture_start $C eth0 "tcp port 5000" "$1" "$WORK/tcpdump.log"; }
stop() { lab_capture_stop "$WORK/tcpdump.log"; }

start "$DIR/complete.pcap"
ip netns exec $C curl -s -o /dev/null -w '%{http_code} %{size_download}\n' --limit-rate 1m \
  "http://10.85.0.2:5000/v2/lab/small/blobs/$SMALL"
stop

start "$DIR/slow-reader-reset.pcap"
ip netns exec $C curl -s -o /dev/null --limit-rate 100k "$URL" & echo $! > "$WORK/curl.pid"
sleep 0.3
kill -STOP "$(cat "$WORK/curl.pid")"
sleep 4
stop
kill -CONT "$(cat "$WORK/curl.pid")"; wait "$(cat "$WORK/curl.pid")" 2>/dev/null || true; rm -f "$WORK/curl.pid"

start "$DIR/silent-server.pcap"
ip netns exec $C curl -s -o /dev/null --limit-rate 100k --speed-limit 1000 --speed-time 3 "$URL" &
echo $! > "$WORK/curl.pid"
sleep 0.3
ip netns exec $S nft -f - <<'NFT'
table inet lab {
  chain output {
    type filter hook output priority 0;
    tcp sport 5000 drop
  }
}
NFT
wait "$(cat "$WORK/curl.pid")" 2>/dev/null || true; rm -f "$WORK/curl.pid"
stop
ip netns exec $S nft delete table inet lab

