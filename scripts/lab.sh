# Shared by the lab scripts (sourced, not run): the packages they need, and the two network
# namespaces they measure or record between.

# lab_install CMD...: installs the Debian packages of the commands that are missing (`ip` comes
# with iproute2, /usr/bin/time with time).
lab_install() {
  local need=() pk=() c
  for c in "$@"; do
    case $c in
      /*) [[ -x $c ]] || need+=("$c") ;;
      *) command -v "$c" >/dev/null || need+=("$c") ;;
    esac
  done
  ((${#need[@]})) || return 0
  for c in "${need[@]}"; do
    case $c in ip) pk+=(iproute2) ;; /usr/bin/time) pk+=(time) ;; *) pk+=("$c") ;; esac
  done
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pk[@]}" >/dev/null
}

# lab_pair CLIENT SERVER PREFIX: two namespaces joined by a veth (eth0 in each), PREFIX.1/24 in
# the client and PREFIX.2/24 in the server; addresses that exist only inside them.
lab_pair() {
  local c=$1 s=$2 p=$3
  ip netns add "$c"; ip netns add "$s"
  ip -n "$c" link set lo up; ip -n "$s" link set lo up
  ip -n "$c" link add eth0 type veth peer name eth0 netns "$s"
  ip -n "$c" addr add "$p.1/24" dev eth0; ip -n "$s" addr add "$p.2/24" dev eth0
  ip -n "$c" link set eth0 up; ip -n "$s" link set eth0 up
}

# lab_image DIR: a tiny deterministic single-layer image (`lab/small`) in skopeo's dir: layout,
# built from text and fixed timestamps, so every run pushes the same bytes.
lab_image() {
  local d=$1 src tmp
  tmp=$(mktemp -d); src=$tmp/src
  mkdir -p "$d" "$src/etc"
  {
    echo "capdiag sample image layer"
    for i in $(seq 1 64); do printf 'line %02d of a small file used for registry/S3 packet captures\n' "$i"; done
  } >"$src/etc/capdiag-sample.txt"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$src" -cf "$tmp/layer.tar" etc
  gzip -n -9 -c "$tmp/layer.tar" >"$tmp/layer.tar.gz"
  local diff_id layer layer_size cfg cfg_size
  diff_id=$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
  layer=$(sha256sum "$tmp/layer.tar.gz" | cut -d' ' -f1)
  layer_size=$(stat -c %s "$tmp/layer.tar.gz")
  printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/true"]},"created":"1970-01-01T00:00:00Z","rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"capdiag sample"}]}' \
    "$diff_id" >"$tmp/config.json"
  cfg=$(sha256sum "$tmp/config.json" | cut -d' ' -f1)
  cfg_size=$(stat -c %s "$tmp/config.json")
  cp "$tmp/layer.tar.gz" "$d/$layer"
  cp "$tmp/config.json" "$d/$cfg"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%d,"digest":"sha256:%s"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":%d,"digest":"sha256:%s"}]}' \
    "$cfg_size" "$cfg" "$layer_size" "$layer" >"$d/manifest.json"
  printf 'Directory Transport Version: 1.1\n' >"$d/version"
  rm -rf "$tmp"
}

# lab_registry NS DIR ADDR [CERT KEY]: distribution (Debian's docker-registry) in namespace NS,
# listening on ADDR, its blobs in DIR/data, with TLS when CERT and KEY are given; its config in
# DIR/config.yml, its log in DIR.log, its pid in DIR.pid (for lab_cleanup).
lab_registry() {
  local ns=$1 dir=$2 addr=$3 cert=${4:-} key=${5:-}
  mkdir -p "$dir"
  {
    cat <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: $addr
  secret: capdiag-lab-http-secret
YML
    if [[ -n $cert ]]; then
      printf '  tls:\n    certificate: %s\n    key: %s\n' "$cert" "$key"
    fi
  } >"$dir/config.yml"
  ip netns exec "$ns" docker-registry serve "$dir/config.yml" >"$dir.log" 2>&1 &
  echo $! >"$dir.pid"
}

# lab_capture_start NS IFACE FILTER OUT LOG: tcpdump in namespace NS, once it listens (its pid
# in $LAB_TCPDUMP, and in LOG's name with .pid for lab_cleanup); lab_capture_stop LOG: stops it
# half a second later.
lab_capture_start() {
  ip netns exec "$1" tcpdump -i "$2" -s 0 -B 65536 -U --immediate-mode -w "$4" "$3" 2>"$5" &
  LAB_TCPDUMP=$!
  echo "$LAB_TCPDUMP" > "${5%.log}.pid"
  for _ in $(seq 50); do grep -q "listening on" "$5" && break; sleep 0.1; done
}
lab_capture_stop() {
  sleep 0.5
  kill -INT "$LAB_TCPDUMP"; wait "$LAB_TCPDUMP" 2>/dev/null || true
  rm -f "${1%.log}.pid"
  cat "$1" >&2
}

# lab_offloads_off NS...: segmentation offloads off on eth0 of each namespace, so that a capture
# holds wire-size segments as on a real link.
lab_offloads_off() {
  local ns
  for ns in "$@"; do ip netns exec "$ns" ethtool -K eth0 tso off gso off gro off >/dev/null 2>&1 || true; done
}

# lab_cleanup DIR NS...: stops every process whose pid is in DIR/*pid (a stopped one is woken
# first), removes the namespaces and DIR. For `trap ... EXIT`.
lab_cleanup() {
  local dir=$1 f; shift
  for f in "$dir"/*pid; do
    [[ -f $f ]] || continue
    kill -CONT "$(cat "$f")" 2>/dev/null || true
    kill "$(cat "$f")" 2>/dev/null || true
  done
  for f in "$@"; do ip netns del "$f" 2>/dev/null || true; done
  rm -rf "$dir"
}
