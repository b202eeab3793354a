#!/usr/bin/env bash
# Records two small samples between two network namespaces joined by a bridge (addresses
# 10.78.0.0/24, which exist only inside the namespaces this script creates and removes):
#  - samples/any-duplicates.pcap: HTTP captured with `tcpdump -i any` in the bridge's namespace,
#    where every frame is seen twice (entering the bridge on one port, leaving on the other);
#  - samples/tls-probe-400.pcap: a TLS ClientHello sent to a plain-HTTP server, which answers
#    400, captured on the client's interface (Ethernet).
# Run as root: scripts/record-lab-samples.sh [OUTDIR]
set -euo pipefail
DIR=$(realpath -m "${1:-$(dirname "$0")/../samples}")
OUT=$DIR/any-duplicates.pcap
for c in tcpdump curl python3 ip nginx; do command -v $c >/dev/null || { echo "needs $c" >&2; exit 2; }; done
SW=capdup-sw; A=capdup-a; B=capdup-b
WORK=$(mktemp -d)
cleanup() {
  [[ -f $WORK/srv.pid ]] && kill "$(cat "$WORK/srv.pid")" 2>/dev/null || true
  [[ -f $WORK/nginx.pid ]] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  [[ -f $WORK/tcpdump.pid ]] && kill "$(cat "$WORK/tcpdump.pid")" 2>/dev/null || true
  for n in $A $B $SW; do ip netns del $n 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
for n in $SW $A $B; do ip netns add $n; ip -n $n link set lo up; done
ip -n $SW link add br0 type bridge; ip -n $SW link set br0 up
for n in $A $B; do
  ip -n $SW link add p-$n type veth peer name eth0 netns $n
  ip -n $SW link set p-$n master br0 up
  ip -n $n link set eth0 up
done
ip -n $A addr add 10.78.0.1/24 dev eth0
ip -n $B addr add 10.78.0.2/24 dev eth0
mkdir -p "$WORK/www/v2"
printf '{"errors":[{"code":"UNAUTHORIZED"}]}\n' > "$WORK/www/v2/index.json"
( cd "$WORK/www" && exec ip netns exec $B python3 -m http.server 5000 --bind 10.78.0.2 ) >/dev/null 2>&1 &
echo $! > "$WORK/srv.pid"
for _ in $(seq 50); do ip netns exec $A curl -s -o /dev/null http://10.78.0.2:5000/ && break; sleep 0.1; done
ip netns exec $SW tcpdump -i any -s 0 -B 65536 -U --immediate-mode -w "$OUT" tcp port 5000 2>"$WORK/tcpdump.log" &
echo $! > "$WORK/tcpdump.pid"
for _ in $(seq 50); do grep -q "listening on" "$WORK/tcpdump.log" && break; sleep 0.1; done
ip netns exec $A curl -s -o /dev/null http://10.78.0.2:5000/v2/index.json
ip netns exec $A curl -s -o /dev/null http://10.78.0.2:5000/missing
sleep 0.5
kill -INT "$(cat "$WORK/tcpdump.pid")"; wait "$(cat "$WORK/tcpdump.pid")" 2>/dev/null || true
rm -f "$WORK/tcpdump.pid"
cat "$WORK/tcpdump.log" >&2

# A TLS client speaking to nginx's plain-HTTP port: nginx answers 400.
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx.conf" <<NGX
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log;
events {}
http {
  access_log off;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  server { listen 10.78.0.2:8080; location / { return 404; } }
}
NGX
ip netns exec $B nginx -c "$WORK/nginx.conf"
for _ in $(seq 50); do ip netns exec $A curl -s -o /dev/null http://10.78.0.2:8080/ && break; sleep 0.1; done
ip netns exec $A tcpdump -i eth0 -s 0 -B 65536 -U --immediate-mode -w "$DIR/tls-probe-400.pcap" tcp port 8080 2>"$WORK/tcpdump.log" &
echo $! > "$WORK/tcpdump.pid"
for _ in $(seq 50); do grep -q "listening on" "$WORK/tcpdump.log" && break; sleep 0.1; done
ip netns exec $A curl -sk -o /dev/null --max-time 5 https://10.78.0.2:8080/v2/ || true
sleep 0.5
kill -INT "$(cat "$WORK/tcpdump.pid")"; wait "$(cat "$WORK/tcpdump.pid")" 2>/dev/null || true
rm -f "$WORK/tcpdump.pid"
cat "$WORK/tcpdump.log" >&2
