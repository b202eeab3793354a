#!/usr/bin/env bash
# Builds capdiag as ONE fully static x86_64 Linux executable at OUTDIR/capdiag: no loader, no
# shared library, no file from the host needed at run time, so it runs in any container (Alpine's
# netshoot, distroless, scratch) and on any node. tests/static-binary.sh proves it: copied alone
# into an empty directory, it analyzes and captures under `chroot`.
#
#   scripts/build-static.sh OUTDIR           musl, with libpcap built from Debian's source of the
#                                            version installed, without D-Bus/RDMA/libnl/Bluetooth/
#                                            USB capture (the default)
#   scripts/build-static.sh --glibc OUTDIR   static glibc with Debian's own libpcap.a: Debian's
#                                            binary packages only, no source to fetch
#
# musl is the default because a static glibc still loads the host's NSS modules (libnss_*.so,
# with the host's own libc) when a name must be resolved: for capdiag only a host or port *named*
# in a capture filter (`-f 'host registry'`, `port http`), and only where /etc/nsswitch.conf
# lists modules beyond files and dns (mdns, sss, systemd, resolve); musl reads /etc/hosts,
# /etc/services and DNS itself. With numbers in filters both builds behave the same.
#
# Debian x86_64 (the glibc build also on Ubuntu; the musl build fetches Debian's source and is
# untested on Ubuntu). Installs what it needs with apt-get when it is missing (run as root then).
# Environment:
#   SRC               the checkout to build (default: the checkout this script is in)
#   CARGO_TARGET_DIR  cargo's target directory (default: SRC/target); the binary is built under
#                     TARGET/<triple>/release, apart from the ordinary build
#   WORK              scratch directory for the musl libpcap or the libsystemd stand-in
#                     (default: TARGET/static-build)
#   STRIP=0           keep the line tables in the copy in OUTDIR (about 20 MB instead of 4 to
#                     5 MB: backtraces with file and line; the copy is stripped by default)
#
# Why the glibc build needs more than +crt-static:
#   Debian's libpcap.a is built with D-Bus capture support, so it needs libdbus-1.a
#   (libdbus-1-dev ships it), and libdbus-1.a calls sd_listen_fds/sd_is_socket from libsystemd,
#   of which Debian ships no static library. Two stand-in functions answer what libsystemd
#   answers to a process that was not socket-activated (capdiag never is). The .a files are passed
#   by full path after -Wl,-Bstatic: a bare -ldbus-1 lands after rustc's -Wl,-Bdynamic and links
#   libdbus-1.so into a "static-pie" that then crashes at start, so the result is checked for
#   NEEDED entries and an interpreter, not only by `file`.
set -euo pipefail

MODE=musl
case "${1:-}" in
--musl) shift ;;
--glibc) MODE=gnu; shift ;;
esac
if [ $# -ne 1 ]; then
    echo "usage: $0 [--glibc] OUTDIR" >&2
    exit 2
fi
OUT=$1
die() { echo "build-static: $*" >&2; exit 1; }
say() { echo "build-static: $*" >&2; }

[ "$(uname -m)" = x86_64 ] || die "x86_64 only"
SRC=${SRC:-$(dirname "$0")/..}
SRC=$(cd "$SRC" && pwd)
grep -q '^name = "capdiag"' "$SRC/Cargo.toml" 2>/dev/null || die "$SRC is not a capdiag checkout (set SRC)"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SRC/target}
mkdir -p "$CARGO_TARGET_DIR"
export CARGO_TARGET_DIR=$(cd "$CARGO_TARGET_DIR" && pwd)
WORK=${WORK:-$CARGO_TARGET_DIR/static-build}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

# ---- packages -------------------------------------------------------------------------------
need_pkgs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "missing packages: ${missing[*]} (install them, or run as root)"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
        { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
}
COMMON_PKGS=(gcc libc6-dev pkg-config libpcap-dev git file binutils)
if [ $MODE = gnu ]; then
    need_pkgs "${COMMON_PKGS[@]}" libdbus-1-dev
    TRIPLE=x86_64-unknown-linux-gnu
else
    need_pkgs "${COMMON_PKGS[@]}" musl-tools linux-libc-dev flex bison make dpkg-dev
    TRIPLE=x86_64-unknown-linux-musl
fi
command -v rustup >/dev/null && rustup target add "$TRIPLE" >/dev/null 2>&1 || true

SEP=$'\x1f'   # CARGO_ENCODED_RUSTFLAGS separator: paths with spaces stay whole
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
start=$(date +%s)

# ---- glibc: Debian's libpcap.a + what it needs ----------------------------------------------
if [ $MODE = gnu ]; then
    libdir=$(pkg-config --variable=libdir libpcap)
    [ -f "$libdir/libpcap.a" ] || die "no $libdir/libpcap.a (libpcap-dev)"
    flags="-Ctarget-feature=+crt-static"
    # libpcap.a itself comes from the pcap crate's own `-lpcap` (static under crt-static);
    # add each library it needs in turn, by full path.
    for l in $(pkg-config --static --libs-only-l libpcap); do
        l=${l#-l}
        case $l in
        pcap) ;;
        systemd)
            cat >"$WORK/sd_stub.c" <<'EOF'
/* Debian ships no libsystemd.a; libdbus-1.a needs only these two, for socket activation. */
int sd_listen_fds(int unset_environment) { (void)unset_environment; return 0; }
int sd_is_socket(int fd, int family, int type, int listening)
{ (void)fd; (void)family; (void)type; (void)listening; return 0; }
EOF
            cc -O2 -fPIE -c "$WORK/sd_stub.c" -o "$WORK/sd_stub.o"
            rm -f "$WORK/libsd_stub.a"
            ar rcs "$WORK/libsd_stub.a" "$WORK/sd_stub.o"
            flags+="${SEP}-Clink-arg=$WORK/libsd_stub.a"
            ;;
        *)
            a=$(pkg-config --variable=libdir "lib$l" 2>/dev/null || pkg-config --variable=libdir "$l" 2>/dev/null || echo "$libdir")
            [ -f "$a/lib$l.a" ] || a=$libdir
            [ -f "$a/lib$l.a" ] || die "libpcap needs -l$l and there is no lib$l.a"
            flags+="${SEP}-Clink-arg=$a/lib$l.a"
            ;;
        esac
    done
    # Link-args come after rustc's own `-lc ... -Wl,-Bdynamic`: switch back to static, and name
    # libc again after the archives, for GNU ld (Rust < 1.90, e.g. the MSRV 1.88), which resolves
    # left to right; rust-lld (Rust >= 1.90) would not need the trailing -lc.
    flags="-Ctarget-feature=+crt-static${SEP}-Clink-arg=-Wl,-Bstatic${flags#-Ctarget-feature=+crt-static}${SEP}-Clink-arg=-lc"
    export CARGO_ENCODED_RUSTFLAGS=$flags
    say "libpcap $(pkg-config --modversion libpcap) from $libdir/libpcap.a; rustflags: ${flags//$SEP/ }"

# ---- musl: libpcap from Debian's source, without D-Bus/RDMA/libnl/bluetooth/USB --------------
else
    ver=$(dpkg-query -W -f='${source:Version}' libpcap0.8-dev)
    upstream=${ver%-*}
    prefix=$WORK/libpcap-musl
    if [ ! -f "$prefix/lib/libpcap.a" ] || [ "$(cat "$prefix/.version" 2>/dev/null)" != "$ver" ]; then
        # deb-src lines for the machine's own Debian mirrors and suites, in a private apt state
        # (the system's sources and lists are left as they are).
        apt_dir=$WORK/apt
        rm -rf "$apt_dir" && mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/parts"
        keyring=/usr/share/keyrings/debian-archive-keyring.gpg
        [ -f "$keyring" ] || die "no $keyring (not Debian?): build with --glibc"
        mirrors() {
            apt-cache policy | awk -v k="$keyring" '$NF == "Packages" && $2 ~ /:\/\// { split($3, s, "/"); print "deb-src [signed-by=" k "] " $2 " " s[1] " " s[2] }' |
                sort -u
        }
        mirrors >"$apt_dir/sources.list"
        if [ ! -s "$apt_dir/sources.list" ]; then
            # No package lists yet (a fresh image): apt-cache knows no mirror until they exist.
            apt-get update -q >/dev/null && mirrors >"$apt_dir/sources.list"
        fi
        [ -s "$apt_dir/sources.list" ] || die "no Debian mirror found in apt-cache policy"
        apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/parts"
            -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
        apt-get "${apt_opts[@]}" update -q >/dev/null
        rm -rf "$WORK/pcap-src" && mkdir -p "$WORK/pcap-src"
        (cd "$WORK/pcap-src" &&
            { apt-get "${apt_opts[@]}" source -q --download-only "libpcap=$ver" >/dev/null 2>&1 ||
                apt-get "${apt_opts[@]}" source -q --download-only libpcap >/dev/null; } &&
            dpkg-source --skip-patches -x ./*.dsc src >../dpkg-source.log 2>&1)
        # --skip-patches: Debian's patches are about its shared-library packaging (they make
        # `make` build libpcap.so even with --disable-shared, which fails with musl-gcc) and
        # non-Linux ports; the code is upstream's. (apt checked the files against the signed
        # Sources index; dpkg-source warns that it cannot check the uploader's own signature.)
        # musl-gcc leaves out /usr/include; libpcap's Linux code wants the kernel's headers.
        kh=$WORK/musl-kernel-headers
        mkdir -p "$kh"
        ln -sfn /usr/include/linux "$kh/linux"
        ln -sfn /usr/include/x86_64-linux-gnu/asm "$kh/asm"
        ln -sfn /usr/include/asm-generic "$kh/asm-generic"
        (cd "$WORK/pcap-src/src" &&
            ./configure -q --prefix="$prefix" --host=x86_64-linux-musl CC=musl-gcc \
                CFLAGS="-O2 -fPIE -I$kh" --disable-shared --with-pcap=linux --without-libnl \
                --disable-dbus --disable-rdma --disable-bluetooth --disable-usb --disable-netmap \
                --without-dpdk --disable-remote &&
            make -j"$(nproc)" && make install) >"$WORK/libpcap-build.log" 2>&1 ||
            die "libpcap build failed: see $WORK/libpcap-build.log"
        echo "$ver" >"$prefix/.version"
    fi
    [ -f "$prefix/lib/libpcap.a" ] && [ ! -e "$prefix/lib/libpcap.so" ] || die "libpcap build failed"
    export LIBPCAP_LIBDIR=$prefix/lib LIBPCAP_VER=$upstream
    export PKG_CONFIG_PATH=$prefix/lib/pkgconfig   # what capdiag --version reports
    export CC_x86_64_unknown_linux_musl=musl-gcc   # mimalloc's C code
    say "libpcap $upstream built for musl in $prefix"
fi

# ---- build ----------------------------------------------------------------------------------
(cd "$SRC" && cargo build --release --locked --target "$TRIPLE" --bin capdiag)
BIN=$CARGO_TARGET_DIR/$TRIPLE/release/capdiag

# ---- check it is static ---------------------------------------------------------------------
file -L "$BIN" | grep -Eq 'static(-pie)? linked|statically linked' || die "not static: $(file -L "$BIN")"
if readelf -d "$BIN" | grep -q NEEDED; then die "has NEEDED entries: $(readelf -d "$BIN" | grep NEEDED)"; fi
if readelf -l "$BIN" | grep -q 'program interpreter'; then die "has a program interpreter"; fi

cp "$BIN" "$OUT/capdiag.tmp"
[ "${STRIP:-1}" = 0 ] || strip "$OUT/capdiag.tmp"
mv "$OUT/capdiag.tmp" "$OUT/capdiag"

say "done in $(($(date +%s) - start)) s: $OUT/capdiag"
say "$(stat -c %s "$OUT/capdiag") bytes: $(file -bL "$OUT/capdiag")"
echo "$OUT/capdiag"
"$OUT/capdiag" --version
