#!/usr/bin/env bash
# The static binary runs with nothing from the host (issue: ship one file that runs anywhere).
#
#   tests/static-binary.sh BIN        as root; BIN from scripts/build-static.sh
#
# 1. BIN has no interpreter and needs no shared library (`ldd`, `readelf`).
# 2. Copied ALONE into an empty directory and run there under `chroot` (no /proc, /sys, /dev,
#    /etc, no libc, no libpcap): --version, rules, explain, and analyze on every sample copied in,
#    whose output must be byte for byte what an ordinary build of the same checkout prints (REF).
# 3. Live, from the chroot, in two network namespaces this script makes and joins with a veth:
#    `watch -i any` sees an HTTP exchange and a refused connection, writes -w, and `analyze` of
#    that file finds what the watch found, at the same frames. As another user: refused without
#    the capability (the message says how to get it), working with `setcap cap_net_raw=eip`.
#    And `tcpdump -w - | capdiag watch -r -`, the recipe for where tcpdump already runs.
# 4. The Containerfile, when podman is installed: the image builds FROM scratch, runs as a user
#    that is not root, analyzes a capture mounted into it, and captures live in a namespace with
#    the NET_RAW capability only.
#
# Environment: REF (an ordinary build to compare with; default target/debug/capdiag, else
# target/release/capdiag), PODMAN=0 to leave the container part out.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 BIN" >&2; exit 2; }
BIN=$(realpath "$1")
REF=${REF:+$(realpath "$REF")}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "static-binary: needs root (chroot, namespaces)" >&2; exit 2; }
if [ -z "$REF" ]; then
    for r in target/debug/capdiag target/release/capdiag; do [ -x "$r" ] && REF=$(realpath "$r") && break; done
fi
[ -n "$REF" ] && [ -x "$REF" ] || { echo "static-binary: no ordinary build to compare with (cargo build, or REF=)" >&2; exit 2; }

failures=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
check() { # check DESCRIPTION COMMAND...: the command must succeed
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}

id=$$
A=cdsa$id B=cdsb$id
root=$(mktemp -d /tmp/capdiag-static.XXXXXX)
chmod 755 "$root"
scratch=$(mktemp -d /tmp/capdiag-static-logs.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$A" 2>/dev/null || true
    ip netns del "$B" 2>/dev/null || true
    rm -rf "$root" "$scratch"
    if [ -n "${image:-}" ]; then podman "${podman_opts[@]}" rmi -f "$image" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

# ---- 1. static -----------------------------------------------------------------------------
ldd_says=$(ldd "$BIN" 2>&1 || true)
echo "ldd: $ldd_says"
check "ldd: not a dynamic executable" \
    grep -Eq 'not a dynamic executable|statically linked' <<<"$ldd_says"
dynamic=$(readelf -d "$BIN" 2>&1) || dynamic="readelf failed: $dynamic"
headers=$(readelf -l "$BIN" 2>&1) || headers="readelf failed: $headers"
check "readelf: no NEEDED entry" bash -c '! grep -Eq "NEEDED|readelf failed" <<<"$1"' _ "$dynamic"
check "readelf: no program interpreter" \
    bash -c '! grep -Eq "program interpreter|readelf failed" <<<"$1"' _ "$headers"

# ---- 2. alone in an empty directory --------------------------------------------------------
cp "$BIN" "$root/capdiag"
check "the chroot holds the binary and nothing else" test "$(ls -A "$root")" = capdiag
version=$(chroot "$root" /capdiag --version 2>&1) || true
echo "version: $version"
check "--version names the commit and libpcap" grep -Eq '^capdiag [0-9.]+ \(commit [0-9a-f]+( with local changes)?, libpcap [0-9]' <<<"$version"
check "rules: as the ordinary build" cmp -s <(chroot "$root" /capdiag rules) <("$REF" rules)
check "explain: as the ordinary build" \
    cmp -s <(chroot "$root" /capdiag explain presigned-url-403) <("$REF" explain presigned-url-403)

# Every sample, copied in under its own path: the same stdout, stderr and exit code.
n=0 same=0
while IFS= read -r f; do
    mkdir -p "$root/$(dirname "$f")"
    cp "$f" "$root/$f"
    n=$((n + 1))
    s_rc=0 r_rc=0
    s_out=$(chroot "$root" /capdiag analyze --no-diagram "$f" 2>&1) || s_rc=$?
    r_out=$(cd "$root" && "$REF" analyze --no-diagram "$f" 2>&1) || r_rc=$?
    if [ "$s_out" = "$r_out" ] && [ $s_rc = $r_rc ] && [ $s_rc -le 1 ]; then
        same=$((same + 1))
    else
        echo "  differs: $f (exit $s_rc vs $r_rc)"
    fi
done < <(find samples -name '*.pcap' -o -name '*.pcapng' | sort)
check "analyze in the chroot: $same of $n samples as the ordinary build" test $same = $n -a $n -gt 50
s_out=$(chroot "$root" /capdiag analyze --format json samples/registry/presigned-403.pcap || true)
check "analyze --format json in the chroot: the presigned-URL finding" grep -q '"rule": *"presigned-url-403"' <<<"$s_out"

# ---- 3. live, from the chroot, in namespaces -----------------------------------------------
ip netns add "$A"
ip netns add "$B"
ip -n "$A" link set lo up
ip -n "$B" link set lo up
ip -n "$A" link add eth0 type veth peer name eth0 netns "$B"
ip -n "$A" addr add 10.78.0.1/24 dev eth0
ip -n "$B" addr add 10.78.0.2/24 dev eth0
ip -n "$A" link set eth0 up
ip -n "$B" link set eth0 up
mkdir -p "$root/www" && echo hello >"$root/www/index.html"
ip netns exec "$A" python3 -m http.server 8080 --bind 10.78.0.1 --directory "$root/www" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do ip netns exec "$A" bash -c 'exec 3<>/dev/tcp/10.78.0.1/8080' 2>/dev/null && break; sleep 0.1; done

traffic() { # from B: one exchange, and a connection refused
    ip netns exec "$B" curl -s -o /dev/null http://10.78.0.1:8080/index.html || true
    ip netns exec "$B" bash -c 'exec 3<>/dev/tcp/10.78.0.1/1' 2>/dev/null || true
}

# with_traffic READY COMMAND...: runs the command (its stdout and stderr in $out), and sends
# the traffic once its standard error says READY (the capture is open), not before.
with_traffic() {
    local ready=$1 log
    shift
    log=$(mktemp -p "$scratch")
    "$@" >"$log.out" 2>"$log" &
    local p=$! n=0
    until grep -q "$ready" "$log" || ! kill -0 $p 2>/dev/null || [ $n -ge 300 ]; do
        sleep 0.1
        n=$((n + 1))
    done
    traffic
    wait $p || true
    out=$(cat "$log.out" "$log")
}

with_traffic 'capdiag: watching' ip netns exec "$A" chroot "$root" /capdiag watch -i any --format ndjson -w /live.pcap --duration 4
live=$out
echo "$live" | sed 's/^/  watch: /' | cut -c1-200
check "watch -i any in the chroot: the refused connection" grep -q '"rule":"tcp-connect-refused"' <<<"$live"
check "watch -i any in the chroot: the exchange" grep -q '"type":"summary".*"exchanges":1,' <<<"$live"
check "watch -w wrote a capture" test -s "$root/live.pcap"
w_frames=$(grep '"type":"finding"' <<<"$live" | grep -o '"key_frame":[0-9]*' | sort || true)
a_frames=$("$REF" analyze --format json "$root/live.pcap" | grep -o '"key_frame": *[0-9]*' | tr -d ' ' | sort || true)
check "analyze of the -w file: the same findings at the same frames ($w_frames)" \
    test -n "$w_frames" -a "$w_frames" = "$a_frames"

# As another user: no capability, then the one capability capture needs.
denied=$(ip netns exec "$A" chroot --userspec=65534:65534 "$root" /capdiag watch -i any --duration 1 2>&1) && rc=0 || rc=$?
check "as user 65534 without the capability: exit 2 and how to get it" \
    grep -q 'needs privileges.*setcap cap_net_raw=eip' <<<"$denied"
[ $rc = 2 ] || fail "exit code $rc"
setcap cap_net_raw=eip "$root/capdiag"
with_traffic 'capdiag: watching' ip netns exec "$A" chroot --userspec=65534:65534 "$root" /capdiag watch -i eth0 --duration 4
check "as user 65534 with cap_net_raw=eip only: captures and finds the refusal" \
    grep -q 'tcp-connect-refused' <<<"$out"
setcap -r "$root/capdiag"

# tcpdump already there: its capture piped in. The finding comes while the pipe is open (the
# link quiet, time moves on), well before tcpdump is stopped: each line is stamped as it comes.
stamp() { while IFS= read -r l; do printf '%s %s\n' "$(date +%s%3N)" "$l"; done; }
piped() {
    ip netns exec "$A" timeout 10 tcpdump -U -i eth0 -w - |
        ip netns exec "$A" chroot "$root" /capdiag watch --format ndjson -r - | stamp
}
with_traffic 'listening on' piped
found=$(grep '"rule":"tcp-connect-refused"' <<<"$out" | cut -d' ' -f1 | head -1 || true)
ended=$(grep '"type":"summary"' <<<"$out" | cut -d' ' -f1 | head -1 || true)
check "tcpdump -U -w - | capdiag watch -r - (in the chroot): the refusal" test -n "$found" -a -n "$ended"
check "... made while the pipe was open, $(((${ended:-0} - ${found:-0}) / 1000)) s before it ended" \
    test $((${ended:-0} - ${found:-0})) -gt 1500

# ---- 4. the container image ----------------------------------------------------------------
if [ "${PODMAN:-1}" != 0 ] && command -v podman >/dev/null; then
    # This machine's sandbox: no cgroup v2 controllers for crun (runc with cgroupfs instead),
    # and no CAP_SYS_RESOURCE to raise the open-files limit podman asks for by default.
    podman_opts=(--runtime runc --cgroup-manager cgroupfs)
    run=(podman "${podman_opts[@]}" run --rm --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
    image=localhost/capdiag-static-test:$id
    ctx=$(mktemp -d -p "$scratch")
    cp "$BIN" "$ctx/capdiag"
    check "podman build -f Containerfile (FROM scratch)" \
        bash -c 'podman "$@" >/dev/null' podman "${podman_opts[@]}" build -q -f Containerfile -t "$image" "$ctx"
    user=$(podman "${podman_opts[@]}" image inspect --format '{{.Config.User}}' "$image" 2>&1) || true
    check "the image runs as a user that is not root ($user)" test -n "$user" -a "${user%%:*}" != 0 -a "${user%%:*}" != root
    out=$("${run[@]}" -v "$root/samples:/data:ro" "$image" analyze --no-diagram /data/registry/presigned-403.pcap 2>&1) || true
    check "in the container: analyze of a mounted capture" grep -q 'presigned-url-403' <<<"$out"
    with_traffic 'capdiag: watching' "${run[@]}" --network "ns:/run/netns/$A" --cap-drop ALL \
        --cap-add NET_RAW "$image" watch -i any --duration 4
    check "in the container, not root, NET_RAW only: watch -i any finds the refusal" \
        grep -q 'tcp-connect-refused' <<<"$out"
else
    echo "skip the container image (no podman, or PODMAN=0)"
fi

if [ $failures -gt 0 ]; then
    echo "static-binary: $failures check(s) failed"
    exit 1
fi
echo "static-binary: all checks passed"
