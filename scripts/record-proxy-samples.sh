#!/usr/bin/env bash
# Records the samples of the proxy rules, from real software, between two network namespaces
# this script creates and removes (10.83.0.0/24 exists only inside them):
#  - samples/proxy/body-too-large.pcap: a blob upload through an nginx reverse proxy with
#    `client_max_body_size 64k`: the client starts the upload (POST, 202 from the registry
#    through the proxy), then PATCHes 128 KiB; nginx answers 413 on the Content-Length header,
#    before the body is through;
#  - samples/proxy/body-within-limit.pcap: the same through a proxy with
#    `client_max_body_size 0`: the registry answers the PATCH 202 (healthy control);
#  - samples/proxy/rate-limited.pcap: six manifest GETs in a row through a proxy with
#    `limit_req` (1 request/s, burst 2, `limit_req_status 429`): the registry answers the first
#    ones 404 (no such manifest: an unpulled tag), the proxy refuses the rest 429;
#  - samples/proxy/not-rate-limited.pcap: the same six GETs through the proxy without the limit
#    (healthy control);
#  - samples/proxy/api-version-stripped.pcap: `GET /v2/` through a proxy that drops the
#    registry's `Docker-Distribution-Api-Version` header (`proxy_hide_header`);
#  - samples/proxy/api-version-kept.pcap: the same through the proxy that passes it (healthy);
#  - samples/proxy/bad-gateway.pcap: a manifest GET through a proxy whose upstream registry is
#    down (nothing listens on its port): nginx answers its HTML 502 (the healthy control is
#    not-rate-limited.pcap: the registry's own JSON 404s through a proxy).
# The registry is distribution (Debian's docker-registry) on the filesystem driver, behind
# nginx (Debian's), in the server namespace; curl in the client namespace; tcpdump on the
# client's interface (Ethernet). curl sends the body without waiting for 100 Continue, as
# docker's and containerd's Go clients do; how much of the body it sends before the 413 arrives
# depends on timing (the committed capture has 65,536 of 131,072 bytes).
# Run as root: scripts/record-proxy-samples.sh [OUTDIR]   (default samples/proxy)
set -euo pipefail
DIR=$(realpath -m "${1:-$(dirname "$0")/../samples/proxy}")
mkdir -p "$DIR"
. "$(dirname "$0")/lab.sh"
lab_install tcpdump curl ip nginx docker-registry
C=capprx-c; S=capprx-s
WORK=$(mktemp -d)
cleanup() { lab_cleanup "$WORK" $C $S; }
trap cleanup EXIT
lab_pair $C $S 10.83.0
lab_offloads_off $C $S

mkdir -p "$WORK/registry" "$WORK/nginx"
# nginx's workers (www-data) write request bodies they buffer under $WORK/nginx.
chmod 755 "$WORK"; chmod 777 "$WORK/nginx"
cat > "$WORK/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/registry/data
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:5001
  secret: capdiag-lab-http-secret
health:
  storagedriver:
    enabled: false
EOF
ip netns exec $S docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry.log" 2>&1 &
echo $! > "$WORK/registry.pid"
cat > "$WORK/nginx.conf" <<NGX
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log;
events {}
http {
  access_log off;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  # The ingress of the failing capture: the default-sized limit many installations keep.
  server {
    listen 10.83.0.2:5000;
    client_max_body_size 64k;
    location / { proxy_pass http://127.0.0.1:5001; proxy_set_header Host \$http_host; }
  }
  limit_req_zone \$binary_remote_addr zone=pulls:1m rate=1r/s;
  # An ingress that limits pulls per client, as Docker Hub and many mirrors do.
  server {
    listen 10.83.0.2:5004;
    location / {
      limit_req zone=pulls burst=2 nodelay;
      limit_req_status 429;
      proxy_pass http://127.0.0.1:5001; proxy_set_header Host \$http_host;
    }
  }
  # An ingress that drops the registry's version header.
  server {
    listen 10.83.0.2:5006;
    location / {
      proxy_hide_header Docker-Distribution-Api-Version;
      proxy_pass http://127.0.0.1:5001; proxy_set_header Host \$http_host;
    }
  }
  # An ingress whose upstream registry is down.
  server {
    listen 10.83.0.2:5008;
    location / { proxy_pass http://127.0.0.1:5999; proxy_set_header Host \$http_host; }
  }
  # The same ingress with the limit lifted, as the registry's docs ask.
  server {
    listen 10.83.0.2:5002;
    client_max_body_size 0;
    proxy_request_buffering off;
    location / { proxy_pass http://127.0.0.1:5001; proxy_set_header Host \$http_host; }
  }
}
NGX
ip netns exec $S nginx -c "$WORK/nginx.conf"
for _ in $(seq 100); do ip netns exec $C curl -s -o /dev/null http://10.83.0.2:5000/v2/ && break; sleep 0.1; done
head -c $((128 * 1024)) /dev/urandom > "$WORK/blob"

# capture_start PORT OUT: tcpdump on the client's interface, once it listens; capture_stop.
capture_start() { lab_capture_start $C eth0 "tcp port $1" "$2" "$WORK/tcpdump.log"; }
capture_stop() { lab_capture_stop "$WORK/tcpdump.log"; }

# upload PORT OUT: start an upload and PATCH the blob to it, captured.
upload() {
  local port=$1 out=$2
  capture_start "$port" "$out"
  local loc
  loc=$(ip netns exec $C curl -s -D - -o /dev/null -X POST \
        "http://10.83.0.2:$port/v2/lab/small/blobs/uploads/" | awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')
  case $loc in http*) ;; *) loc="http://10.83.0.2:$port$loc" ;; esac
  ip netns exec $C curl -s -o /dev/null -w '%{http_code}\n' -X PATCH \
    -H 'Content-Type: application/octet-stream' -H 'Expect:' --data-binary @"$WORK/blob" "$loc" || true
  capture_stop
}
upload 5000 "$DIR/body-too-large.pcap"
upload 5002 "$DIR/body-within-limit.pcap"

# pulls PORT OUT: six manifest GETs in a row, captured.
pulls() {
  local port=$1 out=$2
  capture_start "$port" "$out"
  for _ in 1 2 3 4 5 6; do
    ip netns exec $C curl -s -o /dev/null -w '%{http_code} ' \
      -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      "http://10.83.0.2:$port/v2/lab/small/manifests/1" || true
  done
  echo
  capture_stop
}
pulls 5004 "$DIR/rate-limited.pcap"
pulls 5002 "$DIR/not-rate-limited.pcap"

# ping PORT OUT: the API version check every client makes first, captured.
ping() {
  local port=$1 out=$2
  capture_start "$port" "$out"
  ip netns exec $C curl -s -o /dev/null -w '%{http_code}\n' "http://10.83.0.2:$port/v2/" || true
  capture_stop
}
ping 5006 "$DIR/api-version-stripped.pcap"
ping 5002 "$DIR/api-version-kept.pcap"

# get PORT PATH OUT: one GET as docker sends it, captured.
get() {
  local port=$1 path=$2 out=$3
  capture_start "$port" "$out"
  ip netns exec $C curl -s -o /dev/null -w '%{http_code}\n' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://10.83.0.2:$port$path" || true
  capture_stop
}
get 5008 /v2/lab/small/manifests/1 "$DIR/bad-gateway.pcap"
