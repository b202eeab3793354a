#!/usr/bin/env bash
# Records the TLS samples with key logs (samples/tls-keys/): HTTPS captures that come with the
# client's SSLKEYLOGFILE, for decryption. Everything runs between two network namespaces this
# script creates and removes (10.89.0.0/24 exists only inside them; no default route). The
# server namespace runs nginx 1.22 (OpenSSL 3) as the TLS front of everything, with EC P-256
# certificates from a throwaway CA made here (a good one for registry.lab, s3.lab and auth.lab;
# one for registry.lab that expired in 2020, made under faketime; one for other.lab); behind it,
# on loopback, distribution (Debian's docker-registry) and s3s-fs (the S3 server of
# record-registry-samples.sh). The client runs curl 7.88 (OpenSSL, `SSLKEYLOGFILE`), `openssl
# s_client -keylogfile` or a Go program (below); tcpdump records on the client's veth (Ethernet,
# offloads off, `-s 0`).
# The server's addresses, all on port 443:
#   10.89.0.2 registry.lab    nginx -> distribution on S3 storage (https://s3.lab, which the
#                             registry resolves to 10.89.0.3)
#   10.89.0.3 s3.lab          nginx -> s3s-fs, passing the client's Host (SigV4 works)
#   10.89.0.4 s3.lab          nginx -> s3s-fs with nginx's default `Host: $proxy_host`, which
#                             breaks every presigned signature (another path to S3)
#   10.89.0.5 registry.lab    nginx -> distribution with token auth, realm https://auth.lab/token
#   10.89.0.6 auth.lab        the realm: nftables drops every TCP segment to it
#   10.89.0.7 registry.lab    nginx serving registry-like paths (GET /v2/, a manifest, a 292-byte
#                             config blob, a 20 KB blob), session cache, no session tickets
#   10.89.0.8 registry.lab    the same with session tickets
#   10.89.0.9 registry.lab    the same with `ssl_ecdh_curve prime256v1` only
#   10.89.0.10 registry.lab   the same with `listen ... ssl http2`
#   10.89.0.11 registry.lab   the same paths with the certificate for other.lab
#   10.89.0.12 registry.lab   the same paths with the certificate that expired in 2020
# Each capture NAME.pcap has its key log NAME.keys (only that capture's connections):
#  - presigned-403-tls13.pcap: curl -L (TLS 1.3): GET blob -> 307 to a presigned S3 URL, the
#    GET of that URL reaches S3 by the Host-rewriting front: 403 SignatureDoesNotMatch;
#  - presigned-redirect-healthy-tls13.pcap: the same through the front that keeps Host: 307,
#    then 200 with the blob (healthy counterpart);
#  - presigned-403-tls13-dsb.pcapng: presigned-403-tls13.pcap with its key log embedded
#    (`editcap --inject-secrets`, a Decryption Secrets Block): decrypts without a .keys file;
#  - auth-realm-unreachable-tls12.pcap: curl (TLS 1.2, ECDHE-ECDSA-AES128-GCM-SHA256) requests
#    a manifest: 401 with a Bearer realm; then curl to the realm: SYNs never answered;
#  - healthy-tls13-{aes128,aes256,chacha}.pcap, healthy-tls12-{aes128,aes256,chacha}.pcap:
#    one keep-alive connection, four GETs (/v2/, manifest, config blob, 20 KB blob), each
#    answered 200, with TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384,
#    TLS_CHACHA20_POLY1305_SHA256, ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES256-GCM-SHA384,
#    ECDHE-ECDSA-CHACHA20-POLY1305;
#  - hello-retry-tls13.pcap: curl's first key_share (X25519) refused by a P-256-only server:
#    HelloRetryRequest, second ClientHello, then two GETs answered 200;
#  - resumed-tls12.pcap: two connections (`Connection: close`), the second resumes the first's
#    session by session id (abbreviated handshake, no Certificate);
#  - resumed-ticket-tls12.pcap: the same by session ticket, with openssl s_client (curl offers
#    no session ticket under TLS 1.2): the first connection gets a NewSessionTicket, the second
#    offers it (`-sess_out`, `-sess_in`) and resumes;
#  - resumed-tls13.pcap: curl, TLS 1.3, two connections (`Connection: close`): the second
#    resumes with a PSK from the first's NewSessionTicket (pre_shared_key, no Certificate);
#  - key-update-tls13.pcap: openssl s_client: GET /v2/ -> 200, a KeyUpdate (update_requested:
#    the server updates its keys too), GET manifest -> 200 under the new keys;
#  - h2-tls13.pcap: curl --http2 (ALPN h2), three GETs multiplexed on one connection;
#  - name-mismatch-curl-tls13.pcap: curl (TLS 1.3, trusting the CA) to registry.lab, answered
#    with the certificate for other.lab: the handshake completes, curl checks the name and
#    closes (encrypted close_notify) before any request;
#  - untrusted-curl-tls13.pcap: curl (TLS 1.3) not trusting the CA (no --cacert): OpenSSL's
#    plaintext unknown_ca alert, even under TLS 1.3; the certificate (encrypted) decrypts with
#    the key log (the handshake secrets are logged before the certificate is checked);
#  - expired-curl-tls13.pcap: curl (TLS 1.3, trusting the CA) to the certificate that expired
#    in 2020: plaintext certificate_expired alert, the certificate decrypts with the key log;
#  - untrusted-go-tls13.pcap: a Go crypto/tls client (Debian's golang-go, a small program built
#    here, `tls.Config{KeyLogWriter, ServerName: "registry.lab", MinVersion: TLS 1.3}`), not
#    trusting the CA, GET https://registry.lab/v2/: Go answers the server's flight with its
#    ChangeCipherSpec and an encrypted bad_certificate alert (fatal) in one segment, then closes;
#    the alert and the certificate decrypt with the key log (Go logs both handshake secrets).
# Run as root: scripts/record-tls-key-samples.sh [OUTDIR]   (default samples/tls-keys)
# ONLY="NAME..." (names without .pcap, space or comma separated) records and checks only those
# captures and leaves the others in OUTDIR as they are, e.g.
#   ONLY=untrusted-go-tls13 scripts/record-tls-key-samples.sh
# (presigned-403-tls13-dsb is remade whenever presigned-403-tls13 is recorded).
set -euo pipefail
DIR=$(realpath -m "${1:-$(dirname "$0")/../samples/tls-keys}")
mkdir -p "$DIR"
. "$(dirname "$0")/lab.sh"
lab_install tcpdump curl ip nginx docker-registry skopeo openssl ethtool jq tshark faketime
command -v nft >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables >/dev/null; }
command -v editcap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wireshark-common >/dev/null; }
ONLY=${ONLY:-}
wanted() { [[ -z $ONLY || " ${ONLY//,/ } " == *" $1 "* ]]; }
if wanted untrusted-go-tls13; then
  command -v go >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null; }
fi
# s3s-fs as record-registry-samples.sh gets it
S3S_VERSION=0.14.1
S3S_ROOT=${S3S_ROOT:-/opt/s3s}
S3S_BIN=$S3S_ROOT/bin/s3s-fs
if [[ ! -x $S3S_BIN ]]; then
  command -v cargo >/dev/null || { echo "cargo is needed to build s3s-fs" >&2; exit 1; }
  (cd / && cargo install --locked s3s-fs --version "$S3S_VERSION" --features binary --root "$S3S_ROOT") \
    || (cd / && cargo install s3s-fs --version "$S3S_VERSION" --features binary --root "$S3S_ROOT")
fi

C=capkeys-c; S=capkeys-s; P=10.89.0
BUCKET=capdiag
ACCESS_KEY=CAPDIAGACCESSKEY0001
SECRET_KEY=capdiag-secret-key-not-a-real-secret-0001
WORK=$(mktemp -d)
cleanup() { lab_cleanup "$WORK" $C $S; }
trap cleanup EXIT
lab_pair $C $S $P
for a in 3 4 5 6 7 8 9 10 11 12; do ip -n $S addr add "$P.$a/24" dev eth0; done
lab_offloads_off $C $S
ip netns exec $S nft -f - <<NFT
table inet capkeys {
  chain input {
    type filter hook input priority 0; policy accept;
    ip daddr $P.6 meta l4proto tcp drop
  }
}
NFT
chmod 755 "$WORK"
ENV=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8)

# The throwaway CA and the server certificates (EC P-256): srv for all the names, expired (for
# registry.lab, 30 days from 2020-01-01) and other (for other.lab).
cd "$WORK"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=capdiag lab CA" -out ca.crt 2>/dev/null
key srv.key
openssl req -new -key srv.key -subj "/CN=registry.lab" -out srv.csr 2>/dev/null
printf 'subjectAltName=DNS:registry.lab,DNS:s3.lab,DNS:auth.lab\nextendedKeyUsage=serverAuth\n' >srv.ext
openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 365 \
  -extfile srv.ext -out srv.crt 2>/dev/null
cert() { # NAME CN [FAKETIME] [DAYS]
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$2" >"$1.ext"
  ${3:+faketime "$3"} openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -sha256 -days "${4:-365}" -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}
cert expired registry.lab "2020-01-01 00:00:00" 30
cert other other.lab
chmod 644 ./*.key ./*.crt
cd - >/dev/null

# The image: lab/small:1 in skopeo's dir: layout, and the files nginx serves at registry paths
# (the 20 KB blob is pseudo-random but the same on every run).
lab_image "$WORK/image"
LAYER=$(jq -r '.layers[0].digest' "$WORK/image/manifest.json")
CONFIG=$(jq -r '.config.digest' "$WORK/image/manifest.json")
mkdir -p "$WORK/www/manifests" "$WORK/www/blobs"
cp "$WORK/image/manifest.json" "$WORK/www/manifests/1"
cp "$WORK/image/${CONFIG#sha256:}" "$WORK/www/blobs/$CONFIG"
head -c 20480 /dev/zero | openssl enc -aes-128-ctr -nosalt -K 00112233445566778899aabbccddeeff -iv 0 \
  -out "$WORK/big" 2>/dev/null
BIG=sha256:$(sha256sum "$WORK/big" | cut -d' ' -f1)
mv "$WORK/big" "$WORK/www/blobs/$BIG"
chmod -R a+rX "$WORK/www"

# The bucket: the image pushed once through a registry on filesystem storage (s3s-fs does not
# implement ListMultipartUploads, which the s3 driver needs to push), its tree then served by
# s3s-fs as the bucket (same keys).
lab_registry $S "$WORK/seed" 127.0.0.1:5002
for _ in $(seq 50); do ip netns exec $S curl -fs -o /dev/null http://127.0.0.1:5002/v2/ && break; sleep 0.2; done
ip netns exec $S "${ENV[@]}" skopeo --insecure-policy copy --quiet --dest-tls-verify=false \
  "dir:$WORK/image" docker://127.0.0.1:5002/lab/small:1
kill "$(cat "$WORK/seed.pid")"; rm -f "$WORK/seed.pid"
mkdir -p "$WORK/s3data"
mv "$WORK/seed/data" "$WORK/s3data/$BUCKET"
ip netns exec $S "${ENV[@]}" RUST_LOG=info NO_COLOR=1 "$S3S_BIN" --host 127.0.0.1 --port 9000 \
  --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" "$WORK/s3data" >"$WORK/s3s.log" 2>&1 &
echo $! >"$WORK/s3s.pid"

# Names in the server namespace (for the registry, a Go program): s3.lab is the front that
# keeps Host. A hosts file bound over /etc/hosts in the registry's own mount namespace.
printf '127.0.0.1 localhost\n%s.3 s3.lab\n' $P >"$WORK/hosts"
registry() { # NAME ADDR [REALM]: distribution on 127.0.0.1 in the server namespace
  local name=$1 addr=$2 realm=${3:-} d=$WORK/$1
  mkdir -p "$d"
  {
    printf 'version: 0.1\nlog:\n  level: info\nstorage:\n'
    if [[ -z $realm ]]; then
      cat <<YML
  s3:
    accesskey: $ACCESS_KEY
    secretkey: $SECRET_KEY
    region: us-east-1
    regionendpoint: https://s3.lab
    bucket: $BUCKET
    secure: true
    v4auth: true
  redirect:
    disable: false
YML
    else
      printf '  filesystem:\n    rootdirectory: %s\n' "$d/data"
    fi
    cat <<YML
http:
  addr: $addr
  secret: capdiag-lab-http-secret
health:
  storagedriver:
    enabled: false
YML
    if [[ -n $realm ]]; then
      printf 'auth:\n  token:\n    realm: %s\n    service: capdiag-registry\n    issuer: capdiag-token-issuer\n    rootcertbundle: %s\n' \
        "$realm" "$WORK/ca.crt"
    fi
  } >"$d.yml"
  ip netns exec $S unshare -m sh -c "mount --bind '$WORK/hosts' /etc/hosts && exec \"\$@\"" sh \
    "${ENV[@]}" SSL_CERT_FILE="$WORK/ca.crt" docker-registry serve "$d.yml" >"$d.log" 2>&1 &
  echo $! >"$d.pid"
}
registry reg-s3 127.0.0.1:5000
registry reg-auth 127.0.0.1:5001 https://auth.lab/token

# nginx: every TLS front.
mkdir -p "$WORK/nginx"; chmod 777 "$WORK/nginx"
tls() { # ADDR [LISTEN OPTIONS] [CERTIFICATE: srv, expired, other]
  cat <<CONF
    listen $1:443 ssl ${2:-};
    ssl_certificate $WORK/${3:-srv}.crt;
    ssl_certificate_key $WORK/${3:-srv}.key;
    ssl_protocols TLSv1.2 TLSv1.3;
CONF
}
static() { # the registry-like paths
  cat <<CONF
    location = /v2/ {
      add_header Docker-Distribution-Api-Version registry/2.0;
      default_type application/json;
      return 200 "{}";
    }
    location /v2/lab/small/manifests/ {
      alias $WORK/www/manifests/;
      default_type application/vnd.docker.distribution.manifest.v2+json;
    }
    location /v2/lab/small/blobs/ {
      alias $WORK/www/blobs/;
      default_type application/octet-stream;
    }
CONF
}
proxy() { # UPSTREAM [HOST HEADER]
  cat <<CONF
    client_max_body_size 0;
    location / {
      proxy_pass http://$1;
      proxy_http_version 1.1;
      ${2:+proxy_set_header Host $2;}
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
CONF
}
cat >"$WORK/nginx.conf" <<CONF
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log;
worker_processes 1;
events { worker_connections 64; }
http {
  access_log $WORK/nginx/access.log;
  client_body_temp_path $WORK/nginx;
  proxy_temp_path $WORK/nginx;
  fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx;
  scgi_temp_path $WORK/nginx;
  ssl_session_cache shared:capkeys:1m;
  server {
$(tls $P.2)
$(proxy 127.0.0.1:5000 "\$http_host")
  }
  server {
$(tls $P.3)
$(proxy 127.0.0.1:9000 "\$http_host")
  }
  server {
$(tls $P.4)
$(proxy 127.0.0.1:9000)
  }
  server {
$(tls $P.5)
$(proxy 127.0.0.1:5001 "\$http_host")
  }
  server {
$(tls $P.7)
    ssl_session_tickets off;
$(static)
  }
  server {
$(tls $P.8)
    ssl_session_tickets on;
$(static)
  }
  server {
$(tls $P.9)
    ssl_ecdh_curve prime256v1;
$(static)
  }
  server {
$(tls $P.10 http2)
$(static)
  }
  server {
$(tls $P.11 "" other)
$(static)
  }
  server {
$(tls $P.12 "" expired)
$(static)
  }
}
CONF
ip netns exec $S nginx -c "$WORK/nginx.conf"

# The client: curl trusting the CA, every name resolved by --resolve.
client() { # KEYLOG COMMAND...
  local keys=$1; shift
  ip netns exec $C "${ENV[@]}" SSLKEYLOGFILE="$keys" "$@"
}
CURL=(curl -sS --max-time 10 --cacert "$WORK/ca.crt")
for u in "$P.2 https://registry.lab/v2/" "$P.5 https://registry.lab/v2/" "$P.3 https://s3.lab/" "$P.7 https://registry.lab/v2/"; do
  for _ in $(seq 50); do
    code=$(client /dev/null "${CURL[@]}" -o /dev/null -w '%{http_code}' --resolve "registry.lab:443:${u%% *}" \
      --resolve "s3.lab:443:${u%% *}" "${u#* }" 2>/dev/null || true)
    [[ $code =~ ^[2-4] ]] && break
    sleep 0.2
  done
done

declare -A RECORDED=()
record() { # NAME COMMAND...: the command gets SSLKEYLOGFILE=$DIR/NAME.keys (only if wanted)
  local name=$1; shift
  wanted "$name" || return 0
  RECORDED[$name]=1
  rm -f "$DIR/$name.keys"
  : >"$WORK/tcpdump.log" # lab_capture_start waits for "listening on" in it: not the last capture's
  lab_capture_start $C eth0 tcp "$DIR/$name.pcap" "$WORK/tcpdump.log"
  "$@" >"$WORK/$name.out" 2>&1 || true
  lab_capture_stop "$WORK/tcpdump.log"
  chmod 644 "$DIR/$name.pcap" "$DIR/$name.keys"
  echo "$name: $(tail -c 300 "$WORK/$name.out" | tr '\n' ' ')" >&2
}
at() { echo --resolve "registry.lab:443:$P.$1"; }
ACCEPT='Accept: application/vnd.docker.distribution.manifest.v2+json'
PULL=(/v2/ /v2/lab/small/manifests/1 "/v2/lab/small/blobs/$CONFIG" "/v2/lab/small/blobs/$BIG")
urls() { local p; for p in "$@"; do printf 'https://registry.lab%s\n' "$p"; done; }
mapfile -t PULL_URLS < <(urls "${PULL[@]}")

presigned() { # S3 address
  client "$KEYS" "${CURL[@]}" -v -L -o /dev/null $(at 2) --resolve "s3.lab:443:$1" \
    "https://registry.lab/v2/lab/small/blobs/$LAYER"
}
KEYS=$DIR/presigned-redirect-healthy-tls13.keys record presigned-redirect-healthy-tls13 presigned $P.3
KEYS=$DIR/presigned-403-tls13.keys record presigned-403-tls13 presigned $P.4

auth() {
  local keys=$DIR/auth-realm-unreachable-tls12.keys hdrs realm service scope
  hdrs=$(client "$keys" "${CURL[@]}" --tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-GCM-SHA256 -D - -o /dev/null \
    -H "$ACCEPT" $(at 5) https://registry.lab/v2/lab/small/manifests/1 | tr -d '\r')
  echo "$hdrs"
  realm=$(sed -n 's/^[Ww]ww-[Aa]uthenticate: Bearer .*realm="\([^"]*\)".*/\1/p' <<<"$hdrs")
  service=$(sed -n 's/^[Ww]ww-[Aa]uthenticate: .*service="\([^"]*\)".*/\1/p' <<<"$hdrs")
  scope=$(sed -n 's/^[Ww]ww-[Aa]uthenticate: .*scope="\([^"]*\)".*/\1/p' <<<"$hdrs")
  client "$keys" "${CURL[@]}" -v --tls-max 1.2 --connect-timeout 4 --resolve auth.lab:443:$P.6 \
    "$realm?service=$service&scope=$scope"
}
record auth-realm-unreachable-tls12 auth

pull() { # NAME CURL OPTIONS...
  local name=$1; shift
  client "$DIR/$name.keys" "${CURL[@]}" -v -o /dev/null -o /dev/null -o /dev/null -o /dev/null \
    -H "$ACCEPT" $(at 7) "$@" "${PULL_URLS[@]}"
}
for s in aes128:TLS_AES_128_GCM_SHA256 aes256:TLS_AES_256_GCM_SHA384 chacha:TLS_CHACHA20_POLY1305_SHA256; do
  record "healthy-tls13-${s%%:*}" pull "healthy-tls13-${s%%:*}" --tlsv1.3 --tls13-ciphers "${s#*:}"
done
for s in aes128:ECDHE-ECDSA-AES128-GCM-SHA256 aes256:ECDHE-ECDSA-AES256-GCM-SHA384 chacha:ECDHE-ECDSA-CHACHA20-POLY1305; do
  record "healthy-tls12-${s%%:*}" pull "healthy-tls12-${s%%:*}" --tlsv1.2 --tls-max 1.2 --ciphers "${s#*:}"
done

hrr() {
  client "$DIR/hello-retry-tls13.keys" "${CURL[@]}" -v --tlsv1.3 --curves X25519:P-256 -o /dev/null -o /dev/null \
    $(at 9) https://registry.lab/v2/ https://registry.lab/v2/lab/small/manifests/1
}
record hello-retry-tls13 hrr

resumed() { # NAME ADDRESS TLS-VERSION-OPTIONS...
  local name=$1 addr=$2; shift 2
  client "$DIR/$name.keys" "${CURL[@]}" -v "$@" -H 'Connection: close' -o /dev/null -o /dev/null \
    $(at "$addr") https://registry.lab/v2/ https://registry.lab/v2/lab/small/manifests/1
}
record resumed-tls12 resumed resumed-tls12 7 --tls-max 1.2
record resumed-tls13 resumed resumed-tls13 8 --tlsv1.3
sclient() { # ADDRESS OPTIONS...: openssl s_client to registry.lab, trusting the CA
  local addr=$1; shift
  ip netns exec $C "${ENV[@]}" openssl s_client -connect "$P.$addr:443" -servername registry.lab \
    -CAfile "$WORK/ca.crt" -verify_return_error -crlf "$@"
}
ticket() {
  local keys=$DIR/resumed-ticket-tls12.keys
  rm -f "$WORK/session.pem"
  printf 'GET /v2/ HTTP/1.1\nHost: registry.lab\nConnection: close\n\n' \
    | sclient 8 -tls1_2 -ign_eof -keylogfile "$keys" -sess_out "$WORK/session.pem"
  printf 'GET /v2/lab/small/manifests/1 HTTP/1.1\nHost: registry.lab\nConnection: close\n\n' \
    | sclient 8 -tls1_2 -ign_eof -keylogfile "$keys" -sess_in "$WORK/session.pem"
}
record resumed-ticket-tls12 ticket

keyupdate() {
  {
    printf 'GET /v2/ HTTP/1.1\nHost: registry.lab\n\n'; sleep 1
    printf 'K\n'; sleep 1
    printf 'GET /v2/lab/small/manifests/1 HTTP/1.1\nHost: registry.lab\nConnection: close\n\n'; sleep 2
  } | sclient 7 -tls1_3 -keylogfile "$DIR/key-update-tls13.keys"
}
record key-update-tls13 keyupdate

h2() {
  client "$DIR/h2-tls13.keys" "${CURL[@]}" -v --http2 -o /dev/null -o /dev/null -o /dev/null \
    $(at 10) "${PULL_URLS[@]:0:3}"
}
record h2-tls13 h2

badcert() { # NAME ADDRESS [CURL OPTIONS]...: one TLS 1.3 connection that fails on the certificate
  local name=$1 addr=$2; shift 2
  client "$DIR/$name.keys" curl -sS -v --max-time 10 --tlsv1.3 "$@" $(at "$addr") https://registry.lab/v2/
}
record name-mismatch-curl-tls13 badcert name-mismatch-curl-tls13 11 --cacert "$WORK/ca.crt"
record untrusted-curl-tls13 badcert untrusted-curl-tls13 7
record expired-curl-tls13 badcert expired-curl-tls13 12 --cacert "$WORK/ca.crt"

# A Go crypto/tls client (standard library only, built here with nothing fetched): one GET to
# ADDR with ServerName registry.lab, TLS 1.3 only, the system roots (the CA is not among them),
# its key log in $SSLKEYLOGFILE.
if wanted untrusted-go-tls13; then
  mkdir -p "$WORK/go"
  cat >"$WORK/go/main.go" <<'GO'
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// usage: gotls ADDR URL
func main() {
	addr, url := os.Args[1], os.Args[2]
	f, err := os.OpenFile(os.Getenv("SSLKEYLOGFILE"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer f.Close()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{KeyLogWriter: f, ServerName: "registry.lab", MinVersion: tls.VersionTLS13},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, addr)
			},
			DisableKeepAlives: true,
		},
	}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%s %s\n", resp.Status, body)
}
GO
  (cd "$WORK/go" && "${ENV[@]}" GOCACHE="$WORK/go/cache" GOPATH="$WORK/go/path" GOTOOLCHAIN=local GOPROXY=off \
    GOFLAGS= GO111MODULE=off CGO_ENABLED=0 go build -o "$WORK/go/gotls" main.go)
fi
gotls() { # NAME ADDRESS
  client "$DIR/$1.keys" "$WORK/go/gotls" "$P.$2:443" https://registry.lab/v2/
}
record untrusted-go-tls13 gotls untrusted-go-tls13 7

# The key log embedded in a pcapng (Decryption Secrets Block).
if wanted presigned-403-tls13 || wanted presigned-403-tls13-dsb; then
  RECORDED[presigned-403-tls13-dsb]=1
  rm -f "$DIR/presigned-403-tls13-dsb.pcapng"
  editcap --inject-secrets "tls,$DIR/presigned-403-tls13.keys" "$DIR/presigned-403-tls13.pcap" \
    "$DIR/presigned-403-tls13-dsb.pcapng"
  chmod 644 "$DIR/presigned-403-tls13-dsb.pcapng"
fi

# Checks: every capture decrypts with its key log (tshark 4.0: all the HTTP messages expected,
# no record that fails to decrypt, nothing malformed); the embedded secrets work alone; the
# resumed connections really resumed; the certificate failures show their certificate only with
# the key log, and their alert. With ONLY, only the captures recorded in this run.
declare -A HTTP=([presigned-403-tls13]=4 [presigned-redirect-healthy-tls13]=4 [auth-realm-unreachable-tls12]=2
  [hello-retry-tls13]=4 [resumed-tls12]=4 [resumed-tls13]=4 [resumed-ticket-tls12]=4 [key-update-tls13]=4
  [h2-tls13]=6 [name-mismatch-curl-tls13]=0 [untrusted-curl-tls13]=0 [expired-curl-tls13]=0 [untrusted-go-tls13]=0)
fail=0
bad() { echo "CHECK FAILED: $*" >&2; fail=1; }
for n in ${ONLY//,/ }; do
  [[ -n ${RECORDED[$n]:-} ]] || bad "ONLY: no capture named $n"
done
for f in "$DIR"/*.pcap; do
  n=$(basename "$f" .pcap)
  [[ -n ${RECORDED[$n]:-} ]] || continue
  k=(-o "tls.keylog_file:$DIR/$n.keys")
  echo "## $n.pcap ($(stat -c %s "$f") bytes, $(capinfos -c -M "$f" | awk -F: '/Number of packets/{gsub(/ /,"",$2); print $2}') frames)" >&2
  echo "ServerHello: frame, version, suite, supported_version, session id" >&2
  tshark -n -r "$f" "${k[@]}" -Y tls.handshake.type==2 -T fields -e frame.number -e tls.handshake.version \
    -e tls.handshake.ciphersuite -e tls.handshake.extensions.supported_version -e tls.handshake.session_id >&2 2>/dev/null
  tshark -n -2 -r "$f" "${k[@]}" -Y 'http or http2.type==1' -T fields -e frame.number -e tcp.stream \
    -e http.request.method -e http.request.uri -e http.response.code -e http2.headers.method -e http2.headers.path \
    -e http2.headers.status >"$WORK/$n.http" 2>/dev/null
  cut -c1-160 "$WORK/$n.http" >&2
  [[ $(wc -l <"$WORK/$n.http") == "${HTTP[$n]:-8}" ]] || bad "$n: $(wc -l <"$WORK/$n.http") HTTP messages, not ${HTTP[$n]:-8}"
  tshark -n -2 -r "$f" "${k[@]}" -o "tls.debug_file:$WORK/$n.tlsdebug" >/dev/null 2>&1
  ! grep -q 'ssl_decrypt_record failed\|mac failed' "$WORK/$n.tlsdebug" || bad "$n: records that fail to decrypt"
  [[ -z $(tshark -n -2 -r "$f" "${k[@]}" -Y '_ws.malformed or (tls and _ws.expert.severity >= "Warning")' 2>/dev/null) ]] \
    || bad "$n: malformed frames or TLS warnings"
done
d=$DIR/presigned-403-tls13-dsb.pcapng
if [[ -n ${RECORDED[presigned-403-tls13-dsb]:-} ]]; then
  capinfos "$d" | grep -q 'Number of decryption secrets in file: 1' || bad "$d: no decryption secrets block"
  tshark -n -2 -r "$d" -Y http -T fields -e frame.number -e tcp.stream -e http.request.method -e http.request.uri \
    -e http.response.code 2>/dev/null | cmp -s - <(cut -f1-5 "$WORK/presigned-403-tls13.http") || bad "$d: not as its .pcap with the key log"
fi
for n in resumed-tls12 resumed-ticket-tls12 resumed-tls13; do
  [[ -n ${RECORDED[$n]:-} ]] || continue
  k=(-o "tls.keylog_file:$DIR/$n.keys")
  certs=$(tshark -n -2 -r "$DIR/$n.pcap" "${k[@]}" -Y tls.handshake.type==11 2>/dev/null | wc -l)
  hellos=$(tshark -n -r "$DIR/$n.pcap" "${k[@]}" -Y tls.handshake.type==2 2>/dev/null | wc -l)
  [[ $certs == 1 && $hellos == 2 ]] || bad "$n: $hellos ServerHellos, $certs Certificates: not resumed"
done
if [[ -n ${RECORDED[resumed-ticket-tls12]:-} ]]; then
  tshark -n -r "$DIR/resumed-ticket-tls12.pcap" -Y 'tls.handshake.type==1 and tcp.stream==1' -T fields \
    -e tls.handshake.extension.type -e tls.handshake.extension.len 2>/dev/null \
    | awk -F'\t' '{n = split($1, t, ","); split($2, l, ","); for (i = 1; i <= n; i++) if (t[i] == 35 && l[i] > 0) ok = 1} END {exit !ok}' \
    || bad "resumed-ticket-tls12: no session ticket offered"
fi
[[ -z ${RECORDED[resumed-tls13]:-} \
  || -n $(tshark -n -r "$DIR/resumed-tls13.pcap" -Y 'tls.handshake.type==2 and tcp.stream==1 and tls.handshake.extension.type==41' 2>/dev/null) ]] \
  || bad "resumed-tls13: no pre_shared_key accepted"
[[ -z ${RECORDED[key-update-tls13]:-} \
  || -n $(tshark -n -2 -r "$DIR/key-update-tls13.pcap" -o "tls.keylog_file:$DIR/key-update-tls13.keys" -Y 'tls.handshake.type==24' 2>/dev/null) ]] \
  || bad "key-update-tls13: no KeyUpdate"
# NAME, the certificate's name, the client's first alert (description, level), and whether that
# alert is encrypted (readable only with the key log) or plaintext.
for t in "name-mismatch-curl-tls13 other.lab 0 1 encrypted" "untrusted-curl-tls13 registry.lab 48 2 plaintext" \
  "expired-curl-tls13 registry.lab 45 2 plaintext" "untrusted-go-tls13 registry.lab 42 2 encrypted"; do
  read -r n name alert level how <<<"$t"
  [[ -n ${RECORDED[$n]:-} ]] || continue
  k=(-o "tls.keylog_file:$DIR/$n.keys")
  echo "## $n: Certificate (frame, names, SANs), then alerts (frame, source, level, description)" >&2
  tshark -n -r "$DIR/$n.pcap" "${k[@]}" -Y tls.handshake.type==11 -T fields -e frame.number \
    -e x509sat.uTF8String -e x509ce.dNSName 2>/dev/null | tee "$WORK/$n.cert" >&2
  tshark -n -r "$DIR/$n.pcap" "${k[@]}" -Y tls.alert_message -T fields -e frame.number -e ip.src \
    -e tls.alert_message.level -e tls.alert_message.desc 2>/dev/null | tee "$WORK/$n.alert" >&2
  [[ $(wc -l <"$WORK/$n.cert") == 1 ]] && cut -f3 "$WORK/$n.cert" | tr , '\n' | grep -qx "$name" \
    || bad "$n: no Certificate for $name with the key log"
  [[ -z $(tshark -n -r "$DIR/$n.pcap" -Y tls.handshake.type==11 2>/dev/null) ]] \
    || bad "$n: the Certificate is readable without the key log (not TLS 1.3?)"
  [[ $(tshark -n -r "$DIR/$n.pcap" -Y tls.handshake.type==2 -T fields -e tls.handshake.extensions.supported_version \
    2>/dev/null) == 0x0304 ]] || bad "$n: not TLS 1.3"
  [[ $(tshark -n -r "$DIR/$n.pcap" -T fields -e tcp.stream 2>/dev/null | sort -u | wc -l) == 1 ]] \
    || bad "$n: not one connection"
  [[ $(cut -f2-4 "$WORK/$n.alert" | head -1 | tr '\t' ' ') == "$P.1 $level $alert" ]] \
    || bad "$n: the client's first alert is not $alert (level $level)"
  nokeys=$(tshark -n -r "$DIR/$n.pcap" -Y "tls.alert_message and ip.src==$P.1" 2>/dev/null | wc -l)
  if [[ $how == encrypted ]]; then
    [[ $nokeys == 0 ]] || bad "$n: the client's alert is readable without the key log"
  else
    [[ $nokeys != 0 ]] || bad "$n: the client's alert is not in plaintext"
  fi
done
if [[ -n ${RECORDED[untrusted-go-tls13]:-} ]]; then
  n=untrusted-go-tls13
  echo "## $n: key log labels: $(cut -d' ' -f1 "$DIR/$n.keys" | sort | uniq -c | tr -s ' \n' ' ')" >&2
  for l in CLIENT_HANDSHAKE_TRAFFIC_SECRET SERVER_HANDSHAKE_TRAFFIC_SECRET; do
    grep -q "^$l " "$DIR/$n.keys" || bad "$n: no $l in the key log"
  done
  # Go's ChangeCipherSpec and its encrypted alert (one 19-byte record: 2 bytes, type, 16-byte tag)
  # in one segment.
  [[ $(tshark -n -r "$DIR/$n.pcap" -Y "ip.src==$P.1 and tls.change_cipher_spec and tls.record.length==19" 2>/dev/null | wc -l) == 1 ]] \
    || bad "$n: no ChangeCipherSpec with a 19-byte record in one segment"
fi
kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
ls -la "$DIR" >&2
exit $fail
