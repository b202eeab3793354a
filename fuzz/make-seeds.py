#!/usr/bin/env python3
"""Builds the seed corpora of the fuzz targets under fuzz/corpus/<target>/.

    python3 fuzz/make-seeds.py            # from the repository root, or
    python3 make-seeds.py                 # from fuzz/

* whole_file:   every *.pcap / *.pcapng under samples/, tests/corpus/ and tests/malformed/, as they are,
                the HTTPS samples with their key logs injected (`editcap --inject-secrets`), and
                the samples rewritten as pcapng with timestamps at the edges of the
                representable range (saturated at i64::MAX, negative, jumping between them).
* render:       the whole_file seeds (copied once they are made).
* decode_frame: individual frames read from those captures (pcap and pcapng parsed here,
                standard library only), each prefixed with the target's two header bytes:
                the link-type selector and the wire-length byte (0, or the amount the snap
                length cut off, in units of 64 bytes).
* http_stream:  both directions of HTTP streams, extracted with
                `tshark -q -z follow,tcp,raw,N` (skipped when tshark is not installed), plus
                hand-written request/response pairs covering the framing cases (chunked,
                100-continue, HEAD, 204/304, CONNECT, 101, pipelining, gzip, bad lengths...).
* tls_keyed:    both directions of each TLS stream of samples/tls-keys/ (extracted as for
                http_stream), each with its capture's key log in front, under a few flag
                settings (chunk sizes, FINs, secrets arriving late).
* reassembly:   hand-made operation sequences in the target's input format.

The corpus directories are git-ignored; running the script again rewrites the seeds it made
(named by content hash) and leaves whatever the fuzzer added.
"""

import gzip
import hashlib
import os
import shutil
import struct
import subprocess
import sys

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)
CORPUS = os.path.join(FUZZ, "corpus")

# Must match LINKS in fuzz_targets/decode_frame.rs.
LINKS = [0, 1, 101, 108, 113, 228, 229, 239, 276]

# Must match SPLIT in fuzz_targets/http_stream.rs.
SPLIT = b"\x00\xffSPLIT\xff\x00"

MAX_FRAMES_PER_FILE = 6
MAX_FRAMES = 500
MAX_STREAMS_PER_FILE = 4
MAX_DIRECTION_BYTES = 16 * 1024


def write_seed(target, data, prefix=""):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = prefix + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def captures():
    out = []
    for top in ("samples", os.path.join("tests", "corpus"), os.path.join("tests", "malformed")):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for f in sorted(files):
                if f.endswith((".pcap", ".pcapng")):
                    out.append(os.path.join(dirpath, f))
    return sorted(out)


# ---------------------------------------------------------------- reading captures


def pcap_records(data):
    """(link type, captured bytes, original length, timestamp in µs) of every record of a pcap
    file."""
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    link = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack(e + "IIII", data[off : off + 16])
        off += 16
        if incl > len(data) - off:
            return
        yield link, data[off : off + incl], orig, sec * 1_000_000 + (frac // 1000 if nano else frac)
        off += incl


def pcapng_records(data):
    """(link type, captured bytes, original length, raw timestamp) of every packet block of a
    pcapng file (the raw timestamp is in the interface's units, µs unless it says otherwise)."""
    off = 0
    e = "<"
    links = []
    while off + 12 <= len(data):
        btype = struct.unpack(e + "I", data[off : off + 4])[0]
        if btype == 0x0A0D0D0A:
            bom = data[off + 8 : off + 12]
            e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        blen = struct.unpack(e + "I", data[off + 4 : off + 8])[0]
        if blen < 12 or off + blen > len(data):
            return
        body = data[off + 8 : off + blen - 4]
        if btype == 1 and len(body) >= 2:  # interface description
            links.append(struct.unpack(e + "H", body[:2])[0])
        elif btype == 6 and len(body) >= 20:  # enhanced packet
            iface, hi, lo, cap, orig = struct.unpack(e + "IIIII", body[:20])
            if iface < len(links):
                yield links[iface], body[20 : 20 + cap], orig, (hi << 32) | lo
        elif btype == 3 and len(body) >= 4 and links:  # simple packet
            orig = struct.unpack(e + "I", body[:4])[0]
            yield links[0], body[4 : 4 + orig], orig, 0
        off += blen


def records(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return list(pcapng_records(data))
    return list(pcap_records(data))


def pcapng_block(t, body):
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", t, n) + body + struct.pack("<I", n)


def pcapng_file(recs, tsresol=None, tsoffset=None):
    """A little-endian pcapng with one interface per link type, from (link, data, orig, ts)."""
    out = pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    ifaces = []
    for link, _, _, _ in recs:
        if link not in ifaces:
            ifaces.append(link)
    for link in ifaces:
        opts = b""
        if tsresol is not None:
            opts += struct.pack("<HHB3x", 9, 1, tsresol)
        if tsoffset is not None:
            opts += struct.pack("<HHq", 14, 8, tsoffset)
        if opts:
            opts += struct.pack("<HH", 0, 0)
        out += pcapng_block(1, struct.pack("<HHI", link, 0, 0) + opts)
    for link, data, orig, ts in recs:
        ts &= (1 << 64) - 1
        out += pcapng_block(
            6, struct.pack("<IIIII", ifaces.index(link), ts >> 32, ts & 0xFFFFFFFF, len(data), orig) + data
        )
    return out


def seed_timestamp_extremes():
    """The samples (registry traffic that the rules act on) rewritten as pcapng with timestamps
    at the edges of what capdiag can represent: pcapng timestamps are 64-bit, so capture time
    saturates at i64::MAX, or goes negative with a one-second resolution or a large negative
    offset. Plain pcap cannot express these, and a fuzzer rarely stumbles on them."""
    n = 0
    top = 1 << 64
    for dirpath, _, names in os.walk(os.path.join(ROOT, "samples")):
        for name in sorted(names):
            if not name.endswith((".pcap", ".pcapng")):
                continue
            recs = records(os.path.join(dirpath, name))
            if not recs:
                continue
            half = len(recs) // 2
            variants = {
                # Every frame at the saturation point.
                "tsmax": [(l, d, o, top - 1 - i) for i, (l, d, o, _) in enumerate(recs)],
                # Normal time, then a jump to the saturation point half-way.
                "tsjump": [(l, d, o, t if i < half else top - 1000 + i) for i, (l, d, o, t) in enumerate(recs)],
                # Seconds resolution and raw values above i64::MAX: negative capture time.
                "tsneg": [(l, d, o, (1 << 63) + i) for i, (l, d, o, _) in enumerate(recs)],
                # Negative half-way, saturated after.
                "tsnegmax": [
                    (l, d, o, (1 << 63) + i if i < half else top - 1 - i) for i, (l, d, o, _) in enumerate(recs)
                ],
            }
            stem = os.path.relpath(os.path.join(dirpath, name), ROOT).replace(os.sep, "__")
            d = os.path.join(CORPUS, "whole_file")
            os.makedirs(d, exist_ok=True)
            for tag, v in variants.items():
                resol = 0 if tag.startswith("tsneg") else None
                with open(os.path.join(d, f"{stem}.{tag}.pcapng"), "wb") as f:
                    f.write(pcapng_file(v, tsresol=resol))
                n += 1
            # A large negative interface offset on otherwise normal timestamps.
            with open(os.path.join(d, f"{stem}.tsoffset.pcapng"), "wb") as f:
                f.write(pcapng_file([(l, dd, o, t) for l, dd, o, t in recs], tsoffset=-(1 << 62)))
            n += 1
    print(f"whole_file: {n} timestamp-extreme variants")


# ---------------------------------------------------------------- targets


def seed_whole_file(files):
    d = os.path.join(CORPUS, "whole_file")
    os.makedirs(d, exist_ok=True)
    for p in files:
        rel = os.path.relpath(p, ROOT).replace(os.sep, "__")
        shutil.copyfile(p, os.path.join(d, rel))
    print(f"whole_file: {len(files)} captures")
    # The HTTPS samples with their key logs inside (a Decryption Secrets Block), so the reader
    # of the blocks and decryption are fuzzed from whole files too.
    n = 0
    if shutil.which("editcap") is not None:
        for p in files:
            keys = os.path.splitext(p)[0] + ".keys"
            if not (p.endswith(".pcap") and os.path.exists(keys)):
                continue
            out = os.path.join(d, "dsb__" + os.path.relpath(p, ROOT).replace(os.sep, "__") + "ng")
            r = subprocess.run(["editcap", "--inject-secrets", f"tls,{keys}", p, out],
                               capture_output=True, timeout=60)
            n += r.returncode == 0
    print(f"whole_file: {n} captures with their secrets injected")


def seed_render():
    """The render target reads whole files too: it starts from whole_file's seeds."""
    src = os.path.join(CORPUS, "whole_file")
    d = os.path.join(CORPUS, "render")
    os.makedirs(d, exist_ok=True)
    names = os.listdir(src)
    for name in names:
        shutil.copyfile(os.path.join(src, name), os.path.join(d, name))
    print(f"render: {len(names)} whole_file seeds")


def seed_decode_frame(files):
    total = 0
    seen = set()
    for p in files:
        recs = records(p)
        if not recs:
            continue
        # Spread the picks over the file: the first frames (handshakes) and evenly after.
        step = max(1, len(recs) // MAX_FRAMES_PER_FILE)
        picked = recs[:3] + recs[3::step]
        n = 0
        for link, frame, orig, _ in picked:
            if link not in LINKS or n >= MAX_FRAMES_PER_FILE or total >= MAX_FRAMES:
                continue
            cut = max(0, orig - len(frame))
            extra = 0 if cut == 0 else min(253, max(1, (cut + 63) // 64))
            seed = bytes([LINKS.index(link), extra]) + frame
            key = hashlib.sha1(seed).digest()
            if key in seen:
                continue
            seen.add(key)
            write_seed("decode_frame", seed)
            n += 1
            total += 1
    # The captures hold few frames of some link types: re-wrap IP packets taken from Ethernet
    # frames as raw IP, IPv4/IPv6, BSD loopback (host and network byte order).
    ips = []
    for p in files:
        for link, frame, orig, _ in records(p)[:40]:
            v6 = frame[12:14] == b"\x86\xdd"
            if link == 1 and (v6 or frame[12:14] == b"\x08\x00"):
                if sum(1 for x in ips if x[0] == v6) < (20 if v6 else 40):
                    ips.append((v6, frame[14:], orig - len(frame)))
    wrapped = 0
    for i, (v6, ip, cut) in enumerate(ips):
        extra = 0 if cut <= 0 else min(253, (cut + 63) // 64)
        family = 30 if v6 else 2
        link, frame = [
            (101, ip),
            (229 if v6 else 228, ip),
            (0, struct.pack("<I", family) + ip),
            (108, struct.pack(">I", family) + ip),
        ][i % 4]
        write_seed("decode_frame", bytes([LINKS.index(link), extra]) + frame)
        wrapped += 1
    print(f"decode_frame: {total} frames, {wrapped} re-wrapped IP packets")


def follow_stream(path, stream):
    """(client bytes, server bytes) of one TCP stream, via tshark's follow,tcp,raw."""
    out = subprocess.run(
        ["tshark", "-r", path, "-q", "-z", f"follow,tcp,raw,{stream}"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    sides = [bytearray(), bytearray()]
    body = False
    for line in out.splitlines():
        if line.startswith("Node 1:"):
            body = True
            continue
        if not body or line.startswith("="):
            continue
        side = 1 if line.startswith("\t") else 0
        hexs = line.strip()
        try:
            sides[side] += bytes.fromhex(hexs)
        except ValueError:
            continue
    return bytes(sides[0]), bytes(sides[1])


def http_streams(path):
    out = subprocess.run(
        ["tshark", "-r", path, "-Y", "http", "-T", "fields", "-e", "tcp.stream"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    streams = []
    for s in out.split():
        if s.isdigit() and int(s) not in streams:
            streams.append(int(s))
    return streams[:MAX_STREAMS_PER_FILE]


def ctrl(flags, seed):
    return bytes([flags]) + struct.pack("<Q", seed)


GZ_BODY = gzip.compress(b"<Error><Code>AccessDenied</Code><Message>denied</Message></Error>", mtime=0)

HAND_WRITTEN = [
    (
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    ),
    (
        b"GET /c HTTP/1.1\r\nHost: a\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    ),
    (
        b"PUT /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
    ),
    (
        b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /g HTTP/1.1\r\nHost: a\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
        b"HTTP/1.1 304 Not Modified\r\n\r\n",
    ),
    (
        b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnopHTTP/1.1 500 Oops\r\n"
        b"Content-Type: text/html\r\nConnection: close\r\n\r\n<html>err</html>",
    ),
    (
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01\x00\x05hello",
        b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03\x00\x02hi",
    ),
    (
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi",
    ),
    (
        b"POST /p HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 1x\r\n\r\n",
    ),
    (
        b"POST /p HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 10\r\n\r\n"
        b"3\r\nabc\r\nzz\r\n",
        b"http/1.0 403 Forbidden\r\nContent-Encoding: gzip\r\nContent-Type: application/xml\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(GZ_BODY)
        + GZ_BODY,
    ),
    (
        b"GET /HTTP/1.1\r\nHost: a\r\n\r\n",
        b"HTTP/1.1 401 Unauthorized\r\n"
        b'WWW-Authenticate: Bearer realm="https://auth.example/token",service="registry"\r\n'
        b"Content-Length: 0\r\n\r\n",
    ),
    (
        b"GET /v2/library/x/blobs/sha256:ab HTTP/1.1\r\nHost: registry\r\n\r\n",
        b"HTTP/1.1 307 Temporary Redirect\r\n"
        b"Location: https://s3.example/bucket/x?X-Amz-Signature=00&X-Amz-Expires=60\r\n"
        b"Content-Length: 0\r\n\r\n",
    ),
    (
        b"GET /bucket/x?X-Amz-Signature=00&X-Amz-Credential=a HTTP/1.1\r\nHost: s3.example\r\n\r\n",
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: 120\r\n\r\n"
        b"<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>m</Message>"
        b"<RequestId>1</RequestId></Error>",
    ),
    (b"\r\n\r\nGET / HTTP/1.0\r\n\r\n", b"garbage line\r\nHTTP/1.0 200 OK\r\n\r\nuntil close"),
    (b"GET /\r\n", b"<html>0.9</html>"),
    (
        b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"y" * 300 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ),
]


def seed_http_stream(files):
    n = 0
    for i, (c, s) in enumerate(HAND_WRITTEN):
        for flags in (0x18, 0x00, 0x0C | 0x40, 0x13 | 0x80, 0x28 | 0x04, 0x19):
            write_seed("http_stream", ctrl(flags, 0x9E3779B97F4A7C15 * (i + 1) & (2**64 - 1)) + c + SPLIT + s)
            n += 1
    if shutil.which("tshark") is None:
        print("http_stream: tshark not found, hand-written seeds only", file=sys.stderr)
    else:
        for p in files:
            try:
                for st in http_streams(p):
                    c, s = follow_stream(p, st)
                    if not c and not s:
                        continue
                    c, s = c[:MAX_DIRECTION_BYTES], s[:MAX_DIRECTION_BYTES]
                    write_seed("http_stream", ctrl(0x18, 0x1234567 + st) + c + SPLIT + s)
                    n += 1
            except (subprocess.SubprocessError, OSError) as e:
                print(f"http_stream: {p}: {e}", file=sys.stderr)
    print(f"http_stream: {n} seeds")


def seed_tls_keyed():
    if shutil.which("tshark") is None:
        print("tls_keyed: tshark not found, no seeds", file=sys.stderr)
        return
    n = 0
    d = os.path.join(ROOT, "samples", "tls-keys")
    for name in sorted(os.listdir(d)):
        if not name.endswith(".pcap"):
            continue
        p = os.path.join(d, name)
        keys = p[: -len(".pcap")] + ".keys"
        if not os.path.exists(keys):
            continue
        with open(keys, "rb") as f:
            key_log = f.read()
        out = subprocess.run(
            ["tshark", "-r", p, "-Y", "tls.handshake.type == 1", "-T", "fields", "-e", "tcp.stream"],
            capture_output=True, text=True, timeout=120,
        ).stdout
        for st in sorted({int(x) for x in out.split() if x.isdigit()}):
            c, s = follow_stream(p, st)
            c, s = c[:MAX_DIRECTION_BYTES], s[:MAX_DIRECTION_BYTES]
            for flags in (0x0E, 0x18, 0x2C):
                write_seed("tls_keyed", ctrl(flags, 0x5DEECE66D + st) + key_log + SPLIT + c + SPLIT + s)
                n += 1
    print(f"tls_keyed: {n} seeds")


# Reassembly operations (see fuzz_targets/reassembly.rs).
SYN, FIN, RST, BACK, CUT = 0x08, 0x10, 0x20, 0x40, 0x80


def seg(off, payload=b"", flags=0, cut=None, kind=0):
    op = kind | flags | (CUT if cut is not None else 0)
    back = off < 0
    if back:
        op |= BACK
    b = bytes([op]) + struct.pack("<H", abs(off)) + bytes([len(payload)])
    if cut is not None:
        b += bytes([cut])
    return b + payload


def ack(off):
    return bytes([5 | (BACK if off < 0 else 0)]) + struct.pack("<H", abs(off))


FLUSH = bytes([7])


def seed_reassembly():
    seqs = [
        # In order with SYN and FIN, crossing the wrap-around.
        bytes([1]) + seg(0, flags=SYN) + seg(1, b"hello ") + seg(7, b"world") + seg(12, flags=FIN),
        # Out of order, then the hole filled.
        bytes([0]) + seg(0, flags=SYN) + seg(4, b"cd") + seg(6, b"ef") + seg(1, b"ab") + seg(3, b"X"),
        # Retransmissions and overlaps.
        bytes([2]) + seg(10, b"abcd") + seg(10, b"abcd") + seg(12, b"XXef") + seg(8, b"zz"),
        # Overlapping buffered segments.
        bytes([3]) + seg(0, b"a") + seg(3, b"def") + seg(4, b"EFG") + seg(1, b"bc"),
        # Hole declared lost by an ack.
        bytes([4]) + seg(0, b"ab") + seg(5, b"fg") + ack(4) + ack(7),
        # Missing data before FIN, then flush.
        bytes([5]) + seg(0, flags=SYN) + seg(1, b"ab") + seg(9, flags=FIN) + FLUSH,
        # Buffer limit: many segments beyond a hole.
        bytes([6]) + seg(0, b"a") + b"".join(seg(100 + 250 * i, b"x" * 250) for i in range(20)),
        # Snap-length cut segment.
        bytes([7]) + seg(0, b"abc", cut=1) + seg(19, b"k"),
        # RST first, data before the start.
        bytes([8]) + seg(500, flags=RST) + seg(10, b"ab") + seg(5, b"zz"),
        # Data in the SYN; segments before the base.
        bytes([9]) + seg(-40, b"GET", flags=SYN) + seg(-36, b" /") + seg(-100, b"old"),
        # FIN before a hole, acked past it, then data after the FIN.
        bytes([10]) + seg(0, b"ab") + seg(10, flags=FIN) + ack(10) + seg(10, b"late") + FLUSH,
        # A segment larger than the buffer limit beyond a hole, cut by the snap length.
        bytes([255]) + seg(0, b"a") + seg(5000, b"y" * 255, cut=255) + seg(1, b"b") + FLUSH + seg(1, b"c"),
    ]
    for s in seqs:
        write_seed("reassembly", s)
    print(f"reassembly: {len(seqs)} sequences")


def main():
    files = captures()
    seed_whole_file(files)
    seed_timestamp_extremes()
    seed_render()
    seed_decode_frame(files)
    seed_http_stream(files)
    seed_tls_keyed()
    seed_reassembly()


if __name__ == "__main__":
    main()
