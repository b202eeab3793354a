#!/usr/bin/env bash
# Records large, realistic HTTP captures for benchmarking, from real traffic (nginx serving,
# wrk requesting) on the loopback of a private network namespace. Nothing leaves the machine.
#
#   usage: sudo scripts/record-bench-captures.sh OUTDIR [MIX_BYTES] [SMALL_BYTES] [TLS_BYTES] [KEYS_BYTES]
#          (defaults: 1 GB each; an empty argument, '', keeps its default)
#
#   OUTDIR/http-mix.pcap    bulk: 16 keep-alive connections, objects 200 B..4 MiB, some 404/401
#   OUTDIR/http-small.pcap  small packets: many short connections (4 requests each), bodies <= 1 KiB,
#                           25% 4xx (HTML 404s, 401s with a Bearer realm)
#   OUTDIR/https-small.pcap the same requests over TLS (TLS 1.3, a self-signed EC certificate made
#                           here), 4 per connection: a handshake every few exchanges
#   OUTDIR/https-keys.pcap  TLS to be decrypted: TLS 1.3 with TLS_AES_128_GCM_SHA256 on port 443,
#                           16 keep-alive connections of up to 100 requests, the small requests
#                           mixed with bodies of 4 KiB..256 KiB (full-size records too)
#   OUTDIR/https-keys.keys  its NSS key log (SSLKEYLOGFILE format), written by wrk through
#                           scripts/sslkeylog.c (LD_PRELOAD); it covers every connection in the
#                           capture (the capture is stopped before the load)
#
#   CAPTURES="https-keys" records only the captures named (default: all four), e.g.
#   sudo CAPTURES=https-keys scripts/record-bench-captures.sh /work/bench '' '' '' 500000000
#
# Needs Debian packages: tcpdump nginx wrk iproute2 ethtool openssl, and gcc libssl-dev for the
# key log library (installed when missing).
set -euo pipefail
OUT=$(realpath -m "${1:?usage: record-bench-captures.sh OUTDIR [MIX_BYTES] [SMALL_BYTES] [TLS_BYTES] [KEYS_BYTES]}")
MIX=${2:-1000000000}
SMALL=${3:-1000000000}
TLS=${4:-1000000000}
KEYS=${5:-1000000000}
CAPTURES=${CAPTURES:-http-mix http-small https-small https-keys}
for c in $CAPTURES; do
  case $c in http-mix|http-small|https-small|https-keys) ;;
    *) echo "record-bench-captures.sh: unknown capture '$c' in CAPTURES (http-mix http-small https-small https-keys)" >&2; exit 2;;
  esac
done
wanted() { [[ " $CAPTURES " == *" $1 "* ]]; }
NS=capbench$$
WORK=$(mktemp -d /tmp/capbench.XXXXXX)
# nginx's workers run as an unprivileged user: without this they cannot enter the 0700 directory
# mktemp makes, and every file request is answered 403.
chmod 755 "$WORK"
mkdir -p "$OUT" "$WORK/www/s" "$WORK/logs" "$WORK/tmp"

need=()
for c in tcpdump nginx wrk ip ethtool openssl; do command -v $c >/dev/null || need+=($c); done
if ((${#need[@]})); then
  pk=(); for c in "${need[@]}"; do case $c in ip) pk+=(iproute2);; *) pk+=($c);; esac; done
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pk[@]}" >/dev/null
fi
if wanted https-keys && ! { command -v cc >/dev/null && [[ -f /usr/include/openssl/ssl.h ]]; }; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev libssl-dev >/dev/null
fi

cleanup() {
  [[ -f $WORK/nginx.pid ]] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

python3 - "$WORK/www/s" <<'PY'
import random, sys, os
d = sys.argv[1]
random.seed(42)
words = b"lorem ipsum dolor sit amet registry blob manifest layer sha256 digest ".split()
for n, s in {"200.html": 200, "1k.json": 1024, "4k.html": 4096, "16k.js": 16384, "64k.css": 65536,
             "256k.bin": 262144, "1m.bin": 1048576, "4m.bin": 4194304}.items():
    if n.endswith(".bin"):
        data = random.randbytes(s)
    else:
        out = bytearray()
        while len(out) < s:
            out += random.choice(words) + b" "
        data = bytes(out[:s])
    open(os.path.join(d, n), "wb").write(data)
open(os.path.join(d, "err.xml"), "w").write(
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key '
    'does not exist.</Message><Key>docker/registry/v2/blobs/sha256/ab/abcdef/data</Key><RequestId>'
    'tx000000000000000000001-0065a1b2c3-1234-default</RequestId></Error>\n')
open(os.path.join(d, "manifest.json"), "w").write(
    '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":'
    '{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"sha256:'
    + "0" * 64 + '"},"layers":[]}\n')
PY

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -subj "/CN=bench.lab" -addext "subjectAltName=DNS:bench.lab,IP:127.0.0.1" \
  -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
chmod 644 "$WORK/tls.key"
cat > "$WORK/nginx.conf" <<NGX
worker_processes 1;
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/tmp/body;
    proxy_temp_path $WORK/tmp/proxy;
    fastcgi_temp_path $WORK/tmp/fastcgi;
    uwsgi_temp_path $WORK/tmp/uwsgi;
    scgi_temp_path $WORK/tmp/scgi;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    server {
        listen 127.0.0.1:80;
        keepalive_timeout 65;
        keepalive_requests 100;
        root $WORK/www;
        location /s/ { }
        location = /v2/ { add_header Docker-Distribution-Api-Version registry/2.0; return 401 '{"errors":[{"code":"UNAUTHORIZED"}]}'; }
    }
    server {
        listen 127.0.0.1:8080;
        keepalive_timeout 5;
        keepalive_requests 4;
        root $WORK/www;
        location /s/ { }
        location = /v2/ { add_header Www-Authenticate 'Bearer realm="http://127.0.0.1:8200/service/token",service="harbor-registry"' always; return 401 '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'; }
    }
    server {
        listen 127.0.0.1:8443 ssl;
        ssl_certificate $WORK/tls.crt;
        ssl_certificate_key $WORK/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        keepalive_timeout 5;
        keepalive_requests 4;
        root $WORK/www;
        location /s/ { }
        location = /v2/ { return 401 '{"errors":[{"code":"UNAUTHORIZED"}]}'; }
    }
    server {
        # https-keys: one suite, AES-GCM, so a decrypting reader has one cipher to run; port 443,
        # which tshark reads as TLS (and the HTTP inside) without being told.
        listen 127.0.0.1:443 ssl;
        ssl_certificate $WORK/tls.crt;
        ssl_certificate_key $WORK/tls.key;
        ssl_protocols TLSv1.3;
        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;
        keepalive_timeout 65;
        keepalive_requests 100;
        root $WORK/www;
        location /s/ { }
        location = /v2/ { return 401 '{"errors":[{"code":"UNAUTHORIZED"}]}'; }
    }
}
NGX

cat > "$WORK/mix.lua" <<'LUA'
local paths = {}
local function add(p, w) for i=1,w do paths[#paths+1] = p end end
add("/s/200.html", 30); add("/s/1k.json", 20); add("/s/4k.html", 15); add("/s/16k.js", 10)
add("/s/64k.css", 8); add("/s/256k.bin", 5); add("/s/1m.bin", 3); add("/s/4m.bin", 1)
add("/s/missing-blob", 6); add("/v2/", 2); add("/s/manifest.json", 4)
local hdrs = {
  ["User-Agent"] = "docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.1 os/linux arch/amd64",
  ["Accept"] = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, */*",
  ["Authorization"] = "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9." .. string.rep("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo", 8) .. ".c2lnbmF0dXJl",
  ["Accept-Encoding"] = "gzip",
}
math.randomseed(12345)
request = function() return wrk.format("GET", paths[math.random(#paths)], hdrs) end
LUA
cat > "$WORK/small.lua" <<'LUA'
local paths = {}
local function add(p, w) for i=1,w do paths[#paths+1] = p end end
add("/s/200.html", 30); add("/s/1k.json", 20); add("/s/err.xml", 10); add("/s/manifest.json", 15)
add("/s/missing-blob", 15); add("/v2/", 10)
local hdrs = {
  ["User-Agent"] = "docker/24.0.7 go/go1.20.10 kernel/6.1 os/linux arch/amd64",
  ["Accept"] = "application/vnd.docker.distribution.manifest.v2+json, */*",
}
math.randomseed(6789)
request = function() return wrk.format("GET", paths[math.random(#paths)], hdrs) end
LUA
# https-keys: the small requests, plus bodies large enough to fill 16 KiB TLS records (about 8 KB
# of body per exchange on average, most of the bytes in full-size records).
cat > "$WORK/keys.lua" <<'LUA'
local paths = {}
local function add(p, w) for i=1,w do paths[#paths+1] = p end end
add("/s/200.html", 30); add("/s/1k.json", 20); add("/s/err.xml", 10); add("/s/manifest.json", 15)
add("/s/missing-blob", 15); add("/v2/", 10)
add("/s/4k.html", 10); add("/s/16k.js", 8); add("/s/64k.css", 4); add("/s/256k.bin", 2)
local hdrs = {
  ["User-Agent"] = "docker/24.0.7 go/go1.20.10 kernel/6.1 os/linux arch/amd64",
  ["Accept"] = "application/vnd.docker.distribution.manifest.v2+json, */*",
}
math.randomseed(2468)
request = function() return wrk.format("GET", paths[math.random(#paths)], hdrs) end
LUA
if wanted https-keys; then
  cc -shared -fPIC -O2 -o "$WORK/sslkeylog.so" "$(dirname "$(realpath "$0")")/sslkeylog.c" -ldl -lssl
fi

ip netns add "$NS"
ip netns exec "$NS" ip link set lo mtu 1500
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ethtool -K lo tso off gso off gro off >/dev/null 2>&1 || true
ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
ip netns exec "$NS" nginx -c "$WORK/nginx.conf"

# Both servers must serve the files before anything is recorded.
probe() {   # probe PORT: the status line nginx answers GET /s/200.html with
  ip netns exec "$NS" bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" &&
    printf "GET /s/200.html HTTP/1.0\r\nHost: x\r\n\r\n" >&3 && head -n 1 <&3 | tr -d "\r"' _ "$1"
}
for port in 80 8080; do
  for _ in 1 2 3 4 5 6 7 8 9 10; do line=$(probe $port 2>/dev/null) && break; sleep 0.2; done
  [[ ${line:-} == "HTTP/1.1 200 OK" ]] ||
    { echo "record-bench-captures.sh: nginx on port $port answered '${line:-nothing}', not 200" >&2; exit 1; }
done
if wanted https-keys; then
  # The keyed server must serve files, and with the one suite the key log is recorded for.
  probe_tls() {   # the status line and the suite nginx on 443 answers GET /s/200.html with
    ip netns exec "$NS" bash -c 'printf "GET /s/200.html HTTP/1.0\r\nHost: x\r\n\r\n" |
      openssl s_client -connect 127.0.0.1:443 -brief -ign_eof 2>&1 |
      grep -a -m2 "^HTTP/\|^Ciphersuite:" | tr -d "\r" | paste -sd " "'
  }
  for _ in 1 2 3 4 5 6 7 8 9 10; do line=$(probe_tls 2>/dev/null) && [[ -n $line ]] && break; sleep 0.2; done
  [[ ${line:-} == "Ciphersuite: TLS_AES_128_GCM_SHA256 HTTP/1.1 200 OK" ]] ||
    { echo "record-bench-captures.sh: nginx on port 443 answered '${line:-nothing}', not TLS_AES_128_GCM_SHA256 and 200" >&2; exit 1; }
fi

nginx_cpus() {   # nginx_cpus LIST: run nginx's master and worker on these CPUs
  local master; master=$(cat "$WORK/nginx.pid")
  for p in $master $(ps -o pid= --ppid "$master"); do taskset -pc "$1" "$p" >/dev/null; done
}

record() {   # record FILE BYTES [KEYLOG] -- wrk args  (with KEYLOG, wrk writes its TLS secrets there)
  local file=$1 target=$2 keys=; shift 2
  [[ $1 == -- ]] || { keys=$1; shift; }
  shift
  local client=(wrk)
  rm -f "$file"
  if [[ -n $keys ]]; then
    rm -f "$keys"
    # wrk and nginx on one CPU. On two, the segments of one response go out from both at once
    # (nginx's send on one, the sends the peer's ACKs release on the other), and the loopback's
    # tap records them interleaved: a few out-of-order segments every thousand frames, on which
    # tshark (without tcp.reassemble_out_of_order) loses its place in a TLS stream and decrypts
    # none of the rest of it. On one CPU the capture holds every segment in order.
    nginx_cpus 0
    client=(taskset -c 0 env LD_PRELOAD="$WORK/sslkeylog.so" SSLKEYLOGFILE="$keys" wrk)
  fi
  ip netns exec "$NS" tcpdump -i lo -s 0 -B 524288 -w "$file" 2>"$WORK/logs/tcpdump.log" &
  local tp=$!
  # Start the load only once tcpdump listens (allocating its 512 MiB buffer can take more than a
  # second), so that every connection is recorded from its SYN: a TLS connection whose
  # ClientHello is missing cannot be decrypted, its client random unknown.
  for _ in $(seq 100); do grep -q 'listening on' "$WORK/logs/tcpdump.log" 2>/dev/null && break; sleep 0.1; done
  sleep 0.2
  ip netns exec "$NS" "${client[@]}" "$@" >"$WORK/logs/wrk.log" 2>&1 &
  local wp=$!
  while kill -0 $wp 2>/dev/null; do
    [[ $(stat -c %s "$file" 2>/dev/null || echo 0) -ge $target ]] && break
    sleep 0.2
  done
  if [[ -z $keys ]]; then
    kill -TERM $wp 2>/dev/null || true
    wait $wp 2>/dev/null || true
    sleep 0.5
    kill -INT $tp; wait $tp || true
  else
    # The capture stops first, the load a second later: every connection the capture holds
    # has then finished its handshake, and its secrets are in the key log (stopping wrk first
    # would leave the last connections' ClientHellos in the capture without their secrets).
    # SIGINT makes wrk print its summary.
    kill -INT $tp; wait $tp || true
    sleep 1
    kill -INT $wp 2>/dev/null || true
    wait $wp 2>/dev/null || true
  fi
  echo "$(basename "$file"): $(stat -c %s "$file") bytes; $(grep -h 'packets captured\|dropped by kernel' "$WORK/logs/tcpdump.log" | tr '\n' ' ')"
  echo "  wrk: $(grep -h 'requests in\|Non-2xx' "$WORK/logs/wrk.log" | sed 's/^ *//' | tr '\n' ' ')"
  if [[ -n $keys ]]; then
    nginx_cpus "0-$(($(nproc) - 1))"
    echo "$(basename "$keys"): $(grep -c '^CLIENT_TRAFFIC_SECRET_0 ' "$keys" || true) connections' secrets, $(wc -l <"$keys") lines"
  fi
}
if wanted http-mix; then record "$OUT/http-mix.pcap" "$MIX" -- -t1 -c16 -d300s -s "$WORK/mix.lua" http://127.0.0.1:80/; fi
if wanted http-small; then record "$OUT/http-small.pcap" "$SMALL" -- -t1 -c64 -d600s -s "$WORK/small.lua" http://127.0.0.1:8080/; fi
if wanted https-small; then record "$OUT/https-small.pcap" "$TLS" -- -t1 -c64 -d600s -s "$WORK/small.lua" https://127.0.0.1:8443/; fi
if wanted https-keys; then
  record "$OUT/https-keys.pcap" "$KEYS" "$OUT/https-keys.keys" -- -t1 -c16 -d600s -s "$WORK/keys.lua" https://127.0.0.1:443/
fi
