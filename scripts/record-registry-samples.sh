#!/usr/bin/env bash
# Re-records the container-registry / S3 sample captures.
#
#   sudo scripts/record-registry-samples.sh [OUTDIR]     (default: samples/registry)
#   SCENARIOS="s3_credentials" sudo scripts/record-registry-samples.sh /tmp/out
#                                  only these scenarios (default: all of them, in order:
#                                  s3_errors presigned auth s3_credentials s3_clock_skew
#                                  token_expired)
#
# Builds a private lab of network namespaces (10.77.0.0/24, reachable only
# inside those namespaces), runs a real distribution registry with its s3
# storage driver, an nginx S3 gateway, s3s-fs as the S3 server and curl /
# skopeo as clients, and records the scenarios described in
# samples/registry/README.md. Nothing is sent outside the namespaces; the
# namespaces have no default route. Everything started here is stopped and
# the namespaces are removed on exit.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "must be run as root (network namespaces, tcpdump)" >&2
    exit 1
fi

REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$REPO/samples/registry}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

S3S_VERSION=0.14.1
S3S_ROOT=${S3S_ROOT:-/opt/s3s}
S3S_BIN=$S3S_ROOT/bin/s3s-fs

PREFIX=capd
SUBNET_PREFIX=10.77.0
IP_CLIENT=$SUBNET_PREFIX.10
IP_REGISTRY=$SUBNET_PREFIX.20
IP_GATEWAY=$SUBNET_PREFIX.30
IP_S3=$SUBNET_PREFIX.40
IP_AUTH=$SUBNET_PREFIX.50
IP_BLACKHOLE=$SUBNET_PREFIX.60
NODES="client:$IP_CLIENT registry:$IP_REGISTRY gateway:$IP_GATEWAY s3:$IP_S3 auth:$IP_AUTH blackhole:$IP_BLACKHOLE"

REGISTRY=$IP_REGISTRY:5000
BUCKET=capdiag
REGION=us-east-1
ACCESS_KEY=CAPDIAGACCESSKEY0001
SECRET_KEY=capdiag-secret-key-not-a-real-secret-0001
REPO_NAME=lab/small
TAG=1
# realm addresses for the token-auth scenarios
REALM_UNREACHABLE=http://$IP_BLACKHOLE/token
REALM_REFUSED=http://$IP_AUTH:8080/token
REALM_REACHABLE=http://$IP_AUTH/token
TOKEN_SERVICE=capdiag-registry
TOKEN_ISSUER=capdiag-token-issuer

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- installs --
ensure_tools() {
    local pkgs=()
    command -v docker-registry >/dev/null || pkgs+=(docker-registry)
    command -v skopeo >/dev/null || pkgs+=(skopeo)
    command -v nginx >/dev/null || pkgs+=(nginx-light)
    command -v nft >/dev/null || pkgs+=(nftables)
    command -v tcpdump >/dev/null || pkgs+=(tcpdump)
    command -v tshark >/dev/null || pkgs+=(tshark)
    command -v capinfos >/dev/null || pkgs+=(wireshark-common)
    command -v curl >/dev/null || pkgs+=(curl)
    command -v openssl >/dev/null || pkgs+=(openssl)
    command -v ip >/dev/null || pkgs+=(iproute2)
    command -v jq >/dev/null || pkgs+=(jq)
    command -v faketime >/dev/null || pkgs+=(faketime)
    if [ ${#pkgs[@]} -gt 0 ]; then
        log "installing ${pkgs[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
    fi
    if [ ! -x "$S3S_BIN" ]; then
        command -v cargo >/dev/null || die "cargo is needed to build s3s-fs"
        log "building s3s-fs $S3S_VERSION into $S3S_ROOT"
        (cd / && cargo install --locked s3s-fs --version "$S3S_VERSION" --features binary --root "$S3S_ROOT") \
            || (cd / && cargo install s3s-fs --version "$S3S_VERSION" --features binary --root "$S3S_ROOT")
    fi
}

# -------------------------------------------------------------- lab state --
WORK=
PIDS=()

ns_list() {
    echo "$PREFIX-sw"
    local n
    for n in $NODES; do echo "$PREFIX-${n%%:*}"; done
}

ns_exists() { ip netns list | awk '{print $1}' | grep -qxF "$1"; }

# removes the lab namespaces (also leftovers of an interrupted earlier run);
# only processes started by this script live in them
remove_lab() {
    local n p
    for n in $(ns_list); do
        if ns_exists "$n"; then
            for p in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
            ip netns del "$n" 2>/dev/null || true
        fi
    done
}

cleanup() {
    set +e
    local p n
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    remove_lab
    if [ -n "$WORK" ]; then
        # KEEP_LOGS=DIR keeps the component logs (registry, nginx, s3s-fs, curl)
        [ -n "${KEEP_LOGS:-}" ] && rm -rf "$KEEP_LOGS" && cp -r "$WORK/logs" "$KEEP_LOGS"
        rm -rf "$WORK"
    fi
}

# Lab processes run with a minimal environment so that proxy / CA-bundle
# variables of the calling shell (http_proxy, AWS_CA_BUNDLE, ...) do not leak in.
CLEAN_ENV=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8)
nsx() { local n=$1; shift; ip netns exec "$PREFIX-$n" "${CLEAN_ENV[@]}" "$@"; }

# start NAME NS cmd... : run cmd in the namespace in the background, log to $WORK/logs/NAME.log
start() {
    local name=$1 n=$2; shift 2
    ip netns exec "$PREFIX-$n" "${CLEAN_ENV[@]}" "$@" >>"$WORK/logs/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    eval "PID_${name//-/_}=$pid"
}

stop() {
    local name=$1 var="PID_${1//-/_}" pid
    pid=${!var:-}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    eval "PID_${name//-/_}="
}

wait_tcp() { # ns ip port
    local i
    for i in $(seq 1 100); do
        if nsx "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "nothing listening on $2:$3"
}

build_lab() {
    log "creating namespaces"
    local n name addr
    remove_lab
    ip netns add "$PREFIX-sw"
    nsx sw sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    nsx sw ip link set lo up
    nsx sw ip link add br0 type bridge forward_delay 0 stp_state 0
    nsx sw ip link set br0 up
    for n in $NODES; do
        name=${n%%:*}
        addr=${n#*:}
        ip netns add "$PREFIX-$name"
        nsx "$name" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        nsx "$name" ip link set lo up
        # both ends are created inside the lab namespaces
        nsx sw ip link add "v-$name" type veth peer name eth0 netns "$PREFIX-$name"
        nsx sw ip link set "v-$name" master br0 up
        nsx "$name" ip addr add "$addr/24" dev eth0
        nsx "$name" ip link set eth0 up
    done
    # blackhole: silently drop every inbound TCP segment (no RST, no ICMP)
    nsx blackhole nft -f - <<'EOF'
table inet blackhole {
    chain input {
        type filter hook input priority 0; policy accept;
        ip protocol tcp drop
    }
}
EOF
}

# ------------------------------------------------------------ components --
start_s3() { # [faketime offset: the S3 server's clock set off, e.g. +20m]
    local clock=()
    [ -n "${1:-}" ] && clock=(faketime -f "$1")
    mkdir -p "$WORK/s3data/$BUCKET"
    start s3s s3 env RUST_LOG=info NO_COLOR=1 "${clock[@]}" "$S3S_BIN" --host "$IP_S3" --port 9000 \
        --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" "$WORK/s3data"
    wait_tcp s3 "$IP_S3" 9000
}

nginx_common() { # dir
    cat <<EOF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log info;
events { worker_connections 64; }
http {
    access_log $1/access.log;
    client_body_temp_path $1/tmp-body;
    proxy_temp_path $1/tmp-proxy;
    fastcgi_temp_path $1/tmp-fastcgi;
    uwsgi_temp_path $1/tmp-uwsgi;
    scgi_temp_path $1/tmp-scgi;
    default_type application/octet-stream;
EOF
}

# S3 gateway in front of s3s-fs. mode=pass: forwards to s3s-fs keeping the
# client's Host header (needed for SigV4). mode=dead: upstream port is closed,
# nginx answers every request with its own text/html 502 page.
start_gateway() {
    local mode=$1 port=9000 d=$WORK/nginx-gateway
    [ "$mode" = dead ] && port=9009
    mkdir -p "$d"
    {
        nginx_common "$d"
        cat <<EOF
    server {
        listen $IP_GATEWAY:9000;
        client_max_body_size 0;
        location / {
            proxy_pass http://$IP_S3:$port;
            proxy_http_version 1.1;
            proxy_set_header Host \$http_host;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
        }
    }
}
EOF
    } >"$d/nginx.conf"
    start gateway gateway nginx -c "$d/nginx.conf"
    wait_tcp gateway "$IP_GATEWAY" 9000
}

# Forward proxy on the client host (127.0.0.1:3128). It forwards to the S3
# gateway but replaces the Host header, which breaks presigned SigV4 URLs.
start_client_proxy() {
    local d=$WORK/nginx-client-proxy
    mkdir -p "$d"
    {
        nginx_common "$d"
        cat <<EOF
    server {
        listen 127.0.0.1:3128;
        location / {
            proxy_pass http://$IP_GATEWAY:9000;
            proxy_http_version 1.1;
            proxy_set_header Host s3.lab.internal;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF
    } >"$d/nginx.conf"
    start client-proxy client nginx -c "$d/nginx.conf"
    wait_tcp client 127.0.0.1 3128
}

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

make_token_material() {
    local d=$WORK/auth
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$TOKEN_ISSUER" \
        -keyout "$d/key.pem" -out "$d/root.crt" 2>/dev/null
    local x5c now hdr claims sig
    x5c=$(openssl x509 -in "$d/root.crt" -outform DER | openssl base64 -A)
    now=$(date +%s)
    hdr=$(printf '{"alg":"RS256","typ":"JWT","x5c":["%s"]}' "$x5c" | b64url)
    claims=$(printf '{"iss":"%s","sub":"capdiag","aud":"%s","exp":%d,"nbf":%d,"iat":%d,"jti":"capdiag-%d","access":[{"type":"repository","name":"%s","actions":[%s]}]}' \
        "$TOKEN_ISSUER" "$TOKEN_SERVICE" $((now + ${TOKEN_LIFETIME:-86400})) $((now - 60)) "$now" "$now" "$REPO_NAME" \
        "${TOKEN_ACTIONS:-\"pull\"}" | b64url)
    sig=$(printf '%s.%s' "$hdr" "$claims" | openssl dgst -sha256 -sign "$d/key.pem" | b64url)
    TOKEN="$hdr.$claims.$sig"
}

# token server (realm) answering every request on /token with a fixed JSON
# token (an RS256 JWT with an x5c header, signed by the key whose self-signed
# certificate is the registry's rootcertbundle)
start_realm() {
    local d=$WORK/nginx-realm
    mkdir -p "$d"
    printf '{"token":"%s","access_token":"%s","expires_in":%d}' "$TOKEN" "$TOKEN" "${TOKEN_LIFETIME:-3600}" >"$d/token.json"
    chmod 644 "$d/token.json"
    {
        nginx_common "$d"
        cat <<EOF
    server {
        listen $IP_AUTH:80;
        location = /token {
            default_type application/json;
            alias $d/token.json;
        }
    }
}
EOF
    } >"$d/nginx.conf"
    start realm auth nginx -c "$d/nginx.conf"
    wait_tcp auth "$IP_AUTH" 80
}

# start_registry [REALM] : distribution registry on the s3 driver (through
# the gateway); with a realm argument, token auth pointing at that realm.
# REGISTRY_STORAGE=filesystem instead writes straight into the directory that
# s3s-fs serves as the bucket (used once, to seed the image).
start_registry() {
    local realm=${1:-} d=$WORK/registry
    mkdir -p "$d"
    {
        printf 'version: 0.1\nlog:\n  level: info\n  fields:\n    service: registry\nstorage:\n'
        if [ "${REGISTRY_STORAGE:-s3}" = filesystem ]; then
            printf '  filesystem:\n    rootdirectory: %s\n' "$WORK/s3data/$BUCKET"
        else
            cat <<EOF
  s3:
    accesskey: $ACCESS_KEY
    secretkey: $SECRET_KEY
    region: $REGION
    regionendpoint: http://$IP_GATEWAY:9000
    bucket: $BUCKET
    secure: false
    v4auth: true
    chunksize: 5242880
EOF
        fi
        cat <<EOF
  delete:
    enabled: true
  redirect:
    disable: false
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $REGISTRY
  secret: capdiag-lab-http-secret
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
EOF
    } >"$d/config.yml"
    if [ -n "$realm" ]; then
        cat >>"$d/config.yml" <<EOF
auth:
  token:
    realm: $realm
    service: $TOKEN_SERVICE
    issuer: $TOKEN_ISSUER
    rootcertbundle: $WORK/auth/root.crt
EOF
    fi
    start registry registry docker-registry serve "$d/config.yml"
    wait_tcp registry "$IP_REGISTRY" 5000
}

# ----------------------------------------------------------------- image --
# s3s-fs (0.14.1) does not implement ListMultipartUploads, which the s3
# driver of distribution 2.8 calls for every chunked/resumed blob upload, so
# the image is pushed once through a registry using the filesystem driver
# on the directory that s3s-fs serves as the bucket (same key layout).
# A tiny deterministic single-layer image in skopeo's dir: layout.
make_image() {
    local d=$WORK/image src=$WORK/image-src
    mkdir -p "$d" "$src/etc"
    {
        echo "capdiag sample image layer"
        for i in $(seq 1 64); do printf 'line %02d of a small file used for registry/S3 packet captures\n' "$i"; done
    } >"$src/etc/capdiag-sample.txt"
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$src" -cf "$WORK/layer.tar" etc
    gzip -n -9 -c "$WORK/layer.tar" >"$WORK/layer.tar.gz"
    local diff_id layer_digest layer_size cfg_digest cfg_size
    diff_id=$(sha256sum "$WORK/layer.tar" | cut -d' ' -f1)
    layer_digest=$(sha256sum "$WORK/layer.tar.gz" | cut -d' ' -f1)
    layer_size=$(stat -c %s "$WORK/layer.tar.gz")
    printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/true"]},"created":"1970-01-01T00:00:00Z","rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"capdiag sample"}]}' \
        "$diff_id" >"$WORK/config.json"
    cfg_digest=$(sha256sum "$WORK/config.json" | cut -d' ' -f1)
    cfg_size=$(stat -c %s "$WORK/config.json")
    cp "$WORK/layer.tar.gz" "$d/$layer_digest"
    cp "$WORK/config.json" "$d/$cfg_digest"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%d,"digest":"sha256:%s"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":%d,"digest":"sha256:%s"}]}' \
        "$cfg_size" "$cfg_digest" "$layer_size" "$layer_digest" >"$d/manifest.json"
    printf 'Directory Transport Version: 1.1\n' >"$d/version"
    LAYER_DIGEST=sha256:$layer_digest
    CONFIG_DIGEST=sha256:$cfg_digest
    MANIFEST_DIGEST=sha256:$(sha256sum "$d/manifest.json" | cut -d' ' -f1)
}

push_image() {
    log "pushing $REPO_NAME:$TAG ($MANIFEST_DIGEST) with skopeo"
    nsx client skopeo --insecure-policy copy --quiet --dest-tls-verify=false \
        "dir:$WORK/image" "docker://$REGISTRY/$REPO_NAME:$TAG" >"$WORK/logs/skopeo-push.log" 2>&1 \
        || { cat "$WORK/logs/skopeo-push.log" >&2; die "push failed"; }
}

# --------------------------------------------------------------- capture --
# cap_start NAME NS IFACE : starts tcpdump writing $WORK/cap/NAME.pcap
cap_start() {
    local name=$1 n=$2 ifc=$3 f=$WORK/cap/$1.pcap
    local linktype=()
    [ "$ifc" = any ] && linktype=(-y LINUX_SLL2)
    rm -f "$f"
    # -B: with -s 0 every ring slot is snaplen-sized, so the default 2 MiB
    # ring holds only a handful of packets and short bursts get dropped
    start "tcpdump-$name" "$n" tcpdump -i "$ifc" "${linktype[@]}" -n -s 0 -B 65536 -U --immediate-mode -Z root -w "$f" tcp
    local i var="PID_tcpdump_${name//-/_}"
    for i in $(seq 1 100); do
        if grep -q 'listening on' "$WORK/logs/tcpdump-$name.log" 2>/dev/null && [ "$(stat -c %s "$f" 2>/dev/null || echo 0)" -ge 24 ]; then
            sleep 0.3
            return 0
        fi
        kill -0 "${!var}" 2>/dev/null || { cat "$WORK/logs/tcpdump-$name.log" >&2; die "tcpdump $name exited"; }
        sleep 0.1
    done
    die "tcpdump $name did not start"
}

cap_stop() {
    local name=$1 var="PID_tcpdump_${1//-/_}" pid
    pid=${!var}
    sleep 0.5
    kill -INT "$pid"
    wait "$pid" || true
    eval "PID_tcpdump_${name//-/_}="
    local dropped
    dropped=$(sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel$/\1/p' "$WORK/logs/tcpdump-$name.log" | tail -1)
    [ "${dropped:-0}" = 0 ] || die "tcpdump $name: $dropped packets dropped by kernel; capture incomplete"
    cp "$WORK/cap/$name.pcap" "$OUT/$name.pcap"
    log "wrote $OUT/$name.pcap ($(stat -c %s "$OUT/$name.pcap") bytes, $(capinfos -c -M "$OUT/$name.pcap" | awk -F: '/Number of packets/{gsub(/ /,"",$2); print $2}') packets)"
}

# client helper: curl inside the client namespace, verbose output to the log
ccurl() { local name=$1; shift; nsx client curl -sS -v "$@" >>"$WORK/logs/curl-$name.log" 2>&1 || true; }

ACCEPT_MANIFEST='Accept: application/vnd.docker.distribution.manifest.v2+json'
MISSING_DIGEST=sha256:0000000000000000000000000000000000000000000000000000000000000000

# ------------------------------------------------------------- scenarios --
scenario_s3_errors() {
    # healthy: the gateway passes S3's own (XML) answers through
    start_gateway pass
    start_registry
    cap_start s3-xml-error-healthy registry any
    ccurl xml-healthy "http://$REGISTRY/v2/"
    ccurl xml-healthy -H "$ACCEPT_MANIFEST" "http://$REGISTRY/v2/$REPO_NAME/manifests/$TAG"
    ccurl xml-healthy -H "$ACCEPT_MANIFEST" "http://$REGISTRY/v2/$REPO_NAME/manifests/missing"
    ccurl xml-healthy -I "http://$REGISTRY/v2/$REPO_NAME/blobs/$LAYER_DIGEST"
    ccurl xml-healthy -I "http://$REGISTRY/v2/$REPO_NAME/blobs/$MISSING_DIGEST"
    cap_stop s3-xml-error-healthy
    stop registry
    stop gateway

    # failing: the gateway's upstream is down, nginx answers with HTML 502
    start_gateway dead
    start_registry
    cap_start s3-html-error registry any
    ccurl html-error "http://$REGISTRY/v2/"
    ccurl html-error -H "$ACCEPT_MANIFEST" "http://$REGISTRY/v2/$REPO_NAME/manifests/$TAG"
    ccurl html-error -I "http://$REGISTRY/v2/$REPO_NAME/blobs/$LAYER_DIGEST"
    cap_stop s3-html-error
    stop registry
    stop gateway
}

scenario_s3_credentials() {
    # failing: the registry signs with a wrong secret key (S3 answers SignatureDoesNotMatch),
    # then with an access key S3 does not know (InvalidAccessKeyId); the gateway passes S3's
    # answers through, the registry answers its client 500
    start_gateway pass
    SECRET_KEY=capdiag-secret-key-WRONG-not-a-real-secret start_registry
    cap_start s3-signature-mismatch registry any
    ccurl signature-mismatch -H "$ACCEPT_MANIFEST" "http://$REGISTRY/v2/$REPO_NAME/manifests/$TAG"
    cap_stop s3-signature-mismatch
    stop registry
    ACCESS_KEY=CAPDIAGUNKNOWNKEY0002 start_registry
    cap_start s3-access-key-unknown registry any
    ccurl access-key-unknown -H "$ACCEPT_MANIFEST" "http://$REGISTRY/v2/$REPO_NAME/manifests/$TAG"
    cap_stop s3-access-key-unknown
    stop registry
    stop gateway
}

scenario_s3_clock_skew() {
    # failing: the S3 server's clock runs 20 minutes ahead (libfaketime): it answers the
    # registry's SigV4 requests 403 RequestTimeTooSkewed, its Date header 20 minutes off
    stop s3s
    start_s3 +20m
    start_gateway pass
    start_registry
    cap_start s3-clock-skew registry any
    ccurl clock-skew -H "$ACCEPT_MANIFEST" "http://$REGISTRY/v2/$REPO_NAME/manifests/$TAG"
    cap_stop s3-clock-skew
    stop registry
    stop gateway
    stop s3s
    start_s3
}

scenario_presigned() {
    start_gateway pass
    start_registry
    # healthy redirect, recorded at the client and, at the same time, on the
    # registry's own interface only
    cap_start presigned-redirect-healthy client any
    cap_start presigned-redirect-registry-side registry eth0
    ccurl presigned-healthy -L -o /dev/null "http://$REGISTRY/v2/$REPO_NAME/blobs/$LAYER_DIGEST"
    cap_stop presigned-redirect-registry-side
    cap_stop presigned-redirect-healthy

    # the client reaches S3 through a local forward proxy that rewrites Host
    start_client_proxy
    cap_start presigned-403 client any
    nsx client env http_proxy=http://127.0.0.1:3128 no_proxy="$IP_REGISTRY" \
        curl -sS -v -L -o /dev/null "http://$REGISTRY/v2/$REPO_NAME/blobs/$LAYER_DIGEST" \
        >>"$WORK/logs/curl-presigned-403.log" 2>&1 || true
    cap_stop presigned-403

    cap_start presigned-403-head client any
    nsx client env http_proxy=http://127.0.0.1:3128 no_proxy="$IP_REGISTRY" \
        curl -sS -v -L -I "http://$REGISTRY/v2/$REPO_NAME/blobs/$LAYER_DIGEST" \
        >>"$WORK/logs/curl-presigned-403-head.log" 2>&1 || true
    cap_stop presigned-403-head
    stop client-proxy
    stop registry
    stop gateway
}

# client side of the token flow: registry request, 401, then the realm
token_client() { # name connect-timeout
    local name=$1 to=$2 hdrs realm service scope url code
    hdrs=$(nsx client curl -sS -D - -o /dev/null -H "$ACCEPT_MANIFEST" \
        "http://$REGISTRY/v2/$REPO_NAME/manifests/$TAG" 2>>"$WORK/logs/curl-$name.log" | tr -d '\r')
    printf '%s\n' "$hdrs" >>"$WORK/logs/curl-$name.log"
    realm=$(printf '%s\n' "$hdrs" | sed -n 's/^[Ww]ww-[Aa]uthenticate: Bearer .*realm="\([^"]*\)".*/\1/p')
    service=$(printf '%s\n' "$hdrs" | sed -n 's/^[Ww]ww-[Aa]uthenticate: .*service="\([^"]*\)".*/\1/p')
    scope=$(printf '%s\n' "$hdrs" | sed -n 's/^[Ww]ww-[Aa]uthenticate: .*scope="\([^"]*\)".*/\1/p')
    [ -n "$realm" ] || die "$name: no Bearer realm in the registry's 401"
    url="$realm?service=$service&scope=$scope"
    local tok
    tok=$(nsx client curl -sS -v --connect-timeout "$to" "$url" 2>>"$WORK/logs/curl-$name.log" | jq -r '.token // empty' 2>/dev/null || true)
    if [ -n "$tok" ]; then
        ccurl "$name" -H "$ACCEPT_MANIFEST" -H "Authorization: Bearer $tok" -o /dev/null \
            "http://$REGISTRY/v2/$REPO_NAME/manifests/$TAG"
    fi
}

scenario_auth() {
    make_token_material
    start_gateway pass

    start_registry "$REALM_UNREACHABLE"
    cap_start auth-realm-unreachable client any
    token_client auth-unreachable 4
    cap_stop auth-realm-unreachable
    stop registry

    start_registry "$REALM_REFUSED"
    cap_start auth-realm-refused client any
    token_client auth-refused 4
    cap_stop auth-realm-refused
    stop registry

    start_realm
    start_registry "$REALM_REACHABLE"
    cap_start auth-realm-reachable client any
    token_client auth-reachable 4
    cap_stop auth-realm-reachable
    stop registry
    stop realm
    stop gateway
}

scenario_token_expired() {
    # failing: the token service issues tokens valid for 6 s; the client gets one, starts a
    # blob upload with it, and PATCHes 70 s later (distribution accepts a token up to 60 s past
    # its exp, for clock skew): the registry answers 401 invalid_token. Filesystem storage: the
    # S3 leg plays no part.
    TOKEN_LIFETIME=6 TOKEN_ACTIONS='"pull","push"' make_token_material
    TOKEN_LIFETIME=6 start_realm
    REGISTRY_STORAGE=filesystem start_registry "$REALM_REACHABLE"
    cap_start token-expired client any
    local hdrs tok loc
    hdrs=$(nsx client curl -sS -D - -o /dev/null -X POST "http://$REGISTRY/v2/$REPO_NAME/blobs/uploads/" | tr -d '\r')
    tok=$(nsx client curl -sS "$REALM_REACHABLE?service=$TOKEN_SERVICE&scope=repository:$REPO_NAME:pull,push" | jq -r .token)
    loc=$(nsx client curl -sS -D - -o /dev/null -X POST -H "Authorization: Bearer $tok" \
        "http://$REGISTRY/v2/$REPO_NAME/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    [ -n "$loc" ] || die "token-expired: no upload Location"
    sleep 70
    ccurl token-expired -X PATCH -H "Authorization: Bearer $tok" -H 'Content-Type: application/octet-stream' \
        --data-binary 'capdiag' -o /dev/null "$loc"
    cap_stop token-expired
    stop registry
    stop realm
}

summary() {
    local f
    for f in "$OUT"/*.pcap; do
        echo "## $(basename "$f")  ($(stat -c %s "$f") bytes, $(tshark -r "$f" -T fields -e frame.encap_type -c1 2>/dev/null) encap)"
        tshark -n -2 -r "$f" -d tcp.port==5000,http -d tcp.port==9000,http -Y http \
            -T fields -e frame.number -e tcp.stream -e ip.src -e ip.dst -e http.request.method \
            -e http.request.uri -e http.response.code -e http.content_type 2>/dev/null
    done
}

main() {
    ensure_tools
    WORK=$(mktemp -d /tmp/capd-lab.XXXXXX)
    chmod 755 "$WORK"
    mkdir -p "$WORK/logs" "$WORK/cap"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    build_lab
    start_s3
    make_image
    REGISTRY_STORAGE=filesystem start_registry
    push_image
    stop registry
    local sc
    for sc in ${SCENARIOS:-s3_errors presigned auth s3_credentials s3_clock_skew token_expired}; do
        "scenario_$sc"
    done
    summary
}

main "$@"
