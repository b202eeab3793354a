#!/usr/bin/env bash
# Records samples/any-duplicates.pcap: HTTP between two network namespaces joined by a bridge,
# captured with `tcpdump -i any` in the bridge's namespace, where every frame is seen twice
# (entering the bridge on one port, leaving on the other). Run as root; everything happens in
# namespaces this script creates (addresses 10.78.0.0/24), which it removes on exit.
set -euo pipefail
OUT=$(realpath -m "${1:-$(dirname "$0")/../samples/any-duplicates.pcap}")
for c in tcpdump curl python3 ip; do command -v $c >/dev/null || { echo "needs $c" >&2; exit 2; }; done
SW=capdup-sw; A=capdup-a; B=capdup-b
WORK=$(mktemp -d)
cleanup() {
  [[ -f $WORK/srv.pid ]] && kill "$(cat "$WORK/srv.pid")" 2>/dev/null || true
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
