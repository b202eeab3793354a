#!/usr/bin/env bash
# Records the samples of the connection rules, from real software, between two network
# namespaces this script creates and removes (10.84.0.0/24 and fd84::/64 exist only inside
# them). The server namespace runs distribution (Debian's docker-registry) behind nginx, and
# nftables rules that drop or reject some ports; the client runs curl and skopeo; tcpdump
# records on the client's interface (Ethernet).
#  - samples/connect/refused.pcap: `curl --retry 2 --retry-connrefused` to a port where nothing
#    listens: three attempts (0, 1, 3 s), each SYN answered by a reset;
#  - samples/connect/unanswered.pcap: curl to a port nftables drops (`drop`), 6 s connect timeout:
#    SYNs retransmitted, no answer;
#  - samples/connect/icmp-unreachable.pcap: curl to a port nftables rejects (`reject`: ICMP port
#    unreachable, as kube-proxy answers for a Service without endpoints);
#  - samples/connect/fallback.pcap (healthy): curl to a name that resolves to an IPv6 address
#    where nothing listens and to the IPv4 address where nginx does: the IPv6 SYN is reset,
#    curl falls back to IPv4 and gets 200;
#  - samples/connect/upload-location-refused.pcap: skopeo pushes through nginx with
#    `proxy_set_header Host $host` (the port is dropped): the registry's upload Location is
#    `http://10.84.0.2/v2/...` (port 80, where nothing listens), the PATCH's SYN is reset;
#  - samples/connect/upload-location-unanswered.pcap: skopeo pushes to a registry whose
#    `http.host` names an internal address (10.84.0.9, dropped by nftables): the PATCH's SYNs
#    are never answered (skopeo is stopped after 8 s);
#  - samples/connect/upload-healthy.pcap: the same push through nginx with
#    `proxy_set_header Host $http_host`: the upload completes (healthy control).
# Run as root: scripts/record-connect-samples.sh [OUTDIR]   (default samples/connect)
set -euo pipefail
DIR=$(realpath -m "${1:-$(dirname "$0")/../samples/connect}")
mkdir -p "$DIR"
. "$(dirname "$0")/lab.sh"
lab_install tcpdump curl ip nginx docker-registry skopeo nft ethtool
C=capcon-c; S=capcon-s
WORK=$(mktemp -d)
cleanup() { lab_cleanup "$WORK" $C $S; }
trap cleanup EXIT
lab_pair $C $S 10.84.0
for ns in $C $S; do
  ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.eth0.disable_ipv6=0
done
lab_offloads_off $C $S
ip -n $C addr add fd84::1/64 dev eth0 nodad
ip -n $S addr add fd84::2/64 dev eth0 nodad
# The registry's internal address, which clients cannot reach.
ip -n $S addr add 10.84.0.9/24 dev eth0
ip netns exec $S nft -f - <<'NFT'
table inet lab {
  chain input {
    type filter hook input priority 0;
    ip daddr 10.84.0.9 tcp dport 5000 drop
    tcp dport 5003 drop
    tcp dport 5004 reject
  }
}
NFT

mkdir -p "$WORK/nginx" "$WORK/image"
chmod 755 "$WORK"; chmod 777 "$WORK/nginx"
registry() { # NAME PORT [HOST]
  mkdir -p "$WORK/$1"
  cat > "$WORK/$1/config.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/$1/data
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$2
  secret: capdiag-lab-http-secret
${3:+  host: $3}
health:
  storagedriver:
    enabled: false
YML
  ip netns exec $S docker-registry serve "$WORK/$1/config.yml" >"$WORK/$1.log" 2>&1 &
  echo $! > "$WORK/$1.pid"
}
registry reg 5001
registry internal 5011 http://10.84.0.9:5000
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
  # \$host drops the port the client used: the registry's Locations name port 80.
  server {
    listen 10.84.0.2:5000;
    location / { proxy_pass http://127.0.0.1:5001; proxy_set_header Host \$host; }
  }
  # As the registry's docs ask: the Host as the client sent it.
  server {
    listen 10.84.0.2:5002;
    location / { proxy_pass http://127.0.0.1:5001; proxy_set_header Host \$http_host; }
  }
  # A registry configured with its internal address as http.host.
  server {
    listen 10.84.0.2:5006;
    location / { proxy_pass http://127.0.0.1:5011; proxy_set_header Host \$http_host; }
  }
}
NGX
ip netns exec $S nginx -c "$WORK/nginx.conf"
for _ in $(seq 100); do
  ip netns exec $C curl -s -o /dev/null http://10.84.0.2:5002/v2/ \
    && ip netns exec $C curl -s -o /dev/null http://10.84.0.2:5006/v2/ && break
  sleep 0.1
done
lab_image "$WORK/image"

start() { lab_capture_start $C eth0 "$1" "$2" "$WORK/tcpdump.log"; }
stop() { lab_capture_stop "$WORK/tcpdump.log"; }
fetch() { ip netns exec $C curl -s -o /dev/null -w '%{http_code}\n' "$@" || true; }
push() { # PORT [SECONDS]
  ip netns exec $C timeout "${2:-60}" skopeo --insecure-policy copy --quiet --dest-tls-verify=false \
    --retry-times 0 "dir:$WORK/image" "docker://10.84.0.2:$1/lab/small:1" 2>&1 | tail -1 || true
}

start "tcp port 5005" "$DIR/refused.pcap"
fetch --retry 2 --retry-connrefused http://10.84.0.2:5005/v2/
stop
start "tcp port 5003" "$DIR/unanswered.pcap"
fetch --connect-timeout 6 http://10.84.0.2:5003/v2/
stop
start "tcp port 5004 or icmp" "$DIR/icmp-unreachable.pcap"
fetch http://10.84.0.2:5004/v2/
stop
start "tcp port 5002" "$DIR/fallback.pcap"
fetch --resolve "registry.lab:5002:[fd84::2],10.84.0.2" http://registry.lab:5002/v2/
stop
start "tcp" "$DIR/upload-location-refused.pcap"
push 5000
stop
start "tcp" "$DIR/upload-location-unanswered.pcap"
push 5006 8
stop
start "tcp" "$DIR/upload-healthy.pcap"
push 5002
stop
