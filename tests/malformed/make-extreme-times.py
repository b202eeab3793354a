#!/usr/bin/env python3
"""Writes the two pcapng captures whose timestamps lie at the ends of what pcapng can say
(tests/malformed/README.md): run from the repository root.

- pcapng-extreme-timestamps.pcapng: two UDP frames on an interface with if_tsresol 10^0 (whole
  seconds) and if_tsoffset -2^62 s; the first at raw time 0, the second at 2^64-1: times that
  overflow any 64-bit nanosecond count, far apart.
- pcapng-latest-timestamps-http.pcapng: samples/registry/presigned-403.pcap (a presigned-url-403
  finding) with every frame at raw time 2^64-1 in whole seconds.
"""
import struct

def opt(code, val):
    pad = (4 - len(val) % 4) % 4
    return struct.pack('<HH', code, len(val)) + val + b'\0' * pad

def block(t, body):
    n = 12 + len(body)
    return struct.pack('<II', t, n) + body + struct.pack('<I', n)

SHB = block(0x0A0D0D0A, struct.pack('<IHHq', 0x1A2B3C4D, 1, 0, -1))

def idb(linktype, offset=None):
    opts = opt(9, bytes([0]))  # if_tsresol: 10^-0 s
    if offset is not None:
        opts += opt(14, struct.pack('<q', offset))  # if_tsoffset, seconds
    opts += opt(0, b'')
    return block(1, struct.pack('<HHI', linktype, 0, 262144) + opts)

def epb(ts, data):
    pad = (4 - len(data) % 4) % 4
    return block(6, struct.pack('<IIIII', 0, ts >> 32, ts & 0xffffffff, len(data), len(data)) + data + b'\0' * pad)

LATEST = 2**64 - 1
eth = bytes.fromhex('001122334455' '66778899aabb' '0800')
ip = bytes.fromhex('450000200000400040110000' 'c0000201' 'c0000202')
udp = struct.pack('>HHHH', 1000, 2000, 12, 0) + b'abcd'
with open('tests/malformed/pcapng-extreme-timestamps.pcapng', 'wb') as f:
    f.write(SHB + idb(1, -(2**62)) + epb(0, eth + ip + udp) + epb(LATEST, eth + ip + udp))

src = open('samples/registry/presigned-403.pcap', 'rb').read()
assert struct.unpack('<I', src[:4])[0] == 0xa1b2c3d4
linktype = struct.unpack('<I', src[20:24])[0]
out, off = SHB + idb(linktype), 24
while off + 16 <= len(src):
    _, _, incl, _ = struct.unpack('<IIII', src[off:off + 16])
    off += 16
    out += epb(LATEST, src[off:off + incl])
    off += incl
with open('tests/malformed/pcapng-latest-timestamps-http.pcapng', 'wb') as f:
    f.write(out)
