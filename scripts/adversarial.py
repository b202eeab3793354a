#!/usr/bin/env python3
"""Writes seven adversarial captures into DIR (default /tmp/capdiag-adversarial) for
scripts/adversarial.sh: a million SYNs from distinct sources, one stream of nothing but
out-of-order segments, a pipeline of 100,000 requests with no response, a pcapng file of
15 MiB packets (of a link type for which Wireshark reads such packets: USBPcap, up to 128 MiB;
for Ethernet and the other link types capdiag decodes, reading stops at a packet over
256 KiB), an upload that never ends answered 100,000 times, a million `102 Processing`
answers to one request, and a million out-of-order segments of a capture of headers only."""
import os
import struct
import sys

DIR = sys.argv[1] if len(sys.argv) > 1 else "/tmp/capdiag-adversarial"
os.makedirs(DIR, exist_ok=True)
ETH = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00"


def pkt(src, dst, sport, dport, seq, ack, flags, payload=b""):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src, dst)
    return ETH + ip + tcp + payload


def write(name, packets, snaplen=262144):
    """A pcap file of `packets`, each cut to `snaplen` bytes (its length on the wire kept)."""
    with open(os.path.join(DIR, name), "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1))
        for i, p in enumerate(packets):
            t = 1_700_000_000 + i // 100_000
            cap = p[:snaplen]
            f.write(struct.pack("<IIII", t, (i % 100_000) * 10, len(cap), len(p)))
            f.write(cap)


dst = bytes([198, 51, 100, 7])
# 1. A million SYNs from distinct sources (10.x.y.z), none answered.
write("syn-flood.pcap", (pkt(bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255]), dst, 1024 + i % 50000, 80, (i * 7919) & 0xFFFFFFFF, 0, 0x02) for i in range(1_000_000)))
# 2. One connection whose client sends 200,000 segments of 1,000 bytes, every one ahead of a
#    hole that is never filled (the first byte never arrives).
c, s = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])
seg = b"x" * 1000
ooo = [pkt(c, s, 40000, 80, 1000, 0, 0x02)]
ooo += (pkt(c, s, 40000, 80, 1002 + i * 1000, 0, 0x10, seg) for i in range(200_000))
write("out-of-order-only.pcap", ooo)
# 3. 100,000 pipelined requests on one connection, never answered.
req = b"GET /v2/library/alpine/manifests/latest HTTP/1.1\r\nHost: registry\r\n\r\n"
pipe = [pkt(c, s, 40001, 80, 5000, 0, 0x02), pkt(s, c, 80, 40001, 9000, 5001, 0x12)]
pipe += (pkt(c, s, 40001, 80, 5001 + i * len(req), 9001, 0x18, req) for i in range(100_000))
write("pipeline-no-responses.pcap", pipe)


def block(btype, body):
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


# 4. pcapng, link type USBPcap (249): runs of 15 MiB packets between small ones, 12 large ones
#    in all. capdiag does not decode USBPcap; it reads, numbers and hands over every packet.
with open(os.path.join(DIR, "huge-pcapng-packets.pcapng"), "wb") as f:
    f.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
    f.write(block(1, struct.pack("<HHI", 249, 0, 0)))
    big = bytearray(pkt(c, s, 40002, 80, 7000, 0, 0x18))
    big[16:18] = b"\0\0"
    big += b"y" * (15 * 1024 * 1024)
    small = pkt(c, s, 40002, 80, 7000, 0, 0x10)
    for i in range(60):
        p = bytes(big) if i % 5 < 3 and i < 20 else small
        f.write(block(6, struct.pack("<IIIII", 0, 0, i, len(p), len(p)) + p))
# 5. An upload that never ends (a 100 GB Content-Length, 1,000 bytes of it sent) answered
#    100,000 times with a 400 and an HTML page: answers without a request queue up behind it.
put = b"PUT /v2/x/blobs/uploads/1 HTTP/1.1\r\nHost: registry\r\nContent-Length: 100000000000\r\n\r\n" + b"z" * 1000
page = b"<html><body>" + b"b" * 1000 + b"</body></html>"
bad = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(page) + page
up = [pkt(c, s, 40003, 80, 100, 0, 0x02), pkt(s, c, 80, 40003, 500, 101, 0x12),
      pkt(c, s, 40003, 80, 101, 501, 0x18, put)]
up += (pkt(s, c, 80, 40003, 501 + i * len(bad), 101 + len(put), 0x18, bad) for i in range(100_000))
write("upload-that-never-ends.pcap", up)
# 6. One request answered by a million `102 Processing`, ten to a segment, and no final answer.
proc = b"HTTP/1.1 102 Processing\r\n\r\n" * 10
pr = [pkt(c, s, 40004, 80, 100, 0, 0x02), pkt(s, c, 80, 40004, 500, 101, 0x12),
      pkt(c, s, 40004, 80, 101, 501, 0x18, req)]
pr += (pkt(s, c, 80, 40004, 501 + i * len(proc), 101 + len(req), 0x18, proc) for i in range(100_000))
write("endless-102-processing.pcap", pr)
# 7. A capture of headers only (snap length 54): a million segments of 1,000 bytes, each ahead
#    of a hole that is never filled, none of their bytes captured.
ho = [pkt(c, s, 40005, 80, 1000, 0, 0x02)]
ho += (pkt(c, s, 40005, 80, 1002 + i * 1000, 0, 0x10, seg) for i in range(1_000_000))
write("headers-only-out-of-order.pcap", ho, snaplen=54)
print(DIR)
