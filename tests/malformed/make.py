#!/usr/bin/env python3
"""Writes the malformed captures of tests/malformed/ (run from anywhere: python3 make.py).

Each file is small and damaged in one known way; README.md says what capdiag must do with it
and tests/malformed.rs checks it. The packets are built by hand here (Ethernet/IPv4/TCP with
HTTP payloads between 192.0.2.1 and 192.0.2.2, documentation addresses)."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def pcap_header(linktype=1, snaplen=262144):
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)


def record(data, ts, orig=None):
    return struct.pack("<IIII", int(ts), int((ts % 1) * 1e6), len(data), orig if orig is not None else len(data)) + data


def tcp_packet(src, dst, sport, dport, seq, ack, flags, payload=b"", ihl=5, doff=5, total=None):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, 65535, 0, 0)
    tcp += b"\0" * max(0, doff * 4 - 20) if doff >= 5 else b""
    ip_total = total if total is not None else 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", (4 << 4) | ihl, 0, ip_total, 1, 0x4000, 64, 6, 0,
                     bytes(src), bytes(dst))
    eth = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00"
    return eth + ip + tcp + payload


C, S = [192, 0, 2, 1], [192, 0, 2, 2]
SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01


def conversation(req, resp, t=1_700_000_000.0, chunk=1400, resp_chunks=None):
    """Handshake, the request, the response (in pieces of `chunk` bytes), FINs."""
    cs, ss = 1000, 5000
    pk = [tcp_packet(C, S, 40000, 80, cs, 0, SYN),
          tcp_packet(S, C, 80, 40000, ss, cs + 1, SYN | ACK),
          tcp_packet(C, S, 40000, 80, cs + 1, ss + 1, ACK)]
    seq = cs + 1
    for i in range(0, len(req), chunk):
        part = req[i:i + chunk]
        pk.append(tcp_packet(C, S, 40000, 80, seq, ss + 1, ACK | PSH, part))
        seq += len(part)
    rseq = ss + 1
    pieces = resp_chunks or [resp[i:i + chunk] for i in range(0, len(resp), chunk)]
    for part in pieces:
        pk.append(tcp_packet(S, C, 80, 40000, rseq, seq, ACK | PSH, part))
        rseq += len(part)
    pk.append(tcp_packet(S, C, 80, 40000, rseq, seq, ACK | FIN))
    pk.append(tcp_packet(C, S, 40000, 80, seq, rseq + 1, ACK | FIN))
    return [(p, t + i * 0.001) for i, p in enumerate(pk)]


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def capture(packets, linktype=1, snap=None):
    out = pcap_header(linktype)
    for p, ts in packets:
        if snap is not None and len(p) > snap:
            out += record(p[:snap], ts, orig=len(p))
        else:
            out += record(p, ts)
    return out


GET = b"GET /v2/ HTTP/1.1\r\nHost: reg\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
good = capture(conversation(GET, OK))

write("empty.pcap", b"")
write("wrong-magic.pcap", b"GARBAGE!" * 8)
write("header-only.pcap", pcap_header())
# Cut in the middle of the third record's data.
recs = conversation(GET, OK)
cut = pcap_header() + record(*recs[0]) + record(*recs[1]) + record(*recs[2])[:30]
write("record-cut-midway.pcap", cut)
# A record claiming 5000 bytes with 60 after it.
write("record-longer-than-file.pcap", pcap_header() + record(*recs[0]) + struct.pack("<IIII", 1, 0, 5000, 5000) + b"\0" * 60)
# A record claiming more than 256 KiB, then more records that cannot be trusted.
write("record-over-256k.pcap", pcap_header() + record(*recs[0]) + struct.pack("<IIII", 1, 0, 300000, 300000) + good[24:])
# Every frame cut to 60 bytes by the snap length: headers survive, payload mostly does not.
write("snaplen-truncated.pcap", capture(conversation(GET + b"X-Pad: " + b"p" * 200 + b"\r\n\r\n", OK), snap=60))
# pcapng: section header, interface, one packet, then a block whose length is impossible.
shb = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)
idb = struct.pack("<IIHHII", 1, 20, 1, 0, 262144, 20)
p0 = recs[0][0]
pad = (4 - len(p0) % 4) % 4
epb = struct.pack("<IIIIIII", 6, 32 + len(p0) + pad, 0, 0, 0, len(p0), len(p0)) + p0 + b"\0" * pad + struct.pack("<I", 32 + len(p0) + pad)
write("pcapng-bad-block-length.pcapng", shb + idb + epb + struct.pack("<II", 6, 7) + b"\0" * 40)
# pcapng: a packet capturing 300,000 bytes (more than Wireshark reads for Ethernet, 262,144)
# between two good ones.
big = b"\0" * 300000
epb_big = struct.pack("<IIIIIII", 6, 32 + len(big), 0, 0, 1, len(big), len(big)) + big + struct.pack("<I", 32 + len(big))
write("pcapng-packet-over-256k.pcapng", shb + idb + epb + epb_big + epb)
write("unknown-linktype.pcap", capture(conversation(GET, OK), linktype=147))
write("ipv4-bad-ihl.pcap", capture([(tcp_packet(C, S, 1, 80, 1, 0, SYN, ihl=3), 1.0)] + conversation(GET, OK)))
write("ipv4-bad-total-length.pcap", capture([(tcp_packet(C, S, 2, 80, 1, 0, SYN, total=12), 1.0)] + conversation(GET, OK)))
write("tcp-bad-data-offset.pcap", capture([(tcp_packet(C, S, 3, 80, 1, 0, SYN, doff=2), 1.0)] + conversation(GET, OK)))
many = b"GET /many HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(10000)) + b"\r\n"
write("http-10000-headers.pcap", capture(conversation(many + GET, OK + b"")))
huge_line = b"GET /long HTTP/1.1\r\nX-Long: " + b"a" * (1 << 20) + b"\r\n\r\n"
write("http-1mb-header-line.pcap", capture(conversation(huge_line + GET, OK)))
write("http-bad-chunk-size.pcap", capture(conversation(GET, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nhello\r\n0\r\n\r\n")))
write("http-content-length-and-chunked.pcap", capture(conversation(GET, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")))
write("http-two-content-lengths.pcap", capture(conversation(b"POST /u HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 4\r\n\r\nab", OK)))
write("http-negative-content-length.pcap", capture(conversation(GET, b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello")))
write("http-huge-content-length.pcap", capture(conversation(GET, b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nhello")))
endless = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"] + [b"400\r\n" + b"z" * 1024 + b"\r\n"] * 2000
write("http-endless-chunked.pcap", capture(conversation(GET, b"", resp_chunks=endless)[:-2]))
print("written to", HERE)


def block(btype, body):
    """A pcapng block of type `btype` around `body`, padded to 32 bits."""
    body += b"\0" * ((4 - len(body) % 4) % 4)
    return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def epb_of(packet, ts):
    units = int(round(ts * 1e6))
    return block(6, struct.pack("<IIIII", 0, units >> 32, units & 0xFFFFFFFF, len(packet), len(packet)) + packet)


# Not damaged: an HTTP exchange whose packets are interleaved with pcapng blocks that are not
# packets. Wireshark numbers the systemd journal entry, the custom blocks (copiable and not) and
# the Sysdig event as frames; it skips the statistics, name-resolution and local blocks.
journal = block(9, b"__REALTIME_TIMESTAMP=1700000000000000\nMESSAGE=registry started\n")
custom = block(0x00000BAD, struct.pack("<I", 32473) + b"vendor data")
custom_no_copy = block(0x40000BAD, struct.pack("<I", 32473) + b"more vendor data")
sysdig = block(0x204, struct.pack("<HQQIH", 0, 1_700_000_000_000_000_000, 42, 30, 5) + b"\0" * 8)
stats = block(5, struct.pack("<III", 0, 0, 0))
names = block(4, struct.pack("<HH", 0, 0))
local = block(0x80000001, b"local")
others = {1: journal + stats, 3: custom + local, 4: sysdig, 5: names + custom_no_copy}
out = shb + idb
for i, (p, ts) in enumerate(conversation(GET, OK)):
    out += epb_of(p, ts) + others.get(i, b"")
write("pcapng-non-packet-records.pcapng", out)
# A systemd journal export block too short to be one (Wireshark stops there too).
write("pcapng-short-journal-block.pcapng", shb + idb + epb + block(9, b"") + epb)


# TLS, recognised by content on port 80 (a record header starting the client's bytes).
def tls_record(ctype, body, version=b"\x03\x01"):
    return bytes([ctype]) + version + struct.pack("!H", len(body)) + body


def handshake(htype, body):
    return bytes([htype]) + struct.pack("!I", len(body))[1:] + body


def client_hello(sni=b"registry.example"):
    name = struct.pack("!HBH", len(sni) + 3, 0, len(sni)) + sni
    exts = struct.pack("!HH", 0, len(name)) + name
    body = (b"\x03\x03" + b"\x11" * 32 + b"\x00" + struct.pack("!H", 2) + b"\x13\x01" + b"\x01\x00"
            + struct.pack("!H", len(exts)) + exts)
    return tls_record(22, handshake(1, body))


SERVER_HELLO_12 = handshake(2, b"\x03\x03" + b"\x22" * 32 + b"\x00" + b"\xc0\x2f" + b"\x00")
write("tls-record-too-long.pcap", capture(conversation(b"\x16\x03\x01\xff\xff" + b"\x01" * 64, b"")))
write("tls-handshake-over-limit.pcap", capture(conversation(tls_record(22, b"\x01\xff\xff\xff" + b"\x03\x03" * 8), b"")))
# A ClientHello whose extensions' length runs past the message.
bad_ch = b"\x03\x03" + b"\x11" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + b"\x40\x00" + b"\x00\x00\x00\x05ab"
write("tls-client-hello-bad-extensions.pcap", capture(conversation(tls_record(22, handshake(1, bad_ch)), b"")))
# A TLS 1.2 server flight whose certificate is not DER.
garbage_cert = b"\x30\x03\x02\x01"
certs = struct.pack("!I", len(garbage_cert))[1:] + garbage_cert
write("tls-certificate-not-der.pcap", capture(conversation(
    client_hello(), tls_record(22, SERVER_HELLO_12 + handshake(11, struct.pack("!I", len(certs))[1:] + certs), b"\x03\x03"))))
