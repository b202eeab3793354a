//! From a captured frame to a TCP segment: link layer, IP, TCP.
//!
//! Everything here borrows the frame's bytes; nothing is allocated per packet. Frames that are
//! not TCP over IP are classified (so the report can say what was skipped and why), never an
//! error. Link layers are decoded here by hand (they are a few fixed fields each, and etherparse
//! has no Linux cooked v2); IP and TCP headers are sliced with etherparse in its lax mode, which
//! accepts packets cut short by a snap length.

pub mod link;

use crate::capture::{Frame, LinkType};
use etherparse::{IpNumber, LaxIpSlice, LenSource, TcpSlice};
use std::net::{IpAddr, Ipv4Addr};

/// TCP flag bits (RFC 9293 §3.1).
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// A TCP segment, borrowed from its frame.
#[derive(Clone, Copy, Debug)]
pub struct TcpSegment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// The payload bytes that were captured.
    pub payload: &'a [u8],
    /// The payload length the IP header claims; larger than `payload.len()` when the frame
    /// was cut by the snap length.
    pub payload_len: u32,
    /// The raw TCP header (with options), used to recognise the same packet captured twice.
    pub header: &'a [u8],
}

impl TcpSegment<'_> {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The maximum segment size its options announce (RFC 9293 §3.7.1; on a SYN or SYN-ACK).
    pub fn mss(&self) -> Option<u16> {
        let end = usize::from(*self.header.get(12)? >> 4) * 4;
        let mut opts = self.header.get(20..end.min(self.header.len()))?;
        while let Some(&kind) = opts.first() {
            match kind {
                0 => return None,
                1 => opts = opts.get(1..)?,
                _ => {
                    let len = usize::from(*opts.get(1)?);
                    if kind == 2 && len == 4 {
                        return link::be16(opts, 2);
                    }
                    opts = opts.get(len.max(2)..)?;
                }
            }
        }
        None
    }
}

/// An ICMP error about a TCP packet (destination unreachable), naming the connection it is
/// about by the embedded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpUnreachable {
    /// The sender of the ICMP message (a router, or the destination host).
    pub reporter: IpAddr,
    /// The TCP connection the error is about, from the quoted header: the original sender.
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub kind: u8,
    pub code: u8,
    /// ICMPv6 (the kind and code are then ICMPv6's).
    pub v6: bool,
    /// The next-hop MTU of an IPv4 "fragmentation needed" or an ICMPv6 "packet too big".
    pub mtu: Option<u32>,
}

impl IcmpUnreachable {
    /// Destination unreachable (not "packet too big", which says the path's MTU is smaller).
    pub fn is_unreachable(&self) -> bool {
        (!self.v6 && self.kind == 3) || (self.v6 && self.kind == 1)
    }

    /// An IPv4 "fragmentation needed" or an ICMPv6 "packet too big": the packet was larger
    /// than the path could carry.
    pub fn says_too_big(&self) -> bool {
        (!self.v6 && self.kind == 3 && self.code == 4) || (self.v6 && self.kind == 2)
    }

    /// What a destination unreachable says, in words (RFC 792, RFC 1122, RFC 1812, RFC 4443).
    pub fn says(&self) -> &'static str {
        match (self.v6, self.code) {
            (false, 0) => "network unreachable",
            (false, 1) => "host unreachable",
            (false, 3) => "port unreachable",
            (false, 4) => "fragmentation needed",
            (false, 6 | 7) => "destination network or host unknown",
            (false, 9 | 10 | 13) => "communication administratively prohibited",
            (false, _) => "destination unreachable",
            (true, 0) => "no route to destination",
            (true, 1 | 5 | 6) => "communication administratively prohibited",
            (true, 3) => "address unreachable",
            (true, 4) => "port unreachable",
            (true, _) => "destination unreachable",
        }
    }
}

/// What a frame turned out to hold.
#[derive(Clone, Copy, Debug)]
pub enum Decoded<'a> {
    Tcp(TcpSegment<'a>),
    /// ICMP/ICMPv6 destination unreachable quoting a TCP header.
    IcmpUnreachable(IcmpUnreachable),
    /// IP carrying something other than TCP (UDP, ICMP...): not an error, nothing to do.
    OtherIp,
    /// A fragment of an IP datagram (not reassembled).
    Fragment,
    /// A link-layer frame that carries no IP (ARP, LLDP...), by its EtherType.
    NotIp(u16),
    /// A TCP header that cannot be fully read (cut short, or a data offset below 5): enough
    /// to number the stream as Wireshark does, not to analyse.
    TcpHeaderOnly(TcpSegment<'a>, Malformed),
    /// A link type capdiag does not decode.
    UnsupportedLink(LinkType),
    /// Headers that are cut short or impossible.
    Malformed(Malformed),
}

/// Why a frame could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Malformed {
    LinkHeaderTruncated,
    IpHeaderBad,
    TcpHeaderTruncated,
    TcpHeaderBad,
}

impl Malformed {
    pub fn describe(self) -> &'static str {
        match self {
            Malformed::LinkHeaderTruncated => "link-layer header cut short",
            Malformed::IpHeaderBad => "IP header cut short or invalid",
            Malformed::TcpHeaderTruncated => "TCP header cut short",
            Malformed::TcpHeaderBad => "TCP header invalid (data offset below 5)",
        }
    }
}

/// A decoded frame detached from the frame's bytes: its slices kept as offsets into the frame.
/// The reading thread decodes each frame and sends this with a copy of the frame's bytes;
/// [`Detached::attach`] gives back, on the analysing thread, the [`Decoded`] that
/// [`decode`] makes of that copy.
#[derive(Clone, Copy, Debug)]
pub struct Detached {
    /// The decoded frame with its slices empty.
    decoded: Decoded<'static>,
    payload: (u32, u32),
    header: (u32, u32),
}

/// Where `part` lies in `whole`, when it lies there (an empty slice lies anywhere).
fn offsets(whole: &[u8], part: &[u8]) -> Option<(u32, u32)> {
    if part.is_empty() {
        return Some((0, 0));
    }
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    if end > whole.len() {
        return None;
    }
    Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
}

impl TcpSegment<'_> {
    fn without_slices(&self) -> TcpSegment<'static> {
        TcpSegment {
            src: self.src,
            dst: self.dst,
            sport: self.sport,
            dport: self.dport,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
            payload: &[],
            payload_len: self.payload_len,
            header: &[],
        }
    }
}

impl Decoded<'_> {
    /// Detaches a frame decoded from `data` (`None` if its slices are not within `data`, which
    /// [`decode`] never makes).
    pub fn detach(&self, data: &[u8]) -> Option<Detached> {
        let parts =
            |seg: &TcpSegment<'_>| Some((offsets(data, seg.payload)?, offsets(data, seg.header)?));
        let (decoded, (payload, header)) = match self {
            Decoded::Tcp(seg) => (Decoded::Tcp(seg.without_slices()), parts(seg)?),
            Decoded::TcpHeaderOnly(seg, m) => (
                Decoded::TcpHeaderOnly(seg.without_slices(), *m),
                parts(seg)?,
            ),
            Decoded::IcmpUnreachable(i) => (Decoded::IcmpUnreachable(*i), ((0, 0), (0, 0))),
            Decoded::OtherIp => (Decoded::OtherIp, ((0, 0), (0, 0))),
            Decoded::Fragment => (Decoded::Fragment, ((0, 0), (0, 0))),
            Decoded::NotIp(e) => (Decoded::NotIp(*e), ((0, 0), (0, 0))),
            Decoded::UnsupportedLink(l) => (Decoded::UnsupportedLink(*l), ((0, 0), (0, 0))),
            Decoded::Malformed(m) => (Decoded::Malformed(*m), ((0, 0), (0, 0))),
        };
        Some(Detached {
            decoded,
            payload,
            header,
        })
    }
}

impl Detached {
    /// The decoded frame with its slices in `data`, a copy of the bytes it was decoded from.
    pub fn attach<'a>(&self, data: &'a [u8]) -> Decoded<'a> {
        let slice = |(a, b): (u32, u32)| data.get(a as usize..b as usize).unwrap_or_default();
        let seg = |s: &TcpSegment<'static>| TcpSegment {
            payload: slice(self.payload),
            header: slice(self.header),
            ..*s
        };
        match &self.decoded {
            Decoded::Tcp(s) => Decoded::Tcp(seg(s)),
            Decoded::TcpHeaderOnly(s, m) => Decoded::TcpHeaderOnly(seg(s), *m),
            other => *other,
        }
    }
}

/// Decodes one frame down to TCP.
pub fn decode<'a>(frame: &Frame<'a>) -> Decoded<'a> {
    match link::network_payload(frame.link_type, frame.data) {
        link::Network::Ip(ip) => decode_ip(ip, frame.wire_len as usize, frame.data.len(), 0),
        link::Network::NotIp(et) => Decoded::NotIp(et),
        link::Network::Unsupported => Decoded::UnsupportedLink(frame.link_type),
        link::Network::Truncated => Decoded::Malformed(Malformed::LinkHeaderTruncated),
    }
}

/// Decodes an IP packet. `wire_len` and `cap_len` are the frame's lengths, used to tell how much
/// of the packet the snap length cut off when the IP header cannot say.
pub fn decode_ip(ip: &[u8], wire_len: usize, cap_len: usize, depth: u8) -> Decoded<'_> {
    match plain_ipv4_tcp(ip) {
        Some(d) => d,
        None => decode_ip_sliced(ip, wire_len, cap_len, depth),
    }
}

/// [`decode_ip`] for any packet, by etherparse's lax slicing.
fn decode_ip_sliced(ip: &[u8], wire_len: usize, cap_len: usize, depth: u8) -> Decoded<'_> {
    let Ok((slice, _ext_err)) = LaxIpSlice::from_slice(ip) else {
        return Decoded::Malformed(Malformed::IpHeaderBad);
    };
    let (src, dst, payload, claimed) = match &slice {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            // A total length shorter than the header itself is bogus (Wireshark: "Bogus IP
            // length"); 0 is what TSO/GSO super-frames carry, and is read from the frame.
            let total = usize::from(h.total_len());
            if total != 0 && total < h.slice().len() {
                return Decoded::Malformed(Malformed::IpHeaderBad);
            }
            let p = v4.payload();
            let claimed = if p.incomplete && p.len_source == LenSource::Ipv4HeaderTotalLen {
                usize::from(h.total_len())
                    .saturating_sub(h.slice().len())
                    .saturating_sub(v4.extensions().auth.map_or(0, |a| a.slice().len()))
            } else {
                p.payload.len()
            };
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                p,
                claimed,
            )
        }
        LaxIpSlice::Ipv6(v6) => {
            let h = v6.header();
            let p = v6.payload();
            let claimed = if p.incomplete && p.len_source == LenSource::Ipv6HeaderPayloadLen {
                usize::from(h.payload_length()).saturating_sub(v6.extensions().slice().len())
            } else {
                p.payload.len()
            };
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                p,
                claimed,
            )
        }
    };
    if payload.fragmented {
        return Decoded::Fragment;
    }
    // When the IP header's length could not be used, whatever the frame lost to the snap length
    // is missing from the payload.
    let claimed = if payload.incomplete && claimed <= payload.payload.len() {
        payload.payload.len() + wire_len.saturating_sub(cap_len)
    } else {
        claimed
    };
    match payload.ip_number {
        IpNumber::TCP => decode_tcp(src, dst, payload.payload, claimed),
        IpNumber::ICMP | IpNumber::IPV6_ICMP => {
            decode_icmp(src, payload.ip_number, payload.payload)
        }
        IpNumber::UDP if depth < MAX_TUNNEL_DEPTH => {
            decode_tunnel(payload.payload, wire_len, cap_len, depth)
        }
        _ => Decoded::OtherIp,
    }
}

/// The common case, read from the header's fixed fields: IPv4 carrying TCP, not a fragment,
/// its total length within the captured bytes and not shorter than its header. Gives what the
/// general path below gives (etherparse's lax slicing, a test holds them equal); `None`
/// leaves every other packet to that path.
fn plain_ipv4_tcp(ip: &[u8]) -> Option<Decoded<'_>> {
    let fixed: [u8; 20] = ip.get(..20)?.try_into().ok()?;
    let [
        vihl,
        _,
        t0,
        t1,
        _,
        _,
        f0,
        f1,
        _,
        proto,
        _,
        _,
        s0,
        s1,
        s2,
        s3,
        d0,
        d1,
        d2,
        d3,
    ] = fixed;
    let header_len = usize::from(vihl & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([t0, t1]));
    let fragment = u16::from_be_bytes([f0, f1]) & 0x3fff != 0;
    if vihl >> 4 != 4 || header_len < 20 || total < header_len || total > ip.len() || fragment {
        return None;
    }
    if proto != 6 {
        return None;
    }
    let payload = ip.get(header_len..total)?;
    let src = IpAddr::V4(Ipv4Addr::new(s0, s1, s2, s3));
    let dst = IpAddr::V4(Ipv4Addr::new(d0, d1, d2, d3));
    Some(decode_tcp(src, dst, payload, payload.len()))
}

/// Tunnels inside tunnels are followed this deep.
const MAX_TUNNEL_DEPTH: u8 = 2;
/// VXLAN's IANA port, which Wireshark decodes by default (RFC 7348).
const VXLAN_PORT: u16 = 4789;

/// GTP-U's port (3GPP TS 29.281), which Wireshark decodes by default.
const GTPU_PORT: u16 = 2152;

/// UDP tunnels Wireshark decodes by default: VXLAN (an 8-byte header, then Ethernet) and GTP-U
/// (a G-PDU carrying an IP packet).
fn decode_tunnel(udp: &[u8], wire_len: usize, cap_len: usize, depth: u8) -> Decoded<'_> {
    let inner = match link::be16(udp, 2) {
        Some(VXLAN_PORT) => match udp
            .get(16..)
            .map(|e| link::network_payload(LinkType::ETHERNET, e))
        {
            Some(link::Network::Ip(ip)) => ip,
            _ => return Decoded::OtherIp,
        },
        Some(GTPU_PORT) => match udp.get(8..).and_then(gtpu_payload) {
            Some(ip) => ip,
            None => return Decoded::OtherIp,
        },
        _ => return Decoded::OtherIp,
    };
    decode_ip(inner, wire_len, cap_len, depth + 1)
}

/// The IP packet in a GTP-U G-PDU (3GPP TS 29.281 §5.1).
fn gtpu_payload(g: &[u8]) -> Option<&[u8]> {
    let flags = *g.first()?;
    if flags >> 5 != 1 || flags & 0x10 == 0 || *g.get(1)? != 0xff {
        return None;
    }
    let mut off = 8;
    if flags & 0x07 != 0 {
        // Sequence number, N-PDU number, next extension header type.
        let mut next = *g.get(11)?;
        off = 12;
        while next != 0 {
            let len = usize::from(*g.get(off)?) * 4;
            if len == 0 {
                return None;
            }
            next = *g.get(off + len - 1)?;
            off += len;
        }
    }
    g.get(off..)
}

fn decode_tcp(src: IpAddr, dst: IpAddr, data: &[u8], claimed: usize) -> Decoded<'_> {
    let tcp = match TcpSlice::from_slice(data) {
        Ok(t) => t,
        Err(e) => {
            let why = match e {
                etherparse::err::tcp::HeaderSliceError::Len(_) => Malformed::TcpHeaderTruncated,
                etherparse::err::tcp::HeaderSliceError::Content(_) => Malformed::TcpHeaderBad,
            };
            // Wireshark still gives such a segment a stream when its fixed fields are there.
            return match header_only(src, dst, data) {
                Some(seg) => Decoded::TcpHeaderOnly(seg, why),
                None => Decoded::Malformed(why),
            };
        }
    };
    let header = tcp.header_slice();
    let payload = tcp.payload();
    let payload_len = claimed.saturating_sub(header.len()).max(payload.len());
    let flag_byte = data.get(13).copied().unwrap_or(0);
    Decoded::Tcp(TcpSegment {
        src,
        dst,
        sport: tcp.source_port(),
        dport: tcp.destination_port(),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        flags: flag_byte,
        window: tcp.window_size(),
        payload,
        payload_len: u32::try_from(payload_len).unwrap_or(u32::MAX),
        header,
    })
}

/// The fixed fields of a TCP header (ports, numbers, flags, window) when the rest cannot be
/// read.
fn header_only(src: IpAddr, dst: IpAddr, data: &[u8]) -> Option<TcpSegment<'_>> {
    let word = |o: usize| -> Option<u32> {
        Some(u32::from_be_bytes(data.get(o..o + 4)?.try_into().ok()?))
    };
    Some(TcpSegment {
        src,
        dst,
        sport: link::be16(data, 0)?,
        dport: link::be16(data, 2)?,
        seq: word(4)?,
        ack: word(8)?,
        flags: *data.get(13)?,
        window: link::be16(data, 14)?,
        payload: &[],
        payload_len: 0,
        header: data.get(..16)?,
    })
}

/// ICMP destination unreachable (v4 type 3, v6 type 1) or packet too big (v6 type 2) quoting
/// an IP header and the first 8 bytes of a TCP header (RFC 792, RFC 1191, RFC 4443 §3.1–3.2).
fn decode_icmp(reporter: IpAddr, proto: IpNumber, data: &[u8]) -> Decoded<'_> {
    let (Some(&kind), Some(&code)) = (data.first(), data.get(1)) else {
        return Decoded::OtherIp;
    };
    let v6 = proto == IpNumber::IPV6_ICMP;
    let unreachable = (!v6 && kind == 3) || (v6 && kind == 1);
    let too_big = v6 && kind == 2;
    if !(unreachable || too_big) {
        return Decoded::OtherIp;
    }
    let mtu = if too_big {
        link::be16(data, 4)
            .zip(link::be16(data, 6))
            .map(|(hi, lo)| u32::from(hi) << 16 | u32::from(lo))
    } else if !v6 && code == 4 {
        link::be16(data, 6).map(u32::from)
    } else {
        None
    };
    let Some(quoted) = data.get(8..) else {
        return Decoded::OtherIp;
    };
    let Ok((inner, _)) = LaxIpSlice::from_slice(quoted) else {
        return Decoded::OtherIp;
    };
    let (src, dst, p) = match &inner {
        LaxIpSlice::Ipv4(v4) => (
            IpAddr::V4(v4.header().source_addr()),
            IpAddr::V4(v4.header().destination_addr()),
            v4.payload(),
        ),
        LaxIpSlice::Ipv6(v6) => (
            IpAddr::V6(v6.header().source_addr()),
            IpAddr::V6(v6.header().destination_addr()),
            v6.payload(),
        ),
    };
    if p.ip_number != IpNumber::TCP {
        return Decoded::OtherIp;
    }
    let (Some(sport), Some(dport)) = (link::be16(p.payload, 0), link::be16(p.payload, 2)) else {
        return Decoded::OtherIp;
    };
    Decoded::IcmpUnreachable(IcmpUnreachable {
        reporter,
        src,
        dst,
        sport,
        dport,
        kind,
        code,
        v6,
        mtu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, 1000, 512)
            .psh()
            .ack(77)
            .write(&mut v, payload)
            .unwrap_or_else(|_| unreachable!());
        v
    }

    fn tcp(d: Decoded<'_>) -> TcpSegment<'_> {
        match d {
            Decoded::Tcp(t) => t,
            other => panic!("not TCP: {other:?}"),
        }
    }

    #[test]
    fn ipv4_tcp_fields() {
        let p = ipv4_tcp(b"GET / HTTP/1.1\r\n");
        let t = tcp(decode_ip(&p, p.len(), p.len(), 0));
        assert_eq!((t.sport, t.dport, t.seq, t.ack), (40000, 80, 1000, 77));
        assert!(t.has(flags::PSH) && t.has(flags::ACK) && !t.has(flags::SYN));
        assert_eq!(t.payload, b"GET / HTTP/1.1\r\n");
        assert_eq!(t.payload_len, 16);
        assert_eq!(t.header.len(), 20);
    }

    proptest::proptest! {
        /// The fixed-field reading of plain IPv4/TCP gives what etherparse's slicing gives,
        /// for any header field values, options, padding and cuts; and it takes the plain
        /// packets (ones it declines go the general way, so declining all would pass the
        /// equality unseen).
        #[test]
        fn plain_ipv4_tcp_is_read_as_the_general_path_reads_it(
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
            pokes in proptest::collection::vec((0usize..64, proptest::num::u8::ANY), 0..4),
            options in 0usize..3,
            padding in 0usize..8,
            cut in 0usize..80,
        ) {
            let mut p = ipv4_tcp(&payload);
            if options > 0 {
                // IPv4 options (no-ops): a longer header, the lengths fixed up.
                let words = u8::try_from(options).unwrap_or(0);
                p[0] = 0x45 + words;
                p.splice(20..20, std::iter::repeat_n(1u8, options * 4));
                let total = u16::try_from(p.len()).unwrap_or(0).to_be_bytes();
                p[2..4].copy_from_slice(&total);
            }
            let plain = plain_ipv4_tcp(&p).is_some();
            p.extend(std::iter::repeat_n(0u8, padding));
            for (at, v) in pokes {
                if let Some(b) = p.get_mut(at) {
                    *b = v;
                }
            }
            p.truncate(p.len().saturating_sub(cut));
            let wire = p.len() + cut;
            if let Some(fast) = plain_ipv4_tcp(&p) {
                let general = decode_ip_sliced(&p, wire, p.len(), 0);
                proptest::prop_assert_eq!(format!("{fast:?}"), format!("{general:?}"));
            }
            proptest::prop_assert!(plain, "an unchanged packet is read the plain way");
        }
    }

    #[test]
    fn ipv6_tcp() {
        let mut v = Vec::new();
        PacketBuilder::ipv6([0xfe; 16], [0xfd; 16], 64)
            .tcp(1, 2, 3, 4)
            .write(&mut v, b"hi")
            .unwrap_or_else(|_| unreachable!());
        let t = tcp(decode_ip(&v, v.len(), v.len(), 0));
        assert!(t.src.is_ipv6());
        assert_eq!(t.payload, b"hi");
    }

    #[test]
    fn snaplen_cut_payload_keeps_the_claimed_length() {
        let p = ipv4_tcp(&[b'x'; 100]);
        let cut = &p[..60];
        let t = tcp(decode_ip(cut, p.len(), cut.len(), 0));
        assert_eq!((t.payload.len(), t.payload_len), (20, 100));
    }

    #[test]
    fn ip_with_total_length_zero_uses_the_frame() {
        // TSO/GSO super-frames are captured with an IPv4 total length of 0.
        let mut p = ipv4_tcp(&[b'y'; 50]);
        p[2] = 0;
        p[3] = 0;
        let t = tcp(decode_ip(&p, p.len(), p.len(), 0));
        assert_eq!(t.payload_len, 50);
    }

    #[test]
    fn impossible_ip_headers() {
        let mut p = ipv4_tcp(b"");
        p[0] = 0x43; // IHL 3: shorter than the fixed header
        assert!(matches!(
            decode_ip(&p, p.len(), p.len(), 0),
            Decoded::Malformed(Malformed::IpHeaderBad)
        ));
        assert!(matches!(
            decode_ip(&[0x45, 0], 2, 2, 0),
            Decoded::Malformed(Malformed::IpHeaderBad)
        ));
        assert!(matches!(
            decode_ip(&[], 0, 0, 0),
            Decoded::Malformed(Malformed::IpHeaderBad)
        ));
    }

    #[test]
    fn damaged_tcp_headers() {
        let mut p = ipv4_tcp(b"");
        p[32] = 0x40; // data offset 4
        match decode_ip(&p, p.len(), p.len(), 0) {
            Decoded::TcpHeaderOnly(t, Malformed::TcpHeaderBad) => assert_eq!(t.sport, 40000),
            other => panic!("{other:?}"),
        }
        let mut q = ipv4_tcp(b"");
        q[32] = 0xf0; // data offset 15: 60 bytes, only 20 there
        assert!(matches!(
            decode_ip(&q, q.len(), q.len(), 0),
            Decoded::TcpHeaderOnly(_, Malformed::TcpHeaderTruncated)
        ));
        let short = &ipv4_tcp(b"")[..30];
        assert!(matches!(
            decode_ip(short, 40, short.len(), 0),
            Decoded::Malformed(Malformed::TcpHeaderTruncated)
        ));
    }

    #[test]
    fn fragments_are_not_reassembled() {
        let mut p = ipv4_tcp(b"abc");
        p[6] = 0x20; // more fragments
        assert!(matches!(
            decode_ip(&p, p.len(), p.len(), 0),
            Decoded::Fragment
        ));
    }

    #[test]
    fn icmp_unreachable_names_the_tcp_connection() {
        let quoted = ipv4_tcp(b"");
        let mut v = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 254], [10, 0, 0, 1], 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Host,
            ))
            .write(&mut v, &quoted[..28])
            .unwrap_or_else(|_| unreachable!());
        match decode_ip(&v, v.len(), v.len(), 0) {
            Decoded::IcmpUnreachable(u) => {
                assert_eq!((u.sport, u.dport, u.kind, u.code), (40000, 80, 3, 1));
                assert_eq!(u.reporter.to_string(), "10.0.0.254");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fragmentation_needed_and_packet_too_big_carry_the_mtu() {
        let quoted = ipv4_tcp(b"");
        let mut v = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 254], [10, 0, 0, 1], 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: 1400,
                },
            ))
            .write(&mut v, &quoted[..28])
            .unwrap_or_else(|_| unreachable!());
        match decode_ip(&v, v.len(), v.len(), 0) {
            Decoded::IcmpUnreachable(u) => {
                assert_eq!((u.kind, u.code, u.v6, u.mtu), (3, 4, false, Some(1400)));
                assert!(u.is_unreachable());
            }
            other => panic!("{other:?}"),
        }
        // ICMPv6 packet too big, quoting an IPv6 TCP packet.
        let mut q6 = Vec::new();
        PacketBuilder::ipv6([0x20; 16], [0x21; 16], 64)
            .tcp(40000, 80, 1, 1000)
            .write(&mut q6, &[])
            .unwrap_or_else(|_| unreachable!());
        let mut v6 = Vec::new();
        PacketBuilder::ipv6([0x22; 16], [0x20; 16], 64)
            .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 })
            .write(&mut v6, &q6[..48])
            .unwrap_or_else(|_| unreachable!());
        match decode_ip(&v6, v6.len(), v6.len(), 0) {
            Decoded::IcmpUnreachable(u) => {
                assert_eq!((u.kind, u.v6, u.mtu, u.sport), (2, true, Some(1280), 40000));
                assert!(!u.is_unreachable());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mss_is_read_from_the_options() {
        let mut v = Vec::new();
        PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .tcp(40000, 80, 1, 1000)
            .syn()
            .options(&[
                etherparse::TcpOptionElement::Noop,
                etherparse::TcpOptionElement::MaximumSegmentSize(1360),
                etherparse::TcpOptionElement::SelectiveAcknowledgementPermitted,
            ])
            .unwrap_or_else(|_| unreachable!())
            .write(&mut v, &[])
            .unwrap_or_else(|_| unreachable!());
        match decode_ip(&v, v.len(), v.len(), 0) {
            Decoded::Tcp(seg) => assert_eq!(seg.mss(), Some(1360)),
            other => panic!("{other:?}"),
        }
        let plain = ipv4_tcp(b"x");
        match decode_ip(&plain, plain.len(), plain.len(), 0) {
            Decoded::Tcp(seg) => assert_eq!(seg.mss(), None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn vxlan_inner_frame() {
        let inner_ip = ipv4_tcp(b"GET");
        let mut inner = vec![0u8; 12];
        inner.extend_from_slice(&[0x08, 0x00]);
        inner.extend_from_slice(&inner_ip);
        let mut vx = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
        vx.extend_from_slice(&inner);
        let mut v = Vec::new();
        PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .udp(50000, 4789)
            .write(&mut v, &vx)
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(tcp(decode_ip(&v, v.len(), v.len(), 0)).payload, b"GET");
        // Another UDP port is just UDP.
        let mut u = Vec::new();
        PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .udp(50000, 53)
            .write(&mut u, &vx)
            .unwrap_or_else(|_| unreachable!());
        assert!(matches!(
            decode_ip(&u, u.len(), u.len(), 0),
            Decoded::OtherIp
        ));
    }
}
