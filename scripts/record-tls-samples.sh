#!/usr/bin/env bash
# Records the TLS samples (samples/tls/), from real software, between two network namespaces
# this script creates and removes (10.87.0.0/24 exists only inside them). The server namespace
# runs nginx (OpenSSL; TLS 1.2 and 1.3) with certificates from a throwaway CA made here, and
# distribution (Debian's docker-registry, a Go TLS server); the client runs curl (OpenSSL) and
# skopeo (Go, as docker and containerd); tcpdump records on the client's interface (Ethernet).
#  - healthy-tls13.pcap, healthy-tls12.pcap: curl trusting the CA (`--cacert`), TLS 1.3 and
#    `--tls-max 1.2`: established, 200 (healthy controls);
#  - untrusted-go-tls13.pcap: skopeo to nginx, the CA not trusted: Go sends its encrypted
#    bad_certificate alert right after the server's flight (TLS 1.3);
#  - untrusted-go-tls12.pcap: the same to an nginx port with TLS 1.2 only: plaintext
#    bad_certificate, the certificate visible;
#  - untrusted-curl.pcap: curl, the CA not trusted: OpenSSL's plaintext unknown_ca, even under
#    TLS 1.3;
#  - expired-curl-tls12.pcap: curl trusting the CA, TLS 1.2, a certificate that expired in 2020:
#    plaintext certificate_expired, the certificate visible;
#  - name-mismatch-curl.pcap: curl trusting the CA to a certificate for another name (TLS 1.3):
#    the handshake completes, curl checks the name afterwards and closes before any request;
#  - name-mismatch-go-tls12.pcap: skopeo to a TLS 1.2 port with the other name's certificate:
#    plaintext bad_certificate, the certificate (and its SANs) visible;
#  - plain-http-to-nginx-tls.pcap: curl `http://` to nginx's TLS port: nginx's 400 "The plain
#    HTTP request was sent to HTTPS port";
#  - plain-http-to-go-tls.pcap: curl `http://` to distribution's TLS port: Go's 400 "Client sent
#    an HTTP request to an HTTPS server.";
#  - probe-then-http.pcap: skopeo `--tls-verify=false` to a registry without TLS (an "insecure
#    registry"): Go's ClientHello is answered by Go's plain 400, and skopeo falls back to plain
#    HTTP, which works (the probe every docker/containerd client makes).
# Run as root: scripts/record-tls-samples.sh [OUTDIR]   (default samples/tls)
set -euo pipefail
DIR=$(realpath -m "${1:-$(dirname "$0")/../samples/tls}")
mkdir -p "$DIR"
. "$(dirname "$0")/lab.sh"
lab_install tcpdump curl ip nginx docker-registry skopeo openssl faketime ethtool
C=captls-c; S=captls-s
WORK=$(mktemp -d)
cleanup() { lab_cleanup "$WORK" $C $S; }
trap cleanup EXIT
lab_pair $C $S 10.87.0
lab_offloads_off $C $S
chmod 755 "$WORK"

# The throwaway CA and the server certificates (EC P-256: small flights).
cd "$WORK"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=capdiag lab CA" -out ca.crt 2>/dev/null
cert() { # NAME SAN [FAKETIME] [DAYS]
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=${2#DNS:}" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$2" >"$1.ext"
  ${3:+faketime "$3"} openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -sha256 -days "${4:-365}" -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}
cert good "DNS:registry.lab,IP:10.87.0.2"
cert expired "DNS:registry.lab,IP:10.87.0.2" "2020-01-01 00:00:00" 30
cert other "DNS:other.lab"
chmod 644 ./*.key
cd - >/dev/null

mkdir -p "$WORK/nginx"; chmod 777 "$WORK/nginx"
server() { # PORT CERT PROTOCOLS
  cat <<CONF
  server {
    listen 10.87.0.2:$1 ssl;
    ssl_certificate $WORK/$2.crt;
    ssl_certificate_key $WORK/$2.key;
    ssl_protocols $3;
    location / { return 200 "capdiag lab\n"; }
  }
CONF
}
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
$(server 8443 good "TLSv1.2 TLSv1.3")
$(server 8444 expired "TLSv1.2 TLSv1.3")
$(server 8445 other "TLSv1.2 TLSv1.3")
$(server 8447 good "TLSv1.2")
$(server 8448 other "TLSv1.2")
}
CONF
ip netns exec $S nginx -c "$WORK/nginx.conf"

# distribution with TLS: a Go TLS server.
lab_registry $S "$WORK/reg" 10.87.0.2:5443 "$WORK/good.crt" "$WORK/good.key"
# and without: an insecure registry.
lab_registry $S "$WORK/plain" 10.87.0.2:5000
for _ in $(seq 50); do
  ip netns exec $C curl -s -o /dev/null --cacert "$WORK/ca.crt" --resolve registry.lab:5443:10.87.0.2 https://registry.lab:5443/v2/ && break
  sleep 0.2
done

# Names for the client: registry.lab and other.lab are 10.87.0.2 (a hosts file bound over
# /etc/hosts in the client's own mount namespace, for skopeo; curl is given --resolve).
printf '127.0.0.1 localhost\n10.87.0.2 registry.lab other.lab\n' >"$WORK/hosts"
in_client() { ip netns exec $C unshare -m sh -c "mount --bind '$WORK/hosts' /etc/hosts && exec \"\$@\"" sh "$@"; }

record() { # NAME PORT COMMAND...
  local name=$1 port=$2; shift 2
  lab_capture_start $C eth0 "tcp port $port" "$DIR/$name.pcap" "$WORK/tcpdump.log"
  in_client "$@" >"$WORK/$name.out" 2>&1 || true
  lab_capture_stop "$WORK/tcpdump.log"
  echo "$name: $(tail -c 300 "$WORK/$name.out" | tr '\n' ' ')" >&2
}
CURL=(curl -sS --max-time 10 --resolve registry.lab:8443:10.87.0.2 --resolve registry.lab:8444:10.87.0.2
  --resolve registry.lab:8445:10.87.0.2 --resolve registry.lab:5443:10.87.0.2)
record healthy-tls13 8443 "${CURL[@]}" --cacert "$WORK/ca.crt" https://registry.lab:8443/
record healthy-tls12 8443 "${CURL[@]}" --cacert "$WORK/ca.crt" --tls-max 1.2 https://registry.lab:8443/
record untrusted-go-tls13 8443 skopeo inspect --retry-times 0 docker://registry.lab:8443/lab/small
record untrusted-go-tls12 8447 skopeo inspect --retry-times 0 docker://registry.lab:8447/lab/small
record untrusted-curl 8443 "${CURL[@]}" https://registry.lab:8443/
record expired-curl-tls12 8444 "${CURL[@]}" --cacert "$WORK/ca.crt" --tls-max 1.2 https://registry.lab:8444/
record name-mismatch-curl 8445 "${CURL[@]}" --cacert "$WORK/ca.crt" https://registry.lab:8445/
record name-mismatch-go-tls12 8448 skopeo inspect --retry-times 0 docker://registry.lab:8448/lab/small
record plain-http-to-nginx-tls 8443 "${CURL[@]}" http://registry.lab:8443/v2/
record plain-http-to-go-tls 5443 "${CURL[@]}" http://registry.lab:5443/v2/
record probe-then-http 5000 skopeo inspect --retry-times 0 --tls-verify=false docker://registry.lab:5000/lab/small
kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
ls -la "$DIR" >&2
