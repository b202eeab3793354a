#!/usr/bin/env bash
# Records the samples of `blob-upload-unknown`, from real software, between two network
# namespaces this script creates and removes (10.86.0.0/24 exists only inside them). The server
# namespace runs two distribution registries (Debian's docker-registry, filesystem storage) on
# 127.0.0.1:5001 and :5002 behind nginx (round robin, no sticky sessions) on 10.86.0.2:5000;
# curl in the client namespace starts a blob upload (POST) and PATCHes to the Location it gets,
# as docker does; tcpdump records `-i any` in the server namespace (Linux cooked v2), so the
# capture shows both the client's requests and nginx's to each replica.
#  - samples/replicas/upload-invalid.pcap: the replicas have different `http.secret`s: the
#    PATCH reaches the other replica, which cannot verify the upload's `_state` token;
#  - samples/replicas/upload-unknown.pcap: the same secret, but each replica its own storage: the
#    other replica has no such upload;
#  - samples/replicas/upload-shared.pcap (healthy): the same secret and the same storage: the
#    PATCH and PUT succeed on either replica.
# nginx is reloaded before each capture, so its round robin starts again with the first replica.
# Run as root: scripts/record-replica-samples.sh [OUTDIR]   (default samples/replicas)
set -euo pipefail
DIR=$(realpath -m "${1:-$(dirname "$0")/../samples/replicas}")
mkdir -p "$DIR"
. "$(dirname "$0")/lab.sh"
lab_install tcpdump curl ip nginx docker-registry ethtool
C=caprep-c; S=caprep-s
WORK=$(mktemp -d)
cleanup() { lab_cleanup "$WORK" $C $S; }
trap cleanup EXIT
lab_pair $C $S 10.86.0
lab_offloads_off $C $S
mkdir -p "$WORK/nginx"
chmod 755 "$WORK"; chmod 777 "$WORK/nginx"
cat > "$WORK/nginx.conf" <<NGX
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log;
events {}
http {
  access_log off;
  client_max_body_size 0;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  upstream registry { server 127.0.0.1:5001; server 127.0.0.1:5002; }
  server {
    listen 10.86.0.2:5000;
    location / { proxy_pass http://registry; proxy_set_header Host \$http_host; }
  }
}
NGX
ip netns exec $S nginx -c "$WORK/nginx.conf"

# replicas SECRET_A SECRET_B SHARED: (re)starts the two registries.
replicas() {
  local i secret root
  for f in "$WORK"/*.rpid; do [[ -f $f ]] && { kill "$(cat "$f")" 2>/dev/null || true; rm -f "$f"; }; done
  sleep 0.3
  for i in 1 2; do
    if [[ $i == 1 ]]; then secret=$1; else secret=$2; fi
    if [[ $3 == shared ]]; then root=$WORK/data-shared; else root=$WORK/data-$i-$RANDOM; fi
    cat > "$WORK/r$i.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $root
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:500$i
  secret: $secret
health:
  storagedriver:
    enabled: false
YML
    ip netns exec $S docker-registry serve "$WORK/r$i.yml" >"$WORK/r$i.log" 2>&1 &
    echo $! > "$WORK/r$i.rpid"
  done
  for i in 1 2; do
    for _ in $(seq 100); do ip netns exec $S curl -s -o /dev/null "http://127.0.0.1:500$i/v2/" && break; sleep 0.1; done
  done
  # A fresh worker: its round robin starts with the first replica.
  ip netns exec $S nginx -c "$WORK/nginx.conf" -s reload
  sleep 0.5
}

head -c 4096 /dev/urandom > "$WORK/blob"
DIGEST=sha256:$(sha256sum "$WORK/blob" | cut -d' ' -f1)

# upload OUT: POST, then PATCH to the Location, then PUT to the next Location, captured.
upload() {
  lab_capture_start $S any "tcp" "$1" "$WORK/tcpdump.log"
  local loc code
  loc=$(ip netns exec $C curl -s -D - -o /dev/null -X POST \
        "http://10.86.0.2:5000/v2/lab/small/blobs/uploads/" | awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')
  case $loc in http*) ;; *) loc="http://10.86.0.2:5000$loc" ;; esac
  loc2=$(ip netns exec $C curl -s -D - -o /dev/null -X PATCH -H 'Content-Type: application/octet-stream' \
         --data-binary @"$WORK/blob" "$loc" | tee "$WORK/patch.txt" | awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')
  head -1 "$WORK/patch.txt" >&2
  if [[ -n $loc2 ]]; then
    case $loc2 in http*) ;; *) loc2="http://10.86.0.2:5000$loc2" ;; esac
    sep='?'; [[ $loc2 == *\?* ]] && sep='&'
    code=$(ip netns exec $C curl -s -o /dev/null -w '%{http_code}' -X PUT "$loc2${sep}digest=$DIGEST")
    echo "PUT $code" >&2
  fi
  lab_capture_stop "$WORK/tcpdump.log"
}

replicas secret-of-replica-one secret-of-replica-two separate
upload "$DIR/upload-invalid.pcap"
replicas shared-secret shared-secret separate
upload "$DIR/upload-unknown.pcap"
replicas shared-secret shared-secret shared
upload "$DIR/upload-shared.pcap"
