#!/usr/bin/env bash
# Records the path-MTU samples (samples/mtu/), from real software, between three network
# namespaces this script creates and removes (10.88.1.0/24 and 10.88.2.0/24 exist only inside
# them): a client, a server, and a router between them whose link towards the client has an
# MTU of 1450 (a VXLAN overlay's) while both ends keep 1500 and announce an MSS of 1460. A
# nftables rule in the router drops the ICMP "fragmentation needed" it sends back, which makes
# the path a black hole: the handshake, requests and small segments pass, full-size segments
# from the server vanish and the server is never told. Offloads are off, so the captures hold
# wire-size segments.
#
# The server runs distribution (Debian's docker-registry, Go) with TLS (an RSA 4096 certificate
# and its CA, so that the server's flight needs several full-size segments) and nginx with a
# 64 KiB file over plain HTTP. tcpdump records on the server's and the client's interface at
# once, so each run gives both capture points:
#  - tls-black-hole-{server,client}-side.pcap: skopeo (Go, as docker and containerd) inspects
#    an image over TLS: the server's Certificate flight never arrives, skopeo gives up after
#    Go's 10 s "TLS handshake timeout";
#  - http-black-hole-{server,client}-side.pcap: curl downloads the file over plain HTTP and gives
#    up after 8 s (`--max-time 8`): the answer's first full-size segment is retransmitted with
#    doubling gaps, never acknowledged;
#  - http-probing-recovers-server-side.pcap: the same with the server's
#    `net.ipv4.tcp_mtu_probing=1`: after a few timeouts Linux retries with smaller segments,
#    which get through, and the download completes late;
#  - http-icmp-healthy-{server,client}-side.pcap: the healthy control: the router's ICMP is
#    let through, the server lowers its segment size at once (path MTU discovery working);
#  - http-lossy-healthy-{server,client}-side.pcap: the other control: the path's MTU restored
#    and a fifth of the router's TCP packets to the client dropped at random (nftables): full-size
#    segments retransmitted, some more than once, and acknowledged at full size in the end
#    (loss, not a size the path refuses).
# Run as root: scripts/record-mtu-samples.sh [OUTDIR]   (default samples/mtu)
set -euo pipefail
DIR=$(realpath -m "${1:-$(dirname "$0")/../samples/mtu}")
mkdir -p "$DIR"
. "$(dirname "$0")/lab.sh"
lab_install tcpdump curl ip nginx docker-registry skopeo openssl ethtool nft
C=capmtu-c; R=capmtu-r; S=capmtu-s
WORK=$(mktemp -d)
cleanup() { lab_cleanup "$WORK" $C $R $S; }
trap cleanup EXIT
chmod 755 "$WORK"

# client eth0 (10.88.1.1) <-> router c0 (10.88.1.254, MTU 1450)
# router s0 (10.88.2.254) <-> server eth0 (10.88.2.2)
for ns in $C $R $S; do ip netns add $ns; ip -n $ns link set lo up; done
ip -n $C link add eth0 type veth peer name c0 netns $R
ip -n $S link add eth0 type veth peer name s0 netns $R
ip -n $C addr add 10.88.1.1/24 dev eth0
ip -n $R addr add 10.88.1.254/24 dev c0
ip -n $R addr add 10.88.2.254/24 dev s0
ip -n $S addr add 10.88.2.2/24 dev eth0
ip -n $R link set c0 mtu 1450
for l in "$C eth0" "$R c0" "$R s0" "$S eth0"; do
  set -- $l
  ip -n "$1" link set "$2" up
  ip netns exec "$1" ethtool -K "$2" tso off gso off gro off >/dev/null 2>&1 || true
done
ip -n $C route add default via 10.88.1.254
ip -n $S route add default via 10.88.2.254
ip netns exec $R sysctl -qw net.ipv4.ip_forward=1
black_hole() {
  ip netns exec $R nft -f - <<'NFT'
table inet capmtu {
  chain out {
    type filter hook output priority 0;
    icmp type destination-unreachable icmp code frag-needed drop
  }
}
NFT
}
heal() { ip netns exec $R nft delete table inet capmtu; }

# The CA and the server certificate (RSA 4096: a flight of several full-size segments).
cd "$WORK"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=capdiag lab CA" -out ca.crt 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out srv.key 2>/dev/null
openssl req -new -key srv.key -subj "/CN=registry.lab" -out srv.csr 2>/dev/null
printf 'subjectAltName=DNS:registry.lab,IP:10.88.2.2\nextendedKeyUsage=serverAuth\n' >srv.ext
openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 365 \
  -extfile srv.ext -out leaf.crt 2>/dev/null
cat leaf.crt ca.crt >srv.crt
chmod 644 ./*.key
cd - >/dev/null

# distribution with TLS, and nginx with a 64 KiB file (one port per recording, so that a
# connection an earlier recording left retransmitting stays out of the next).
mkdir -p "$WORK/www" "$WORK/nginx"; chmod 777 "$WORK/nginx"
lab_registry $S "$WORK/reg" 10.88.2.2:5443 "$WORK/srv.crt" "$WORK/srv.key"
head -c 65536 /dev/zero | tr '\0' 'b' >"$WORK/www/blob"
cat >"$WORK/nginx.conf" <<CONF
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log;
worker_processes 1;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx;
  proxy_temp_path $WORK/nginx;
  fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx;
  scgi_temp_path $WORK/nginx;
  server { listen 10.88.2.2:8080; listen 10.88.2.2:8081; listen 10.88.2.2:8082; listen 10.88.2.2:8083; root $WORK/www; }
}
CONF
ip netns exec $S nginx -c "$WORK/nginx.conf"
# Ready when distribution answers plain HTTP on its TLS port (a small 400: no full-size
# segment, so no ICMP teaches the server the path's MTU before the recordings).
for _ in $(seq 50); do
  ip netns exec $C curl -s -o /dev/null http://10.88.2.2:5443/ && break
  sleep 0.2
done

printf '127.0.0.1 localhost\n10.88.2.2 registry.lab\n' >"$WORK/hosts"
in_client() { ip netns exec $C unshare -m sh -c "mount --bind '$WORK/hosts' /etc/hosts && exec \"\$@\"" sh "$@"; }

# record NAME PORT SIDES COMMAND...: SIDES is "both" or "server".
record() {
  local name=$1 port=$2 sides=$3 t1 t2; shift 3
  ip -n $S route flush cache
  # ICMP errors about this port's packets only (the quoted TCP header's source port).
  local filter="tcp port $port or (icmp and icmp[28:2] == $port)"
  lab_capture_start $S eth0 "$filter" "$DIR/$name-server-side.pcap" "$WORK/s.log"
  t1=$LAB_TCPDUMP
  if [[ $sides == both ]]; then
    lab_capture_start $C eth0 "$filter" "$DIR/$name-client-side.pcap" "$WORK/c.log"
    t2=$LAB_TCPDUMP
  fi
  in_client "$@" >"$WORK/$name.out" 2>&1 || true
  sleep 1
  if [[ $sides == both ]]; then
    lab_capture_stop "$WORK/c.log"
  fi
  LAB_TCPDUMP=$t1 lab_capture_stop "$WORK/s.log"
  echo "$name: $(tail -c 300 "$WORK/$name.out" | tr '\n' ' ')" >&2
}

black_hole
mkdir -p "$WORK/certs.d"; cp "$WORK/ca.crt" "$WORK/certs.d/"
record tls-black-hole 5443 both skopeo inspect --retry-times 0 --cert-dir "$WORK/certs.d" \
  docker://registry.lab:5443/lab/small
record http-black-hole 8080 both curl -sS -o /dev/null --max-time 8 http://10.88.2.2:8080/blob
ip netns exec $S sysctl -qw net.ipv4.tcp_mtu_probing=1
record http-probing-recovers 8081 server curl -sS -o /dev/null --max-time 30 \
  -w 'got %{size_download} bytes in %{time_total} s\n' http://10.88.2.2:8081/blob
ip netns exec $S sysctl -qw net.ipv4.tcp_mtu_probing=0
heal
record http-icmp-healthy 8082 both curl -sS -o /dev/null --max-time 8 \
  -w 'got %{size_download} bytes in %{time_total} s\n' http://10.88.2.2:8082/blob
# A lossy path of full MTU: the router drops a fifth of the TCP packets it forwards to the
# client, at random.
ip -n $R link set c0 mtu 1500
ip netns exec $R nft -f - <<'NFT'
table inet capmtu {
  chain lossy {
    type filter hook forward priority 0;
    oifname "c0" meta l4proto tcp numgen random mod 5 == 0 drop
  }
}
NFT
record http-lossy-healthy 8083 both curl -sS -o /dev/null --max-time 30 \
  -w 'got %{size_download} bytes in %{time_total} s\n' http://10.88.2.2:8083/blob
ls -l "$DIR"
